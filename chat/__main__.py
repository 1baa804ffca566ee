"""``python -m chat`` starts the server, like ``python -m chat.server``."""

import sys

from chat.server.cli import main

sys.exit(main())
