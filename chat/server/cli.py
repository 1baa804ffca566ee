"""``python -m chat.server``: the command line, and the one place that puts a server together.

The composition root: it reads the options, builds the safe server, or, with
``--unsafe BUG``, asks the bug catalogue (:mod:`chat.bugs`) for that bug's
parts (a room, a session factory, a changed config, a lock watchdog) and builds
the server from them. It is the only module of chat/ that knows the catalogue
exists, and it imports it only when ``--unsafe`` is given. It also serves the
metrics and turns SIGINT and SIGTERM into a clean shutdown.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Protocol

from chat import cli, protocol
from chat.config import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_MAX_BACKLOG,
    DEFAULT_MAX_CLIENTS,
    DEFAULT_PORT,
    ServerConfig,
)
from chat.delivery import Delivery
from chat.lockstat import InstrumentedLock
from chat.server.core import ChatServer


class LockWatchdogLike(Protocol):
    """A companion thread that runs beside the accept loop (the unsafe server's lock watchdog)."""

    def start(self) -> None: ...

    def stop(self, timeout: float = ...) -> None: ...


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
    watchdog: LockWatchdogLike | None = None
    if args.unsafe is None:
        server = ChatServer(config, lock=lock)
    else:
        # The bug catalogue is teaching code: loaded only when asked for, and only here.
        from chat import bugs

        try:
            parts = bugs.build(args.unsafe, config, race_window=args.race_window, lock=lock)
        except bugs.UnknownBug as exc:
            print(f"chat.server: {exc}", file=sys.stderr)
            return 2
        print(parts.banner, file=sys.stderr, flush=True)
        server = ChatServer(parts.config, parts.room, session_factory=parts.session_factory)
        watchdog = parts.watchdog
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
