"""``python -m harness.grade`` end to end: usage errors, unreachable servers, and real gradings."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.helpers import REPO, ServerProcess

pytestmark = pytest.mark.e2e

STARTER = str(Path(REPO) / "exercises" / "chat_server.py")
MUTE = str(Path(REPO) / "tests" / "fixtures" / "mute_server.py")


def grade(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.grade", "--no-dashboard", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def servers_of(path: Path) -> list[psutil.Process]:
    """Processes still running the server file ``path`` (the grader must leave none).

    Each test grades a copy of its own in a temp dir, so that the path names
    only the processes of that grading.
    """
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if str(path) in (proc.info.get("cmdline") or []):
            found.append(proc)
    return found


def own_copy(source: str, tmp_path: Path) -> Path:
    copy = tmp_path / Path(source).name
    copy.write_text(Path(source).read_text())
    return copy


def our_server(tmp_path: Path, *extra: str) -> Path:
    """A wrapper file that runs ``chat.server`` (with ``extra`` arguments), as a student's file is run."""
    wrapper = tmp_path / "our_server.py"
    wrapper.write_text(
        f"import sys\nsys.path.insert(0, {REPO!r})\nfrom chat.server.cli import main\n"
        f"sys.exit(main([*sys.argv[1:], *{list(extra)!r}]))\n"
    )
    return wrapper


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give either SERVER"),
        ((STARTER, "--target", "127.0.0.1:9"), "give either SERVER"),
        (("no/such/file.py",), "no such file: no/such/file.py"),
        ((STARTER, "--level", "nope"), "--level"),
        ((STARTER, "--runs", "0"), "--runs"),
        (("--target", "nohost"), "--target"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    res = grade(*args, timeout=30)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert res.stdout == ""


def test_a_target_where_nothing_listens_is_exit_3() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        res = grade("--target", f"127.0.0.1:{port}", timeout=30)
    assert res.returncode == 3, res.stderr
    assert "nothing accepts a connection" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_server_file_that_does_not_start_is_exit_3(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("raise SystemExit('this server has a bug at start-up')\n")
    res = grade(str(broken), timeout=60)
    assert res.returncode == 3, res.stderr
    assert "cannot start" in res.stderr and "Traceback" not in res.stderr


def test_a_server_that_never_says_hello_fails_handshake(tmp_path: Path) -> None:
    mute = own_copy(MUTE, tmp_path)
    res = grade(str(mute), "--json", timeout=120)
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    first = doc["levels"][0]
    assert (first["name"], first["result"]) == ("handshake", "fail")
    assert "HELLO" in first["witness"] and "got nothing" in first["witness"]
    assert [level["result"] for level in doc["levels"][1:]] == ["not graded"] * 7
    assert not servers_of(mute)


def test_the_starter_passes_handshake_and_fails_broadcast_with_a_witness(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    starter = own_copy(STARTER, tmp_path)
    res = grade(str(starter), "--gradescope", str(results))
    assert res.returncode == 1, res.stderr
    assert "handshake      PASS" in res.stdout
    assert "broadcast FAILED: " in res.stdout and "JOIN" in res.stdout
    assert "  hint: " in res.stdout and "  read: " in res.stdout
    doc = json.loads(results.read_text())
    assert [(t["name"], t["score"]) for t in doc["tests"]] == [("handshake", 1), ("broadcast", 0)]
    assert not servers_of(starter)


@pytest.mark.slow
def test_our_server_passes_every_level(tmp_path: Path) -> None:
    wrapper = our_server(tmp_path)
    res = grade(str(wrapper), "--json", "--runs", "1")
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    doc = json.loads(res.stdout)
    assert doc["result"] == "pass" and doc["score"] == doc["max_score"] == 8
    assert not servers_of(wrapper)


def test_a_running_target_is_graded_without_what_needs_the_process() -> None:
    server = ServerProcess("--max-clients", "100").start()
    try:
        res = grade("--target", f"127.0.0.1:{server.port}", "--json", "--keep-going", "--level", "limits")
        assert res.returncode == 0, res.stderr
        (limits,) = json.loads(res.stdout)["levels"]
        assert limits["result"] == "pass" and "not graded with --target" in limits["note"]
        res = grade("--target", f"127.0.0.1:{server.port}", "--json", "--level", "shutdown")
        assert res.returncode == 0, res.stderr
        (shutdown,) = json.loads(res.stdout)["levels"]
        assert shutdown["result"] == "not graded"
        assert server.is_running
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("bug", "level"),
    [("send-under-lock", "slow-consumer"), ("lost-leave", "broadcast"), ("seq-outside-lock", "ordering")],
)
def test_a_catalogued_bug_fails_the_level_that_teaches_it(bug: str, level: str, tmp_path: Path) -> None:
    wrapper = our_server(tmp_path, "--unsafe", bug)
    res = grade(str(wrapper), "--level", level, "--json")
    assert res.returncode == 1, res.stderr
    (result,) = json.loads(res.stdout)["levels"]
    assert result["result"] == "fail" and result["witness"] and result["hint"] and result["lesson"]
    assert not servers_of(wrapper)
