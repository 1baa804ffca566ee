"""Peer servers: each started from its generated configuration, driven briefly, stopped by its PID.

A peer that is not installed is skipped with the package to install; the
launcher's own failure paths (a missing binary, a taken port, an unknown name)
run everywhere.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Iterator

import psutil
import pytest

from harness.common import peers
from harness.common.launcher import ServerStartError, free_port
from harness.common.peers import PEERS, PeerNotInstalled, PeerServer, PeerSpec, missing_reason, start_peer

pytestmark = pytest.mark.e2e

TIMEOUT = 5.0


def _peer(name: str) -> Iterator[PeerServer]:
    reason = missing_reason(name)
    if reason is not None:
        pytest.skip(f"{name}: {reason}")
    with start_peer(name) as server:
        yield server


@pytest.fixture(params=["ngircd", "inspircd"])
def irc_peer(request: pytest.FixtureRequest) -> Iterator[PeerServer]:
    yield from _peer(request.param)


@pytest.fixture
def redis_peer() -> Iterator[PeerServer]:
    yield from _peer("redis")


class LineClient:
    """A blocking client that reads up to a pattern: enough to drive a peer for a few lines."""

    def __init__(self, server: PeerServer) -> None:
        self.sock = socket.create_connection(server.endpoint, timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_until(self, needle: bytes, timeout: float = TIMEOUT) -> bytes:
        """Everything received up to and including the first line holding ``needle``."""
        deadline = time.monotonic() + timeout
        while True:
            at = self.buf.find(needle)
            if at >= 0:
                end = self.buf.find(b"\n", at)
                if end >= 0:
                    head, self.buf = self.buf[: end + 1], self.buf[end + 1 :]
                    return head
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {needle!r} within {timeout} s; got {self.buf[-300:]!r}")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"closed before {needle!r}; got {self.buf[-300:]!r}")
            self.buf += chunk

    def close(self) -> None:
        self.sock.close()


def _irc_member(server: PeerServer, nick: str) -> LineClient:
    client = LineClient(server)
    client.send(f"NICK {nick}\r\nUSER bot 0 * :{nick}\r\n".encode())
    # InspIRCd registers on its once-a-second timer.
    client.read_until(f" 001 {nick} ".encode(), timeout=server.spec.registration_s + TIMEOUT)
    client.send(b"JOIN #chat\r\n")
    client.read_until(f" 366 {nick} #chat ".encode())
    return client


def _assert_stopped_by_pid(server: PeerServer) -> None:
    pid = server.pid
    assert server.stop() in server.spec.clean_exit_codes
    assert server.stopped_cleanly
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not server.tmpdir.exists()
    assert server.stop() == server.returncode  # idempotent


def test_irc_peer_relays_privmsg_without_echo_and_stops_by_pid(irc_peer: PeerServer) -> None:
    assert irc_peer.endpoint.host == "127.0.0.1" and irc_peer.is_running
    alice, bob = _irc_member(irc_peer, "alice"), _irc_member(irc_peer, "bob")
    alice.send(b"PRIVMSG #chat :hello there\r\nPING :mark\r\n")
    line = bob.read_until(b" PRIVMSG #chat ")
    assert line.split(b"\r\n")[-2].startswith(b":alice!") and line.endswith(
        b" PRIVMSG #chat :hello there\r\n"
    )
    # The sender gets no echo of its own line: what precedes the answer to its PING holds no PRIVMSG.
    assert b"PRIVMSG" not in alice.read_until(b"PONG ")
    alice.close()
    bob.close()
    _assert_stopped_by_pid(irc_peer)
    # The log outlives the temp dir. ngircd logs the connections; InspIRCd its CONNECT lines in ircd.log.
    assert "127.0.0.1" in irc_peer.log()


def test_redis_peer_publishes_in_resp_and_stops_by_pid(redis_peer: PeerServer) -> None:
    sub, pub = LineClient(redis_peer), LineClient(redis_peer)
    sub.send(b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nchat\r\n")
    sub.read_until(b":1")
    pub.send(b"*3\r\n$7\r\nPUBLISH\r\n$4\r\nchat\r\n$5\r\nhello\r\n")
    assert pub.read_until(b":") == b":1\r\n"  # one receiver
    assert sub.read_until(b"hello") == b"*3\r\n$7\r\nmessage\r\n$4\r\nchat\r\n$5\r\nhello\r\n"
    sub.close()
    pub.close()
    _assert_stopped_by_pid(redis_peer)
    assert "Ready to accept connections" in redis_peer.log()


@pytest.mark.parametrize("name", list(PEERS))
def test_a_missing_binary_is_reported_with_its_package(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = PEERS[name]
    monkeypatch.setitem(PEERS, name, PeerSpec(**{**spec.__dict__, "binary": "/nonexistent/" + name}))
    reason = f"not installed (apt-get install {spec.package})"
    assert missing_reason(name) == reason
    assert peers.peer_version(name) is None
    with pytest.raises(PeerNotInstalled, match=rf"^{reason.replace('(', '[(]').replace(')', '[)]')}$"):
        start_peer(name)


def test_an_unknown_peer_is_a_value_error_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"^unknown peer 'irc'; choose from ngircd, inspircd, redis$"):
        missing_reason("irc")


@pytest.mark.parametrize("name", list(PEERS))
def test_a_taken_port_is_retried_on_another(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holds the first port: the peer exits (ngircd, Redis) or runs without a listener
    (InspIRCd); either way the start is retried once on a fresh port."""
    if missing_reason(name) is not None:
        pytest.skip(f"{name}: {missing_reason(name)}")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        monkeypatch.setattr(peers, "free_port", lambda host: next(ports, None) or free_port(host))
        with start_peer(name) as server:
            assert server.endpoint.port != taken
            assert peers._listens_on(server.pid, server.endpoint.port)


def test_two_taken_ports_fail_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    if missing_reason("redis") is not None:
        pytest.skip(f"redis: {missing_reason('redis')}")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        monkeypatch.setattr(peers, "free_port", lambda host: taken)
        before = set(os.listdir(tempfile.gettempdir()))
        # Readiness reaches the squatter first, or Redis exits first and says why.
        # (Redis says "Address already in use", or only "Failed listening on port N".)
        why = (
            rf"(port {taken} was taken by another process"
            rf"|did not start .*(Address already in use|Failed listening on port {taken}))"
        )
        with pytest.raises(ServerStartError, match=why):
            start_peer("redis")
        left = {d for d in set(os.listdir(tempfile.gettempdir())) - before if d.startswith("peer-redis-")}
        assert not left  # no temp dir is left behind
