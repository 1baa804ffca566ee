"""The bench's tables and progress lines, rendered on a recording console (pure)."""

from __future__ import annotations

import io

from rich.console import Console

from harness.bench.figures import aggregate, ratios
from harness.bench.goals import GoalRow, GoalVerdict
from harness.bench.reports import goals_table, progress_line, ratio_table, saturation_table
from tests.harness.bench.records import saturation_run as _run


def _text(*renderables: object) -> str:
    console = Console(file=io.StringIO(), width=140, color_system=None)
    for r in renderables:
        console.print(r)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_tables_render_flags_and_ratios() -> None:
    runs = [
        _run("direct", 10, 0, 2.0e5),
        _run("batched", 10, 0, 9.0e5, lost=3, clean=False),
        _run("queued", 10, 0, 6.0e4, generator_bound=True),
    ]
    rows = aggregate(runs)
    text = _text(saturation_table(rows), ratio_table(ratios(rows, [10])))
    assert "0.900" in text
    assert "lost 3" in text
    assert "GENERATOR-BOUND" in text
    assert "4.50x" in text
    assert "not measured here" not in text and "ngircd" not in text


def test_ratio_table_has_a_column_per_peer() -> None:
    runs = [_run("batched", 50, 0, 4.0e6), _run("redis", 50, 0, 5.0e6), _run("ngircd", 50, 0, 2.0e6)]
    rows = aggregate(runs)
    text = _text(
        saturation_table(rows), ratio_table(ratios(rows, [50], ["ngircd", "redis"]), ["ngircd", "redis"])
    )
    assert "batched/ngircd" in text and "2.00x" in text
    assert "batched/redis" in text and "0.80x" in text
    assert "redis" in text.split("Ratios")[0]  # the peers' rows in the saturation table


def test_ratio_table_names_the_peer_the_generator_bounded() -> None:
    runs = [_run("batched", 50, 0, 4.0e6), _run("redis", 50, 0, 5.0e6), _run("ngircd", 50, 0, 2.0e6)]
    runs[2]["generator_bound"] = True
    rows = aggregate(runs)
    ratio_part = _text(ratio_table(ratios(rows, [50], ["ngircd", "redis"]), ["ngircd", "redis"]))
    assert "GENERATOR-BOUND" in ratio_part and "(ngircd)" in ratio_part and "redis)" not in ratio_part
    # direct bounded too: the note still names the peer.
    rows = aggregate([*runs, _run("direct", 50, 0, 2.0e5, generator_bound=True)])
    assert "(ngircd)" in _text(ratio_table(ratios(rows, [50], ["ngircd", "redis"]), ["ngircd", "redis"]))


def test_progress_line_shows_the_figure_the_cpu_and_the_flags() -> None:
    line = progress_line(_run("batched", 50, 0, 3.243e6, lost=2, generator_bound=True))
    assert line.startswith("saturation      batched             50 members  rep 1: 3.243 M deliveries/s")
    assert "cpu server 100% gen 40% machine 80%" in line
    assert line.endswith("LOST 2 GENERATOR-BOUND")
    failed = progress_line(
        {
            "case": "latency",
            "design": "direct",
            "members": 50,
            "rep": 1,
            "rate": 200.0,
            "error": "the server did not start",
        }
    )
    assert failed.endswith("rep 2: [red]error[/red] the server did not start")


def test_goals_table_shows_each_verdict() -> None:
    rows = [GoalRow("a goal", "1.0x", v).as_dict() for v in GoalVerdict]
    text = _text(goals_table(rows))
    for verdict in ("PASS", "FAIL", "N/A", "info"):
        assert verdict in text
