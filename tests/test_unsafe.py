"""The bug catalogue: the CLI around ``--unsafe``, and every bug caught by a short swarm.

The swarm runs are short (16 bots, 1.5 s of chat, liveness bounds of 1 s);
each bug shows within a fraction of a second (see docs/bugs.md for the rates of
the full-size runs).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from chat.lockstat import InstrumentedLock
from chat.unsafe import BUGS, LockWatchdog, UnknownBug, get_bug
from tests.helpers import REPO, ServerProcess, run_module

SWARM_TIMEOUT = 90.0
#: A deadlock needs a join and a leave to meet in the window; a 1.5 s run has
#: few of them, so the test widens the window (the figures in docs/bugs.md use
#: the defaults).
TEST_WINDOWS = {"lock-order-deadlock": "--race-window 0.02"}


def test_unknown_bug_is_a_usage_error_listing_the_valid_names() -> None:
    res = run_module("chat.server", ["--port", "0", "--unsafe", "no-such-bug"], timeout=30)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("chat.server: unknown --unsafe bug 'no-such-bug'; valid: ")
    for name in BUGS:
        assert name in lines[0]
    assert res.stdout == ""


def test_race_window_needs_unsafe() -> None:
    res = run_module("chat.server", ["--port", "0", "--race-window", "0.01"], timeout=30)
    assert res.returncode == 2
    assert res.stderr.strip() == "chat.server: --race-window only applies with --unsafe BUG"


@pytest.mark.parametrize("value", ["-1", "abc", "2"])
def test_bad_race_window_is_a_usage_error(value: str) -> None:
    res = run_module(
        "chat.server", ["--port", "0", "--unsafe", "no-lock", "--race-window", value], timeout=30
    )
    assert res.returncode == 2
    assert "--race-window" in res.stderr
    assert "Traceback" not in res.stderr


def test_get_bug() -> None:
    assert get_bug("no-lock").name == "no-lock"
    with pytest.raises(UnknownBug, match=r"^unknown --unsafe bug 'x'; valid: no-lock, "):
        get_bug("x")


def test_banner_on_stderr_and_the_ready_line_unchanged() -> None:
    srv = ServerProcess("--unsafe", "seq-outside-lock", "--race-window", "0").start()
    with srv.connect() as c:
        c.join("alice")
        c.send("hi")
        c.expect("MSG 2 alice hi")
    err = srv.stop()
    assert "UNSAFE SERVER: bug 'seq-outside-lock' injected on purpose." in err
    assert "race window 0 s" in err


def test_watchdog_dumps_stacks_when_the_lock_is_stuck(capfd: pytest.CaptureFixture[str]) -> None:
    lock = InstrumentedLock("registry")
    dog = LockWatchdog(lock, limit=0.2)
    held = threading.Event()
    let_go = threading.Event()

    def leave() -> None:
        with lock:
            held.set()
            assert let_go.wait(10.0)

    holder = threading.Thread(target=leave)
    holder.start()
    assert held.wait(10.0)
    dog.start()
    try:
        assert dog.stalled.wait(10.0)
        assert dog.stalls == 1
    finally:
        let_go.set()
        holder.join(10.0)
        dog.stop()
    err = capfd.readouterr().err
    assert "most recent call first" in err  # faulthandler's dump
    assert "in leave" in err


def run_swarm(bug: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "harness.swarm",
        "--scenario",
        BUGS[bug].scenario,
        "--clients",
        "16",
        "--duration",
        "1.5",
        "--handshake-bound",
        "1",
        "--delivery-bound",
        "1",
        "--no-dashboard",
        "--no-record",
        "--json",
        f"--server-arg=--unsafe {bug} {TEST_WINDOWS.get(bug, '')}",
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=SWARM_TIMEOUT, cwd=REPO)


@pytest.mark.slow
@pytest.mark.parametrize("bug", list(BUGS))
def test_every_bug_is_caught_by_a_short_swarm(bug: str) -> None:
    res = run_swarm(bug)
    doc = json.loads(res.stdout)
    assert res.returncode == 1, (doc.get("summary"), res.stderr[-2000:])
    assert doc["verdict"] == "FAIL"
    assert doc["violations"], doc["summary"]
