"""The swarm's screens: rich renderables built by pure functions over snapshots. No I/O here.

Two moments, two inputs:

* **live**: a :class:`LiveSnapshot` (what the bots have counted so far, and the
  server's metrics when it has them) becomes the panel that ``rich.live.Live``
  refreshes a few times a second (:class:`Dashboard`), or a plain
  :func:`progress_line` when there is no terminal;
* **final**: the run's summary document (the very dict that ``--json`` prints
  and ``summary.json`` stores) becomes the summary tables (:func:`summary_view`),
  so a recorded run can be shown again exactly as it was.

Every builder here is a function of its arguments only, so tests render them
into ``Console(file=io.StringIO(), width=100, color_system=None)`` and assert on
the text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from harness.common.latency import Percentiles
from harness.common.metrics_scrape import MetricsView
from harness.record.counters import COUNTERS, LiveCounts

#: The checks, in the order the checker reports them (see harness.checker.CHECK_NAMES).
CHECK_ORDER = ("seq", "agreement", "loss", "fifo", "membership", "names", "liveness")
#: Counters the stats table shows in rows of their own; every other counter that
#: foreshadows no check is listed in its "Counters" row.
SHOWN_COUNTERS = frozenset({"connected", "members", "joins", "refused", "sent", "delivered"})
SPARK = "▁▂▃▄▅▆▇█"
#: Latency from due to receipt, in milliseconds; None where there is no sample.
LatencyFigures = Percentiles
NO_LATENCY = Percentiles(0, None, None, None, None)


@dataclass(frozen=True)
class CheckRow:
    name: str
    #: Violations so far; None when the check is only judged at the end.
    count: int | None
    note: str = ""


@dataclass(frozen=True)
class LiveSnapshot:
    """What the live dashboard shows at one instant."""

    scenario: str
    target: str
    #: ``connecting``, ``chatting``, ``draining``, ``quitting``, ``stopping``, ``checking``.
    phase: str
    #: Seconds into the chat phase (0 before it starts).
    elapsed: float
    duration: float
    bots: int
    #: What the bots have counted so far (all hives added up).
    counts: LiveCounts
    #: Per-second rates, oldest first, for the sparklines.
    sent_rates: tuple[float, ...]
    delivered_rates: tuple[float, ...]
    latency_recent: LatencyFigures
    latency_run: LatencyFigures
    checks: tuple[CheckRow, ...]
    metrics: MetricsView | None = None
    roles: str = ""


# -- small pieces ------------------------------------------------------------------------


def sparkline(values: Sequence[float], width: int = 30) -> str:
    """The last ``width`` values as block characters, scaled to their maximum."""
    vals = list(values)[-width:]
    if not vals:
        return ""
    top = max(vals)
    if top <= 0:
        return SPARK[0] * len(vals)
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))] for v in vals)


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 100:
        return f"{value:.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def fmt_count(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _last(values: Sequence[float]) -> float:
    return values[-1] if values else 0.0


def live_check_rows(counts: LiveCounts) -> tuple[CheckRow, ...]:
    """A row per check: counted live when a counter foreshadows it, else judged at the end."""
    live = {c.check: CheckRow(c.check, getattr(counts, c.name), c.doc) for c in COUNTERS if c.check}
    return tuple(live.get(name) or CheckRow(name, None, "judged at the end") for name in CHECK_ORDER)


def count_text(count: int | None) -> Text:
    """A check's violation count: green at zero, red otherwise, dim when not counted yet."""
    if count is None:
        return Text("…", style="dim")
    return Text(f"{count:,}", style="bold green" if count == 0 else "bold red")


# -- live ----------------------------------------------------------------------------------


def header_text(snap: LiveSnapshot) -> Text:
    clock = f"{min(snap.elapsed, snap.duration):.1f} s / {snap.duration:g} s"
    text = Text()
    text.append("swarm ", style="bold")
    text.append(f"{snap.scenario}", style="bold cyan")
    text.append(f"  target {snap.target}  ")
    text.append(f"{snap.phase}", style="bold yellow")
    text.append(f"  {clock}")
    return text


def stats_table(snap: LiveSnapshot) -> Table:
    """Bots, traffic and its rates with sparklines."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column()
    c = snap.counts
    bots_style = "green" if c.connected >= snap.bots else "yellow"
    table.add_row(
        "Bots",
        Text(f"{c.connected}/{snap.bots}", style=bots_style),
        f"connected  ({c.members} members, {c.joins:,} joins, {c.refused:,} refused full)",
    )
    table.add_row(
        "Sent",
        f"{c.sent:,}",
        f"{_last(snap.sent_rates):>9,.0f}/s  {sparkline(snap.sent_rates)}",
    )
    table.add_row(
        "Delivered",
        f"{c.delivered:,}",
        f"{_last(snap.delivered_rates):>9,.0f}/s  {sparkline(snap.delivered_rates)}",
    )
    others = [info for info in COUNTERS if info.name not in SHOWN_COUNTERS and info.check is None]
    table.add_row(
        "Counters",
        "",
        Text(", ".join(f"{info.name.replace('_', ' ')} {getattr(c, info.name):,}" for info in others), "dim"),
    )
    return table


def latency_table(rows: Sequence[tuple[str, LatencyFigures]], title: str | None = None) -> Table:
    """Latency percentiles, one row per window."""
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    table.add_column("Latency (due to receipt)", style="bold")
    for col in ("samples", "p50", "p95", "p99", "max"):
        table.add_column(col, justify="right")
    for label, fig in rows:
        table.add_row(
            label, f"{fig.count:,}", fmt_ms(fig.p50), fmt_ms(fig.p95), fmt_ms(fig.p99), fmt_ms(fig.max)
        )
    return table


def checks_table(rows: Sequence[CheckRow], *, final: bool = False) -> Table:
    """A row per check with its violation count: green at zero, red otherwise."""
    table = Table(box=None, pad_edge=False)
    table.add_column("Check", style="bold")
    table.add_column("Violations", justify="right")
    table.add_column("" if final else "Counted", style="dim")
    for row in rows:
        table.add_row(row.name, count_text(row.count), row.note)
    return table


def lock_table(view: MetricsView) -> Table:
    """Lock acquisitions, contention and wait/hold percentiles per lock and critical section."""
    table = Table(box=None, pad_edge=False)
    table.add_column("Lock", style="bold", no_wrap=True)
    table.add_column("acquired", justify="right")
    table.add_column("per s", justify="right")
    table.add_column("contended", justify="right", no_wrap=True)
    table.add_column("wait p50", justify="right")
    table.add_column("wait p99", justify="right")
    table.add_column("hold p50", justify="right")
    table.add_column("hold p99", justify="right")
    for lk in view.locks:
        label = f"{lk.section}" if not lk.site else f"  {lk.site}"
        contended = f"{lk.contended_share * 100:.1f} %"
        table.add_row(
            label,
            fmt_count(lk.acquisitions),
            fmt_count(lk.rate) if lk.rate else "-",
            Text(contended, style="yellow" if lk.contended_share >= 0.1 else ""),
            fmt_ms(lk.wait_p50_ms),
            fmt_ms(lk.wait_p99_ms),
            fmt_ms(lk.hold_p50_ms),
            fmt_ms(lk.hold_p99_ms),
        )
    return table


def server_line(view: MetricsView) -> Text:
    g = view.gauges
    parts = []
    for key, label in (
        ("chat_members", "members"),
        ("chat_threads", "threads"),
        ("chat_backlog_lines", "backlog lines"),
        ("chat_slow_drops_total", "dropped slow"),
    ):
        if key in g:
            parts.append(f"{label} {g[key]:,.0f}")
    if view.deliveries_rate is not None:
        parts.append(f"deliveries {view.deliveries_rate:,.0f}/s")
    return Text("Server: " + ", ".join(parts) if parts else "Server: no figures", style="dim")


def live_view(snap: LiveSnapshot) -> RenderableType:
    """The whole live panel."""
    parts: list[RenderableType] = [
        Text(snap.roles, style="dim"),
        stats_table(snap),
        Text(""),
        latency_table([("last 2 s", snap.latency_recent), ("whole run", snap.latency_run)]),
        Text(""),
        checks_table(snap.checks),
    ]
    if snap.metrics is not None:
        parts += [Text(""), server_line(snap.metrics)]
        if snap.metrics.locks:
            parts.append(lock_table(snap.metrics))
    return Panel(Group(*parts), title=header_text(snap), title_align="left", border_style="blue")


class Dashboard:
    """A renderable that pulls a fresh snapshot each time ``Live`` refreshes."""

    def __init__(self, source: Callable[[], LiveSnapshot]) -> None:
        self._source = source

    def __rich__(self) -> RenderableType:
        return live_view(self._source())


def progress_line(snap: LiveSnapshot) -> str:
    """The plain line printed every few seconds without a terminal or with --no-dashboard."""
    lat = snap.latency_recent
    live = ", ".join(f"{row.name} {row.count}" for row in snap.checks if row.count is not None)
    c = snap.counts
    line = (
        f"[{min(snap.elapsed, snap.duration):5.1f}s/{snap.duration:g}s {snap.phase}] "
        f"bots {c.connected}/{snap.bots} | sent {c.sent:,} ({_last(snap.sent_rates):,.0f}/s) | "
        f"delivered {c.delivered:,} ({_last(snap.delivered_rates):,.0f}/s) | "
        f"p99 {fmt_ms(lat.p99)} | {live}"
    )
    if snap.metrics is not None:
        registry = [lk for lk in snap.metrics.locks if not lk.site]
        if registry:
            lk = registry[0]
            line += f" | lock contended {lk.contended_share * 100:.1f} %"
    return line


# -- final -----------------------------------------------------------------------------------


def latency_from_dict(d: Mapping[str, Any] | None) -> LatencyFigures:
    if not d:
        return NO_LATENCY
    return LatencyFigures(
        count=int(d.get("count") or 0),
        p50=d.get("p50_ms"),
        p95=d.get("p95_ms"),
        p99=d.get("p99_ms"),
        max=d.get("max_ms"),
    )


def traffic_table(doc: Mapping[str, Any]) -> Table:
    table = Table(title="Run", title_justify="left", box=None, pad_edge=False, show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    table.add_column("")
    rates = doc.get("rates") or {}
    table.add_row("Scenario", str(doc.get("scenario", "")), str(doc.get("roles_line", "")))
    table.add_row("Target", str(doc.get("target", "")), "own server" if doc.get("own_server") else "")
    table.add_row("Bots", f"{doc.get('joined', 0):,} joined", f"of {doc.get('asked_clients', 0):,} asked")
    table.add_row("Connections", f"{doc.get('clients', 0):,}", f"seq style: {doc.get('seq_style') or '-'}")
    table.add_row(
        "Messages sent",
        f"{doc.get('messages_sent', 0):,}",
        f"{rates.get('sent_per_s', 0):,.0f}/s over {doc.get('duration_s', 0):.1f} s",
    )
    table.add_row(
        "Deliveries",
        f"{doc.get('deliveries', 0):,}",
        f"{rates.get('delivered_per_s', 0):,.0f}/s",
    )
    cpu = doc.get("cpu") or {}
    for label, figures in (("CPU while chatting", cpu.get("load")), ("CPU in all", cpu)):
        if figures and figures.get("harness_s") is not None:
            server = figures.get("server_s")
            server_part = f", server {server:.2f} s" if server is not None else ""
            table.add_row(label, f"{figures['harness_s']:.2f} s", f"harness{server_part}")
    if doc.get("interrupted"):
        table.add_row("Stopped", Text("interrupted", style="bold yellow"), "by Ctrl+C: judged on what ran")
    return table


def final_check_rows(doc: Mapping[str, Any]) -> list[CheckRow]:
    counts = doc.get("checks") or {}
    names = [n for n in CHECK_ORDER if n in counts] + [n for n in counts if n not in CHECK_ORDER]
    return [CheckRow(name, int(counts[name])) for name in names]


def summary_view(doc: Mapping[str, Any]) -> RenderableType:
    """The end-of-run tables, from the summary document alone."""
    parts: list[RenderableType] = [
        traffic_table(doc),
        Text(""),
        latency_table([("all deliveries", latency_from_dict(doc.get("latency_ms")))]),
        Text(""),
        checks_table(final_check_rows(doc), final=True),
    ]
    metrics = doc.get("metrics")
    if metrics and metrics.get("locks"):
        from harness.common.metrics_scrape import view_from_dict

        parts += [Text(""), lock_table(view_from_dict(metrics))]
    return Group(*parts)


def verdict_text(doc: Mapping[str, Any]) -> Text:
    line = str(doc.get("summary", doc.get("verdict", "")))
    verdict = str(doc.get("verdict", ""))
    style = {"PASS": "bold green", "FAIL": "bold red"}.get(verdict, "bold yellow")
    return Text(line, style=style)


def witness_lines(doc: Mapping[str, Any], limit: int = 20) -> list[str]:
    """One line per violation (the first ``limit``): check, message, witness."""
    out = []
    violations = doc.get("violations") or []
    for v in violations[:limit]:
        witness = v.get("witness") or {}
        wtxt = ", ".join(f"{k}={_short(val)}" for k, val in witness.items())
        out.append(f"  [{v.get('check')}] {v.get('message')}" + (f"  ({wtxt})" if wtxt else ""))
    total = sum(int(n) for n in (doc.get("checks") or {}).values())
    shown = min(limit, len(violations))
    if total > shown:
        where = "summary.json of the run record" if doc.get("record") else "the --json document"
        out.append(
            f"  ... {total - shown:,} more (the first {len(violations):,}, with witnesses, are in {where})"
        )
    return out + throttle_lines(doc, limit)


def throttle_lines(doc: Mapping[str, Any], limit: int = 20) -> list[str]:
    """IRC: members the server threw out for their pace (throttling, not loss), and what to change."""
    throttled = doc.get("throttled") or []
    out = [
        f"  [throttled] {t.get('name')} ({t.get('client')}): {t.get('kind')}, server said {t.get('text')!r}"
        for t in throttled[:limit]
    ]
    if len(throttled) > limit:
        out.append(f"  ... {len(throttled) - limit:,} more throttled")
    for hint in dict.fromkeys(str(t.get("hint")) for t in throttled if t.get("hint")):
        out.append(f"  hint: {hint}")
    return out


def _short(value: Any, limit: int = 160) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- soak --------------------------------------------------------------------------------------

#: Points of a soak's resource sparkline: the series is averaged down to this many.
SOAK_SPARK_WIDTH = 12


def _downsample(values: Sequence[float], width: int) -> list[float]:
    """``values`` averaged in ``width`` consecutive groups (all of them when there are fewer)."""
    n = len(values)
    if n <= width:
        return list(values)
    return [
        sum(values[i * n // width : (i + 1) * n // width]) / max(1, (i + 1) * n // width - i * n // width)
        for i in range(width)
    ]


def _resource_text(resource: str, value: float) -> str:
    return f"{value / 1048576:.1f}M" if resource == "rss" else f"{value:,.0f}"


def soak_view(doc: Mapping[str, Any]) -> RenderableType:
    """A soak's end: its rounds, and each server resource with its series and the leaks verdict."""
    rounds = doc.get("rounds", [])
    by_verdict: dict[str, int] = {}
    for r in rounds:
        by_verdict[str(r.get("verdict"))] = by_verdict.get(str(r.get("verdict")), 0) + 1
    head = Text(
        f"Soak: {len(rounds)} rounds in {doc.get('seconds', 0):g} s ("
        + ", ".join(f"{n} {v}" for v, n in sorted(by_verdict.items()))
        + f"), {doc.get('deliveries', 0):,} deliveries",
        style="bold",
    )
    leaks = doc.get("leaks", {})
    if not leaks.get("sampled"):
        reason = leaks.get("not_sampled") or "no sample was taken"
        return Group(head, Text(f"Server resources: not sampled ({reason})", style="dim"))
    series = doc.get("series", [])
    table = Table(title="Server resources (leaks check)", title_justify="left", box=None, pad_edge=False)
    for col in ("resource", "series", "first", "last", "peaks 1/3 > 3/3", "trend", "margin", "verdict"):
        table.add_column(col, justify="left" if col in ("resource", "series", "verdict") else "right")
    for v in leaks.get("resources", []):
        name = str(v["resource"])
        values = [float(s[name]) for s in series]
        verdict = Text("not judged", style="dim")
        if v.get("judged"):
            verdict = Text("GREW", style="bold red") if v.get("grew") else Text("flat", style="green")
        first_peak, last_peak = float(v["first_third_max"]), float(v["last_third_max"])
        peaks = f"{_resource_text(name, first_peak)} > {_resource_text(name, last_peak)}"
        table.add_row(
            name,
            sparkline(_downsample(values, SOAK_SPARK_WIDTH), SOAK_SPARK_WIDTH),
            _resource_text(name, float(v["first"])),
            _resource_text(name, float(v["last"])),
            peaks,
            _resource_text(name, float(v["trend"])),
            _resource_text(name, float(v["margin"])),
            verdict,
        )
    return Group(head, Text(""), table, Text(f"{len(series)} samples", style="dim"))
