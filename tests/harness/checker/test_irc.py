"""The checker on IRC runs: each IRC line read as our protocol's event, judged without seqs."""

from __future__ import annotations

from harness.checker import CheckConfig, Report, check_all, judge, verdict_line
from harness.checker.irc import GREETING, leave_reason, read_irc_run
from harness.record.history import ClientHistory, Closed, Connected, HowClosed, Received, Sent
from harness.record.payload import encode_payload

IRC = CheckConfig(protocol="irc", handshake_bound=5.0, delivery_bound=5.0)
STRICT = CheckConfig(protocol="irc", strict_order=True)


class Bot:
    """Builds one IRC client's recorded history, line by line as the swarm records it."""

    def __init__(self, nick: str, *, casemapping: str = "ascii", echo: bool = False) -> None:
        self.nick = nick
        self.h = ClientHistory(nick, nick)
        self.casemapping = casemapping
        self.echo = echo
        self.n = 0

    def _r(self, t: float, line: str) -> None:
        self.h.events.append(Received(t, line))

    def _s(self, t: float, line: str, due: float | None = None) -> None:
        self.h.events.append(Sent(t, line, due))

    def join(self, t: float, present: tuple[str, ...] = ()) -> Bot:
        self.h.events.append(Connected(t, t))
        for line in ("CAP LS 302", f"NICK {self.nick}", f"USER bot 0 * {self.nick}"):
            self._s(t, line)
        self._r(t + 0.001, ":srv CAP * LS :echo-message" if self.echo else ":srv CAP * LS :multi-prefix")
        if self.echo:
            self._s(t + 0.001, "CAP REQ echo-message")
            self._r(t + 0.002, f":srv CAP {self.nick} ACK :echo-message")
        self._s(t + 0.002, "CAP END")
        self._r(t + 0.003, f":srv 001 {self.nick} :Welcome")
        self._r(t + 0.003, f":srv 005 {self.nick} CASEMAPPING={self.casemapping} NICKLEN=30 :are supported")
        self._s(t + 0.003, "JOIN #chat")
        self._r(t + 0.004, f":{self.nick}!bot@127.0.0.1 JOIN :#chat")
        self._r(t + 0.004, f":srv 353 {self.nick} = #chat :{' '.join(('@' + self.nick, *present))}")
        self._r(t + 0.004, f":srv 366 {self.nick} #chat :End of /NAMES list.")
        return self

    def say(self, t: float) -> str:
        text = encode_payload(self.nick, self.n, t)
        self.n += 1
        self._s(t, f"PRIVMSG #chat :{text}", t)
        if self.echo:
            self.got(t + 0.001, self.nick, text)
        return text

    def got(self, t: float, sender: str, text: str) -> None:
        self._r(t, f":{sender}!bot@127.0.0.1 PRIVMSG #chat :{text}")

    def sees(self, t: float, line: str) -> None:
        self._r(t, line)

    def quit(self, t: float) -> None:
        self._s(t, "QUIT :quit")
        self._r(t + 0.001, "ERROR :Closing link: (bot@127.0.0.1) [quit]")
        self.h.events.append(Closed(t + 0.002, HowClosed.QUIT))


def chat_run(*, echo: bool = False, lose: bool = False) -> list[ClientHistory]:
    """a and b chat; c joins late and sees b's second message; everyone quits."""
    a = Bot("a", echo=echo).join(1.0)
    b = Bot("b", echo=echo).join(1.1, ("a",))
    a.sees(1.105, ":b!bot@127.0.0.1 JOIN #chat")
    t1 = a.say(2.0)
    b.got(2.01, "a", t1)
    t2 = b.say(2.1)
    if not lose:
        a.got(2.11, "b", t2)
    c = Bot("c", echo=echo).join(3.0, ("a", "b"))
    a.sees(3.005, ":c!bot@127.0.0.1 JOIN #chat")
    b.sees(3.005, ":c!bot@127.0.0.1 JOIN #chat")
    t3 = b.say(4.0)
    a.got(4.01, "b", t3)
    c.got(4.01, "b", t3)
    c.quit(5.0)
    a.sees(5.002, ':c!bot@127.0.0.1 QUIT :"quit"')
    b.sees(5.002, ':c!bot@127.0.0.1 QUIT :"quit"')
    b.quit(5.5)
    a.sees(5.502, ":b!bot@127.0.0.1 QUIT :Quit: quit")
    a.quit(6.0)
    return [a.h, b.h, c.h]


def check(histories: list[ClientHistory], config: CheckConfig = IRC) -> Report:
    return check_all(histories, config)


def test_a_correct_run_without_echo_passes_and_says_agreement_was_not_judged() -> None:
    report = check(chat_run())
    assert report.passed(), report.violations
    assert report.deliveries == 4  # no sender gets its own message back
    assert report.seq_style == "unnumbered"
    assert not report.agreement_judged
    line = verdict_line(report, 3)
    assert line == (
        "PASS: 0 violations in 4 deliveries; agreement not judged "
        "(IRC promises each sender's order only; --strict-order judges it)"
    )
    assert judge(report, 3).exit_code == 0
    assert check(chat_run(), STRICT).summary_line() == "PASS: 0 violations in 4 deliveries"


def test_with_echo_message_the_sender_gets_its_own_back() -> None:
    report = check(chat_run(echo=True))
    assert report.passed(), report.violations
    assert report.deliveries == 7


def test_a_lost_privmsg_is_a_loss_naming_the_client_and_the_message() -> None:
    report = check(chat_run(lose=True))
    assert report.counts["loss"] == 1, report.violations
    v = next(v for v in report.violations if v.check == "loss")
    assert v.witness["client"] == "a" and v.witness["sender"] == "b"
    assert v.witness["message"] == {"bot": "b", "n": 0}


def test_a_missing_echo_is_a_liveness_fault_only_with_echo_message() -> None:
    a = Bot("a", echo=True).join(1.0)
    b = Bot("b", echo=True).join(1.1, ("a",))
    a.sees(1.105, ":b!bot@127.0.0.1 JOIN #chat")
    text = encode_payload("a", 0, 2.0)
    a.h.events.append(Sent(2.0, f"PRIVMSG #chat :{text}", 2.0))  # no echo comes back
    b.got(2.01, "a", text)
    a.h.events.append(Closed(9.0, HowClosed.STOPPED))
    b.h.events.append(Closed(9.0, HowClosed.STOPPED))
    report = check([a.h, b.h])
    assert report.counts["liveness"] == 1, report.violations
    assert "never got its b=a n=0 back" in report.violations[0].message


def test_names_are_unique_under_the_servers_casemapping() -> None:
    def run(casemapping: str) -> Report:
        x = Bot("r[a]", casemapping=casemapping).join(1.0)
        y = Bot("R{A}", casemapping=casemapping).join(1.1, ("r[a]",))
        x.sees(1.105, ":R{A}!bot@127.0.0.1 JOIN #chat")
        text = x.say(2.0)
        y.got(2.01, "r[a]", text)
        x.quit(3.0)
        y.sees(3.002, ':r[a]!bot@127.0.0.1 QUIT :"quit"')
        y.quit(3.5)
        return check([x.h, y.h])

    assert run("ascii").passed()
    shared = run("rfc1459")
    assert shared.counts["names"] == 1, shared.violations
    v = next(v for v in shared.violations if v.check == "names")
    assert v.witness["clients"] == ["r[a]", "R{A}"]


def test_agreement_between_members_only_with_strict_order() -> None:
    a = Bot("a").join(1.0)
    b = Bot("b").join(1.1, ("a",))
    c = Bot("c").join(1.2, ("a", "b"))
    d = Bot("d").join(1.3, ("a", "b", "c"))
    for m, who in ((a, "bcd"), (b, "cd"), (c, "d")):
        for nick in who:
            m.sees(1.0 + 0.1 * "abcd".index(nick) + 0.005, f":{nick}!bot@127.0.0.1 JOIN #chat")
    ta, tb = a.say(2.0), b.say(2.0)
    c.got(2.01, "a", ta)
    c.got(2.02, "b", tb)
    d.got(2.011, "b", tb)
    d.got(2.021, "a", ta)
    a.got(2.02, "b", tb)
    b.got(2.02, "a", ta)
    for m in (a, b, c, d):
        m.h.events.append(Closed(9.0, HowClosed.STOPPED))
    histories = [a.h, b.h, c.h, d.h]
    assert check(histories).passed()
    strict = check(histories, STRICT)
    assert strict.counts["agreement"] >= 1, strict.violations
    v = next(v for v in strict.violations if v.check == "agreement")
    assert set(v.witness["clients"]) == {"c", "d"}  # type: ignore[arg-type]


def test_a_dropped_quit_is_a_membership_fault() -> None:
    a = Bot("a").join(1.0)
    b = Bot("b").join(1.1, ("a",))
    c = Bot("c").join(1.2, ("a", "b"))
    a.sees(1.105, ":b!bot@127.0.0.1 JOIN #chat")
    a.sees(1.205, ":c!bot@127.0.0.1 JOIN #chat")
    b.sees(1.205, ":c!bot@127.0.0.1 JOIN #chat")
    b.quit(2.0)
    c.sees(2.002, ':b!bot@127.0.0.1 QUIT :"quit"')  # a never hears of it
    a.got(12.01, "c", c.say(12.0))
    a.h.events.append(Closed(13.0, HowClosed.STOPPED))
    c.h.events.append(Closed(13.0, HowClosed.STOPPED))
    report = check([a.h, b.h, c.h])
    assert report.counts["membership"] == 1, report.violations
    assert report.violations[0].message == "a never got the LEAVE of b (b)"


def test_names_replies_play_who() -> None:
    a = Bot("a").join(1.0)
    b = Bot("b").join(1.1, ("a",))
    a.sees(1.105, ":b!bot@127.0.0.1 JOIN #chat")
    a.h.events.append(Sent(2.0, "NAMES #chat"))
    a.sees(2.001, ":srv 353 a = #chat :@a")  # b is missing
    a.sees(2.001, ":srv 366 a #chat :End of /NAMES list.")
    for m in (a, b):
        m.h.events.append(Closed(9.0, HowClosed.STOPPED))
    report = check([a.h, b.h])
    assert report.counts["membership"] == 1, report.violations
    assert "USERS without b" in report.violations[0].message


def test_an_overruled_nickname_is_no_refusal() -> None:
    """InspIRCd gives an unregistered client's nickname to the newcomer that asks for it."""
    loser = ClientHistory("x1", "x1")
    loser.events += [
        Connected(1.0, 1.0),
        Sent(1.0, "NICK race0"),
        Received(1.002, ":race0!bot@127.0.0.1 NICK :008AAAAAB"),
        Received(1.002, ":srv 433 race0 race0 :Nickname overruled."),
        Sent(1.003, "QUIT :quit"),
        Received(1.004, "ERROR :Closing link: (bot@127.0.0.1) [quit]"),
        Closed(1.005, HowClosed.QUIT),
    ]
    winner = Bot("race0").join(1.001)
    winner.h.events.append(Closed(3.0, HowClosed.STOPPED))
    run = read_irc_run([loser, winner.h])
    assert [e.line for e in run.histories[0].events if isinstance(e, (Sent, Received))] == [
        GREETING,
        "/quit",
        "BYE Closing link: (bot@127.0.0.1) [quit]",
    ]
    assert check([loser, winner.h]).counts["names"] == 0


def test_the_translation() -> None:
    b = Bot("b", casemapping="rfc1459").join(1.0, ("+a",))
    b.sees(2.0, ":c!bot@h PART #chat :bye")
    b.sees(2.1, ":op!bot@h KICK #chat d :out")
    b.sees(2.2, ":e!bot@h QUIT :SendQ exceeded")
    b.sees(2.3, ":f!bot@h QUIT :f")
    b.sees(2.4, ":g!bot@h PRIVMSG #other :elsewhere")
    b.sees(2.5, ":garbage-without-a-command")
    b.sees(2.6, "")
    run = read_irc_run([b.h])
    assert run.casemapping == "rfc1459"
    assert run.no_echo == frozenset({"b"})
    lines = [e.line for e in run.histories[0].events if isinstance(e, Received)]
    assert lines == [
        GREETING,
        "OK b",
        "JOIN b",
        "USERS b a",
        "LEAVE c quit",
        "LEAVE d disconnected",
        "LEAVE e slow",
        "LEAVE f slow",
        ":garbage-without-a-command",
    ]
    assert [(t.name, t.kind) for t in run.throttled] == [("e", "sendq")]


def test_throttling_is_reported_with_a_hint() -> None:
    a = Bot("a").join(1.0)
    b = Bot("b").join(1.1, ("a",))
    a.sees(1.105, ":b!bot@127.0.0.1 JOIN #chat")
    b.sees(2.0, "ERROR :Closing link: (bot@127.0.0.1) [Excess Flood]")
    b.h.events.append(Closed(2.001, HowClosed.EOF))
    a.sees(2.0, ":b!bot@127.0.0.1 QUIT :Excess Flood")
    a.h.events.append(Closed(9.0, HowClosed.STOPPED))
    report = check([a.h, b.h])
    assert report.passed(), report.violations
    assert [(t["name"], t["kind"]) for t in report.throttled] == [("b", "flood")]
    assert "MaxPenaltyTime" in report.throttled[0]["hint"]


def test_leave_reasons() -> None:
    assert leave_reason('"quit"', "x") == ("quit", None)
    assert leave_reason("Quit: quit", "x") == ("quit", None)
    assert leave_reason("Quit: ", "x") == ("quit", None)  # ircd-hybrid, a QUIT in the first seconds
    assert leave_reason("", "x") == ("disconnected", None)
    assert leave_reason("Client closed connection", "x") == ("disconnected", None)
    assert leave_reason("x", "x") == ("slow", None)
    assert leave_reason("RecvQ exceeded", "x") == ("disconnected", "flood")
    assert leave_reason("Max SendQ exceeded", "x") == ("slow", "sendq")


def test_our_protocol_is_judged_as_before() -> None:
    assert CheckConfig().judges_agreement
    assert not CheckConfig(protocol="irc").judges_agreement
    assert CheckConfig(protocol="irc", strict_order=True).judges_agreement
