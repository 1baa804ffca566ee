"""The server's command line in-process: the parser's defaults and conversions, the settings it builds.

Running ``python -m chat.server`` (usage errors, the ready line, ``--help``) is
tested end to end in ``test_server.py``.
"""

from __future__ import annotations

import pytest

from chat import config
from chat.config import ServerConfig
from chat.delivery import Delivery
from chat.server.cli import build_parser, config_from_args


def test_fractional_handshake_timeout_is_accepted_and_30s_is_the_default() -> None:
    assert build_parser().parse_args([]).handshake_timeout == 30.0
    assert build_parser().parse_args(["--handshake-timeout", "0.25"]).handshake_timeout == 0.25


def test_the_defaults_are_the_configs() -> None:
    assert config_from_args(build_parser().parse_args([])) == ServerConfig()
    assert (ServerConfig().host, ServerConfig().port) == (config.DEFAULT_HOST, config.DEFAULT_PORT)


def test_every_option_reaches_the_config() -> None:
    args = build_parser().parse_args(
        ["--host", "127.0.0.1", "--port", "0", "--max-clients", "7", "--delivery", "queued"]
        + ["--max-line", "100", "--max-backlog", "50", "--handshake-timeout", "2", "--sndbuf", "8192"]
    )
    assert config_from_args(args) == ServerConfig(
        host="127.0.0.1",
        port=0,
        max_clients=7,
        delivery=Delivery.QUEUED,
        max_line=100,
        max_backlog=50,
        handshake_timeout=2.0,
        sndbuf=8192,
    )


@pytest.mark.parametrize(("text", "window"), [("0", 0.0), ("0.02", 0.02), ("1", 1.0)])
def test_race_window_takes_0_to_1_second(text: str, window: float) -> None:
    assert build_parser().parse_args(["--unsafe", "no-lock", "--race-window", text]).race_window == window
