"""How the server configures each socket it accepts, read back with getsockopt from an in-process server.

TCP_NODELAY matters for latency and nothing else: without it Nagle's algorithm holds a small reply until
the previous one is acknowledged, and every test still passes, only slower (p99 40x on loopback). So the
option is checked where it is set, on the accepted socket itself.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest

from chat.config import ServerConfig
from chat.room import Room
from chat.server import ChatServer
from chat.session import Session

TIMEOUT = 10.0


class Recorded:
    """A session factory that notes each accepted socket's options, then builds the real session."""

    def __init__(self) -> None:
        self.options: list[dict[str, int]] = []
        self.seen = threading.Event()

    def __call__(self, room: Room, sock: socket.socket, peer: str, config: ServerConfig) -> Session:
        self.options.append(
            {
                "nodelay": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                "sndbuf": sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
            }
        )
        self.seen.set()
        return Session(room, sock, peer, config)


def accepted_options(config: ServerConfig) -> dict[str, int]:
    """The options of the first socket a server with ``config`` accepts."""
    recorded = Recorded()
    server = ChatServer(replace(config, host="127.0.0.1", port=0), session_factory=recorded)
    _, port = server.bind()
    loop = threading.Thread(target=server.serve_forever, name="accept-loop")
    loop.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
            assert recorded.seen.wait(TIMEOUT), "the server accepted nothing"
    finally:
        server.shutdown()
        loop.join(TIMEOUT)
    assert not loop.is_alive()
    return recorded.options[0]


@pytest.fixture(params=["direct", "queued", "batched"])
def config(request: pytest.FixtureRequest) -> Iterator[ServerConfig]:
    from chat.config import Delivery

    yield ServerConfig(delivery=Delivery(request.param))


def test_accepted_sockets_have_tcp_nodelay(config: ServerConfig) -> None:
    assert accepted_options(config)["nodelay"] != 0


def test_sndbuf_is_set_when_asked() -> None:
    # Linux doubles the value it is given (its bookkeeping overhead); other systems keep it.
    assert accepted_options(ServerConfig(sndbuf=16384))["sndbuf"] in (16384, 32768)
