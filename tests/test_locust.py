"""The locust users against a real server: they join, chat, ask /who and quit, with no failures."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
from helpers import REPO, ServerProcess

# Importing locust monkey-patches the process with gevent, which breaks pytest-xdist
# workers: locust only ever runs in subprocesses here.
if importlib.util.find_spec("locust") is None:
    pytest.skip("locust is not installed", allow_module_level=True)


def run_locust(port: int, *extra: str) -> subprocess.CompletedProcess[str]:
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
            "--json",
            *extra,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def stats_rows(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, int]]:
    """locust's final stats (``--json`` on stdout), by request name."""
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_steady_chat_users_join_chat_and_quit_cleanly(server: ServerProcess) -> None:
    result = run_locust(server.port)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = stats_rows(result)
    assert (rows["join"]["num_requests"], rows["join"]["num_failures"]) == (6, 0)
    assert rows["message"]["num_requests"] > 0
    assert rows["quit"]["num_requests"] == 6  # every user left with /quit when stopped
    assert sum(row["num_failures"] for row in rows.values()) == 0
    assert "Traceback" not in result.stderr


def test_unreachable_server_is_reported_as_failed_joins() -> None:
    # A port nobody listens on: bind one, close it, aim there.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_locust(port)
    rows = stats_rows(result)
    assert rows["join"]["num_failures"] == rows["join"]["num_requests"] > 0
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
