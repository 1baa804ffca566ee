"""``python -m harness.checker RUN``: see :mod:`harness.checker.cli`."""

import sys

from harness.checker.cli import main

sys.exit(main())
