"""The server's command line, ``python -m chat.server``: the composition root.

Not the server itself (:mod:`chat.server.acceptor`): this module parses the
options, builds the server's parts and starts the threads that sit beside it.
Without ``--unsafe`` it builds the safe server. With ``--unsafe BUG`` it asks
the bug catalogue (:mod:`chat.bugs`, imported only then: the only import of
the catalogue in the server) for the bug's parts (the room, the session
factory, the changed configuration and a lock watchdog) and builds the server
from those. Then the metrics (``--metrics-port``, from the room's own
:meth:`chat.room.Room.locks`), the signal handlers, the ready line, and
``serve_forever``, with the watchdog running around it.

Only this module prints: usage errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from chat import cli, config, protocol
from chat.config import ServerConfig
from chat.delivery import Delivery
from chat.lockstat import InstrumentedLock
from chat.room import Room
from chat.server.acceptor import ChatServer
from chat.session import Session, SessionFactory

PROG = "chat.server"


def _window(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be 0 to 1 seconds: {text}")
    return value


def _keepalive(text: str) -> float:
    """0 (off), or at least 1 second: the kernel's keepalive timers count whole seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (value == 0 or 1 <= value <= MAX_KEEPALIVE):
        raise argparse.ArgumentTypeError(f"must be 0 (off) or 1 to {MAX_KEEPALIVE:g} seconds: {text}")
    return value


#: TCP_KEEPIDLE is at most 32767 s in Linux; half the budget is idle time.
MAX_KEEPALIVE = 32767.0


def build_parser() -> argparse.ArgumentParser:
    parser = cli.OneLineParser(
        prog="python -m chat.server",
        description="Multi-threaded chat server: one thread per client, one lock around the room.",
    )
    parser.add_argument(
        "--host", default=config.DEFAULT_HOST, help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=cli.port(0),
        default=config.DEFAULT_PORT,
        help="TCP port; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--max-clients",
        type=cli.positive_int,
        default=config.DEFAULT_MAX_CLIENTS,
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
        default=config.DEFAULT_MAX_BACKLOG,
        help="lines queued for one member before it is dropped as slow (default: %(default)s)",
    )
    parser.add_argument(
        "--handshake-timeout",
        type=cli.seconds,
        default=config.DEFAULT_HANDSHAKE_TIMEOUT,
        help="seconds a new connection has to send an accepted username (default: %(default)s)",
    )
    parser.add_argument(
        "--keepalive",
        metavar="SECONDS",
        type=_keepalive,
        default=config.DEFAULT_KEEPALIVE,
        help="a member whose machine vanished (no FIN, no RST) is announced as disconnected and "
        "its slot freed within twice this, by TCP keepalive and TCP_USER_TIMEOUT; at least 1, "
        "or 0 for off (default: %(default)g)",
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
        "--metrics-host",
        default=config.DEFAULT_METRICS_HOST,
        help="address the metrics endpoint listens on, whatever --host is: it has no "
        "authentication, so it stays on loopback unless you say otherwise (default: %(default)s)",
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
    """The server's settings from the parsed command line."""
    return ServerConfig(
        host=args.host,
        port=args.port,
        max_clients=args.max_clients,
        delivery=Delivery(args.delivery),
        max_line=args.max_line,
        max_backlog=args.max_backlog,
        handshake_timeout=args.handshake_timeout,
        keepalive=args.keepalive,
        sndbuf=args.sndbuf,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.race_window is not None and args.unsafe is None:
        print(f"{PROG}: --race-window only applies with --unsafe BUG", file=sys.stderr)
        return 2
    settings = config_from_args(args)
    # Lock metrics cost a little on every critical section: only when asked for.
    lock = InstrumentedLock("registry") if args.metrics_port is not None else None
    room: Room | None = None
    session_factory: SessionFactory = Session
    watchdog = None
    if args.unsafe is not None:
        from chat import bugs  # teaching code, loaded only when asked for

        try:
            bug = bugs.get_bug(args.unsafe)
        except bugs.UnknownBug as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 2
        parts = bug.inject(settings, race_window=args.race_window, lock=lock)
        print(parts.banner(), file=sys.stderr, flush=True)
        settings, room, session_factory, watchdog = (
            parts.config,
            parts.room,
            parts.session_factory,
            parts.watchdog,
        )
    server = ChatServer(settings, room, lock=lock, session_factory=session_factory)
    try:
        host, port = server.bind()
    except OSError as exc:
        print(f"{PROG}: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    metrics = None
    if args.metrics_port is not None:
        from chat.metrics import serve_metrics

        try:
            metrics = serve_metrics(server.room, args.metrics_host, args.metrics_port, unsafe=args.unsafe)
        except OSError as exc:
            print(
                f"{PROG}: cannot serve metrics on {args.metrics_host}:{args.metrics_port}: "
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
    if watchdog is not None:
        watchdog.start()
    try:
        server.serve_forever()
    finally:
        if watchdog is not None:
            watchdog.stop()
        if metrics is not None:
            metrics.close()
    return 0
