"""``--metrics-port`` end to end: the endpoint after real traffic, and its errors."""

from __future__ import annotations

import re
import socket
import urllib.request

import pytest

from tests.chat.kit import samples, value
from tests.helpers import ServerProcess, run_module

pytestmark = pytest.mark.e2e

TIMEOUT = 10.0
METRICS_LINE = re.compile(r"^metrics on (http://\S+/metrics)$")


def read_metrics_url(srv: ServerProcess) -> str:
    """The server prints ``metrics on URL`` on stderr before its ready line: its log's first line."""
    line = srv.log().splitlines()[0]
    m = METRICS_LINE.match(line)
    assert m, line
    assert srv.metrics_url == m.group(1)
    return m.group(1)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
        assert resp.status == 200
        body: bytes = resp.read()
        return body.decode()


def test_metrics_endpoint_after_traffic() -> None:
    srv = ServerProcess("--max-clients", "10", "--metrics-port", "0").start()
    try:
        url = read_metrics_url(srv)
        assert url.startswith("http://127.0.0.1:")
        with srv.connect() as a, srv.connect() as b:
            a.join("alice")
            b.join("bob")
            a.read_until("JOIN ")  # bob's JOIN
            for i in range(20):
                a.send(f"hello {i}")
            b.read_until("MSG ")
            for _ in range(19):
                b.expect("MSG ")
            b.send("/who")
            b.expect("USERS alice bob")
            found = samples(scrape(url))
        assert value(found, "chat_members") == 2
        assert value(found, "chat_joins_total") == 2
        assert value(found, "chat_broadcasts_total") >= 22
        assert value(found, "chat_deliveries_total") >= 41
        assert value(found, "chat_lock_acquisitions_total", section="registry") > 0
        assert value(found, "chat_lock_site_acquisitions_total", section="registry", site="say") >= 1
        assert value(found, "chat_lock_site_acquisitions_total", section="registry", site="who") == 1
        assert value(found, "chat_lock_hold_seconds_count", section="registry") > 0
        assert "chat_lock_wait_seconds_bucket" in found
        assert value(found, "chat_threads") >= 3
        assert "process_cpu_seconds_total" in found
    finally:
        err = srv.stop()
    assert "Traceback" not in err, err


def test_metrics_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = run_module(
            "chat.server", ["--host", "127.0.0.1", "--port", "0", "--metrics-port", str(port)], timeout=30
        )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chat.server: cannot serve metrics on"), res.stderr
    assert "Traceback" not in res.stderr


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """The TCP addresses process ``pid`` listens on (psutil)."""
    import psutil

    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


def test_metrics_stay_on_loopback_when_chat_listens_everywhere() -> None:
    srv = ServerProcess("--host", "0.0.0.0", "--metrics-port", "0").start()
    try:
        url = read_metrics_url(srv)
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        assert url == f"http://127.0.0.1:{port}/metrics"
        assert listening_addresses(srv.pid) == {("0.0.0.0", srv.port), ("127.0.0.1", port)}
        assert "chat_members 0.0" in scrape(url)
    finally:
        err = srv.stop()
    assert "Traceback" not in err, err


def test_metrics_host_chooses_the_metrics_address() -> None:
    srv = ServerProcess("--host", "127.0.0.1", "--metrics-port", "0", "--metrics-host", "localhost").start()
    try:
        url = read_metrics_url(srv)
        assert url.startswith("http://localhost:")
        assert "chat_members" in scrape(url)
    finally:
        srv.stop()


def test_idle_metrics_connections_neither_block_scrapes_nor_stay_forever() -> None:
    """Connections that never send a request: a scrape still answers, and each is closed after its timeout."""
    from chat.metrics import MAX_SCRAPES, REQUEST_TIMEOUT

    srv = ServerProcess("--metrics-port", "0").start()
    idle: list[socket.socket] = []
    try:
        url = read_metrics_url(srv)
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        for _ in range(MAX_SCRAPES * 4):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT))
        # Past the bound, connections are closed at once and take no thread.
        threads = srv.thread_count()
        assert threads <= 2 + MAX_SCRAPES + 2, threads  # main, accept, metrics, scrapes
        # Each idle one is closed by the server within its request timeout (EOF on our side).
        for s in idle:
            s.settimeout(REQUEST_TIMEOUT + TIMEOUT)
            assert s.recv(1) == b""
        assert "chat_members" in scrape(url)
    finally:
        for s in idle:
            s.close()
        err = srv.stop()
    assert "Traceback" not in err, err
