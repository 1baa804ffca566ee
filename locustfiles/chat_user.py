"""Locust support for the chat protocol: a ``ChatClient`` and the abstract ``ChatUser``, ``SteadyChatUser``.

Not a locustfile of its own (it has no concrete user). Three layers, as
locust's custom-client guide suggests: :class:`ChatClient` wraps one
connection and times each action as a locust request; :class:`ChatUser`
(abstract) gives a user its identity, its connections and its options; the
locustfiles beside this module hold only the concrete users and their tasks.

Requests have the type ``CHAT`` and four names:

``join``     connect, wait for HELLO, offer the name, until ``OK`` and the own ``JOIN``;
``message``  send one message, until it comes back to its sender;
``who``      send ``/who``, until ``USERS`` (which must list the user);
``leave``    send ``/quit`` until ``BYE`` and the close, or (churn) close abruptly.

An ``ERR``, a ``BYE`` that was not asked for, a closed connection, a line that
is not the protocol or no answer within the bound is a failure whose message
says which. (A racer's refused contested name is the one expected ``ERR``:
the racer then takes its own name, see name_race.py.)

Locust runs users as gevent greenlets and patches the socket module: this
module uses plain blocking sockets (cooperative under gevent), starts no OS
thread, and reads each connection in a reader greenlet, which records every
line with its time and hands the lines a waiting action needs (``HELLO``,
``OK``, ``ERR``, ``BYE``, ``USERS``, the own ``JOIN``, the own messages) to it
through a queue. Every line is parsed by :mod:`chat.protocol`, and every
message carries the swarm bots' payload (``b=<user> n=<counter> t=<time>``),
so the harness checker judges a locust run like a swarm run (chat_check.py).
"""

from __future__ import annotations

import itertools
import logging
import random
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import chat_package  # noqa: F401  (import chat's package before anything imports chat.protocol)
import gevent
from chat_check import RECORDER
from chat_options import ChatOptions, add_common_options, options_of, parse_host, problems
from gevent.queue import Empty, Queue
from locust import User, events, task

from chat import protocol
from harness.record.history import (
    ClientHistory,
    Closed,
    Connected,
    Event,
    Received,
    Sent,
)
from harness.record.payload import decode_payload, encode_payload

log = logging.getLogger("chat_user")

REQUEST_TYPE = "CHAT"
#: Seconds a stopping user waits for ``BYE`` after ``/quit``: users stop within a few seconds of a stop.
QUIT_WAIT = 3.0
#: Bytes read per ``recv``.
READ_SIZE = 65536
#: Longest server line kept; a longer one is recorded as a marker (the checker then flags it).
READ_MAX_LINE = 1 << 20
#: Names are ``L<process token>-<user>[-<stint>]``: unique across processes and connections,
#: and at most 19 characters (the protocol allows 20).
NAME_PREFIX = "L"
#: Six hex digits per process, so that several workers (on several machines) never share a name.
PROCESS_TOKEN = secrets.token_hex(3)

_user_numbers = itertools.count(1)


class ChatError(Exception):
    """A request failed: the server refused, closed, broke the protocol or did not answer in time."""


class AnswerTimeout(ChatError):
    """No answer within the bound."""


class _Eof:
    """Put in the queue when the server closes the connection."""


_EOF = _Eof()


class _Wait:
    """A request's deadline (monotonic) and the bound it came from (for the failure message)."""

    def __init__(self, bound: float) -> None:
        self.bound = bound
        self.deadline = time.monotonic() + bound


class ChatClient:
    """One connection: each action is a timed locust request, and every line is recorded with its time."""

    def __init__(
        self,
        environment: Any,
        address: tuple[str, int],
        history: ClientHistory,
        options: ChatOptions,
    ) -> None:
        self.environment = environment
        self.address = address
        self.history = history
        self.options = options
        self.sock: socket.socket | None = None
        #: The name as the server spelled it in ``OK`` (None before).
        self.name: str | None = None
        self.is_member = False
        self.is_open = False
        #: The log while the connection runs: events, except that the lines of
        #: one read are kept as one ``(t, lines)`` tuple until :meth:`finish`.
        self._log: list[Event | tuple[float, list[str]]] = []
        self._record = options.check
        self._buffer = protocol.LineBuffer(max_line=READ_MAX_LINE)
        self._inbox: Queue[Any] = Queue()
        self._reader: gevent.Greenlet | None = None
        self._awaiting_join = False
        self._quitting = False
        self._closed_recorded = False

    # -- requests ------------------------------------------------------------------------
    def _fire(self, name: str, started: float, length: int = 0, exc: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE,
            name=name,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=length,
            exception=exc,
            context={"user": self.name or self.history.client},
        )

    def join(self, names: Sequence[str]) -> bool:
        """Connect and join, offering ``names`` in turn: each but the last may be refused as taken.

        One ``join`` request, from the connect to the own ``JOIN``.
        """
        started = time.perf_counter()
        wait = _Wait(self.options.handshake_bound)
        try:
            self._open(wait.bound)
            self._expect(wait, protocol.Hello, "HELLO")
            for i, name in enumerate(names):
                self._awaiting_join = True
                self._send(name)
                answer = self._expect(wait, (protocol.Ok, protocol.Err), f"answer to the name {name}")
                if isinstance(answer, protocol.Ok):
                    break
                assert isinstance(answer, protocol.Err)
                if answer.code is not protocol.ErrorCode.NAME_TAKEN or i == len(names) - 1:
                    raise ChatError(_err_text(answer))
            self._expect(wait, protocol.Join, "JOIN of this user")
        except ChatError as exc:
            self._fire("join", started, exc=exc)
            self.close("timeout" if isinstance(exc, AnswerTimeout) else "drop", str(exc))
            return False
        self._fire("join", started)
        return True

    def say(self, n: int) -> None:
        """Send message ``n`` of this user and time it until its echo comes back."""
        started = time.perf_counter()
        wait = _Wait(self.options.delivery_bound)
        t = time.time()
        text = encode_payload(self.history.bot, n, t)
        try:
            self._send(text, due=t)
            while True:
                echo = self._expect(wait, protocol.Msg, "echo of the message")
                payload = decode_payload(echo.text)
                if payload is not None and payload.n == n:
                    break  # an older echo (of a message that timed out) is passed over
        except ChatError as exc:
            self._fire("message", started, exc=exc)
        else:
            self._fire("message", started, length=len(text))

    def who(self) -> None:
        """Ask ``/who``; the answer must list this user."""
        started = time.perf_counter()
        wait = _Wait(self.options.delivery_bound)
        try:
            self._send("/who")
            users = self._expect(wait, protocol.Users, "USERS")
            if self.name is not None and protocol.name_key(self.name) not in map(
                protocol.name_key, users.names
            ):
                raise ChatError(f"USERS without this user ({self.name}): {' '.join(users.names)[:200]}")
        except ChatError as exc:
            self._fire("who", started, exc=exc)
        else:
            self._fire("who", started)

    def quit(self) -> None:
        """Leave with ``/quit``: wait (at most :data:`QUIT_WAIT`) for ``BYE`` and the close."""
        if not self.is_open:
            return
        started = time.perf_counter()
        wait = _Wait(QUIT_WAIT)
        try:
            self._quitting = True
            self._send("/quit")
            what = "BYE"
            while True:
                event = self._next(wait, what, closed_ok=True)
                if event is _EOF:
                    break  # the server closed the connection (after BYE, recorded by the reader)
                if isinstance(event, protocol.Bye):
                    what = "close after BYE"
        except AnswerTimeout as exc:
            self._fire("leave", started, exc=exc)
            self.close("stopped", str(exc))
        except ChatError as exc:
            self._fire("leave", started, exc=exc)
            self.close("error", str(exc))
        else:
            self._fire("leave", started)
            self.close("quit")

    def drop(self) -> None:
        """Leave abruptly: close the connection without a word (churn)."""
        if not self.is_open:
            return
        started = time.perf_counter()
        self.close("drop")
        self._fire("leave", started)

    def close(self, how: str, detail: str = "") -> None:
        """End the connection (idempotent), recording how unless the end is already recorded."""
        self._record_closed(how, detail)
        self.is_open = False
        self.is_member = False
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
            self.close("stopped", "the run stopped")
        events_: list[Event] = []
        for item in self._log:
            if type(item) is tuple:
                t_read, lines = item
                events_.extend(Received(t_read, line) for line in lines)
            else:
                events_.append(item)  # type: ignore[arg-type]
        self._log = []
        self.history.events = events_
        return self.history

    # -- waiting -----------------------------------------------------------------------------
    def _next(self, wait: _Wait, what: str, *, closed_ok: bool = False) -> Any:
        remaining = wait.deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise Empty
            event = self._inbox.get(timeout=remaining)
        except Empty:
            raise AnswerTimeout(f"no {what} within {wait.bound:g} s") from None
        if event is _EOF and not closed_ok:
            raise ChatError(f"the server closed the connection (waiting for {what})")
        return event

    def _expect(self, wait: _Wait, kinds: type | tuple[type, ...], what: str) -> Any:
        """The next event of ``kinds``; ERR and BYE fail the request; stale answers are passed over."""
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
            host, port = self.address
            raise ChatError(f"cannot connect to {host}:{port}: {exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        self.sock = sock
        self.is_open = True
        if self._record:
            self._log.append(Connected(time.time(), asked))
            RECORDER.add(self)
        self._reader = gevent.spawn(self._read_loop, sock)

    def _send(self, text: str, due: float | None = None) -> None:
        """Write one line. Recorded just *before* the write: a lower bound on when the server saw it."""
        if self.sock is None or not self.is_open:
            raise ChatError("the connection is closed")
        data = protocol.encode_client_line(text)
        if self._record:
            self._log.append(Sent(time.time(), text, due))
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ChatError(f"send failed: {exc}") from None

    def _record_closed(self, how: str, detail: str) -> None:
        if not self._closed_recorded:
            self._closed_recorded = True
            if self._record:
                self._log.append(Closed(time.time(), how, detail))

    def _read_loop(self, sock: socket.socket) -> None:
        """The reader greenlet: record each line with its time, route what an action waits for."""
        while True:
            try:
                data = sock.recv(READ_SIZE)
            except OSError as exc:
                if self.is_open:  # not closed by us
                    self._record_closed("error", str(exc))
                    self.is_open = False
                self._inbox.put(_EOF)
                return
            t = time.time()
            if not data:
                if self.is_open:
                    self._record_closed("quit" if self._quitting else "eof", "")
                    self.is_open = False
                self._inbox.put(_EOF)
                return
            lines = [
                raw.decode("utf-8", "replace")
                if isinstance(raw, bytes)
                else f"<line longer than {READ_MAX_LINE} bytes>"
                for raw in self._buffer.feed(data)
            ]
            if not lines:
                continue
            if self._record:
                self._log.append((t, lines))
            for line in lines:
                self._route(line)

    def _route(self, line: str) -> None:
        """Hand an action what it may wait for; broadcasts of others are only recorded."""
        head = line[:4]
        if head == "MSG ":
            if self.name is None or f" {self.name} b={self.history.bot} " not in line:
                return  # another user's message (the cheap test first; parsed below)
        elif head == "JOIN":
            if not self._awaiting_join:
                return
        elif head == "LEAV":
            return
        try:
            event = protocol.parse_server_line(line)
        except protocol.RemoteProtocolError as exc:
            self._inbox.put(exc)
            return
        if isinstance(event, protocol.Msg):
            payload = decode_payload(event.text)
            if event.name != self.name or payload is None or payload.bot != self.history.bot:
                return
        elif isinstance(event, protocol.Join):
            if self.name is None or protocol.name_key(event.name) != protocol.name_key(self.name):
                return
            self._awaiting_join = False
            self.is_member = True
        elif isinstance(event, protocol.Ok):
            self.name = event.name  # before the own JOIN, which may come in the same read
        self._inbox.put(event)


def _err_text(err: protocol.Err) -> str:
    return f"ERR {err.code.value} {err.text}".rstrip()


class ChatUser(User):
    """Abstract: a chat user, with its identity, its current connection and its options.

    Each user is one *bot* in the checker's terms: its id ``<process token>-<n>``
    is carried in every message it sends, its message counter goes on across
    its connections, and each connection is one client history (``<bot>``,
    then ``<bot>.2``, ...). Concrete users (in the locustfiles) give the tasks;
    :meth:`task_weights` lets them take the weights from the options.
    """

    abstract = True
    #: The checker's role for this user's histories (``chat``, ``churn``, ``racer``).
    role = "chat"

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.options = options_of(environment.parsed_options)
        self.bot = f"{PROCESS_TOKEN}-{next(_user_numbers)}"
        self.stint = 0
        self.n = 0
        self.client: ChatClient | None = None
        weights = self.task_weights()
        if weights is not None:
            self.tasks = [fn for fn, w in weights.items() for _ in range(max(0, w))]

    def task_weights(self) -> dict[Callable[..., Any], int] | None:
        """Weights of this user's tasks from the options; None keeps the class's ``@task`` weights."""
        return None

    def wait_time(self) -> float:
        return random.uniform(self.options.wait_min, self.options.wait_max)

    @property
    def is_member(self) -> bool:
        """The current connection is open and the server announced this user's JOIN on it."""
        return self.client is not None and self.client.is_open and self.client.is_member

    def own_name(self) -> str:
        """This user's name on its current connection: unique per process, user and stint."""
        suffix = f"-{self.stint}" if self.stint > 1 else ""
        return f"{NAME_PREFIX}{self.bot}{suffix}"

    def join(self, names: Sequence[str] = ()) -> bool:
        """Open a new connection and join (``names`` first, then the own name); a ``join`` request."""
        self.stint += 1
        started = time.perf_counter()
        try:
            address = parse_host(self.host)
        except ValueError as exc:
            self.environment.events.request.fire(
                request_type=REQUEST_TYPE,
                name="join",
                response_time=(time.perf_counter() - started) * 1000.0,
                response_length=0,
                exception=exc,
                context={},
            )
            return False
        client_id = self.bot if self.stint == 1 else f"{self.bot}.{self.stint}"
        history = ClientHistory(client_id, self.bot, self.role)
        self.client = ChatClient(self.environment, address, history, self.options)
        return self.client.join([*names, self.own_name()])

    def ensure_member(self) -> bool:
        """Joined, or join now (a user whose connection ended joins again on its next task)."""
        if self.is_member:
            return True
        if self.client is not None and self.client.is_open:
            self.client.close("drop", "not a member")
        return self.join()

    def say(self) -> None:
        """Send the next message (a ``message`` request)."""
        if self.ensure_member():
            assert self.client is not None
            n, self.n = self.n, self.n + 1
            self.client.say(n)

    def ask_who(self) -> None:
        if self.ensure_member():
            assert self.client is not None
            self.client.who()

    def leave(self, *, abruptly: bool = False) -> None:
        """Leave by ``/quit``, or by an abrupt close (a ``leave`` request)."""
        if self.client is not None and self.client.is_open:
            if abruptly:
                self.client.drop()
            else:
                self.client.quit()

    def rejoin(self) -> None:
        """Leave by ``/quit``, then join again on a new connection under a new name."""
        self.leave()
        self.join()

    def on_start(self) -> None:
        self.join()

    def on_stop(self) -> None:
        self.leave()


class SteadyChatUser(ChatUser):
    """Abstract: a person chatting: messages, ``/who`` now and then, and (if weighted) rejoins.

    The weights come from ``--chat-message-weight``, ``--chat-who-weight`` and
    ``--chat-rejoin-weight``; the ``@task`` weights below are their defaults.
    """

    abstract = True

    def task_weights(self) -> dict[Callable[..., Any], int] | None:
        o = self.options
        return {
            SteadyChatUser.message: o.message_weight,
            SteadyChatUser.who: o.who_weight,
            SteadyChatUser.rejoin_task: o.rejoin_weight,
        }

    @task(10)
    def message(self) -> None:
        self.say()

    @task(1)
    def who(self) -> None:
        self.ask_who()

    def rejoin_task(self) -> None:
        self.rejoin()


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    add_common_options(parser)


@events.init.add_listener
def _check_options(environment: Any, **_: Any) -> None:
    """Bad options or host: one clear line and exit code 2, before any user starts."""
    found = problems(options_of(environment.parsed_options), environment.host)
    if found:
        log.error("error: %s", found[0])
        raise SystemExit(2)
