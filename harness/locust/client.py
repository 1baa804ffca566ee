"""The locust client of the chat protocol: one connection, each action a timed locust request.

Requests have the type ``CHAT`` and four names, each timed by :func:`timed_request`:

``join``     connect, wait for HELLO, offer the name, until ``OK`` and the own ``JOIN``;
``message``  send one message, until it comes back to its sender;
``who``      send ``/who``, until ``USERS`` (which must list the user);
``leave``    send ``/quit`` until ``BYE`` and the close, or (churn) close abruptly.

An ``ERR``, a ``BYE`` that was not asked for, a closed connection, a line that
is not the protocol or no answer within the bound fails the request, with a
message that says which. (A racer's refused contested name is the one expected
``ERR``: :meth:`ChatClient.join` then offers the next name.)

Recording, the handshake's state and routing each answer to the action waiting
for it are the sans-IO :class:`harness.record.connection.RecordingConnection`'s
(the swarm's bots drive the same one): this module does the I/O and the waits.
Locust runs users as gevent greenlets and patches the standard library when it
is imported, so it is imported first; the socket is a plain blocking one
(cooperative under gevent), no OS thread is started, and each connection is read
by a reader greenlet that hands the answers to a queue.
"""

from __future__ import annotations

# locust first: importing it patches the standard library (sockets, threads) for gevent.
import locust  # noqa: F401  # isort: skip

import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import gevent
from gevent.queue import Empty, Queue

from chat import protocol
from harness.common.address import Endpoint
from harness.locust.options import ChatOptions
from harness.record.connection import Answer, JoinOutcome, RecordingConnection
from harness.record.history import ClientHistory, HowClosed
from harness.record.payload import decode_payload, encode_payload

REQUEST_TYPE = "CHAT"
#: Seconds a stopping user waits for ``BYE`` after ``/quit``: users stop within a few seconds of a stop.
QUIT_WAIT = 3.0
#: Bytes read per ``recv``.
READ_SIZE = 65536


class ChatError(Exception):
    """A request failed: the server refused, closed, broke the protocol or did not answer in time."""


class AnswerTimeout(ChatError):
    """No answer within the bound."""


@contextmanager
def timed_request(environment: Any, name: str, context: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Time the block as one ``CHAT`` request named ``name``; a :class:`ChatError` in it fails the request.

    What locust's ``events.request.measure`` does, but for the stop: locust
    stops a user by killing its greenlet, even in the middle of a request
    (``GreenletExit``, not an ``Exception``). Such a request did not end, and is
    not reported (``measure`` would report it as a success, with the time until
    the kill). The block may set ``response_length`` and ``context`` in the dict
    it gets.
    """
    meta: dict[str, Any] = {
        "request_type": REQUEST_TYPE,
        "name": name,
        "response_length": 0,
        "context": context,
        "exception": None,
    }
    started = time.perf_counter()
    try:
        yield meta
    except ChatError as exc:
        meta["exception"] = exc
    meta["response_time"] = (time.perf_counter() - started) * 1000.0
    environment.events.request.fire(**meta)


class _Eof:
    """Put in the queue when the server closes the connection."""


_EOF = _Eof()


class _Wait:
    """A request's deadline (monotonic) and the bound it came from (for the failure message)."""

    def __init__(self, bound: float) -> None:
        self.bound = bound
        self.deadline = time.monotonic() + bound


class ChatClient:
    """One connection: each action is a timed locust request; every line is recorded with its time.

    ``on_open`` is called with the client once its TCP connection is open (the
    run's registry of recorded connections, when the run is judged).
    """

    def __init__(
        self,
        environment: Any,
        address: Endpoint,
        history: ClientHistory,
        options: ChatOptions,
        *,
        on_open: Callable[[ChatClient], None] | None = None,
    ) -> None:
        self.environment = environment
        self.address = address
        self.history = history
        self.options = options
        self.on_open = on_open
        # Only the user's own messages are sampled: locust measures latency itself.
        self.rec = RecordingConnection(history, record=options.check, replies=True, sample_every=0)
        self.sock: socket.socket | None = None
        self._inbox: Queue[Answer | _Eof] = Queue()
        self._reader: gevent.Greenlet | None = None

    @property
    def is_open(self) -> bool:
        return self.rec.is_open

    @property
    def is_member(self) -> bool:
        """The connection is open and the server announced this user's JOIN on it."""
        return self.rec.has_joined

    @property
    def name(self) -> str | None:
        """The name as the server accepted it (None before)."""
        return self.rec.name

    # -- requests ------------------------------------------------------------------------
    def _request(self, name: str) -> AbstractContextManager[dict[str, Any]]:
        return timed_request(self.environment, name, self._context())

    def _context(self) -> dict[str, Any]:
        return {"user": self.rec.name or self.history.client}

    def join(self, names: Sequence[str]) -> bool:
        """Connect and join, offering ``names`` in turn: each but the last may be refused as taken.

        One ``join`` request, from the connect to the own ``JOIN``.
        """
        with self._request("join") as meta:
            wait = _Wait(self.options.handshake_bound)
            try:
                self._open(wait.bound)
                self._expect(wait, protocol.Hello, "HELLO")
                for i, name in enumerate(names):
                    self._send(name)
                    answer = self._expect(wait, (protocol.Ok, protocol.Err), f"answer to the name {name}")
                    if isinstance(answer, protocol.Ok):
                        break
                    if self.rec.join_outcome is not JoinOutcome.TAKEN or i == len(names) - 1:
                        raise ChatError(_err_text(answer))
                self._expect(wait, protocol.Join, "JOIN of this user")
            except ChatError as exc:
                self.close(HowClosed.TIMEOUT if isinstance(exc, AnswerTimeout) else HowClosed.DROP, str(exc))
                raise
            meta["context"] = self._context()
        return meta["exception"] is None

    def say(self, n: int) -> None:
        """Send message ``n`` of this user and time it until its echo comes back."""
        t = time.time()
        text = encode_payload(self.history.bot, n, t)
        with self._request("message") as meta:
            wait = _Wait(self.options.delivery_bound)
            self._send(text, due=t)
            while True:
                echo = self._expect(wait, protocol.Msg, "echo of the message")
                payload = decode_payload(echo.text)
                if payload is not None and payload.n == n:
                    break  # an older echo (of a message that timed out) is passed over
            meta["response_length"] = len(text)

    def who(self) -> None:
        """Ask ``/who``; the answer must list this user."""
        with self._request("who"):
            wait = _Wait(self.options.delivery_bound)
            self._send("/who")
            users = self._expect(wait, protocol.Users, "USERS")
            name = self.rec.name
            if name is not None and protocol.name_key(name) not in map(protocol.name_key, users.names):
                raise ChatError(f"USERS without this user ({name}): {' '.join(users.names)[:200]}")

    def quit(self) -> None:
        """Leave with ``/quit``: wait (at most :data:`QUIT_WAIT`) for ``BYE`` and the close."""
        if not self.is_open:
            return
        with self._request("leave"):
            wait = _Wait(QUIT_WAIT)
            try:
                self._send("/quit")
                what = "BYE"
                while True:
                    event = self._next(wait, what, closed_ok=True)
                    if event is _EOF:
                        break  # the server closed the connection (after BYE, recorded as a quit)
                    if isinstance(event, protocol.Bye):
                        what = "close after BYE"
            except AnswerTimeout as exc:
                self.close(HowClosed.STOPPED, str(exc))
                raise
            except ChatError as exc:
                self.close(HowClosed.ERROR, str(exc))
                raise
        self.close(HowClosed.QUIT)

    def drop(self) -> None:
        """Leave abruptly: close the connection without a word (churn)."""
        if not self.is_open:
            return
        with self._request("leave"):
            self.close(HowClosed.DROP)

    def close(self, how: HowClosed, detail: str = "") -> None:
        """End the connection (idempotent), recording how unless the end is already recorded."""
        self.rec.close(time.time(), how, detail)
        reader, self._reader = self._reader, None
        if reader is not None and reader is not gevent.getcurrent():
            reader.kill(block=False)
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass  # already closed: nothing left to release

    def finish(self, t: float) -> ClientHistory:
        """The history, the connection closed first (as ``stopped`` at the end of a run) if still open."""
        if self.is_open:
            self.close(HowClosed.STOPPED, "the run stopped")
        return self.rec.take_history()

    # -- waiting -----------------------------------------------------------------------------
    def _next(self, wait: _Wait, what: str, *, closed_ok: bool = False) -> Answer | _Eof:
        remaining = wait.deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise Empty
            event: Answer | _Eof = self._inbox.get(timeout=remaining)
        except Empty:
            raise AnswerTimeout(f"no {what} within {wait.bound:g} s") from None
        if event is _EOF and not closed_ok:
            raise ChatError(f"the server closed the connection (waiting for {what})")
        return event

    def _expect(self, wait: _Wait, kinds: type | tuple[type, ...], what: str) -> Any:
        """The next answer of ``kinds``; ERR and BYE fail the request; stale answers are passed over."""
        while True:
            event = self._next(wait, what)
            if isinstance(event, kinds):
                return event
            if isinstance(event, protocol.Err):
                raise ChatError(_err_text(event))
            if isinstance(event, protocol.Bye):
                raise ChatError(f"BYE {event.text}".rstrip() + f" (waiting for {what})")
            if isinstance(event, protocol.RemoteProtocolError):
                raise ChatError(f"protocol error: {event}")

    # -- the wire ------------------------------------------------------------------------------
    def _open(self, bound: float) -> None:
        asked = time.time()
        try:
            sock = socket.create_connection(self.address, timeout=bound)
        except OSError as exc:
            raise ChatError(f"cannot connect to {self.address}: {exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        self.sock = sock
        self.rec.connected(time.time(), asked)
        if self.on_open is not None:
            self.on_open(self)
        self._reader = gevent.spawn(self._read_loop, sock)

    def _send(self, text: str, due: float | None = None) -> None:
        """Write one line. Recorded just *before* the write: a lower bound on when the server saw it."""
        if self.sock is None or not self.is_open:
            raise ChatError("the connection is closed")
        data = protocol.encode_client_line(text)
        self.rec.sent(time.time(), text, due)
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ChatError(f"send failed: {exc}") from None

    def _read_loop(self, sock: socket.socket) -> None:
        """The reader greenlet: hand each read to the recording connection, queue its answers."""
        while True:
            try:
                data = sock.recv(READ_SIZE)
            except OSError as exc:
                self.rec.lost(time.time(), str(exc))  # recorded only if we did not close it ourselves
                self._inbox.put(_EOF)
                return
            t = time.time()
            if not data:
                self.rec.lost(t)
                self._inbox.put(_EOF)
                return
            for answer in self.rec.receive(t, data):
                self._inbox.put(answer)


def _err_text(err: protocol.Err) -> str:
    return f"ERR {err.code.value} {err.text}".rstrip()
