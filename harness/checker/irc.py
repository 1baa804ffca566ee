"""IRC histories in the checker's terms: each recorded IRC line read as the event of ours it stands for.

Pure: no I/O, no clock. The swarm's IRC bots record every line raw, as the
server sent it (:mod:`harness.record.irc`); :func:`read_irc_run` rewrites each
client's history into the unnumbered style of our protocol (docs/checker.md,
"Numbering"), so that every check applies unchanged, and says what the checks
must know besides: the server's CASEMAPPING (names are unique under it), which
clients do not get their own messages back (no ``echo-message``), and the
leaves that were throttling rather than loss. docs/irc.md lists what each check
means without seqs.

=====================================  ================================================
received                               read as
=====================================  ================================================
the first line of a connection         ``HELLO irc`` (then the line itself)
own ``JOIN`` of the channel            ``OK <nick>``, ``JOIN <nick>``: a member from here
another's ``JOIN``                     ``JOIN <nick>``
``PRIVMSG <channel> :text``            ``MSG <nick> text``
``PART``, ``QUIT``, ``KICK``           ``LEAVE <nick> quit|disconnected|slow``
``353`` ... ``366``                    ``USERS <nicks>``
``433``/``436``/``437``, ``432``/431   ``ERR name-taken``, ``ERR invalid-name`` (before joining)
``ERROR``                              ``BYE <text>``
=====================================  ================================================

A nickname can also be taken away before registration: InspIRCd gives it to
the newest client that asks and tells the one that had it (a ``NICK`` line
changing its nickname, then ``433 ... :Nickname overruled.``). That client held
the name until then, and was not refused it: its offer and the two lines are
left out (:func:`_overruled`), so the names check sees no refusal there.

Sent lines: ``NICK <nick>`` before joining is a name offer, ``PRIVMSG`` a chat
message, ``NAMES`` a ``/who``, ``QUIT`` a ``/quit``; the rest (``CAP``, ``USER``,
``JOIN``, ``PING``, ``PONG``) stands for nothing. Every other received line
(``NOTICE``, other numerics, ``MODE``, ``PONG``) stands for nothing either. A line
that is not IRC at all is kept as it is, for the membership check to report.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from chat.protocol import LeaveReason
from harness.common import irc
from harness.record.history import ClientHistory, Connected, Event, Received, Sent

#: What a translated stream's first line says.
GREETING = "HELLO irc"

#: A QUIT text that says the server threw a sender out for sending too fast (InspIRCd's
#: ``Excess Flood`` and ``RecvQ exceeded``, ngircd's penalty), or a reader for reading too slowly
#: (InspIRCd's ``SendQ exceeded``, ngircd's log line ``Write buffer space exhausted``).
_FLOOD_RE = re.compile(r"excess flood|recvq exceeded|flood|penalty|receive buffer", re.IGNORECASE)
_SLOW_RE = re.compile(r"sendq exceeded|write buffer|sendq", re.IGNORECASE)
#: Texts of a connection that went away under the server (closed, reset, timed out).
_GONE_RE = re.compile(
    r"closed connection|connection closed|read error|remote host closed|connection reset|"
    r"broken pipe|ping timeout|eof from client|write error",
    re.IGNORECASE,
)
#: The text a swarm bot quits with (``QUIT :quit``), as servers relay it: ngircd adds quotes,
#: InspIRCd ``Quit:`` with ``<options prefixquit>``; ircd-hybrid relays a QUIT sent in a client's
#: first seconds as ``Quit:`` alone (its ``anti_spam_exit_message_time``).
_OWN_QUIT_RE = re.compile(r'^(?:quit:\s*"?quit"?|"?quit"?|quit:)$', re.IGNORECASE)

#: Hints for :class:`Throttle` kinds: what to change in the server's configuration.
HINTS = {
    "flood": (
        "the server throttles fast senders: raise its flood limits (InspIRCd: <connect threshold=... "
        'commandrate=... fakelag="no">; ngircd: [Limits] MaxPenaltyTime = 0), see docs/irc.md'
    ),
    "sendq": (
        "the server dropped a reader that fell behind: raise its send queue (InspIRCd: <connect "
        "hardsendq=...>; ngircd's 32 KiB write buffer is fixed), see docs/irc.md"
    ),
}


@dataclass(frozen=True)
class Throttle:
    """A member the server threw out for its pace, not for a fault: who, which kind, the server's text."""

    client: str
    name: str
    #: ``flood`` (sent too fast) or ``sendq`` (read too slowly).
    kind: str
    text: str


@dataclass
class IrcRun:
    """An IRC run read in the checker's terms (see the module's docstring)."""

    histories: list[ClientHistory]
    #: The server's CASEMAPPING (``005``), ``rfc1459`` when none was announced.
    casemapping: str = "rfc1459"
    #: Clients that do not get their own messages back (no ``echo-message``).
    no_echo: frozenset[str] = frozenset()
    #: Leaves that were throttling, each member and kind once (the first text seen).
    throttled: list[Throttle] = field(default_factory=list)


def leave_reason(text: str, nick: str) -> tuple[str, str | None]:
    """The history's leave reason for a QUIT with ``text``, and the throttling kind when it was one.

    ngircd relays ``QUIT :<the member's own nick>`` when it closes a connection
    with no reason to forward; the usual one is its write buffer, the ``slow``
    leave (the reason itself is only in its log).
    """
    if _SLOW_RE.search(text):
        return LeaveReason.SLOW.value, "sendq"
    if _FLOOD_RE.search(text):
        return LeaveReason.DISCONNECTED.value, "flood"
    if _OWN_QUIT_RE.match(text.strip()):
        return LeaveReason.QUIT.value, None
    if text == nick:
        return LeaveReason.SLOW.value, None
    return LeaveReason.DISCONNECTED.value, None


class _Reader:
    """Parses each distinct line once for the whole run (a relayed line reaches every member alike)."""

    def __init__(self, casemapping: str) -> None:
        self.casemapping = casemapping
        self.cache: dict[str, irc.Message | None] = {}

    def parse(self, line: str) -> irc.Message | None:
        msg = self.cache.get(line, _MISSING)
        if msg is _MISSING:
            try:
                msg = irc.parse_line(line)
            except irc.IrcError:
                msg = None
            self.cache[line] = msg
        return msg

    def fold(self, name: str) -> str:
        return irc.casefold(name, self.casemapping)


_MISSING = irc.Message("")


def read_irc_run(histories: Sequence[ClientHistory]) -> IrcRun:
    """Every client's history in the checker's terms, and what the checks must know of the run."""
    casemapping = "rfc1459"
    for h in histories:
        found = irc.isupport_of(e.line for e in h.events if isinstance(e, Received))
        if "CASEMAPPING" in found.tokens:
            casemapping = found.casemapping
            break
    reader = _Reader(casemapping)
    out: list[ClientHistory] = []
    no_echo: set[str] = set()
    throttled: dict[tuple[str, str], Throttle] = {}
    by_name: dict[str, str] = {}
    for h in histories:
        translated, echo = _translate(h, reader, throttled)
        out.append(translated)
        if not echo:
            no_echo.add(h.client)
    for h in out:
        for e in h.events:
            if isinstance(e, Received) and e.line.startswith("OK "):
                by_name.setdefault(reader.fold(e.line[3:]), h.client)
    found_throttles = [
        Throttle(by_name.get(reader.fold(t.name), t.client), t.name, t.kind, t.text)
        for t in throttled.values()
    ]
    return IrcRun(out, casemapping, frozenset(no_echo), found_throttles)


def _channel_of(h: ClientHistory) -> str:
    for e in h.events:
        if isinstance(e, Sent) and e.line[:5].upper() == "JOIN ":
            return e.line[5:].split(" ", 1)[0].split(",", 1)[0].lstrip(":")
    return ""


def _overruled(events: Sequence[Event], reader: _Reader) -> set[int]:
    """Indexes of the events of nicknames taken away before registration (see the module's docstring):
    the offer, the server's ``NICK`` line that changed it, and the ``433`` that followed."""
    fold = reader.fold
    offers: dict[str, int] = {}
    out: set[int] = set()
    pending = False
    for i, e in enumerate(events):
        if isinstance(e, Sent):
            command, _, rest = e.line.partition(" ")
            if command.upper() == "NICK":
                offers[fold(rest.lstrip(":"))] = i
            continue
        if not isinstance(e, Received):
            continue
        msg = reader.parse(e.line)
        if msg is None:
            continue
        if msg.command == irc.RPL_WELCOME:
            break
        if msg.command == "NICK" and fold(msg.nick) in offers:
            out.add(offers.pop(fold(msg.nick)))
            out.add(i)
            pending = True
        elif pending and msg.command in irc.NICK_TAKEN:
            out.add(i)
            pending = False
    return out


def _translate(
    h: ClientHistory, reader: _Reader, throttled: dict[tuple[str, str], Throttle]
) -> tuple[ClientHistory, bool]:
    """One client's history in the checker's terms, and whether it gets its own messages back."""
    fold = reader.fold
    channel_key = fold(_channel_of(h))
    events: list[Event] = []
    add = events.append
    own = ""
    member = False
    greeted = False
    echo = False
    names: list[str] | None = None
    skip = _overruled(h.events, reader)
    for index, e in enumerate(h.events):
        if skip and index in skip:
            if isinstance(e, Received) and not greeted:
                greeted = True
                add(Received(e.t, GREETING))
            continue
        if isinstance(e, Received):
            t = e.t
            if not greeted:
                greeted = True
                add(Received(t, GREETING))
            msg = reader.parse(e.line)
            if msg is None:
                if e.line.strip():
                    add(e)  # not IRC at all: the membership check reports it
                continue
            command = msg.command
            if command == "PRIVMSG":
                if fold(msg.param(0)) == channel_key:
                    add(Received(t, f"MSG {msg.nick} {msg.trailing}"))
            elif command == "JOIN":
                if fold(msg.param(0)) == channel_key:
                    nick = msg.nick
                    if not member and own and fold(nick) == fold(own):
                        member = True
                        add(Received(t, f"OK {nick}"))
                    add(Received(t, f"JOIN {nick}"))
            elif command in ("QUIT", "PART", "KICK"):
                if command == "KICK":
                    if fold(msg.param(0)) != channel_key:
                        continue
                    nick, reason, kind = msg.param(1), LeaveReason.DISCONNECTED.value, None
                elif command == "PART":
                    if fold(msg.param(0)) != channel_key:
                        continue
                    nick, reason, kind = msg.nick, LeaveReason.QUIT.value, None
                else:
                    nick = msg.nick
                    reason, kind = leave_reason(msg.trailing, nick)
                if kind is not None:
                    throttled.setdefault((fold(nick), kind), Throttle(h.client, nick, kind, msg.trailing))
                add(Received(t, f"LEAVE {nick} {reason}"))
            elif command == irc.RPL_NAMREPLY:
                if member and fold(msg.param(2)) == channel_key:
                    if names is None:
                        names = []
                    names += [irc.strip_names_prefix(n) for n in msg.trailing.split()]
            elif command == irc.RPL_ENDOFNAMES:
                if member and fold(msg.param(1)) == channel_key:
                    add(Received(t, " ".join(("USERS", *(names or ())))))
                names = None
            elif command == irc.RPL_WELCOME:
                own = msg.param(0)
            elif command in irc.NICK_TAKEN or command in irc.NICK_INVALID:
                if not member and not own:
                    code = "name-taken" if command in irc.NICK_TAKEN else "invalid-name"
                    add(Received(t, f"ERR {code} {msg.trailing}"))
            elif command == "ERROR":
                add(Received(t, f"BYE {msg.trailing}"))
                _, kind = leave_reason(msg.trailing, "")
                if kind is not None and own:
                    throttled.setdefault((fold(own), kind), Throttle(h.client, own, kind, msg.trailing))
            elif command == "CAP" and msg.param(1).upper() == "ACK":
                echo = echo or "echo-message" in msg.trailing.split()
        elif isinstance(e, Sent):
            line = e.line
            command, _, rest = line.partition(" ")
            command = command.upper()
            if command == "PRIVMSG":
                if member:
                    target, _, text = rest.partition(" ")
                    if fold(target) == channel_key:
                        add(Sent(e.t, text[1:] if text.startswith(":") else text, e.due))
            elif command == "NICK":
                if not member:
                    add(Sent(e.t, rest.lstrip(":")))
            elif command == "NAMES":
                if member:
                    add(Sent(e.t, "/who"))
            elif command == "QUIT":
                add(Sent(e.t, "/quit"))
        elif isinstance(e, Connected):
            add(e)
        else:
            add(e)
    return ClientHistory(h.client, h.bot, h.role, events), echo
