"""The benchmark's load generator: members spread over processes that count lines instead of parsing them.

Not a bot and not a judge of the protocol (that is :mod:`harness.bot` and :mod:`harness.checker`): its one
job is to push a server as hard as it can go, or at an exact rate, without being the bottleneck itself, and
still notice loss, reordering and slow drops.

Theory of operation
-------------------
One run connects ``members`` clients to one server. They are spread over worker *processes* (Python
threads would share one GIL with each other, and a parsing bot cannot read 3 M lines/s):

* the **publisher process** (slot 0) holds the ``publishers`` members that send. They are members like the
  others and receive every broadcast too;
* ``procs`` **receiver processes** (slots 1..procs) hold the rest.

Every worker polls its sockets (``epoll``), and receives into one preallocated buffer. A *counting* member
adds ``buffer.count(b"\\n")`` and never looks at its lines. One member per process is the *sample*: it parses
a share of its lines (all of them in ``parse`` mode) and checks that seqs are consecutive and each sender's
counter goes up by one. In ``parse`` mode every member parses every line and records, per line, the time
from the message's due time (carried in its payload) to the ``recv`` that brought it: latency honest under
coordinated omission.

The phases, driven by the parent through one shared integer (``phase``):

``SETUP``  workers connect and do the handshake, then report ``joined``;
``GO``     publisher ``p0`` sends a marker line; every member ignores what it receives up to and including
           that marker, and counts what follows. The publishers start sending once ``p0`` has seen the
           marker come back, so every counted line is a message of this run;
``STOP``   the publishers stop and write how many messages they sent in all; every member drains until it has
           that many lines (or a deadline passes), and each worker reports its figures;
``EXIT``   workers close their sockets and end.

Two kinds of load:

``saturate``  closed loop. The publishers keep at most ``window`` messages in flight: sent, but not yet
              received by the slowest member of the run. Workers publish their slowest member's count in
              shared memory, and the publisher reads it before each batch. So a healthy member's backlog in
              the server never passes ``window`` lines (keep it under the server's high-water mark), no
              member is dropped as slow and nothing is lost: the figure is the sustainable rate, not a burst
              into buffers.
``rate``      open loop. Message ``j`` is due at ``t0 + j / rate`` whatever happened before; a late message
              is sent at once and its lateness counts in its latency.

The shared figures (``counts``, ``mins``, ``final_sent``) are single-writer slots in shared memory, read
without a lock: a reader may see a value one update old, which only delays a decision by one loop.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import select
import socket
import threading
import time
import traceback
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_connections
from typing import Any, Literal

log = logging.getLogger(__name__)

# -- phases (the shared ``phase`` integer) ----------------------------------------
SETUP, GO, STOP, EXIT = 0, 1, 2, 3

#: One receive: large, so that a worker that falls behind takes many lines per syscall and catches up.
RECV_SIZE = 1 << 18
#: The text every publisher sends is padded to exactly this many bytes (the issue's 64-byte messages).
DEFAULT_TEXT_BYTES = 64
#: Saturation: messages in flight across the run. Below the server's high-water mark (a quarter of
#: ``--max-backlog``, 250 by default), so the server's backpressure never has to step in.
DEFAULT_WINDOW = 200
#: Saturation: at most this many lines in one send of one publisher (clients may pipeline).
DEFAULT_BATCH = 64
#: The sample member of a counting worker parses at least this share of its lines.
SAMPLE_SHARE = 0.05
#: ... and always its first lines, so short runs still check something.
SAMPLE_FIRST = 2000
#: How long a worker's poll waits when nothing happens: the bound on noticing a phase change.
IDLE_POLL = 0.02
#: A member short of the run's total that receives nothing for this long is missing those lines.
DRAIN_IDLE = 5.0
#: Saturation: the receive low-water mark in bytes (about 50 lines).
RCVLOWAT = 4096
#: Members a worker connects and joins at once (see ``_Worker.connect_all``).
JOIN_WAVE = 50
#: Witnesses kept per worker for each kind of violation.
MAX_WITNESSES = 5

#: One broadcast chat line: ``MSG [seq] name b=<bot> n=<counter> t=<due>``; the seq is optional so that
#: servers that do not number their events can be benchmarked too.
#: A generator's MSG (seq, bot, counter, due time), or the seq of any other numbered
#: broadcast (JOIN, LEAVE): those take seqs too, so the seq check must see them.
_MSG_RE = re.compile(
    rb"^(?:MSG (?:(\d+) )?\S+ b=(\S+) n=(\d+) t=(\d+\.\d+)|(?:JOIN|LEAVE) (\d+) )", re.MULTILINE
)

Kind = Literal["saturate", "rate"]


class LoadError(Exception):
    """The run could not be done (connect, handshake, a worker died): no figure is reported."""


@dataclass(frozen=True)
class LoadSpec:
    """One run of the generator against one server."""

    host: str
    port: int
    members: int
    kind: Kind = "saturate"
    publishers: int = 5
    #: ``rate``: messages per second in total, over all publishers.
    rate: float = 0.0
    window: int = DEFAULT_WINDOW
    batch: int = DEFAULT_BATCH
    text_bytes: int = DEFAULT_TEXT_BYTES
    #: Seconds between the start of the load and the start of the measured window.
    warmup: float = 0.5
    #: Seconds of the measured window.
    seconds: float = 3.0
    #: Receiver processes (the publisher process comes on top).
    procs: int = 2
    #: Every member parses every line and records latencies (the latency case).
    parse: bool = False
    connect_timeout: float = 30.0
    #: The longest the end of a run waits for the last lines (see ``_Worker._drain``).
    drain_timeout: float = 120.0
    #: Makes this run's names unique, so that runs against a long-lived ``--target`` never collide.
    token: str = field(default_factory=lambda: os.urandom(2).hex())

    def names(self) -> list[str]:
        pubs = [f"p{i}-{self.token}" for i in range(self.n_publishers)]
        rest = [f"m{i}-{self.token}" for i in range(self.n_publishers, self.members)]
        return pubs + rest

    @property
    def n_publishers(self) -> int:
        return max(1, min(self.publishers, self.members))

    @property
    def marker(self) -> bytes:
        """The tail of the line that opens the counted part of every member's stream."""
        return f" p0-{self.token} bench-start\n".encode()


@dataclass
class CpuWindow:
    """CPU used over the measured window, in percent of one core (processes) or of the machine."""

    server: float | None  #: the server process (can pass 100: sends run outside the GIL)
    generator: float  #: every generator process, summed
    generator_max: float  #: the busiest single generator process
    machine: float  #: the whole machine, percent of all its cores
    cores: int


@dataclass
class LoadResult:
    """What one run measured. Rates are per second of the measured window."""

    spec: LoadSpec
    window_s: float
    deliveries: int  #: lines received by all members during the window
    sent: int  #: messages the publishers sent after the marker, in all
    expected: int  #: sent x members: what the members should have received by the end
    received: int  #: what they did receive (counted after the marker)
    lost: int
    extra: int  #: lines beyond ``sent`` on some member (e.g. a LEAVE): the load was disturbed
    drops: int  #: members whose connection the server closed
    order_violations: int
    sampled: int  #: lines whose order was checked
    witnesses: list[str]
    latencies: array[float] | None  #: seconds, due time to receipt, ``parse`` runs only
    cpu: CpuWindow
    generator_bound: bool
    connect_s: float  #: from the first connect to the last member joined

    @property
    def deliveries_per_s(self) -> float:
        return self.deliveries / self.window_s if self.window_s > 0 else 0.0

    @property
    def is_clean(self) -> bool:
        return self.lost == 0 and self.extra == 0 and self.drops == 0 and self.order_violations == 0


#: A worker process whose CPU use over the window passed this share of one core was itself the
#: bottleneck: it could not have read (or sent) faster.
GEN_PROCESS_BOUND = 90.0
#: A machine this busy had no core left for the server to grow into.
MACHINE_BUSY = 95.0
#: ... and a generator that used this much of it took a real share (on a machine made busy by other
#: programs, a light generator is not what held the server back).
GEN_BUSY = 50.0


def is_generator_bound(cpu: CpuWindow) -> bool:
    """The rule that marks a figure as the generator's, not the server's.

    Either one generator process used (nearly) a whole core, or the machine was full and the generator
    used a real share of it, more than the server: the server then lost the contest for cores to its
    own load.
    """
    if cpu.generator_max >= GEN_PROCESS_BOUND:
        return True
    return (
        cpu.server is not None
        and cpu.machine >= MACHINE_BUSY
        and cpu.generator >= GEN_BUSY
        and cpu.generator > cpu.server
    )


# -- the worker side ------------------------------------------------------------------


class _Poller:
    """``epoll`` where there is one, else ``poll``; timeouts in seconds."""

    def __init__(self) -> None:
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._poll = None if self._epoll is not None else select.poll()

    def register(self, fd: int) -> None:
        if self._epoll is not None:
            self._epoll.register(fd, select.EPOLLIN)
        else:
            assert self._poll is not None
            self._poll.register(fd, select.POLLIN)

    def unregister(self, fd: int) -> None:
        if self._epoll is not None:
            self._epoll.unregister(fd)
        else:
            assert self._poll is not None
            self._poll.unregister(fd)

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        if self._epoll is not None:
            return self._epoll.poll(timeout)
        assert self._poll is not None
        return self._poll.poll(timeout * 1000)

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()


class _Member:
    """One connection of a worker, and what it has seen."""

    __slots__ = (
        "name",
        "sock",
        "fd",
        "count",
        "started",
        "tail",
        "closed",
        "parses",
        "sampled",
        "contiguous",
        "last_seq",
        "last_n",
        "floor",
    )

    def __init__(self, name: str, sock: socket.socket, parses: bool) -> None:
        self.name = name
        self.sock = sock
        self.fd = sock.fileno()
        self.count = 0  # lines after the marker
        self.started = False  # the marker has been seen
        # Before the marker: the last bytes (the marker may straddle two recvs); after: a partial line.
        self.tail = b""
        self.closed = False
        self.parses = parses
        self.sampled = 0
        self.contiguous = True  # every line since the last check was parsed
        self.last_seq = -1
        self.last_n: dict[bytes, int] = {}  # each sender's last counter, while every line was parsed
        self.floor: dict[bytes, int] = {}  # each sender's last counter seen before a skipped chunk


def _read_until(
    sock: socket.socket, name: str, buf: bytes, want: bytes, deadline: float
) -> tuple[bytes, bytes]:
    """Read lines until one starts with ``want``: ``(that line, what follows it)``. Raises LoadError."""
    while True:
        while b"\n" in buf:
            line, _, buf = buf.partition(b"\n")
            line = line.rstrip(b"\r")
            if line.startswith(want):
                return line, buf
            if line.startswith(b"ERR"):
                raise LoadError(f"{name}: refused: {line.decode(errors='replace')}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LoadError(f"{name}: no {want.decode()} line within the connect timeout")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise LoadError(f"{name}: no {want.decode()} line within the connect timeout") from None
        if not chunk:
            raise LoadError(f"{name}: the server closed the connection during the handshake")
        buf += chunk


class _Worker:
    """The body of one worker process: its members, its poll loop, its figures."""

    def __init__(
        self,
        slot: int,
        spec: LoadSpec,
        names: list[str],
        phase: Any,
        counts: Any,
        mins: Any,
        final_sent: Any,
        pipe: Connection,
    ) -> None:
        self.slot = slot
        self.spec = spec
        self.names = names
        self.phase = phase
        self.counts = counts
        self.mins = mins
        self.final_sent = final_sent
        self.pipe = pipe
        self.is_publisher = slot == 0
        self.members: list[_Member] = []
        self.by_fd: dict[int, _Member] = {}
        self.poller = _Poller()
        self.buf = bytearray(RECV_SIZE)
        self.marker = spec.marker
        self.violations = 0
        self.witnesses: list[str] = []
        self.latencies: array[float] = array("d")
        self.parse_all = spec.parse and not self.is_publisher
        # Saturation only: a socket is reported readable once this many bytes wait (SO_RCVLOWAT), so a
        # worker takes dozens of lines per recv even from a server that sends one line per send. Well
        # under the window's bytes, so the slowest member always becomes readable before the window
        # closes; latency runs read every byte as soon as it lands.
        self.lowat = (
            min(RCVLOWAT, spec.window * 16)
            if spec.kind == "saturate" and hasattr(socket, "SO_RCVLOWAT")
            else 1
        )

    # -- setup ------------------------------------------------------------------------
    def connect_all(self) -> None:
        """Connect and join every member, :data:`JOIN_WAVE` at a time.

        A wave's name lines reach the server together, so its JOINs are broadcast close together and
        every member's writer wakes once per wave rather than once per join: joining 1000 members
        one by one wakes writer threads about half a million times.
        """
        deadline = time.monotonic() + self.spec.connect_timeout
        for start in range(0, len(self.names), JOIN_WAVE):
            wave = self.names[start : start + JOIN_WAVE]
            socks: list[tuple[str, socket.socket, bytes]] = []
            for name in wave:
                try:
                    sock = socket.create_connection(
                        (self.spec.host, self.spec.port), timeout=self.spec.connect_timeout
                    )
                except OSError as exc:
                    raise LoadError(
                        f"{name}: cannot connect to {self.spec.host}:{self.spec.port}: {exc}"
                    ) from None
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                socks.append((name, sock, b""))
            for k, (name, sock, _) in enumerate(socks):
                _, rest = _read_until(sock, name, b"", b"HELLO", deadline)
                sock.sendall(name.encode() + b"\n")
                socks[k] = (name, sock, rest)
            for name, sock, buf in socks:
                _, rest = _read_until(sock, name, buf, b"OK", deadline)
                sock.setblocking(False)
                # The first receiver of each worker is its sample (the publisher process only counts).
                parses = self.parse_all or (not self.members and not self.is_publisher)
                member = _Member(name, sock, parses)
                self.members.append(member)
                self.by_fd[member.fd] = member
                self.poller.register(member.fd)
                if rest:
                    self._feed(member, rest, 0.0)

    # -- receiving --------------------------------------------------------------------
    def receive(self, timeout: float) -> None:
        """Poll once and read every ready member once."""
        buf = self.buf
        for fd, _ in self.poller.poll(timeout):
            m = self.by_fd.get(fd)
            if m is None:
                continue
            try:
                n = m.sock.recv_into(buf)
            except BlockingIOError:
                continue
            except OSError:
                n = 0
            if n == 0:
                self._close_member(m)
                continue
            if m.started and not m.parses:
                m.count += buf.count(b"\n", 0, n)
            else:
                self._feed(m, bytes(buf[:n]), time.time())

    def _close_member(self, m: _Member) -> None:
        m.closed = True
        self.poller.unregister(m.fd)
        del self.by_fd[m.fd]

    def _feed(self, m: _Member, data: bytes, now: float) -> None:
        """The slow path: before the marker, or a member that parses."""
        if not m.started:
            data = m.tail + data
            i = data.find(self.marker)
            if i < 0:
                m.tail = data[-len(self.marker) :]
                return
            m.started = True
            m.tail = b""
            if self.lowat > 1:
                _set_lowat(m.sock, self.lowat)
            data = data[i + len(self.marker) :]
            if not data:
                return
        m.count += data.count(b"\n")
        if not m.parses:
            return
        data = m.tail + data
        cut = data.rfind(b"\n") + 1
        m.tail = data[cut:]
        if not self.parse_all and m.sampled > SAMPLE_FIRST and m.sampled > SAMPLE_SHARE * m.count:
            # Skip this chunk: after it, each sender's next counter (and the next seq) only has to be higher.
            m.contiguous = False
            if m.last_n:
                m.floor.update(m.last_n)
                m.last_n = {}
            return
        self._check(m, data[:cut], now)

    def _check(self, m: _Member, lines: bytes, now: float) -> None:
        """Order (seq and per-sender counter) and, in parse mode, latency of complete lines."""
        contiguous = m.contiguous
        last_seq = m.last_seq
        last_n = m.last_n
        floor = m.floor
        lat = self.latencies if self.parse_all else None
        k = 0
        for seq_b, bot, n_b, due_b, event_seq_b in _MSG_RE.findall(lines):
            k += 1
            if event_seq_b:  # a JOIN or LEAVE: it only moves the seq on
                seq = int(event_seq_b)
                if last_seq >= 0 and (seq != last_seq + 1 if contiguous else seq <= last_seq):
                    self._violation(f"{m.name}: seq {seq} after {last_seq}")
                last_seq = seq
                contiguous = True
                continue
            if seq_b:
                seq = int(seq_b)
                if last_seq >= 0 and (seq != last_seq + 1 if contiguous else seq <= last_seq):
                    self._violation(f"{m.name}: seq {seq} after {last_seq}")
                last_seq = seq
            n = int(n_b)
            prev = last_n.get(bot)
            if prev is None:
                prev = floor.get(bot, -1)
                if n <= prev:
                    self._violation(f"{m.name}: {bot.decode()} n={n} after n={prev}")
            elif n != prev + 1:
                self._violation(f"{m.name}: {bot.decode()} n={n} after n={prev}")
            last_n[bot] = n
            contiguous = True
            if lat is not None:
                lat.append(now - float(due_b))
        m.last_seq = last_seq
        m.contiguous = contiguous
        m.sampled += k

    def _violation(self, text: str) -> None:
        self.violations += 1
        if len(self.witnesses) < MAX_WITNESSES:
            self.witnesses.append(text)

    def publish_counts(self) -> None:
        members = self.members
        self.counts[self.slot] = sum(m.count for m in members)
        self.mins[self.slot] = (
            min((m.count for m in members if not m.closed), default=0) if members else 1 << 62
        )

    # -- the phases -----------------------------------------------------------------
    def run(self) -> None:
        self.publish_counts()
        self.connect_all()
        self.publish_counts()
        self.pipe.send(("joined", self.slot, len(self.members)))
        while self.phase.value == SETUP:
            self.receive(IDLE_POLL)
        if self.phase.value == GO:
            if self.is_publisher:
                self._publish()
            else:
                while self.phase.value == GO:
                    self.receive(IDLE_POLL)
                    self.publish_counts()
        if self.phase.value >= EXIT:
            return
        self._drain()
        self.pipe.send(("result", self.slot, self._figures()))
        while self.phase.value < EXIT:
            self.receive(IDLE_POLL)  # keep reading: the server must not see us stall

    def _drain(self) -> None:
        if self.lowat > 1:  # the last lines of a run may be fewer than the low-water mark
            for m in self.members:
                if not m.closed:
                    _set_lowat(m.sock, 1)
        # An overloaded server may still be working through a long backlog: wait as long as lines keep
        # arriving (up to drain_timeout), but a member that gets nothing for DRAIN_IDLE seconds while
        # short of the total is missing those lines for good.
        now = time.monotonic()
        deadline = now + self.spec.drain_timeout
        idle_deadline = now + DRAIN_IDLE
        last = -1
        while self.phase.value < EXIT:
            now = time.monotonic()
            if now >= deadline or now >= idle_deadline:
                break
            target = self.final_sent.value
            if target >= 0 and all(m.closed or m.count >= target for m in self.members):
                break
            self.receive(IDLE_POLL)
            self.publish_counts()
            total = sum(m.count for m in self.members)
            if total != last:
                last, idle_deadline = total, time.monotonic() + DRAIN_IDLE
        self.publish_counts()

    def _figures(self) -> dict[str, Any]:
        target = max(0, self.final_sent.value)
        return {
            "counts": [m.count for m in self.members],
            "lost": sum(max(0, target - m.count) for m in self.members),
            "extra": sum(max(0, m.count - target) for m in self.members),
            "drops": sum(1 for m in self.members if m.closed),
            "violations": self.violations,
            "witnesses": self.witnesses,
            "sampled": sum(m.sampled for m in self.members),
            "latencies": self.latencies.tobytes() if self.parse_all else None,
        }

    # -- the publisher ----------------------------------------------------------------
    def _publish(self) -> None:
        spec = self.spec
        pubs = self.members
        p0 = pubs[0]
        p0.sock.setblocking(True)
        p0.sock.sendall(b"bench-start\n")
        p0.sock.setblocking(False)
        deadline = time.monotonic() + spec.connect_timeout
        while not p0.started:
            if time.monotonic() > deadline or self.phase.value != GO:
                raise LoadError("the start marker did not come back to p0")
            self.receive(IDLE_POLL)
        self.publish_counts()
        self.pipe.send(("started", self.slot, time.time()))
        # Each publisher's line: b=<bot> n=<10 digits> t=<due> then padding to text_bytes.
        heads = [f"b={m.name.split('-')[0]} n=".encode() for m in pubs]
        pads = []
        for head in heads:
            fixed = len(head) + 10 + len(" t=") + 17 + 1  # n, t=<10.6f>, the space before the pad
            pads.append(b" " + b"x" * max(0, spec.text_bytes - fixed))
        pending = [b""] * len(pubs)
        next_n = [0] * len(pubs)
        sent = 0
        if spec.kind == "saturate":
            sent = self._saturate(heads, pads, pending, next_n)
        else:
            sent = self._paced(heads, pads, pending, next_n)
        # Whatever a publisher could not hand to its socket yet still has to go: it was counted as sent.
        flush_deadline = time.monotonic() + spec.drain_timeout
        while any(pending) and time.monotonic() < flush_deadline:
            self._flush(pending)
            self.receive(0.001)
        self.final_sent.value = sent

    def _flush(self, pending: list[bytes]) -> None:
        for i, data in enumerate(pending):
            if data:
                m = self.members[i]
                try:
                    k = m.sock.send(data)
                except BlockingIOError:
                    continue
                pending[i] = data[k:]

    def _saturate(
        self, heads: list[bytes], pads: list[bytes], pending: list[bytes], next_n: list[int]
    ) -> int:
        spec = self.spec
        mins = self.mins
        slots = len(mins)
        n_pub = len(heads)
        window = max(1, spec.window)
        per_pub = max(1, min(spec.batch, window // n_pub))
        sent = 0
        phase = self.phase
        while phase.value == GO:
            self.receive(0.0)
            self.publish_counts()
            slowest = min(mins[i] for i in range(slots))
            room = window - (sent - slowest)
            if room < n_pub:
                self.receive(0.0005)  # wait for the slowest member, on our own sockets' data
                continue
            if any(pending):
                self._flush(pending)
                if any(pending):
                    self.receive(0.0005)  # the server is not reading this fast: read while it catches up
                continue
            k = min(per_pub, room // n_pub)
            stamp = b"%.6f" % time.time()
            for i in range(n_pub):
                head, pad, n0 = heads[i], pads[i], next_n[i]
                block = b"".join([b"%s%010d t=%s%s\n" % (head, n, stamp, pad) for n in range(n0, n0 + k)])
                next_n[i] = n0 + k
                pending[i] = block
            sent += k * n_pub
            self._flush(pending)
        return sent

    def _paced(self, heads: list[bytes], pads: list[bytes], pending: list[bytes], next_n: list[int]) -> int:
        spec = self.spec
        n_pub = len(heads)
        rate = max(spec.rate, 1e-3)
        t0 = time.time()
        j = 0
        phase = self.phase
        while phase.value == GO:
            now = time.time()
            due = t0 + j / rate
            if due > now:
                self._wait_until(min(due, now + IDLE_POLL))
                self.publish_counts()
                continue
            # Every message due by now goes out, each stamped with its own due time.
            while due <= now:
                i = j % n_pub
                pending[i] += b"%s%010d t=%.6f%s\n" % (heads[i], next_n[i], due, pads[i])
                next_n[i] += 1
                j += 1
                due = t0 + j / rate
            self._flush(pending)
        return j

    def _wait_until(self, when: float) -> None:
        """Read our own sockets until ``when``, to the microsecond: ``epoll`` rounds its timeout up to
        a whole millisecond, which would make every paced message up to 1 ms late."""
        socks = [m.sock for m in self.members if not m.closed]
        while True:
            remaining = when - time.time()
            if remaining <= 0:
                return
            ready, _, _ = select.select(socks, [], [], remaining)
            if ready:
                self.receive(0.0)


def _set_lowat(sock: socket.socket, nbytes: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, nbytes)
    except OSError as exc:  # not supported here: every byte wakes the worker, which only costs CPU
        log.debug("SO_RCVLOWAT %d: %s", nbytes, exc)


def _worker_main(
    slot: int,
    spec: LoadSpec,
    names: list[str],
    phase: Any,
    counts: Any,
    mins: Any,
    final_sent: Any,
    pipe: Connection,
) -> None:
    """The entry point of a worker process: run, and report any failure as one message."""
    worker = _Worker(slot, spec, names, phase, counts, mins, final_sent, pipe)
    try:
        worker.run()
    except LoadError as exc:
        pipe.send(("error", slot, str(exc)))
    except Exception:
        pipe.send(("error", slot, traceback.format_exc(limit=5)))
    finally:
        for m in worker.members:
            m.sock.close()
        worker.poller.close()
        pipe.close()


# -- the parent side -------------------------------------------------------------------


class _CpuProbe:
    """CPU times of the server, the workers and the machine, sampled at the two ends of a window."""

    def __init__(self, server_pid: int | None, worker_pids: list[int]) -> None:
        import psutil

        self._psutil = psutil
        self.server = self._process(server_pid) if server_pid else None
        self.workers = [p for p in (self._process(pid) for pid in worker_pids) if p is not None]
        self.start: tuple[float, float | None, list[float], Any] | None = None

    def _process(self, pid: int) -> Any:
        try:
            return self._psutil.Process(pid)
        except self._psutil.Error:
            return None

    def _cpu(self, proc: Any) -> float:
        try:
            t = proc.cpu_times()
        except self._psutil.Error:
            return 0.0
        return float(t.user + t.system)

    def snapshot(self) -> tuple[float, float | None, list[float], Any]:
        return (
            time.monotonic(),
            self._cpu(self.server) if self.server is not None else None,
            [self._cpu(p) for p in self.workers],
            self._psutil.cpu_times(),
        )

    def window(
        self, a: tuple[float, float | None, list[float], Any], b: tuple[float, float | None, list[float], Any]
    ) -> CpuWindow:
        wall = max(b[0] - a[0], 1e-9)
        server = None if a[1] is None or b[1] is None else 100.0 * (b[1] - a[1]) / wall
        per = [100.0 * (y - x) / wall for x, y in zip(a[2], b[2], strict=True)]
        ta, tb = a[3], b[3]
        total = sum(tb) - sum(ta)
        idle = (tb.idle - ta.idle) + (getattr(tb, "iowait", 0.0) - getattr(ta, "iowait", 0.0))
        machine = 100.0 * (total - idle) / total if total > 0 else 0.0
        return CpuWindow(
            server=server,
            generator=sum(per),
            generator_max=max(per, default=0.0),
            machine=machine,
            cores=os.cpu_count() or 1,
        )


def _context() -> Any:
    """``fork`` where it is safe (a single-threaded parent on a system that has it): a run then starts its
    workers in milliseconds instead of re-importing everything; ``spawn`` otherwise."""
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _split(names: list[str], n_pub: int, procs: int) -> list[list[str]]:
    """Publishers in slot 0; the rest dealt round-robin over the receiver processes."""
    rest = names[n_pub:]
    procs = max(1, min(procs, len(rest))) if rest else 0
    return [names[:n_pub]] + [rest[i::procs] for i in range(procs)]


def run_load(
    spec: LoadSpec,
    *,
    server_pid: int | None = None,
    on_joined: Callable[[], None] | None = None,
    on_tick: Callable[[], None] | None = None,
) -> LoadResult:
    """Run one load against ``spec.host:spec.port`` and measure it. Raises :class:`LoadError`.

    ``on_joined`` is called once every member has joined and before any load (the memory case measures
    the idle server there); ``on_tick`` about every 0.1 s during the measured window.
    """
    if spec.members < 1:
        raise LoadError("a run needs at least one member")
    ctx = _context()
    groups = _split(spec.names(), spec.n_publishers, spec.procs)
    slots = len(groups)
    phase = ctx.RawValue("i", SETUP)
    counts = ctx.RawArray("q", slots)
    mins = ctx.RawArray("q", slots)
    final_sent = ctx.RawValue("q", -1)
    pipes: list[Connection] = []
    procs: list[Any] = []
    try:
        for slot, names in enumerate(groups):
            parent_end, child_end = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_worker_main,
                args=(slot, spec, names, phase, counts, mins, final_sent, child_end),
                name=f"loadgen-{slot}",
                daemon=True,
            )
            proc.start()
            child_end.close()
            pipes.append(parent_end)
            procs.append(proc)
        return _drive(spec, procs, pipes, phase, counts, final_sent, server_pid, on_joined, on_tick)
    finally:
        phase.value = EXIT
        for proc in procs:
            proc.join(5.0)
            if proc.is_alive():
                proc.kill()
                proc.join(5.0)
        for pipe in pipes:
            pipe.close()


def _collect(
    pipes: list[Connection], procs: list[Any], want: str, n: int, timeout: float
) -> dict[int, tuple[Any, ...]]:
    """Wait for ``n`` messages of kind ``want``; an ``error`` message or a dead worker ends the run."""
    got: dict[int, tuple[Any, ...]] = {}
    deadline = time.monotonic() + timeout
    open_pipes = list(pipes)
    while len(got) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LoadError(f"the load generator timed out waiting for {want!r} ({len(got)}/{n} workers)")
        for ready in wait_connections(open_pipes, timeout=min(remaining, 0.5)):
            assert isinstance(ready, Connection)
            try:
                msg = ready.recv()
            except EOFError:
                open_pipes.remove(ready)
                raise LoadError("a load generator process ended without reporting") from None
            if msg[0] == "error":
                raise LoadError(f"load generator worker {msg[1]}: {msg[2]}")
            if msg[0] == want:
                got[msg[1]] = msg
        if any(not p.is_alive() and p.exitcode not in (0, None) for p in procs):
            raise LoadError("a load generator process died")
    return got


def _drive(
    spec: LoadSpec,
    procs: list[Any],
    pipes: list[Connection],
    phase: Any,
    counts: Any,
    final_sent: Any,
    server_pid: int | None,
    on_joined: Callable[[], None] | None,
    on_tick: Callable[[], None] | None,
) -> LoadResult:
    t_connect = time.monotonic()
    _collect(pipes, procs, "joined", len(procs), spec.connect_timeout + 10.0)
    connect_s = time.monotonic() - t_connect
    if on_joined is not None:
        on_joined()
    probe = _CpuProbe(server_pid, [p.pid for p in procs])
    phase.value = GO
    _collect(pipes[:1], procs, "started", 1, spec.connect_timeout)
    # Warm up, then the measured window. The waits are on the workers' pipes, so that a worker that fails
    # ends the run at once; nothing is expected on them in between.
    _quiet_wait(pipes, spec.warmup, on_tick)
    a, count_a = probe.snapshot(), sum(counts)
    _quiet_wait(pipes, spec.seconds, on_tick)
    b, count_b = probe.snapshot(), sum(counts)
    phase.value = STOP
    results = _collect(pipes, procs, "result", len(procs), spec.drain_timeout + spec.connect_timeout)
    cpu = probe.window(a, b)
    sent = max(0, final_sent.value)
    figures = [results[slot][2] for slot in sorted(results)]
    latencies: array[float] | None = None
    if spec.parse:
        latencies = array("d")
        for f in figures:
            if f["latencies"]:
                latencies.frombytes(f["latencies"])
    return LoadResult(
        spec=spec,
        window_s=b[0] - a[0],
        deliveries=count_b - count_a,
        sent=sent,
        expected=sent * spec.members,
        received=sum(sum(f["counts"]) for f in figures),
        lost=sum(f["lost"] for f in figures),
        extra=sum(f["extra"] for f in figures),
        drops=sum(f["drops"] for f in figures),
        order_violations=sum(f["violations"] for f in figures),
        sampled=sum(f["sampled"] for f in figures),
        witnesses=[w for f in figures for w in f["witnesses"]][:MAX_WITNESSES],
        latencies=latencies,
        cpu=cpu,
        generator_bound=is_generator_bound(cpu),
        connect_s=connect_s,
    )


def _quiet_wait(pipes: list[Connection], seconds: float, on_tick: Callable[[], None] | None) -> None:
    """Let ``seconds`` pass while watching the workers: any message now is an error report."""
    end = time.monotonic() + seconds
    while True:
        remaining = end - time.monotonic()
        if remaining <= 0:
            return
        for ready in wait_connections(pipes, timeout=min(remaining, 0.1)):
            assert isinstance(ready, Connection)
            try:
                msg = ready.recv()
            except EOFError:
                raise LoadError("a load generator process ended early") from None
            if msg[0] == "error":
                raise LoadError(f"load generator worker {msg[1]}: {msg[2]}")
        if on_tick is not None:
            on_tick()
