"""``python -m harness.swarm``: see :mod:`harness.swarm.cli`."""

import sys

from harness.swarm.cli import main

sys.exit(main())
