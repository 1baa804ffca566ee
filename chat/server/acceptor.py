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

import errno
import logging
import os
import selectors
import socket
import threading
import time

from chat import protocol
from chat.config import SHUTDOWN_FLUSH, SHUTDOWN_JOIN, ServerConfig
from chat.delivery import shutdown_socket
from chat.lockstat import SupportsLock
from chat.protocol import ErrorCode
from chat.ratelog import RateLimitedLog
from chat.room import SHUTDOWN_TEXT, Room
from chat.server.sockopts import keepalive_for, tune_accepted
from chat.session import Session, SessionFactory

log = logging.getLogger(__name__)

#: The accepting thread waits at most this long for the room's lock at a
#: time, so that it notices a shutdown even when a direct-design send blocks
#: the room.
ADMIT_LOCK_WAIT = 0.1
FULL_TEXT = "the server is full, try again later"
#: Out of file descriptors (EMFILE, ENFILE) or kernel memory: the listener is
#: left alone this long, doubling from the first to the last figure while the
#: condition lasts, so that the accept loop does not spin. The last figure
#: bounds how long a freed descriptor waits to be used.
ACCEPT_BACKOFF = (0.01, 0.25)
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_log_accept = RateLimitedLog(log, logging.WARNING)
_log_threads = RateLimitedLog(log, logging.WARNING)


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
        self._keepalive = keepalive_for(config.keepalive)
        # The reserved descriptor: closed for a moment at EMFILE so that the
        # newcomer can be accepted and told ERR full instead of nothing.
        self._spare_fd: int | None = _open_spare()
        self._backoff = 0.0  # seconds the listener is left alone after a resource error; 0: none
        self._watching = False  # the listener is registered with the selector
        self._accept_resumes = 0.0  # time.monotonic() at which the listener is watched again

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
        self._watching = True
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self.address = (self.config.host, listener.getsockname()[1])
        return self.address

    def serve_forever(self) -> None:
        """Accept until :meth:`shutdown`; then close everything (the main thread's loop)."""
        assert self._listener is not None, "call bind() first"
        try:
            while not self._stop.is_set():
                timeout = 1.0
                if not self._watching:  # backing off after a resource error
                    timeout = self._accept_resumes - time.monotonic()
                    if timeout <= 0:
                        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
                        self._watching = True
                        timeout = 1.0
                for key, _ in self._selector.select(timeout=timeout):
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
                self._backoff = 0.0
                return
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRNOS:
                    self._out_of_resources(exc)
                else:  # e.g. ECONNABORTED: that one connection's problem
                    _log_accept.log("accept failed: %s", exc)
                return
            self._backoff = 0.0
            self._start_session(sock, addr)

    def _out_of_resources(self, exc: OSError) -> None:
        """Accept failed for want of descriptors or memory: shed one newcomer, then back off.

        The members are served as before (their threads need no new
        descriptor); the listener is unwatched for a growing pause, so the
        loop does not spin at 100 % of a core, and watched again within
        ``ACCEPT_BACKOFF[1]`` of the pause's start.
        """
        _log_accept.log("accept failed: %s; refusing newcomers until descriptors are free", exc)
        self._shed_waiting()
        low, high = ACCEPT_BACKOFF
        self._backoff = min(high, self._backoff * 2) if self._backoff else low
        self._accept_resumes = time.monotonic() + self._backoff
        assert self._listener is not None
        self._selector.unregister(self._listener)
        self._watching = False

    def _shed_waiting(self) -> None:
        """The reserved-descriptor trick: tell the connections waiting in the backlog ``ERR full``.

        For each: free the spare descriptor, accept, refuse, close, reserve the
        spare again. Bounded per call, like accepting; a newcomer gets an
        answer instead of silence, and costs a few system calls, not a spin.
        """
        assert self._listener is not None
        for _ in range(64):
            if self._spare_fd is None:
                self._spare_fd = _open_spare()
                if self._spare_fd is None:
                    return  # another thread took the descriptor: nothing to shed with
            os.close(self._spare_fd)
            self._spare_fd = None
            try:
                sock, addr = self._listener.accept()
            except OSError:
                return  # nobody waiting (or the descriptor went elsewhere already)
            else:
                self._refuse(sock, f"{addr[0]}:{addr[1]}", protocol.format_err(ErrorCode.FULL, FULL_TEXT))
            finally:
                self._spare_fd = _open_spare()

    def _start_session(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        tune_accepted(sock, keepalive=self._keepalive, sndbuf=self.config.sndbuf)
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
        try:
            session.outbox.start()
            reader.start()
        except RuntimeError as exc:  # "can't start new thread": a task limit (cgroup, ulimit -u)
            self._unstarted(session, reader, exc)

    def _unstarted(self, session: Session, reader: threading.Thread, exc: RuntimeError) -> None:
        """A thread of this connection could not start: refuse it alone (``ERR full``), serve the rest."""
        _log_threads.log("refusing %s: cannot start a thread (%s)", session.peer, exc)
        with self._threads_lock:
            self._sessions.pop(reader, None)
        try:
            session.sock.send(protocol.format_err(ErrorCode.FULL, FULL_TEXT), socket.MSG_DONTWAIT)
        except OSError as send_exc:
            log.debug("%s: could not send ERR full: %s", session.peer, send_exc)
        session.outbox.abort()  # stops its writer, if that one started
        session.outbox.join(SHUTDOWN_JOIN)
        session.sock.close()
        self.room.release(session.conn)

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
            if self._watching:
                self._selector.unregister(self._listener)
            self._listener.close()
        self._selector.close()
        if self._spare_fd is not None:
            os.close(self._spare_fd)
            self._spare_fd = None
        self._wake_r.close()
        self._wake_w.close()
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            log.warning("%d threads still running at exit: %s", len(alive), ", ".join(alive[:5]))


def _open_spare() -> int | None:
    """A descriptor held in reserve for :meth:`ChatServer._shed_one` (None when none is left)."""
    try:
        return os.open(os.devnull, os.O_RDONLY)
    except OSError:
        return None
