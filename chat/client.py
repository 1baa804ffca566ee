"""The terminal chat client: a receive thread, and input on the main thread. Not a library (bots: harness/).

Threading model
---------------
* **Receive thread** (:class:`Receiver`): the only reader of the socket. It splits the stream into lines,
  parses them with :mod:`chat.protocol` and appends the events to the :class:`Inbox`. It never touches the
  terminal.
* **Main thread**: the only writer of the socket *and* the only writer of the terminal. It reads what the
  user types (readline on a terminal, plain lines from a pipe), sends it, and renders the events from the
  inbox.

Shared between the two: the inbox (a ``collections.deque``, whose appends and pops are atomic, plus an
``arrived`` wake-up), the ``reading`` flag (a plain attribute, set by the main thread while it is blocked
reading a line) and the ``drained`` wake-up (given once the main thread has rendered what was waiting). None
of them takes a lock in Python code: the main thread can be interrupted at any bytecode, by the poke handler
below or by Ctrl+C, SIGTERM and SIGHUP, which raise ``KeyboardInterrupt``. A ``threading.Event`` would not
do: its methods take a lock in Python code, and an exception raised just after that lock was taken leaves
it taken for good, so the next ``set`` or ``clear`` (the next line, or the exit) hangs the client. That was
seen: a client whose tmux pane was killed stayed in ``Event.clear`` forever. A :class:`Wakeup` is one
``threading.Lock`` used as a token, taken and given by single C calls. The one such lock the main thread
still takes is in ``Thread.start`` (the receive thread's, before the session begins): an interrupt there
ends the client at once, without the goodbye.

Showing events while the user types
-----------------------------------
Events must appear at once, also while the main thread is blocked in ``input()``, and without garbling the
half-typed line. The receive thread then *pokes* the main thread with ``SIGUSR1`` (``signal.pthread_kill``).
Python runs signal handlers in the main thread, and readline checks for signals between two keystrokes, when
its state is consistent. The handler (:meth:`ChatClient._on_poke`) asks readline to erase the line being
typed (``rl_clear_visible_line``), writes the events, and has readline draw the prompt and the half-typed
line again, the cursor where it was (``rl_forced_update_display``). Where those two functions cannot be
reached, it falls back to reprinting the prompt and ``readline.get_line_buffer()``. On a pipe, the same
handler runs inside the blocked read (PEP 475 retries the read afterwards). A poke that lands just before
the read starts would go unnoticed, so the receive thread pokes again every :data:`POKE_RETRY` seconds until
the inbox is empty.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import io
import os
import re
import signal
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import FrameType
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from chat import cli, protocol
from chat.protocol import Bye, Err, ErrorCode, Hello, Join, Leave, Msg, Ok, ServerEvent, Users

PROG = "chat.client"
DEFAULT_HOST = "localhost"
DEFAULT_PORT = 9999
#: Connecting and receiving the greeting; a local server answers in milliseconds.
CONNECT_TIMEOUT = 10.0
#: Waiting for the answer to a username (OK or a refusal).
REPLY_TIMEOUT = 30.0
#: Waiting for the server's BYE after ``/quit``: the user has left either way, so keep it short.
LEAVE_TIMEOUT = 3.0
#: Pokes are repeated this often until the main thread has rendered the inbox (see the module docstring).
POKE_RETRY = 0.05
#: Joining the receive thread once its socket is shut.
JOIN_TIMEOUT = 5.0
#: A MSG line carries up to the server's --max-line bytes of text plus its prefix; 1 MiB leaves room for any
#: sane server setting while bounding what one line may cost.
MAX_SERVER_LINE = 1 << 20
RECV_SIZE = 65536
NAME_PROMPT = "username: "
POKE_SIGNAL = signal.SIGUSR1

#: Colours for names, picked by a stable hash so that a user keeps the same colour in every client.
#: Red is left out: it means an error.
PALETTE = (
    "cyan",
    "magenta",
    "green",
    "yellow",
    "blue",
    "bright_cyan",
    "bright_magenta",
    "bright_green",
    "bright_yellow",
    "bright_blue",
    "dark_orange",
    "orchid",
)

# -- what the receive thread hands over -----------------------------------------------------------


@dataclass(frozen=True)
class Unreadable:
    """A line that fits no server event (another server's dialect, or garbage)."""

    line: str


@dataclass(frozen=True)
class Dropped:
    """A server line over :data:`MAX_SERVER_LINE` bytes, dropped unread."""


@dataclass(frozen=True)
class Closed:
    """The connection ended. ``error`` says how when it did not end with a plain close."""

    error: str | None


InboxItem = ServerEvent | Unreadable | Dropped | Closed


def parse_line(raw: bytes) -> InboxItem:
    """One server line (terminator removed) as an inbox item; never raises.

    The client is lenient where the server is strict: bytes that are not UTF-8 are shown as U+FFFD rather than
    refused, since a person reads them; :func:`printable` defuses control characters at display time.
    """
    text = raw.decode(protocol.ENCODING, errors="replace")
    try:
        return protocol.parse_server_line(text)
    except protocol.RemoteProtocolError:
        return Unreadable(text)


# -- rendering: pure functions over events -------------------------------------------------------

# C0 controls but tab, DEL, C1 controls (0x9b is a one-byte CSI on some terminals), the line and paragraph
# separators (a forged line break), and the bidi controls that would reorder everything shown after them.
_UNSAFE_RE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def full_message(address: str, text: str) -> str:
    """The one line for ``ERR full``: says "full" once, and keeps whatever else the server added."""
    detail = printable(text).strip()
    lead = "the server is full"
    if detail.lower().startswith(lead):
        detail = detail[len(lead) :].lstrip(" ,;:-")
    return f"the server at {address} is full" + (f": {detail}" if detail else "")


def printable(text: str) -> str:
    """``text`` with each control character written as an escape (ESC becomes ``\\x1b``).

    Nothing received from the network may drive the terminal: the server refuses such lines, but the client
    also talks to servers it cannot vouch for.
    """
    return _UNSAFE_RE.sub(_escape, text)


def user_style(name: str) -> str:
    """The colour of ``name``: the same in every client and every run, whatever its case."""
    return PALETTE[zlib.crc32(name.lower().encode(protocol.ENCODING, errors="replace")) % len(PALETTE)]


def render(item: InboxItem, clock: str, me: str | None = None) -> Text | None:
    """One line of screen for an inbox item, or None when it shows nothing.

    Texts are assembled from plain strings, never parsed as rich markup: ``[bold]`` typed by a user is
    shown as typed. Joins and leaves are dimmed, errors red, each name in its own colour (bold for oneself).
    """
    text = Text(clock + " ", style="dim")
    if isinstance(item, Msg):
        style = user_style(item.name) + (" bold" if item.name == me else "")
        text.append(printable(item.name), style=style)
        text.append(": " + printable(item.text))
    elif isinstance(item, Join):
        text.append("--> ", style="dim")
        text.append(printable(item.name), style=f"dim {user_style(item.name)}")
        text.append(" joined", style="dim")
    elif isinstance(item, Leave):
        text.append("<-- ", style="dim")
        text.append(printable(item.name), style=f"dim {user_style(item.name)}")
        reason = f" ({printable(item.reason)})" if item.reason else ""
        text.append(f" left{reason}", style="dim")
    elif isinstance(item, Users):
        text.append(f"online ({len(item.names)}): ")
        for i, name in enumerate(item.names):
            if i:
                text.append(", ")
            text.append(printable(name), style=user_style(name))
    elif isinstance(item, Err):
        text.append(f"error ({item.code.value}): {printable(item.text)}", style="red")
    elif isinstance(item, Ok):
        text.append("you are ", style="green")
        text.append(printable(item.name), style=f"bold {user_style(item.name)}")
        text.append(": /who lists who is here, exit leaves", style="green")
    elif isinstance(item, Hello):
        text.append(f"server: {printable(item.text)}", style="dim")
    elif isinstance(item, Bye):
        text.append(f"server: {printable(item.text)}", style="yellow")
    elif isinstance(item, Unreadable):
        text.append(f"unreadable line from the server: {printable(item.line)}", style="dim red")
    elif isinstance(item, Dropped):
        text.append(
            f"a line from the server was over {MAX_SERVER_LINE} bytes and was dropped", style="dim red"
        )
    else:
        return None
    return text


def echo_rows(shown: str, columns: int) -> int:
    """How many terminal rows readline used to echo ``shown`` (prompt and line), the Enter included.

    readline wraps long lines, and moves to a fresh row when a line exactly fills one; it shows a control
    character as ``^X`` and expands tabs to the next multiple of 8.
    """
    width = 0
    for char in shown:
        if char == "\t":
            width = (width // 8 + 1) * 8
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            width += 2
        else:
            width += cell_len(char)
    return width // max(columns, 1) + 1


# -- the terminal --------------------------------------------------------------------------------


class LineEditor:
    """readline, as the main thread's line editor, plus what it takes to print above the line being typed.

    Called from the main thread only (the poke handler runs there too).
    """

    def __init__(self) -> None:
        import readline  # only on a terminal: importing it changes how input() behaves

        self._readline: Any = readline
        self._active = False  # readline shows a prompt and reads keys; set by its pre-input hook
        self.prompt = ""
        self._clear_line: Callable[[], int] | None = None
        self._redraw: Callable[[], int] | None = None
        self._fflush: Callable[[Any], int] | None = None
        self._done: Any = None
        readline.set_pre_input_hook(self._on_pre_input)
        is_libedit = "libedit" in (readline.__doc__ or "") or getattr(readline, "backend", "") == "editline"
        path = getattr(readline, "__file__", None)
        if is_libedit or not path:
            return
        try:
            lib = ctypes.CDLL(path)  # the module's own handle reaches the libreadline it links to
            clear_line, redraw = lib.rl_clear_visible_line, lib.rl_forced_update_display
            done = ctypes.c_int.in_dll(lib, "rl_done")
            fflush = ctypes.CDLL(None).fflush
        except (OSError, AttributeError, ValueError):
            return  # an older readline: fall back to reprinting the buffer
        clear_line.restype = redraw.restype = fflush.restype = ctypes.c_int
        clear_line.argtypes = redraw.argtypes = []
        fflush.argtypes = [ctypes.c_void_p]
        self._clear_line, self._redraw, self._fflush, self._done = clear_line, redraw, fflush, done

    def _on_pre_input(self) -> None:
        self._active = True

    def read(self, prompt: str) -> str:
        """``input(prompt)`` with line editing; raises EOFError on Ctrl+D."""
        self.prompt = prompt
        try:
            return input(prompt)
        finally:
            self._active = False

    def is_editing(self) -> bool:
        """True while readline shows a line that is being edited (so it can be cleared and redrawn)."""
        if not self._active:
            return False
        return self._done is None or self._done.value == 0

    def clear(self, write: Callable[[str], None]) -> None:
        """Erase the prompt and the line being typed; the cursor ends at the start of its first row."""
        if self._clear_line is not None and self._fflush is not None:
            self._clear_line()
            self._fflush(None)  # readline writes through C stdio; ours goes straight to the fd
        else:
            write("\r\x1b[2K")

    def redraw(self, write: Callable[[str], None]) -> None:
        """Show the prompt and the line being typed again, the cursor where it was."""
        if self._redraw is not None:
            self._redraw()
        else:
            write(self.prompt + self._readline.get_line_buffer())

    def close(self) -> None:
        self._readline.set_pre_input_hook(None)


class Screen:
    """Rendered text out to a file descriptor, written with ``os.write``.

    Not through ``sys.stdout``: the poke handler may write while the main thread is inside a buffered write,
    and a buffered writer refuses re-entrant calls. Main thread only.
    """

    def __init__(self, fd: int, console: Console, encoding: str) -> None:
        self.fd = fd
        self.console = console
        self.encoding = encoding
        self.is_broken = False  # the reader went away (a closed pipe): stop writing, keep chatting

    def text(self, texts: Sequence[Text]) -> str:
        with self.console.capture() as capture:
            for text in texts:
                self.console.print(text, soft_wrap=True)
        return capture.get()

    def write(self, data: str) -> None:
        if self.is_broken or not data:
            return
        view = memoryview(data.encode(self.encoding, errors="replace"))
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError:
            self.is_broken = True

    def columns(self) -> int:
        try:
            return os.get_terminal_size(self.fd).columns
        except OSError:
            return 80


# -- the two threads -----------------------------------------------------------------------------


class Wakeup:
    """A wake-up token between two threads: ``give`` leaves one (never blocks), ``wait`` takes it.

    A ``threading.Lock`` used as a binary semaphore: released means "a token is there". Each method is one C
    call on the lock, so an exception raised in the main thread between two bytecodes (the module docstring)
    can at worst lose a token, which every waiter here tolerates: it re-checks what it waits for. The server's
    batched writer uses the same idiom (``BatchedOutbox._wake``, chat/delivery.py), inlined there because it
    runs once per delivery.
    """

    def __init__(self) -> None:
        self._token = threading.Lock()
        self._token.acquire()

    def give(self) -> None:
        try:
            self._token.release()
        except RuntimeError:
            pass  # a token is already there: one is enough

    def take(self) -> None:
        """Drop a token left from before, if any."""
        self._token.acquire(blocking=False)

    def wait(self, timeout: float) -> bool:
        """Take the token, waiting at most ``timeout`` seconds; False if none came."""
        return self._token.acquire(timeout=max(timeout, 0.0))


class Inbox:
    """Items from the receive thread to the main thread.

    A deque and no lock: the main thread also drains it from a signal handler, which must never wait for a
    lock the interrupted code might hold. ``arrived`` wakes the main thread when it waits, not reading a line.
    """

    def __init__(self) -> None:
        self._items: collections.deque[InboxItem] = collections.deque()
        self.arrived = Wakeup()

    def put(self, items: Sequence[InboxItem]) -> None:
        self._items.extend(items)
        self.arrived.give()

    def take(self) -> list[InboxItem]:
        items: list[InboxItem] = []
        while True:
            try:
                items.append(self._items.popleft())
            except IndexError:
                return items

    def __bool__(self) -> bool:
        return bool(self._items)


class Receiver:
    """The receive thread: socket to inbox, then a poke when the main thread is blocked reading a line."""

    def __init__(self, sock: socket.socket, inbox: Inbox) -> None:
        self.sock = sock
        self.inbox = inbox
        #: True while the main thread is blocked reading a line. Written by the main thread only; one
        #: attribute, so each read and write is atomic: no lock (the module docstring).
        self.reading = False
        self.drained = Wakeup()  # given by the poke handler once it has rendered the inbox
        self.main_ident = threading.main_thread().ident
        self.thread = threading.Thread(target=self._run, name="chat-receive", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def _run(self) -> None:
        buffer = protocol.LineBuffer(MAX_SERVER_LINE)
        error: str | None = None
        try:
            while True:
                data = self.sock.recv(RECV_SIZE)
                if not data:
                    break
                items = buffer.feed(data)
                if items:
                    self.inbox.put(
                        [Dropped() if isinstance(i, protocol.LineTooLong) else parse_line(i) for i in items]
                    )
                    self._poke()
        except OSError as exc:
            error = (exc.strerror or str(exc)).lower()
        except Exception as exc:  # a bug of ours: say so, never leave the main thread waiting
            error = f"internal error in the receive thread: {exc!r}"
        self.inbox.put([Closed(error)])
        self._poke()

    def _poke(self) -> None:
        """Have the main thread render the inbox if it is blocked reading a line; repeat until it has."""
        while self.inbox and self.reading and self.main_ident is not None:
            self.drained.take()
            try:
                signal.pthread_kill(self.main_ident, POKE_SIGNAL)
            except OSError:
                return  # the main thread is gone
            self.drained.wait(POKE_RETRY)


class ServerClosed(BaseException):
    """Raised in the main thread, from the poke handler, to end a read: the server closed the connection."""


class ChatClient:
    """The main thread's side: handshake, chat loop, leave; returns the exit code."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        name: str | None,
        screen: Screen,
        editor: LineEditor | None,
        stdin: Any,
        errors: Any,
    ) -> None:
        self.host, self.port = host, port
        self.requested_name = name
        self.screen = screen
        self.editor = editor  # None when stdin is not a terminal: plain lines, no prompt
        self.stdin = stdin
        self.errors = errors
        self.inbox = Inbox()
        self.sock: socket.socket | None = None
        self.receiver: Receiver | None = None
        # What the server said so far. Written and read by the main thread only.
        self.name: str | None = None
        self.greeted = False
        self.refusal: Err | None = None
        self.full: Err | None = None
        self.last_error: Err | None = None
        self.bye: Bye | None = None
        self.closed: Closed | None = None
        self.user_left = False
        # Re-entry guards of the main thread (the poke handler interrupts it at any bytecode).
        self._rendering = False
        self._in_handler = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_over(self) -> bool:
        """The server ended the session (a full server ends it before it starts)."""
        return self.bye is not None or self.closed is not None or self.full is not None

    # -- the whole run ----------------------------------------------------------------------------
    def run(self) -> int:
        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            return self._fail(f"cannot connect to {self.address}: {exc.strerror or exc}")
        self.sock.settimeout(None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.receiver = Receiver(self.sock, self.inbox)
        previous = signal.signal(POKE_SIGNAL, self._on_poke)
        self.receiver.start()
        try:
            return self._session()
        except KeyboardInterrupt:
            return self._leave()
        except ServerClosed:
            return self._outcome()
        finally:
            self._shut(previous)

    def _session(self) -> int:
        if not self._wait_until(lambda: self.greeted or self.is_over, CONNECT_TIMEOUT):
            return self._fail(f"no greeting from {self.address} within {CONNECT_TIMEOUT:g} s")
        if self.is_over:
            return self._outcome()
        candidate = self.requested_name
        while self.name is None:
            if candidate is None:
                candidate = self._read_line(NAME_PROMPT)
                if candidate is None:
                    return self._leave()
            if not self._send(candidate):
                return self._outcome()
            if protocol.is_leave_request(candidate):
                return self._await_bye()
            self.refusal = None
            answered = self._wait_until(
                lambda: self.name is not None or self.refusal is not None or self.is_over, REPLY_TIMEOUT
            )
            if not answered:
                return self._fail(f"no answer from {self.address} within {REPLY_TIMEOUT:g} s")
            if self.is_over:
                return self._outcome()
            candidate = None
        while True:
            prompt = f"{printable(self.name)}> "
            line = self._read_line(prompt)
            if line is None:
                return self._leave()
            self._erase_echo(prompt, line)
            if not self._send(line):
                return self._outcome()
            if isinstance(protocol.classify_client_line(line), protocol.Quit):
                return self._await_bye()

    def _leave(self) -> int:
        """The user leaves (end of input, Ctrl+C): ``/quit``, then wait a little for the BYE."""
        self.user_left = True
        if self.is_over or not self._send("/quit"):
            return 0
        return self._await_bye()

    def _await_bye(self) -> int:
        self.user_left = True
        try:
            self._wait_until(lambda: self.is_over, LEAVE_TIMEOUT)
        except KeyboardInterrupt:
            pass  # a second Ctrl+C: stop waiting for the goodbye
        return 0

    def _outcome(self) -> int:
        """The exit code once the connection is over, with one line on stderr when it failed."""
        if self.user_left:
            return 0
        if self.full is not None:
            return self._fail(full_message(self.address, self.full.text))
        if self.bye is not None:
            return 0
        detail = ""
        if self.last_error is not None and self.last_error.code is ErrorCode.TIMEOUT:
            detail = f" (the server said: {printable(self.last_error.text)})"
        elif self.closed is not None and self.closed.error:
            detail = f": {self.closed.error}"
        return self._fail(f"the connection to {self.address} was lost{detail}")

    def _fail(self, message: str) -> int:
        print(f"{PROG}: {message}", file=self.errors, flush=True)
        return 1

    def _shut(self, previous_handler: Any) -> None:
        assert self.sock is not None and self.receiver is not None
        self.receiver.reading = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the receive thread
        except OSError:
            pass  # already closed by the peer
        joined = self.receiver.join(JOIN_TIMEOUT)
        self.sock.close()
        if joined:  # once nothing can poke any more: the default action of SIGUSR1 ends the process
            signal.signal(POKE_SIGNAL, previous_handler)

    # -- socket -----------------------------------------------------------------------------------
    def _send(self, text: str) -> bool:
        """Send one line; False when the connection is gone (the outcome then says why)."""
        assert self.sock is not None
        try:
            self.sock.sendall(protocol.encode_client_line(text))
        except OSError as exc:
            self._wait_until(lambda: self.is_over, LEAVE_TIMEOUT)
            if self.closed is None:
                self.closed = Closed((exc.strerror or str(exc)).lower())
            return False
        return True

    # -- input ------------------------------------------------------------------------------------
    def _read_line(self, prompt: str) -> str | None:
        """One line typed by the user; None at end of input. Raises ServerClosed when the server ends it."""
        assert self.receiver is not None
        self.receiver.reading = True
        try:
            self._drain()  # what came before the flag was set: the receive thread did not poke for it
            if self.is_over:
                raise ServerClosed
            if self.editor is not None:
                try:
                    return self.editor.read(prompt)
                except EOFError:
                    self.screen.write("\n")  # readline leaves the cursor after the prompt
                    return None
                except (KeyboardInterrupt, ServerClosed):
                    self.screen.write("\n")  # and here after the unsent text, left on screen
                    raise
            line: str = self.stdin.readline()
            if not line:
                return None
            return line[:-1] if line.endswith("\n") else line
        finally:
            self.receiver.reading = False

    def _erase_echo(self, prompt: str, line: str) -> None:
        """On a terminal, remove the typed line: it comes back from the server, with its time, as a MSG."""
        if self.editor is None:
            return
        rows = echo_rows(prompt + line, self.screen.columns())
        self.screen.write(f"\x1b[{rows}A\r\x1b[J")

    # -- events -----------------------------------------------------------------------------------
    def _wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Render events until ``done()``; False if the timeout passed first (not while reading a line)."""
        deadline = time.monotonic() + timeout
        while True:
            self._drain()
            if done():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.inbox.arrived.wait(remaining)  # takes the token: the inbox is drained right after

    def _on_poke(self, signum: int, frame: FrameType | None) -> None:
        """SIGUSR1 handler, in the main thread: render the inbox while a read is blocked."""
        if self._in_handler:
            return  # the receive thread pokes again if anything is left
        self._in_handler = True
        try:
            assert self.receiver is not None
            if not self.receiver.reading or self._rendering:
                return
            if self.editor is not None and not self.editor.is_editing():
                return  # readline is between two lines; the receive thread pokes again
            self._drain()
            self.receiver.drained.give()
            if self.is_over:
                raise ServerClosed
        finally:
            self._in_handler = False

    def _drain(self) -> None:
        """Render every waiting item. Main thread only; a nested call (from the handler) does nothing."""
        if self._rendering:
            return
        self._rendering = True
        try:
            while True:
                items = self.inbox.take()
                if not items:
                    return
                self._show(items)
        finally:
            self._rendering = False

    def _show(self, items: list[InboxItem]) -> None:
        clock = datetime.now().strftime("%H:%M:%S")
        texts = []
        for item in items:
            self._observe(item)
            if isinstance(item, Err) and item.code is ErrorCode.FULL:
                continue  # said once, on stderr
            text = render(item, clock, self.name)
            if text is not None:
                texts.append(text)
        if not texts:
            return
        out = self.screen.text(texts)
        if self.editor is not None and self.editor.is_editing():
            self.editor.clear(self.screen.write)
            self.screen.write(out)
            self.editor.redraw(self.screen.write)
        else:
            self.screen.write(out)

    def _observe(self, item: InboxItem) -> None:
        """Update what the main thread knows of the session."""
        if isinstance(item, Hello):
            self.greeted = True
        elif isinstance(item, Ok):
            self.name = item.name
        elif isinstance(item, Err):
            self.last_error = item
            if item.code is ErrorCode.FULL:
                self.full = item
            elif self.name is None and item.code is not ErrorCode.TIMEOUT:
                self.refusal = item
        elif isinstance(item, Bye):
            self.bye = item
        elif isinstance(item, Closed):
            self.closed = item


# -- command line --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = cli.OneLineParser(
        prog=PROG,
        description="Terminal chat client. Type a line and Enter to send it; /who lists who is here; "
        "exit, /quit, Ctrl+D or Ctrl+C leaves.",
    )
    parser.add_argument("host", nargs="?", default=DEFAULT_HOST, help="server host (default: %(default)s)")
    parser.add_argument(
        "port", nargs="?", type=cli.port(1), default=DEFAULT_PORT, help="server port (default: %(default)s)"
    )
    parser.add_argument(
        "--name", help="username to try first; on a refusal the client says why and asks for another"
    )
    return parser


def _console() -> Console:
    return Console(file=sys.stdout, highlight=False, markup=False, emoji=False, soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(errors="replace")  # a stray byte in piped input must not end the session
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if threading.current_thread() is not threading.main_thread():
        print(f"{PROG}: must run in the main thread (it handles signals)", file=sys.stderr)
        return 1
    # SIGTERM, and SIGHUP (the terminal or tmux pane closed), leave cleanly as Ctrl+C does; unless ignored
    # (nohup), so that they stay ignored.
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    for sig, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(sig, signal.default_int_handler)
    editor = None
    if interactive:
        try:
            editor = LineEditor()
        except ImportError:
            pass  # no readline on this Python: plain lines, as from a pipe
    try:
        client = ChatClient(
            args.host,
            args.port,
            name=args.name,
            screen=Screen(sys.stdout.fileno(), _console(), sys.stdout.encoding or protocol.ENCODING),
            editor=editor,
            stdin=sys.stdin,
            errors=sys.stderr,
        )
        sys.stdout.flush()
        return client.run()
    except KeyboardInterrupt:
        return 0  # Ctrl+C before the connection was up: the user left
    finally:
        if editor is not None:
            editor.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
