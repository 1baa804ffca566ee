"""Reading a server's /metrics: the Prometheus page and the view of it (the poller: tests/harness/swarm)."""

from __future__ import annotations

import pytest

from harness.common.metrics_scrape import (
    Histogram,
    MetricsUnavailable,
    make_view,
    parse_metrics,
    scrape,
    view_from_dict,
    view_to_dict,
)

# -- metrics parsing -------------------------------------------------------------------------------

PAGE = """\
# HELP chat_members Members
# TYPE chat_members gauge
chat_members 3.0
# TYPE chat_deliveries_total counter
chat_deliveries_total 1000.0
# TYPE chat_lock_acquisitions_total counter
chat_lock_acquisitions_total{section="registry"} 200.0
# TYPE chat_lock_contended_total counter
chat_lock_contended_total{section="registry"} 50.0
# TYPE chat_lock_wait_seconds histogram
chat_lock_wait_seconds_bucket{le="0.001",section="registry"} 10.0
chat_lock_wait_seconds_bucket{le="0.01",section="registry"} 40.0
chat_lock_wait_seconds_bucket{le="+Inf",section="registry"} 50.0
chat_lock_wait_seconds_count{section="registry"} 50.0
chat_lock_wait_seconds_sum{section="registry"} 0.2
# TYPE chat_lock_site_acquisitions_total counter
chat_lock_site_acquisitions_total{section="registry",site="say"} 150.0
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 1.5
"""


def test_parse_metrics_reads_locks_sites_and_gauges() -> None:
    snap = parse_metrics(PAGE, t=10.0)
    assert snap.gauges == {"chat_members": 3.0, "chat_deliveries_total": 1000.0}
    registry = next(lk for lk in snap.locks if lk.site == "")
    assert (registry.acquisitions, registry.contended) == (200.0, 50.0)
    assert registry.wait is not None and registry.wait.count == 50.0
    say = next(lk for lk in snap.locks if lk.site == "say")
    assert say.acquisitions == 150.0 and say.wait is None
    assert not any(k.startswith("process_") for k in snap.samples)


def test_histogram_quantile_interpolates_inside_a_bucket() -> None:
    h = Histogram(((0.001, 10.0), (0.01, 40.0), (float("inf"), 50.0)), 50.0, 0.2)
    assert h.quantile(0.2) == pytest.approx(0.001)
    assert h.quantile(0.5) == pytest.approx(0.001 + 0.009 * (25 - 10) / 30)
    assert h.quantile(0.99) == pytest.approx(0.01)  # in +Inf: the last finite edge
    assert Histogram((), 0.0, 0.0).quantile(0.5) is None


def test_view_uses_the_first_scrape_as_baseline_and_the_last_two_for_rates() -> None:
    first = parse_metrics(PAGE, t=10.0)
    later = parse_metrics(PAGE.replace("200.0", "300.0").replace("1000.0", "3000.0"), t=12.0)
    view = make_view("u", first, first, later)
    registry = next(lk for lk in view.locks if lk.site == "")
    assert registry.acquisitions == 100.0
    assert registry.rate == pytest.approx(50.0)
    assert view.deliveries_rate == pytest.approx(1000.0)
    assert view_from_dict(view_to_dict(view)).locks[0].acquisitions == 100.0


def test_a_summary_keeps_the_runs_average_rate() -> None:
    """The final lock table's "per s": the run's average, since the last interval's rate is not kept."""
    first = parse_metrics(PAGE, t=10.0)
    middle = parse_metrics(PAGE.replace("200.0", "220.0"), t=14.0)
    later = parse_metrics(PAGE.replace("200.0", "300.0"), t=20.0)
    view = make_view("u", first, middle, later)
    registry = next(lk for lk in view.locks if lk.site == "")
    assert registry.run_rate == pytest.approx(10.0)  # 100 acquisitions over 10 s
    assert registry.rate == pytest.approx(80 / 6)  # the last interval only
    back = next(lk for lk in view_from_dict(view_to_dict(view)).locks if lk.site == "")
    assert back.rate == pytest.approx(10.0)
    assert make_view("u", first, None, first).locks[0].run_rate == 0.0  # one scrape: no rate yet


def test_page_that_is_not_prometheus_is_refused() -> None:
    with pytest.raises(MetricsUnavailable):
        parse_metrics("chat_members{ 3\n")


def test_unreachable_metrics_are_unavailable() -> None:
    with pytest.raises(MetricsUnavailable, match=r"^cannot read http://127\.0\.0\.1:1/metrics: "):
        scrape("http://127.0.0.1:1/metrics", timeout=2.0)
