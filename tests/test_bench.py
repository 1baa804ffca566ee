"""Tests of ``python -m harness.bench`` and its load generator: they run, and they report well-formed figures.

Never a speed assertion: the machine is shared and the figures move. The end-to-end runs use ``--tiny``
(3 members, half-second windows) so that the file stays well under 20 s.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness.bench import cli as bench
from harness.bench.loadgen import CpuWindow, LoadSpec, is_generator_bound, run_load
from tests.helpers import run_module, running_server

VERDICTS = {"PASS", "FAIL", "N/A", "info"}


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _load_summary(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    assert isinstance(doc, dict)
    return doc


def test_tiny_quick_run_reports_well_formed_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = run_module(
        "harness.bench",
        ["--quick", "--reps", "1", "--tiny", "--json", str(out), "--runs-dir", str(tmp_path / "runs")],
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "Saturation throughput" in proc.stdout and "Goals" in proc.stdout
    summary = _load_summary(out)

    runs = summary["runs"]
    assert {r["case"] for r in runs} >= {"saturation", "latency", "memory"}
    for r in runs:
        assert r["error"] is None, r
        assert r["clean"] is True, r
        assert isinstance(r["generator_bound"], bool)
        for key in ("deliveries_per_s", "generator_cpu", "machine_cpu", "connect_s"):
            assert _finite(r[key]) and r[key] >= 0, (key, r)
        assert r["received"] == r["expected"] and r["lost"] == 0 and r["drops"] == 0
    for r in runs:
        if r["case"] == "saturation":
            assert r["deliveries_per_s"] > 0 and r["sent"] > 0 and r["order_sampled"] > 0
        if r["case"] == "latency":
            assert r["samples"] > 0
            assert -0.001 <= r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
        if r["case"] == "memory":
            assert r["idle_rss"] > 0 and r["idle_threads"] >= 1

    designs = {r["design"] for r in summary["rows"] if r["case"] == "saturation"}
    assert designs == {"direct", "queued", "batched"}
    (ratio,) = summary["ratios"]
    assert _finite(ratio["batched_over_direct"]) and ratio["batched_over_direct"] > 0
    assert {g["verdict"] for g in summary["goals"]} <= VERDICTS
    chk = summary["extra"]["checker"]
    if chk["available"]:
        assert chk["events"] > 0 and chk["events_per_s"] > 0 and chk["violations"] == 0

    (record,) = (tmp_path / "runs").iterdir()
    assert record.name.endswith("-bench")
    assert _load_summary(record / "summary.json")["kind"] == "bench"
    meta = _load_summary(record / "meta.json")
    assert "harness.bench" in " ".join(meta["command_line"])


def test_target_mode_benchmarks_a_running_server(tmp_path: Path) -> None:
    out = tmp_path / "target.json"
    with running_server("--max-clients", "20") as server:
        proc = run_module(
            "harness.bench",
            [
                "--tiny",
                "--reps",
                "1",
                "--cases",
                "saturation,latency",
                "--target",
                f"127.0.0.1:{server.port}",
                "--json",
                str(out),
                "--no-record",
            ],
            timeout=90,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = _load_summary(out)
    assert {r["design"] for r in summary["runs"]} == {"target"}
    assert all(r["clean"] for r in summary["runs"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--reps", "0"], "--reps: must be at least 1"),
        (["--cases", "saturation,bogus"], "unknown bogus"),
        (["--designs", "fast"], "unknown fast"),
        (["--target", "nohostport"], "expected HOST:PORT"),
        (["--members", "10,x"], "not a comma-separated list of integers"),
        (["--rates", "0"], "must be more than 0"),
        (["--frobnicate"], "unrecognized arguments"),
    ],
)
def test_bad_options_exit_2_with_one_line(args: list[str], message: str) -> None:
    proc = run_module("harness.bench", args, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert proc.stdout == ""


def test_unreachable_target_is_reported_as_a_failed_run(tmp_path: Path) -> None:
    out = tmp_path / "down.json"
    # Port 1 on loopback: nobody listens there, so every connect is refused at once.
    proc = run_module(
        "harness.bench",
        ["--tiny", "--cases", "saturation", "--target", "127.0.0.1:1", "--json", str(out), "--no-record"],
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    (run,) = _load_summary(out)["runs"]
    assert "cannot connect" in run["error"]


# -- pure parts ---------------------------------------------------------------------------------


def test_generator_bound_rule() -> None:
    def cpu(server: float | None, gen: float, gen_max: float, machine: float) -> CpuWindow:
        return CpuWindow(server=server, generator=gen, generator_max=gen_max, machine=machine, cores=2)

    assert is_generator_bound(cpu(100, 95, 95, 98))  # one worker pegged
    assert is_generator_bound(cpu(60, 120, 60, 99))  # machine full, generator took more than the server
    assert not is_generator_bound(cpu(110, 40, 20, 75))  # room to spare: the server is the limit
    assert not is_generator_bound(cpu(None, 40, 20, 99))


def test_percentile_is_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert bench.percentile(values, 50) == 50.0
    assert bench.percentile(values, 99) == 99.0
    assert bench.percentile(values, 100) == 100.0
    assert bench.percentile([3.0], 99) == 3.0
    assert math.isnan(bench.percentile([], 50))


def _run(design: str, members: int, rep: int, rate: float, **kw: Any) -> dict[str, Any]:
    r = {
        "case": "saturation",
        "design": design,
        "members": members,
        "rep": rep,
        "deliveries_per_s": rate,
        "server_cpu": 100.0,
        "generator_cpu": 40.0,
        "machine_cpu": 80.0,
        "generator_bound": False,
        "clean": True,
        "lost": 0,
        "extra": 0,
        "drops": 0,
        "order_violations": 0,
        "error": None,
    }
    r.update(kw)
    return r


def test_aggregate_takes_medians_and_ratios_compare_them() -> None:
    runs = [
        _run("direct", 50, 0, 1.0e5),
        _run("direct", 50, 1, 3.0e5),
        _run("direct", 50, 2, 2.0e5),
        _run("batched", 50, 0, 1.0e6),
        _run("batched", 50, 1, 1.2e6, generator_bound=True),
        _run("batched", 50, 2, 0.8e6),
    ]
    rows = bench.aggregate(runs)
    direct = next(r for r in rows if r["design"] == "direct")
    assert direct["deliveries_per_s"] == {"median": 2.0e5, "min": 1.0e5, "max": 3.0e5, "n": 3}
    batched = next(r for r in rows if r["design"] == "batched")
    assert batched["generator_bound"] is True
    (ratio,) = bench.ratios(rows, [50])
    assert ratio["batched_over_direct"] == pytest.approx(5.0)
    assert ratio["queued_over_direct"] is None
    assert ratio["generator_bound"] is True


def test_tables_render_flags_and_ratios() -> None:
    runs = [
        _run("direct", 10, 0, 2.0e5),
        _run("batched", 10, 0, 9.0e5, lost=3, clean=False),
        _run("queued", 10, 0, 6.0e4, generator_bound=True),
    ]
    rows = bench.aggregate(runs)
    console = Console(file=io.StringIO(), width=140, color_system=None)
    console.print(bench.saturation_table(rows))
    console.print(bench.ratio_table(bench.ratios(rows, [10])))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "0.900" in text
    assert "lost 3" in text
    assert "GENERATOR-BOUND" in text
    assert "4.50x" in text
    assert "not measured here" in text


def test_synthetic_history_is_clean_for_the_checker() -> None:
    checker = pytest.importorskip("harness.checker")
    histories, end = bench.synthetic_histories(5000, members=10, senders=3)
    assert 5000 <= sum(len(h.events) for h in histories) <= 5000 + 11
    report = checker.check_all(histories, checker.CheckConfig(run_end=end))
    assert report.total() == 0, report.summary_line()


def test_run_load_counts_every_delivery_in_process() -> None:
    """The generator against a real server, without the CLI: totals add up, nothing is lost."""
    with running_server("--max-clients", "10") as server:
        spec = LoadSpec("127.0.0.1", server.port, members=4, publishers=2, procs=1, warmup=0.1, seconds=0.3)
        result = run_load(spec, server_pid=server.pid)
    assert result.is_clean, result.witnesses
    assert result.sent > 0
    assert result.received == result.expected == result.sent * 4
    assert result.deliveries > 0 and result.window_s > 0
    assert result.cpu.server is not None
