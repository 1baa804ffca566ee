"""``python -m harness.bench`` end to end: it runs, and it reports well-formed figures.

Never a speed assertion: the machine is shared and the figures move. The runs use ``--tiny`` (3 members,
half-second windows) so that the file stays well under 20 s.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_module, running_server

pytestmark = pytest.mark.e2e

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
    swarm = summary["extra"]["swarm"]
    assert swarm["available"] and swarm["largest_pass"] == 5, swarm

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
    assert summary["settings"]["target"] == f"127.0.0.1:{server.port}"


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


@pytest.mark.slow
def test_peers_run_beside_our_designs_in_every_table(tmp_path: Path) -> None:
    out = tmp_path / "peers.json"
    peers = ["ngircd", "redis"]
    proc = run_module(
        "harness.bench",
        ["--tiny", "--cases", "saturation,latency", "--designs", "batched,direct", "--peers", ",".join(peers)]
        + ["--json", str(out), "--no-record"],
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = _load_summary(out)
    installed = [p for p in peers if summary["peers"][p]["available"]]
    for peer in peers:
        info = summary["peers"][peer]
        if not info["available"]:
            assert (
                info["note"]
                == f"not installed (apt-get install {'redis-server' if peer == 'redis' else peer})"
            )
            assert f"{peer}: not installed" in proc.stdout
    for case in ("saturation", "latency"):
        assert {r["design"] for r in summary["rows"] if r["case"] == case} == {
            "batched",
            "direct",
            *installed,
        }
    for r in summary["runs"]:
        assert r["clean"] and r["error"] is None, r
    (ratio,) = summary["ratios"]
    for peer in installed:
        assert _finite(ratio[f"batched_over_{peer}"]), ratio
        assert f"batched/{peer}" in proc.stdout
    assert "peers: batched >= 1.0x redis at 3 members" not in proc.stdout  # the goals' sizes are 10/50/200
    assert "issue's figures" not in proc.stdout and "NOT measured here" not in proc.stdout
