"""One client connection, driven by its reader thread from connect to close.

The reader thread (one per connection; :class:`chat.server.ChatServer` starts it)
runs the handshake, then turns every received line into a call on the
:class:`chat.room.Room`. It owns its connection: whatever ends the session (EOF,
an error, ``/quit``, a timeout, a drop, a shutdown), it finishes the outbox,
closes the socket and frees the slot, exactly once. A bug in our code costs one
connection, never the server: ``run`` is ``try: handle / except: report /
finally: close``. Bad input from the client is handled on the normal path with
an ``ERR`` line and never logs a traceback.
"""

from __future__ import annotations

import logging
import select
import socket
import time

from chat import protocol
from chat.config import ServerConfig
from chat.delivery import MAX_BACKPRESSURE_WAIT, Outbox, make_outbox, shutdown_socket
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

log = logging.getLogger("chat.server")

#: One recv; large enough to take many lines per call under load.
RECV_SIZE = 65536
#: How long a closing session waits for its writer to flush, then (socket shut) to end.
CLOSE_FLUSH = 0.6
CLOSE_JOIN = 0.5
HELLO_TEXT = "welcome; send your username (1-20 letters, digits, _ or -)"


class Session:
    """One client connection, driven by its reader thread from connect to close."""

    def __init__(self, room: Room, config: ServerConfig, sock: socket.socket, peer: str) -> None:
        self.room = room
        self.config = config
        self.sock = sock
        self.peer = peer
        self.outbox = self._make_outbox()
        self.conn = Connection(self.outbox, peer)
        self.buffer = LineBuffer(config.max_line)
        self.connected_at = time.monotonic()

    def _make_outbox(self) -> Outbox:
        """The outbox of this connection: the one step that decides how its lines reach its socket.

        An extension point: the bug catalogue (chat.bugs) swaps in buggy outboxes here.
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
            if not self._lines(self.buffer.feed(data)):
                return

    def _lines(self, items: list[bytes | protocol.LineTooLong]) -> bool:
        """Act on a batch of received lines; False when the session is over.

        Consecutive chat lines are broadcast in one critical section; any other
        line first flushes them, so replies keep their place in the order.
        """
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
        """Broadcast pending chat lines, pausing while a recipient is congested.

        Backpressure, outside the lock: a healthy but busy recipient (its
        writer starved of the GIL by readers like this one) catches up instead
        of letting its backlog reach the slow limit. Each pause for a recipient
        whose client is the one behind (its socket cannot take more bytes) is
        bounded: after MAX_BACKPRESSURE_WAIT that recipient is marked stalled,
        and nobody waits for it again until its writer makes progress (it
        overflows and is dropped as slow); so is one whose writer moves no byte
        for STALL_TIMEOUT. When the server is the one behind (the socket has
        room, the writer is short of CPU), the sender keeps waiting, a new
        period at a time: the room runs at the server's pace and drops nobody.
        Whether to pause is never decided by the clock alone: a reader
        descheduled across a deadline must not flood a member that reads.
        """
        if not pending:
            return
        deadline = time.monotonic() + MAX_BACKPRESSURE_WAIT
        while pending:
            done, congested = self.room.say(self.conn, pending)
            del pending[:done]
            if congested is not None:
                congested.wait_below(self.room.low_water, deadline)
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
        if not self.outbox.join(CLOSE_FLUSH):
            shutdown_socket(self.sock)  # a peer that does not read: stop waiting
            self.outbox.join(CLOSE_JOIN)
        shutdown_socket(self.sock)
        self.sock.close()
        self.room.release(self.conn)
