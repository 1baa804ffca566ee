"""The catalogue's sessions: each gives its connection one of the outboxes of :mod:`chat.bugs.outboxes`.

Teaching code (see :mod:`chat.bugs`). A session overrides only
:meth:`chat.session.Session._make_outbox`, the step that makes the
connection's one outbox.
"""

from __future__ import annotations

import socket

from chat.bugs.outboxes import LostWakeupOutbox, ReportingOutbox, TornOutbox
from chat.config import ServerConfig
from chat.delivery import Outbox
from chat.protocol import LeaveReason
from chat.room import Room
from chat.session import Session


class BugSession(Session):
    """A session that knows its bug's race window, for the outbox it makes."""

    def __init__(
        self, room: Room, sock: socket.socket, peer: str, config: ServerConfig, *, window: float
    ) -> None:
        self.window = window  # first: Session.__init__ makes the outbox
        super().__init__(room, sock, peer, config)


class TornSession(BugSession):
    """``torn-writes``: no writer thread; whoever delivers a line writes it, in two sends."""

    def _make_outbox(self) -> Outbox:
        return TornOutbox(self.sock, self.peer, self.window)


class DoubleLeaveSession(BugSession):
    """``double-leave``: the writer announces a broken connection, and so does the reader."""

    def _make_outbox(self) -> Outbox:
        return ReportingOutbox(self.sock, self.peer, self._writer_saw_drop)

    def _writer_saw_drop(self) -> None:
        self.room.leave(self.conn, LeaveReason.DISCONNECTED)


class LostWakeupSession(BugSession):
    """``lost-wakeup``: a writer that can miss its wake-up."""

    def _make_outbox(self) -> Outbox:
        return LostWakeupOutbox(self.sock, self.peer, self.window)
