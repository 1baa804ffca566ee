"""The bug catalogue: the chat server with one classic concurrency bug injected on purpose.

Teaching code, never for real use. ``python -m chat.server --unsafe BUG`` asks
this package for the parts of a server that has bug ``BUG`` (an
:class:`Injection`: a room, a session factory, the configuration, a lock
watchdog) and builds the server from them. A plugin of the safe server, not a
part of it: the catalogue imports the room, the session, the outboxes and the
configuration, and none of them imports the catalogue; only the command line
(:mod:`chat.server.cli`) does, and only when ``--unsafe`` is given.

Each bug overrides the steps of the safe classes that it is about (the
extension points of :mod:`chat.room`, :meth:`chat.session.Session._make_outbox`),
never a copy of their bodies. docs/bugs.md describes every bug: what the code
does differently, why it breaks, what a student sees, and which check of the
harness catches it.

Modules: :mod:`~chat.bugs.race` (the race window, ``released``, ``NoLock``),
:mod:`~chat.bugs.rooms`, :mod:`~chat.bugs.outboxes`, :mod:`~chat.bugs.sessions`,
:mod:`~chat.bugs.watchdog` and :mod:`~chat.bugs.catalogue` (the names).
"""

from chat.bugs.catalogue import BUGS, Bug, Injection, UnknownBug, bug_names, get_bug
from chat.bugs.watchdog import LockWatchdog

__all__ = ["BUGS", "Bug", "Injection", "LockWatchdog", "UnknownBug", "bug_names", "get_bug"]
