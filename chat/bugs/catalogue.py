"""The catalogue: every bug by name, and the parts of a server that has it.

Teaching code (see :mod:`chat.bugs`). A :class:`Bug` names the room class, the
session class and the configuration change that make it; :meth:`Bug.inject`
builds those parts (an :class:`Injection`) for the command line, which builds
the server from them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

from chat.bugs import rooms, sessions
from chat.bugs.watchdog import LockWatchdog
from chat.config import ServerConfig
from chat.delivery import Delivery
from chat.lockstat import SupportsLock
from chat.room import Room
from chat.session import Session, SessionFactory

#: ``send-under-lock`` needs a small send buffer, so that a member that stops
#: reading fills it (and blocks the sender) within a second of chat, not after
#: megabytes. Linux doubles it and rounds up to its own minimum.
SMALL_SNDBUF = 4096


@dataclass(frozen=True)
class Injection:
    """The parts of a server with one bug: what the command line builds the server from."""

    bug: Bug
    config: ServerConfig
    """The configuration, changed as the bug needs (``--delivery direct`` for ``send-under-lock``)."""
    race_window: float
    room: Room
    session_factory: SessionFactory
    watchdog: LockWatchdog
    """Watches ``room.lock``; not started. Whoever runs the server starts it, and stops it."""

    def banner(self) -> str:
        """The loud warning the command line prints on stderr."""
        bug = self.bug
        lines = [
            f"UNSAFE SERVER: bug '{bug.name}' injected on purpose.",
            bug.summary,
            f"race window {self.race_window:g} s; scenario that exposes it: {bug.scenario}",
            "For teaching the harness only: never use this server for anything else.",
        ]
        width = max(len(s) for s in lines) + 6
        bar = "!" * width
        body = [f"!! {s.ljust(width - 6)} !!" for s in lines]
        return "\n".join([bar, *body, bar])


@dataclass(frozen=True)
class Bug:
    """One entry of the catalogue."""

    name: str
    summary: str
    room: type[rooms.BugRoom]
    window: float
    """Default race window in seconds (``--race-window``); 0 where the bug needs none."""
    session: type[sessions.BugSession] | None = None
    """The session whose outbox step the bug overrides; ``None``: the safe session."""
    configure: Callable[[ServerConfig], ServerConfig] | None = None
    scenario: str = "mixed"
    """The swarm scenario that exposes it."""

    def inject(
        self, config: ServerConfig, *, race_window: float | None = None, lock: SupportsLock | None = None
    ) -> Injection:
        """The parts of a server with this bug.

        ``lock`` is the room's lock (an instrumented one for the metrics);
        ``race_window`` replaces the bug's default window.
        """
        if self.configure is not None:
            config = self.configure(config)
        window = self.window if race_window is None else race_window
        room = self.room(
            max_clients=config.max_clients, max_backlog=config.max_backlog, lock=lock, race_window=window
        )
        factory: SessionFactory = Session
        if self.session is not None:
            factory = functools.partial(self.session, window=window)
        return Injection(self, config, window, room, factory, LockWatchdog(room.lock))


def _send_under_lock_config(config: ServerConfig) -> ServerConfig:
    sndbuf = min(config.sndbuf or SMALL_SNDBUF, SMALL_SNDBUF)
    return replace(config, delivery=Delivery.DIRECT, sndbuf=sndbuf)


BUGS: dict[str, Bug] = {
    b.name: b
    for b in (
        Bug("no-lock", "registry changes and broadcasts without the lock", rooms.NoLockRoom, 0.0005),
        Bug(
            "name-check-race",
            "check-then-act on usernames: two members with one name",
            rooms.NameCheckRaceRoom,
            0.02,
            scenario="name-race",
        ),
        Bug(
            "iterate-while-mutating",
            "broadcasts iterate the live registry while joins and leaves change it",
            rooms.IterateWhileMutatingRoom,
            0.0005,
        ),
        Bug(
            "seq-outside-lock",
            "seq taken outside the critical section that fixes the recipients",
            rooms.SeqOutsideLockRoom,
            0.001,
        ),
        Bug(
            "torn-writes",
            "several threads write one member's socket, each line in two sends",
            rooms.TornRoom,
            0.0005,
            session=sessions.TornSession,
        ),
        Bug(
            "send-under-lock",
            "broadcasts send synchronously under the registry lock; one slow member stalls all",
            rooms.BugRoom,
            0.0,
            configure=_send_under_lock_config,
        ),
        Bug("lost-leave", "a dropped member is removed with no LEAVE broadcast", rooms.LostLeaveRoom, 0.0),
        Bug(
            "double-leave",
            "a connection that drops while it is quitting is announced twice",
            rooms.DoubleLeaveRoom,
            0.03,
            session=sessions.DoubleLeaveSession,
        ),
        Bug(
            "join-before-register",
            "JOIN broadcast before the newcomer is registered: it misses what follows",
            rooms.JoinBeforeRegisterRoom,
            0.005,
        ),
        Bug(
            "lock-order-deadlock",
            "two locks taken in opposite orders on two paths: the server hangs",
            rooms.LockOrderDeadlockRoom,
            0.005,
        ),
        Bug(
            "lost-wakeup",
            "a writer checks its queue, then says it sleeps: a line put in between wakes nobody",
            rooms.BugRoom,
            0.0005,
            session=sessions.LostWakeupSession,
        ),
    )
}


def bug_names() -> list[str]:
    return list(BUGS)


class UnknownBug(ValueError):
    """A name that is not in the catalogue (a usage error)."""


def get_bug(name: str) -> Bug:
    """The bug called ``name``; raises :class:`UnknownBug`, whose message lists the valid names."""
    try:
        return BUGS[name]
    except KeyError:
        raise UnknownBug(f"unknown --unsafe bug {name!r}; valid: {', '.join(BUGS)}") from None
