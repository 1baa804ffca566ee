"""``python -m harness.checker RUN``: see :mod:`harness.checker.core`."""

import sys

from harness.checker.core import main

sys.exit(main())
