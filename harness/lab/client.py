"""A blocking client a notebook drives line by line, and the name race: connections that send one name
at the same instant.

Blocking and single-threaded on purpose (the lesson is the server's threads, not the client's); every
line goes through :mod:`chat.protocol` both ways, and every wait has a timeout.
"""

from __future__ import annotations

import socket
import threading
import time

from chat import protocol
from harness.common.address import parse_endpoint

#: Seconds a notebook client waits for any one line.
LINE_TIMEOUT = 10.0


class LabClient:
    """One connection to a chat server (``HOST:PORT``) that a notebook drives line by line."""

    def __init__(self, address: str, *, timeout: float = LINE_TIMEOUT) -> None:
        self.sock = socket.create_connection(parse_endpoint(address), timeout=timeout)
        self.timeout = timeout
        self._buffer = protocol.LineBuffer()
        self._lines: list[str] = []

    def send(self, text: str) -> None:
        self.sock.sendall(protocol.encode_client_line(text))

    def read_line(self, timeout: float | None = None) -> str | None:
        """The next line from the server, or None when it closed the connection."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self._lines:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no line from the server within the timeout")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                return None
            for raw in self._buffer.feed(data):
                if isinstance(raw, bytes):
                    self._lines.append(raw.decode(protocol.ENCODING, "replace"))
        return self._lines.pop(0)

    def read_event(self, timeout: float | None = None) -> protocol.ServerEvent | None:
        """The next line, parsed by :func:`chat.protocol.parse_server_line`; None on close."""
        line = self.read_line(timeout)
        return None if line is None else protocol.parse_server_line(line)

    def join(self, name: str) -> protocol.ServerEvent | None:
        """Read the greeting, send ``name``, return the answer (``Ok`` or ``Err``)."""
        self.read_event()  # HELLO
        self.send(name)
        return self.read_event()

    def close(self) -> None:
        """Leave politely when possible, then close the socket."""
        try:
            self.send("/quit")
        except OSError:
            pass  # already closed by the server: nothing to say goodbye to
        self.sock.close()

    def __enter__(self) -> LabClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def race_for_name(address: str, name: str, contenders: int = 8, timeout: float = LINE_TIMEOUT) -> list[str]:
    """``contenders`` connections, each in its own thread, send ``name`` at the same instant.

    Each thread connects and reads HELLO, then all wait on one barrier and send
    the name together; the answers are returned in thread order (``OK name``
    or ``ERR name-taken``). A correct server answers OK exactly once. The
    server needs ``--max-clients`` of at least ``contenders``. Every
    connection stays open until all have been answered (so the winner still
    holds the name), then quits.
    """
    barrier = threading.Barrier(contenders, timeout=timeout)
    answered = threading.Barrier(contenders, timeout=timeout)
    answers: list[str] = ["no answer"] * contenders

    def contend(i: int) -> None:
        client: LabClient | None = None
        try:
            client = LabClient(address, timeout=timeout)
            greeting = client.read_event()
            if not isinstance(greeting, protocol.Hello):
                answers[i] = f"refused: {greeting!r}"  # e.g. ERR full: raise --max-clients
                raise ConnectionRefusedError(answers[i])
            barrier.wait()
            client.send(name)
            reply = client.read_event()
            if isinstance(reply, protocol.Ok):
                answers[i] = f"OK {reply.name}"
            elif isinstance(reply, protocol.Err):
                answers[i] = f"ERR {reply.code.value}"
            else:
                answers[i] = repr(reply)
        except (OSError, threading.BrokenBarrierError, protocol.ProtocolError) as exc:
            if answers[i] == "no answer":
                answers[i] = f"error: {type(exc).__name__} {exc}".strip()
            barrier.abort()
        finally:
            try:
                answered.wait()
            except threading.BrokenBarrierError:
                pass  # another contender failed: no need to hold the name any longer
            if client is not None:
                client.close()

    threads = [threading.Thread(target=contend, args=(i,), name=f"contender-{i}") for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(3 * timeout)
    return answers
