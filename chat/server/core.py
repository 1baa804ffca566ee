"""The threaded chat server: one thread accepts, one thread per client reads.

Threading model
---------------
* **Main thread** (:meth:`ChatServer.serve_forever`): accepts connections. A
  connection that finds every slot taken gets ``ERR full`` and is closed;
  otherwise it gets a reader thread (and, in the ``queued`` and ``batched``
  designs, a writer thread).
* **Reader thread, one per client** (:class:`chat.session.Session`): reads
  lines, runs the handshake, turns lines into room calls. It owns its
  connection: it closes the socket and frees the slot when it ends.
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

import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable

from chat import protocol
from chat.config import ServerConfig
from chat.delivery import shutdown_socket
from chat.lockstat import SupportsLock
from chat.protocol import ErrorCode
from chat.room import SHUTDOWN_TEXT, Room
from chat.session import Session

log = logging.getLogger("chat.server")

#: Every thread the server starts is joined within this on shutdown; the whole
#: shutdown stays under the 2 s the contract allows.
SHUTDOWN_FLUSH = 0.6
SHUTDOWN_JOIN = 0.5
#: The accepting thread waits at most this long for the room's lock at a
#: time, so that it notices a shutdown even when a direct-design send blocks
#: the room.
ADMIT_LOCK_WAIT = 0.1
FULL_TEXT = "the server is full, try again later"

#: What makes the session of a new connection: :class:`Session` or a subclass.
SessionFactory = Callable[[Room, ServerConfig, socket.socket, str], Session]


class ChatServer:
    """Listens, accepts, and owns every thread and socket it starts."""

    def __init__(
        self,
        config: ServerConfig,
        room: Room | None = None,
        *,
        lock: SupportsLock | None = None,
        session_factory: SessionFactory = Session,
    ) -> None:
        """``room`` and ``session_factory`` are extension points: the bug catalogue (chat.bugs)
        hands in a buggy room and buggy sessions; by default the safe ones, with ``lock`` as
        the room's lock (an instrumented one for metrics)."""
        self.config = config
        self.room = room or Room(max_clients=config.max_clients, max_backlog=config.max_backlog, lock=lock)
        self.session_factory = session_factory
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
        session = self.session_factory(self.room, self.config, sock, peer)
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
        reader = threading.Thread(target=self._read, args=(session,), name=f"reader-{peer}", daemon=True)
        with self._threads_lock:
            self._sessions[reader] = session
        session.outbox.start()
        reader.start()

    def _read(self, session: Session) -> None:
        """A reader thread's body: the session, then this thread no longer needs joining."""
        try:
            session.run()
        finally:
            with self._threads_lock:
                self._sessions.pop(threading.current_thread(), None)

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
