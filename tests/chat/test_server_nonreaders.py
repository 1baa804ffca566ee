"""Members that stop reading together are found together: the room pauses once for them, not once each.

The backpressure rule (docs/architecture.md, "Backpressure and slow consumers")
pauses a broadcasting reader for a congested recipient; the rule under test
here is that one pause judges every recipient, so twenty non-readers cost a
member that chats and reads one stall period, not twenty in turn.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.helpers import LineClient
from tests.server_kit import (  # noqa: F401  (a fixture)
    MSG_RE,
    WRITER_DELIVERIES,
    ServerFactory,
    member,
    start_server_fixture,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NON_READERS = 20
#: The bound on a reading member's echo while the non-readers are found and dropped.
ECHO_BOUND = 1.5
#: The reading member chats at a steady rate, whatever the echoes do (as a person or a bot would):
#: a pause of the room then shows as the echo time of every line sent during it.
RATE = 200
#: Long lines, so that the non-readers' sockets fill and their lines pile up in the outboxes.
PAD = "p" * 1000


class Chatter:
    """Sends line k at ``start + k / RATE``, numbered, and notes when each was sent."""

    def __init__(self, client: LineClient) -> None:
        self.client = client
        self.sent_at: dict[int, float] = {}
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        start = time.monotonic()
        k = 0
        try:
            while not self.stop.is_set():
                due = start + k / RATE
                if self.stop.wait(max(0.0, due - time.monotonic())):  # the pace, not synchronisation
                    return
                self.sent_at[k] = time.monotonic()
                self.client.send(f"{k} {PAD}")
                k += 1
        except OSError as exc:  # handed to the test by close()
            self.error = exc

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize("delivery", WRITER_DELIVERIES)
def test_twenty_non_readers_keep_a_chatting_member_s_echo_under_1_5_s(
    start_server: ServerFactory, delivery: str
) -> None:
    # A small send buffer, so that each non-reader's socket fills after a few lines.
    server = start_server("--delivery", delivery, "--max-clients", str(NON_READERS + 2), "--sndbuf", "4096")
    alice = member(server, "alice", timeout=30.0)
    lazies: list[LineClient] = []
    chatter = Chatter(alice)
    try:
        for i in range(NON_READERS):
            lazy = LineClient(server.host, server.port, rcvbuf=4096)
            lazy.join(f"lazy{i}")  # and reads nothing after its JOIN
            lazies.append(lazy)
        alice.read_until(f"JOIN {NON_READERS + 1} lazy{NON_READERS - 1}")
        chatter.thread.start()
        slow: set[str] = set()
        worst = (0.0, -1)
        deadline = time.monotonic() + 60
        while len(slow) < NON_READERS:
            assert time.monotonic() < deadline, f"only {len(slow)} of {NON_READERS} dropped as slow"
            line = alice.read_line()
            assert line, "alice was disconnected"
            if line.startswith("LEAVE "):
                _, _, name, reason = line.split(" ")
                assert name.startswith("lazy") and reason == "slow", line
                slow.add(name)
                continue
            m = MSG_RE.match(line)
            assert m is not None and m.group(2) == "alice", line
            k = int(m.group(3).split(" ")[0])
            worst = max(worst, (time.monotonic() - chatter.sent_at[k], k))
        chatter.close()
        assert worst[0] < ECHO_BOUND, f"line {worst[1]}'s echo took {worst[0]:.2f} s"
    finally:
        chatter.stop.set()
        alice.close()
        for lazy in lazies:
            lazy.close()
