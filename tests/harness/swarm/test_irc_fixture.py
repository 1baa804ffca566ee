"""The swarm over IRC against tests/fixtures/irc_server.py: each fault gives FAIL, exit 1, and a witness.

The fixture is correct with ``--bug none`` (one event loop: one order for all, so
even ``--strict-order`` passes); each fault must be caught by the check that
names it, with a witness naming the clients and the messages. A reordering
between two senders keeps each sender's order, which is all IRC promises: only
``--strict-order`` may call it a fault.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, run_module

FIXTURE = Path(REPO) / "tests" / "fixtures" / "irc_server.py"
RUN = ["--clients", "6", "--duration", "2", "--rate", "10", "--no-dashboard", "--seed", "3", "--no-record"]

pytestmark = pytest.mark.e2e


@pytest.fixture
def ircd() -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> str:
        proc = subprocess.Popen(
            [sys.executable, str(FIXTURE), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        started.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        assert ready, "the IRC fixture did not start"
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        return "irc://" + line.strip().rsplit(" ", 1)[1] + "/chat"

    yield start
    for proc in started:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        assert "Traceback" not in err, err


def swarm_json(*args: str) -> tuple[int, dict[str, Any], str]:
    proc = run_module("harness.swarm", [*RUN, *args, "--json"], timeout=90)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout), proc.stderr


@pytest.mark.parametrize("echo", [False, True])
def test_the_correct_fixture_passes_even_with_strict_order(ircd: Any, echo: bool) -> None:
    target = ircd("--bug", "none", *(["--echo"] if echo else []))
    for scenario in ("chat", "churn"):
        code, doc, stderr = swarm_json("--target", target, "--scenario", scenario, "--strict-order")
        assert (code, doc["verdict"]) == (0, "PASS"), (doc["summary"], doc["violations"][:3], stderr[-1500:])


def test_ircd_hybrid_habits_pass(ircd: Any) -> None:
    """The swarm leans on no one server's habits: ascii casemapping, NICKLEN 9 (longer nicks cut), no
    echo-message, and churners' QUITs relayed as ``Quit: `` without their text (ircd-hybrid's)."""
    target = ircd("--habits", "hybrid", "--echo")  # --echo is ignored there: hybrid offers no echo-message
    for scenario in ("churn", "name-race"):
        code, doc, stderr = swarm_json("--target", target, "--scenario", scenario, "--strict-order")
        assert (code, doc["verdict"]) == (0, "PASS"), (doc["summary"], doc["violations"][:3], stderr[-1500:])


# fault -> (scenario that shows it, the check that must name it, witness keys that name clients and messages)
FAULTS = {
    "drop": ("chat", "loss", {"client", "sender", "message"}),
    "duplicate": ("chat", "fifo", {"client", "message"}),
    "share-nick": ("name-race", "names", {"clients", "name"}),
    "forget-quit": ("churn", "membership", {"client"}),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_fails_with_a_witness(ircd: Any, fault: str) -> None:
    scenario, check, keys = FAULTS[fault]
    target = ircd("--bug", fault, "--every", "2")
    code, doc, stderr = swarm_json("--target", target, "--scenario", scenario)
    assert (code, doc["verdict"], doc["exit_code"]) == (1, "FAIL", 1), (doc["summary"], stderr[-1500:])
    assert doc["checks"][check] > 0, doc["checks"]
    witness = next(v for v in doc["violations"] if v["check"] == check)
    assert keys <= set(witness["witness"]), witness
    assert witness["message"]


def test_a_reordering_between_senders_fails_only_with_strict_order(ircd: Any) -> None:
    target = ircd("--bug", "reorder", "--every", "2")
    code, doc, _ = swarm_json("--target", target, "--scenario", "chat")
    assert (code, doc["verdict"]) == (0, "PASS"), doc["violations"][:3]
    assert "agreement not judged" in doc["summary"]
    code, doc, _ = swarm_json("--target", target, "--scenario", "chat", "--strict-order")
    assert (code, doc["verdict"]) == (1, "FAIL"), doc["summary"]
    assert set(name for name, n in doc["checks"].items() if n) == {"agreement"}
    witness = next(v for v in doc["violations"] if v["check"] == "agreement")["witness"]
    assert len(witness["clients"]) == 2 and len(witness["messages"]) == 2
    assert {m["bot"] for m in witness["messages"]} and all("n" in m for m in witness["messages"])


def test_throttling_is_reported_as_such_never_as_a_loss(ircd: Any) -> None:
    target = ircd("--bug", "none", "--flood", "50")
    code, doc, stderr = swarm_json("--target", target, "--scenario", "mixed")
    assert doc["verdict"] != "FAIL" and code != 1, (doc["summary"], doc["violations"][:3])
    assert sum(doc["checks"].values()) == 0
    assert doc["throttled"] and {t["kind"] for t in doc["throttled"]} == {"flood"}
    assert "throttled by the server, not lost" in doc["summary"]
    assert "hint: the server throttles fast senders" in stderr
