"""Bots: asyncio connections that drive a recording connection, with bounded waits. They never judge.

Theory of operation
-------------------
One asyncio event loop per process (a hive, :mod:`harness.swarm.hives`) drives
every bot of that process: a bot is a coroutine (its role's behaviour, see
:mod:`harness.swarm.scenarios`) over one or more :class:`BotConnection` objects,
one per TCP connection. A selector loop holds hundreds of connections on one
thread at a fraction of the cost of two threads per bot, and ``--procs`` spreads
bots over several processes when one interpreter lock is not enough.

A :class:`BotConnection` is the I/O half of a connection: the socket (an
``asyncio.BufferedProtocol`` reading into one buffer for the connection's life),
the clock (``time.time()`` at each read, and right after each write) and the
waits a behaviour needs. Everything else (recording the history, the handshake,
the answers, the live counters) is the sans-IO
:class:`harness.record.connection.RecordingConnection` it drives, the same one
the locust users drive.

Ownership: everything in a hive (connections, histories, counters) is touched
only by the loop's thread.

Every wait has a bound: handshakes, echoes, quits, barriers. A server that hangs
shows up as ``Closed(how=timeout)`` and as missing deliveries, never as a swarm
that hangs.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from chat import protocol
from harness.record.connection import JoinOutcome, RecordingConnection
from harness.record.counters import LiveCounters
from harness.record.history import ClientHistory, HowClosed, Role
from harness.record.payload import encode_payload

if TYPE_CHECKING:
    from harness.swarm.scenarios import BotSpec

log = logging.getLogger(__name__)

#: Overdue chat messages written in one ``write``: a bot that fell behind catches
#: up at once (the open-loop rule) without starving the other bots of the loop.
MAX_BATCH = 64
#: Messages a burst writes per ``write`` call before checking flow control.
BURST_CHUNK = 32
#: Bytes buffered in a transport before a burst waits for the server to take
#: them: "as fast as the server takes it", not as fast as memory fills.
BURST_HIGH_WATER = 64 * 1024
#: Bytes of one read: a loaded server sends hundreds of lines at once.
READ_SIZE = 64 * 1024


class Phase(str, Enum):
    """The two moments all bots of a run pass together; the parent releases each when every hive is there."""

    #: Everyone has joined: the chat phase starts.
    JOINED = "joined"
    #: Everyone has sent and seen its last message come back: the quit phase starts.
    DRAINED = "drained"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class HiveConfig:
    """What every bot of a run shares: where to connect and how long to wait."""

    host: str
    port: int
    duration: float
    handshake_bound: float = 5.0
    delivery_bound: float = 5.0
    pad: int = 0
    #: Upper bound on a whole hive's run, after which every bot is stopped.
    hard_limit: float = 120.0
    #: Wall-clock time the hives started: the origin of the bots' join times.
    t0: float = 0.0
    #: The protocol the bots speak: ``chat`` (ours) or ``irc`` (:mod:`harness.swarm.ircbot`).
    protocol: str = "chat"
    #: The IRC channel every bot joins (``irc`` only).
    channel: str = "#chat"


class BotHost(Protocol):
    """What a bot needs of the hive it runs in (:class:`harness.swarm.hives.Hive`)."""

    config: HiveConfig
    counters: LiveCounters
    connections: list[BotConnection]
    #: What each connection is made of: :class:`BotConnection`, or a protocol's subclass.
    connection_class: type[BotConnection]
    #: Bounds the connections between ``connect()`` and the server's first bytes; None: no bound.
    connect_gate: asyncio.Semaphore | None

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def arrive(self, phase: Phase) -> None: ...

    async def released(self, phase: Phase) -> float: ...


class ConnectionEnded(Exception):
    """The connection is gone (closed by us or by the server)."""


# -- one connection ----------------------------------------------------------------


class BotConnection(asyncio.BufferedProtocol):
    """One TCP connection of one bot: the I/O and the waits around its :class:`RecordingConnection`.

    Speaks our protocol; a subclass speaks another one by overriding the
    recorder it makes and the lines it writes (:mod:`harness.swarm.ircbot`).
    """

    #: The line that asks the server to end the connection.
    QUIT_LINE = "/quit"

    def __init__(self, host: BotHost, history: ClientHistory, *, pad: int = 0) -> None:
        self.host = host
        self.history = history
        self.rec = self._make_recorder(history, host)
        self._receive = self.rec.receive
        self.pad = pad
        self.transport: asyncio.Transport | None = None
        self._view = memoryview(bytearray(READ_SIZE))
        self._waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        #: The slot of the host's connect gate this connection holds until the server's first bytes.
        self._gate: asyncio.Semaphore | None = None

    def _make_recorder(self, history: ClientHistory, host: BotHost) -> RecordingConnection:
        return RecordingConnection(history, host.counters)

    def hold_gate(self, gate: asyncio.Semaphore) -> None:
        """Keep a slot of ``gate`` (already acquired) until the server's first bytes or the end."""
        self._gate = gate

    def _release_gate(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.release()

    @property
    def is_open(self) -> bool:
        return self.rec.is_open

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=BURST_HIGH_WATER)

    def get_buffer(self, sizehint: int) -> memoryview:
        # One buffer for the life of the connection, read into with recv_into:
        # no allocation of a large bytes object per read.
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self._receive(time.time(), self._view[:nbytes].tobytes())
        if self._gate is not None:
            self._release_gate()
        if self._waiter is not None:
            self._wake()

    def eof_received(self) -> bool:
        return False  # close our side too: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.rec.lost(time.time(), str(exc) if exc is not None else None)
        self._release_gate()
        self._wake()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- waiting -----------------------------------------------------------------------
    async def _wait_change(self, deadline: float) -> bool:
        """Wait for new input, EOF or writability until ``deadline`` (loop time); False on timeout."""
        loop = self.host.loop
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        waiter = loop.create_future()
        self._waiter = waiter
        handle = loop.call_later(remaining, _set_if_pending, waiter)
        try:
            await waiter
        finally:
            handle.cancel()
            self._waiter = None
        return loop.time() < deadline

    async def _until(self, ready: Callable[[], bool], deadline: float) -> None:
        """Wait until ``ready()``; raises :class:`TimeoutError` at ``deadline`` (loop time)."""
        while not ready():
            if not await self._wait_change(deadline) and not ready():
                raise TimeoutError

    # -- actions -----------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self.transport is None or not self.rec.is_open:
            raise ConnectionEnded(self.history.client)
        self.transport.write(data)

    def send_line(self, text: str) -> None:
        """Write one line (a command or a name) and record it."""
        self._write(protocol.encode_client_line(text))
        self.rec.sent(time.time(), text)

    def send_chats(self, items: Sequence[tuple[int, float]], *, extra: Sequence[str] = ()) -> None:
        """Write chat messages ``(n, due)`` (then ``extra`` lines) in one write, and record them."""
        bot, pad = self.history.bot, self.pad
        texts = [encode_payload(bot, n, due, pad) for n, due in items]
        self._write(b"".join([protocol.encode_client_line(text) for text in (*texts, *extra)]))
        self.rec.sent_chats(time.time(), texts, [due for _, due in items], extra)

    async def writable(self, deadline: float) -> bool:
        """Wait until the transport's buffer is below its high-water mark; False on timeout or close."""
        while self._write_paused and self.rec.is_open:
            if not await self._wait_change(deadline):
                return False
        return self.rec.is_open

    async def handshake(self, name: str, deadline: float) -> JoinOutcome:
        """Wait for the greeting, offer ``name``; returns how the offer ended (:class:`JoinOutcome`).

        A connection that already got its greeting skips the first wait, so a
        racer can offer several names on one connection.
        """
        rec = self.rec
        try:
            if not rec.greeted:
                await self._until(lambda: rec.greeted or rec.join_outcome is not None, deadline)
                if not rec.greeted:
                    assert rec.join_outcome is not None
                    return rec.join_outcome  # refused instead of greeted, or closed
            self.send_line(name)
            await self._until(lambda: rec.join_outcome is not None, deadline)
        except TimeoutError:
            return rec.handshake_timed_out()
        except ConnectionEnded:
            return JoinOutcome.EOF
        assert rec.join_outcome is not None
        return rec.join_outcome

    async def wait_echo(self, n: int, deadline: float) -> bool:
        """Wait until the server has echoed this bot's message ``n`` back; False on timeout or EOF."""
        rec = self.rec
        while rec.last_echo_n < n:
            if not rec.is_open:
                return False
            if not await self._wait_change(deadline):
                if rec.last_echo_n >= n:
                    return True
                rec.waited_in_vain()
                return False
        return True

    async def wait_closed(self, deadline: float) -> bool:
        """Wait for the server to close the connection; False on timeout."""
        while self.rec.is_open:
            if not await self._wait_change(deadline):
                return not self.rec.is_open
        return True

    def _send_quit(self) -> bool:
        """Send :attr:`QUIT_LINE`; False when the connection was already over."""
        if not self.rec.is_open:
            return False
        try:
            self.send_line(self.QUIT_LINE)
        except ConnectionEnded:
            return False
        return True

    async def quit(self, deadline: float) -> None:
        """Send ``/quit``, wait for ``BYE`` and the close, then close; all within ``deadline``."""
        if not self._send_quit():
            return
        if not await self.wait_closed(deadline):
            self.rec.waited_in_vain()
            self.close(HowClosed.TIMEOUT, "the server did not close the connection after /quit")

    def quit_and_close(self) -> None:
        """Send ``/quit`` and close at once, without waiting for BYE (a race on purpose)."""
        if not self._send_quit():
            return
        self.close(HowClosed.QUIT, "closed right after /quit")

    def close(self, how: HowClosed, detail: str = "") -> None:
        """End the connection ourselves, recording ``how`` unless how it ended is already recorded."""
        was_open = self.rec.is_open
        self.rec.close(time.time(), how, detail)
        self._release_gate()
        if self.transport is not None and was_open:
            if how is HowClosed.QUIT:
                self.transport.close()  # let /quit reach the server first
            else:
                self.transport.abort()

    def pause_reading(self) -> None:
        if self.transport is not None and self.rec.is_open:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self.rec.is_open and not self.transport.is_reading():
            self.transport.resume_reading()


def _set_if_pending(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


# -- what a behaviour gets -----------------------------------------------------------

Behaviour = Callable[["BotContext"], Awaitable[None]]


class BotContext:
    """What a behaviour gets: its spec, its connections, its bot-wide counter, the barriers."""

    def __init__(self, host: BotHost, spec: BotSpec) -> None:
        self.host = host
        self.spec = spec
        self.bot: str = spec.bot
        self.role: Role = spec.role
        self.config = host.config
        self._n = -1
        self._conns = 0
        self.arrived: set[Phase] = set()
        self.connections: list[BotConnection] = []

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.host.loop

    def next_n(self) -> int:
        """The bot's message counter: one sequence across all its connections."""
        self._n += 1
        return self._n

    def deadline(self, seconds: float) -> float:
        """A loop-time deadline ``seconds`` from now."""
        return self.host.loop.time() + seconds

    async def sleep_until(self, wall: float) -> None:
        """Wait for a moment of the schedule (pacing, not synchronisation)."""
        delay = wall - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def connect(self, *, rcvbuf: int | None = None) -> BotConnection:
        """Open a new connection (a new client id); on failure its history holds one ``Closed``."""
        self._conns += 1
        client = self.bot if self._conns == 1 else f"{self.bot}.{self._conns}"
        history = ClientHistory(client, self.bot, self.role)
        conn = self.host.connection_class(self.host, history, pad=self.config.pad)
        self.host.connections.append(conn)
        self.connections.append(conn)
        gate = self.host.connect_gate
        if gate is not None:
            await gate.acquire()
            conn.hold_gate(gate)
        asked = time.time()
        sock = socket.socket(socket.AF_INET6 if ":" in self.config.host else socket.AF_INET)
        try:
            sock.setblocking(False)
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.wait_for(
                self.loop.sock_connect(sock, (self.config.host, self.config.port)),
                self.config.handshake_bound,
            )
            conn.rec.connected(time.time(), asked)
            await self.loop.create_connection(lambda: conn, sock=sock)
        except asyncio.TimeoutError:
            sock.close()
            conn.rec.waited_in_vain()
            conn.close(HowClosed.TIMEOUT, f"no TCP connection within {self.config.handshake_bound}s")
        except OSError as exc:
            sock.close()
            conn.close(HowClosed.ERROR, f"connect: {exc.strerror or exc}")
        return conn

    async def barrier(self, phase: Phase) -> float:
        """Arrive at ``phase`` and wait for the parent to release it; returns the release time."""
        self.arrive(phase)
        return await self.host.released(phase)

    def arrive(self, phase: Phase) -> None:
        if phase not in self.arrived:
            self.arrived.add(phase)
            self.host.arrive(phase)

    def stop_all(self) -> None:
        """Record ``stopped`` on every connection whose end is not recorded yet; close those still open."""
        for conn in self.connections:
            conn.close(HowClosed.STOPPED, "the swarm was stopped")
