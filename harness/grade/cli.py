"""The command line of ``python -m harness.grade``: options, the grading loop, exit codes.

Exit codes: 0 every graded level passed; 1 a level failed; 2 a usage error;
3 the server could not be started or reached; 130 interrupted. Every process
the grader started is stopped by its PID before it exits, whatever happened.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from rich.console import Console

from chat.cli import OneLineParser, positive_int
from harness.common.address import Endpoint, endpoint_arg
from harness.grade.card import AFTER_FAILURE, Card, LevelResult, Outcome, show, to_json, write_gradescope
from harness.grade.levels import LEVEL_NAMES, LEVELS, Level, NotGraded, RunContext, level_named
from harness.grade.probe import Broken
from harness.grade.server import CannotStart, StartedServer, Target

PROG = "python -m harness.grade"
EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
#: Seconds a --target gets to accept the grader's first connection.
REACH_TIMEOUT = 5.0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description="Grade a chat server (docs/protocol.md) level by level: "
        + ", ".join(LEVEL_NAMES)
        + ". Prints a report card with a witness, a hint and a lesson for each failure.",
        epilog="exit codes: 0 every graded level passed, 1 a level failed, 2 usage error, "
        "3 the server could not be started or reached. See docs/exercises.md.",
    )
    parser.add_argument(
        "server",
        nargs="?",
        metavar="SERVER",
        help="a Python file, started as: python FILE --host 127.0.0.1 --port PORT --max-clients 100",
    )
    parser.add_argument(
        "--target",
        metavar="HOST:PORT",
        type=endpoint_arg,
        help="grade a server that is already running and admits at least 100 clients "
        "(shutdown and the ERR full check of limits are then not graded)",
    )
    parser.add_argument(
        "--level",
        default="all",
        choices=[*LEVEL_NAMES, "all"],
        metavar="NAME",
        help=f"grade one level ({', '.join(LEVEL_NAMES)}) or all of them (default: all)",
    )
    parser.add_argument(
        "--runs", type=positive_int, help="runs of every level (default: per level, several for racy ones)"
    )
    parser.add_argument("--keep-going", action="store_true", help="grade every level, past a failed one")
    parser.add_argument("--json", action="store_true", help="print the card as one JSON document on stdout")
    parser.add_argument(
        "--gradescope", metavar="PATH", type=Path, help="write Gradescope's results.json here"
    )
    parser.add_argument("--no-dashboard", action="store_true", help="no live progress, only the card")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.server is None) == (args.target is None):
        parser.error("give either SERVER (a Python file) or --target HOST:PORT, not both")
    path: Path | None = None
    if args.server is not None:
        path = Path(args.server)
        if not path.is_file():
            parser.error(f"no such file: {args.server}")
    levels = LEVELS if args.level == "all" else (level_named(args.level),)
    out = Console(file=sys.stderr if args.json else sys.stdout, highlight=False)
    progress = Console(file=sys.stderr, highlight=False)
    live = not args.no_dashboard and progress.is_terminal

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    started: StartedServer | None = None
    try:
        try:
            if path is not None:
                started = StartedServer(path.resolve()).start()
                target = Target(started.endpoint, started=started)
                label = str(args.server)
            else:
                target = Target(args.target, started=None)
                label = f"{args.target.host}:{args.target.port}"
                _reach(args.target)
        except CannotStart as exc:
            print(f"{PROG}: cannot start {args.server}: {exc}", file=sys.stderr)
            return EXIT_UNREACHABLE
        except OSError as exc:
            print(f"{PROG}: nothing accepts a connection at {label}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_UNREACHABLE
        card = Card(server=label)
        failed = False
        for level in levels:
            if failed and not args.keep_going:
                card.levels.append(
                    LevelResult(level.name, level.promise, Outcome.NOT_GRADED, note=AFTER_FAILURE)
                )
                continue
            result = grade_level(level, target, args.runs or level.runs, progress if live else None)
            card.levels.append(result)
            failed = failed or result.outcome is Outcome.FAIL
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if started is not None:
            started.stop()
    show(card, out)
    if args.json:
        print(to_json(card))
    if args.gradescope is not None:
        write_gradescope(card, args.gradescope)
    return EXIT_PASS if card.passed else EXIT_FAIL


def grade_level(level: Level, target: Target, runs: int, progress: Console | None) -> LevelResult:
    """Every run of one level, stopping at the first failed run."""
    result = LevelResult(level.name, level.promise, Outcome.PASS, runs=runs, lesson=level.lesson)
    start = time.monotonic()
    notes: list[str] = []
    for run in range(1, runs + 1):
        status = progress.status(f"{level.name}: run {run}/{runs}") if progress is not None else None
        try:
            if status is not None:
                status.start()
            note = level.play(RunContext(target, run))
            if note:
                notes.append(note)
            result.runs_passed += 1
        except NotGraded as exc:
            result.outcome, result.note, result.runs = Outcome.NOT_GRADED, str(exc), 0
            break
        except Broken as exc:
            result.outcome, result.witness = Outcome.FAIL, exc.witness
            result.hint = exc.hint or level.hint
            result.lesson = exc.lesson or level.lesson
            break
        except OSError as exc:
            result.outcome = Outcome.FAIL
            result.witness = f"a connection to the server failed: {exc}"
            result.hint = level.hint
            break
        finally:
            if status is not None:
                status.stop()
    result.seconds = time.monotonic() - start
    if result.outcome is Outcome.PASS:
        result.lesson = ""
        result.note = "; ".join(dict.fromkeys(notes))
    return result


def _reach(endpoint: Endpoint) -> None:
    """Raise OSError unless something accepts a connection at ``endpoint``."""
    with socket.create_connection((endpoint.host, endpoint.port), timeout=REACH_TIMEOUT):
        pass
