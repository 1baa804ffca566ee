"""Soak runs: duration units, round and sampling sizes, the verdict and its view; a short soak end to end,
PASS on our server and FAIL against a server that leaks a thread per connection."""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness.checker.leaks import ResourceSample
from harness.record.history import ClientHistory
from harness.swarm import soak as soak_module
from harness.swarm.cli import duration
from harness.swarm.dashboard import soak_view
from harness.swarm.run import StopFlag, Swarm, SwarmResult, SwarmSettings
from harness.swarm.soak import _finish, round_seconds, sample_every
from tests.helpers import REPO, ServerProcess


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("1.5m", 90.0), ("10m", 600.0), ("1h", 3600.0)]
)
def test_duration_units(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "0m", "-1h", "10x", "1hh"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)


def test_round_and_sample_sizes() -> None:
    assert round_seconds(3600) == 60.0 and round_seconds(60) == 10.0
    assert round_seconds(12) == 5.0 and round_seconds(3) == 3.0  # never longer than the soak
    assert sample_every(3600) == 5.0 and sample_every(60) == 0.5


def flat(n: int = 60, grow: int = 0) -> list[ResourceSample]:
    return [ResourceSample(float(i), 30 << 20, 10 + (i % 5) + grow * i, 20 + (i % 3)) for i in range(n)]


def rounds(*verdicts: str) -> list[dict[str, Any]]:
    return [
        {"round": i, "verdict": v, "deliveries": 100, "checks": {"loss": int(v == "FAIL")}, "violations": []}
        for i, v in enumerate(verdicts, 1)
    ]


def finish(rs: list[dict[str, Any]], series: list[ResourceSample], not_sampled: str = "") -> dict[str, Any]:
    return _finish(SwarmSettings(), rs, series, not_sampled, 60.0, None, None, []).doc


def render(doc: dict[str, Any]) -> str:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(soak_view(doc))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def test_verdicts() -> None:
    ok = finish(rounds("PASS", "PASS"), flat())
    assert (ok["verdict"], ok["exit_code"]) == ("PASS", 0)
    assert ok["summary"].endswith("leaks: rss, threads, fds flat")
    leak = finish(rounds("PASS", "PASS"), flat(grow=3))
    assert (leak["verdict"], leak["exit_code"]) == ("FAIL", 1)
    assert leak["violations"][0]["check"] == "leaks" and "threads" in leak["violations"][0]["message"]
    assert finish(rounds("PASS", "FAIL"), flat())["verdict"] == "FAIL"
    assert finish(rounds("UNKNOWN"), flat())["exit_code"] == 3
    unseen = finish(rounds("PASS"), [], "the process listening on h:1 is not visible from here")
    assert unseen["verdict"] == "PASS" and "leaks not judged: server not sampled" in unseen["summary"]
    assert "not sampled (the process listening" in render(unseen)


def test_view_shows_each_resource_with_its_series_and_verdict() -> None:
    out = render(finish(rounds("PASS"), flat(grow=3)))
    assert "Server resources" in out and "GREW" in out and "flat" in out
    assert "threads" in out and "rss" in out and "fds" in out
    assert "60 samples" in out


def soak(*args: str, cwd: Path) -> tuple[int, dict[str, Any], str]:
    cmd = [sys.executable, "-m", "harness.swarm", "--soak", "--scenario", "mixed", "--clients", "12"]
    cmd += ["--duration", "30s", "--seed", "3", "--json", *args]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=180, cwd=cwd, env=dict(os.environ, PYTHONPATH=REPO)
    )
    return done.returncode, json.loads(done.stdout), done.stderr


@pytest.mark.e2e
@pytest.mark.slow
def test_a_short_soak_passes_on_our_server_with_a_record(tmp_path: Path) -> None:
    code, doc, err = soak(cwd=tmp_path)
    assert code == 0, (doc["summary"], doc["violations"][:3], err[-2000:])
    assert len(doc["rounds"]) >= 4 and all(r["verdict"] == "PASS" for r in doc["rounds"])
    assert doc["leaks"]["sampled"] and all(r["judged"] and not r["grew"] for r in doc["leaks"]["resources"])
    assert len(doc["series"]) >= 30
    (record,) = (tmp_path / "runs").iterdir()
    assert record.name.endswith("-mixed-soak")
    saved = json.loads((record / "summary.json").read_text())
    assert saved["series"] == doc["series"]
    assert "Server resources" in err


@pytest.mark.e2e
@pytest.mark.slow
def test_a_short_soak_fails_against_a_server_leaking_a_thread_per_connection(tmp_path: Path) -> None:
    server = ServerProcess("--max-clients", "100", "--sndbuf", "4096", module="tests.fixtures.leaky_server")
    server.start()
    try:
        code, doc, err = soak("--target", f"127.0.0.1:{server.port}", "--no-record", cwd=tmp_path)
    finally:
        assert "Traceback" not in server.stop()
    assert code == 1, (doc["summary"], err[-2000:])
    assert all(r["verdict"] == "PASS" for r in doc["rounds"])  # the histories are fine: only the threads grow
    grew = [v for v in doc["violations"] if v["check"] == "leaks"]
    assert [v["witness"]["resource"] for v in grew] == ["threads"]
    assert grew[0]["witness"]["last_third_max"] > grew[0]["witness"]["first_third_max"]


@pytest.fixture
def collector_off() -> Any:
    """The cyclic collector off, so that only an explicit collection frees cycles (no lucky pass)."""
    was = gc.isenabled()
    gc.disable()
    yield
    if was:
        gc.enable()


@pytest.mark.e2e
@pytest.mark.slow
def test_each_round_is_freed_before_the_next(collector_off: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kills the mutant "no collection between rounds": a one-hour soak grew by 1.1 GB a minute.

    A round's bots hold reference cycles (asyncio transports and protocols) that keep its histories
    alive after the round is dropped; only a full collection frees them.
    """
    alive_at_start: list[int] = []
    # Other tests of this worker process may keep histories of their own: follow only the rounds'.
    before = [o for o in gc.get_objects() if isinstance(o, ClientHistory)]  # held: no id is reused
    others = {id(o) for o in before}
    earlier: list[weakref.ref[ClientHistory]] = []

    class CountingSwarm(Swarm):
        def run(self) -> SwarmResult:
            alive_at_start.append(sum(ref() is not None for ref in earlier))
            result = super().run()
            earlier.extend(
                weakref.ref(o)
                for o in gc.get_objects()
                if isinstance(o, ClientHistory) and id(o) not in others
            )
            return result

    monkeypatch.setattr(soak_module, "Swarm", CountingSwarm)
    settings = SwarmSettings(clients=6, duration=8.0, scenario="mixed", seed=3)
    result = soak_module.run_soak(
        settings, record_dir=None, progress=lambda _: None, argv=[], stop=StopFlag()
    )
    assert result.exit_code == 0, result.doc["summary"]
    assert len(alive_at_start) >= 2
    # Each round leaves about 200 histories; the mutant keeps every one of them into the next round.
    # Under pytest-xdist a stray one was once seen still referenced from a frame outside the soak
    # (not the soak's: none with the soak run alone), so one is tolerated, not hundreds.
    assert len(earlier) > 100, len(earlier)
    assert max(alive_at_start) <= 1, alive_at_start
