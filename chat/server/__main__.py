"""``python -m chat.server``: the command line of :mod:`chat.server.cli`."""

import sys

from chat.server.cli import main

sys.exit(main())
