"""The load generator against a real server, without the CLI."""

from __future__ import annotations

import pytest

from harness.bench.loadgen import LoadError, LoadSpec, run_load
from harness.bench.loadgen.wire import Protocol
from harness.common.peers import missing_reason, start_peer
from tests.helpers import running_server

pytestmark = pytest.mark.e2e


def test_run_load_counts_every_delivery_in_process() -> None:
    """Totals add up, nothing is lost."""
    with running_server("--max-clients", "10") as server:
        spec = LoadSpec("127.0.0.1", server.port, members=4, publishers=2, procs=1, warmup=0.1, seconds=0.3)
        result = run_load(spec, server_pid=server.pid)
    assert result.is_clean, result.witnesses
    assert result.sent > 0
    assert result.received == result.expected == result.sent * 4
    assert result.deliveries > 0 and result.window_s > 0
    assert result.cpu.server is not None
    assert result.sampled > 0 and result.connect_s >= 0


def test_a_parse_run_records_a_latency_per_delivery() -> None:
    with running_server("--max-clients", "10") as server:
        spec = LoadSpec(
            "127.0.0.1",
            server.port,
            members=3,
            publishers=1,
            procs=1,
            kind="rate",
            rate=100.0,
            parse=True,
            warmup=0.1,
            seconds=0.3,
        )
        result = run_load(spec, server_pid=server.pid)
    assert result.is_clean, result.witnesses
    # Every member but the publisher (which only counts) records one latency per line it received.
    assert result.latencies is not None and len(result.latencies) == result.sent * (3 - 1)
    assert all(lat > -0.001 for lat in result.latencies)


def test_a_full_server_is_a_load_error() -> None:
    with running_server("--max-clients", "2") as server:
        spec = LoadSpec("127.0.0.1", server.port, members=4, publishers=1, procs=1, connect_timeout=10.0)
        with pytest.raises(LoadError, match=r"refused: ERR full"):
            run_load(spec, server_pid=server.pid)


@pytest.mark.parametrize(
    ("peer", "protocol", "echo"),
    [("ngircd", "irc", False), ("inspircd", "irc", False), ("redis", "resp", True)],
)
@pytest.mark.parametrize("kind", ["saturate", "rate"])
def test_run_load_drives_a_real_peer_in_its_protocol(
    peer: str, protocol: Protocol, echo: bool, kind: str
) -> None:
    """IRC: a sender gets no echo, so a message reaches members - 1; Redis: every subscriber, the sender too.
    Loss and per-sender order are counted as for our server."""
    reason = missing_reason(peer)
    if reason is not None:
        pytest.skip(f"{peer}: {reason}")
    with start_peer(peer) as server:
        spec = LoadSpec(
            server.endpoint.host,
            server.endpoint.port,
            members=4,
            publishers=2,
            procs=1,
            protocol=protocol,
            kind="saturate" if kind == "saturate" else "rate",
            rate=200.0,
            parse=kind == "rate",
            warmup=0.1,
            seconds=0.3,
        )
        result = run_load(spec, server_pid=server.pid)
    assert result.is_clean, result.witnesses
    assert result.sent > 0
    assert result.received == result.expected == result.sent * (4 if echo else 3)
    assert result.sampled > 0 and result.cpu.server is not None
    if kind == "rate":
        # The parsing receivers (not the publishers) record one latency per line they got.
        assert result.latencies is not None and len(result.latencies) == result.sent * 2
