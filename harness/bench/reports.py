"""The bench's reports: a progress line per run, and the rich tables of the summary.

Pure functions over run records and the summary document (docs/performance.md shows every table); only
:func:`render` prints, to the console it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.bench.goals import GoalVerdict


def progress_line(r: dict[str, Any]) -> str:
    """One run's figures as they arrive (rich markup), e.g.
    ``saturation batched 50 members rep 1: 3.243 M deliveries/s (cpu server 93% gen 48% machine 70%)``."""
    head = f"{r['case']:<15} {r.get('variant', r['design']):<16} {r['members']:>5} members"
    if r.get("rate"):
        head += f" {r['rate']:>7.0f} msg/s"
    head += f"  rep {r['rep'] + 1}"
    if r.get("error"):
        return f"{head}: [red]error[/red] {r['error']}"
    if r["case"] == "latency":
        body = f"p50 {r.get('p50_ms', float('nan')):.2f} ms p99 {r.get('p99_ms', float('nan')):.2f} ms"
    elif r["case"] == "memory":
        body = f"RSS idle {_mib(r.get('idle_rss'))} chatting {_mib(r.get('chat_rss'))}"
    else:
        body = f"{r['deliveries_per_s'] / 1e6:.3f} M deliveries/s"
    cpu = (
        f"cpu server {_pct(r['server_cpu'])} gen {_pct(r['generator_cpu'])} machine {_pct(r['machine_cpu'])}"
    )
    flags = _flags(r)
    return f"{head}: {body}  ({cpu}){'  ' + flags if flags else ''}"


def _flags(r: dict[str, Any]) -> str:
    out = []
    if r.get("error"):
        out.append("ERROR")
    if r.get("lost"):
        out.append(f"LOST {r['lost']}")
    if r.get("extra"):
        out.append(f"EXTRA {r['extra']}")
    if r.get("drops"):
        out.append(f"DROPS {r['drops']}")
    if r.get("order_violations"):
        out.append(f"ORDER {r['order_violations']}")
    if r.get("generator_bound"):
        out.append("GENERATOR-BOUND")
    return " ".join(out)


def _mib(v: float | None) -> str:
    return "-" if v is None else f"{v / 2**20:.1f} MiB"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}%"


def _range(st: dict[str, float] | None, fmt: Callable[[float], str]) -> str:
    """``median [min-max]`` over the repetitions (just the value when there was one)."""
    if not st:
        return "-"
    if st["n"] == 1:
        return fmt(st["median"])
    return f"{fmt(st['median'])} [{fmt(st['min'])}-{fmt(st['max'])}]"


def _checks(row: dict[str, Any]) -> Text:
    parts = []
    if row["errors"]:
        parts.append(f"{len(row['errors'])} error(s)")
    for key, label in (
        ("lost", "lost"),
        ("extra", "extra"),
        ("drops", "drops"),
        ("order_violations", "order"),
    ):
        if row.get(key):
            parts.append(f"{label} {row[key]}")
    return Text(", ".join(parts), style="bold red") if parts else Text("ok", style="green")


def _note(row: dict[str, Any]) -> Text:
    notes = []
    if row["generator_bound"]:
        notes.append("GENERATOR-BOUND")
    if row.get("overloaded"):
        notes.append("OVERLOADED")
    return Text(" ".join(notes), style="bold yellow")


def saturation_table(
    rows: Sequence[dict[str, Any]], case: str = "saturation", title: str = "Saturation throughput"
) -> Table:
    t = Table(title=title, title_justify="left")
    for col in (
        "members",
        "design",
        "M deliveries/s, median [min-max]",
        "M per server CPU-s",
        "server CPU",
        "gen CPU",
        "machine",
        "checks",
        "note",
    ):
        t.add_column(
            col, justify="right" if col in ("members", "server CPU", "gen CPU", "machine") else "left"
        )
    for row in rows:
        if row["case"] != case:
            continue
        t.add_row(
            str(row["members"]),
            row["design"],
            _range(row.get("deliveries_per_s"), lambda v: f"{v / 1e6:.3f}"),
            "-"
            if not row.get("deliveries_per_cpu_s")
            else f"{row['deliveries_per_cpu_s']['median'] / 1e6:.3f}",
            _pct(row.get("server_cpu", {}).get("median") if row.get("server_cpu") else None),
            _pct(row.get("generator_cpu", {}).get("median") if row.get("generator_cpu") else None),
            _pct(row.get("machine_cpu", {}).get("median") if row.get("machine_cpu") else None),
            _checks(row),
            _note(row),
        )
    return t


def _ratio_note(row: dict[str, Any]) -> Text:
    """GENERATOR-BOUND when a figure behind batched/direct was; and the peers whose ratio was."""
    peers = row.get("generator_bound_peers") or []
    if not (row["generator_bound"] or peers):
        return Text("")
    named = [f"({', '.join(peers)})"] if peers else []
    return Text("\n".join(["GENERATOR-BOUND", *named]), style="bold yellow")


def ratio_table(ratio_rows: Sequence[dict[str, Any]], peers: Sequence[str] = ()) -> Table:
    """batched, queued and direct against each other, and batched against each peer (``--peers``)."""
    t = Table(title="Ratios of medians (same run)", title_justify="left")
    keys = ["batched_over_direct", "queued_over_direct", "batched_over_queued"]
    keys += [f"batched_over_{peer}" for peer in peers]
    t.add_column("members", justify="right")
    for key in keys:
        t.add_column(key.replace("_over_", "/"), justify="right")
    t.add_column("note", min_width=len("GENERATOR-BOUND"))  # never cut: a peer's name may follow

    def x(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}x"

    for r in ratio_rows:
        t.add_row(
            str(r["members"]),
            *(x(r.get(key)) for key in keys),
            _ratio_note(r),
        )
    return t


def latency_table(rows: Sequence[dict[str, Any]]) -> Table:
    t = Table(title="Latency, due time to receipt (open loop)", title_justify="left")
    for col in ("msg/s", "members", "design", "p50 ms", "p99 ms", "max ms", "server CPU", "checks", "note"):
        t.add_column(col, justify="left" if col in ("design", "checks", "note") else "right")
    for row in rows:
        if row["case"] != "latency":
            continue
        t.add_row(
            f"{row['rate']:.0f}",
            str(row["members"]),
            row["design"],
            _range(row.get("p50_ms"), lambda v: f"{v:.2f}"),
            _range(row.get("p99_ms"), lambda v: f"{v:.2f}"),
            _range(row.get("max_ms"), lambda v: f"{v:.1f}"),
            _pct(row["server_cpu"]["median"] if row.get("server_cpu") else None),
            _checks(row),
            _note(row),
        )
    return t


def memory_table(rows: Sequence[dict[str, Any]], swarm: dict[str, Any]) -> Table:
    t = Table(title="Memory and scale (server process)", title_justify="left")
    for col in (
        "members",
        "design",
        "RSS idle MiB",
        "RSS chatting MiB",
        "threads idle/chatting",
        "KiB/member",
        "join all (s)",
        "checks",
        "note",
    ):
        t.add_column(col, justify="left" if col in ("design", "checks", "note") else "right")
    for row in rows:
        if row["case"] != "memory":
            continue
        ti = row.get("idle_threads", {}).get("median") if row.get("idle_threads") else None
        tc = row.get("chat_threads", {}).get("median") if row.get("chat_threads") else None
        t.add_row(
            str(row["members"]),
            row["design"],
            _range(row.get("idle_rss"), lambda v: f"{v / 2**20:.1f}"),
            _range(row.get("chat_rss"), lambda v: f"{v / 2**20:.1f}"),
            f"{'-' if ti is None else int(ti)} / {'-' if tc is None else int(tc)}",
            _range(row.get("bytes_per_member"), lambda v: f"{v / 1024:.1f}"),
            _range(row.get("connect_s"), lambda v: f"{v:.1f}"),
            _checks(row),
            _note(row),
        )
    if swarm.get("available"):
        t.caption = f"largest member count with a PASS swarm: {swarm.get('largest_pass', 0)}"
    elif swarm:
        t.caption = f"PASS swarm: {swarm.get('note', 'not available')}"
    return t


def goals_table(goal_rows: Sequence[dict[str, Any]]) -> Table:
    t = Table(title="Goals (the bar)", title_justify="left")
    t.add_column("goal")
    t.add_column("measured")
    t.add_column("verdict")
    styles = {
        GoalVerdict.PASS: "bold green",
        GoalVerdict.FAIL: "bold red",
        GoalVerdict.NOT_APPLICABLE: "yellow",
        GoalVerdict.INFO: "cyan",
    }
    for g in goal_rows:
        t.add_row(g["goal"], g["measured"], Text(g["verdict"], style=styles.get(g["verdict"], "")))
    return t


def render(summary: dict[str, Any], console: Console) -> None:
    """Every table of the cases that ran, the notes of those that could not, the goals, and the legend."""
    rows = summary["rows"]
    cases = summary["settings"]["cases"]
    if "saturation" in cases:
        console.print(saturation_table(rows))
        if not summary["settings"]["target"]:
            console.print(ratio_table(summary["ratios"], summary["settings"]["peers"]))
    if "latency" in cases:
        console.print(latency_table(rows))
    if "memory" in cases:
        console.print(memory_table(rows, summary["extra"].get("swarm", {})))
    if "instrumentation" in cases and any(r["case"] == "instrumentation" for r in rows):
        console.print(
            saturation_table(rows, "instrumentation", "Instrumentation cost (lock metrics on vs off)")
        )
        cost = summary.get("instrumentation_cost")
        if cost is not None:
            console.print(f"throughput with metrics = {cost:.0%} of without")
    if "checker" in cases:
        chk = summary["extra"].get("checker", {})
        if chk.get("available"):
            console.print(
                f"Checker speed: {chk['events']:,} events in {chk['seconds']:.2f} s = "
                f"{chk['events_per_s']:,} events/s" + (f"  ({chk['note']})" if chk.get("note") else "")
            )
    for case, note in summary["notes"].items():
        console.print(f"{case}: {note}")
    console.print(goals_table(summary["goals"]))
    console.print(
        f"CPU: server and generator in % of one core, machine in % of all "
        f"{summary['machine']['cpus']} cores, "
        "over each measured window. GENERATOR-BOUND: the load generator, not the server, ran out of CPU. "
        "OVERLOADED: the server delivered less than 95% of the offered rate."
    )
