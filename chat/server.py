"""The threaded chat server: one thread accepts, one thread per client reads.

Threading model
---------------
* **Main thread** (:meth:`ChatServer.serve_forever`): accepts connections. A
  connection that finds every slot taken gets ``ERR full`` and is closed;
  otherwise it gets a reader thread (and, in the ``queued`` and ``batched``
  designs, a writer thread).
* **Reader thread, one per client** (:class:`Session`): reads lines, runs the
  handshake, turns lines into room calls. It owns its connection: it closes the
  socket and frees the slot when it ends, whatever the reason.
* **Writer thread, one per client** (``queued``/``batched``): the only code that
  writes to that client's socket; see :mod:`chat.delivery`.
* **Shared state**: the :class:`chat.room.Room` and nothing else. Its lock
  (``room.lock``, taken as ``with self.lock:`` inside each room method) guards
  the registry, the seq and the outboxes. The critical sections are named in
  :mod:`chat.room`: ``admit``, ``reply``, ``join``, ``say``, ``who``,
  ``leave``, ``release``, ``shutdown``.

Shutdown is cooperative through one event: Ctrl+C or SIGTERM calls
:meth:`ChatServer.shutdown`, the accept loop returns, every connection gets
``BYE server shutting down``, writers get a short deadline to flush, then every
socket is shut (waking blocked readers and writers) and every thread is joined.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import select
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from chat import cli, protocol
from chat.delivery import MAX_BACKPRESSURE_WAIT, Delivery, make_outbox, shutdown_socket
from chat.lockstat import InstrumentedLock, SupportsLock
from chat.protocol import (
    LINE_TOO_LONG,
    Blank,
    Chat,
    ErrorCode,
    LeaveReason,
    LineBuffer,
    Quit,
    RemoteProtocolError,
    UnknownCommand,
    Who,
)
from chat.room import SHUTDOWN_TEXT, Connection, Room

log = logging.getLogger("chat.server")

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 9999
#: As in the original design: a small room, raised with --max-clients.
DEFAULT_MAX_CLIENTS = 5
#: Lines queued for one member before it is dropped as slow (Redis' pub/sub
#: client-output-buffer-limit is the model).
DEFAULT_MAX_BACKLOG = 1000
DEFAULT_HANDSHAKE_TIMEOUT = 30.0
#: One recv; large enough to take many lines per call under load.
RECV_SIZE = 65536
#: Every thread the server starts is joined within this on shutdown; the whole
#: shutdown stays under the 2 s the contract allows.
SHUTDOWN_FLUSH = 0.6
SHUTDOWN_JOIN = 0.5
#: The accepting thread waits at most this long for the room's lock at a
#: time, so that it notices a shutdown even when a direct-design send blocks
#: the room.
ADMIT_LOCK_WAIT = 0.1
HELLO_TEXT = "welcome; send your username (1-20 letters, digits, _ or -)"
FULL_TEXT = "the server is full, try again later"


@dataclass(frozen=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_clients: int = DEFAULT_MAX_CLIENTS
    delivery: Delivery = Delivery.BATCHED
    max_line: int = protocol.DEFAULT_MAX_LINE
    max_backlog: int = DEFAULT_MAX_BACKLOG
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    sndbuf: int | None = None


class Session:
    """One client connection, driven by its reader thread from connect to close."""

    def __init__(self, server: ChatServer, sock: socket.socket, peer: str) -> None:
        self.server = server
        self.room = server.room
        self.sock = sock
        self.peer = peer
        self.outbox = make_outbox(server.config.delivery, sock, peer)
        self.conn = Connection(self.outbox, peer)
        self.buffer = LineBuffer(server.config.max_line)
        self.connected_at = time.monotonic()

    def run(self) -> None:
        """The reader thread's body: ``try: handle / except: report / finally: close``."""
        try:
            self._handle()
        except OSError as exc:
            log.debug("%s: connection error: %s", self.peer, exc)
            self.room.leave(self.conn, LeaveReason.DISCONNECTED)
        except Exception:
            # A bug in our code, never the client's fault: log it, drop only
            # this client, keep serving everyone else.
            log.exception("%s: internal error; closing this connection", self.peer)
            self.room.leave(self.conn, LeaveReason.DISCONNECTED)
        finally:
            self._close()

    # -- the two phases -----------------------------------------------------------
    def _handle(self) -> None:
        self.room.reply(self.conn, protocol.format_event(protocol.Hello(HELLO_TEXT)))
        deadline = self.connected_at + self.server.config.handshake_timeout
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        while True:
            if not self.conn.is_member:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not poller.poll(remaining * 1000):
                    self.room.reply(
                        self.conn,
                        protocol.format_err(ErrorCode.TIMEOUT, "no username received in time"),
                        last=True,
                    )
                    return
            data = self.sock.recv(RECV_SIZE)
            if not data:
                self.room.leave(self.conn, LeaveReason.DISCONNECTED)
                return
            if not self._lines(self.buffer.feed(data)):
                return

    def _lines(self, items: list[bytes | protocol.LineTooLong]) -> bool:
        """Act on a batch of received lines; False when the session is over.

        Consecutive chat lines are broadcast in one critical section; any other
        line first flushes them, so replies keep their place in the order.
        """
        pending: list[str] = []
        for item in items:
            if item is LINE_TOO_LONG:
                self._flush(pending)
                self._err(ErrorCode.LINE_TOO_LONG, f"a line is at most {self.buffer.max_line} bytes")
                continue
            assert isinstance(item, bytes)
            try:
                text = protocol.decode_line(item)
            except RemoteProtocolError as exc:
                self._flush(pending)
                self._err(exc.code, exc.text)
                continue
            if not self.conn.is_member:
                if not self._handshake_line(text):
                    return False
                continue
            kind = protocol.classify_client_line(text)
            if isinstance(kind, Chat):
                pending.append(kind.text)
                continue
            self._flush(pending)
            if isinstance(kind, Who):
                self.room.who(self.conn)
            elif isinstance(kind, Quit):
                self.room.leave(self.conn, LeaveReason.QUIT)
                return False
            elif isinstance(kind, UnknownCommand):
                self._err(ErrorCode.UNKNOWN_COMMAND, f"unknown command {kind.word}; try /who or /quit")
            else:
                assert isinstance(kind, Blank)
        self._flush(pending)
        return self.conn.is_member or not self.outbox.is_finishing

    def _handshake_line(self, text: str) -> bool:
        """One line before the name is accepted; False when the session is over."""
        if protocol.is_leave_request(text):
            self.room.reply(self.conn, protocol.format_event(protocol.Bye("goodbye")), last=True)
            return False
        try:
            protocol.check_name(text)
        except RemoteProtocolError as exc:
            self._err(exc.code, exc.text)
            return True
        refusal = self.room.join(self.conn, text)
        if refusal is ErrorCode.NAME_TAKEN:
            self._err(refusal, f"the name {text} is taken, choose another")
        elif refusal is not None:  # the room is closing
            return False
        return True

    def _flush(self, pending: list[str]) -> None:
        """Broadcast pending chat lines, pausing while a recipient is congested.

        Backpressure, outside the lock: a healthy but busy recipient (its
        writer starved of the GIL by readers like this one) catches up instead
        of letting its backlog reach the slow limit. Each pause for a recipient
        whose client is the one behind (its socket cannot take more bytes) is
        bounded: after MAX_BACKPRESSURE_WAIT that recipient is marked stalled,
        and nobody waits for it again until its writer makes progress (it
        overflows and is dropped as slow); so is one whose writer moves no byte
        for STALL_TIMEOUT. When the server is the one behind (the socket has
        room, the writer is short of CPU), the sender keeps waiting, a new
        period at a time: the room runs at the server's pace and drops nobody.
        Whether to pause is never decided by the clock alone: a reader
        descheduled across a deadline must not flood a member that reads.
        """
        if not pending:
            return
        deadline = time.monotonic() + MAX_BACKPRESSURE_WAIT
        while pending:
            done, congested = self.room.say(self.conn, pending)
            del pending[:done]
            if congested is not None:
                congested.wait_below(self.room.low_water, deadline)
                if time.monotonic() >= deadline:
                    # Stalled (its client lags: not waited for again), or still
                    # congested because the server is behind: either way the
                    # next wait gets a period of its own.
                    deadline = time.monotonic() + MAX_BACKPRESSURE_WAIT

    def _err(self, code: ErrorCode, text: str) -> None:
        self.room.reply(self.conn, protocol.format_err(code, text))

    def _close(self) -> None:
        """Finish the outbox, close the socket, free the slot. Runs exactly once."""
        self.outbox.finish()
        if not self.outbox.join(SHUTDOWN_FLUSH):
            shutdown_socket(self.sock)  # a peer that does not read: stop waiting
            self.outbox.join(SHUTDOWN_JOIN)
        shutdown_socket(self.sock)
        self.sock.close()
        self.room.release(self.conn)
        self.server._forget(threading.current_thread())


class ChatServer:
    """Listens, accepts, and owns every thread and socket it starts."""

    #: The reader of each connection; :mod:`chat.unsafe` swaps in buggy ones.
    session_class: type[Session] = Session

    def __init__(
        self, config: ServerConfig, room: Room | None = None, *, lock: SupportsLock | None = None
    ) -> None:
        self.config = config
        self.room = room or Room(max_clients=config.max_clients, max_backlog=config.max_backlog, lock=lock)
        self._listener: socket.socket | None = None
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._stop = threading.Event()
        # Every reader thread still running, with its session. Guarded by
        # _threads_lock (a lock of its own: it is never held with room.lock).
        self._sessions: dict[threading.Thread, Session] = {}
        self._threads_lock = threading.Lock()
        self.address: tuple[str, int] = (config.host, config.port)

    # -- lifecycle ----------------------------------------------------------------
    def bind(self) -> tuple[str, int]:
        """Bind and listen; returns (host, port) with the real port when 0 was asked."""
        infos = socket.getaddrinfo(
            self.config.host, self.config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, socktype, proto, _, addr = infos[0]
        listener = socket.socket(family, socktype, proto)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(addr)
            listener.listen(min(socket.SOMAXCONN, 1024))
        except OSError:
            listener.close()
            raise
        listener.setblocking(False)
        self._listener = listener
        self._selector.register(listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self.address = (self.config.host, listener.getsockname()[1])
        return self.address

    def serve_forever(self) -> None:
        """Accept until :meth:`shutdown`; then close everything (the main thread's loop)."""
        assert self._listener is not None, "call bind() first"
        try:
            while not self._stop.is_set():
                for key, _ in self._selector.select(timeout=1.0):
                    if key.data == "accept":
                        self._accept_ready()
        finally:
            self._close_all()

    def shutdown(self) -> None:
        """Ask the accept loop to stop. Safe from any thread and from signal handlers."""
        self._stop.set()
        try:
            self._wake_w.send(b"x", socket.MSG_DONTWAIT)
        except OSError:
            pass  # the wake-up pipe is full or closed: the loop is already waking

    def thread_count(self) -> int:
        with self._threads_lock:
            return len(self._sessions)

    # -- accepting ----------------------------------------------------------------
    def _accept_ready(self) -> None:
        assert self._listener is not None
        for _ in range(64):  # bounded: let the stop flag be seen under a flood
            if self._stop.is_set():
                return  # connections not yet accepted are reset when the listener closes
            try:
                sock, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: log, keep serving the others
                log.warning("accept failed: %s", exc)
                return
            self._start_session(sock, addr)

    def _start_session(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.config.sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.config.sndbuf)
        peer = f"{addr[0]}:{addr[1]}"
        session = self.session_class(self, sock, peer)
        while True:
            try:
                admitted = self.room.admit(session.conn, lock_timeout=ADMIT_LOCK_WAIT)
                break
            except TimeoutError:
                # direct design, a send blocked under the lock: keep waiting,
                # unless a shutdown was asked for meanwhile (it unblocks the room).
                if self._stop.is_set():
                    try:
                        sock.send(protocol.format_event(protocol.Bye(SHUTDOWN_TEXT)), socket.MSG_DONTWAIT)
                    except OSError as exc:
                        log.debug("%s: could not send BYE: %s", peer, exc)
                    shutdown_socket(sock)
                    sock.close()
                    return
        if not admitted:
            try:
                sock.send(protocol.format_err(ErrorCode.FULL, FULL_TEXT), socket.MSG_DONTWAIT)
            except OSError as exc:
                log.debug("%s: could not send ERR full: %s", peer, exc)
            shutdown_socket(sock)
            sock.close()
            return
        reader = threading.Thread(target=session.run, name=f"reader-{peer}", daemon=True)
        with self._threads_lock:
            self._sessions[reader] = session
        session.outbox.start()
        reader.start()

    def _forget(self, thread: threading.Thread) -> None:
        """Called by a reader thread as it ends: it no longer needs joining."""
        with self._threads_lock:
            self._sessions.pop(thread, None)

    # -- closing ------------------------------------------------------------------
    def _close_all(self) -> None:
        deadline = time.monotonic() + SHUTDOWN_FLUSH
        conns = self.room.shutdown(lock_timeout=0.3)
        with self._threads_lock:
            threads = list(self._sessions)
            sessions = list(self._sessions.values())
        # Give writers a moment to flush BYE, then shut every socket: that wakes
        # any thread blocked in recv or send, and the readers end and close.
        for session in sessions:
            session.outbox.join(max(0.0, deadline - time.monotonic()))
        for conn in conns:
            shutdown_socket(conn.outbox.sock)
        join_deadline = time.monotonic() + SHUTDOWN_JOIN
        for thread in threads:
            thread.join(max(0.0, join_deadline - time.monotonic()))
        for session in sessions:
            session.outbox.join(max(0.0, join_deadline - time.monotonic()))
        if self._listener is not None:
            self._selector.unregister(self._listener)
            self._listener.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            log.warning("%d threads still running at exit: %s", len(alive), ", ".join(alive[:5]))


# -- command line ---------------------------------------------------------------


def _window(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be 0 to 1 seconds: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = cli.OneLineParser(
        prog="python -m chat.server",
        description="Multi-threaded chat server: one thread per client, one lock around the room.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=cli.port(0),
        default=DEFAULT_PORT,
        help="TCP port; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--max-clients",
        type=cli.positive_int,
        default=DEFAULT_MAX_CLIENTS,
        help="open connections allowed at once, handshaking ones included (default: %(default)s)",
    )
    parser.add_argument(
        "--delivery",
        choices=[d.value for d in Delivery],
        default=Delivery.BATCHED.value,
        help="how lines reach members: direct (send under the lock, the original design), "
        "queued (a writer thread per member, one send per line) or batched (a writer thread "
        "per member, one send per drain) (default: %(default)s)",
    )
    parser.add_argument(
        "--max-line",
        type=cli.positive_int,
        default=protocol.DEFAULT_MAX_LINE,
        help="longest line accepted, in bytes without the terminator (default: %(default)s)",
    )
    parser.add_argument(
        "--max-backlog",
        type=cli.positive_int,
        default=DEFAULT_MAX_BACKLOG,
        help="lines queued for one member before it is dropped as slow (default: %(default)s)",
    )
    parser.add_argument(
        "--handshake-timeout",
        type=cli.seconds,
        default=DEFAULT_HANDSHAKE_TIMEOUT,
        help="seconds a new connection has to send an accepted username (default: %(default)s)",
    )
    parser.add_argument(
        "--sndbuf",
        type=cli.positive_int,
        default=None,
        help="SO_SNDBUF for every accepted socket, in bytes (default: the OS's)",
    )
    parser.add_argument(
        "--metrics-port",
        type=cli.port(0),
        default=None,
        help="serve Prometheus metrics (lock contention per critical section, deliveries, backlog) "
        "at http://HOST:PORT/metrics; 0 picks a free port, announced on stderr as "
        "'metrics on URL' (default: off, and the room's lock is a plain threading.Lock)",
    )
    parser.add_argument(
        "--unsafe",
        metavar="BUG",
        default=None,
        help="TEACHING ONLY: inject one classic concurrency bug (see docs/bugs.md; "
        "an unknown name lists them)",
    )
    parser.add_argument(
        "--race-window",
        metavar="SECONDS",
        type=_window,
        default=None,
        help="with --unsafe: pause this long at the bug's racy point, so that it shows in seconds "
        "(default: per bug; 0 for none)",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity, logs go to stderr (default: %(default)s)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        host=args.host,
        port=args.port,
        max_clients=args.max_clients,
        delivery=Delivery(args.delivery),
        max_line=args.max_line,
        max_backlog=args.max_backlog,
        handshake_timeout=args.handshake_timeout,
        sndbuf=args.sndbuf,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.race_window is not None and args.unsafe is None:
        print("chat.server: --race-window only applies with --unsafe BUG", file=sys.stderr)
        return 2
    config = config_from_args(args)
    # Lock metrics cost a little on every critical section: only when asked for.
    lock = InstrumentedLock("registry") if args.metrics_port is not None else None
    server: ChatServer
    if args.unsafe is not None:
        from chat import unsafe  # teaching code, loaded only when asked for

        try:
            server = unsafe.build_server(config, args.unsafe, race_window=args.race_window, lock=lock)
        except unsafe.UnknownBug as exc:
            print(f"chat.server: {exc}", file=sys.stderr)
            return 2
        print(unsafe.banner(server), file=sys.stderr, flush=True)
    else:
        server = ChatServer(config, lock=lock)
    try:
        host, port = server.bind()
    except OSError as exc:
        print(
            f"chat.server: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr
        )
        return 2
    metrics = None
    if args.metrics_port is not None:
        from chat.metrics import serve_metrics

        try:
            metrics = serve_metrics(server.room, args.host, args.metrics_port, unsafe=args.unsafe)
        except OSError as exc:
            print(
                f"chat.server: cannot serve metrics on {args.host}:{args.metrics_port}: "
                f"{exc.strerror or exc}",
                file=sys.stderr,
            )
            return 2
        # Before the ready line: whoever has read `listening on` can read this.
        print(f"metrics on {metrics.url}", file=sys.stderr, flush=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        server.shutdown()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if hasattr(signal, "SIGUSR1"):
        # `kill -USR1 PID` prints every thread's stack: where is a hung server stuck?
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    print(f"listening on {host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        if metrics is not None:
            metrics.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
