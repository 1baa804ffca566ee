"""``python -m chat.server``: see :mod:`chat.server.cli`."""

import sys

from chat.server.cli import main

sys.exit(main())
