"""The metrics poller against our server, and the dashboard's lock table of what it scraped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.common.metrics_scrape import MetricsPoller
from harness.swarm.dashboard import lock_table
from tests.harness.swarm.test_dashboard import render
from tests.helpers import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def metrics_server() -> Iterator[str]:
    srv = ServerProcess("--metrics-port", "0").start()
    assert srv.metrics_url, "no metrics URL"  # the launcher reads `metrics on URL` from the server's log
    yield srv.metrics_url
    srv.stop()


def test_poller_scrapes_our_server(metrics_server: str) -> None:
    poller = MetricsPoller(metrics_server, interval=0.2).start()
    poller.stop()  # joins the thread after one last scrape
    view = poller.view()
    assert view is not None
    assert any(lk.section == "registry" for lk in view.locks)
    assert "chat_members" in view.gauges
    assert poller.series() and "t" in poller.series()[0]
    assert "Lock" in render(lock_table(view))
