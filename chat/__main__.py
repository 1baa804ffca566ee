"""``python -m chat`` starts the server, like ``python -m chat.server``."""

import sys

from chat.server import main

sys.exit(main())
