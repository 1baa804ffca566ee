"""One recorded IRC connection, sans-IO: :class:`~harness.record.connection.RecordingConnection` for IRC.

No sockets, no clock, no threads. It keeps the recording connection's contract
(the driver tells what happened, with its time; the history records every line
raw, as the server sent it) and its handshake tracking (:class:`JoinStage`,
:class:`JoinOutcome`), with IRC's steps in place of our protocol's:

=====================================  ===========================================================
our protocol                           IRC (:mod:`harness.common.irc`)
=====================================  ===========================================================
``HELLO``                              the first line from the server (the answer to ``CAP LS``)
the name line                          ``NICK <name>`` (with ``CAP LS 302`` and ``USER`` first)
``OK`` and the own ``JOIN``            ``001``, then the own ``JOIN`` echo (``JOIN`` is sent on ``001``)
``ERR name-taken`` / ``invalid-name``  ``433``, ``436``, ``437`` / ``432``, ``431``
``MSG``                                ``PRIVMSG <channel>``
``/who`` and ``USERS``                 ``NAMES <channel>``, ``353`` ... ``366``
``/quit`` and ``BYE``                  ``QUIT :reason`` and ``ERROR``
=====================================  ===========================================================

Lines the connection must send in answer, at once, are queued for the driver
(:meth:`IrcRecordingConnection.take_outgoing`): ``PONG`` to a ``PING``, the
capability negotiation's ``CAP REQ``/``CAP END``, and ``JOIN`` once registered.
A sender gets its own messages back only when the server granted
``echo-message`` (:attr:`IrcRecordingConnection.echo`); otherwise a driver that
must know the server has handled its messages sends ``PING :drain-<n>``, and the
``PONG`` that answers it comes after the server handled everything sent before
(:attr:`IrcRecordingConnection.drained_n`).

How the checker reads such a history: :mod:`harness.checker.irc`.
"""

from __future__ import annotations

from collections.abc import Sequence

from chat.protocol import Bye, Err, ErrorCode
from harness.common import irc
from harness.record.connection import (
    MAX_RECORDED_LINE,
    SAMPLE_EVERY,
    Answer,
    JoinOutcome,
    JoinStage,
    RecordingConnection,
)
from harness.record.counters import LiveCounters
from harness.record.history import ClientHistory, Sent

#: The capabilities a swarm bot uses, requested only where offered.
WANTED_CAPS = ("echo-message",)
#: The token of a drain ``PING``: ``drain-<n>``, ``n`` the bot's last message counter.
DRAIN_PREFIX = "drain-"
_NO_ANSWERS: tuple[Answer, ...] = ()


def drain_line(n: int) -> str:
    """The ``PING`` whose ``PONG`` says the server handled everything sent before it (message ``n`` too)."""
    return irc.format_line("PING", f"{DRAIN_PREFIX}{n}")


class IrcRecordingConnection(RecordingConnection):
    """The recorder, router and handshake tracker of one IRC connection (see the module's docstring)."""

    def __init__(
        self,
        history: ClientHistory,
        counters: LiveCounters | None = None,
        *,
        channel: str = "#chat",
        wanted_caps: tuple[str, ...] = WANTED_CAPS,
        record: bool = True,
        sample_every: int = SAMPLE_EVERY,
        max_line: int = MAX_RECORDED_LINE,
    ) -> None:
        super().__init__(history, counters, record=record, sample_every=sample_every, max_line=max_line)
        self.channel = channel
        self.registration = irc.Registration(wanted=wanted_caps)
        self._channel_key = self.registration.isupport.fold(channel)
        self._privmsg_head = f"PRIVMSG {channel} :"
        self._outgoing: list[str] = []
        self._join_sent = False
        #: Highest ``n`` of a ``PONG :drain-<n>`` received.
        self.drained_n = -1
        #: The text of the server's ``ERROR`` line, when one came.
        self.error_text = ""

    # -- what the driver needs ------------------------------------------------------------------
    @property
    def echo(self) -> bool:
        """Whether this client gets its own messages back (``echo-message`` granted)."""
        return self.registration.echo_message

    @property
    def started(self) -> bool:
        """The registration's opening lines were sent (later offers are a ``NICK`` alone)."""
        return bool(self.registration.offered_nick)

    def opening(self, nick: str) -> list[str]:
        """The lines of a first offer: ``CAP LS 302``, ``NICK``, ``USER``; else a ``NICK`` alone."""
        if self.started:
            return self.registration.offer(nick)
        return self.registration.start(nick)

    def chat_line(self, text: str) -> str:
        """A chat message as the line that sends it."""
        return self._privmsg_head + text

    def names_line(self) -> str:
        return irc.format_line("NAMES", self.channel)

    def take_outgoing(self) -> list[str]:
        """Lines to send at once (``PONG``, ``CAP REQ``/``END``, ``JOIN``); the driver records them sent."""
        out, self._outgoing = self._outgoing, []
        return out

    # -- what the driver tells ----------------------------------------------------------------
    def sent(self, t: float, text: str, due: float | None = None) -> None:
        """The IRC line ``text`` was written at ``t``: ``NICK`` offers a name, ``QUIT`` asks to leave."""
        if self.record:
            self._log.append(Sent(t, text, due))
        command, _, rest = text.partition(" ")
        command = command.upper()
        if command == "QUIT":
            self.quit_sent = True
        elif command == "NICK" and self.stage is JoinStage.WAITING:
            self.stage = JoinStage.OFFERED
            self.offered = rest.lstrip(":")
            self.join_outcome = None
            self.refusal = None

    def sent_chats(
        self, t: float, texts: Sequence[str], dues: Sequence[float], extra: Sequence[str] = ()
    ) -> None:
        """Chat messages ``texts`` (due at ``dues``) sent as PRIVMSGs, then the IRC lines ``extra``."""
        counts = self.counters.counts
        counts.sent += len(texts)
        if extra:
            counts.whos += sum(1 for line in extra if line.startswith("NAMES "))
        if self.record:
            log = self._log
            head = self._privmsg_head
            for text, due in zip(texts, dues, strict=True):
                log.append(Sent(t, head + text, due))
            for line in extra:
                log.append(Sent(t, line))

    def receive(self, t: float, data: bytes) -> Sequence[Answer]:
        """Bytes that arrived at ``t``: record their lines, count, answer PINGs, follow the registration.

        Channel PRIVMSGs (the bulk of a loaded run) go through a split of the
        line, not the full parser; every other line through :func:`irc.parse_line`.
        """
        lines = self._splitter.feed(data)
        if not lines:
            return _NO_ANSWERS
        if self.record:
            self._log.append((t, lines))
        counts = self.counters.counts
        counts.lines += len(lines)
        counts.reads += 1
        if not self.greeted:
            self.greeted = True
        delivered = 0
        sample = self._sample
        for line in lines:
            if line.startswith(":"):
                parts = line.split(" ", 3)
                if len(parts) == 4 and parts[1] == "PRIVMSG":
                    if self.registration.isupport.fold(parts[2]) == self._channel_key:
                        delivered += 1
                        sample -= 1
                        sender = irc.nick_of(parts[0][1:])
                        if sender != self.name and sample > 0:
                            continue
                        if sender != self.name:
                            sample = self._sample_reload
                        text = parts[3][1:] if parts[3].startswith(":") else parts[3]
                        self._sampled(t, None, sender, text)
                    continue
            try:
                msg = irc.parse_line(line)
            except irc.IrcError:
                continue  # recorded raw: the checker says what it is
            if msg.command == "PRIVMSG":
                if self.registration.isupport.fold(msg.param(0)) == self._channel_key:
                    delivered += 1
                    self._sampled(t, None, msg.nick, msg.trailing)
                continue
            self._on_line(msg)
        self._sample = sample
        counts.delivered += delivered
        return _NO_ANSWERS

    # -- receiving ----------------------------------------------------------------------------
    def _on_line(self, msg: irc.Message) -> None:
        """Any line but a channel PRIVMSG: PING, the registration, the own JOIN, ERROR, PONG."""
        pong = irc.pong_for(msg)
        if pong is not None:
            self._outgoing.append(pong)
            return
        reg = self.registration
        before = reg.state
        self._outgoing += reg.receive(msg)
        command = msg.command
        if reg.state is irc.RegState.REGISTERED and before is not irc.RegState.REGISTERED:
            self._channel_key = reg.isupport.fold(self.channel)
        if command == irc.RPL_WELCOME and not self._join_sent and self.stage is JoinStage.OFFERED:
            self._join_sent = True
            self._outgoing.append(irc.format_line("JOIN", self.channel))
        elif command == irc.RPL_ISUPPORT:
            self._channel_key = reg.isupport.fold(self.channel)
        elif command == "JOIN":
            self._on_join(msg)
        elif command in irc.NICK_TAKEN or command in irc.NICK_INVALID:
            if reg.refusal is not None and self.stage is JoinStage.OFFERED:
                code = (
                    ErrorCode.NAME_TAKEN if reg.refusal is irc.NickRefusal.TAKEN else ErrorCode.INVALID_NAME
                )
                outcome = JoinOutcome.TAKEN if code is ErrorCode.NAME_TAKEN else JoinOutcome.INVALID
                self._end_handshake(outcome, Err(code, reg.refusal_text), final=False)
        elif command in irc.JOIN_REFUSED and self.stage is JoinStage.OFFERED and self._join_sent:
            self._end_handshake(JoinOutcome.REFUSED, Err(ErrorCode.FULL, msg.trailing), final=True)
        elif command == "PONG":
            token = msg.trailing
            if token.startswith(DRAIN_PREFIX) and token[len(DRAIN_PREFIX) :].isdigit():
                self.drained_n = max(self.drained_n, int(token[len(DRAIN_PREFIX) :]))
        elif command == "ERROR":
            self.error_text = msg.trailing
            self._end_handshake(JoinOutcome.BYE, Bye(msg.trailing))

    def _on_join(self, msg: irc.Message) -> None:
        """The own JOIN echo to the channel ends the handshake: a member from here on."""
        if self.stage is not JoinStage.OFFERED:
            return
        fold = self.registration.isupport.fold
        own = self.registration.nick or self.offered or ""
        if fold(msg.nick) != fold(own) or fold(msg.param(0)) != self._channel_key:
            return
        self.name = msg.nick
        self.stage = JoinStage.JOINED
        self.join_outcome = JoinOutcome.OK
        counts = self.counters.counts
        counts.members += 1
        counts.joins += 1
