"""``python -m harness.bench``: throughput, latency, memory and scale of the chat server, side by side.

Not a test (it never passes or fails on speed) and not a load generator (that is
:mod:`harness.bench.loadgen`): the bench starts the servers it compares, runs the cases, repeats them
alternating the servers, and turns the runs into medians, ratios and a table. Absolute figures on shared
machines move by tens of percent from run to run, so every claim it makes is a ratio between servers
measured in the same run. This module is its command line; the package holds, by concern:

===================  ===========================================================================
module               what it holds
===================  ===========================================================================
``settings``         what a run is parameterised by; the ``--quick`` and ``--tiny`` profiles
``cases``            the load cases and the runner that repeats them, alternating the servers
``loadgen``          the load generator
``scale``            the scale swarm (part of the memory case)
``checker_speed``    the checker case
``figures``          medians over the repetitions, ratios between designs
``goals``            the bar: figures in, PASS/FAIL rows out (a pure function)
``reports``          the progress lines and the rich tables
``summary``          the ``--json`` document and the run record
``instrumentation``  ``python -m harness.bench.instrumentation``: the lock's cost per critical section
``bugrate``          ``python -m harness.bugrate``: how reliably the swarm catches each bug
===================  ===========================================================================

Cases (``--cases``):

``saturation``       deliveries/s summed over all members at 10, 50 and 200 members, 5 publishers, 64-byte
                     messages, closed loop with a bounded window, per ``--delivery`` design;
``latency``          50 members, 200 and 2000 msg/s in total on an open-loop schedule: p50, p99 and max
                     from each message's due time to its receipt, per design;
``memory``           server RSS and threads at 100, 500 and 1000 members, idle and then chatting;
                     bytes per member; and the largest swarm that passes;
``instrumentation``  saturation throughput with and without ``--metrics-port`` (lock metrics on);
``checker``          events per second through :mod:`harness.checker` on a 1,000,000-event history.

``--peers ngircd,redis`` (and ``inspircd``) starts each named peer server itself (:mod:`harness.common.peers`)
and runs it through the saturation and latency cases beside our designs, with the same load generator
speaking its protocol; a peer that is not installed is reported (``not installed (apt-get install X)``)
and skipped.

A figure from a run in which the generator, not the server, ran out of CPU is marked ``generator-bound``
and never counts as the server's (see :func:`harness.bench.loadgen.is_generator_bound`).

Exit status: 0 when every run completed cleanly; 1 when a run failed or saw loss, reordering or a slow drop
(the figures are still printed); 2 for a usage error; 130 when interrupted (Ctrl+C: the runs done so far
are still reported and recorded).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence

from rich.console import Console

from chat import cli
from harness.bench.cases import Bench
from harness.bench.reports import render
from harness.bench.settings import CASES, DESIGNS, Settings, apply_quick, apply_tiny
from harness.bench.summary import build_summary, load_average, write_record
from harness.common.address import endpoint_arg
from harness.common.peers import PEERS

#: Exit statuses (a usage error is argparse's 2).
EXIT_CLEAN, EXIT_UNCLEAN, EXIT_INTERRUPTED = 0, 1, 130


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"every value must be at least 1: {text!r}")
    return values


def _float_list(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if not values or any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"every value must be more than 0: {text!r}")
    return values


def _choices(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [x.strip() for x in text.split(",") if x.strip()]
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(bad) or 'empty list'}; choose from {', '.join(allowed)}"
            )
        return values

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = cli.OneLineParser(
        prog="python -m harness.bench",
        description="Benchmark the chat server's delivery designs: saturation throughput, latency, memory "
        "and scale, lock-metrics cost, checker speed. Prints a table; exit 1 if a run saw loss, "
        "reordering, a slow drop or an error.",
    )
    p.add_argument(
        "--cases",
        type=_choices(CASES),
        help=f"comma-separated cases to run (default: all of {', '.join(CASES)})",
    )
    p.add_argument(
        "--designs", type=_choices(DESIGNS), help="comma-separated --delivery designs (default: all)"
    )
    p.add_argument(
        "--peers",
        type=_choices(list(PEERS)),
        help="comma-separated peer servers to start and measure beside ours in the saturation and latency "
        f"cases ({', '.join(PEERS)}); one that is not installed is reported and skipped",
    )
    p.add_argument(
        "--target",
        type=endpoint_arg,
        help="benchmark this running server (HOST:PORT) instead of starting ours",
    )
    p.add_argument(
        "--reps",
        type=cli.positive_int,
        help="repetitions of each run, alternating servers (default: 3; 1 with --quick)",
    )
    p.add_argument(
        "--quick", action="store_true", help="a run of about a minute: shorter windows, fewer sizes"
    )
    p.add_argument(
        "--tiny", action="store_true", help="the smallest configuration that exercises every case (for tests)"
    )
    p.add_argument("--members", type=_int_list, help="saturation member counts (default: 10,50,200)")
    p.add_argument("--publishers", type=cli.positive_int, help="members that send (default: 5)")
    p.add_argument(
        "--seconds", type=cli.positive_float, help="measured window of each saturation run (default: 3)"
    )
    p.add_argument("--window", type=cli.positive_int, help="saturation: messages in flight (default: 200)")
    p.add_argument(
        "--procs", type=cli.positive_int, help="receiver processes of the load generator (default: 2)"
    )
    p.add_argument("--rates", type=_float_list, help="latency: total msg/s (default: 200,2000)")
    p.add_argument("--latency-members", type=cli.positive_int, help="latency: members (default: 50)")
    p.add_argument("--memory-reps", type=cli.positive_int, help="memory: repetitions (default: 1)")
    p.add_argument("--memory-members", type=_int_list, help="memory: member counts (default: 100,500,1000)")
    p.add_argument(
        "--checker-events", type=cli.positive_int, help="checker: events in the history (default: 1,000,000)"
    )
    p.add_argument(
        "--checker-run",
        metavar="DIR",
        help="checker: time it on this recorded run (a swarm's run record) instead of a synthetic history",
    )
    p.add_argument(
        "--json",
        metavar="PATH",
        help="also write the summary as JSON to PATH ('-' for stdout, tables then go to stderr)",
    )
    p.add_argument(
        "--runs-dir", default="runs", help="where the run record folder goes (default: %(default)s)"
    )
    p.add_argument("--no-record", action="store_true", help="do not write a run record folder")
    return p


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings of a command line: the defaults, then ``--quick`` and ``--tiny``, then each option."""
    s = Settings()
    if args.quick:
        apply_quick(s)
    if args.tiny:
        apply_tiny(s)
    if args.cases:
        s.cases = args.cases
    if args.designs:
        s.designs = args.designs
    if args.peers:
        s.peers = args.peers
    if args.target:
        s.target = args.target
    for name in (
        "reps",
        "publishers",
        "seconds",
        "window",
        "procs",
        "rates",
        "latency_members",
        "checker_events",
        "memory_reps",
    ):
        value = getattr(args, name)
        if value is not None:
            setattr(s, name, value)
    if args.members:
        s.sizes = args.members
    if args.checker_run:
        s.checker_run = args.checker_run
    if args.memory_members:
        s.memory_sizes = args.memory_members
        s.swarm_sizes = args.memory_members
    return s


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    to_stdout_json = args.json == "-"
    stream = sys.stderr if to_stdout_json else sys.stdout
    out = Console(file=stream, width=None if stream.isatty() else 130)
    progress = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    started = time.time()
    load_before = load_average()
    if load_before and load_before[0] > (os.cpu_count() or 1) * 0.5:
        progress.print(
            f"[yellow]note: the machine is busy (load average {load_before[0]:.1f}); figures will be noisy[/]"
        )
    bench = Bench(settings, lambda line: progress.print(line, highlight=False))
    interrupted = False
    try:
        bench.run()
    except KeyboardInterrupt:
        progress.print("interrupted: reporting the runs done so far")
        interrupted = True
    summary = build_summary(bench, started, load_before)
    render(summary, out)
    if not args.no_record:
        progress.print(f"run record: {write_record(summary, args.runs_dir, argv)}")
    if args.json:
        text = json.dumps(summary, indent=2, default=str)
        if to_stdout_json:
            sys.stdout.write(text + "\n")
        else:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(text + "\n")
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_CLEAN if summary["clean"] else EXIT_UNCLEAN
