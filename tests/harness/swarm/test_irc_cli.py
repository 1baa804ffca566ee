"""The swarm's command line for IRC targets: the settings it makes, the record's form, one-line refusals."""

from __future__ import annotations

import pytest

from harness.common.address import Endpoint
from harness.swarm.cli import build_parser, settings_from_args


def settings(*argv: str):  # type: ignore[no-untyped-def]
    return settings_from_args(build_parser().parse_args(list(argv)))


def test_an_irc_target_makes_irc_settings() -> None:
    s = settings("--target", "irc://127.0.0.1:6667/%23load", "--strict-order")
    assert (s.target, s.protocol, s.channel, s.strict_order) == (
        Endpoint("127.0.0.1", 6667),
        "irc",
        "#load",
        True,
    )
    d = s.to_dict()
    assert (d["target"], d["protocol"], d["channel"], d["strict_order"]) == (
        "irc://127.0.0.1:6667/#load",
        "irc",
        "#load",
        True,
    )
    assert s.target_text() == "irc://127.0.0.1:6667/#load"


def test_our_protocol_keeps_its_settings() -> None:
    s = settings("--target", "127.0.0.1:9999")
    assert (s.protocol, s.channel, s.strict_order) == ("chat", "", False)
    assert s.to_dict()["target"] == "127.0.0.1:9999"
    assert settings().to_dict()["target"] is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--target", "irc://h:1/a b"], "argument --target: not a channel name: 'a b' in 'irc://h:1/a b'"),
        (
            ["--target", "irc://h:1", "--pad", "401"],
            "--pad 401 does not fit an IRC line (512 bytes): at most 400",
        ),
    ],
)
def test_refusals_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        settings(*argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
