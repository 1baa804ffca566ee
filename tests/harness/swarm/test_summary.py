"""The summary document and its CPU windows, pure."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chat.protocol import ErrorCode
from harness.record.history import Role
from harness.swarm.bot import Phase
from harness.swarm.run import SwarmSettings
from harness.swarm.scenarios import plan
from harness.swarm.summary import CpuMark, cpu_figures, cpu_window, jsonable, summary_document


def test_a_cpu_window_between_two_marks() -> None:
    a, b = CpuMark(10.0, 1.0, 2.0), CpuMark(20.5, 3.25, 7.0)
    assert cpu_window(a, b) == {"harness_s": 2.25, "server_s": 5.0, "window_s": 10.5}
    assert cpu_window(CpuMark(0.0, 0.0, None), b)["server_s"] is None


def test_cpu_figures_have_the_load_window_once_both_phases_were_released() -> None:
    begin, end = CpuMark(0.0, 0.0, 0.0), CpuMark(12.0, 4.0, 8.0)
    assert "load" not in cpu_figures(begin, end, {Phase.JOINED: CpuMark(1.0, 0.5, 0.5)})
    marks = {Phase.JOINED: CpuMark(1.0, 0.5, 0.5), Phase.DRAINED: CpuMark(11.0, 3.5, 7.5)}
    assert cpu_figures(begin, end, marks)["load"] == {"harness_s": 3.0, "server_s": 7.0, "window_s": 10.0}


@dataclass(frozen=True)
class Witness:
    names: frozenset[str]
    code: ErrorCode


def test_witnesses_become_json() -> None:
    value = {"w": Witness(frozenset({"b", "a"}), ErrorCode.FULL), "t": (1, 2), Role.SLOW: None, "o": object}
    out = jsonable(value)
    assert out["w"] == {"names": ["a", "b"], "code": "full"}
    assert out["t"] == [1, 2] and out["slow"] is None and out["o"].startswith("<class")
    json.dumps(out)


@dataclass
class Latency:
    count: int = 3
    p50_ms: float = 1.0
    p95_ms: float = 2.0
    p99_ms: float = 3.0
    max_ms: float = 4.0


@dataclass
class FakeReport:
    latency: Latency = field(default_factory=Latency)
    violations: list[Any] = field(default_factory=list)
    bots_joined: int = 4
    clients: int = 6
    joined: int = 6
    seq_style: str = "numbered"
    messages_sent: int = 20
    deliveries: int = 80
    counts: dict[str, int] = field(default_factory=lambda: {"seq": 0})


def test_the_document_has_the_keys_of_the_contract(tmp_path: Path) -> None:
    settings = SwarmSettings(clients=4, scenario="mixed")
    p = plan("mixed", 4, rate=1, duration=1, seed=0)
    doc = summary_document(
        FakeReport(),
        verdict="PASS",
        exit_code=0,
        line="PASS: 0 violations in 80 deliveries",
        settings=settings.to_dict(),
        plan_=p,
        target="127.0.0.1:1",
        own_server=True,
        chat_seconds=2.0,
        interrupted=False,
        run_end=5.0,
        cpu={},
        metrics=None,
        record_dir=tmp_path,
    )
    assert list(doc) == [
        "verdict", "exit_code", "summary", "interrupted", "scenario", "roles", "roles_line", "target",
        "own_server", "asked_clients", "joined", "clients", "clients_joined", "seq_style", "messages_sent",
        "deliveries", "duration_s", "rates", "latency_ms", "checks", "violations_total", "violations", "cpu",
        "metrics", "contested_names", "run_end", "settings", "record",
    ]  # fmt: skip
    assert doc["rates"] == {"sent_per_s": 10.0, "delivered_per_s": 40.0}
    assert doc["roles"] == {"chat": 1, "churn": 1, "racer": 2} and all(type(k) is str for k in doc["roles"])
    assert (doc["scenario"], doc["asked_clients"], doc["record"]) == ("mixed", 4, str(tmp_path))
    assert json.loads(json.dumps(doc)) == doc


def test_settings_keep_their_recorded_form() -> None:
    from harness.common.address import Endpoint

    d = SwarmSettings(target=Endpoint("127.0.0.1", 9999), server_args=("--unsafe", "no-lock")).to_dict()
    assert d["target"] == "127.0.0.1:9999" and d["server_args"] == ["--unsafe", "no-lock"]
    assert SwarmSettings(target=Endpoint("::1", 9999)).to_dict()["target"] == "[::1]:9999"
