"""The acceptor: :class:`ChatServer` binds, accepts, and owns every thread and socket it starts.

Not the protocol, the shared state or the command line: the session
(:mod:`chat.session`) speaks the protocol, the room (:mod:`chat.room`) is the
shared state, and :mod:`chat.server.cli` builds a server and runs it.

Threading model
---------------
* **Main thread** (:meth:`ChatServer.serve_forever`): accepts connections. A
  connection that finds every slot taken gets ``ERR full`` and is closed;
  otherwise it gets a session, made by the server's session factory, and a
  reader thread (and, in the ``queued`` and ``batched`` designs, its outbox a
  writer thread).
* **Reader thread, one per client** (:class:`chat.session.Session`): reads
  lines, runs the handshake, turns lines into room calls. It owns its
  connection: it closes the socket and frees the slot when it ends.
* **Writer thread, one per client** (``queued``/``batched``): the only code that
  writes to that client's socket; see :mod:`chat.delivery`.
* **Shared state**: the :class:`chat.room.Room` and nothing else. Its lock
  guards the registry, the seq and the outboxes; its critical sections are
  named in :mod:`chat.room`.

Shutdown is cooperative through one event: :meth:`ChatServer.shutdown` (from a
signal handler, or any thread) stops the accept loop, every connection gets
``BYE server shutting down``, writers get a short deadline to flush, then every
socket is shut (waking blocked readers and writers) and every thread is joined.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time

from chat import protocol
from chat.config import SHUTDOWN_FLUSH, SHUTDOWN_JOIN, ServerConfig
from chat.delivery import shutdown_socket
from chat.lockstat import SupportsLock
from chat.protocol import ErrorCode
from chat.room import SHUTDOWN_TEXT, Room
from chat.session import Session, SessionFactory

log = logging.getLogger(__name__)

#: The accepting thread waits at most this long for the room's lock at a
#: time, so that it notices a shutdown even when a direct-design send blocks
#: the room.
ADMIT_LOCK_WAIT = 0.1
FULL_TEXT = "the server is full, try again later"


class ChatServer:
    """Listens, accepts, and owns every thread and socket it starts.

    ``room`` (or, to build the default room, ``lock``) and ``session_factory``
    are the server's parts; the command line chooses them.
    """

    def __init__(
        self,
        config: ServerConfig,
        room: Room | None = None,
        *,
        lock: SupportsLock | None = None,
        session_factory: SessionFactory = Session,
    ) -> None:
        self.config = config
        self.room = room or Room(max_clients=config.max_clients, max_backlog=config.max_backlog, lock=lock)
        self._session_factory = session_factory
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
        session = self._session_factory(self.room, sock, peer, self.config)
        while True:
            try:
                admitted = self.room.admit(session.conn, lock_timeout=ADMIT_LOCK_WAIT)
                break
            except TimeoutError:
                # direct design, a send blocked under the lock: keep waiting,
                # unless a shutdown was asked for meanwhile (it unblocks the room).
                if self._stop.is_set():
                    self._refuse(sock, peer, protocol.format_event(protocol.Bye(SHUTDOWN_TEXT)))
                    return
        if not admitted:
            self._refuse(sock, peer, protocol.format_err(ErrorCode.FULL, FULL_TEXT))
            return
        reader = threading.Thread(
            target=self._run_session, args=(session,), name=f"reader-{peer}", daemon=True
        )
        with self._threads_lock:
            self._sessions[reader] = session
        session.outbox.start()
        reader.start()

    @staticmethod
    def _refuse(sock: socket.socket, peer: str, line: bytes) -> None:
        """One line to a connection that gets no session (``ERR full``, ``BYE``), then close it."""
        try:
            sock.send(line, socket.MSG_DONTWAIT)
        except OSError as exc:
            log.debug("%s: could not send %r: %s", peer, line, exc)
        shutdown_socket(sock)
        sock.close()

    def _run_session(self, session: Session) -> None:
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
