"""The server's settings and their defaults: plain data, no sockets, no threads.

A leaf beside :mod:`chat.protocol`: the server, its sessions, its command line
and the bug catalogue (which may change a setting, e.g. ``send-under-lock``
forces the ``direct`` design) all read one :class:`ServerConfig`.
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


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``python -m chat.server`` can be told on its command line, but the tools around it."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_clients: int = DEFAULT_MAX_CLIENTS
    delivery: Delivery = Delivery.BATCHED
    max_line: int = protocol.DEFAULT_MAX_LINE
    max_backlog: int = DEFAULT_MAX_BACKLOG
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    sndbuf: int | None = None
