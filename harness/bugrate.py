"""``python -m harness.bugrate``: the entry point of :mod:`harness.bench.bugrate`."""

import sys

from harness.bench.bugrate import main

if __name__ == "__main__":
    sys.exit(main())
