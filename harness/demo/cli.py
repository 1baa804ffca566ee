"""``python -m harness.demo [BUG ...|all]``: inject each catalogued bug, and watch the harness catch it.

For every bug of :mod:`chat.bugs` the demo runs the swarm scenario that
exposes it against ``chat.server --unsafe BUG``, then the same scenario (same
seed, same size) against the safe server, and prints one table: the bug, the
checks that fired, the first witness, how soon the checker could have said
so, and the safe server's result. Exit code 0 when every bug was caught and
the safe server was clean; 1 otherwise; 2 for a usage error.

Each run is a ``python -m harness.swarm`` subprocess (it starts its own server
and judges the histories), run by :mod:`harness.swarm.invoke`; the demo only
orchestrates and shows. *Time to first detection* is read from each caught
run's record afterwards, without any clock in the checker
(:func:`harness.swarm.invoke.detection_in_record` says how).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from rich.console import Console
from rich.table import Table

from chat import cli
from harness.swarm.invoke import EXPOSING_CLIENTS, EXPOSING_DURATION, SAFE, SwarmOutcome, SwarmSpec, run_swarm

PROG = "python -m harness.demo"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: Table width when stdout is not a terminal (rich would assume 80 columns).
WIDE = 160


def _bugs() -> dict[str, Any]:
    from chat.bugs import BUGS

    return BUGS


# -- the table -----------------------------------------------------------------------------


def _checks_text(checks: dict[str, int]) -> str:
    if not checks:
        return "-"
    return ", ".join(f"{k} {v:,}" for k, v in sorted(checks.items(), key=lambda kv: -kv[1]))


def _safe_text(out: SwarmOutcome | None) -> str:
    if out is None:
        return "-"
    if out.is_clean:
        return "[green]PASS[/] 0 violations"
    return f"[red]{out.verdict_text}[/] {out.line}"


def _witness_text(out: SwarmOutcome) -> str:
    witness = out.first_witness
    return f"{witness.check}: {witness.message}" if witness and witness.message else out.line


class DemoRow(NamedTuple):
    """One bug: its exposing run, and the safe server's run of the same scenario (None if it did not run)."""

    unsafe: SwarmOutcome
    safe: SwarmOutcome | None


def demo_table(rows: Sequence[DemoRow]) -> Table:
    """One row per bug: what its run caught, and the safe server's result in the same scenario."""
    table = Table(title="Injected bugs and what the harness saw", expand=True)
    table.add_column("bug", no_wrap=True)
    table.add_column("caught", no_wrap=True)
    table.add_column("checks that fired", ratio=2, overflow="fold")
    table.add_column("first witness", ratio=4, overflow="fold")
    table.add_column("detected after", justify="right", no_wrap=True)
    table.add_column("safe server", ratio=2, overflow="fold")
    for bad, safe in rows:
        caught = "[green]yes[/]" if bad.is_caught else f"[red]no ({bad.verdict_text})[/]"
        after = f"{bad.detection.after:.2f} s" if bad.detection is not None else "-"
        row = (_checks_text(bad.checks), _witness_text(bad), after, _safe_text(safe))
        table.add_row(bad.spec.server, caught, *row)
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
        "--clients", type=cli.positive_int, default=EXPOSING_CLIENTS, help="bots (default: %(default)s)"
    )
    p.add_argument(
        "--duration",
        type=cli.seconds_at_most(600),
        default=EXPOSING_DURATION,
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
) -> list[DemoRow]:
    """Each bug's exposing run, then one safe run per scenario used (same seed and size)."""
    scenario_of = {name: _bugs()[name].scenario for name in bugs}

    def spec(scenario: str, bug: str | None, record: str) -> SwarmSpec:
        return SwarmSpec(clients, duration, scenario=scenario, seed=seed, bug=bug, record_dir=root / record)

    unsafe: dict[str, SwarmOutcome] = {}
    for name, scenario in scenario_of.items():
        progress(f"{name}: {scenario} swarm against chat.server --unsafe {name} ...")
        unsafe[name] = run_swarm(spec(scenario, name, name), detect=True)
        progress(f"{name}: {unsafe[name].line}")
    safe: dict[str, SwarmOutcome] = {}
    for scenario in dict.fromkeys(scenario_of.values()):
        progress(f"safe server: {scenario} swarm ...")
        safe[scenario] = run_swarm(spec(scenario, None, f"{SAFE}-{scenario}"))
        progress(f"safe server: {safe[scenario].line}")
    return [DemoRow(out, safe.get(scenario_of[name])) for name, out in unsafe.items()]


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
            "rows": [{"unsafe": b.as_dict(), "safe": s.as_dict() if s else None} for b, s in rows],
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
