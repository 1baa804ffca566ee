"""``python -m harness.bugrate``: how reliably the harness catches each catalogued bug (a benchmark).

Not a test: it runs many swarms and reports rates. The bar is that every bug
of the catalogue (:mod:`chat.bugs`) is detected in at least 19 of 20 runs of
at most 10 s each, and that the safe server shows 0 violations in 100 runs of
every scenario. docs/bugs.md holds the measured figures and the command.

Each run is one ``python -m harness.swarm`` subprocess
(:mod:`harness.swarm.invoke`) with a fresh random seed (printed, so that any
miss can be replayed with ``--seed``). Results are appended to ``--out`` as
JSON Lines as they arrive, so a long measurement that is interrupted keeps
what it measured.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from rich.console import Console
from rich.table import Table

from chat import cli
from harness.checker import Verdict
from harness.swarm.invoke import EXPOSING_CLIENTS, EXPOSING_DURATION, SAFE, SwarmOutcome, SwarmSpec, run_swarm
from harness.swarm.scenarios import SCENARIOS

PROG = "python -m harness.bugrate"
#: The bar: detected in at least this share of runs, runs no longer than this.
BAR_RATE = 19 / 20
BAR_MAX_DURATION = 10.0
#: Table width when stdout is not a terminal (rich would assume 80 columns).
WIDE = 160


class Job(NamedTuple):
    """One swarm run to do: against ``bug``'s server (None: the safe one) in ``scenario``."""

    bug: str | None
    scenario: str

    @property
    def server(self) -> str:
        return self.bug or SAFE


@dataclass
class Tally:
    """The runs of one bug, or of the safe server in one scenario."""

    server: str
    scenario: str
    runs: int = 0
    caught: int = 0
    clean: int = 0
    unknown: int = 0
    errors: int = 0
    violations: int = 0
    checks: Counter[str] = field(default_factory=Counter)
    detected_after: list[float] = field(default_factory=list)
    missed_seeds: list[int] = field(default_factory=list)

    @property
    def is_safe(self) -> bool:
        return self.server == SAFE

    def add(self, out: SwarmOutcome, seed: int) -> None:
        self.runs += 1
        self.violations += sum(out.checks.values())
        self.checks.update(out.checks.keys())  # runs in which each check fired
        if out.verdict is Verdict.FAIL:
            self.caught += 1
        elif out.verdict is Verdict.PASS:
            self.clean += 1
        elif out.verdict is Verdict.UNKNOWN:
            self.unknown += 1
        else:
            self.errors += 1
        if out.detection is not None:
            self.detected_after.append(out.detection.after)
        # A miss: a bug that went unseen, or the safe server failing.
        if out.is_caught == self.is_safe:
            self.missed_seeds.append(seed)

    @property
    def median_detection(self) -> float | None:
        return statistics.median(self.detected_after) if self.detected_after else None


def bug_table(tallies: Sequence[Tally]) -> Table:
    t = Table(title="Detection rate per injected bug", expand=False)
    for col in (
        "bug",
        "scenario",
        "caught",
        "rate",
        "bar",
        "median detection",
        "checks (runs fired)",
        "missed",
    ):
        t.add_column(col, overflow="fold")
    for x in tallies:
        rate = x.caught / x.runs if x.runs else 0.0
        ok = "[green]met[/]" if rate >= BAR_RATE else "[red]missed[/]"
        med = x.median_detection
        checks = ", ".join(f"{k} {n}" for k, n in x.checks.most_common())
        missed = ", ".join(f"seed {s}" for s in x.missed_seeds[:5]) or "-"
        t.add_row(
            x.server,
            x.scenario,
            f"{x.caught}/{x.runs}",
            f"{rate:.0%}",
            ok,
            f"{med:.2f} s" if med is not None else "-",
            checks or "-",
            missed,
        )
    return t


def safe_table(tallies: Sequence[Tally]) -> Table:
    t = Table(title="The safe server, per scenario", expand=False)
    for col in ("scenario", "runs", "PASS", "FAIL", "UNKNOWN", "errors", "violations", "failing seeds"):
        t.add_column(col, overflow="fold")
    for x in tallies:
        failing = x.runs - x.clean - x.unknown - x.errors
        t.add_row(
            x.scenario,
            str(x.runs),
            str(x.clean),
            f"[red]{failing}[/]" if failing else "0",
            str(x.unknown),
            str(x.errors),
            f"[red]{x.violations}[/]" if x.violations else "[green]0[/]",
            ", ".join(str(s) for s in x.missed_seeds[:5]) or "-",
        )
    return t


def measure(
    jobs: list[Job],
    *,
    clients: int,
    duration: float,
    parallel: int,
    detect: bool,
    out_path: Path | None,
    progress: Callable[[str], None],
) -> dict[Job, Tally]:
    """Run every job once, ``parallel`` at a time; tally them by job (server and scenario)."""
    tallies = {job: Tally(job.server, job.scenario) for job in jobs}
    rng = random.Random()

    def one(job: Job) -> tuple[int, SwarmOutcome]:
        seed = rng.randrange(1 << 30)
        with tempfile.TemporaryDirectory(prefix="chat-bugrate-") as tmp:
            spec = SwarmSpec(
                clients=clients,
                duration=duration,
                scenario=job.scenario,
                seed=seed,
                bug=job.bug,
                record_dir=Path(tmp) / "run" if detect and job.bug else None,
            )
            return seed, run_swarm(spec, detect=detect)

    done = 0
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for job, (seed, out) in zip(jobs, pool.map(one, jobs), strict=True):
            done += 1
            tallies[job].add(out, seed)
            progress(f"[{done}/{len(jobs)}] {job.server} {job.scenario} seed {seed}: {out.line}")
            if out_path is not None:
                with out_path.open("a") as f:
                    f.write(json.dumps({"seed": seed, **out.as_dict()}) + "\n")
    return tallies


def build_parser() -> argparse.ArgumentParser:
    p = cli.OneLineParser(
        prog=PROG,
        description="Measure how often the swarm catches each --unsafe bug, and that the safe server "
        "never fails, over many runs.",
    )
    p.add_argument("bugs", nargs="*", metavar="BUG", help="bugs to measure (default: all)")
    p.add_argument(
        "--runs", type=cli.non_negative_int, default=20, help="runs per bug (default: %(default)s)"
    )
    p.add_argument(
        "--safe-runs",
        type=cli.non_negative_int,
        default=100,
        help="runs of the safe server per scenario (default: %(default)s)",
    )
    p.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="scenarios of the safe runs, comma-separated (default: all)",
    )
    p.add_argument(
        "--clients", type=cli.positive_int, default=EXPOSING_CLIENTS, help="bots (default: %(default)s)"
    )
    p.add_argument(
        "--duration",
        type=cli.seconds_at_most(600),
        default=EXPOSING_DURATION,
        help="seconds of chat per run (default: %(default)s)",
    )
    p.add_argument(
        "--jobs", type=cli.positive_int, default=1, help="swarms run at once (default: %(default)s)"
    )
    p.add_argument("--detect", action="store_true", help="also measure the time to first detection (slower)")
    p.add_argument("--out", metavar="FILE", help="append every run's result to FILE as JSON Lines")
    p.add_argument("--json", action="store_true", help="print the tallies as one JSON document")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from chat.bugs import BUGS

    args = build_parser().parse_args(argv)
    bugs = list(BUGS) if not args.bugs or args.bugs == ["all"] else args.bugs
    unknown = [b for b in bugs if b not in BUGS]
    if unknown:
        print(f"{PROG}: unknown bug {unknown[0]!r}; valid: all, {', '.join(BUGS)}", file=sys.stderr)
        return 2
    scenarios = [s for s in args.scenarios.split(",") if s]
    bad = [s for s in scenarios if s not in SCENARIOS]
    if bad:
        print(f"{PROG}: unknown scenario {bad[0]!r}; valid: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print(f"{PROG}: --jobs must be at least 1", file=sys.stderr)
        return 2
    jobs: list[Job] = []
    for _ in range(args.runs):  # interleaved, so that a drift of the machine hits every bug alike
        jobs += [Job(b, BUGS[b].scenario) for b in bugs]
    for _ in range(args.safe_runs):
        jobs += [Job(None, s) for s in scenarios]
    err = Console(stderr=True)
    out = Console() if sys.stdout.isatty() else Console(width=WIDE)
    started = time.monotonic()
    err.print(
        f"{len(jobs)} swarm runs: {args.runs} per bug x {len(bugs)} bugs, {args.safe_runs} safe runs x "
        f"{len(scenarios)} scenarios; {args.clients} bots, {args.duration:g} s each, {args.jobs} at once",
        highlight=False,
    )
    try:
        tallies = measure(
            jobs,
            clients=args.clients,
            duration=args.duration,
            parallel=args.jobs,
            detect=args.detect,
            out_path=Path(args.out) if args.out else None,
            progress=lambda s: err.print(s, markup=False, highlight=False),
        )
    except KeyboardInterrupt:
        err.print("interrupted")
        return 1
    bug_tallies = [t for t in tallies.values() if not t.is_safe]
    safe_tallies = [t for t in tallies.values() if t.is_safe]
    met = all(t.runs and t.caught / t.runs >= BAR_RATE for t in bug_tallies)
    met = met and args.duration <= BAR_MAX_DURATION
    clean = all(t.violations == 0 and t.clean + t.unknown == t.runs for t in safe_tallies)
    if args.json:
        doc = {
            "command": " ".join([PROG, *(argv if argv is not None else sys.argv[1:])]),
            "clients": args.clients,
            "duration": args.duration,
            "elapsed_s": round(time.monotonic() - started, 1),
            "bugs": {
                t.server: {
                    "runs": t.runs,
                    "caught": t.caught,
                    "checks": dict(t.checks),
                    "median_detection_s": t.median_detection,
                    "missed_seeds": t.missed_seeds,
                }
                for t in bug_tallies
            },
            "safe": {
                t.scenario: {
                    "runs": t.runs,
                    "pass": t.clean,
                    "unknown": t.unknown,
                    "errors": t.errors,
                    "violations": t.violations,
                    "failing_seeds": t.missed_seeds,
                }
                for t in safe_tallies
            },
            "bar_met": met and clean,
        }
        print(json.dumps(doc, indent=2))
    else:
        if bug_tallies:
            out.print(bug_table(bug_tallies))
        if safe_tallies:
            out.print(safe_table(safe_tallies))
        bar = "met" if met and clean else "NOT met"
        out.print(f"{len(jobs)} runs in {time.monotonic() - started:.0f} s; bar {bar}")
    return 0 if met and clean else 1
