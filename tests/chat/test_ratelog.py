"""chat.ratelog: a condition a client can trigger is logged at most once per interval, with a count."""

from __future__ import annotations

import logging
import threading

import pytest

from chat.ratelog import RateLimitedLog


def test_first_line_at_once_then_counted_then_summarised(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.ratelog")
    limited = RateLimitedLog(logger, logging.WARNING, interval=3600)
    with caplog.at_level(logging.WARNING, logger="test.ratelog"):
        assert limited.log("accept failed: %s", "EMFILE")
        for _ in range(1000):
            assert not limited.log("accept failed: %s", "EMFILE")
        assert [r.getMessage() for r in caplog.records] == ["accept failed: EMFILE"]
        limited.interval = 0  # the interval has passed
        assert limited.log("accept failed: %s", "EMFILE")
    assert caplog.records[-1].getMessage() == "accept failed: EMFILE (1000 more in the last 0 s)"


def test_nothing_is_counted_below_the_logger_level(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.ratelog.quiet")
    limited = RateLimitedLog(logger, logging.INFO, interval=0)
    with caplog.at_level(logging.WARNING, logger="test.ratelog.quiet"):
        assert not limited.log("closing %s", "x")
    assert not caplog.records


def test_many_threads_get_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.ratelog.threads")
    limited = RateLimitedLog(logger, logging.WARNING, interval=3600)
    start = threading.Barrier(8)

    def hammer() -> None:
        start.wait(timeout=10)
        for _ in range(500):
            limited.log("full")

    with caplog.at_level(logging.WARNING, logger="test.ratelog.threads"):
        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
    assert len(caplog.records) == 1
    limited.interval = 0
    with caplog.at_level(logging.WARNING, logger="test.ratelog.threads"):
        limited.log("full")
    assert caplog.records[-1].getMessage() == "full (3999 more in the last 0 s)"
