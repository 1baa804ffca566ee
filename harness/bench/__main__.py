"""``python -m harness.bench``: see :mod:`harness.bench.cli`."""

import sys

from harness.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
