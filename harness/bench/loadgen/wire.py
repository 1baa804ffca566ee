"""What the load generator says on the wire, per protocol: our chat protocol, IRC, and Redis pub/sub (RESP).

Not a client library: only the few lines the generator needs to join a room (or channel, or
subscription), to send one message template millions of times, to mark the start of a run, and to find
the payload again in the received bytes. Everything else (counting, pacing, order checks) is the same for
every protocol and lives in :mod:`harness.bench.loadgen.worker`.

The same run against each server (docs/performance.md, "Peers"):

============  =========================  ==========================  ================================
protocol      a member                   a publisher sends           one message reaches
============  =========================  ==========================  ================================
``chat``      ``HELLO``, name, ``OK``    ``<text>\\n``                every member, the sender included
``irc``       NICK, USER, 001, JOIN,     ``PRIVMSG #chat :<text>``   every member but the sender (no
              366                                                    echo): N - 1 deliveries
``resp``      ``SUBSCRIBE chat``         ``PUBLISH chat <text>`` on  every member, the sender's own
                                         a connection of its own     subscription included
============  =========================  ==========================  ================================

A Redis client that has subscribed may not publish (RESP2), so each publisher there has a second
connection that only publishes; its replies (the receiver counts) are read and discarded.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Sequence
from typing import Literal, NamedTuple

from chat import protocol
from harness.common import irc
from harness.record.payload import PAYLOAD_BYTES_PATTERN, due_text, payload_template

Protocol = Literal["chat", "irc", "resp"]
PROTOCOLS: tuple[Protocol, ...] = ("chat", "irc", "resp")

#: What publisher ``p0`` sends to open the counted part of the run (the ``GO`` phase).
MARKER_TEXT = "bench-start"
#: The IRC channel and the Redis channel every member joins.
IRC_CHANNEL = "#chat"
RESP_CHANNEL = b"chat"
#: The user name of every IRC member (:data:`harness.common.irc.USER_NAME`).
IRC_USER = irc.USER_NAME


class WireError(Exception):
    """The server refused or ended a member's join; the message says who and why."""


class Opened(NamedTuple):
    """A member whose join is complete: its socket, and the bytes that followed its join reply."""

    name: str
    sock: socket.socket
    rest: bytes


def connect(host: str, port: int, name: str, timeout: float) -> socket.socket:
    """A TCP connection with Nagle off (every protocol here sends whole lines that should leave at once)."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise WireError(f"{name}: cannot connect to {host}:{port}: {exc}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _recv(sock: socket.socket, name: str, what: str, deadline: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise WireError(f"{name}: no {what} within the connect timeout")
    sock.settimeout(remaining)
    try:
        chunk = sock.recv(65536)
    except TimeoutError:
        raise WireError(f"{name}: no {what} within the connect timeout") from None
    if not chunk:
        raise WireError(f"{name}: the server closed the connection during the join")
    return chunk


class Wire:
    """One protocol's lines. Subclasses fill in the class attributes and the methods."""

    name: Protocol
    #: Whether a publisher receives its own messages.
    echo: bool = True
    #: Lines (``\\n``) that one delivered message takes in a member's stream.
    lines_per_message: int = 1
    #: Whether the server leaves Nagle's algorithm on for its clients' sockets (IRC servers do).
    nagle: bool = False
    #: Whether publishers send on a connection of their own (else on their member's connection).
    own_publisher_connection: bool = False
    #: Finds each delivered payload in a block of complete lines; groups (seq, bot, counter, due, event
    #: seq) as :func:`chat.protocol.broadcast_scanner` gives them, with empty seqs where the protocol
    #: numbers nothing.
    scanner: re.Pattern[bytes]

    def __init__(self, token: str) -> None:
        self.token = token

    def join(self, members: Sequence[tuple[str, socket.socket]], deadline: float) -> list[Opened]:
        """Join every member (each socket freshly connected); all of them wait at once."""
        raise NotImplementedError

    def open_publisher(self, host: str, port: int, name: str, timeout: float) -> socket.socket | None:
        """The publisher's own sending connection, when the protocol needs one."""
        return None

    def template(self, bot: str, text_bytes: int) -> bytes:
        """A publisher's message as a %-template, ``template % (counter, due_text(due))``, whose text is
        the payload padded to exactly ``text_bytes`` bytes."""
        raise NotImplementedError

    def start_lines(self) -> bytes:
        """What ``p0`` sends to open the counted part of the run."""
        raise NotImplementedError

    def marker(self, own: bool) -> bytes:
        """The bytes that end the opening in a member's stream (``own``: in ``p0``'s stream)."""
        raise NotImplementedError


def _padded(bot: str, text_bytes: int) -> bytes:
    """The payload template padded so that each formatted text is exactly ``text_bytes`` long."""
    unpadded = len(payload_template(bot) % (0, due_text(time.time())))
    pad = max(0, text_bytes - unpadded - 1)  # the space before the padding counts too
    return payload_template(bot, pad)


class ChatWire(Wire):
    """Our protocol (docs/protocol.md): the marker is ``p0``'s own broadcast, which it receives too."""

    name = "chat"
    scanner = protocol.broadcast_scanner(PAYLOAD_BYTES_PATTERN)

    def join(self, members: Sequence[tuple[str, socket.socket]], deadline: float) -> list[Opened]:
        rests = []
        for name, sock in members:
            rest = self._read_until(sock, name, b"", protocol.Hello, deadline)
            sock.sendall(protocol.encode_client_line(name))
            rests.append(rest)
        return [
            Opened(name, sock, self._read_until(sock, name, rest, protocol.Ok, deadline))
            for (name, sock), rest in zip(members, rests, strict=True)
        ]

    @staticmethod
    def _read_until(
        sock: socket.socket,
        name: str,
        buf: bytes,
        want: type[protocol.Hello | protocol.Ok],
        deadline: float,
    ) -> bytes:
        """Read the handshake's lines until the event ``want``; returns what follows it, unparsed (the
        members' broadcasts that follow are counted, not parsed)."""
        what = f"{want.__name__.upper()} line"
        while True:
            while b"\n" in buf:
                raw, _, buf = buf.partition(b"\n")
                line = raw.rstrip(b"\r").decode(protocol.ENCODING, errors="replace")
                try:
                    event = protocol.parse_server_line(line)
                except protocol.RemoteProtocolError:
                    continue  # not a line of the handshake: e.g. a broadcast that came first
                if isinstance(event, want):
                    return buf
                if isinstance(event, protocol.Err):
                    raise WireError(f"{name}: refused: {line}")
            buf += _recv(sock, name, what, deadline)

    def template(self, bot: str, text_bytes: int) -> bytes:
        return protocol.encode_client_line(_padded(bot, text_bytes).decode())

    def start_lines(self) -> bytes:
        return protocol.encode_client_line(MARKER_TEXT)

    def marker(self, own: bool) -> bytes:
        # The end of the MSG <seq> p0-<token> bench-start line, in every stream alike.
        return f" p0-{self.token} {MARKER_TEXT}\n".encode()


class RespWire(Wire):
    """Redis pub/sub in RESP2: members subscribe to ``chat``; publishers PUBLISH on a second connection."""

    name = "resp"
    own_publisher_connection = True
    #: ``*3``, ``$7``, ``message``, ``$4``, ``chat``, ``$<n>``, then the payload's line.
    lines_per_message = 7
    #: The payload is a line of its own (a bulk string), and nothing else in the stream starts with ``b=``.
    scanner = re.compile(rb"^()" + PAYLOAD_BYTES_PATTERN + rb"()", re.MULTILINE)

    SUBSCRIBED = b"*3\r\n$9\r\nsubscribe\r\n$4\r\nchat\r\n:1\r\n"

    def join(self, members: Sequence[tuple[str, socket.socket]], deadline: float) -> list[Opened]:
        for _, sock in members:
            sock.sendall(command(b"SUBSCRIBE", RESP_CHANNEL))
        opened = []
        for name, sock in members:
            buf = b""
            while self.SUBSCRIBED not in buf:
                if buf.startswith(b"-"):
                    raise WireError(f"{name}: refused: {buf.splitlines()[0].decode(errors='replace')}")
                buf += _recv(sock, name, "subscribe reply", deadline)
            opened.append(Opened(name, sock, buf.split(self.SUBSCRIBED, 1)[1]))
        return opened

    def open_publisher(self, host: str, port: int, name: str, timeout: float) -> socket.socket | None:
        return connect(host, port, name, timeout)

    def template(self, bot: str, text_bytes: int) -> bytes:
        text = _padded(bot, text_bytes)
        length = len(text % (0, due_text(time.time())))  # the counter and the due time have fixed widths
        head = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n" % (len(RESP_CHANNEL), RESP_CHANNEL, length)
        return head.replace(b"%", b"%%") + text + b"\r\n"

    def start_lines(self) -> bytes:
        return command(b"PUBLISH", RESP_CHANNEL, self._marker_text)

    def marker(self, own: bool) -> bytes:
        # p0's subscription receives the message like every other member's.
        return b"\n" + self._marker_text + b"\r\n"

    @property
    def _marker_text(self) -> bytes:
        return f"{MARKER_TEXT}-{self.token}".encode()


class IrcWire(Wire):
    """IRC (ngircd, InspIRCd): members register and join ``#chat``; a sender gets no echo of its own lines.

    No capability is requested, so no server adds tags or echoes. The marker is ``p0``'s PRIVMSG in every
    other stream; in ``p0``'s own it is the answer to the PING sent right after it: the server handled
    the PRIVMSG (queued it to every member) before that PING, so every later line comes after it.
    """

    name = "irc"
    echo = False
    nagle = True
    scanner = re.compile(rb" PRIVMSG \S+ :()" + PAYLOAD_BYTES_PATTERN + rb"()")

    def join(self, members: Sequence[tuple[str, socket.socket]], deadline: float) -> list[Opened]:
        for name, sock in members:
            sock.sendall(
                irc.encode_line(irc.format_line("NICK", name))
                + irc.encode_line(irc.format_line("USER", IRC_USER, "0", "*", name))
            )
        rests = [self._read_until(sock, name, b"", irc.RPL_WELCOME, deadline) for name, sock in members]
        for _, sock in members:
            sock.sendall(irc.encode_line(irc.format_line("JOIN", IRC_CHANNEL)))
        return [
            Opened(name, sock, self._read_until(sock, name, rest, irc.RPL_ENDOFNAMES, deadline))
            for (name, sock), rest in zip(members, rests, strict=True)
        ]

    @staticmethod
    def _read_until(sock: socket.socket, name: str, buf: bytes, numeric: str, deadline: float) -> bytes:
        """Read lines until the reply ``numeric`` to ``name``; returns what follows it, unparsed. Answers
        ``PING``; raises WireError on an ``ERROR`` line or an error numeric (4xx, 5xx) before it."""
        while True:
            while b"\n" in buf:
                raw, _, buf = buf.partition(b"\n")
                line = raw.decode("utf-8", errors="replace")
                try:
                    msg = irc.parse_line(line)
                except irc.IrcError:
                    continue
                pong = irc.pong_for(msg)
                if pong is not None:
                    sock.sendall(irc.encode_line(pong))
                    continue
                if msg.command == "ERROR":
                    raise WireError(f"{name}: refused: {line.strip()}")
                if msg.command == numeric:
                    return buf
                if msg.is_numeric and msg.command[:1] in "45":
                    raise WireError(f"{name}: refused: {line.strip()}")
            buf += _recv(sock, name, f"{numeric} reply", deadline)

    def template(self, bot: str, text_bytes: int) -> bytes:
        return f"PRIVMSG {IRC_CHANNEL} :".encode() + _padded(bot, text_bytes) + b"\r\n"

    def start_lines(self) -> bytes:
        return f"PRIVMSG {IRC_CHANNEL} :{self._marker_text}\r\nPING :{self._marker_text}\r\n".encode()

    def marker(self, own: bool) -> bytes:
        # The end of p0's PRIVMSG as relayed, and of the PONG that answers its PING.
        return f":{self._marker_text}\r\n".encode()

    @property
    def _marker_text(self) -> str:
        return f"{MARKER_TEXT}-{self.token}"


def command(*args: bytes) -> bytes:
    """A Redis command as a RESP array of bulk strings."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def wire_for(protocol_name: Protocol, token: str) -> Wire:
    """The wire of ``protocol_name`` for the run whose names carry ``token``."""
    wires: dict[str, type[Wire]] = {"chat": ChatWire, "irc": IrcWire, "resp": RespWire}
    try:
        return wires[protocol_name](token)
    except KeyError:
        raise ValueError(f"unknown protocol {protocol_name!r}; choose from {', '.join(wires)}") from None
