"""A member whose machine vanishes (no FIN, no RST) is found by --keepalive, in a network namespace.

The vanished member runs in a network namespace of the test's own, joined to
the host by a veth pair; "vanishing" is setting its side of the pair down, so
that nothing it would send (ACKs, keepalive replies, a FIN) ever arrives. All
traffic stays on the pair; the namespace is deleted after each test. Needs
root and iproute2 (skipped otherwise).
"""

from __future__ import annotations

import itertools
import os
import select
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.helpers import REPO, LineClient, ServerProcess

pytestmark = pytest.mark.e2e

KEEPALIVE = 2.0
_ids = itertools.count()

GHOST = """
import socket, sys
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
f = sock.makefile("rb")
assert f.readline().startswith(b"HELLO ")
sock.sendall(b"ghost\\n")
assert f.readline().startswith(b"OK ")
print("joined", flush=True)
sys.stdin.read()  # hold the connection until the test ends
"""


@dataclass
class Netns:
    name: str
    host_if: str
    peer_if: str
    host_ip: str
    peer_ip: str

    def run(self, *args: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.name, *args], check=True, timeout=10)

    def vanish(self) -> None:
        """The peer's side of the pair goes down: from now on nothing it sends arrives."""
        self.run("ip", "link", "set", self.peer_if, "down")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, timeout=10, capture_output=True)


@pytest.fixture(name="netns")
def netns_fixture() -> Iterator[Netns]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 (ip) for a network namespace")
    n = next(_ids)
    tag = f"{os.getpid() % 100000}{n}"
    k = (os.getpid() * 7 + n) % 16384  # a /30 of 10.232.0.0/16 per test
    net = f"10.232.{k // 64}"
    low = (k % 64) * 4
    ns = Netns(f"chatns{tag}", f"cva{tag}", f"cvb{tag}", f"{net}.{low + 1}", f"{net}.{low + 2}")
    try:
        ip("netns", "add", ns.name)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace: {exc.stderr.decode().strip()}")
    try:
        ip("link", "add", ns.host_if, "type", "veth", "peer", "name", ns.peer_if)
        ip("link", "set", ns.peer_if, "netns", ns.name)
        ip("addr", "add", f"{ns.host_ip}/30", "dev", ns.host_if)
        ip("link", "set", ns.host_if, "up")
        ns.run("ip", "addr", "add", f"{ns.peer_ip}/30", "dev", ns.peer_if)
        ns.run("ip", "link", "set", ns.peer_if, "up")
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", ns.host_if], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, timeout=10)


def join_soon(host: str, port: int, name: str, within: float) -> None:
    """Join as ``name``, again after each ``ERR full``, for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    pause = threading.Event()
    while True:
        with LineClient(host, port) as client:
            first = client.read_line()
            if first.startswith("HELLO "):
                client.send(name)
                client.expect("OK ")
                return
        assert first.startswith("ERR full"), first
        assert time.monotonic() < deadline, f"{name} found the server full for {within} s"
        pause.wait(0.1)  # a retry interval, as a client would wait before trying again


def start_ghost(ns: Netns, host: str, port: int) -> subprocess.Popen[str]:
    """A member named ghost, inside the namespace; returns once it has joined."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns.name, sys.executable, "-c", GHOST, host, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 15)
    assert ready and proc.stdout.readline().strip() == "joined", proc.stderr.read() if proc.stderr else ""
    return proc


@pytest.mark.parametrize("room", ["quiet", "busy"])
def test_a_vanished_member_is_announced_within_twice_keepalive_and_its_slot_freed(
    netns: Netns, room: str
) -> None:
    server = ServerProcess(
        command=[sys.executable, "-m", "chat.server", "--host", netns.host_ip, "--port", "0"]
        + ["--max-clients", "2", "--keepalive", f"{KEEPALIVE:g}"]
    ).start()
    ghost: subprocess.Popen[str] | None = None
    stop = threading.Event()
    try:
        with LineClient(netns.host_ip, server.port) as alice:
            alice.join("alice")
            ghost = start_ghost(netns, netns.host_ip, server.port)
            alice.expect("JOIN ")  # ghost's
            netns.vanish()
            gone = time.monotonic()
            if room == "busy":  # something is always on its way to the ghost

                def chat() -> None:
                    i = 0
                    while not stop.wait(0.05):
                        alice.send(f"busy {i}")
                        i += 1

                threading.Thread(target=chat, daemon=True).start()
            lines = alice.read_until("LEAVE ", timeout=4 * KEEPALIVE)
            found = time.monotonic() - gone
            stop.set()
            assert lines[-1].endswith(" ghost disconnected"), lines[-1]
            print(f"{room} room: announced {found:.2f} s after vanishing (--keepalive {KEEPALIVE:g})")
            assert found <= 2 * KEEPALIVE + 0.5, f"found after {found:.2f} s"
            # The slot is free again: a newcomer joins a server of 2 slots (the slot is given back
            # when the ghost's reader has closed its socket, a moment after the LEAVE).
            join_soon(netns.host_ip, server.port, "carol", within=3.0)
    finally:
        stop.set()
        if ghost is not None:
            ghost.kill()
            ghost.communicate(timeout=10)
        err = server.stop()
    assert "Traceback" not in err, err


def test_without_keepalive_a_vanished_member_stays(netns: Netns) -> None:
    """The control: with --keepalive 0 the same vanished member is still a member after the bound."""
    server = ServerProcess(
        command=[sys.executable, "-m", "chat.server", "--host", netns.host_ip, "--port", "0"]
        + ["--max-clients", "2", "--keepalive", "0"]
    ).start()
    ghost: subprocess.Popen[str] | None = None
    try:
        with LineClient(netns.host_ip, server.port) as alice:
            alice.join("alice")
            ghost = start_ghost(netns, netns.host_ip, server.port)
            alice.expect("JOIN ")
            netns.vanish()
            with pytest.raises(TimeoutError):
                alice.read_line(timeout=2 * KEEPALIVE + 1)
            alice.send("/who")
            assert alice.expect("USERS ") == "USERS alice ghost"
    finally:
        if ghost is not None:
            ghost.kill()
            ghost.communicate(timeout=10)
        server.stop()
