"""The locust users against a real server: they join, chat, ask /who and quit, with no failures."""

from __future__ import annotations

import csv
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, ServerProcess

# Importing locust monkey-patches the process with gevent, which breaks pytest-xdist
# workers: locust only ever runs in subprocesses here.
if importlib.util.find_spec("locust") is None:
    pytest.skip("locust is not installed", allow_module_level=True)


def run_locust(port: int, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            "locustfiles/chat.py",
            "--host",
            f"chat://127.0.0.1:{port}",
            "--headless",
            "--users",
            "6",
            "--spawn-rate",
            "6",
            "--run-time",
            "4s",
            "--stop-timeout",
            "3",
            "--csv",
            str(tmp_path / "run"),
            "--only-summary",
            *extra,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def stats_rows(tmp_path: Path) -> dict[str, dict[str, str]]:
    with open(tmp_path / "run_stats.csv", newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def test_steady_chat_users_join_chat_and_quit_cleanly(server: ServerProcess, tmp_path: Path) -> None:
    result = run_locust(server.port, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = stats_rows(tmp_path)
    assert int(rows["join"]["Request Count"]) == 6
    assert int(rows["join"]["Failure Count"]) == 0
    assert int(rows["message"]["Request Count"]) > 0
    assert int(rows["message"]["Failure Count"]) == 0
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    # The CSV is written before the users' on_stop runs; the printed summary has the quits.
    assert re.search(r"^chat\s+quit\s+6\s+0\(", result.stdout + result.stderr, re.M)
    assert "Traceback" not in result.stderr


def test_unreachable_server_is_reported_as_failed_joins(tmp_path: Path) -> None:
    # A port nobody listens on: bind one, close it, aim there.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_locust(port, tmp_path)
    rows = stats_rows(tmp_path)
    assert int(rows["join"]["Failure Count"]) == int(rows["join"]["Request Count"]) > 0
    assert result.returncode == 1  # locust's exit code when requests failed


def test_host_parsing() -> None:
    code = """
import sys
sys.path.insert(0, "locustfiles")
from chat_user import parse_host
assert parse_host("chat://127.0.0.1:4000") == ("127.0.0.1", 4000)
assert parse_host("localhost:5") == ("localhost", 5)
assert parse_host(None) == ("localhost", 9999)
try:
    parse_host("http://example:80")
except ValueError as exc:
    assert str(exc).startswith("host must look like chat://HOST:PORT"), exc
else:
    raise AssertionError("no ValueError")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
