"""``python -m harness.swarm``: aim a swarm of bots at a chat server, judge its histories, show and record.

This module is the command line only: the options, the settings they make, the
live view or progress lines, and what goes to stdout and stderr. The run itself
is :mod:`harness.swarm.run`.

Output: the one-line verdict on stdout, or with ``--json`` exactly one JSON
document (the summary, :mod:`harness.swarm.summary`); everything else on stderr.

Exit codes: 0 PASS, 1 FAIL (any violation), 3 UNKNOWN (no violation, but too
little happened to judge), 2 usage or setup error (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from chat import cli
from harness.common.address import IRC_SCHEME, target_arg
from harness.record import store
from harness.swarm.run import SetupError, StopFlag, Swarm, SwarmSettings, random_seed
from harness.swarm.scenarios import SCENARIOS, describe

PROG = "python -m harness.swarm"
#: Most padding an IRC message may carry: a relayed line is at most 512 bytes with its CRLF, and the
#: source (``:nick!~user@host``), ``PRIVMSG #channel :`` and the payload take up to about 110 of them.
IRC_MAX_PAD = 400
EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_UNKNOWN = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    p = cli.OneLineParser(
        prog=PROG,
        description="Run a swarm of bots against a chat server, check every recorded history for "
        "ordering, loss and membership faults, show it live and record the run.",
        epilog="exit codes: 0 PASS, 1 FAIL (a violation), 3 UNKNOWN (too little happened to judge), "
        "2 usage or setup error",
    )
    p.add_argument("--clients", type=cli.positive_int, default=50, help="bots (default: %(default)s)")
    p.add_argument(
        "--duration",
        type=duration,
        default=10.0,
        help="length of the chat phase: seconds, or with a unit: 90s, 10m, 1h (default: %(default)s)",
    )
    p.add_argument(
        "--soak",
        action="store_true",
        help="soak: run the scenario in rounds against one server for the whole --duration, sample the "
        "server's RSS, threads and descriptors, and judge leaks",
    )
    p.add_argument(
        "--rate",
        type=cli.rate,
        default=10.0,
        help="messages per second per chatting bot (default: %(default)s)",
    )
    p.add_argument("--scenario", choices=SCENARIOS, default="chat", help="what the bots do (default: chat)")
    p.add_argument(
        "--target",
        type=target_arg,
        metavar="HOST:PORT",
        help="a running server to test (irc://HOST:PORT[/CHANNEL] for an IRC server, docs/irc.md); "
        "without it the swarm starts its own on a free port",
    )
    p.add_argument(
        "--strict-order",
        action="store_true",
        help="IRC targets: also judge that every member gets one order (servers with one event loop)",
    )
    p.add_argument("--metrics", metavar="URL", help="the target's Prometheus metrics URL (with --target)")
    p.add_argument(
        "--no-dashboard", action="store_true", help="plain progress lines instead of the live view"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON document on stdout (all else: stderr)",
    )
    rec = p.add_mutually_exclusive_group()
    rec.add_argument(
        "--record", metavar="DIR", help="save the run record in DIR (default: runs/<time>-<scenario>/)"
    )
    rec.add_argument("--no-record", action="store_true", help="do not save a run record")
    p.add_argument(
        "--keep-runs",
        type=cli.non_negative_int,
        default=store.DEFAULT_KEEP_RUNS,
        metavar="N",
        help="keep only the N newest run records in runs/ (0: keep all; not with --record) "
        "(default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed of the scenario (default: random)")
    p.add_argument(
        "--procs",
        type=cli.positive_int,
        default=1,
        help="worker processes the bots are spread over, for hundreds of bots (default: %(default)s)",
    )
    p.add_argument(
        "--handshake-bound",
        type=cli.seconds,
        default=5.0,
        help="seconds a handshake may take before it counts as hung (default: %(default)s)",
    )
    p.add_argument(
        "--delivery-bound",
        type=cli.seconds,
        default=5.0,
        help="seconds a message may take to arrive before it counts as hung (default: %(default)s)",
    )
    p.add_argument(
        "--delivery",
        choices=("direct", "queued", "batched"),
        help="--delivery of the own server (default: the server's)",
    )
    p.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARGS",
        help="extra arguments for the own server, e.g. --server-arg='--unsafe no-lock' (repeatable)",
    )
    p.add_argument(
        "--pad", type=cli.non_negative_int, default=0, help="bytes of padding per message (default: 0)"
    )
    p.add_argument(
        "--burst",
        type=cli.positive_int,
        default=None,
        help="messages per burst (default: sized to the swarm)",
    )
    p.add_argument(
        "--ramp",
        type=cli.rate,
        default=100.0,
        help="bots joining per second before the start; 0 joins them all at once (default: %(default)s)",
    )
    p.add_argument(
        "--max-backlog",
        type=cli.positive_int,
        metavar="N",
        help="the server's --max-backlog: a slow reader must be dropped before more than N lines pile up "
        "for it (default: the own server's; with --target, not judged unless given)",
    )
    p.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity on stderr (default: %(default)s)",
    )
    return p


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str) -> float:
    """Seconds, from ``90``, ``90s``, ``1.5m`` or ``1h`` (more than 0)."""
    unit = _UNITS.get(text[-1:].lower()) if text else None
    if unit is None:
        return cli.seconds(text)
    try:
        return cli.seconds(text[:-1]) * unit
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"not a duration (e.g. 90, 90s, 10m, 1h): {text}") from None


def settings_from_args(args: argparse.Namespace) -> SwarmSettings:
    parser = build_parser()
    if args.metrics and not args.target:
        parser.error("--metrics needs --target (the own server's metrics are found by the swarm)")
    if args.target and (args.server_arg or args.delivery):
        parser.error("--server-arg and --delivery apply to the own server, not to --target")
    if args.target and args.target.protocol == IRC_SCHEME and args.pad > IRC_MAX_PAD:
        parser.error(f"--pad {args.pad} does not fit an IRC line (512 bytes): at most {IRC_MAX_PAD}")
    server_args: list[str] = []
    for chunk in args.server_arg:
        try:
            server_args += shlex.split(chunk)
        except ValueError as exc:
            parser.error(f"--server-arg {chunk!r}: {exc}")
    target = args.target
    return SwarmSettings(
        clients=args.clients,
        duration=args.duration,
        rate=args.rate,
        scenario=args.scenario,
        target=target.endpoint if target is not None else None,
        protocol=target.protocol if target is not None else "chat",
        channel=target.channel if target is not None and target.protocol == IRC_SCHEME else "",
        strict_order=args.strict_order,
        metrics_url=args.metrics,
        seed=args.seed if args.seed is not None else random_seed(),
        procs=min(args.procs, args.clients),
        handshake_bound=args.handshake_bound,
        delivery_bound=args.delivery_bound,
        server_args=tuple(server_args),
        delivery=args.delivery,
        pad=args.pad,
        burst=args.burst,
        ramp=args.ramp,
        max_backlog=args.max_backlog,
    )


def _record_dir(args: argparse.Namespace, scenario: str) -> Path | None:
    if args.no_record:
        return None
    try:
        if args.record:
            path = Path(args.record)
            path.mkdir(parents=True, exist_ok=True)
            return path
        path = store.new_run_dir("runs", scenario)
        store.prune_runs("runs", args.keep_runs, spare=path)
        return path
    except OSError as exc:
        raise SetupError(f"cannot create the run record folder: {exc.strerror or exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)

    from rich.console import Console
    from rich.live import Live
    from rich.logging import RichHandler

    from harness.swarm.dashboard import Dashboard, summary_view, verdict_text, witness_lines

    err = Console(stderr=True)
    logging.basicConfig(
        level=args.log_level,
        handlers=[RichHandler(console=err, show_path=False, show_time=False)],
        format="%(message)s",
    )
    use_live = not args.no_dashboard and err.is_terminal
    stop = StopFlag()
    interrupts = 0

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupts
        interrupts += 1
        stop.set()
        if interrupts == 1:
            # os.write, not the console: the handler may run in the middle of a
            # console write, and a buffered stream refuses a reentrant call.
            try:
                os.write(2, b"stopping: the bots quit, then the summary of what ran\n")
            except OSError:
                pass  # stderr closed: the summary will say it all the same

    if args.soak:
        return _soak(args, settings, argv, err, stop, on_signal)
    try:
        record_dir = _record_dir(args, settings.scenario)
        swarm = Swarm(
            settings,
            record_dir=record_dir,
            progress=None
            if use_live
            else (lambda line: err.print(line, markup=False, highlight=False, soft_wrap=True)),
            argv=[PROG.split()[-1], *argv],
            stop=stop,
        )
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            try:
                monitor = swarm.prepare()
            except SetupError:
                swarm.close()
                if record_dir is not None and not args.record:
                    shutil.rmtree(record_dir, ignore_errors=True)  # the folder we made for nothing
                raise
            if not use_live:
                err.print(
                    f"swarm: {describe(swarm.plan)} at {swarm.target}, {settings.scenario}, "
                    f"{settings.duration:g} s at {settings.rate:g} msg/s, seed {settings.seed}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
            if use_live:
                with Live(
                    get_renderable=Dashboard(monitor.snapshot).__rich__,
                    console=err,
                    refresh_per_second=4,
                    transient=False,
                ):
                    result = swarm.run()
            else:
                result = swarm.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    except SetupError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE

    doc = result.doc
    err.print(summary_view(doc))
    if result.record_dir is not None:
        err.print(f"run record: {result.record_dir}", markup=False, highlight=False)
    try:
        if args.json:
            err.print(verdict_text(doc))
            for line in witness_lines(doc):
                err.print(line, markup=False, highlight=False, soft_wrap=True)
            sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        else:
            err.print()
            sys.stdout.write(doc["summary"] + "\n")
            sys.stdout.flush()
            for line in witness_lines(doc):
                err.print(line, markup=False, highlight=False, soft_wrap=True)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head -0`): the exit code still tells.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return result.exit_code


def _soak(
    args: argparse.Namespace,
    settings: SwarmSettings,
    argv: list[str],
    err: Any,
    stop: StopFlag,
    on_signal: Callable[[int, FrameType | None], None],
) -> int:
    """``--soak``: rounds against one server (:mod:`harness.swarm.soak`), progress lines, the verdict."""
    from harness.swarm.dashboard import soak_view
    from harness.swarm.soak import round_seconds, run_soak

    def line(text: str) -> None:
        err.print(text, markup=False, highlight=False, soft_wrap=True)

    try:
        record_dir = _record_dir(args, f"{settings.scenario}-soak")
        line(
            f"soak: {settings.scenario}, {settings.clients} bots, {settings.duration:g} s in rounds of "
            f"{round_seconds(settings.duration):g} s, seed {settings.seed}"
        )
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            result = run_soak(
                settings, record_dir=record_dir, progress=line, argv=[PROG.split()[-1], *argv], stop=stop
            )
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    except SetupError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    doc = result.doc
    err.print(soak_view(doc))
    if result.record_dir is not None:
        line(f"run record: {result.record_dir}")
    try:
        if args.json:
            sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(doc["summary"] + "\n")
        for violation in doc["violations"][:10]:
            line(f"  [{violation['check']}] {violation['message']}")
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return result.exit_code
