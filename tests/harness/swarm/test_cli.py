"""``python -m harness.swarm`` end to end: real servers, real sockets, the CLI's exit codes and outputs.

Runs are short (a few bots for a couple of seconds): they check that the swarm
judges correctly, never how fast anything is.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.record.store import load_run
from harness.swarm.cli import main
from harness.swarm.scenarios import SCENARIOS
from tests.helpers import REPO, ServerProcess, run_module

BROKEN = Path(REPO) / "tests" / "fixtures" / "broken_server.py"
SHORT = ["--clients", "5", "--duration", "1", "--rate", "10", "--no-dashboard", "--seed", "1"]
#: Runs that must PASS get generous liveness bounds: a CI machine that stalls
#: for seconds must not turn a correct server into a FAIL. (Echo waits end as
#: soon as the echo comes, so a bound costs time only when something is wrong.)
PASSING = [*SHORT, "--handshake-bound", "20", "--delivery-bound", "20"]

pytestmark = pytest.mark.e2e


def swarm(*args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    return run_module("harness.swarm", list(args), timeout=timeout)


def swarm_json(*args: str) -> tuple[int, dict[str, Any], str]:
    proc = swarm(*args, "--json")
    try:
        doc = json.loads(proc.stdout)  # exactly one JSON document, nothing else
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not one JSON document: {proc.stdout[:500]!r}; stderr: {proc.stderr[-2000:]}")
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, doc, proc.stderr


# -- PASS on our server, every scenario ------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_passes_on_our_server(scenario: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code, doc, stderr = swarm_json(*PASSING, "--scenario", scenario, "--record", str(run_dir))
    assert doc["verdict"] == "PASS", (doc["summary"], doc["violations"][:3], stderr[-1500:])
    assert code == 0
    assert doc["exit_code"] == 0
    assert doc["summary"].startswith("PASS: 0 violations in ")
    assert doc["scenario"] == scenario
    assert doc["joined"] == 5 and doc["asked_clients"] == 5
    assert doc["deliveries"] > 0
    assert set(doc["checks"]) >= {"seq", "agreement", "loss", "fifo", "membership", "names", "liveness"}
    assert doc["latency_ms"]["count"] > 0
    assert doc["settings"]["seed"] == 1
    # The run record holds the same summary, the events and the meta data.
    histories, summary, meta = load_run(run_dir)
    assert summary == doc
    assert len(histories) == doc["clients"]
    assert meta["settings"]["scenario"] == scenario
    assert meta["server_command"][1:3] == ["-m", "chat.server"]
    assert "python" in meta["versions"]


def test_procs_spreads_bots_over_processes_and_merges_their_records(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code, doc, _ = swarm_json(*PASSING, "--scenario", "churn", "--procs", "2", "--record", str(run_dir))
    assert (code, doc["verdict"]) == (0, "PASS"), doc["violations"][:3]
    histories, _, _ = load_run(run_dir)
    assert {h.bot for h in histories} == {f"b{i}" for i in range(5)}
    assert not list(run_dir.glob("events.part*"))


def test_plain_output_and_the_default_record_folder(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.swarm", *PASSING, "--clients", "3"],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=REPO),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # stdout: the verdict line alone; progress lines and the summary tables go to stderr.
    assert proc.stdout.splitlines() == [proc.stdout.strip()]
    assert proc.stdout.startswith("PASS: 0 violations in ")
    assert "swarm: 3 bots" in proc.stderr
    assert "Latency" in proc.stderr and "Check" in proc.stderr
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.endswith("-chat")
    assert {p.name for p in runs[0].iterdir()} >= {"events.jsonl", "summary.json", "meta.json", "server.log"}
    assert f"run record: runs/{runs[0].name}" in proc.stderr


def test_keep_runs_prunes_the_oldest_records(tmp_path: Path) -> None:
    old = []
    for day in (1, 2, 3):
        path = tmp_path / "runs" / f"2026110{day}T000000Z-chat"
        path.mkdir(parents=True)
        (path / "events.jsonl").write_text("")
        old.append(path)
    proc = subprocess.run(
        [sys.executable, "-m", "harness.swarm", *PASSING, "--clients", "2", "--keep-runs", "2"],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=REPO),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    left = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(left) == 2 and left[0] == old[2].name  # the newest old one, and this run's


# -- exit code 2: usage and setup errors -----------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--clients", "0"], "--clients"),
        (["--scenario", "nope"], "--scenario"),
        (["--target", "localhost"], "HOST:PORT"),
        (["--rate", "fast"], "--rate"),
        (["--duration", "-1"], "--duration"),
        (["--metrics", "http://127.0.0.1:1/metrics"], "--metrics needs --target"),
        (["--no-record", "--record", "x"], "not allowed with"),
        (["--keep-runs", "-1"], "--keep-runs"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_option_is_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("python -m harness.swarm: error: ")
    assert message in lines[0]


def test_bad_option_from_the_command_line() -> None:
    proc = swarm("--clients", "-3", timeout=30)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "python -m harness.swarm: error: argument --clients: must be at least 1: -3 (see --help)"
    ]


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def test_unreachable_target_is_one_line_and_exit_2(tmp_path: Path) -> None:
    port = _closed_port()
    proc = subprocess.run(
        [sys.executable, "-m", "harness.swarm", "--target", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=REPO),
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"python -m harness.swarm: cannot reach 127.0.0.1:{port}: Connection refused"]
    assert proc.stdout == ""
    assert not list(tmp_path.glob("runs/*"))  # no empty run record left behind


def test_own_server_that_cannot_start_is_exit_2() -> None:
    proc = swarm(*SHORT, "--no-record", "--server-arg=--max-line 0", timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "the own chat server did not start" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- exit code 3: too little to judge ---------------------------------------------------------------


def test_full_target_server_gives_unknown_not_pass() -> None:
    with_slots = ServerProcess("--max-clients", "2").start()
    try:
        code, doc, _ = swarm_json(
            *("--target", f"127.0.0.1:{with_slots.port}", "--clients", "4", "--duration", "1", "--no-record"),
            *("--handshake-bound", "20", "--delivery-bound", "20"),
        )
    finally:
        assert "Traceback" not in with_slots.stop()
    assert doc["verdict"] == "UNKNOWN", doc["violations"][:3]
    assert code == 3 and doc["exit_code"] == 3
    assert 1 <= doc["joined"] <= 2
    assert doc["summary"].startswith("UNKNOWN")


def test_no_messages_gives_unknown() -> None:
    code, doc, _ = swarm_json(
        *("--clients", "2", "--duration", "0.5", "--rate", "0", "--no-record"),
        *("--handshake-bound", "20", "--delivery-bound", "20"),
    )
    assert (code, doc["verdict"]) == (3, "UNKNOWN"), doc["summary"]
    assert doc["deliveries"] == 0


# -- Ctrl+C ---------------------------------------------------------------------------------------


def test_ctrl_c_stops_cleanly_and_prints_the_summary() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.swarm", "--clients", "4", "--duration", "60", "--no-dashboard"]
        + ["--no-record", "--json", "--handshake-bound", "20", "--delivery-bound", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        seen = ""
        while "chatting" not in seen:  # the first progress line of the chat phase
            ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no progress line; stderr so far: {seen[-1000:]}"
            line = proc.stderr.readline()
            assert line, f"the swarm ended early: {seen[-1000:]}"
            seen += line
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert time.monotonic() - t0 < 20
    assert "Traceback" not in err
    doc = json.loads(out)
    assert doc["interrupted"] is True
    assert "(interrupted after " in doc["summary"]
    assert doc["verdict"] in ("PASS", "UNKNOWN"), doc["violations"][:3]
    assert proc.returncode == doc["exit_code"]
    assert doc["messages_sent"] > 0


# -- broken servers: FAIL with a witness -------------------------------------------------------------


@pytest.fixture
def broken() -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def start(bug: str) -> str:
        if not BROKEN.exists():
            pytest.skip("tests/fixtures/broken_server.py is not there yet")
        proc = subprocess.Popen(
            [sys.executable, str(BROKEN), "--port", "0", "--bug", bug],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        started.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        assert ready, "the broken server did not start"
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        return line.strip().rsplit(" ", 1)[1]

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


# bug -> (scenario that shows it, checks that may name it)
BUGS = {
    "lose": ("chat", {"loss", "seq"}),
    "duplicate": ("chat", {"seq", "agreement", "fifo", "loss"}),
    "reorder": ("chat", {"fifo", "seq", "agreement"}),
    "misnumber": ("chat", {"seq", "agreement"}),
    "dup-name": ("name-race", {"names"}),
    "forget-leave": ("churn", {"membership"}),
}


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_broken_server_fails_with_a_witness(bug: str, broken: Any) -> None:
    scenario, checks = BUGS[bug]
    target = broken(bug)
    code, doc, stderr = swarm_json(*SHORT, "--target", target, "--scenario", scenario, "--no-record")
    assert doc["verdict"] == "FAIL", (doc["summary"], stderr[-1500:])
    assert code == 1 and doc["exit_code"] == 1
    assert doc["summary"].startswith("FAIL: ")
    fired = {name for name, n in doc["checks"].items() if n}
    assert fired & checks, (bug, doc["checks"])
    witnessed = {v["check"] for v in doc["violations"] if v["witness"]}
    assert witnessed & checks, doc["violations"][:3]


@pytest.mark.parametrize("bug", ["none", "no-seq", "per-recipient-seq"])
def test_correct_servers_of_other_styles_pass(bug: str, broken: Any) -> None:
    target = broken(bug)
    code, doc, _ = swarm_json(*PASSING, "--target", target, "--scenario", "mixed", "--no-record")
    assert (code, doc["verdict"]) == (0, "PASS"), (doc["summary"], doc["violations"][:3])
    if bug == "no-seq":
        assert doc["seq_style"] == "unnumbered"


@pytest.mark.slow
@pytest.mark.parametrize("server_backlog", ["1000", "1000000000"], ids=["drops", "never-drops"])
def test_the_slow_scenario_fails_on_a_server_that_never_drops_a_slow_reader(server_backlog: str) -> None:
    """Told the contract's bound (--max-backlog 1000), the swarm fails a server that queues without
    bound for a reader that stopped (here ours with a bound it never reaches); the control, the same
    run against the server with that bound, passes."""
    server = ServerProcess("--max-clients", "60", "--sndbuf", "4096", "--max-backlog", server_backlog).start()
    try:
        target = f"127.0.0.1:{server.port}"
        args = ["--clients", "20", "--duration", "6", "--rate", "40", "--no-dashboard", "--seed", "5"]
        args += ["--scenario", "slow", "--target", target, "--max-backlog", "1000"]
        code, doc, stderr = swarm_json(*args)
    finally:
        assert "Traceback" not in server.stop()
    unbounded = [v for v in doc["violations"] if "never dropped as slow" in v["message"]]
    if server_backlog == "1000":
        assert (code, doc["verdict"]) == (0, "PASS"), (doc["summary"], doc["violations"][:3], stderr[-1500:])
        return
    assert code == 1 and doc["verdict"] == "FAIL", doc["summary"]
    assert unbounded and unbounded[0]["witness"]["max_backlog"] == 1000, doc["violations"][:3]
