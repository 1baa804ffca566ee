"""The locust users against real servers: headless, scenarios, distributed, the web UI and its page.

Importing locust monkey-patches the process with gevent, which breaks pytest-xdist
workers: locust only ever runs in subprocesses here, on 127.0.0.1, with a free
port for everything (chat server, locust master, web UI), and every wait is
bounded. Stats are read from ``--json`` (the CSV writer races its own shutdown on
a loaded machine) or from the web UI's HTTP API.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, ServerProcess, running_server

if importlib.util.find_spec("locust") is None:
    pytest.skip("locust is not installed", allow_module_level=True)

pytestmark = pytest.mark.e2e


#: Fast users: a task every 50-150 ms, so that a few seconds make hundreds of deliveries.
FAST = ("--chat-wait-min", "0.05", "--chat-wait-max", "0.15")
#: Runs that must pass get generous liveness bounds (request timeouts and the checker's), so that a
#: stalled CI machine cannot fail them; the bugs used here are not liveness bugs.
GENEROUS = ("--chat-handshake-bound", "30", "--chat-delivery-bound", "30")
#: Bound on any one locust process.
LOCUST_TIMEOUT = 60.0


def free_port() -> int:
    """A port nobody listens on right now (for locust's own listeners, which take a fixed port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def locust_args(locustfile: str, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        f"locustfiles/{locustfile}",
        "--host",
        f"chat://127.0.0.1:{port}",
        *extra,
    ]


def headless(locustfile: str, port: int, *extra: str, users: int = 6, run_time: str = "4s") -> list[str]:
    return locust_args(
        locustfile,
        port,
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        run_time,
        "--json",
        *FAST,
        *extra,
    )


def run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=LOCUST_TIMEOUT)


def stats_rows(stdout: str) -> dict[str, dict[str, Any]]:
    """locust's final stats (``--json`` on stdout), by request name; every row must be of type CHAT."""
    rows = {row["name"]: row for row in json.loads(stdout)}
    assert {row["method"] for row in rows.values()} <= {"CHAT"}, rows
    return rows


def assert_clean(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "Uncaught exception" not in stderr, stderr[-3000:]


# -- bad options ---------------------------------------------------------------------------------


def test_bad_option_is_one_line_and_exit_2() -> None:
    result = run(headless("chat.py", 9, "--chat-wait-min", "3", "--chat-wait-max", "1"))
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "--chat-wait-min and --chat-wait-max need" in errors[0], result.stderr
    assert_clean(result.stderr)


# -- headless, one process -------------------------------------------------------------------------


def test_steady_chat_users_pass_on_the_real_server(server: ServerProcess) -> None:
    result = run(headless("chat.py", server.port, *GENEROUS))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = stats_rows(result.stdout)
    assert (rows["join"]["num_requests"], rows["join"]["num_failures"]) == (6, 0)
    assert rows["message"]["num_requests"] > 0
    assert rows["who"]["num_requests"] > 0
    assert rows["leave"]["num_requests"] == 6  # every user left with /quit when stopped
    assert sum(row["num_failures"] for row in rows.values()) == 0
    assert "chat check: PASS: 0 violations in" in result.stderr
    assert_clean(result.stderr)


def test_unreachable_server_is_reported_as_failed_joins() -> None:
    result = run(headless("chat.py", free_port(), run_time="2s"))
    rows = stats_rows(result.stdout)
    assert rows["join"]["num_failures"] == rows["join"]["num_requests"] > 0
    assert "cannot connect to 127.0.0.1:" in result.stderr
    assert result.returncode == 1  # locust's exit code when requests failed
    assert_clean(result.stderr)


#: The unsafe server of the two tests below; their safe controls run the same locust with none of it.
UNSAFE_JOIN = ("--unsafe", "join-before-register", "--race-window", "0.2")


def test_unsafe_server_fails_the_run_with_witnesses() -> None:
    # join-before-register: JOIN goes out, then the newcomer is registered 0.2 s later; what is
    # broadcast in between never reaches it. Users that join while others chat see the hole.
    with running_server("--max-clients", "20", *UNSAFE_JOIN) as srv:
        result = run(headless("chat.py", srv.port, "--spawn-rate", "3"))
    assert result.returncode == 1, result.stderr[-3000:]
    assert "chat check: FAIL:" in result.stderr
    assert "[seq]" in result.stderr and "(gap)" in result.stderr  # a violation, with its witness
    assert_clean(result.stderr)


def test_the_safe_server_passes_the_unsafe_tests_run() -> None:
    """The control of the test above: the same locust run (users, spawn rate, default bounds), safe server."""
    with running_server("--max-clients", "20") as srv:
        result = run(headless("chat.py", srv.port, "--spawn-rate", "3"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "chat check: PASS: 0 violations in" in result.stderr
    assert_clean(result.stderr)


def test_scenarios_pass_on_the_real_server() -> None:
    """Churn, the name race and the ramp, each against its own correct server, all at once: no false alarm."""
    runs = {
        "churn.py": ("--chat-churn-drop", "0.5", "--chat-churn-messages", "2"),
        "name_race.py": ("--chat-race-names", "1", "--chat-race-messages", "1"),
        "ramp.py": ("--chat-ramp-users", "4", "--chat-ramp-seconds", "1", "--chat-ramp-hold", "3"),
    }
    servers = [ServerProcess("--max-clients", "20").start() for _ in runs]
    try:
        procs = {}
        for (locustfile, extra), srv in zip(runs.items(), servers, strict=True):
            args = headless(locustfile, srv.port, *GENEROUS, *extra)
            if locustfile == "ramp.py":  # the shape sets the users and ends the run
                args = locust_args(locustfile, srv.port, "--headless", "--json", *FAST, *GENEROUS, *extra)
            procs[locustfile] = subprocess.Popen(
                args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        results = {name: proc.communicate(timeout=LOCUST_TIMEOUT) for name, proc in procs.items()}
        for name, proc in procs.items():
            out, err = results[name]
            assert proc.returncode == 0, (name, err[-3000:])
            assert "chat check: PASS: 0 violations in" in err, (name, err[-3000:])
            rows = stats_rows(out)
            assert rows.get("join", {}).get("num_requests", 0) > 0, (name, rows)
            assert rows.get("message", {}).get("num_requests", 0) > 0, (name, rows)
            assert sum(row["num_failures"] for row in rows.values()) == 0, (name, rows)
            assert_clean(err)
        assert stats_rows(results["ramp.py"][0])["join"]["num_requests"] <= 4  # the top of the ramp
        assert "name-taken" not in results["name_race.py"][1]  # a lost race is not a failure
    finally:
        for srv in servers:
            assert "Traceback" not in srv.stop()


# -- distributed: a master and two workers -------------------------------------------------------------


def distributed(server_port: int, *extra: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """A headless master expecting two workers, and the two workers; returns the master's result
    and the workers' stderr."""
    master_port = free_port()
    master = subprocess.Popen(
        headless(
            "chat.py",
            server_port,
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(master_port),
            "--expect-workers",
            "2",
            "--expect-workers-max-wait",
            "30",
            *extra,
        ),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker_args = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        "locustfiles/chat.py",
        "--worker",
        "--master-host",
        "127.0.0.1",
        "--master-port",
        str(master_port),
    ]
    workers = [
        subprocess.Popen(worker_args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        out, err = master.communicate(timeout=LOCUST_TIMEOUT)
        worker_errs = [w.communicate(timeout=20)[1] for w in workers]  # they quit with the master
    finally:
        for p in (master, *workers):
            if p.poll() is None:
                p.kill()
                p.communicate()
    return subprocess.CompletedProcess(master.args, master.returncode, out, err), worker_errs


def test_distributed_run_passes_on_the_real_server() -> None:
    with running_server("--max-clients", "20") as srv:
        result, worker_errs = distributed(srv.port, *GENEROUS)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = stats_rows(result.stdout)
    assert rows["join"]["num_requests"] == 6 and rows["message"]["num_requests"] > 0
    assert sum(row["num_failures"] for row in rows.values()) == 0
    assert result.stderr.count("chat check: worker ") == 2
    assert "chat check (all workers): PASS: 0 violations in" in result.stderr
    for err in worker_errs:
        assert "chat check (this worker's users only): PASS" in err, err[-2000:]
        assert_clean(err)
    assert_clean(result.stderr)


@pytest.mark.parametrize("unsafe", [True, False], ids=["unsafe", "safe-control"])
def test_distributed_run_fails_at_the_master_on_an_unsafe_server(unsafe: bool) -> None:
    """And passes on the safe server with the same run: the control."""
    with running_server("--max-clients", "20", *(UNSAFE_JOIN if unsafe else ())) as srv:
        result, _ = distributed(srv.port, "--spawn-rate", "3")
    if not unsafe:
        assert result.returncode == 0, result.stderr[-3000:]
        assert "chat check (all workers): PASS" in result.stderr
        assert_clean(result.stderr)
        return
    assert result.returncode == 1, result.stderr[-3000:]
    assert "chat check (all workers): FAIL:" in result.stderr
    assert "[seq]" in result.stderr  # the workers' first witnesses, at the master
    assert_clean(result.stderr)


# -- the web UI --------------------------------------------------------------------------------------------


class LocustUI:
    """``locust`` with its web UI on a free port; stderr collected by a thread, stopped by PID."""

    def __init__(self, server_port: int) -> None:
        self.web_port = free_port()
        self.url = f"http://127.0.0.1:{self.web_port}"
        self.host = f"chat://127.0.0.1:{server_port}"
        self.proc = subprocess.Popen(
            [
                *locust_args("chat.py", server_port, *FAST, *GENEROUS),
                "--web-host",
                "127.0.0.1",
                "--web-port",
                str(self.web_port),
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()

    def wait_for(self, text: str, timeout: float = 40.0) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: any(text in line for line in self.lines), timeout):
                raise TimeoutError(f"locust never logged {text!r}: {''.join(self.lines)[-2000:]}")

    def wait_listening(self, timeout: float = 40.0) -> None:
        """The web UI logs its address before it listens: poll a connect, boundedly."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.web_port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise TimeoutError(f"the web UI never listened: {''.join(self.lines)[-2000:]}") from None
            with self.changed:  # wake on new log output, or try again after a moment
                self.changed.wait(0.1)

    def post(self, path: str, form: dict[str, str] | None = None) -> dict[str, Any]:
        data = urllib.parse.urlencode(form or {}).encode()
        with urllib.request.urlopen(self.url + path, data=data, timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def stop_swarm(self) -> dict[str, Any]:
        """Stop the swarm: ``POST /stop`` since locust 2.47, ``GET /stop`` before (2.46 is the
        last release for Python 3.10, so both are in the test matrix)."""
        try:
            return self.post("/stop")
        except urllib.error.HTTPError as exc:
            if exc.code != 405:
                raise
            return self.get("/stop")

    def get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def wait_stats(self, condition: Any, timeout: float = 40.0) -> dict[str, dict[str, Any]]:
        """Poll /stats/requests (bounded) until ``condition(rows by name)`` holds."""
        deadline = time.monotonic() + timeout
        rows: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            rows = {r["name"]: r for r in self.get("/stats/requests")["stats"]}
            if condition(rows):
                return rows
            with self.changed:  # wake on new log output, or re-poll after a moment
                self.changed.wait(0.25)
        raise TimeoutError(f"stats never satisfied the condition: {rows}")

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=20)
        self.reader.join(timeout=10)
        return code, "".join(self.lines)


@contextmanager
def locust_ui(server_port: int) -> Iterator[LocustUI]:
    ui = LocustUI(server_port)
    try:
        ui.wait_for("Starting web interface at")
        ui.wait_listening()
        yield ui
    finally:
        ui.stop()


def test_web_ui_drives_a_swarm_through_its_http_api(server: ServerProcess) -> None:
    with locust_ui(server.port) as ui:
        page = urllib.request.urlopen(ui.url + "/", timeout=10).read().decode()
        assert "chat_wait_min" in page and "chat_who_weight" in page  # the options, editable in the UI
        started = ui.post("/swarm", {"user_count": "3", "spawn_rate": "3", "host": ui.host})
        assert started["success"], started
        rows = ui.wait_stats(lambda r: r.get("message", {}).get("num_requests", 0) > 5)
        assert {rows[n]["method"] for n in ("join", "message")} == {"CHAT"}
        assert rows["join"]["num_requests"] == 3 and rows["join"]["num_failures"] == 0
        assert ui.stop_swarm()["success"]
        ui.wait_for("chat check: PASS: 0 violations in")  # judged when the test stops
        # /stats/requests is cached for a moment: poll until the users' leaves show.
        ui.wait_stats(lambda r: r.get("leave", {}).get("num_requests", 0) == 3)
        code, log = ui.stop()
    assert code == 0, log[-3000:]
    assert_clean(log)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_web_ui_renders_in_a_headless_browser(server: ServerProcess, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    with locust_ui(server.port) as ui:
        assert ui.post("/swarm", {"user_count": "2", "spawn_rate": "2", "host": ui.host})["success"]
        ui.wait_stats(lambda r: r.get("message", {}).get("num_requests", 0) > 0)
        shot = tmp_path / "ui.png"
        dom = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--window-size=1280,900",
                "--virtual-time-budget=4000",
                f"--screenshot={shot}",
                "--dump-dom",
                ui.url + "/",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        ui.stop_swarm()
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", dom.stderr[-2000:]
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
    assert "CHAT" in dom.stdout and "message" in dom.stdout, dom.stdout[-2000:]


def test_the_options_and_the_package_import_no_locust() -> None:
    """Only the client, the user and the check import locust (and patch the process for gevent)."""
    code = "import sys, harness.locust, harness.locust.options; sys.exit('locust' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60).returncode == 0


def test_locustfiles_hold_only_users_and_shapes() -> None:
    names = sorted(p.name for p in Path(REPO, "locustfiles").glob("*.py"))
    assert names == ["chat.py", "chat_package.py", "churn.py", "name_race.py", "ramp.py"]
