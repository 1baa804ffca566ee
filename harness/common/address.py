"""HOST:PORT: the one parser and formatter of server addresses in the harness.

Pure functions, no sockets. Every command line that names a server (``--target``,
locust's ``--host chat://HOST:PORT``, the ready line ``listening on HOST:PORT``)
parses it here, so that IPv6 brackets (``[::1]:9999``) mean the same everywhere.
"""

from __future__ import annotations

import argparse
from typing import NamedTuple
from urllib.parse import urlsplit

#: The scheme of a chat server's address where a URL is expected (locust's ``--host``).
CHAT_SCHEME = "chat"


class Endpoint(NamedTuple):
    """A TCP server address. ``host`` never carries brackets; :func:`format_endpoint` adds them."""

    host: str
    port: int

    def __str__(self) -> str:
        return format_endpoint(self.host, self.port)


def format_endpoint(host: str, port: int) -> str:
    """``host:port``, with an IPv6 literal in brackets (``[::1]:9999``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_endpoint(
    text: str, *, schemes: tuple[str, ...] = (), default_port: int | None = None, lowest_port: int = 1
) -> Endpoint:
    """Parse ``HOST:PORT`` (``[::1]:PORT`` for IPv6), or ``SCHEME://HOST:PORT`` for a scheme in ``schemes``.

    Raises :class:`ValueError` with a message fit for a user. Without a port,
    ``default_port`` is used when given. A path after a URL is refused here:
    callers that take one (a channel, say) split it off first.
    """
    raw = text.strip()
    if "://" in raw:
        scheme = raw.split("://", 1)[0]
        if scheme not in schemes:
            allowed = " or ".join(f"{s}://" for s in schemes) or "no scheme"
            raise ValueError(f"expected HOST:PORT ({allowed}), got {text!r}")
        url = raw
    else:
        url = "//" + raw
    netloc = url.split("://", 1)[-1].lstrip("/").split("/", 1)[0]
    if netloc.count(":") > 1 and not netloc.startswith("["):
        raise ValueError(f"an IPv6 address goes in brackets, as in [::1]:9999; got {text!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        tail = raw.rpartition(":")[2]
        if tail.isdigit():
            raise ValueError(f"port must be {lowest_port}-65535 in {text!r}") from None
        raise ValueError(f"not a port number in {text!r}") from None
    host = parts.hostname
    if not host or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if port is None:
        if default_port is None:
            raise ValueError(f"expected HOST:PORT, got {text!r} (no port)")
        port = default_port
    if not lowest_port <= port <= 65535:
        raise ValueError(f"port must be {lowest_port}-65535 in {text!r}")
    return Endpoint(host, port)


def endpoint_arg(text: str) -> Endpoint:
    """``type=`` converter for argparse: one clear line on a bad address."""
    try:
        return parse_endpoint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
