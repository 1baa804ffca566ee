"""Outboxes: how lines reach one member's socket. Three designs behind ``--delivery``.

Not the room and not the protocol: an outbox takes finished lines and gets them
to one socket, in order. Each connection owns one outbox, and the outbox is the
only code that writes to that connection's socket. The room calls
:meth:`Outbox.put` for every line the connection should receive, **always with
the room lock held**: puts to one outbox are therefore never concurrent (one
producer at a time) and a connection's lines leave in the order the room
produced them.

``direct``
    The original design: ``put`` calls ``sendall`` right away, under the room
    lock. One send per delivery, and a member that stops reading blocks the
    sender while it holds the lock, so the whole room stalls. Kept to teach
    exactly that; the slow-consumer rule cannot apply to it.
``queued``
    A writer thread per member fed by a ``queue.Queue``: the broadcaster never
    touches a socket, but each line costs a condition notify (a wake-up of the
    writer) and a ``send`` of its own.
``batched`` (the default)
    A writer thread per member fed by a ``deque``, woken only when the deque
    goes from empty to non-empty, which drains everything pending into one
    send; and, while the writer is idle, the *fast path*: the broadcaster hands
    the line to the socket itself with a non-blocking ``send``.

Three rules keep ``batched`` correct and the room lock short; each is argued
once, in docs/architecture.md: *no lost wake-up* ("No lost wake-up in
batched"), *the fast path keeps each connection's order* ("The fast path keeps
each connection's order"), and *the fast path's budget*
(:data:`FAST_PATH_BUDGET`). The backpressure rule that :meth:`Outbox.wait_below`
serves is there too ("Backpressure and slow consumers").
"""

from __future__ import annotations

import enum
import logging
import math
import queue
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence

log = logging.getLogger(__name__)

#: How long a writer sleeps between checks of its stop flags when idle. Only a
#: bound on shutdown paths that lose their wake-up; normal wakes are events.
IDLE_WAIT = 1.0

#: A reader waiting for a congested recipient re-checks it this often; its
#: writer's progress normally wakes the reader sooner.
STALL_SLICE = 0.05

#: A recipient past the high-water mark whose writer moves no byte into its
#: socket for this long is *stalled*: nobody waits for it again until it makes
#: progress, so it overflows and is dropped as slow. Long enough that a healthy
#: writer starved of the GIL by busy readers (or a client process briefly
#: descheduled) is never mistaken for a dead one; that mistake would drop a
#: member that keeps reading.
STALL_TIMEOUT = 0.5

#: ... and only after the waiting reader itself ran at least this many slices
#: in that time: the writer then had its chances to run too.
STALL_SLICES_MIN = 5

#: A writer hands its socket at most this many bytes per send call, so that
#: its progress shows while a large batch drains into a slow peer.
SEND_SLICE = 65536

#: How long one broadcast may spend in fast-path sends under the room lock;
#: past it, lines go to the writers. Each send lets go of the GIL, and taking it
#: back can cost a switch interval (5 ms) under load: the budget bounds the
#: section whatever the number of members (docs/architecture.md says why 50 ms).
FAST_PATH_BUDGET = 0.050

#: The longest one reader's batch of lines waits for a congested recipient whose
#: *peer* is behind; that recipient is then marked stalled (the backpressure
#: rule, docs/architecture.md "Backpressure and slow consumers").
MAX_BACKPRESSURE_WAIT = 2.0


class Delivery(str, enum.Enum):
    """The delivery designs selectable with ``--delivery``."""

    DIRECT = "direct"
    QUEUED = "queued"
    BATCHED = "batched"


class Outbox:
    """Base class: one connection's ordered path to its socket.

    Lifecycle: ``start()``; any number of ``put()`` calls (room lock held);
    then either ``finish()`` (send what is queued, then stop),
    ``finish_with(line)`` (the same, after one last line, without ever
    blocking) or ``abort()`` (drop what is queued, shut the socket, stop).
    ``join()`` waits for the writer thread.

    A subclass whose ``put`` can block (it sends in the caller's thread) must
    override :meth:`finish_with`, which must not.
    """

    has_writer = False

    def __init__(self, sock: socket.socket, name: str = "") -> None:
        self.sock = sock
        self.label = name
        self.is_finishing = False
        self.is_aborted = False
        self.is_broken = False  # a send failed: the peer is gone
        self.sends = 0  # completed batches (send calls, in the direct design)
        self.bytes_sent = 0  # the writer's progress counter, as seen by wait_below
        self.is_stalled = False  # congested and no progress for STALL_TIMEOUT
        self._progress = threading.Condition()  # guards nothing but the wait below
        self._waiters = 0
        self.thread: threading.Thread | None = None

    # -- called with the room lock held -------------------------------------
    def put(self, line: bytes) -> int:
        """Queue (or send) one line; return the backlog in lines after it."""
        raise NotImplementedError

    def put_many(self, lines: list[bytes], send_until: float = math.inf, joined: bytes = b"") -> int:
        """Queue (or send) several lines, in order; return the backlog after them.

        ``send_until`` (a ``time.perf_counter()`` value) ends the ``batched``
        fast path for this call once passed. ``joined``, when not empty, is
        ``b"".join(lines)``, made once by a broadcast for all its recipients
        instead of once per recipient. This default is one :meth:`put` per
        line, so ``direct`` and ``queued`` keep their cost model (one send, one
        wake-up per line).
        """
        n = 0
        for line in lines:
            n = self.put(line)
        return n

    def backlog(self) -> int:
        return 0

    def finish(self) -> None:
        """Send everything queued so far, then stop. No puts after this."""
        self.is_finishing = True

    def finish_with(self, line: bytes, send_until: float = 0.0) -> None:
        """Put one last line (``BYE``), then :meth:`finish`; never blocks, whatever the peer does.

        For shutdown, which must end within its budget even when a member's
        socket is full, and which may run without the room lock (see
        :meth:`chat.room.Room.shutdown`). ``send_until`` is the fast path's
        deadline, as for :meth:`put_many`; the default, already passed, only
        queues the line. This default queues through :meth:`put_many`, which
        never blocks for a design with a writer thread.
        """
        self.put_many([line], send_until)
        self.finish()

    def abort(self) -> None:
        """Drop the queue and stop now; shuts the socket so a blocked send returns."""
        self.is_aborted = True
        self.is_finishing = True
        shutdown_socket(self.sock)

    # -- writer side ----------------------------------------------------------
    def start(self) -> None:
        """Start the writer thread, if the design has one; RuntimeError when the OS refuses a thread."""
        if self.has_writer:
            thread = threading.Thread(target=self._run, name=f"writer-{self.label}", daemon=True)
            thread.start()
            self.thread = thread  # only a started thread: join() must never meet an unstarted one

    def join(self, timeout: float | None) -> bool:
        """Wait for the writer thread; True when it has ended."""
        if self.thread is None:
            return True
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def _run(self) -> None:
        try:
            self._write_loop()
        except OSError as exc:
            # The peer went away or the socket was shut: the reader reports it.
            self.is_broken = True
            log.debug("writer %s stopped: %s", self.label, exc)
        except Exception:
            # A bug of ours: this connection gets nothing more (never a gap
            # followed by newer lines), and its reader will see it go.
            self.is_broken = True
            log.exception("writer %s failed", self.label)
        finally:
            self._note_progress()

    def _write_loop(self) -> None:
        raise NotImplementedError

    def _send(self, data: bytes) -> None:
        # In slices rather than one sendall(): every slice the kernel takes is
        # progress that a waiting reader can see, so a large batch going out
        # to a slow but live peer is never mistaken for a stall. (A blocking
        # send() of a large buffer returns only once all of it is queued.)
        view = memoryview(data)
        while view:
            n = self.sock.send(view[:SEND_SLICE])
            self.bytes_sent += n
            view = view[n:]
            if view:
                self._note_progress()
        self.sends += 1
        self._note_progress()

    def _note_progress(self) -> None:
        self.is_stalled = False
        if self._waiters:  # unlocked read: a missed notify costs one slice
            with self._progress:
                self._progress.notify_all()

    # -- backpressure, called by readers WITHOUT the room lock ------------------
    def wait_below(self, high_water: int, deadline: float) -> int:
        """Wait while this outbox holds more than ``high_water`` lines; return the slices waited.

        Returns when it drains to the mark or stops; or, marking it stalled
        (nobody waits for it again until its writer makes progress, so it will
        be dropped as slow when it overflows), at ``deadline`` or when its
        writer moves no byte for :data:`STALL_TIMEOUT`. The count of slices
        (times this reader ran while it waited) is what
        :func:`wait_for_congested` needs to judge the other recipients too.
        """
        slices = 0
        with self._progress:
            self._waiters += 1
            try:
                progress = self.bytes_sent
                since = time.monotonic()
                idle_slices = 0  # slices this reader got to run while the writer moved nothing
                while self.backlog() > high_water and not self.is_finishing and not self.is_stalled:
                    if self.is_broken:  # its writer is gone: nothing will drain it
                        self.is_stalled = True
                        break
                    now = time.monotonic()
                    if now >= deadline:
                        if peer_is_behind(self.sock):
                            # Its client reads slower than the room talks, and has kept a
                            # reader waiting for the longest pause allowed: treat it as
                            # stalled until its writer makes progress.
                            self.is_stalled = True
                            log.info("%s stalled: its peer is still behind at the deadline", self.label)
                        break  # else the server is behind, not the peer: the reader decides
                    if self.bytes_sent != progress:
                        progress, since, idle_slices = self.bytes_sent, now, 0
                    elif now - since >= STALL_TIMEOUT and idle_slices >= STALL_SLICES_MIN:
                        # Time alone is not enough: a server process descheduled for
                        # STALL_TIMEOUT froze the writer and this reader alike.
                        self.is_stalled = True
                        log.info("%s stalled: no progress for %.1f s", self.label, STALL_TIMEOUT)
                        break
                    self._progress.wait(min(STALL_SLICE, deadline - now))
                    idle_slices += 1
                    slices += 1
            finally:
                self._waiters -= 1
        return slices


class DirectOutbox(Outbox):
    """``sendall`` in the caller's thread, under the room lock (the original design)."""

    def put(self, line: bytes) -> int:
        if self.is_finishing or self.is_broken:
            return 0
        try:
            self.sock.sendall(line)
            self.sends += 1
            self.bytes_sent += len(line)
        except OSError as exc:
            # The reader of this connection sees the same failure and leaves.
            self.is_broken = True
            log.debug("direct send to %s failed: %s", self.label, exc)
        return 0

    def finish_with(self, line: bytes, send_until: float = 0.0) -> None:
        """Best effort: one non-blocking send, then finish. ``put`` would block on a full socket.

        A line that the socket does not take at once is lost; the connection is
        closing anyway.
        """
        if not self.is_finishing and not self.is_broken:
            try:
                self.sock.send(line, socket.MSG_DONTWAIT)
            except OSError as exc:
                log.debug("last send to %s failed: %s", self.label, exc)
        self.finish()


class QueuedOutbox(Outbox):
    """A writer thread fed by ``queue.Queue``: one wake-up and one send per line."""

    has_writer = True

    def __init__(self, sock: socket.socket, name: str = "") -> None:
        super().__init__(sock, name)
        self._queue: queue.Queue[bytes | None] = queue.Queue()

    def put(self, line: bytes) -> int:
        if self.is_finishing:
            return 0
        self._queue.put(line)
        return self._queue.qsize()

    def backlog(self) -> int:
        return self._queue.qsize()

    def finish(self) -> None:
        if not self.is_finishing:
            super().finish()
            self._queue.put(None)  # sentinel: everything before it is sent

    def abort(self) -> None:
        super().abort()
        self._queue.put(None)

    def _write_loop(self) -> None:
        while True:
            try:
                line = self._queue.get(timeout=IDLE_WAIT)
            except queue.Empty:
                continue
            if line is None or self.is_aborted:
                return
            self._send(line)


class BatchedOutbox(Outbox):
    """A writer thread fed by a deque, woken only on empty to non-empty; one send per drain."""

    has_writer = True
    #: The idle fast path (docs/architecture.md). Off in tests and
    #: benchmarks that need lines to stay queued.
    send_when_idle = True

    def __init__(self, sock: socket.socket, name: str = "") -> None:
        super().__init__(sock, name)
        self._lines: deque[bytes] = deque()
        # The wake-up: a plain lock used as a binary semaphore, released means
        # "lines are waiting". Setting and taking it is one C call each, where
        # an Event runs a Condition in Python on both sides; under the GIL that
        # difference is most of what a wake-up costs.
        self._wake = threading.Lock()
        self._wake.acquire()
        #: Held by the writer from before it pops until after its send, and by
        #: the fast path (taken without blocking) around its send: whoever holds
        #: it is the only one with bytes on their way to this socket.
        self._sending = threading.Lock()

    def _signal(self) -> None:
        """Wake the writer (or leave it one pending wake-up). Never blocks."""
        try:
            self._wake.release()
        except RuntimeError:
            pass  # already released and not yet taken: one pending wake-up is enough

    def put(self, line: bytes) -> int:
        return self.put_many([line])

    def put_many(self, batch: list[bytes], send_until: float = math.inf, joined: bytes = b"") -> int:
        if self.is_finishing:
            return 0
        lines = self._lines
        if (
            not lines
            and self.send_when_idle
            and not self.is_broken
            and time.perf_counter() < send_until
            and self._sending.acquire(blocking=False)
        ):
            # The idle fast path: the whole batch in one send, without blocking.
            # It runs once per recipient of every broadcast, so it is one call
            # that makes no list and no bytes when the socket takes everything.
            # Taken only with the deque empty and ``_sending`` free (the writer
            # holds no bytes), so nothing older can still be on its way: order
            # is kept. A full socket buffer or a broken peer leave the rest to
            # the writer, which may block on it; the caller never does.
            data = joined or (batch[0] if len(batch) == 1 else b"".join(batch))
            try:
                taken = self.sock.send(data, socket.MSG_DONTWAIT)
            except BlockingIOError:
                taken = 0
            except OSError as exc:
                # The peer is gone: the writer meets the same error and stops,
                # and the reader of this connection reports it.
                log.debug("send to %s failed: %s", self.label, exc)
                taken = -1
            finally:
                self._sending.release()
            if taken > 0:
                self.sends += 1
                self.bytes_sent += taken
                self.is_stalled = False
                if taken == len(data):
                    return 0
                batch = _untaken(batch, taken)
        lines.extend(batch)  # one C call for the whole batch
        n = len(lines)
        if n <= len(batch):  # nothing older than this batch is left: the writer may be asleep
            self._signal()
        return n

    def backlog(self) -> int:
        return len(self._lines)

    def finish(self) -> None:
        super().finish()
        self._signal()

    def abort(self) -> None:
        super().abort()
        self._signal()

    def _write_loop(self) -> None:
        lines = self._lines
        wake = self._wake
        sending = self._sending
        while True:
            wake.acquire(timeout=IDLE_WAIT)  # takes the pending wake-up, if any
            with sending:  # from BEFORE the pops to AFTER the send: the fast path waits its turn
                while lines and not self.is_aborted:
                    n = len(lines)
                    pop = lines.popleft
                    chunk = b"".join([pop() for _ in range(n)])
                    self._send(chunk)
            if self.is_aborted or (self.is_finishing and not lines):
                return


def _untaken(batch: list[bytes], taken: int) -> list[bytes]:
    """What is left of ``batch`` after a send took its first ``taken`` bytes.

    Keeps the backlog counted in lines: the untaken tail of a partly sent
    line, then the whole lines after it.
    """
    for i, line in enumerate(batch):
        if taken < len(line):
            return [line[taken:], *batch[i + 1 :]]
        taken -= len(line)
    return []


def make_outbox(design: Delivery, sock: socket.socket, name: str = "") -> Outbox:
    if design is Delivery.DIRECT:
        return DirectOutbox(sock, name)
    if design is Delivery.QUEUED:
        return QueuedOutbox(sock, name)
    return BatchedOutbox(sock, name)


def peer_is_behind(sock: socket.socket) -> bool:
    """True when ``sock`` cannot take more bytes now: its peer lags behind what it was sent.

    That is what tells a client that reads too slowly (the kernel still holds
    what it was given, so the socket is not writable) from a server that is too
    slow (the writer, starved of CPU, finds room in the socket each time it
    sends). A socket that cannot be polled (closed), or whose peer is
    gone, counts as behind: the cautious answer, which lets the slow-consumer
    rule apply.
    """
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLOUT)
        ready = poller.poll(0)
    except (OSError, ValueError):
        return True
    mask = 0
    for _, events in ready:
        mask |= events
    if mask & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
        return True  # reset or shut: gone, which is as behind as a peer gets
    return not mask & select.POLLOUT


def wait_for_congested(
    congested: Outbox, watched: Sequence[Outbox], high_water: int, deadline: float
) -> None:
    """Wait for ``congested`` (:meth:`Outbox.wait_below`); judge every ``watched`` outbox on the same wait.

    One wait is evidence about every recipient, not only the one waited for.
    When it lasted at least :data:`STALL_TIMEOUT` and this reader ran at least
    :data:`STALL_SLICES_MIN` slices in it (the process was not merely
    descheduled), an outbox whose writer moved no byte during the whole wait
    and whose peer is still behind (:func:`peer_is_behind`: its socket takes
    nothing) stopped reading as surely as one that was waited for, and is
    marked stalled with it. So members that stop reading together cost the room
    one stall period, not one each in turn (docs/architecture.md,
    "Backpressure and slow consumers").
    """
    before = [(o, o.bytes_sent) for o in watched if o is not congested and not o.is_stalled]
    start = time.monotonic()
    slices = congested.wait_below(high_water, deadline)
    if slices < STALL_SLICES_MIN or time.monotonic() - start < STALL_TIMEOUT:
        return
    stalled = 0
    for outbox, sent in before:
        if (
            outbox.bytes_sent == sent
            and not outbox.is_stalled
            and not outbox.is_finishing
            and peer_is_behind(outbox.sock)
        ):
            outbox.is_stalled = True
            stalled += 1
    if stalled:
        log.info(
            "%d more stalled with %s: no progress and their peers behind during the same %.1f s",
            stalled,
            congested.label,
            time.monotonic() - start,
        )


def shutdown_socket(sock: socket.socket) -> None:
    """Shut both directions; wakes threads blocked in recv or send on it. Never raises."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already shut or never connected: nothing left to wake
