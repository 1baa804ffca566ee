"""One worker process of the load generator: its members, its poll loop, the publishers' sends.

See :mod:`harness.bench.loadgen` for how a run goes and why members count lines instead of parsing them.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import time
import traceback
from array import array
from multiprocessing.connection import Connection

from harness.bench.loadgen.spec import (
    EXIT,
    GO,
    MAX_WITNESSES,
    NOT_WAITING,
    SETUP,
    Failed,
    Figures,
    Joined,
    LoadError,
    LoadSpec,
    Ready,
    Shared,
    Started,
)
from harness.bench.loadgen.wire import WireError, connect, wire_for
from harness.record.payload import due_text

log = logging.getLogger(__name__)

#: One receive: large, so that a worker that falls behind takes many lines per syscall and catches up.
RECV_SIZE = 1 << 18
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
#: Saturation: the longest the publisher sleeps waiting for the window when no wake-up comes (a wake-up
#: can be missed, rarely: see ``_Worker.publish_counts``).
WAKE_FALLBACK = 0.001


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
        "lines",
        "credit",
        "marker",
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

    def __init__(self, name: str, sock: socket.socket, parses: bool, marker: bytes) -> None:
        self.name = name
        self.sock = sock
        self.fd = sock.fileno()
        # Messages after the marker, counting a publisher's own as received where the server sends it no
        # echo (``credit``): the window and the loss count compare it with the messages sent.
        self.count = 0
        self.lines = 0  # lines after the marker, where a message takes several (Wire.lines_per_message)
        self.credit = 0  # own messages sent, on a server that does not echo them
        self.marker = marker  # the bytes that end the opening marker in this member's stream
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


class _Worker:
    """The body of one worker process: its members, its poll loop, its figures."""

    def __init__(self, slot: int, spec: LoadSpec, names: list[str], shared: Shared, pipe: Connection) -> None:
        self.slot = slot
        self.spec = spec
        self.names = names
        self.phase = shared.phase
        self.counts = shared.counts
        self.mins = shared.mins
        self.final_sent = shared.final_sent
        self.connect = shared.connect
        self.pipe = pipe
        self.is_publisher = slot == 0
        # The window's wake-up (see Shared): the publisher polls the read end, the others write to the
        # write end, never blocking (a full pipe already holds a wake-up).
        self.wake_at = shared.wake_at
        self.wake_conn = shared.wake_r if self.is_publisher else shared.wake_w
        self.wake_fd = self.wake_conn.fileno()
        os.set_blocking(self.wake_fd, False)
        self.last_min = -1
        self.wire = wire_for(spec.protocol, spec.token)
        self.lpm = self.wire.lines_per_message
        self.quickack = self.wire.nagle and hasattr(socket, "TCP_QUICKACK")
        self.members: list[_Member] = []
        #: The publishers' sending sockets, in the order of their members.
        self.senders: list[socket.socket] = []
        self.by_fd: dict[int, _Member] = {}
        self.poller = _Poller()
        if self.is_publisher:
            self.poller.register(self.wake_fd)
        self.buf = bytearray(RECV_SIZE)
        self.violations = 0
        self.witnesses: list[str] = []
        self.latencies: array[float] = array("d")
        self.parse_all = spec.parse and not self.is_publisher
        # Saturation only: a socket is reported readable once this many bytes wait (SO_RCVLOWAT), so a
        # worker takes dozens of lines per recv even from a server that sends one line per send. Well
        # under the window's bytes, so the slowest member always becomes readable before the window
        # closes; latency runs read every byte as soon as it lands. Not against a server that leaves
        # Nagle on (IRC): it sends a small segment only once the last one is acknowledged, and the
        # kernel delays the ACK of data nobody reads (40 ms), so the run would crawl at one window per
        # 40 ms. There each recv asks for an immediate ACK instead (TCP_QUICKACK, which the kernel
        # clears again by itself).
        self.lowat = (
            min(RCVLOWAT, spec.window * 16)
            if spec.kind == "saturate" and hasattr(socket, "SO_RCVLOWAT") and not self.wire.nagle
            else 1
        )

    # -- setup ------------------------------------------------------------------------
    def connect_all(self) -> None:
        """Connect and join every member, ``join_wave`` at a time.

        A wave's joins reach the server together, so they are broadcast close together and every
        member's writer wakes once per wave rather than once per join: joining 1000 members one by one
        wakes writer threads about half a million times. A server with a short listen backlog gets
        smaller waves (:attr:`LoadSpec.join_wave`).
        """
        spec, wire = self.spec, self.wire
        deadline = time.monotonic() + spec.connect_timeout
        wave_size = max(1, spec.join_wave)
        try:
            for start in range(0, len(self.names), wave_size):
                wave = [
                    (name, connect(spec.host, spec.port, name, spec.connect_timeout))
                    for name in self.names[start : start + wave_size]
                ]
                for opened in wire.join(wave, deadline):
                    self._add_member(opened.name, opened.sock, opened.rest)
            if self.is_publisher:
                for m in self.members:
                    own = wire.open_publisher(spec.host, spec.port, m.name, spec.connect_timeout)
                    if own is None:
                        self.senders.append(m.sock)
                        continue
                    own.setblocking(False)
                    self.senders.append(own)
                    # Its replies are read and thrown away: a member of no figure (not in self.members).
                    sink = _Member(m.name + "/publish", own, parses=False, marker=b"")
                    sink.started = True
                    self.by_fd[sink.fd] = sink
                    self.poller.register(sink.fd)
        except WireError as exc:
            raise LoadError(str(exc)) from None

    def _add_member(self, name: str, sock: socket.socket, rest: bytes) -> None:
        sock.setblocking(False)
        # The first receiver of each worker is its sample (the publisher process only counts).
        parses = self.parse_all or (not self.members and not self.is_publisher)
        own = self.is_publisher and not self.members  # p0
        member = _Member(name, sock, parses, self.wire.marker(own))
        self.members.append(member)
        self.by_fd[member.fd] = member
        self.poller.register(member.fd)
        if rest:
            self._feed(member, rest, 0.0)

    # -- receiving --------------------------------------------------------------------
    def receive(self, timeout: float) -> None:
        """Poll once and read every ready member once."""
        buf = self.buf
        quickack = self.quickack
        for fd, _ in self.poller.poll(timeout):
            m = self.by_fd.get(fd)
            if m is None:
                if fd == self.wake_fd:
                    self._drain_wakes()
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
            if quickack:
                m.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            if m.started and not m.parses:
                if self.lpm == 1:
                    m.count += buf.count(b"\n", 0, n)
                else:
                    m.lines += buf.count(b"\n", 0, n)
                    m.count = m.lines // self.lpm
            else:
                self._feed(m, bytes(buf[:n]), time.time())

    def _drain_wakes(self) -> None:
        try:
            while os.read(self.wake_fd, 4096):
                pass
        except BlockingIOError:
            pass

    def _close_member(self, m: _Member) -> None:
        m.closed = True
        self.poller.unregister(m.fd)
        del self.by_fd[m.fd]

    def _feed(self, m: _Member, data: bytes, now: float) -> None:
        """The slow path: before the marker, or a member that parses."""
        if not m.started:
            data = m.tail + data
            i = data.find(m.marker)
            if i < 0:
                m.tail = data[-len(m.marker) :]
                return
            m.started = True
            m.tail = b""
            if self.lowat > 1:
                _set_lowat(m.sock, self.lowat)
            data = data[i + len(m.marker) :]
            if not data:
                return
        if self.lpm == 1:
            m.count += data.count(b"\n")
        else:
            m.lines += data.count(b"\n")
            m.count = m.lines // self.lpm
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
        for seq_b, bot, n_b, due_b, event_seq_b in self.wire.scanner.findall(lines):
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
        """Publish this worker's figures, and wake the publisher if it waits for them.

        The publisher waits for the window to open (saturation): it writes ``wake_at``, the count every
        worker's slowest member must reach, and reads ``mins`` once more; a worker writes ``mins`` and
        then reads ``wake_at``, and the one whose slowest member *crosses* it writes a byte to the
        publisher's wake-up pipe. A worker already past it when the publisher began to wait stays
        quiet (the publisher's second read saw it there): so the publisher wakes at most once per worker
        per awaited count, not at every line of the workers ahead. Without a fence between the two
        sides a wake-up can be missed (each may see the other's old value); the publisher then sleeps
        ``WAKE_FALLBACK`` before it looks again. Polling alone slept that long at every closing of the
        window (CPython rounds an ``epoll`` timeout up to a whole millisecond): at 10 members that nap,
        not the server, set the pace of the run.
        """
        members = self.members
        self.counts[self.slot] = sum(m.count - m.credit for m in members)
        slowest = min((m.count for m in members if not m.closed), default=0) if members else 1 << 62
        self.mins[self.slot] = slowest
        before, self.last_min = self.last_min, slowest
        if slowest != before and not self.is_publisher:
            awaited = self.wake_at.value
            if awaited != NOT_WAITING and before < awaited <= slowest:
                self.wake_at.value = NOT_WAITING
                try:
                    os.write(self.wake_fd, b"w")
                except BlockingIOError:  # the pipe is full of wake-ups already
                    pass

    # -- the phases -----------------------------------------------------------------
    def run(self) -> None:
        self.publish_counts()
        self.pipe.send(Ready(self.slot))
        # Every worker starts connecting at the same moment, so that the run's connect_s measures the
        # joins, not how long each process took to start.
        if not self.connect.wait(self.spec.connect_timeout) or self.phase.value >= EXIT:
            return
        began = time.monotonic()
        self.connect_all()
        self.publish_counts()
        self.pipe.send(Joined(self.slot, len(self.members), began, time.monotonic()))
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
        self.pipe.send(self._figures())
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

    def _figures(self) -> Figures:
        target = max(0, self.final_sent.value)
        return Figures(
            slot=self.slot,
            counts=[m.count - m.credit for m in self.members],
            lost=sum(max(0, target - m.count) for m in self.members),
            extra=sum(max(0, m.count - target) for m in self.members),
            drops=sum(1 for m in self.members if m.closed),
            violations=self.violations,
            witnesses=self.witnesses,
            sampled=sum(m.sampled for m in self.members),
            latencies=self.latencies.tobytes() if self.parse_all else None,
        )

    # -- the publisher ----------------------------------------------------------------
    def _publish(self) -> None:
        spec = self.spec
        pubs = self.members
        p0, p0_sender = pubs[0], self.senders[0]
        p0_sender.setblocking(True)
        p0_sender.sendall(self.wire.start_lines())
        p0_sender.setblocking(False)
        deadline = time.monotonic() + spec.connect_timeout
        while not p0.started:
            if time.monotonic() > deadline or self.phase.value != GO:
                raise LoadError("the start marker did not come back to p0")
            self.receive(IDLE_POLL)
        self.publish_counts()
        self.pipe.send(Started(self.slot))
        lines = [self.wire.template(spec.bot_id(m.name), spec.text_bytes) for m in pubs]
        pending = [b""] * len(pubs)
        next_n = [0] * len(pubs)
        sent = 0
        if spec.kind == "saturate":
            sent = self._saturate(lines, pending, next_n)
        else:
            sent = self._paced(lines, pending, next_n)
        # Whatever a publisher could not hand to its socket yet still has to go: it was counted as sent.
        flush_deadline = time.monotonic() + spec.drain_timeout
        while any(pending) and time.monotonic() < flush_deadline:
            self._flush(pending)
            self.receive(0.001)
        self.final_sent.value = sent

    def _flush(self, pending: list[bytes]) -> None:
        for i, data in enumerate(pending):
            if data:
                try:
                    k = self.senders[i].send(data)
                except BlockingIOError:
                    continue
                pending[i] = data[k:]

    def _saturate(self, lines: list[bytes], pending: list[bytes], next_n: list[int]) -> int:
        spec = self.spec
        mins = self.mins
        slots = len(mins)
        n_pub = len(lines)
        pubs = self.members
        credits = not self.wire.echo
        window = max(1, spec.window)
        wake_at = self.wake_at
        per_pub = max(1, min(spec.batch, window // n_pub))
        sent = 0
        phase = self.phase
        while phase.value == GO:
            self.receive(0.0)
            self.publish_counts()
            slowest = min(mins[i] for i in range(slots))
            room = window - (sent - slowest)
            if room < n_pub:
                # Wait for the slowest member: our own sockets' data, or a counting worker's wake-up
                # (publish_counts). Say what we wait for first, then look once more, so that a count
                # published in between is seen.
                wake_at.value = sent - window + n_pub
                slowest = min(mins[i] for i in range(slots))
                if window - (sent - slowest) < n_pub:
                    self.receive(WAKE_FALLBACK)
                wake_at.value = NOT_WAITING
                continue
            if any(pending):
                self._flush(pending)
                if any(pending):
                    self.receive(0.0005)  # the server is not reading this fast: read while it catches up
                continue
            k = min(per_pub, room // n_pub)
            stamp = due_text(time.time())
            for i in range(n_pub):
                line, n0 = lines[i], next_n[i]
                block = b"".join([line % (n, stamp) for n in range(n0, n0 + k)])
                next_n[i] = n0 + k
                pending[i] = block
                if credits:
                    pubs[i].count += k
                    pubs[i].credit += k
            sent += k * n_pub
            self._flush(pending)
        return sent

    def _paced(self, lines: list[bytes], pending: list[bytes], next_n: list[int]) -> int:
        spec = self.spec
        n_pub = len(lines)
        rate = max(spec.rate, 1e-3)
        pubs = self.members
        credits = not self.wire.echo
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
                pending[i] += lines[i] % (next_n[i], due_text(due))
                next_n[i] += 1
                if credits:
                    pubs[i].count += 1
                    pubs[i].credit += 1
                j += 1
                due = t0 + j / rate
            self._flush(pending)
        return j

    def _wait_until(self, when: float) -> None:
        """Read our own sockets until ``when``, to the microsecond: ``epoll`` rounds its timeout up to
        a whole millisecond, which would make every paced message up to 1 ms late."""
        socks = [m.sock for m in self.by_fd.values()]
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


def worker_main(slot: int, spec: LoadSpec, names: list[str], shared: Shared, pipe: Connection) -> None:
    """The entry point of a worker process: run, and report any failure as one message."""
    worker = _Worker(slot, spec, names, shared, pipe)
    try:
        worker.run()
    except LoadError as exc:
        pipe.send(Failed(slot, str(exc)))
    except Exception:  # any other failure is reported whole: the parent ends the run with it
        pipe.send(Failed(slot, traceback.format_exc(limit=5)))
    finally:
        for sock in {m.sock for m in worker.members} | set(worker.senders):
            sock.close()
        worker.poller.close()
        pipe.close()
