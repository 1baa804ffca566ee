"""Locust support for the chat protocol: a ``ChatClient`` and an abstract ``ChatUser``.

Three layers, as locust's own custom-client guide suggests: :class:`ChatClient`
wraps one connection and times each action as a locust request;
:class:`ChatUser` (abstract) connects in ``on_start`` and quits in ``on_stop``;
the locustfiles beside this module hold only concrete users and their tasks.

Locust runs users as gevent greenlets and patches the socket module, so this
module uses plain blocking sockets (cooperative under gevent) and starts no OS
threads: the reader is a greenlet. It parses every line through
:mod:`chat.protocol`, the project's one protocol implementation, and every
message carries the swarm bots' payload (``b=<user> n=<counter> t=<time>``)
so that latency is measured from the send to the echo at the sender.

``--host`` takes ``chat://HOST:PORT`` (or ``HOST:PORT``); the default is
``chat://localhost:9999``.
"""

from __future__ import annotations

import importlib
import itertools
import os
import socket
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent.event import AsyncResult
from locust import User
from locust.exception import StopUser


def _import_chat_package() -> None:
    """Make ``import chat`` mean the project's package, not ``locustfiles/chat.py``.

    locust imports a locustfile under its file's stem and puts its folder first
    on ``sys.path``, so while ``locustfiles/chat.py`` runs, ``sys.modules["chat"]``
    is that file and ``import chat`` would find it again. Import the real
    package with the locustfiles folder out of the way; locust keeps its own
    reference to the locustfile module, so nothing is lost.
    """
    current = sys.modules.get("chat")
    if current is not None and hasattr(current, "__path__"):
        return  # already the package
    here = os.path.dirname(os.path.abspath(__file__))
    saved_path = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    sys.path.insert(0, os.path.dirname(here))  # the repository root, for a checkout
    sys.modules.pop("chat", None)
    try:
        importlib.import_module("chat.protocol")
    finally:
        sys.path[:] = saved_path


_import_chat_package()

from chat import protocol  # noqa: E402  (after the import fix above)
from harness.history import decode_payload, encode_payload  # noqa: E402

DEFAULT_HOST = "chat://localhost:9999"
#: Longest wait for any answer from the server. A server that takes longer is
#: reported as a failure of that request, never waited for without bound.
ANSWER_TIMEOUT = 5.0
#: The longest a stopping user waits for BYE, so that a stop takes seconds.
QUIT_TIMEOUT = 2.0

_user_ids = itertools.count(1)


def parse_host(host: str | None) -> tuple[str, int]:
    """``chat://HOST:PORT`` or ``HOST:PORT`` -> (host, port); raises ValueError."""
    text = host or DEFAULT_HOST
    if "://" not in text:
        text = "chat://" + text
    parts = urlsplit(text)
    if parts.scheme != "chat" or not parts.hostname:
        raise ValueError(f"host must look like chat://HOST:PORT, got {host!r}")
    return parts.hostname, parts.port or 9999


class ChatClient:
    """One connection to a chat server, each action timed as a locust request."""

    def __init__(self, environment: Any, host: str, port: int) -> None:
        self.environment = environment
        self.host = host
        self.port = port
        self.sock: socket.socket | None = None
        self.name = ""
        self.bot = f"L{os.getpid()}-{next(_user_ids)}"
        self.counter = 0
        self._buffer = protocol.LineBuffer(max_line=1 << 20)
        self._reader: gevent.Greenlet | None = None
        self._echo: dict[int, AsyncResult] = {}
        self._answer: AsyncResult | None = None  # the pending handshake, /who or /quit
        self.is_closed = False

    # -- timing -------------------------------------------------------------------
    def _fire(self, name: str, started: float, length: int = 0, exc: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="chat",
            name=name,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=length,
            exception=exc,
            context={"user": self.name},
        )

    # -- actions ------------------------------------------------------------------
    def connect(self, name: str) -> None:
        """Connect and take ``name`` (with a numeric suffix if it is taken)."""
        started = time.perf_counter()
        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=ANSWER_TIMEOUT)
            self.sock.settimeout(None)
            self._answer = AsyncResult()
            self._reader = gevent.spawn(self._read_loop)
            first = self._answer.get(timeout=ANSWER_TIMEOUT)
            if isinstance(first, protocol.Err):
                raise ConnectionError(f"server refused: {first.code.value} {first.text}")
            for attempt in range(5):
                candidate = name if attempt == 0 else f"{name[:16]}-{attempt}"
                self._answer = AsyncResult()
                self._send(candidate)
                answer = self._answer.get(timeout=ANSWER_TIMEOUT)
                if isinstance(answer, protocol.Ok):
                    self.name = answer.name
                    break
            else:
                raise ConnectionError(f"no free name near {name!r}")
        except Exception as exc:
            self._fire("join", started, exc=exc)
            self.close()
            raise StopUser() from exc
        self._fire("join", started)

    def say(self, padding: int = 0) -> None:
        """Send one message and time it until its echo comes back to us."""
        self.counter += 1
        n = self.counter
        started = time.perf_counter()
        waiter = self._echo[n] = AsyncResult()
        text = encode_payload(self.bot, n, time.time(), pad=padding)
        try:
            self._send(text)
            waiter.get(timeout=ANSWER_TIMEOUT)
        except Exception as exc:
            self._fire("message", started, exc=exc)
        else:
            self._fire("message", started, length=len(text))
        finally:
            self._echo.pop(n, None)

    def who(self) -> None:
        started = time.perf_counter()
        self._answer = AsyncResult()
        try:
            self._send("/who")
            users = self._answer.get(timeout=ANSWER_TIMEOUT)
            if not isinstance(users, protocol.Users) or self.name not in users.names:
                raise AssertionError(f"/who answered {users!r}, without us ({self.name})")
        except Exception as exc:
            self._fire("/who", started, exc=exc)
        else:
            self._fire("/who", started)

    def quit(self) -> None:
        """Leave with ``/quit``, wait (boundedly) for BYE, close."""
        if self.sock is None or self.is_closed:
            return
        started = time.perf_counter()
        self._answer = AsyncResult()
        try:
            self._send("/quit")
            self._answer.get(timeout=QUIT_TIMEOUT)
        except Exception as exc:
            self._fire("quit", started, exc=exc)
        else:
            self._fire("quit", started)
        finally:
            self.close()

    def close(self) -> None:
        self.is_closed = True
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass  # already closed: nothing left to release
        if self._reader is not None and self._reader is not gevent.getcurrent():
            self._reader.kill(block=False)

    # -- wire -----------------------------------------------------------------------
    def _send(self, text: str) -> None:
        assert self.sock is not None
        self.sock.sendall(protocol.encode_client_line(text))

    def _read_loop(self) -> None:
        """The reader greenlet: route each server line to whoever waits for it."""
        assert self.sock is not None
        while not self.is_closed:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                if self._answer is not None and not self._answer.ready():
                    self._answer.set_exception(ConnectionError("connection closed by the server"))
                return
            for raw in self._buffer.feed(data):
                if isinstance(raw, bytes):
                    self._route(raw.decode("utf-8", "replace"))

    def _route(self, line: str) -> None:
        try:
            event = protocol.parse_server_line(line)
        except protocol.RemoteProtocolError:
            return
        if isinstance(event, protocol.Msg):
            if event.name == self.name:
                payload = decode_payload(event.text)
                if payload is not None and payload.bot == self.bot:
                    waiter = self._echo.get(payload.n)
                    if waiter is not None:
                        waiter.set(event)
            return
        if isinstance(event, (protocol.Join, protocol.Leave)):
            return
        answer = self._answer
        if isinstance(event, protocol.Err) and event.code is protocol.ErrorCode.UNKNOWN_COMMAND:
            return
        if answer is not None and not answer.ready():
            answer.set(event)


class ChatUser(User):
    """Abstract: a user with a connected :class:`ChatClient` as ``self.client``."""

    abstract = True
    #: Name prefix; each user gets a unique name from it.
    name_prefix = "locust"

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        try:
            host, port = parse_host(self.host)
        except ValueError as exc:
            raise StopUser() from exc
        self.client = ChatClient(environment, host, port)

    def on_start(self) -> None:
        self.client.connect(f"{self.name_prefix}{next(_user_ids)}")

    def on_stop(self) -> None:
        self.client.quit()
