"""Accepted sockets: TCP_NODELAY, and keepalive settings that find a vanished peer within 2x --keepalive."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat.config import ServerConfig
from chat.server.acceptor import ChatServer
from chat.server.sockopts import Keepalive, keepalive_for, tune_accepted
from tests.helpers import LineClient


@given(st.floats(min_value=1, max_value=32767, allow_nan=False))
def test_keepalive_finds_a_dead_peer_within_twice_the_setting(seconds: float) -> None:
    ka = keepalive_for(seconds)
    assert ka is not None
    assert ka.idle >= 1 and ka.interval >= 1 and ka.count >= 1
    assert ka.bound <= 2 * seconds  # quiet room: the probes give up in time
    assert ka.user_timeout_ms <= 2 * seconds * 1000  # busy room: unacknowledged data gives up in time
    assert ka.idle <= 32767


def test_keepalive_zero_is_off() -> None:
    assert keepalive_for(0) is None


def test_the_default_minute() -> None:
    assert keepalive_for(60) == Keepalive(idle=30, interval=22, count=3, user_timeout_ms=90_000)


@pytest.fixture(name="accepted")
def accepted_fixture() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        sock, _ = listener.accept()
        try:
            yield sock
        finally:
            sock.close()
            client.close()


def options(sock: socket.socket) -> dict[str, int]:
    tcp = socket.IPPROTO_TCP
    return {
        "nodelay": sock.getsockopt(tcp, socket.TCP_NODELAY),
        "keepalive": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        "idle": sock.getsockopt(tcp, socket.TCP_KEEPIDLE),
        "interval": sock.getsockopt(tcp, socket.TCP_KEEPINTVL),
        "count": sock.getsockopt(tcp, socket.TCP_KEEPCNT),
        "user_timeout": sock.getsockopt(tcp, socket.TCP_USER_TIMEOUT),
    }


def test_tune_accepted_sets_every_option(accepted: socket.socket) -> None:
    tune_accepted(accepted, keepalive=Keepalive(7, 3, 5, 12_000), sndbuf=None)
    assert options(accepted) == {
        "nodelay": 1,
        "keepalive": 1,
        "idle": 7,
        "interval": 3,
        "count": 5,
        "user_timeout": 12_000,
    }


def test_tune_accepted_without_keepalive_leaves_it_off(accepted: socket.socket) -> None:
    tune_accepted(accepted, keepalive=None, sndbuf=None)
    found = options(accepted)
    assert found["nodelay"] == 1
    assert found["keepalive"] == 0
    assert found["user_timeout"] == 0


@pytest.mark.parametrize("keepalive", [0.0, 5.0])
def test_the_server_tunes_every_socket_it_accepts(keepalive: float) -> None:
    """In process, so the test can read the options of the server's own end of the connection."""
    server = ChatServer(ServerConfig(host="127.0.0.1", port=0, keepalive=keepalive))
    host, port = server.bind()
    loop = threading.Thread(target=server.serve_forever)
    loop.start()
    try:
        with LineClient(host, port) as client:
            client.expect("HELLO ")
            (conn,) = list(server.room.connections)  # HELLO was sent: the session exists
            found = options(conn.outbox.sock)
    finally:
        server.shutdown()
        loop.join(timeout=10)
    assert not loop.is_alive()
    assert found["nodelay"] == 1  # Nagle off: p99 latency is 40x worse with it
    expected = keepalive_for(keepalive)
    if expected is None:
        assert found["keepalive"] == 0
    else:
        assert found["keepalive"] == 1
        assert (found["idle"], found["interval"], found["count"]) == (
            expected.idle,
            expected.interval,
            expected.count,
        )
        assert found["user_timeout"] == expected.user_timeout_ms
