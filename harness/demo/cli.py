"""``python -m harness.demo [BUG ...|all]``: inject each catalogued bug, and watch the harness catch it.

For every bug of :mod:`chat.unsafe` the demo runs the swarm scenario that
exposes it against ``chat.server --unsafe BUG``, then the same scenario (same
seed, same size) against the safe server, and prints one table: the bug, the
checks that fired, the first witness, how soon the checker could have said
so, and the safe server's result. Exit code 0 when every bug was caught and
the safe server was clean; 1 otherwise; 2 for a usage error.

Each run is a ``python -m harness.swarm`` subprocess (it starts its own server
and judges the histories); the demo only orchestrates and reads the run
record. *Time to first detection* is found after the run, without any clock
in the checker: the recorded histories are cut at a time T and judged as if
the run had ended then; the smallest T at which the checker already reports a
violation (to :data:`RESOLUTION`) is the figure. A correct server's prefixes
are as clean as its whole run, which is what makes the figure fair.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from chat import cli
from harness.record.history import ClientHistory

PROG = "python -m harness.demo"
#: The contract's exposing run: a 30-bot, 8 s ``mixed`` swarm.
DEFAULT_CLIENTS = 30
DEFAULT_DURATION = 8.0
#: Precision of the time-to-first-detection search, in seconds.
RESOLUTION = 0.05
#: A swarm run of ``duration`` seconds ends within this much more (joins,
#: drain, quit, judging), or it is killed and counted as an error.
RUN_OVERHEAD = 90.0
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: Table width when stdout is not a terminal (rich would assume 80 columns).
WIDE = 160
SAFE = "safe"


def _bugs() -> dict[str, Any]:
    from chat.bugs import BUGS

    return BUGS


# -- one swarm run -------------------------------------------------------------------


@dataclass
class RunOutcome:
    """One swarm run, as the demo and the bug-rate benchmark see it."""

    server: str
    """The bug injected, or ``safe``."""
    scenario: str
    exit_code: int
    verdict: str
    """``PASS``, ``FAIL``, ``UNKNOWN``, or ``ERROR`` when the swarm itself failed."""
    line: str
    """The swarm's one-line summary (or the error)."""
    checks: dict[str, int] = field(default_factory=dict)
    """Violations per check, only those that fired."""
    first_witness: str = ""
    first_check: str = ""
    detected_after: float | None = None
    """Seconds from the first connect to the shortest prefix of the run that already fails."""
    seconds: float = 0.0
    """Wall time of the whole swarm run."""
    record: Path | None = None

    @property
    def is_caught(self) -> bool:
        return self.verdict == "FAIL"

    @property
    def is_clean(self) -> bool:
        return self.verdict == "PASS"


def swarm_command(
    *,
    scenario: str,
    clients: int,
    duration: float,
    seed: int,
    bug: str | None,
    record_dir: Path | None,
    extra: Sequence[str] = (),
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "harness.swarm",
        "--scenario",
        scenario,
        "--clients",
        str(clients),
        "--duration",
        f"{duration:g}",
        "--seed",
        str(seed),
        "--no-dashboard",
        "--json",
    ]
    cmd += ["--record", str(record_dir)] if record_dir is not None else ["--no-record"]
    if bug is not None:
        cmd.append(f"--server-arg=--unsafe {bug}")
    cmd += list(extra)
    return cmd


def run_swarm(
    *,
    scenario: str,
    clients: int,
    duration: float,
    seed: int,
    bug: str | None,
    record_dir: Path | None = None,
    detect: bool = True,
    extra: Sequence[str] = (),
) -> RunOutcome:
    """Run one swarm to its end and read its verdict (and, with ``detect``, when it first failed)."""
    cmd = swarm_command(
        scenario=scenario,
        clients=clients,
        duration=duration,
        seed=seed,
        bug=bug,
        record_dir=record_dir,
        extra=extra,
    )
    server = bug or SAFE
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + RUN_OVERHEAD)
    except subprocess.TimeoutExpired:
        return RunOutcome(server, scenario, -1, "ERROR", "the swarm did not end in time", seconds=duration)
    elapsed = time.monotonic() - started
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return RunOutcome(server, scenario, proc.returncode, "ERROR", tail, seconds=elapsed)
    out = RunOutcome(
        server=server,
        scenario=scenario,
        exit_code=proc.returncode,
        verdict=str(doc.get("verdict", "ERROR")),
        line=str(doc.get("summary", "")),
        checks={k: int(v) for k, v in dict(doc.get("checks", {})).items() if v},
        seconds=elapsed,
        record=record_dir,
    )
    violations = doc.get("violations") or []
    if violations:
        out.first_check = str(violations[0].get("check", ""))
        out.first_witness = str(violations[0].get("message", ""))
    if detect and out.is_caught and record_dir is not None:
        found = detection_from_record(record_dir)
        if found is not None:
            out.detected_after, out.first_check, out.first_witness = found
    return out


# -- time to first detection ------------------------------------------------------------------


def prefix(histories: Sequence[ClientHistory], cut: float) -> list[ClientHistory]:
    """The histories as they stood at wall-clock time ``cut``."""
    out = []
    for h in histories:
        events = [e for e in h.events if e.t <= cut]
        if events:
            out.append(ClientHistory(h.client, h.bot, h.role, events))
    return out


def first_detection(
    histories: Sequence[ClientHistory],
    judge: Callable[[list[ClientHistory], float], tuple[str, str] | None],
    *,
    resolution: float = RESOLUTION,
) -> tuple[float, str, str] | None:
    """``(seconds after the first event, check, witness)`` of the shortest failing prefix, or None.

    ``judge(prefix, cut)`` returns the first violation's check and message, or
    None when that prefix passes. Assumes that a failing prefix stays failing
    when it grows (a witness stays a witness), so a bisection finds the edge.
    """
    times = [e.t for h in histories for e in h.events]
    if not times:
        return None
    lo, hi = min(times), max(times)
    found = judge(list(histories), hi)
    if found is None:
        return None
    lo_t = lo
    while hi - lo_t > resolution:
        mid = (lo_t + hi) / 2
        got = judge(prefix(histories, mid), mid)
        if got is None:
            lo_t = mid
        else:
            hi, found = mid, got
    return hi - lo, found[0], found[1]


def detection_from_record(record_dir: Path) -> tuple[float, str, str] | None:
    from harness.checker import CheckConfig, check_all
    from harness.record.store import load_run

    histories, _summary, meta = load_run(record_dir)
    settings = dict(meta.get("settings") or {})
    contested = frozenset(str(n) for n in meta.get("contested_names") or ())

    def judge(hs: list[ClientHistory], cut: float) -> tuple[str, str] | None:
        config = CheckConfig(
            handshake_bound=float(settings.get("handshake_bound", 5.0)),
            delivery_bound=float(settings.get("delivery_bound", 5.0)),
            contested_names=contested,
            run_end=cut,
        )
        report = check_all(hs, config)
        if report.passed() or not report.violations:
            return None
        first = report.violations[0]
        return first.check, first.message

    return first_detection(histories, judge)


# -- the table -----------------------------------------------------------------------------


def _checks_text(checks: dict[str, int]) -> str:
    if not checks:
        return "-"
    return ", ".join(f"{k} {v:,}" for k, v in sorted(checks.items(), key=lambda kv: -kv[1]))


def _safe_text(out: RunOutcome | None) -> str:
    if out is None:
        return "-"
    if out.is_clean:
        return "[green]PASS[/] 0 violations"
    return f"[red]{out.verdict}[/] {out.line}"


def demo_table(rows: Sequence[tuple[RunOutcome, RunOutcome | None]]) -> Table:
    """One row per bug: (the unsafe run, the safe run of the same scenario)."""
    table = Table(title="Injected bugs and what the harness saw", expand=True)
    table.add_column("bug", no_wrap=True)
    table.add_column("caught", no_wrap=True)
    table.add_column("checks that fired", ratio=2, overflow="fold")
    table.add_column("first witness", ratio=4, overflow="fold")
    table.add_column("detected after", justify="right", no_wrap=True)
    table.add_column("safe server", ratio=2, overflow="fold")
    for bad, safe in rows:
        caught = "[green]yes[/]" if bad.is_caught else f"[red]no ({bad.verdict})[/]"
        witness = f"{bad.first_check}: {bad.first_witness}" if bad.first_witness else bad.line
        after = f"{bad.detected_after:.2f} s" if bad.detected_after is not None else "-"
        table.add_row(bad.server, caught, _checks_text(bad.checks), witness, after, _safe_text(safe))
    return table


# -- command line ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = cli.OneLineParser(
        prog=PROG,
        description="Run the swarm against the server with each catalogued bug injected, and against "
        "the safe server, and show what the harness caught.",
        epilog="exit codes: 0 every bug caught and the safe server clean, 1 otherwise, 2 usage error",
    )
    p.add_argument("bugs", nargs="*", metavar="BUG", help="bugs to show (default: all); see docs/bugs.md")
    p.add_argument(
        "--clients", type=cli.positive_int, default=DEFAULT_CLIENTS, help="bots (default: %(default)s)"
    )
    p.add_argument(
        "--duration",
        type=cli.seconds_at_most(600),
        default=DEFAULT_DURATION,
        help="seconds of chat (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=None, help="scenario seed for every run (default: random)")
    p.add_argument("--keep", metavar="DIR", help="keep the run records under DIR (default: discarded)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON document")
    return p


def _select(names: Sequence[str]) -> list[str]:
    bugs = _bugs()
    if not names or list(names) == ["all"]:
        return list(bugs)
    unknown = [n for n in names if n not in bugs]
    if unknown:
        raise ValueError(f"unknown bug {unknown[0]!r}; valid: all, {', '.join(bugs)}")
    return list(dict.fromkeys(names))


def run_demo(
    bugs: Sequence[str],
    *,
    clients: int,
    duration: float,
    seed: int,
    root: Path,
    progress: Callable[[str], None],
) -> list[tuple[RunOutcome, RunOutcome | None]]:
    """Each bug's exposing run, then one safe run per scenario used (same seed and size)."""
    catalogue = _bugs()
    unsafe: list[RunOutcome] = []
    for name in bugs:
        scenario = catalogue[name].scenario
        progress(f"{name}: {scenario} swarm against chat.server --unsafe {name} ...")
        out = run_swarm(
            scenario=scenario,
            clients=clients,
            duration=duration,
            seed=seed,
            bug=name,
            record_dir=root / name,
        )
        progress(f"{name}: {out.line}")
        unsafe.append(out)
    safe: dict[str, RunOutcome] = {}
    for scenario in dict.fromkeys(o.scenario for o in unsafe):
        progress(f"safe server: {scenario} swarm ...")
        safe[scenario] = run_swarm(
            scenario=scenario,
            clients=clients,
            duration=duration,
            seed=seed,
            bug=None,
            record_dir=root / f"{SAFE}-{scenario}",
            detect=False,
        )
        progress(f"safe server: {safe[scenario].line}")
    return [(o, safe.get(o.scenario)) for o in unsafe]


def outcome_dict(o: RunOutcome) -> dict[str, object]:
    return {
        "server": o.server,
        "scenario": o.scenario,
        "verdict": o.verdict,
        "exit_code": o.exit_code,
        "summary": o.line,
        "checks": o.checks,
        "first_check": o.first_check,
        "first_witness": o.first_witness,
        "detected_after_s": o.detected_after,
        "seconds": round(o.seconds, 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        bugs = _select(args.bugs)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    err = Console(stderr=True)
    out = Console()
    if not out.is_terminal:
        out = Console(width=WIDE)  # a file or a pipe: room for the witnesses
    err.print(
        f"[bold]{len(bugs)} bug{'s' if len(bugs) != 1 else ''}[/], {args.clients} bots, "
        f"{args.duration:g} s each, seed {seed}"
    )
    with tempfile.TemporaryDirectory(prefix="chat-demo-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        try:
            rows = run_demo(
                bugs,
                clients=args.clients,
                duration=args.duration,
                seed=seed,
                root=root,
                progress=lambda s: err.print(s, markup=False, highlight=False),
            )
        except KeyboardInterrupt:
            err.print("interrupted")
            return EXIT_FAILED
    ok = all(bad.is_caught for bad, _ in rows) and all(s is not None and s.is_clean for _, s in rows)
    if args.json:
        doc = {
            "ok": ok,
            "seed": seed,
            "clients": args.clients,
            "duration": args.duration,
            "rows": [{"unsafe": outcome_dict(b), "safe": outcome_dict(s) if s else None} for b, s in rows],
        }
        print(json.dumps(doc, indent=2))
    else:
        out.print(demo_table(rows))
        caught = sum(bad.is_caught for bad, _ in rows)
        if ok:
            out.print(f"{caught}/{len(rows)} bugs caught; the safe server was clean")
        else:
            out.print(
                f"{caught}/{len(rows)} bugs caught; FAILED: a bug went unseen, or the safe server failed"
            )
    return EXIT_OK if ok else EXIT_FAILED
