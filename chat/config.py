"""The server's settings: what the command line can change, and the fixed budgets behind them.

A leaf: no sockets, no threads, and no import of the server. The session, the
acceptor and the command line read their settings from here, so that a setting
is defined (and its value explained) once.
"""

from __future__ import annotations

from dataclasses import dataclass

from chat import protocol
from chat.delivery import Delivery

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 9999
#: As in the original design: a small room, raised with --max-clients.
DEFAULT_MAX_CLIENTS = 5
#: Lines queued for one member before it is dropped as slow (Redis' pub/sub
#: client-output-buffer-limit is the model).
DEFAULT_MAX_BACKLOG = 1000
DEFAULT_HANDSHAKE_TIMEOUT = 30.0
#: A vanished peer is found within twice this (chat.server.sockopts); 0 turns it off.
DEFAULT_KEEPALIVE = 60.0
#: The metrics endpoint has no authentication: loopback only, unless --metrics-host says otherwise.
DEFAULT_METRICS_HOST = "127.0.0.1"

#: Every thread the server starts is joined within these on shutdown: writers
#: get SHUTDOWN_FLUSH to send what is queued, then every thread SHUTDOWN_JOIN
#: to end, so that the whole shutdown stays under the 2 s the contract allows.
SHUTDOWN_FLUSH = 0.6
SHUTDOWN_JOIN = 0.5


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``python -m chat.server`` can be told, with the command line's defaults."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_clients: int = DEFAULT_MAX_CLIENTS
    delivery: Delivery = Delivery.BATCHED
    max_line: int = protocol.DEFAULT_MAX_LINE
    max_backlog: int = DEFAULT_MAX_BACKLOG
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    keepalive: float = DEFAULT_KEEPALIVE
    sndbuf: int | None = None
    """SO_SNDBUF for every accepted socket, in bytes; ``None`` keeps the OS's."""
