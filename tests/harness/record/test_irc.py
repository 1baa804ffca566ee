"""The IRC recording connection: registration, answers for the driver, counting, drains, raw records."""

from __future__ import annotations

from harness.record.connection import JoinOutcome, JoinStage
from harness.record.history import ClientHistory, Closed, HowClosed, Received, Sent
from harness.record.irc import IrcRecordingConnection, drain_line


def rec(bot: str = "b0") -> IrcRecordingConnection:
    r = IrcRecordingConnection(ClientHistory(bot, bot), channel="#chat")
    r.connected(1.0, 1.0)
    return r


def feed(r: IrcRecordingConnection, t: float, *lines: str) -> list[str]:
    """Lines from the server at ``t``; returns what the driver must send (and records it as sent)."""
    r.receive(t, "".join(line + "\r\n" for line in lines).encode())
    out = r.take_outgoing()
    for line in out:
        r.sent(t, line)
    return out


def open_(r: IrcRecordingConnection, nick: str, t: float = 1.0) -> None:
    for line in r.opening(nick):
        r.sent(t, line)


def test_registration_with_echo_message_then_the_own_join() -> None:
    r = rec()
    open_(r, "b0")
    assert r.stage is JoinStage.OFFERED and r.offered == "b0"
    assert feed(r, 1.1, ":srv CAP * LS :echo-message inspircd.org/poison") == ["CAP REQ echo-message"]
    assert feed(r, 1.2, ":srv CAP b0 ACK :echo-message") == ["CAP END"]
    assert r.echo
    assert feed(r, 2.0, ":srv 001 b0 :Welcome", ":srv 005 b0 CASEMAPPING=rfc1459 :ok") == ["JOIN #chat"]
    assert r.join_outcome is None and not r.is_member
    feed(r, 2.1, ":b0!bot@127.0.0.1 JOIN :#chat", ":srv 353 b0 = #chat :@b0", ":srv 366 b0 #chat :End")
    assert (r.stage, r.join_outcome, r.name) == (JoinStage.JOINED, JoinOutcome.OK, "b0")
    assert r.is_member and r.has_joined
    assert r.counters.counts.members == 1 and r.counters.counts.joins == 1


def test_a_taken_nick_can_be_followed_by_another_on_the_same_connection() -> None:
    r = rec()
    open_(r, "race0")
    feed(r, 1.1, ":srv CAP * LS :multi-prefix", ":srv 433 * race0 :Nickname already in use")
    assert (r.join_outcome, r.stage) == (JoinOutcome.TAKEN, JoinStage.WAITING)
    assert r.refusal is not None and r.refusal.text == "Nickname already in use"
    assert r.opening("RACE1") == ["NICK RACE1"]
    r.sent(1.2, "NICK RACE1")
    assert r.stage is JoinStage.OFFERED and r.join_outcome is None
    feed(r, 1.3, ":srv 432 * RACE1 :Erroneous Nickname")
    assert r.join_outcome is JoinOutcome.INVALID


def test_ping_is_answered_at_once_in_every_state() -> None:
    r = rec()
    assert feed(r, 1.0, "PING :irc.example") == ["PONG irc.example"]
    assert r.greeted  # the first line from the server is the greeting


def test_privmsgs_are_counted_and_the_own_echo_moves_on() -> None:
    r = rec("b0")
    open_(r, "b0")
    feed(r, 1.1, ":srv CAP * LS :echo-message", ":srv CAP b0 ACK :echo-message", ":srv 001 b0 :hi")
    feed(r, 1.2, ":b0!bot@h JOIN #chat")
    feed(
        r,
        2.0,
        ":b1!bot@h PRIVMSG #chat :b=b1 n=0 t=1.900000",
        ":b0!bot@h PRIVMSG #chat :b=b0 n=3 t=1.950000",
        "@time=2026-12-05T00:00:00Z :b2!bot@h PRIVMSG #CHAT :b=b2 n=0 t=1.990000",
        ":b1!bot@h PRIVMSG b0 :a private one",
        ":b1!bot@h NOTICE #chat :not a message",
    )
    assert r.counters.counts.delivered == 3
    assert r.last_echo_n == 3


def test_drain_pong() -> None:
    r = rec()
    assert drain_line(7) == "PING drain-7"
    feed(r, 1.0, ":srv PONG srv :drain-7", ":srv PONG srv :other", ":srv PONG srv :drain-2")
    assert r.drained_n == 7


def test_error_ends_a_pending_handshake_and_the_record_is_raw() -> None:
    r = rec()
    open_(r, "b0")
    feed(r, 1.5, "ERROR :Closing link: (bot@127.0.0.1) [Registration timeout]")
    assert r.join_outcome is JoinOutcome.BYE
    assert r.error_text == "Closing link: (bot@127.0.0.1) [Registration timeout]"
    r.lost(1.6)
    h = r.take_history()
    assert [type(e) for e in h.events] == [type(h.events[0]), Sent, Sent, Sent, Received, Closed]
    assert [e.line for e in h.events if isinstance(e, Sent)] == ["CAP LS 302", "NICK b0", "USER bot 0 * b0"]
    closed = h.events[-1]
    assert isinstance(closed, Closed) and closed.how is HowClosed.EOF


def test_quit_then_the_servers_close_is_a_quit() -> None:
    r = rec()
    r.sent(1.0, "QUIT :quit")
    r.lost(1.1)
    closed = r.take_history().events[-1]
    assert isinstance(closed, Closed) and closed.how is HowClosed.QUIT


def test_chats_are_recorded_as_privmsgs_with_their_due_times() -> None:
    r = rec()
    r.sent_chats(3.0, ["b=b0 n=0 t=2.9", "b=b0 n=1 t=3.0"], [2.9, 3.0], ["NAMES #chat"])
    assert r.counters.counts.sent == 2 and r.counters.counts.whos == 1
    sent = [e for e in r.take_history().events if isinstance(e, Sent)]
    assert [(e.line, e.due) for e in sent] == [
        ("PRIVMSG #chat :b=b0 n=0 t=2.9", 2.9),
        ("PRIVMSG #chat :b=b0 n=1 t=3.0", 3.0),
        ("NAMES #chat", None),
    ]


def test_bot_names_fit_rfc1459_nicklen() -> None:
    from harness.swarm.ircbot import NICKLEN, nick_for

    assert nick_for("b07") == "b07" and nick_for("race0") == "race0" and nick_for("b07-12") == "b07-c"
    assert nick_for("b0123-4567") == "b0123-3iv"
    names = {nick_for(f"b{i:04d}-{k}") for i in (0, 9999) for k in range(1, 46656)}
    assert len(names) == 2 * 46655 and max(len(n) for n in names) == NICKLEN
