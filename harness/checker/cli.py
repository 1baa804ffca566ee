"""``python -m harness.checker``: judge a recorded run again, or time the checker (``--bench N``).

Exit codes are the swarm's: 0 PASS, 1 FAIL, 3 UNKNOWN, and 2 for a usage error (one line on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from chat.protocol import name_key
from harness.checker.model import CheckConfig, judge, verdict_line
from harness.checker.speed import bench_events
from harness.checker.suite import check_all
from harness.record.history import load_histories
from harness.record.store import EVENTS, META, SUMMARY

#: Exit code of a usage error.
USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness.checker",
        description="Check a recorded run again (RUN_DIR/events.jsonl), or measure the checker (--bench N).",
    )
    parser.add_argument(
        "run", nargs="?", help="a run directory (holding events.jsonl) or an events.jsonl file"
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON document")
    parser.add_argument(
        "--bench", type=int, metavar="N", help="time the checker on a correct run of ~N events"
    )
    parser.add_argument("--handshake-bound", type=float, help="seconds (default: the run's, else 5)")
    parser.add_argument("--delivery-bound", type=float, help="seconds (default: the run's, else 5)")
    parser.add_argument("--contested", default=None, help="comma-separated contested names")
    parser.add_argument("--asked", type=int, help="bots asked for (default: the run's, else the bots seen)")
    parser.add_argument("--witnesses", type=int, default=20, help="witnesses printed (default 20)")
    parser.add_argument(
        "--strict-order",
        action="store_true",
        help="IRC runs: judge agreement between members too (default: as the run was judged)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if args.bench is not None:
        return _bench(args.bench, as_json=args.json)
    if args.run is None:
        print("error: give a run directory (or --bench N)", file=sys.stderr)
        return USAGE
    return _recheck(args)


def _bench(n: int, *, as_json: bool) -> int:
    if n < 1:
        print("error: --bench N needs N >= 1", file=sys.stderr)
        return USAGE
    figures = bench_events(n)
    if as_json:
        print(json.dumps(dataclasses.asdict(figures)))
    else:
        print(
            f"checked {figures.events:,.0f} events ({figures.deliveries:,.0f} deliveries) "
            f"in {figures.check_s:.2f}s ({figures.check_cpu_s:.2f}s CPU): "
            f"{figures.events_per_s:,.0f} events/s (generated in {figures.generate_s:.2f}s)"
        )
    return 0


def _recheck(args: argparse.Namespace) -> int:
    path = Path(args.run)
    run_dir = path if path.is_dir() else path.parent
    events = path / EVENTS if path.is_dir() else path
    if not events.is_file():
        print(f"error: {events} not found", file=sys.stderr)
        return USAGE
    try:
        histories = load_histories(events)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"error: cannot read {events}: {exc}", file=sys.stderr)
        return USAGE
    record = read_record(run_dir)
    report = check_all(histories, config_for(args, record))
    asked = args.asked
    if asked is None:
        # The swarm's record: "asked_clients" in summary.json ("clients" counts connections there).
        found_asked = _number(record.get("asked_clients"))
        asked = int(found_asked) if found_asked is not None else len({h.bot for h in histories})
    verdict, code = judge(report, asked)
    if args.json:
        doc = report.to_dict()
        doc["verdict"] = verdict
        doc["exit_code"] = code
        print(json.dumps(doc, default=str))
        return code
    print(verdict_line(report, asked))
    for v in report.violations[: max(0, args.witnesses)]:
        print(f"  [{v.check}] {v.message}  {json.dumps(v.witness, default=str)}")
    shown = min(len(report.violations), max(0, args.witnesses))
    if report.total() > shown:
        print(f"  ... {report.total() - shown:,} more")
    print(
        f"{report.clients} clients, {report.joined} joined, {report.messages_sent:,} sent, "
        f"{report.deliveries:,} delivered, seqs {report.seq_style}; "
        f"latency p50 {report.latency.p50_ms:.1f} ms p99 {report.latency.p99_ms:.1f} ms; "
        f"checked in {report.elapsed:.2f}s",
        file=sys.stderr,
    )
    return code


def config_for(args: argparse.Namespace, record: dict[str, object]) -> CheckConfig:
    """The check's settings: the command line's, else the record's, else the defaults."""
    contested: frozenset[str]
    if args.contested is not None:
        contested = frozenset(name_key(n.strip()) for n in args.contested.split(",") if n.strip())
    else:
        found = record.get("contested_names")
        contested = frozenset(name_key(str(n)) for n in found) if isinstance(found, list) else frozenset()
    protocol = "irc" if record.get("protocol") == "irc" else "chat"
    strict_order: bool | None = None
    if protocol == "irc":
        strict_order = bool(args.strict_order or record.get("strict_order") is True)
    return CheckConfig(
        handshake_bound=args.handshake_bound or _number(record.get("handshake_bound")) or 5.0,
        delivery_bound=args.delivery_bound or _number(record.get("delivery_bound")) or 5.0,
        contested_names=contested,
        run_end=_number(record.get("run_end")),
        protocol=protocol,
        strict_order=strict_order,
    )


def read_record(run_dir: Path) -> dict[str, object]:
    """What the run record says about the run (summary.json, then meta.json): settings to reuse.

    Missing or unreadable files give an empty record: the defaults apply.
    """
    merged: dict[str, object] = {}
    for name in (META, SUMMARY):
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            settings = data.get("settings")
            if isinstance(settings, dict):
                merged.update(settings)
            merged.update({k: v for k, v in data.items() if k != "settings"})
    return merged


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
