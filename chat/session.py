"""One client connection, driven by its reader thread from connect to close.

Not the accept loop and not the shared state: a :class:`Session` reads lines
from one socket, runs the handshake, and turns each line into a call on the
:class:`chat.room.Room`. It owns its connection: it closes the socket and frees
the slot when it ends, whatever the reason. The acceptor
(:class:`chat.server.acceptor.ChatServer`) makes one per accepted connection
through its session factory and runs :meth:`Session.run` on a thread of its own.

The outbox of the connection is made by one step, :meth:`Session._make_outbox`,
so that a subclass can give the connection another outbox without making a
second one.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Callable

from chat import protocol
from chat.config import SHUTDOWN_FLUSH, SHUTDOWN_JOIN, ServerConfig
from chat.delivery import MAX_BACKPRESSURE_WAIT, Outbox, make_outbox, shutdown_socket, wait_for_congested
from chat.protocol import (
    LINE_TOO_LONG,
    Blank,
    Chat,
    ErrorCode,
    LeaveReason,
    LineBuffer,
    Quit,
    RemoteProtocolError,
    UnknownCommand,
    Who,
)
from chat.room import Connection, Room

log = logging.getLogger(__name__)

#: One recv; large enough to take many lines per call under load.
RECV_SIZE = 65536
HELLO_TEXT = "welcome; send your username (1-20 letters, digits, _ or -)"


class Session:
    """One client connection, driven by its reader thread from connect to close."""

    def __init__(self, room: Room, sock: socket.socket, peer: str, config: ServerConfig) -> None:
        self.room = room
        self.sock = sock
        self.peer = peer
        self.config = config
        self.outbox = self._make_outbox()
        self.conn = Connection(self.outbox, peer)
        self.buffer = LineBuffer(config.max_line)
        self.connected_at = time.monotonic()

    def _make_outbox(self) -> Outbox:
        """The connection's outbox, made once: the ``--delivery`` design's.

        The extension point for another way of writing to the socket. Called
        from ``__init__`` with ``sock``, ``peer`` and ``config`` already set, and
        before ``conn`` exists.
        """
        return make_outbox(self.config.delivery, self.sock, self.peer)

    def run(self) -> None:
        """The reader thread's body: ``try: handle / except: report / finally: close``."""
        try:
            self._handle()
        except OSError as exc:
            log.debug("%s: connection error: %s", self.peer, exc)
            self.room.leave(self.conn, LeaveReason.DISCONNECTED)
        except Exception:
            # A bug in our code, never the client's fault: log it, drop only
            # this client, keep serving everyone else.
            log.exception("%s: internal error; closing this connection", self.peer)
            self.room.leave(self.conn, LeaveReason.DISCONNECTED)
        finally:
            self._close()

    # -- the two phases -----------------------------------------------------------
    def _handle(self) -> None:
        self.room.reply(self.conn, protocol.format_event(protocol.Hello(HELLO_TEXT)))
        deadline = self.connected_at + self.config.handshake_timeout
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        while True:
            if not self.conn.is_member:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not poller.poll(remaining * 1000):
                    self.room.reply(
                        self.conn,
                        protocol.format_err(ErrorCode.TIMEOUT, "no username received in time"),
                        last=True,
                    )
                    return
            data = self.sock.recv(RECV_SIZE)
            if not data:
                self.room.leave(self.conn, LeaveReason.DISCONNECTED)
                return
            if self.conn.is_silent:  # only this thread clears it: no lock needed to read it
                self.room.heard(self.conn)
            if not self._lines(self.buffer.feed(data)):
                return

    def _lines(self, items: list[bytes | protocol.LineTooLong]) -> bool:
        """Act on a batch of received lines; False when the session is over.

        Consecutive chat lines are broadcast in one critical section; any other
        line first flushes them, so replies keep their place in the order.
        """
        if self.conn.is_member:
            texts = protocol.plain_chat_texts(items)
            if texts is not None:  # all chat: the batch in one go (same result as the loop below)
                self._flush(texts)
                return self.conn.is_member or not self.outbox.is_finishing
        pending: list[str] = []
        for item in items:
            if item is LINE_TOO_LONG:
                self._flush(pending)
                self._err(ErrorCode.LINE_TOO_LONG, f"a line is at most {self.buffer.max_line} bytes")
                continue
            assert isinstance(item, bytes)
            try:
                text = protocol.decode_line(item)
            except RemoteProtocolError as exc:
                self._flush(pending)
                self._err(exc.code, exc.text)
                continue
            if not self.conn.is_member:
                if not self._handshake_line(text):
                    return False
                continue
            kind = protocol.classify_client_line(text)
            if isinstance(kind, Chat):
                pending.append(kind.text)
                continue
            self._flush(pending)
            if isinstance(kind, Who):
                self.room.who(self.conn)
            elif isinstance(kind, Quit):
                self.room.leave(self.conn, LeaveReason.QUIT)
                return False
            elif isinstance(kind, UnknownCommand):
                self._err(ErrorCode.UNKNOWN_COMMAND, f"unknown command {kind.word}; try /who or /quit")
            else:
                assert isinstance(kind, Blank)
        self._flush(pending)
        return self.conn.is_member or not self.outbox.is_finishing

    def _handshake_line(self, text: str) -> bool:
        """One line before the name is accepted; False when the session is over."""
        if protocol.is_leave_request(text):
            self.room.reply(self.conn, protocol.format_event(protocol.Bye("goodbye")), last=True)
            return False
        try:
            protocol.check_name(text)
        except RemoteProtocolError as exc:
            self._err(exc.code, exc.text)
            return True
        refusal = self.room.join(self.conn, text)
        if refusal is ErrorCode.NAME_TAKEN:
            self._err(refusal, f"the name {text} is taken, choose another")
        elif refusal is not None:  # the room is closing
            return False
        return True

    def _flush(self, pending: list[str]) -> None:
        """Broadcast pending chat lines, pausing (outside the lock) while a recipient is congested.

        The reader's side of the backpressure rule (docs/architecture.md,
        "Backpressure and slow consumers"): each pause for a recipient whose
        client is behind lasts at most MAX_BACKPRESSURE_WAIT, after which
        :meth:`chat.delivery.Outbox.wait_below` has marked it stalled (and
        :func:`chat.delivery.wait_for_congested` every other recipient that
        moved nothing in the same pause); a
        recipient that is behind only because the server is gets a new period
        each time. Whether to pause is never decided by the clock alone.
        """
        if not pending:
            return
        deadline = time.monotonic() + MAX_BACKPRESSURE_WAIT
        while pending:
            done, congested = self.room.say(self.conn, pending)
            del pending[:done]
            if congested is not None:
                wait_for_congested(congested, self.room.outboxes(), self.room.low_water, deadline)
                if time.monotonic() >= deadline:
                    # Stalled (its client lags: not waited for again), or still
                    # congested because the server is behind: either way the
                    # next wait gets a period of its own.
                    deadline = time.monotonic() + MAX_BACKPRESSURE_WAIT

    def _err(self, code: ErrorCode, text: str) -> None:
        self.room.reply(self.conn, protocol.format_err(code, text))

    def _close(self) -> None:
        """Finish the outbox, close the socket, free the slot. Runs exactly once."""
        self.outbox.finish()
        if not self.outbox.join(SHUTDOWN_FLUSH):
            shutdown_socket(self.sock)  # a peer that does not read: stop waiting
            self.outbox.join(SHUTDOWN_JOIN)
        shutdown_socket(self.sock)
        self.sock.close()
        self.room.release(self.conn)


#: What makes the session of an accepted connection, ``(room, sock, peer, config)
#: -> Session``: the parameter of :class:`chat.server.acceptor.ChatServer` that
#: the command line chooses. :class:`Session` itself is the default.
SessionFactory = Callable[[Room, socket.socket, str, ServerConfig], Session]
