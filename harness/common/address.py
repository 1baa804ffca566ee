"""HOST:PORT: the one parser and formatter of server addresses in the harness.

Pure functions, no sockets. Every command line that names a server (``--target``,
locust's ``--host chat://HOST:PORT``, the ready line ``listening on HOST:PORT``)
parses it here, so that IPv6 brackets (``[::1]:9999``) mean the same everywhere.
"""

from __future__ import annotations

import argparse
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from harness.common.irc import IrcError, normalise_channel

#: The scheme of a chat server's address where a URL is expected (locust's ``--host``).
CHAT_SCHEME = "chat"
#: The scheme of an IRC server's address (``--target irc://HOST:PORT/CHANNEL``), its default port and channel.
IRC_SCHEME = "irc"
IRC_DEFAULT_PORT = 6667
IRC_DEFAULT_CHANNEL = "#chat"


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


class Target(NamedTuple):
    """A server to aim at: its address, its protocol (``chat`` or ``irc``) and, for IRC, the channel."""

    endpoint: Endpoint
    protocol: str = CHAT_SCHEME
    channel: str = ""

    def __str__(self) -> str:
        if self.protocol == IRC_SCHEME:
            return f"{IRC_SCHEME}://{self.endpoint}/{self.channel}"
        return str(self.endpoint)


def parse_target(text: str) -> Target:
    """``HOST:PORT`` (our protocol) or ``irc://HOST[:PORT][/CHANNEL]``.

    The channel may be written with or without its ``#`` (``/chat`` and
    ``/%23chat`` both mean ``#chat``); without one it is ``#chat``. The IRC
    port defaults to 6667. Raises :class:`ValueError` with a message fit for a user.
    """
    raw = text.strip()
    if not raw.lower().startswith(f"{IRC_SCHEME}://"):
        return Target(parse_endpoint(raw))
    rest = raw[len(IRC_SCHEME) + 3 :]
    netloc, slash, path = rest.partition("/")
    endpoint = parse_endpoint(netloc, default_port=IRC_DEFAULT_PORT)
    channel_text = unquote(path) if slash and path else IRC_DEFAULT_CHANNEL
    try:
        channel = normalise_channel(channel_text)
    except IrcError as exc:
        raise ValueError(f"{exc} in {text!r}") from None
    return Target(endpoint, IRC_SCHEME, channel)


def target_arg(text: str) -> Target:
    """``type=`` converter for argparse (:func:`parse_target`): one clear line on a bad address."""
    try:
        return parse_target(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
