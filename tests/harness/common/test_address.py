"""HOST:PORT parsing: one parser for every command line that names a server."""

from __future__ import annotations

import argparse

import pytest

from harness.common.address import (
    Endpoint,
    Target,
    endpoint_arg,
    format_endpoint,
    parse_endpoint,
    parse_target,
    target_arg,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost:9999", Endpoint("localhost", 9999)),
        ("127.0.0.1:1", Endpoint("127.0.0.1", 1)),
        ("[::1]:9999", Endpoint("::1", 9999)),
        (" 127.0.0.1:80 ", Endpoint("127.0.0.1", 80)),
        ("chat://localhost:9999", Endpoint("localhost", 9999)),
        ("chat://[::1]:5/", Endpoint("::1", 5)),
    ],
)
def test_parses(text: str, expected: Endpoint) -> None:
    assert parse_endpoint(text, schemes=("chat",)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("localhost", r"^expected HOST:PORT, got 'localhost' \(no port\)$"),
        ("localhost:x", r"^not a port number in 'localhost:x'$"),
        ("localhost:70000", r"^port must be 1-65535 in 'localhost:70000'$"),
        ("localhost:0", r"^port must be 1-65535 in 'localhost:0'$"),
        ("::1:9999", r"^an IPv6 address goes in brackets, as in \[::1\]:9999; got '::1:9999'$"),
        ("http://h:1", r"^expected HOST:PORT \(no scheme\), got 'http://h:1'$"),
        ("h:1/path", r"^expected HOST:PORT, got 'h:1/path'$"),
        (":9999", r"^expected HOST:PORT, got ':9999'$"),
    ],
)
def test_refuses_with_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_endpoint(text)


def test_default_port_and_lowest_port() -> None:
    assert parse_endpoint("chat://h", schemes=("chat",), default_port=9999) == Endpoint("h", 9999)
    assert parse_endpoint("h:0", lowest_port=0) == Endpoint("h", 0)


def test_format_round_trips_ipv6() -> None:
    assert format_endpoint("::1", 80) == "[::1]:80"
    assert str(Endpoint("localhost", 9)) == "localhost:9"
    assert parse_endpoint(str(Endpoint("::1", 80))) == Endpoint("::1", 80)


def test_argparse_converter() -> None:
    assert endpoint_arg("h:1") == ("h", 1)
    with pytest.raises(argparse.ArgumentTypeError, match=r"^not a port number in 'h:x'$"):
        endpoint_arg("h:x")


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("127.0.0.1:5", Target(Endpoint("127.0.0.1", 5))),
        ("irc://h:6667", Target(Endpoint("h", 6667), "irc", "#chat")),
        ("irc://h:1/", Target(Endpoint("h", 1), "irc", "#chat")),
        ("irc://h:1/chat", Target(Endpoint("h", 1), "irc", "#chat")),
        ("irc://h:1/#chat", Target(Endpoint("h", 1), "irc", "#chat")),
        ("irc://h:1/%23chat", Target(Endpoint("h", 1), "irc", "#chat")),
        ("irc://h:1/&local", Target(Endpoint("h", 1), "irc", "&local")),
        ("irc://h", Target(Endpoint("h", 6667), "irc", "#chat")),
        ("IRC://[::1]:7/x", Target(Endpoint("::1", 7), "irc", "#x")),
    ],
)
def test_parse_target(text: str, target: Target) -> None:
    assert parse_target(text) == target


def test_target_text_round_trips() -> None:
    assert str(parse_target("irc://[::1]:7/%23x")) == "irc://[::1]:7/#x"
    assert str(parse_target("h:9")) == "h:9"
    assert parse_target(str(parse_target("irc://h:1/chat"))) == parse_target("irc://h:1/chat")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("irc://h:1/a b", r"^not a channel name: 'a b' in 'irc://h:1/a b'$"),
        ("irc://h:x/chat", r"^not a port number in 'h:x'$"),
        ("ftp://h:1", r"^expected HOST:PORT \(no scheme\), got 'ftp://h:1'$"),
    ],
)
def test_target_arg_refuses_with_one_line(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        target_arg(text)
