"""The catalogue: every bug by name, and how the server's command line builds a server with one.

A :class:`Bug` names the pieces that differ from the safe server: a room class
(rooms.py), a session class (outboxes.py), a change to the settings, and the
default race window. :func:`build` turns one into the parts that
:mod:`chat.server.cli` hands to :class:`chat.server.ChatServer`, which knows
nothing of the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from chat.bugs.outboxes import DoubleLeaveSession, LostWakeupSession, TornSession
from chat.bugs.rooms import (
    DoubleLeaveRoom,
    IterateWhileMutatingRoom,
    JoinBeforeRegisterRoom,
    LockOrderDeadlockRoom,
    LostLeaveRoom,
    NameCheckRaceRoom,
    NoLockRoom,
    SeqOutsideLockRoom,
    TornRoom,
    UnsafeRoom,
)
from chat.bugs.watchdog import LockWatchdog
from chat.config import ServerConfig
from chat.delivery import Delivery
from chat.lockstat import SupportsLock
from chat.session import Session

#: ``send-under-lock`` needs a small send buffer, so that a member that stops
#: reading fills it (and blocks the sender) within a second of chat, not after
#: megabytes. Linux doubles it and rounds up to its own minimum.
SMALL_SNDBUF = 4096


@dataclass(frozen=True)
class Bug:
    """One entry of the catalogue."""

    name: str
    summary: str
    room: type[UnsafeRoom]
    window: float
    """Default race window in seconds (``--race-window``); 0 where the bug needs none."""
    session: type[Session] = Session
    configure: Callable[[ServerConfig], ServerConfig] | None = None
    scenario: str = "mixed"
    """The swarm scenario that exposes it."""


@dataclass(frozen=True)
class BugParts:
    """What the server's command line builds an unsafe server from."""

    bug: Bug
    config: ServerConfig
    room: UnsafeRoom
    session_factory: type[Session]
    watchdog: LockWatchdog

    @property
    def banner(self) -> str:
        """The loud warning the command line prints on stderr."""
        bug = self.bug
        lines = [
            f"UNSAFE SERVER: bug '{bug.name}' injected on purpose.",
            bug.summary,
            f"race window {self.room.race_window:g} s; scenario that exposes it: {bug.scenario}",
            "For teaching the harness only: never use this server for anything else.",
        ]
        width = max(len(s) for s in lines) + 6
        bar = "!" * width
        body = [f"!! {s.ljust(width - 6)} !!" for s in lines]
        return "\n".join([bar, *body, bar])


def _send_under_lock_config(config: ServerConfig) -> ServerConfig:
    sndbuf = min(config.sndbuf or SMALL_SNDBUF, SMALL_SNDBUF)
    return replace(config, delivery=Delivery.DIRECT, sndbuf=sndbuf)


BUGS: dict[str, Bug] = {
    b.name: b
    for b in (
        Bug("no-lock", "registry changes and broadcasts without the lock", NoLockRoom, 0.0005),
        Bug(
            "name-check-race",
            "check-then-act on usernames: two members with one name",
            NameCheckRaceRoom,
            0.02,
        ),
        Bug(
            "iterate-while-mutating",
            "broadcasts iterate the live registry while joins and leaves change it",
            IterateWhileMutatingRoom,
            0.0005,
        ),
        Bug(
            "seq-outside-lock",
            "seq taken outside the critical section that fixes the recipients",
            SeqOutsideLockRoom,
            0.001,
        ),
        Bug(
            "torn-writes",
            "several threads write one member's socket, each line in two sends",
            TornRoom,
            0.0005,
            session=TornSession,
        ),
        Bug(
            "send-under-lock",
            "broadcasts send synchronously under the registry lock; one slow member stalls all",
            UnsafeRoom,
            0.0,
            configure=_send_under_lock_config,
        ),
        Bug("lost-leave", "a dropped member is removed with no LEAVE broadcast", LostLeaveRoom, 0.0),
        Bug(
            "double-leave",
            "a connection that drops while it is quitting is announced twice",
            DoubleLeaveRoom,
            0.03,
            session=DoubleLeaveSession,
        ),
        Bug(
            "join-before-register",
            "JOIN broadcast before the newcomer is registered: it misses what follows",
            JoinBeforeRegisterRoom,
            0.005,
        ),
        Bug(
            "lock-order-deadlock",
            "two locks taken in opposite orders on two paths: the server hangs",
            LockOrderDeadlockRoom,
            0.005,
        ),
        Bug(
            "lost-wakeup",
            "a writer checks its queue, then says it sleeps: a line put in between wakes nobody",
            UnsafeRoom,
            0.0005,
            session=LostWakeupSession,
        ),
    )
}


def bug_names() -> list[str]:
    return list(BUGS)


class UnknownBug(ValueError):
    """A name that is not in the catalogue (a usage error)."""


def get_bug(name: str) -> Bug:
    try:
        return BUGS[name]
    except KeyError:
        raise UnknownBug(f"unknown --unsafe bug {name!r}; valid: {', '.join(BUGS)}") from None


def build(
    name: str, config: ServerConfig, *, race_window: float | None = None, lock: SupportsLock | None = None
) -> BugParts:
    """The parts of a server with bug ``name``: raises :class:`UnknownBug`.

    ``lock`` is the room's lock (an instrumented one when metrics are served);
    ``race_window`` overrides the bug's default.
    """
    bug = get_bug(name)
    if bug.configure is not None:
        config = bug.configure(config)
    room = bug.room(max_clients=config.max_clients, max_backlog=config.max_backlog, lock=lock)
    room.race_window = bug.window if race_window is None else race_window
    return BugParts(bug, config, room, bug.session, LockWatchdog(room.lock))
