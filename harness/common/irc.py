"""IRC lines, sans-IO: messages, numerics, RPL_ISUPPORT, nickname folding, a client's registration.

No sockets, no clock, no threads: lines in, values and lines to send out. The
swarm's IRC bots (:mod:`harness.swarm.ircbot`), their recording connection
(:mod:`harness.record.irc`), the checker's reading of an IRC run and the load
generator all speak IRC through this module.

Theory of operation
-------------------
A line is ``[@tags] [:source] COMMAND params [:trailing]`` (RFC 1459 section
2.3.1, RFC 2812, and the IRCv3 message-tags specification). :func:`parse_line`
turns one line (its terminator removed) into a :class:`Message`;
:func:`format_line` builds one and refuses what the wire cannot carry (a line
break, a middle parameter with a space or a leading colon). A line is at most
:data:`MAX_LINE` bytes with its CRLF, tags aside.

Servers compare nicknames and channel names case-insensitively under the
``CASEMAPPING`` they announce in ``005`` (:class:`ISupport`): ``ascii`` folds
``A-Z`` only; ``rfc1459`` also folds ``[]\\~`` to ``{}|^`` (InspIRCd's default);
``strict-rfc1459`` the same but not ``~``. :func:`casefold` applies one.

:class:`Registration` is a client's side of connecting, as a state machine. It
asks for ``CAP LS 302`` first (every server answers at once, which also tells a
client that its connection was accepted), requests only the capabilities that
the caller wants *and* the server offers (a ``CAP REQ`` naming one the server
does not grant is refused as a whole), ends the negotiation, and reads ``001``
(registered), ``433``/``436``/``437`` (the nickname is taken: offer another) or
``432`` (the nickname is not valid). ``PING`` is answered by whoever reads the
line (:func:`pong_for`), at once, in every state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

#: Bytes of one line with its CRLF, tags excluded (RFC 1459 2.3): longer lines are cut or refused.
MAX_LINE = 512
#: A server's source, when a line has none; never a nickname (it holds a dot).
_NO_SOURCE = ""

# -- numerics the harness reads (RFC 2812 section 5, and the IRCv3 registry) --------------------------

RPL_WELCOME = "001"
RPL_ISUPPORT = "005"
RPL_NAMREPLY = "353"
RPL_ENDOFNAMES = "366"
ERR_NOSUCHCHANNEL = "403"
ERR_CANNOTSENDTOCHAN = "404"
ERR_TOOMANYCHANNELS = "405"
ERR_UNKNOWNCOMMAND = "421"
ERR_NONICKNAMEGIVEN = "431"
ERR_ERRONEUSNICKNAME = "432"
ERR_NICKNAMEINUSE = "433"
ERR_NICKCOLLISION = "436"
ERR_UNAVAILRESOURCE = "437"
ERR_NOTREGISTERED = "451"
ERR_CHANNELISFULL = "471"
ERR_INVITEONLYCHAN = "473"
ERR_BANNEDFROMCHAN = "474"
ERR_BADCHANNELKEY = "475"

#: Answers to NICK that mean "that nickname is held by someone else (or just was)".
NICK_TAKEN = frozenset({ERR_NICKNAMEINUSE, ERR_NICKCOLLISION, ERR_UNAVAILRESOURCE})
#: Answers to NICK that mean "that nickname can never be had here".
NICK_INVALID = frozenset({ERR_ERRONEUSNICKNAME, ERR_NONICKNAMEGIVEN})
#: Answers to JOIN that refuse it.
JOIN_REFUSED = frozenset(
    {
        ERR_NOSUCHCHANNEL,
        ERR_TOOMANYCHANNELS,
        ERR_NOTREGISTERED,
        ERR_CHANNELISFULL,
        ERR_INVITEONLYCHAN,
        ERR_BANNEDFROMCHAN,
        ERR_BADCHANNELKEY,
    }
)
#: Channel membership prefixes a NAMES reply may put before a nickname (RFC 2812's ``@`` and ``+``,
#: and the ``~ & % !`` that InspIRCd and others add with ``multi-prefix``).
NAMES_PREFIXES = "~&@%+!"

#: The user name every harness client gives: ngircd refuses user names holding characters that
#: nicknames may hold (``[]{}\\|^``), so it is fixed and plain.
USER_NAME = "bot"


class IrcError(ValueError):
    """A line that is not IRC (from the peer), or one our code tried to build that IRC cannot carry."""


# -- messages -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One IRC line: its IRCv3 tags, its source (``nick!user@host`` or a server), command, parameters.

    ``command`` is upper-cased (numerics stay three digits); the last parameter
    holds the trailing one, spaces and all.
    """

    command: str
    params: tuple[str, ...] = ()
    source: str = _NO_SOURCE
    tags: Mapping[str, str] = field(default_factory=lambda: _NO_TAGS)

    @property
    def nick(self) -> str:
        """The nickname of the source (``nick`` of ``nick!user@host``); ``""`` for a server or none."""
        return nick_of(self.source)

    @property
    def trailing(self) -> str:
        """The last parameter, or ``""`` when there is none."""
        return self.params[-1] if self.params else ""

    def param(self, i: int) -> str:
        """Parameter ``i``, or ``""`` when the line has fewer."""
        return self.params[i] if -len(self.params) <= i < len(self.params) else ""

    @property
    def is_numeric(self) -> bool:
        return len(self.command) == 3 and self.command.isdigit()


_NO_TAGS: Mapping[str, str] = MappingProxyType({})

#: IRCv3 tag value escapes (message-tags: "Escaping values").
_TAG_UNESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}


def _unescape_tag(value: str) -> str:
    if "\\" not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            i += 1
            if i < len(value):
                out.append(_TAG_UNESCAPES.get(value[i], value[i]))
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _escape_tag(value: str) -> str:
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\:")
        .replace(" ", "\\s")
        .replace("\r", "\\r")
        .replace("\n", "\\n")
    )


def parse_tags(text: str) -> Mapping[str, str]:
    """``a=1;b;c=x\\sy`` to ``{"a": "1", "b": "", "c": "x y"}`` (the leading ``@`` removed)."""
    tags: dict[str, str] = {}
    for item in text.split(";"):
        if not item:
            continue
        key, _, value = item.partition("=")
        tags[key] = _unescape_tag(value)
    return MappingProxyType(tags)


def parse_line(line: str) -> Message:
    """Parse one line, terminator removed (a trailing ``\\r`` is dropped too).

    Raises :class:`IrcError` for a line with no command. Runs of spaces between
    parameters count as one, as servers send them.
    """
    if line.endswith("\r"):
        line = line[:-1]
    rest = line
    tags = _NO_TAGS
    if rest.startswith("@"):
        head, _, rest = rest.partition(" ")
        tags = parse_tags(head[1:])
        rest = rest.lstrip(" ")
    source = _NO_SOURCE
    if rest.startswith(":"):
        head, _, rest = rest.partition(" ")
        source = head[1:]
        rest = rest.lstrip(" ")
    trailing: str | None = None
    if " :" in rest:
        rest, _, trailing = rest.partition(" :")
    elif rest.startswith(":"):
        raise IrcError(f"no command in {line[:80]!r}")
    words = rest.split()
    if not words:
        raise IrcError(f"no command in {line[:80]!r}")
    command = words[0].upper()
    params = words[1:]
    if trailing is not None:
        params.append(trailing)
    return Message(command, tuple(params), source, tags)


def format_line(command: str, *params: str, source: str = "", tags: Mapping[str, str] | None = None) -> str:
    """A line (no terminator): every parameter but the last must be one word not starting with ``:``.

    The last is sent as a trailing parameter (``:text``) when it needs to be (it
    is empty, holds a space or starts with a colon). Raises :class:`IrcError`
    for what the wire cannot carry.
    """
    if not command or " " in command:
        raise IrcError(f"not a command: {command!r}")
    parts: list[str] = []
    if tags:
        parts.append("@" + ";".join(f"{k}={_escape_tag(v)}" if v else k for k, v in tags.items()))
    if source:
        parts.append(":" + source)
    parts.append(command)
    for i, p in enumerate(params):
        if "\r" in p or "\n" in p or "\0" in p:
            raise IrcError(f"a parameter must not hold a line break or NUL: {p!r}")
        last = i == len(params) - 1
        if last and (not p or " " in p or p.startswith(":")):
            parts.append(":" + p)
        elif not p or " " in p or p.startswith(":"):
            raise IrcError(f"only the last parameter may be empty, hold a space or start with ':': {p!r}")
        else:
            parts.append(p)
    return " ".join(parts)


def encode_line(line: str) -> bytes:
    """One line on the wire: UTF-8, CRLF."""
    if "\r" in line or "\n" in line:
        raise IrcError(f"a line must not hold a line break: {line!r}")
    return (line + "\r\n").encode("utf-8")


def nick_of(source: str) -> str:
    """``nick`` of ``nick!user@host``; ``""`` for a server name (it holds a dot and no ``!``) or none."""
    if not source:
        return ""
    nick = source.split("!", 1)[0].split("@", 1)[0]
    if "!" not in source and "." in nick:
        return ""
    return nick


def pong_for(msg: Message) -> str | None:
    """The answer to a server's ``PING`` (its token back), or None for any other line."""
    if msg.command != "PING":
        return None
    return format_line("PONG", msg.trailing) if msg.params else "PONG"


def strip_names_prefix(name: str) -> str:
    """A nickname of a NAMES reply without its membership prefixes (``@alice`` is ``alice``)."""
    return name.lstrip(NAMES_PREFIXES)


# -- case mapping and RPL_ISUPPORT --------------------------------------------------------------------

CASEMAPPINGS = ("ascii", "rfc1459", "strict-rfc1459")
_ASCII = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_RFC1459 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\~", "abcdefghijklmnopqrstuvwxyz{}|^")
_STRICT_RFC1459 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\", "abcdefghijklmnopqrstuvwxyz{}|")
_TABLES = {"ascii": _ASCII, "rfc1459": _RFC1459, "strict-rfc1459": _STRICT_RFC1459}


def casefold(name: str, casemapping: str = "rfc1459") -> str:
    """``name`` folded as the server compares names under ``casemapping``.

    RFC 1459 is the default when a server announces none. An unknown mapping
    (``rfc7613``, say) is folded as ``ascii``, which every mapping folds at least.
    """
    return name.translate(_TABLES.get(casemapping.lower(), _ASCII))


@dataclass
class ISupport:
    """What a server announced in its ``005`` lines, for the tokens the harness uses (and all of them raw).

    Defaults are RFC 1459's: ``rfc1459`` casemapping, nicknames of 9 characters,
    channels of 200, channel types ``#&``.
    """

    casemapping: str = "rfc1459"
    nicklen: int = 9
    channellen: int = 200
    chantypes: str = "#&"
    #: Every token, ``KEY -> value`` (``""`` for a token without one).
    tokens: dict[str, str] = field(default_factory=dict)

    def update(self, msg: Message) -> None:
        """Take the tokens of one ``005`` line (``<nick> TOKEN... :are supported by this server``)."""
        if msg.command != RPL_ISUPPORT:
            return
        for token in msg.params[1:-1]:
            if token.startswith("-"):
                self.tokens.pop(token[1:].upper(), None)
                continue
            key, _, value = token.partition("=")
            key = key.upper()
            value = _unescape_isupport(value)
            self.tokens[key] = value
            if key == "CASEMAPPING" and value:
                self.casemapping = value.lower()
            elif key == "NICKLEN" and value.isdigit():
                self.nicklen = int(value)
            elif key == "CHANNELLEN" and value.isdigit():
                self.channellen = int(value)
            elif key == "CHANTYPES":
                self.chantypes = value

    def fold(self, name: str) -> str:
        """``name`` under this server's casemapping."""
        return casefold(name, self.casemapping)


def _unescape_isupport(value: str) -> str:
    """ISUPPORT values escape bytes as ``\\xHH`` (``\\x20`` is a space)."""
    if "\\x" not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        if value.startswith("\\x", i) and i + 4 <= len(value):
            try:
                out.append(chr(int(value[i + 2 : i + 4], 16)))
                i += 4
                continue
            except ValueError:
                pass
        out.append(value[i])
        i += 1
    return "".join(out)


def normalise_channel(text: str) -> str:
    """A channel as a command line may give it: ``chat``, ``#chat`` or ``%23chat``, always with its ``#``.

    Raises :class:`IrcError` for what no server takes as a channel (a space, a
    comma, a BEL or a control character, or an empty name).
    """
    name = text.replace("%23", "#")
    if not name.startswith(("#", "&")):
        name = "#" + name
    body = name[1:]
    if not body or any(ch in " ,\x07" or ord(ch) < 32 for ch in body):
        raise IrcError(f"not a channel name: {text!r}")
    return name


# -- registration -------------------------------------------------------------------------------------


class RegState(Enum):
    """Where a client's registration is."""

    #: ``CAP LS 302`` sent; waiting for the list (or a server that does not know CAP).
    CAP_LISTING = "cap-listing"
    #: ``CAP REQ`` sent; waiting for ``ACK`` or ``NAK``.
    CAP_REQUESTING = "cap-requesting"
    #: Negotiation over (or none); waiting for ``001`` or a refusal of the nickname.
    REGISTERING = "registering"
    #: The last nickname offered was refused; another may be offered (:meth:`Registration.offer`).
    REFUSED = "refused"
    #: ``001`` came: registered.
    REGISTERED = "registered"
    #: ``ERROR`` came: the server is closing the connection.
    CLOSED = "closed"


class NickRefusal(str, Enum):
    """Why a nickname was refused (:attr:`Registration.refusal`)."""

    TAKEN = "taken"
    INVALID = "invalid"

    def __str__(self) -> str:
        return self.value


@dataclass
class Registration:
    """A client's registration, sans-IO: :meth:`start` and :meth:`offer` give lines to send,
    :meth:`receive` takes each server line and gives the lines to send in answer.

    ``wanted`` are the capabilities the caller uses; only those the server lists
    are requested, in one ``CAP REQ``. A server that answers ``CAP`` with
    ``421`` (unknown command) registers without negotiation.
    """

    wanted: tuple[str, ...] = ()
    state: RegState = RegState.CAP_LISTING
    #: Capabilities the server listed (names, values dropped).
    offered: set[str] = field(default_factory=set)
    #: Capabilities the server granted.
    acked: set[str] = field(default_factory=set)
    #: The nickname offered last.
    offered_nick: str = ""
    #: The nickname as the server registered it (the first parameter of ``001``).
    nick: str = ""
    refusal: NickRefusal | None = None
    #: The refusing line's text, for the record and the witnesses.
    refusal_text: str = ""
    isupport: ISupport = field(default_factory=ISupport)
    #: The ``ERROR`` text when the server closed the registration.
    error: str = ""
    _listing: set[str] = field(default_factory=set)

    def start(self, nick: str, realname: str = "") -> list[str]:
        """The opening lines: ``CAP LS 302``, ``NICK``, ``USER``. Registration then waits for ``CAP END``."""
        self.offered_nick = nick
        self.refusal = None
        return ["CAP LS 302", *self.offer_lines(nick, realname=realname or nick, with_user=True)]

    def offer_lines(self, nick: str, *, realname: str = "", with_user: bool = False) -> list[str]:
        lines = [format_line("NICK", nick)]
        if with_user:
            lines.append(format_line("USER", USER_NAME, "0", "*", realname or nick))
        return lines

    def offer(self, nick: str) -> list[str]:
        """Another nickname after a refusal: ``NICK`` alone (``USER`` was sent with the first)."""
        self.offered_nick = nick
        self.refusal = None
        if self.state is RegState.REFUSED:
            self.state = RegState.REGISTERING
        return [format_line("NICK", nick)]

    @property
    def echo_message(self) -> bool:
        """Whether the server echoes this client's own PRIVMSGs back to it."""
        return "echo-message" in self.acked

    def receive(self, msg: Message) -> list[str]:
        """One server line; returns the lines to send in answer (``CAP REQ``, ``CAP END``)."""
        command = msg.command
        if command == "CAP":
            return self._on_cap(msg)
        if command == ERR_UNKNOWNCOMMAND and msg.param(1).upper() == "CAP":
            if self.state in (RegState.CAP_LISTING, RegState.CAP_REQUESTING):
                self.state = RegState.REGISTERING  # no CAP here: registration goes on without it
            return []
        if command == RPL_WELCOME:
            if self.state is not RegState.CLOSED:
                self.state = RegState.REGISTERED
                self.nick = msg.param(0) or self.offered_nick
            return []
        if command == RPL_ISUPPORT:
            self.isupport.update(msg)
            return []
        if command in NICK_TAKEN or command in NICK_INVALID:
            if self.state is not RegState.REGISTERED and self.state is not RegState.CLOSED:
                self.refusal = NickRefusal.TAKEN if command in NICK_TAKEN else NickRefusal.INVALID
                self.refusal_text = msg.trailing
                if self.state is RegState.REGISTERING:
                    self.state = RegState.REFUSED
            return []
        if command == "ERROR":
            self.state = RegState.CLOSED
            self.error = msg.trailing
        return []

    def _on_cap(self, msg: Message) -> list[str]:
        sub = msg.param(1).upper()
        if sub == "LS" and self.state is RegState.CAP_LISTING:
            more = len(msg.params) >= 4 and msg.params[2] == "*"
            self._listing.update(item.split("=", 1)[0] for item in msg.trailing.split())
            if more:
                return []
            self.offered = set(self._listing)
            request = [cap for cap in self.wanted if cap in self.offered]
            if request:
                self.state = RegState.CAP_REQUESTING
                return [format_line("CAP", "REQ", " ".join(request))]
            return self._end_negotiation()
        if sub == "ACK" and self.state is RegState.CAP_REQUESTING:
            self.acked.update(cap.lstrip("-~=") for cap in msg.trailing.split() if not cap.startswith("-"))
            return self._end_negotiation()
        if sub == "NAK" and self.state is RegState.CAP_REQUESTING:
            return self._end_negotiation()
        return []

    def _end_negotiation(self) -> list[str]:
        # A NICK refused while negotiating leaves the registration waiting for another one.
        self.state = RegState.REFUSED if self.refusal is not None else RegState.REGISTERING
        return ["CAP END"]


def isupport_of(lines: Iterable[str]) -> ISupport:
    """The ``005`` tokens among received lines (a recorded connection's, say)."""
    isupport = ISupport()
    for line in lines:
        if f" {RPL_ISUPPORT} " not in line:
            continue
        try:
            isupport.update(parse_line(line))
        except IrcError:
            continue
    return isupport
