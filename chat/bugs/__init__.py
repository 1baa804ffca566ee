"""The bug catalogue: the server with one classic concurrency bug injected on purpose.

Teaching code, never for real use. ``python -m chat.server --unsafe BUG``
builds the server from the parts of one bug instead of the safe ones: a room
that does one step of a critical section wrong (rooms.py), sometimes a session
whose outbox misbehaves (outboxes.py), and a lock watchdog (watchdog.py). The
catalogue is a plugin of the safe server: it overrides the room's and the
session's named steps, and nothing in the safe code knows it exists; only the
server's command line (chat/server/cli.py) loads it, when ``--unsafe`` is given.
docs/bugs.md describes every bug: what the code does differently, why it
breaks, what a student sees, and which check of the harness catches it.
"""

from chat.bugs.catalogue import BUGS, Bug, BugParts, UnknownBug, bug_names, build, get_bug
from chat.bugs.watchdog import WATCHDOG_LIMIT, LockWatchdog
from chat.bugs.window import pause, released

__all__ = [
    "BUGS",
    "WATCHDOG_LIMIT",
    "Bug",
    "BugParts",
    "LockWatchdog",
    "UnknownBug",
    "bug_names",
    "build",
    "get_bug",
    "pause",
    "released",
]
