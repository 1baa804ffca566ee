"""A scripted client for grading: one connection, every read bounded, every surprise a :class:`Broken`.

The grader's own levels (handshake, broadcast, limits, shutdown, slow-consumer)
drive a few of these by hand. Lines are parsed by :mod:`chat.protocol`, the one
place that knows the wire format; what a level expects and did not get becomes
a :class:`Broken` promise whose text is the witness a student reads.
"""

from __future__ import annotations

import socket
import time

from chat import protocol
from chat.protocol import ServerEvent

#: Seconds any one expected line may take: generous for a student's server on a loaded machine.
LINE_TIMEOUT = 5.0
#: Longest line the probe accepts from a server; the protocol's default limit, with room to spare.
MAX_LINE = 2 * protocol.DEFAULT_MAX_LINE


class Broken(Exception):
    """A broken promise: ``witness`` in plain words; ``hint`` and ``lesson`` when the cause is known."""

    def __init__(self, witness: str, hint: str = "", lesson: str = "") -> None:
        super().__init__(witness)
        self.witness = witness
        self.hint = hint
        self.lesson = lesson


def shown(line: str, limit: int = 100) -> str:
    """A received line as a witness quotes it: repr, cut to ``limit`` characters."""
    return repr(line if len(line) <= limit else line[:limit] + "...")


class Probe:
    """One connection to the server under test, named for the witnesses (``alice``, ``bot b07``)."""

    def __init__(self, host: str, port: int, label: str, *, rcvbuf: int | None = None) -> None:
        self.label = label
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(LINE_TIMEOUT)
        try:
            self.sock.connect((host, port))
        except OSError as exc:
            self.sock.close()
            raise Broken(f"{label} could not connect to {host}:{port}: {exc}") from None
        self._splitter = protocol.LineSplitter(MAX_LINE)
        self._lines: list[str] = []
        self.closed = False

    # -- sending --------------------------------------------------------------
    def send(self, text: str) -> None:
        self.send_raw(text.encode() + b"\n")

    def send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise Broken(f"{self.label} could not send: {exc}") from None

    # -- reading --------------------------------------------------------------
    def line(self, timeout: float = LINE_TIMEOUT, waiting_for: str = "a line") -> str | None:
        """The next line, or None once the server closed the connection."""
        deadline = time.monotonic() + timeout
        while not self._lines:
            if self.closed:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Broken(f"{self.label} waited {timeout:.2g} s for {waiting_for} and got nothing")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                self.closed = True
                continue
            self._lines.extend(self._splitter.feed(data))
        return self._lines.pop(0)

    def event(self, timeout: float = LINE_TIMEOUT, waiting_for: str = "a line") -> ServerEvent:
        """The next line as an event; a close or a line no event fits is a :class:`Broken`."""
        text = self.line(timeout, waiting_for)
        if text is None:
            raise Broken(f"{self.label} was disconnected while it waited for {waiting_for}")
        try:
            return protocol.parse_server_line(text)
        except protocol.ProtocolError:
            what = f"{self.label} received {shown(text)}, which is not a line of the protocol"
            raise Broken(what) from None

    def expect(self, kind: type, waiting_for: str, timeout: float = LINE_TIMEOUT) -> ServerEvent:
        """The next line, which must be a ``kind`` event (``protocol.Ok``, ``protocol.Msg``, ...)."""
        event = self.event(timeout, waiting_for)
        if not isinstance(event, kind):
            line = shown(protocol.server_line(event))
            raise Broken(f"{self.label} waited for {waiting_for} and received {line}")
        return event

    def until(self, kind: type, waiting_for: str, timeout: float = LINE_TIMEOUT) -> ServerEvent:
        """Skip lines until a ``kind`` event (for lines whose order is not the point)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.event(max(0.01, deadline - time.monotonic()), waiting_for)
            if isinstance(event, kind):
                return event

    def is_closed(self, timeout: float = LINE_TIMEOUT) -> bool:
        """True once the server closes this connection (lines before the close are skipped)."""
        deadline = time.monotonic() + timeout
        try:
            while self.line(max(0.01, deadline - time.monotonic()), "the connection to close") is not None:
                pass
        except Broken:
            return False
        return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def join(host: str, port: int, name: str, **kwargs: object) -> Probe:
    """A probe that has joined as ``name`` (HELLO read, OK read; its own JOIN left unread)."""
    probe = Probe(host, port, name, **kwargs)  # type: ignore[arg-type]
    try:
        probe.expect(protocol.Hello, "HELLO")
        probe.send(name)
        ok = probe.expect(protocol.Ok, f"OK {name}")
        assert isinstance(ok, protocol.Ok)
        if ok.name != name:
            raise Broken(f"{name} sent the name {name} and received 'OK {ok.name}'")
    except BaseException:
        probe.close()
        raise
    return probe
