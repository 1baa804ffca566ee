"""IRC lines: parsing and formatting, ISUPPORT, case folding, the registration state machine."""

from __future__ import annotations

import pytest

from harness.common import irc
from harness.common.irc import IrcError, ISupport, Message, NickRefusal, Registration, RegState


@pytest.mark.parametrize(
    ("line", "command", "params", "source"),
    [
        ("PING :abc", "PING", ("abc",), ""),
        (":irc.local 001 b00 :Welcome to the net", "001", ("b00", "Welcome to the net"), "irc.local"),
        (
            ":b1!~bot@127.0.0.1 PRIVMSG #chat :b=b1 n=0 t=1.5",
            "PRIVMSG",
            ("#chat", "b=b1 n=0 t=1.5"),
            "b1!~bot@127.0.0.1",
        ),
        (":b1!bot@h JOIN #chat", "JOIN", ("#chat",), "b1!bot@h"),
        (":b1!bot@h JOIN :#chat", "JOIN", ("#chat",), "b1!bot@h"),
        (":srv CAP * LS * :a b=1", "CAP", ("*", "LS", "*", "a b=1"), "srv"),
        (":srv  353  me = #chat :@a +b c", "353", ("me", "=", "#chat", "@a +b c"), "srv"),
        ("privmsg #c :x", "PRIVMSG", ("#c", "x"), ""),
        (":b QUIT :", "QUIT", ("",), "b"),
        (":b QUIT", "QUIT", (), "b"),
        (
            "ERROR :Closing link: (bot@127.0.0.1) [Excess Flood]\r",
            "ERROR",
            ("Closing link: (bot@127.0.0.1) [Excess Flood]",),
            "",
        ),
        (":b PRIVMSG #c :a :b  c", "PRIVMSG", ("#c", "a :b  c"), "b"),
    ],
)
def test_parse_line(line: str, command: str, params: tuple[str, ...], source: str) -> None:
    msg = irc.parse_line(line)
    assert (msg.command, msg.params, msg.source) == (command, params, source)


def test_parse_tags_and_escapes() -> None:
    msg = irc.parse_line(r"@time=2026-12-05T07:00:00.000Z;msgid=x\sy\:z;flag :n!u@h PRIVMSG #c :hi")
    assert msg.tags == {"time": "2026-12-05T07:00:00.000Z", "msgid": "x y;z", "flag": ""}
    assert msg.nick == "n"
    assert msg.trailing == "hi"


@pytest.mark.parametrize("line", ["", "   ", ":onlysource", "@a=b", "@a=b :src", ":src :trailing"])
def test_parse_refuses_a_line_without_a_command(line: str) -> None:
    with pytest.raises(IrcError, match=r"^no command in "):
        irc.parse_line(line)


def test_message_accessors() -> None:
    msg = Message("353", ("me", "=", "#c", "a b"), "irc.example.org")
    assert msg.nick == ""  # a server, not a user
    assert msg.param(2) == "#c"
    assert msg.param(9) == ""
    assert msg.is_numeric
    assert irc.nick_of("alice!~a@host") == "alice"
    assert irc.nick_of("alice") == "alice"
    assert irc.nick_of("") == ""


@pytest.mark.parametrize(
    ("args", "kwargs", "line"),
    [
        (("NICK", "b00"), {}, "NICK b00"),
        (("PRIVMSG", "#chat", "b=b0 n=1 t=2.0"), {}, "PRIVMSG #chat :b=b0 n=1 t=2.0"),
        (("QUIT", ""), {}, "QUIT :"),
        (("USER", "bot", "0", "*", "b00"), {}, "USER bot 0 * b00"),
        (("PRIVMSG", "#c", ":)"), {"source": "n!u@h"}, ":n!u@h PRIVMSG #c ::)"),
        (("TAGMSG", "#c"), {"tags": {"a": "x y", "b": ""}}, "@a=x\\sy;b TAGMSG #c"),
    ],
)
def test_format_line(args: tuple[str, ...], kwargs: dict[str, object], line: str) -> None:
    assert irc.format_line(*args, **kwargs) == line  # type: ignore[arg-type]
    assert irc.parse_line(line).params == tuple(args[1:])


@pytest.mark.parametrize(
    "args",
    [("PRIVMSG", "#c d", "x"), ("PRIVMSG", ":c", "x"), ("PRIVMSG", "#c", "a\r\nQUIT"), ("", "x"), ("A B",)],
)
def test_format_refuses_what_the_wire_cannot_carry(args: tuple[str, ...]) -> None:
    with pytest.raises(IrcError):
        irc.format_line(*args)


def test_encode_line() -> None:
    assert irc.encode_line("NICK é") == "NICK é\r\n".encode()
    with pytest.raises(IrcError, match=r"^a line must not hold a line break"):
        irc.encode_line("NICK a\nQUIT")


def test_pong_and_names() -> None:
    assert irc.pong_for(irc.parse_line("PING :tok en")) == "PONG :tok en"
    assert irc.pong_for(irc.parse_line("PING srv")) == "PONG srv"
    assert irc.pong_for(irc.parse_line("PING")) == "PONG"
    assert irc.pong_for(irc.parse_line("PONG :x")) is None
    assert [irc.strip_names_prefix(n) for n in ["@a", "+b", "~&c", "d"]] == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("mapping", "a", "b", "equal"),
    [
        ("ascii", "Case[A]0", "case[a]0", True),
        ("ascii", "CASE{A}0", "case[a]0", False),
        ("rfc1459", "CASE{A}0", "case[a]0", True),
        ("rfc1459", "a~", "A^", True),
        ("strict-rfc1459", "a~", "A^", False),
        ("strict-rfc1459", "a\\", "A|", True),
        ("rfc7613", "ÄB", "äb", False),  # unknown: folded as ascii
    ],
)
def test_casefold(mapping: str, a: str, b: str, equal: bool) -> None:
    assert (irc.casefold(a, mapping) == irc.casefold(b, mapping)) is equal


def test_isupport() -> None:
    isupport = ISupport()
    assert (isupport.casemapping, isupport.nicklen) == ("rfc1459", 9)
    isupport.update(
        irc.parse_line(
            ":srv 005 me CASEMAPPING=ascii NICKLEN=30 CHANNELLEN=50 CHANTYPES=# NETWORK=a\\x20b EXCEPTS "
            ":are supported by this server"
        )
    )
    assert (isupport.casemapping, isupport.nicklen, isupport.channellen, isupport.chantypes) == (
        "ascii",
        30,
        50,
        "#",
    )
    assert isupport.tokens["NETWORK"] == "a b"
    assert isupport.tokens["EXCEPTS"] == ""
    isupport.update(irc.parse_line(":srv 005 me -EXCEPTS :are supported"))
    assert "EXCEPTS" not in isupport.tokens
    assert isupport.fold("ABC[") == "abc["
    found = irc.isupport_of([":srv 001 me :hi", ":srv 005 me CASEMAPPING=rfc1459 :ok", "garbage"])
    assert found.casemapping == "rfc1459"


@pytest.mark.parametrize(
    ("text", "channel"), [("chat", "#chat"), ("#chat", "#chat"), ("%23chat", "#chat"), ("&loc", "&loc")]
)
def test_normalise_channel(text: str, channel: str) -> None:
    assert irc.normalise_channel(text) == channel


@pytest.mark.parametrize("text", ["", "#", "a b", "a,b", "x\x07"])
def test_normalise_channel_refuses(text: str) -> None:
    with pytest.raises(IrcError, match=r"^not a channel name"):
        irc.normalise_channel(text)


def _feed(reg: Registration, *lines: str) -> list[str]:
    out: list[str] = []
    for line in lines:
        out += reg.receive(irc.parse_line(line))
    return out


def test_registration_requests_only_offered_caps() -> None:
    reg = Registration(wanted=("echo-message",))
    assert reg.start("b00") == ["CAP LS 302", "NICK b00", "USER bot 0 * b00"]
    assert _feed(
        reg, ":s CAP * LS * :multi-prefix inspircd.org/poison", ":s CAP * LS :echo-message sasl=PLAIN"
    ) == ["CAP REQ echo-message"]
    assert reg.offered == {"multi-prefix", "inspircd.org/poison", "echo-message", "sasl"}
    assert reg.state is RegState.CAP_REQUESTING
    assert _feed(reg, ":s CAP * ACK :echo-message") == ["CAP END"]
    assert reg.echo_message
    assert _feed(reg, ":s 001 b00 :Welcome", ":s 005 b00 NICKLEN=30 :are supported") == []
    assert (reg.state, reg.nick, reg.isupport.nicklen) == (RegState.REGISTERED, "b00", 30)


def test_registration_without_the_cap_offered() -> None:
    reg = Registration(wanted=("echo-message",))
    reg.start("b00")
    assert _feed(reg, ":s CAP * LS :multi-prefix") == ["CAP END"]
    assert not reg.echo_message
    _feed(reg, ":s 001 b00 :hi")
    assert reg.state is RegState.REGISTERED


def test_registration_nak_and_unknown_cap() -> None:
    reg = Registration(wanted=("echo-message",))
    reg.start("b00")
    _feed(reg, ":s CAP * LS :echo-message")
    assert _feed(reg, ":s CAP b00 NAK :echo-message") == ["CAP END"]
    assert not reg.echo_message
    old = Registration(wanted=("echo-message",))
    old.start("b01")
    assert _feed(old, ":s 421 * CAP :Unknown command") == []
    assert old.state is RegState.REGISTERING


def test_registration_refusals_and_another_offer() -> None:
    reg = Registration()
    reg.start("race0")
    # A refusal during the negotiation: after CAP END the registration waits for another NICK.
    assert _feed(reg, ":s 433 * race0 :Nickname already in use") == []
    assert reg.refusal is NickRefusal.TAKEN
    assert _feed(reg, ":s CAP * LS :multi-prefix") == ["CAP END"]
    assert reg.state is RegState.REFUSED
    assert reg.offer("RACE1") == ["NICK RACE1"]
    assert (reg.state, reg.refusal) == (RegState.REGISTERING, None)
    _feed(reg, ":s 432 * RACE1 :Erroneous Nickname")
    assert (reg.state, reg.refusal, reg.refusal_text) == (
        RegState.REFUSED,
        NickRefusal.INVALID,
        "Erroneous Nickname",
    )
    reg.offer("race2")
    _feed(reg, ":s 001 race2 :hi")
    assert (reg.state, reg.nick) == (RegState.REGISTERED, "race2")
    # Once registered, a 433 answers a rename, not the registration.
    _feed(reg, ":s 433 race2 x :in use")
    assert reg.state is RegState.REGISTERED


def test_registration_error_closes() -> None:
    reg = Registration()
    reg.start("b0")
    _feed(reg, "ERROR :Closing link: (bot@127.0.0.1) [Registration timeout]")
    assert (reg.state, reg.error) == (RegState.CLOSED, "Closing link: (bot@127.0.0.1) [Registration timeout]")
    _feed(reg, ":s 001 b0 :late")
    assert reg.state is RegState.CLOSED
