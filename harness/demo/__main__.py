"""``python -m harness.demo``: see :mod:`harness.demo.cli`."""

import sys

from harness.demo.cli import main

sys.exit(main())
