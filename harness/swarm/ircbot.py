"""IRC bots: the swarm's :class:`~harness.swarm.bot.BotConnection` speaking IRC, so every scenario drives IRC.

The behaviours (:mod:`harness.swarm.scenarios`) stay as they are: they ask a
connection to offer a name, chat, ask who is there, wait for their last message
and quit, and this class says each in IRC (docs/irc.md):

=========================  ==========================================================================
a behaviour asks           an IRC bot sends
=========================  ==========================================================================
offer a name               ``CAP LS 302``, ``NICK``, ``USER`` (then ``NICK`` alone after a refusal);
                           the recorder answers the negotiation and sends ``JOIN`` on ``001``
chat                       ``PRIVMSG <channel> :<payload>``
``/who``                   ``NAMES <channel>``
wait for its last message  its echo with ``echo-message``; else ``PING :drain-<n>`` and its ``PONG``
``/quit``                  ``QUIT :quit``
=========================  ==========================================================================

Lines the recorder queues in answer to the server (``PONG``, ``CAP``, ``JOIN``)
are written as soon as the read that asked for them is handled.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from harness.common import irc
from harness.record.connection import JoinOutcome, RecordingConnection
from harness.record.history import ClientHistory
from harness.record.irc import IrcRecordingConnection, drain_line
from harness.record.payload import encode_payload
from harness.swarm.bot import BotConnection, BotHost, ConnectionEnded

#: RFC 1459's nickname length, which ngircd keeps by default: the bots' names stay within it.
NICKLEN = 9
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"

#: Connections between ``connect()`` and the server's first line, at most, per hive. ngircd listens
#: with a fixed backlog of 10: more pending connections lose their SYN (a 1 s retransmission) or are
#: reset. The first line comes at once (the answer to ``CAP LS``), so the bound costs nothing else.
CONNECTS_IN_FLIGHT = 8


def nick_for(name: str) -> str:
    """A scenario's name as a nickname within :data:`NICKLEN`: a churner's round (``b0123-4567``) in
    base 36 (``b0123-3iv``), always (so no two rounds' names can meet), which keeps 10,000 bots of 46,655
    rounds each within 9 characters. Other names (``b07``, ``race0``) are short already."""
    head, dash, tail = name.rpartition("-")
    if not dash or not tail.isdigit():
        return name
    n, digits = int(tail), ""
    while True:
        n, r = divmod(n, 36)
        digits = _BASE36[r] + digits
        if n == 0:
            return f"{head}-{digits}"


class IrcBotConnection(BotConnection):
    """One IRC connection of one bot (see the module's docstring)."""

    QUIT_LINE = "QUIT :quit"
    rec: IrcRecordingConnection

    def _make_recorder(self, history: ClientHistory, host: BotHost) -> RecordingConnection:
        return IrcRecordingConnection(history, host.counters, channel=host.config.channel)

    def buffer_updated(self, nbytes: int) -> None:
        super().buffer_updated(nbytes)
        out = self.rec.take_outgoing()
        if out and self.rec.is_open:
            self._write_lines(out)

    def _write_lines(self, lines: Sequence[str]) -> None:
        self._write(b"".join(irc.encode_line(line) for line in lines))
        t = time.time()
        for line in lines:
            self.rec.sent(t, line)

    def send_line(self, text: str) -> None:
        """Write one IRC line and record it."""
        self._write_lines((text,))

    def send_chats(self, items: Sequence[tuple[int, float]], *, extra: Sequence[str] = ()) -> None:
        """PRIVMSGs for messages ``(n, due)``, then ``extra`` (``/who`` becomes ``NAMES``), in one write."""
        bot, pad, rec = self.history.bot, self.pad, self.rec
        texts = [encode_payload(bot, n, due, pad) for n, due in items]
        lines = [rec.names_line() if line == "/who" else line for line in extra]
        data = [irc.encode_line(rec.chat_line(text)) for text in texts]
        data += [irc.encode_line(line) for line in lines]
        self._write(b"".join(data))
        rec.sent_chats(time.time(), texts, [due for _, due in items], lines)

    async def handshake(self, name: str, deadline: float) -> JoinOutcome:
        """Offer ``name`` as a nickname; returns how the offer ended, joined meaning the own JOIN came.

        The first offer opens the registration; a later one, after a refusal,
        is a ``NICK`` alone on the same connection.
        """
        rec = self.rec
        try:
            self._write_lines(rec.opening(nick_for(name)))
            await self._until(lambda: rec.join_outcome is not None, deadline)
        except TimeoutError:
            return rec.handshake_timed_out()
        except ConnectionEnded:
            return JoinOutcome.EOF
        assert rec.join_outcome is not None
        return rec.join_outcome

    async def wait_echo(self, n: int, deadline: float) -> bool:
        """Wait until the server has handled this bot's message ``n``: its echo, or the drain ``PONG``."""
        rec = self.rec
        if rec.echo:
            return await super().wait_echo(n, deadline)
        try:
            self.send_line(drain_line(n))
        except ConnectionEnded:
            return False
        while rec.drained_n < n:
            if not rec.is_open:
                return False
            if not await self._wait_change(deadline):
                if rec.drained_n >= n:
                    return True
                rec.waited_in_vain()
                return False
        return True
