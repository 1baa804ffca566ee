"""The cases' pure parts: latency figures, the rotation of designs, what a run record keeps."""

from __future__ import annotations

import dataclasses

import pytest

from harness.bench.cases import Bench, MemoryProbe, _traceback_tail, latency_fields, rotated
from harness.bench.settings import TARGET, Settings, apply_quick, apply_tiny
from harness.common.address import Endpoint
from harness.common.peers import PEERS, missing_reason


def test_latency_fields_are_percentiles_in_ms() -> None:
    seconds = [i / 1000 for i in range(1, 101)]  # 1 .. 100 ms
    fields = latency_fields(seconds)
    assert fields["samples"] == 100
    assert fields["p50_ms"] == pytest.approx(50.5, abs=0.1)
    assert fields["p99_ms"] == pytest.approx(99.0, abs=0.1)
    assert fields["max_ms"] == 100.0
    assert fields["p50_ms"] <= fields["p99_ms"] <= fields["max_ms"]
    assert latency_fields([0.003]) == {"samples": 1, "p50_ms": 3.0, "p99_ms": 3.0, "max_ms": 3.0}
    assert latency_fields([]) == {"samples": 0}


def test_designs_rotate_with_the_repetition() -> None:
    designs = ["direct", "queued", "batched"]
    assert rotated(0, designs) == designs
    assert rotated(1, designs) == ["queued", "batched", "direct"]
    assert rotated(3, designs) == designs
    assert rotated(5, []) == []


def test_only_a_traceback_in_the_log_fails_a_run() -> None:
    assert _traceback_tail("listening\nmetrics on http://x\n") == ""
    log = "ok\nTraceback (most recent call last):\n  File x\nValueError: boom\n"
    assert _traceback_tail(log) == "Traceback (most recent call last): |   File x | ValueError: boom"


def test_memory_probe_keeps_what_it_read_in_the_records_order() -> None:
    probe = MemoryProbe(idle_rss=10, idle_threads=3)
    probe.chat_rss, probe.chat_threads = 12, 5
    assert list(probe.figures()) == ["idle_rss", "idle_threads", "chat_rss", "chat_threads"]
    assert MemoryProbe().figures() == {}
    probe.on_idle(None)  # a server whose process is not visible leaves the figures as they were
    assert probe.idle_rss == 10


def test_profiles_and_target() -> None:
    s = Settings()
    apply_quick(s)
    assert s.quick and s.reps == 1 and s.memory_sizes == [100, 500] and s.checker_events == 200_000
    t = Settings(target=Endpoint("::1", 9000))
    apply_tiny(t)
    assert t.tiny and t.sizes == [3] and t.designs_to_run == [TARGET]
    assert t.to_json()["target"] == "[::1]:9000"
    assert Settings().designs_to_run == ["direct", "queued", "batched"]


def test_a_peer_not_installed_is_a_note_and_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = PEERS["ngircd"]
    monkeypatch.setitem(PEERS, "ngircd", dataclasses.replace(spec, binary="/nonexistent/ngircd"))
    bench = Bench(Settings(designs=["batched"], peers=["ngircd"]), progress=lambda line: None)
    assert bench.notes == {"ngircd": "not installed (apt-get install ngircd)"}
    assert bench.peers["ngircd"] == {
        "available": False,
        "version": None,
        "note": "not installed (apt-get install ngircd)",
    }
    assert bench.servers("saturation") == ["batched"]


def test_installed_peers_run_in_the_saturation_and_latency_cases_only() -> None:
    if missing_reason("redis") is not None:
        pytest.skip(f"redis: {missing_reason('redis')}")
    bench = Bench(Settings(designs=["batched", "direct"], peers=["redis"]), progress=lambda line: None)
    assert bench.servers("saturation") == bench.servers("latency") == ["batched", "direct", "redis"]
    assert bench.servers("memory") == ["batched", "direct"]
    assert bench.peers["redis"]["available"] and "Redis" in bench.peers["redis"]["version"]
