"""Bots: protocol clients that record every line they send and receive. They never judge.

Theory of operation
-------------------
One asyncio event loop per process (a :class:`Hive`) drives every bot of that
process: a bot is a coroutine (its *behaviour*, see :mod:`harness.scenarios`)
over one or more :class:`BotConnection` objects, one per TCP connection. A
selector loop holds hundreds of connections on one thread at a fraction of the
cost of two threads per bot, and ``--procs`` spreads bots over several
processes when one interpreter lock is not enough.

Ownership: everything in a hive (connections, histories, counters) is touched
only by the loop's thread. The only other thread of a hive is its command
listener, which hands the parent's commands to the loop with
``call_soon_threadsafe`` and touches nothing else. Reports to the parent go
through a queue (``queue.Queue`` in process, ``multiprocessing`` queue across).

What a connection records (:mod:`harness.history`): ``Connected`` when the TCP
connection opens, every line written as ``Sent`` (with the schedule's due time
for chat messages), every line read as ``Received`` with ``time.time()`` at
receipt, and exactly one ``Closed`` as the last event. Judging is the
checker's job; the cheap counters kept here (deliveries, seq gaps, per-sender
step-backs, a latency histogram) only feed the live dashboard.

Every wait has a bound: handshakes, echoes, quits, barriers. A server that
hangs shows up as ``Closed(how="timeout")`` and as missing deliveries, never as
a swarm that hangs.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chat import protocol
from chat.protocol import Bye, Err, ErrorCode, Hello, Join, Ok, ServerEvent
from harness.record.history import ClientHistory, Closed, Connected, Event, Received, Sent
from harness.record.payload import encode_payload

log = logging.getLogger(__name__)

#: Longest line a bot accepts before recording it as too long. Far above the
#: server's own limit: a bot must record what a broken server sends, not refuse it.
BOT_MAX_LINE = 1 << 20
#: Overdue chat messages written in one ``write``: a bot that fell behind catches
#: up at once (the open-loop rule) without starving the other bots of the loop.
MAX_BATCH = 64
#: Messages a burst writes per ``write`` call before checking flow control.
BURST_CHUNK = 32
#: Bytes buffered in a transport before a burst waits for the server to take
#: them: "as fast as the server takes it", not as fast as memory fills.
BURST_HIGH_WATER = 64 * 1024
#: One received MSG in this many (per connection) feeds the live latency and
#: FIFO figures: a sample keeps the bots' CPU for reading.
SAMPLE_EVERY = 4
#: Bytes of one read: a loaded server sends hundreds of lines at once.
READ_SIZE = 64 * 1024
#: How often a hive reports its counters to the parent (seconds).
REPORT_EVERY = 0.5


# -- latency histogram -------------------------------------------------------------


class LatencyHistogram:
    """Log-bucketed latencies in milliseconds: cheap to add to, exact to merge.

    Buckets grow by 10 %, from 10 µs to about 28 hours, so a percentile read
    from it is within 10 % of the true value. Bots of several processes send
    their histograms to the parent, which adds them: percentiles of merged
    samples, which averaging percentiles would not give.
    """

    RATIO = 1.1
    LOW_MS = 0.01
    BUCKETS = 240

    __slots__ = ("counts", "count", "max_ms")

    def __init__(self) -> None:
        self.counts = [0] * self.BUCKETS
        self.count = 0
        self.max_ms = 0.0

    def add(self, ms: float) -> None:
        if ms > self.max_ms:
            self.max_ms = ms
        self.count += 1
        if ms <= self.LOW_MS:
            self.counts[0] += 1
            return
        i = int(math.log(ms / self.LOW_MS) / _LOG_RATIO) + 1
        self.counts[i if i < self.BUCKETS else self.BUCKETS - 1] += 1

    def merge(self, other: LatencyHistogram) -> None:
        counts = self.counts
        for i, c in enumerate(other.counts):
            if c:
                counts[i] += c
        self.count += other.count
        self.max_ms = max(self.max_ms, other.max_ms)

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) in ms, as its bucket's upper edge; None when empty."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                if i == self.BUCKETS - 1:
                    return self.max_ms  # the overflow bucket has no upper edge
                return min(self.LOW_MS * self.RATIO**i, self.max_ms)
        return self.max_ms

    def copy(self) -> LatencyHistogram:
        h = LatencyHistogram()
        h.merge(self)
        return h

    def __getstate__(self) -> tuple[list[int], int, float]:
        return (self.counts, self.count, self.max_ms)

    def __setstate__(self, state: tuple[list[int], int, float]) -> None:
        self.counts, self.count, self.max_ms = state


_LOG_RATIO = math.log(LatencyHistogram.RATIO)


# -- live counters -----------------------------------------------------------------


@dataclass
class LiveCounters:
    """Cheap running counts for the dashboard; updated only on the hive's loop thread."""

    connected: int = 0
    members: int = 0
    joins: int = 0
    refused: int = 0
    timeouts: int = 0
    sent: int = 0
    whos: int = 0
    delivered: int = 0
    lines: int = 0
    #: Reads that brought at least one line (lines/reads: how much the server batches).
    reads: int = 0
    seq_anomalies: int = 0
    fifo_anomalies: int = 0
    closed_by_server: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)


@dataclass(frozen=True)
class HiveReport:
    """What a hive tells the parent every :data:`REPORT_EVERY` seconds.

    Counts are cumulative since the hive started, except ``latency``, which
    holds only the samples since the previous report (the parent adds them up).
    """

    wid: int
    t: float
    bots: int
    #: Open TCP connections right now.
    connected: int
    #: Connections that are members (their name was accepted) right now.
    members: int
    #: Names accepted so far (a bot that rejoins counts again).
    joins: int
    #: Connections refused with ``ERR full``.
    refused: int
    #: Bounded waits that ran out: handshakes, echoes, quits.
    timeouts: int
    #: Chat messages written.
    sent: int
    #: ``MSG`` lines read.
    delivered: int
    #: Every line read.
    lines: int
    #: Seq steps other than +1 seen by members of a numbering server.
    seq_anomalies: int
    #: A sender's counter seen going back or repeating.
    fifo_anomalies: int
    #: Connections the server closed without being asked to.
    closed_by_server: int
    latency: LatencyHistogram
    #: CPU seconds used by the hive's process so far.
    cpu: float


# -- one connection ----------------------------------------------------------------


class ConnectionEnded(Exception):
    """The connection is gone (closed by us or by the server)."""


class BotConnection(asyncio.BufferedProtocol):
    """One TCP connection of one bot: records everything, answers waits with bounds.

    Lines are kept raw in the history. Control lines (``HELLO``, ``OK``,
    ``ERR``, ``BYE``, and the bot's own ``JOIN``) are also parsed and queued
    for the behaviour's bounded waits; broadcasts only feed the live counters
    through a fast path.
    """

    def __init__(self, hive: Hive, history: ClientHistory, *, pad: int = 0) -> None:
        self.hive = hive
        self.history = history
        #: The connection's log while it runs: events, except that each batch
        #: of received lines is kept as one ``(t, lines)`` tuple and becomes
        #: ``Received`` events only in :meth:`materialize`, after the run, so
        #: that the bots spend their CPU on reading while the server is loaded.
        self.log: list[Event | tuple[float, list[str]]] = []
        self._partial = b""
        self._view = memoryview(bytearray(READ_SIZE))
        self.counters = hive.counters
        self.pad = pad
        self.transport: asyncio.Transport | None = None
        #: The server's numbering style, from this connection's own JOIN.
        self.seqs: bool | None = None
        self.name: str | None = None
        self.is_member = False
        self.is_open = False
        self.quit_sent = False
        self.last_seq: int | None = None
        #: Highest own counter seen echoed back by the server.
        self.last_echo_n = -1
        self._fifo: dict[str, int] = {}
        self._sample = 1  # the first message is sampled, then one in SAMPLE_EVERY
        self._control: deque[ServerEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed_recorded = False
        self._write_paused = False
        self._awaiting_join: str | None = None
        self._greeted = False

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=BURST_HIGH_WATER)
        self.is_open = True
        self.counters.connected += 1

    def get_buffer(self, sizehint: int) -> memoryview:
        # One buffer for the life of the connection, read into with recv_into:
        # no allocation of a large bytes object per read.
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._view[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        t = time.time()
        lines = self._frame(data)
        if not lines:
            return
        self.log.append((t, lines))
        self.counters.lines += len(lines)
        self.counters.reads += 1
        for line in lines:
            first = line[:1]
            if first == "M" and line.startswith("MSG "):
                self._on_msg(t, line)
            elif (first == "J" and line.startswith("JOIN ")) or (first == "L" and line.startswith("LEAVE ")):
                self._on_membership(line)
            elif line.startswith(("HELLO", "OK ", "ERR ", "BYE")):
                self._on_control(line)
        self._wake()

    def _frame(self, data: bytes) -> list[str]:
        """Complete lines of ``data`` (terminators removed), decoded at once.

        The framing of :class:`chat.protocol.LineBuffer`, done with one
        ``split`` per read instead of a Python loop per line: under load a read
        carries hundreds of lines. Invalid UTF-8 is kept visible (U+FFFD) for
        the checker to judge; a runaway unterminated line is cut at
        :data:`BOT_MAX_LINE` bytes.
        """
        if self._partial:
            data = self._partial + data
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) > BOT_MAX_LINE:
                self._partial = b""
                return [f"<unterminated line longer than {BOT_MAX_LINE} bytes>"]
            self._partial = data
            return []
        self._partial = data[end + 1 :]
        text = data[:end].decode("utf-8", "replace")
        lines = text.split("\n")
        if "\r" in text:
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        return lines

    def materialize(self) -> ClientHistory:
        """Turn the log into the history's events (called once the connection is over)."""
        events: list[Event] = []
        append = events.append
        for item in self.log:
            if type(item) is tuple:
                t, lines = item
                events.extend([Received(t, line) for line in lines])
            else:
                append(item)  # type: ignore[arg-type]
        self.log = []
        self.history.events = events
        return self.history

    def eof_received(self) -> bool:
        return False  # close our side too: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.is_open:
            self.is_open = False
            self.counters.connected -= 1
            if self.is_member:
                self.is_member = False
                self.counters.members -= 1
        if not self._closed_recorded:
            if self.quit_sent:
                self._record_closed("quit", "")
            elif exc is not None:
                self._record_closed("error", str(exc))
                self.counters.closed_by_server += 1
            else:
                self._record_closed("eof", "")
                self.counters.closed_by_server += 1
        self._wake()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake()

    # -- the fast path: counters only --------------------------------------------------
    def _on_msg(self, t: float, line: str) -> None:
        counters = self.counters
        counters.delivered += 1
        if self.seqs:
            parts = line.split(" ", 3)
            if len(parts) < 4:
                return
            token = parts[1]
            try:
                seq = int(token)
            except ValueError:
                counters.seq_anomalies += 1
            else:
                if self.last_seq is not None and seq != self.last_seq + 1:
                    counters.seq_anomalies += 1
                self.last_seq = seq
            sender, text = parts[2], parts[3]
        else:
            parts = line.split(" ", 2)
            if len(parts) < 3:
                return
            sender, text = parts[1], parts[2]
        is_own = sender == self.name
        self._sample -= 1
        if not is_own and self._sample > 0:
            return
        # Every own message (for the echo waits), and one in SAMPLE_EVERY of
        # the others (for the live latency and FIFO figures; the checker
        # reads every line at the end).
        if not is_own:
            self._sample = SAMPLE_EVERY
        if not text.startswith("b="):
            return
        fields = text.split(" ", 3)
        if len(fields) < 3:
            return
        try:
            n = int(fields[1][2:])
            due = float(fields[2][2:])
        except ValueError:
            return
        bot = fields[0][2:]
        last = self._fifo.get(bot)
        if last is not None and n <= last:
            counters.fifo_anomalies += 1
        self._fifo[bot] = n
        counters.latency.add((t - due) * 1000.0)
        if is_own and bot == self.history.bot and n > self.last_echo_n:
            self.last_echo_n = n

    def _on_membership(self, line: str) -> None:
        if self._awaiting_join is not None and line.startswith("JOIN "):
            parts = line.split(" ")
            if parts[-1].lower() == self._awaiting_join.lower():  # the name as the server spelled it
                self.seqs = len(parts) == 3 and parts[1].isdigit()
                self._awaiting_join = None
                self._control.append(Join(int(parts[1]) if self.seqs else None, parts[-1]))
                if self.seqs:
                    self.last_seq = int(parts[1])
                return
        if self.seqs:
            parts = line.split(" ", 2)
            if len(parts) >= 2:
                self._seq(parts[1])

    def _seq(self, token: str) -> None:
        try:
            seq = int(token)
        except ValueError:
            self.counters.seq_anomalies += 1
            return
        last = self.last_seq
        if last is not None and seq != last + 1:
            self.counters.seq_anomalies += 1
        self.last_seq = seq

    def _on_control(self, line: str) -> None:
        try:
            event = protocol.parse_server_line(line, seqs=self.seqs)
        except protocol.RemoteProtocolError:
            return  # recorded raw; the checker judges it
        if isinstance(event, (Hello, Ok, Err, Bye)):
            self._control.append(event)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- recording ---------------------------------------------------------------------
    def _record_closed(self, how: str, detail: str) -> None:
        self._closed_recorded = True
        self.log.append(Closed(time.time(), how, detail))

    def record_closed_once(self, how: str, detail: str = "") -> None:
        """Record how this connection ended unless that is already recorded."""
        if not self._closed_recorded:
            self._record_closed(how, detail)

    # -- waiting -----------------------------------------------------------------------
    async def _wait_change(self, deadline: float) -> bool:
        """Wait for new input, EOF or writability until ``deadline`` (loop time); False on timeout."""
        loop = self.hive.loop
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

    async def next_control(self, deadline: float) -> ServerEvent | None:
        """The next control event (HELLO, OK, ERR, BYE, own JOIN); None on EOF.

        Raises :class:`TimeoutError` when nothing comes before ``deadline``.
        """
        while True:
            if self._control:
                return self._control.popleft()
            if not self.is_open:
                return None
            if not await self._wait_change(deadline) and not self._control and self.is_open:
                raise TimeoutError

    # -- actions -----------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self.transport is None or not self.is_open:
            raise ConnectionEnded(self.history.client)
        self.transport.write(data)

    def send_line(self, text: str) -> None:
        """Write one line (a command or a name) and record it."""
        self._write(protocol.encode_client_line(text))
        self.log.append(Sent(time.time(), text))

    def send_chats(self, items: Sequence[tuple[int, float]], *, extra: Sequence[str] = ()) -> None:
        """Write chat messages ``(n, due)`` (then ``extra`` lines) in one write, and record them."""
        bot = self.history.bot
        pad = self.pad
        texts = [encode_payload(bot, n, due, pad) for n, due in items]
        self._write(b"".join([protocol.encode_client_line(text) for text in (*texts, *extra)]))
        t = time.time()
        events = self.log
        for text, (_, due) in zip(texts, items, strict=True):
            events.append(Sent(t, text, due))
        for text in extra:
            events.append(Sent(t, text))
        self.counters.sent += len(texts)
        if extra:
            self.counters.whos += sum(1 for text in extra if text == "/who")

    async def writable(self, deadline: float) -> bool:
        """Wait until the transport's buffer is below its high-water mark; False on timeout or close."""
        while self._write_paused and self.is_open:
            if not await self._wait_change(deadline):
                return False
        return self.is_open

    async def handshake(self, name: str, deadline: float) -> str:
        """Wait for the greeting, offer ``name``; returns the outcome.

        ``ok`` (joined; the own JOIN was seen), ``taken``, ``invalid``,
        ``full``, ``refused`` (another ERR), ``bye``, ``eof`` or ``timeout``.
        A connection that already got its greeting skips the first wait, so a
        racer can offer several names on one connection.
        """
        try:
            while not self._greeted:
                event = await self.next_control(deadline)
                if event is None:
                    return "eof"
                if isinstance(event, Hello):
                    self._greeted = True
                elif isinstance(event, Err):
                    if event.code is ErrorCode.FULL:
                        self.counters.refused += 1
                        return "full"
                    return "refused"
                elif isinstance(event, Bye):
                    return "bye"
            self._awaiting_join = name
            self.send_line(name)
            while True:
                try:
                    event = await self.next_control(deadline)
                except TimeoutError:
                    if self.is_member:
                        # Accepted, but the own JOIN never came: a membership
                        # fault for the checker to report; the bot carries on.
                        self._awaiting_join = None
                        return "ok"
                    raise
                if event is None:
                    return "eof"
                if isinstance(event, Ok):
                    self.name = event.name
                    self.is_member = True
                    self.counters.members += 1
                    self.counters.joins += 1
                elif isinstance(event, Join):
                    return "ok"
                elif isinstance(event, Err):
                    self._awaiting_join = None
                    if event.code is ErrorCode.NAME_TAKEN:
                        return "taken"
                    if event.code is ErrorCode.INVALID_NAME:
                        return "invalid"
                    if event.code is ErrorCode.FULL:
                        return "full"
                    return "refused"
                elif isinstance(event, Bye):
                    return "bye"
        except TimeoutError:
            self.counters.timeouts += 1
            return "timeout"
        except ConnectionEnded:
            return "eof"

    async def wait_echo(self, n: int, deadline: float) -> bool:
        """Wait until the server has echoed this bot's message ``n`` back; False on timeout or EOF."""
        while self.last_echo_n < n:
            if not self.is_open:
                return False
            if not await self._wait_change(deadline):
                if self.last_echo_n >= n:
                    return True
                self.counters.timeouts += 1
                return False
        return True

    async def wait_closed(self, deadline: float) -> bool:
        """Wait for the server to close the connection; False on timeout."""
        while self.is_open:
            if not await self._wait_change(deadline):
                return not self.is_open
        return True

    async def quit(self, deadline: float) -> None:
        """Send ``/quit``, wait for ``BYE`` and the close, then close; all within ``deadline``."""
        if not self.is_open:
            return
        try:
            self.send_line("/quit")
        except ConnectionEnded:
            return
        self.quit_sent = True
        if not await self.wait_closed(deadline):
            self.counters.timeouts += 1
            self.close("timeout", "the server did not close the connection after /quit")

    def quit_and_close(self) -> None:
        """Send ``/quit`` and close at once, without waiting for BYE (a race on purpose)."""
        if not self.is_open:
            return
        try:
            self.send_line("/quit")
        except ConnectionEnded:
            return
        self.quit_sent = True
        self.close("quit", "closed right after /quit")

    def close(self, how: str, detail: str = "") -> None:
        """End the connection ourselves, recording ``how`` (drop, timeout, stopped, ...)."""
        self.record_closed_once(how, detail)
        if self.transport is not None and self.is_open:
            if how == "quit":
                self.transport.close()  # let /quit reach the server first
            else:
                self.transport.abort()

    def pause_reading(self) -> None:
        if self.transport is not None and self.is_open:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self.is_open and not self.transport.is_reading():
            self.transport.resume_reading()


def _set_if_pending(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


# -- the hive: many bots on one loop --------------------------------------------------


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


class ReportSink(Protocol):
    def put(self, item: Any) -> None: ...


class CommandSource(Protocol):
    def get(self, block: bool = True, timeout: float | None = None) -> Any: ...


#: The two moments all bots of a run pass together: everyone has joined (the
#: chat phase starts), and everyone has sent and seen its last message echoed
#: (the quit phase starts). The parent releases each when every hive arrived.
PHASES = ("joined", "drained")

Behaviour = Callable[["BotContext"], Awaitable[None]]


class BotContext:
    """What a behaviour gets: its spec, its connections, its bot-wide counter, the barriers."""

    def __init__(self, hive: Hive, spec: Any) -> None:
        self.hive = hive
        self.spec = spec
        self.bot: str = spec.bot
        self.role: str = spec.role
        self.config = hive.config
        self._n = -1
        self._conns = 0
        self.arrived: set[str] = set()
        self.connections: list[BotConnection] = []

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.hive.loop

    def next_n(self) -> int:
        """The bot's message counter: one sequence across all its connections."""
        self._n += 1
        return self._n

    def deadline(self, seconds: float) -> float:
        """A loop-time deadline ``seconds`` from now."""
        return self.hive.loop.time() + seconds

    def loop_time(self, wall: float) -> float:
        """The loop time of the wall-clock instant ``wall``."""
        return self.hive.loop.time() + (wall - time.time())

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
        conn = BotConnection(self.hive, history, pad=self.config.pad)
        self.hive.connections.append(conn)
        self.connections.append(conn)
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
            conn.log.append(Connected(time.time(), asked))
            await self.loop.create_connection(lambda: conn, sock=sock)
        except asyncio.TimeoutError:
            sock.close()
            self.hive.counters.timeouts += 1
            conn.record_closed_once("timeout", f"no TCP connection within {self.config.handshake_bound}s")
        except OSError as exc:
            sock.close()
            conn.record_closed_once("error", f"connect: {exc.strerror or exc}")
        return conn

    async def barrier(self, phase: str) -> float:
        """Arrive at ``phase`` and wait for the parent to release it; returns the release time."""
        self.arrive(phase)
        return await self.hive.released(phase)

    def arrive(self, phase: str) -> None:
        if phase not in self.arrived:
            self.arrived.add(phase)
            self.hive.arrive(phase)

    def stop_all(self) -> None:
        """Record ``stopped`` on every connection still open (the run was stopped)."""
        for conn in self.connections:
            if conn.is_open:
                conn.close("stopped", "the swarm was stopped")
            else:
                conn.record_closed_once("stopped", "the swarm was stopped")


class Hive:
    """Runs a set of bots on one asyncio loop and reports to the parent.

    ``behaviours`` maps a role to its coroutine function. The parent drives the
    phases with commands ``("release", phase, t)`` and ``("stop",)``; the hive
    reports ``("report", HiveReport)`` and ``("arrive", wid, phase)`` on
    ``sink``. :meth:`run` returns every connection's history.
    """

    def __init__(
        self,
        wid: int,
        specs: Sequence[Any],
        config: HiveConfig,
        behaviours: Mapping[str, Behaviour],
        sink: ReportSink,
        commands: CommandSource,
    ) -> None:
        self.wid = wid
        self.specs = list(specs)
        self.config = config
        self.behaviours = behaviours
        self.sink = sink
        self.commands = commands
        self.counters = LiveCounters()
        self.connections: list[BotConnection] = []
        self._arrivals = {phase: 0 for phase in PHASES}
        self._released: dict[str, asyncio.Future[float]] = {}
        self._stopping = False
        self._stop_requested: asyncio.Event  # made in _main, on the loop it belongs to
        self._tasks: list[asyncio.Task[None]] = []
        self._contexts: list[BotContext] = []
        self._listener_done = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    # -- running -----------------------------------------------------------------------
    def run(self) -> list[ClientHistory]:
        listener = threading.Thread(target=self._listen, name=f"hive-{self.wid}-commands", daemon=True)
        try:
            asyncio.run(self._main(listener))
        finally:
            self._listener_done.set()
            if listener.is_alive():
                listener.join(2.0)
        # Hundreds of thousands of new (acyclic) events: without the collector
        # running over them again and again while they are made; the objects
        # frozen during the run are handed back to it afterwards.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            histories = [conn.materialize() for conn in self.connections]
        finally:
            if was_enabled:
                gc.enable()
            gc.unfreeze()
        return histories

    async def _main(self, listener: threading.Thread) -> None:
        self._loop = asyncio.get_running_loop()
        self._released = {phase: self._loop.create_future() for phase in PHASES}
        self._stop_requested = asyncio.Event()
        listener.start()
        self._contexts = [BotContext(self, spec) for spec in self.specs]
        self._tasks = [
            asyncio.create_task(self._run_bot(ctx), name=f"bot-{ctx.bot}") for ctx in self._contexts
        ]
        reporter = asyncio.create_task(self._report_loop())
        try:
            await self._wait_bots()
        finally:
            reporter.cancel()
            try:
                await reporter
            except asyncio.CancelledError:
                pass
            self.sink.put(("report", self.report()))

    async def _wait_bots(self) -> None:
        """Wait for every bot, until the hard limit or a stop; then cancel until they are all gone.

        Cancelling is repeated because ``asyncio.wait_for`` may swallow a
        cancellation that races with its result (bpo-42130); a bot that
        survives one cancel gets another a second later, a bounded number of
        times.
        """
        loop = self.loop
        pending: set[asyncio.Task[Any]] = set(self._tasks)
        stop_wait = asyncio.create_task(self._stop_requested.wait())
        deadline = loop.time() + self.config.hard_limit
        try:
            while pending and not self._stopping:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    log.warning("hive %d: %d bots still running at the hard limit", self.wid, len(pending))
                    self._stopping = True
                    break
                _, still = await asyncio.wait(
                    pending | {stop_wait}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                pending = {t for t in still if t is not stop_wait}
            for _ in range(10):
                if not pending:
                    break
                for task in pending:
                    task.cancel()
                _, pending = await asyncio.wait(pending, timeout=1.0)
            if pending:
                log.error("hive %d: %d bots would not stop", self.wid, len(pending))
        finally:
            stop_wait.cancel()

    async def _run_bot(self, ctx: BotContext) -> None:
        behaviour = self.behaviours[ctx.role]
        try:
            await behaviour(ctx)
        except asyncio.CancelledError:
            ctx.stop_all()
        except ConnectionEnded:
            pass
        except Exception:
            log.exception("bot %s (%s) failed", ctx.bot, ctx.role)
            for conn in ctx.connections:
                conn.close("error", "the bot's behaviour failed")
        finally:
            for conn in ctx.connections:
                if conn.is_open:
                    conn.close("stopped" if self._stopping else "drop", "left open by the behaviour")
                else:
                    conn.record_closed_once("stopped" if self._stopping else "eof")
            for phase in PHASES:
                ctx.arrive(phase)

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY)
            self.sink.put(("report", self.report()))
            # The logs only grow, and hold no cycles: move everything alive to
            # the collector's permanent generation, so that a full collection
            # does not rescan every recorded line and stall the bots for
            # tens of milliseconds (undone by gc.unfreeze() when the run ends).
            gc.freeze()

    def report(self) -> HiveReport:
        """A report of the counters so far; the latency samples are handed over and reset."""
        c = self.counters
        latency, c.latency = c.latency, LatencyHistogram()
        return HiveReport(
            wid=self.wid,
            t=time.time(),
            bots=len(self.specs),
            connected=c.connected,
            members=c.members,
            joins=c.joins,
            refused=c.refused,
            timeouts=c.timeouts,
            sent=c.sent,
            delivered=c.delivered,
            lines=c.lines,
            seq_anomalies=c.seq_anomalies,
            fifo_anomalies=c.fifo_anomalies,
            closed_by_server=c.closed_by_server,
            latency=latency,
            cpu=time.process_time(),
        )

    # -- phases ------------------------------------------------------------------------
    def arrive(self, phase: str) -> None:
        """Count one bot at ``phase``; tell the parent when the whole hive is there."""
        self._arrivals[phase] += 1
        if self._arrivals[phase] == len(self.specs):
            self.sink.put(("arrive", self.wid, phase))

    async def released(self, phase: str) -> float:
        """Wait (bounded) until the parent releases ``phase``; returns the release time."""
        fut = self._released[phase]
        # asyncio.wait, not wait_for: it never cancels ``fut`` (shared by every
        # bot) and never swallows this task's own cancellation.
        await asyncio.wait({fut}, timeout=self.config.hard_limit)
        if fut.done():
            return fut.result()
        log.warning("hive %d: phase %s never released; going on", self.wid, phase)
        return time.time()

    def _release(self, phase: str, t: float) -> None:
        fut = self._released.get(phase)
        if fut is not None and not fut.done():
            fut.set_result(t)

    def _stop_bots(self) -> None:
        self._stopping = True
        self._stop_requested.set()

    # -- commands from the parent ------------------------------------------------------
    def _listen(self) -> None:
        """The command listener thread: hands each command to the loop, touches nothing else."""
        while not self._listener_done.is_set():
            try:
                cmd = self.commands.get(timeout=0.2)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return  # the parent is gone; the hard limit ends the hive
            loop = self._loop
            if loop is None or loop.is_closed():
                return
            try:
                loop.call_soon_threadsafe(self._on_command, cmd)
            except RuntimeError:
                return  # the loop closed meanwhile
            if cmd[0] == "exit":
                return

    def _on_command(self, cmd: tuple[Any, ...]) -> None:
        if cmd[0] == "release":
            self._release(cmd[1], cmd[2])
        elif cmd[0] == "stop":
            self._stop_bots()


def split_round_robin(items: Iterable[Any], parts: int) -> list[list[Any]]:
    """Deal ``items`` into ``parts`` lists, so every process gets a mix of roles."""
    out: list[list[Any]] = [[] for _ in range(max(1, parts))]
    for i, item in enumerate(items):
        out[i % len(out)].append(item)
    return out
