"""``python -m harness.swarm --target irc://...`` against real IRC servers: ngircd and InspIRCd must PASS.

Each server is started by :mod:`harness.common.peers` from a generated
configuration on a free port (flood limits off), and stopped by its PID. A server
that is not installed is skipped with the Debian package to install. A
representative subset runs here (``chat`` and ``churn`` on each, short); the
full matrix, measured by hand, is in docs/irc.md.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.common.peers import PeerServer, missing_reason, start_peer
from tests.helpers import run_module

pytestmark = pytest.mark.e2e

#: Short runs with generous bounds: a loaded CI machine must not turn a correct server into a FAIL.
RUN = [
    "--clients", "10", "--duration", "2", "--rate", "10", "--no-dashboard", "--seed", "7",
    "--handshake-bound", "20", "--delivery-bound", "20",
]  # fmt: skip


@pytest.fixture(scope="module", params=["ngircd", "inspircd"])
def ircd(request: pytest.FixtureRequest) -> Iterator[PeerServer]:
    reason = missing_reason(request.param)
    if reason is not None:
        pytest.skip(f"{request.param}: {reason}")
    with start_peer(request.param) as server:
        yield server


def swarm_json(*args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    proc = run_module("harness.swarm", [*args, "--json"], timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    try:
        return proc, json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not one JSON document: {proc.stdout[:500]!r}; stderr: {proc.stderr[-2000:]}")


@pytest.mark.parametrize(("scenario", "strict"), [("chat", True), ("churn", False)])
def test_a_real_irc_server_passes(ircd: PeerServer, scenario: str, strict: bool, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    target = f"irc://{ircd.endpoint}/chat"
    extra = ["--strict-order"] if strict else []
    proc, doc = swarm_json(*RUN, "--target", target, "--scenario", scenario, "--record", str(run_dir), *extra)
    assert doc["verdict"] == "PASS", (doc["summary"], doc["violations"][:3], proc.stderr[-1500:])
    assert proc.returncode == 0
    assert doc["target"] == f"irc://{ircd.endpoint}/#chat"
    assert doc["protocol"] == "irc" and doc["seq_style"] == "unnumbered"
    assert doc["agreement_judged"] is strict
    assert doc["summary"].endswith("deliveries") is strict  # the note on agreement, when not judged
    assert doc["joined"] == 10 and doc["deliveries"] > 0
    assert doc["latency_ms"]["count"] > 0
    assert doc["throttled"] == []
    # The record is judged again the same way.
    again = run_module("harness.checker", [str(run_dir)], timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.splitlines()[0] == doc["summary"]
