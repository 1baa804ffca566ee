"""The ``--chat-*`` options and the host, pure: harness.locust.options imports no locust."""

from __future__ import annotations

import pytest

from harness.common.address import Endpoint
from harness.locust.options import DEFAULTS, ChatOptions, options_of, parse_host, problems


def test_host_parsing() -> None:
    assert parse_host("chat://127.0.0.1:4000") == ("127.0.0.1", 4000)
    assert parse_host("chat://[::1]:4000") == Endpoint("::1", 4000)
    assert parse_host("chat://localhost") == ("localhost", 9999)
    assert parse_host("localhost:5") == ("localhost", 5)
    assert parse_host(None) == ("localhost", 9999)
    for bad in ("http://example:80", "chat://", "chat://host:notaport", "chat://host:1/path"):
        with pytest.raises(ValueError, match=r"^--host must look like chat://HOST:PORT, got "):
            parse_host(bad)


def test_options_defaults_and_problems() -> None:
    assert options_of(None) == DEFAULTS
    assert problems(DEFAULTS, "chat://localhost:9999") == []

    class Parsed:
        chat_wait_min = 2.0
        chat_wait_max = 1.0
        chat_message_weight = 0
        chat_who_weight = 0
        chat_rejoin_weight = 0
        chat_no_check = True

    opts = options_of(Parsed())
    assert opts == ChatOptions(wait_min=2.0, wait_max=1.0, message_weight=0, who_weight=0, check=False)
    found = problems(opts, "ftp://x")
    assert found[0].startswith("--host must look like")
    assert any(p.startswith("--chat-wait-min and --chat-wait-max need") for p in found)
    assert any(p.startswith("task weights") for p in found)
