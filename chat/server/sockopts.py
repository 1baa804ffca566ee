"""What every accepted socket is set to: no Nagle, and TCP keepalive that finds a vanished peer.

A peer whose machine vanishes (no FIN, no RST: a cable pulled, a laptop
closed, a NAT that forgot the flow) looks, to a blocking ``recv``, exactly
like a member who is quiet. Without a timer on the socket it keeps its slot
for as long as nothing is sent to it, and once something is, TCP retransmits
for about 15 minutes before giving up. ``--keepalive SECONDS`` bounds both
cases to twice SECONDS:

* **TCP keepalive** (quiet room): after ``idle`` seconds without traffic the
  kernel sends a probe every ``interval`` seconds, and after ``count``
  unanswered probes it resets the connection; the reader's ``recv`` fails
  and the member is announced ``LEAVE <seq> <name> disconnected``.
* **TCP_USER_TIMEOUT** (busy room): data sent to the peer and not
  acknowledged for this long aborts the connection, even while the kernel
  is still retransmitting.

Why TCP and not a protocol ping: the protocol has no PING line, and plain
``nc`` or telnet clients must keep working; keepalive probes are answered by
the peer's kernel, whatever program holds the socket. The figures are in
docs/protocol.md ("Vanished peers").
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Keepalive:
    """The kernel's keepalive and user-timeout settings for one ``--keepalive`` value."""

    idle: int  # seconds of silence before the first probe
    interval: int  # seconds between probes
    count: int  # unanswered probes before the connection is reset
    user_timeout_ms: int  # unacknowledged data aborts the connection after this

    @property
    def bound(self) -> float:
        """Seconds from the last sign of life to the reset, in a quiet room."""
        return self.idle + self.interval * self.count


def keepalive_for(seconds: float) -> Keepalive | None:
    """The settings that find a dead peer within ``2 * seconds`` (None: 0 turns keepalive off).

    The kernel counts in whole seconds, at least 1: half the budget is idle
    time (so a live but quiet member costs one probe per ``idle``), the rest
    is split into probes. Unacknowledged data gets 1.5 x ``seconds``, so that
    the data's wait plus the abort also stay within twice ``seconds``.
    """
    if seconds <= 0:
        return None
    budget = 2 * seconds
    idle = max(1, math.floor(seconds / 2))
    rest = budget - idle
    interval = max(1, math.floor(rest / 4))
    count = max(1, math.floor(rest / interval) - 1)
    return Keepalive(idle, interval, count, max(1, round(1.5 * seconds * 1000)))


def tune_accepted(sock: socket.socket, *, keepalive: Keepalive | None, sndbuf: int | None) -> None:
    """Set an accepted socket up: blocking, TCP_NODELAY, keepalive and user timeout, SO_SNDBUF.

    TCP_NODELAY: a chat line is small and must leave at once; with Nagle a
    line waits for the ACK of the previous one (p99 latency 40x worse).
    """
    sock.setblocking(True)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if keepalive is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, keepalive.idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, keepalive.interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, keepalive.count)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, keepalive.user_timeout_ms)
    if sndbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
