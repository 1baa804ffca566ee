"""One recorded client connection, sans-IO: bytes in, events out. No sockets, no clock, no threads.

Theory of operation
-------------------
A driver owns the socket and the clock (the swarm's asyncio bot,
:mod:`harness.swarm.bot`; the locust client, :mod:`harness.locust.client`) and
tells a :class:`RecordingConnection` what happened, with the time it happened:

=================================  =====================================================
``connected(t, asked)``            the TCP connection opened (asked for at ``asked``)
``receive(t, data)``               bytes arrived; returns the *answers* among them
``sent(t, text, due)``             a line was written (``due``: a chat message's schedule)
``lost(t, error)``                 the server closed the connection, or the socket failed
``close(t, how, detail)``          the client ended it itself
``handshake_timed_out()``          the driver's bound on the handshake ran out
``waited_in_vain()``               another bounded wait of the driver ran out
=================================  =====================================================

In return the connection

* **records** the client's :class:`~harness.record.history.ClientHistory`: one
  ``Connected``, every line ``Sent``, every line ``Received`` (the lines of one
  read share its time), and exactly one ``Closed``, last. Received lines are kept
  per read, as the list the read gave, until :meth:`take_history` makes the
  events: while the server is loaded, the reader spends its CPU reading;
* **routes** what a waiting action needs: :meth:`receive` returns the *answers*
  in order: ``HELLO``, ``OK``, ``ERR``, ``BYE`` and the client's own ``JOIN``,
  and, with ``replies=True`` (a client that times each request), also ``USERS``,
  the client's own messages coming back (as :class:`chat.protocol.Msg`) and each
  line no event fits (as :class:`chat.protocol.RemoteProtocolError`);
* **tracks the handshake** (:class:`JoinStage`): ``HELLO`` seen, the name
  offered (the first line sent while no name is pending, as the protocol says),
  ``OK`` (the name as accepted; a member), and the own ``JOIN``, which also tells
  the server's numbering style (:func:`chat.protocol.broadcast_numbering`). Each
  offer ends in one :class:`JoinOutcome`;
* **counts** cheaply for the live view (:class:`~harness.record.counters.LiveCounters`):
  deliveries, seq steps other than +1, a sender's counter going back, the latency
  of the client's own messages and of one other message in ``sample_every``.

Lines are parsed only by :mod:`chat.protocol`: its receivers' fast paths
(``LineSplitter``, ``split_msg``, ``broadcast_seq``) for the bulk of broadcasts,
``parse_server_line`` for everything else. Nothing here judges: the checker
reads every recorded line after the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from chat import protocol
from chat.protocol import Bye, Err, ErrorCode, Hello, Join, Msg, Ok, RemoteProtocolError, ServerEvent, Users
from harness.record.counters import LiveCounters
from harness.record.history import ClientHistory, Closed, Connected, Event, HowClosed, Received, Sent
from harness.record.payload import split_payload

#: Longest line recorded as it came; a longer one is recorded as
#: :func:`chat.protocol.overlong_line`. Far above any server's own limit: a client
#: must record what a broken server sends, not refuse it.
MAX_RECORDED_LINE = 1 << 20
#: One received MSG of another client in this many feeds the live latency and
#: FIFO counters (the client's own messages always do): a sample keeps the
#: readers' CPU for reading, and the checker reads every line at the end.
SAMPLE_EVERY = 4
#: A countdown that never reaches zero in a run: ``sample_every=0`` samples nobody else.
_NEVER = 1 << 62

#: What a waiting action may need (see the module's docstring).
Answer = ServerEvent | RemoteProtocolError
_NO_ANSWERS: tuple[Answer, ...] = ()
_split_msg = protocol.split_msg


class JoinStage(Enum):
    """Where a connection's handshake is."""

    #: No name pending: none offered yet, or the last one refused (another may be offered).
    WAITING = "waiting"
    #: A name was offered; no answer yet.
    OFFERED = "offered"
    #: ``OK``: the name was accepted (a member); the own ``JOIN`` has not come yet.
    ACCEPTED = "accepted"
    #: The own ``JOIN`` came: joined.
    JOINED = "joined"
    #: Refused for good (``ERR`` before the greeting, ``ERR full``, ``BYE``) or closed before joining.
    ENDED = "ended"


class JoinOutcome(str, Enum):
    """How one name offer ended (:attr:`RecordingConnection.join_outcome`)."""

    #: Joined: ``OK`` and the own ``JOIN`` (or ``OK`` and no ``JOIN`` in time: the checker's business).
    OK = "ok"
    TAKEN = "taken"
    INVALID = "invalid"
    FULL = "full"
    #: Another ``ERR``.
    REFUSED = "refused"
    BYE = "bye"
    #: The connection closed first.
    EOF = "eof"
    #: No answer within the driver's bound.
    TIMEOUT = "timeout"

    def __str__(self) -> str:
        return self.value


_REFUSALS = {
    ErrorCode.NAME_TAKEN: JoinOutcome.TAKEN,
    ErrorCode.INVALID_NAME: JoinOutcome.INVALID,
    ErrorCode.FULL: JoinOutcome.FULL,
}


class RecordingConnection:
    """The recorder, router, handshake tracker and counter of one connection (see the module's docstring)."""

    def __init__(
        self,
        history: ClientHistory,
        counters: LiveCounters | None = None,
        *,
        record: bool = True,
        replies: bool = False,
        sample_every: int = SAMPLE_EVERY,
        max_line: int = MAX_RECORDED_LINE,
    ) -> None:
        self.history = history
        self.counters = counters if counters is not None else LiveCounters()
        self.record = record
        self.replies = replies
        self._splitter = protocol.LineSplitter(max_line)
        #: Events, except that the lines of one read are kept as one ``(t, lines)`` tuple.
        self._log: list[Event | tuple[float, list[str]]] = []
        self.is_open = False
        self.is_closed_recorded = False
        #: A leave request (``/quit``) was sent: the server's close is then how the client quit.
        self.quit_sent = False
        # -- the handshake --
        self.greeted = False
        self.stage = JoinStage.WAITING
        #: The name offered last (None before any offer).
        self.offered: str | None = None
        #: The name as the server accepted it (``OK <name>``).
        self.name: str | None = None
        #: How the last offer ended; None while it is pending (or before any offer).
        self.join_outcome: JoinOutcome | None = None
        #: The ``ERR`` or ``BYE`` that ended the last offer, when one did.
        self.refusal: Err | Bye | None = None
        #: The server's numbering style, from the own JOIN: True numbered, False not, None unknown.
        self.seqs: bool | None = None
        # -- live figures --
        self.last_seq: int | None = None
        #: Highest counter of this client's own messages seen coming back.
        self.last_echo_n = -1
        self._fifo: dict[str, int] = {}
        self._sample_reload = sample_every if sample_every > 0 else _NEVER
        self._sample = 1  # the first message of another client is sampled

    # -- state ---------------------------------------------------------------------------------
    @property
    def is_member(self) -> bool:
        """The name was accepted and the connection is still open."""
        return self.is_open and self.stage in (JoinStage.ACCEPTED, JoinStage.JOINED)

    @property
    def has_joined(self) -> bool:
        """The own ``JOIN`` came and the connection is still open."""
        return self.is_open and self.stage is JoinStage.JOINED

    # -- what the driver tells ----------------------------------------------------------------
    def connected(self, t: float, asked: float) -> None:
        """The TCP connection opened at ``t``; it was asked for at ``asked``."""
        self.is_open = True
        self.counters.counts.connected += 1
        if self.record:
            self._log.append(Connected(t, asked))

    def sent(self, t: float, text: str, due: float | None = None) -> None:
        """The line ``text`` was written at ``t``.

        While no name is pending, a line is the name offered (the protocol's
        handshake), unless it asks to leave.
        """
        if self.record:
            self._log.append(Sent(t, text, due))
        if protocol.is_leave_request(text):
            self.quit_sent = True
        elif self.stage is JoinStage.WAITING:
            self.stage = JoinStage.OFFERED
            self.offered = text
            self.join_outcome = None
            self.refusal = None

    def sent_chats(
        self, t: float, texts: Sequence[str], dues: Sequence[float], extra: Sequence[str] = ()
    ) -> None:
        """Chat messages ``texts`` (due at ``dues``), then the command lines ``extra``, written at ``t``."""
        counts = self.counters.counts
        counts.sent += len(texts)
        if extra:
            counts.whos += sum(1 for text in extra if text == "/who")
        if self.record:
            log = self._log
            for text, due in zip(texts, dues, strict=True):
                log.append(Sent(t, text, due))
            for text in extra:
                log.append(Sent(t, text))

    def receive(self, t: float, data: bytes) -> Sequence[Answer]:
        """Bytes that arrived at ``t``: record their lines, count, and return the answers among them.

        The loop over MSG lines is the hot path of a loaded run (hundreds of
        thousands of lines a second): it splits each line once and keeps the
        state it reads in locals, and only a sampled or own message goes on to
        :meth:`_sampled`.
        """
        lines = self._splitter.feed(data)
        if not lines:
            return _NO_ANSWERS
        if self.record:
            self._log.append((t, lines))
        counts = self.counters.counts
        counts.lines += len(lines)
        counts.reads += 1
        answers: list[Answer] | None = None
        split_msg = _split_msg
        seqs, name, last_seq, sample = self.seqs, self.name, self.last_seq, self._sample
        delivered = anomalies = 0
        for line in lines:
            answer: Answer | None
            fields = split_msg(line, seqs)  # most lines are MSGs: try that first
            if fields is not None:
                delivered += 1
                seq, sender, text = fields
                if seqs:
                    if seq is None:
                        anomalies += 1
                    else:
                        if last_seq is not None and seq != last_seq + 1:
                            anomalies += 1
                        last_seq = seq
                sample -= 1
                if sender != name:
                    if sample > 0:
                        continue
                    sample = self._sample_reload
                answer = self._sampled(t, seq, sender, text)
            elif line.startswith("MSG "):
                delivered += 1  # without its fields: recorded raw for the checker
                continue
            else:
                self.last_seq, self._sample = last_seq, sample
                if line.startswith(("JOIN ", "LEAVE ")):
                    answer = self._on_membership(line)
                elif not self.replies and line.startswith("USERS"):
                    continue  # an answer to /who nobody waits for: recorded, not parsed
                else:
                    answer = self._on_control(line)
                # The own JOIN tells the numbering, OK the name: read them again.
                seqs, name, last_seq = self.seqs, self.name, self.last_seq
            if answer is not None:
                if answers is None:
                    answers = []
                answers.append(answer)
        self.last_seq, self._sample = last_seq, sample
        counts.delivered += delivered
        if anomalies:
            counts.seq_anomalies += anomalies
        return answers if answers is not None else _NO_ANSWERS

    def lost(self, t: float, error: str | None = None) -> None:
        """The server closed the connection (``error`` None), or the socket failed with ``error``."""
        if not self.is_closed_recorded:
            if self.quit_sent:
                self._record_closed(t, HowClosed.QUIT, "")
            else:
                self._record_closed(t, HowClosed.EOF if error is None else HowClosed.ERROR, error or "")
                self.counters.counts.closed_by_server += 1
        self._went_away()

    def close(self, t: float, how: HowClosed, detail: str = "") -> bool:
        """The client ends the connection ``how``; False when how it ended is already recorded."""
        recorded = not self.is_closed_recorded
        if recorded:
            self._record_closed(t, how, detail)
        self._went_away()
        return recorded

    def waited_in_vain(self) -> None:
        """A bounded wait of the driver ran out (a connect, an echo, a close): a live liveness count."""
        self.counters.counts.timeouts += 1

    def handshake_timed_out(self) -> JoinOutcome:
        """The driver gave up waiting for the pending offer's answer; how the offer ends.

        Accepted but without the own ``JOIN``, the client counts as joined: the
        missing JOIN is a membership fault for the checker, and the bot carries on.
        """
        if self.stage is JoinStage.ACCEPTED:
            self.stage = JoinStage.JOINED
            self.join_outcome = JoinOutcome.OK
        else:
            self.waited_in_vain()
            self.join_outcome = JoinOutcome.TIMEOUT
        return self.join_outcome

    def take_history(self) -> ClientHistory:
        """The history, its received reads turned into events (once the connection is over; once)."""
        events: list[Event] = []
        for item in self._log:
            if type(item) is tuple:
                t, lines = item
                events.extend([Received(t, line) for line in lines])
            else:
                events.append(item)  # type: ignore[arg-type]
        self._log = []
        self.history.events = events
        return self.history

    # -- receiving ----------------------------------------------------------------------------
    def _sampled(self, t: float, seq: int | None, sender: str, text: str) -> Msg | None:
        """A sampled message, or one of this client's own: FIFO, latency, echo; an answer when ``replies``."""
        payload = split_payload(text)
        if payload is None:
            return None
        bot, n, due = payload
        counters, fifo = self.counters, self._fifo
        last = fifo.get(bot)
        if last is not None and n <= last:
            counters.counts.fifo_anomalies += 1
        fifo[bot] = n
        counters.latency.add((t - due) * 1000.0)
        if sender != self.name or bot != self.history.bot:
            return None
        if n > self.last_echo_n:
            self.last_echo_n = n
        return Msg(seq, sender, text) if self.replies else None

    def _on_membership(self, line: str) -> Join | None:
        """A JOIN or LEAVE: the own JOIN ends the handshake; others only move the seq on."""
        if self.stage in (JoinStage.OFFERED, JoinStage.ACCEPTED) and line.startswith("JOIN "):
            try:
                event = protocol.parse_server_line(line)
            except RemoteProtocolError:
                event = None
            offered = self.offered
            if (
                isinstance(event, Join)
                and offered is not None
                and protocol.name_key(event.name) == (protocol.name_key(offered))
            ):
                self.seqs = protocol.broadcast_numbering(line)
                self.last_seq = event.seq if self.seqs else None
                self.stage = JoinStage.JOINED
                self.join_outcome = JoinOutcome.OK
                return event
        if self.seqs:
            seq = protocol.broadcast_seq(line)
            counts = self.counters.counts
            if seq is None:
                counts.seq_anomalies += 1
            else:
                if self.last_seq is not None and seq != self.last_seq + 1:
                    counts.seq_anomalies += 1
                self.last_seq = seq
        return None

    def _on_control(self, line: str) -> Answer | None:
        """Any other line: the handshake's answers and, with ``replies``, USERS and what fits no event."""
        try:
            event = protocol.parse_server_line(line, seqs=self.seqs)
        except RemoteProtocolError as exc:
            return exc if self.replies else None
        if isinstance(event, Hello):
            self.greeted = True
        elif isinstance(event, Ok):
            if self.stage is JoinStage.OFFERED:
                self.stage = JoinStage.ACCEPTED
                self.name = event.name
                counts = self.counters.counts
                counts.members += 1
                counts.joins += 1
        elif isinstance(event, Err):
            self._on_refusal(event)
        elif isinstance(event, Bye):
            self._end_handshake(JoinOutcome.BYE, event)
        elif not (isinstance(event, Users) and self.replies):
            return None  # a broadcast line without its fields: recorded raw for the checker
        return event

    def _on_refusal(self, err: Err) -> None:
        if self.stage is JoinStage.WAITING and not self.greeted:
            # Refused before the greeting (``ERR full`` instead of ``HELLO``): no name will do.
            if err.code is ErrorCode.FULL:
                self.counters.counts.refused += 1
            self._end_handshake(_REFUSALS.get(err.code, JoinOutcome.REFUSED), err, final=True)
        elif self.stage in (JoinStage.OFFERED, JoinStage.ACCEPTED):
            self._end_handshake(
                _REFUSALS.get(err.code, JoinOutcome.REFUSED), err, final=err.code is ErrorCode.FULL
            )

    def _end_handshake(self, outcome: JoinOutcome, refusal: Err | Bye, *, final: bool = True) -> None:
        """The pending offer (or the greeting) ended refused; another name may follow unless ``final``."""
        if self.stage is JoinStage.JOINED or self.stage is JoinStage.ENDED:
            return
        if self.stage is JoinStage.ACCEPTED:
            self.counters.counts.members -= 1
        self.join_outcome = outcome
        self.refusal = refusal
        self.stage = JoinStage.ENDED if final else JoinStage.WAITING

    # -- ending -------------------------------------------------------------------------------
    def _record_closed(self, t: float, how: HowClosed, detail: str) -> None:
        self.is_closed_recorded = True
        if self.record:
            self._log.append(Closed(t, how, detail))

    def _went_away(self) -> None:
        """The connection is gone, whoever closed it: the counts of open connections and members drop."""
        if not self.is_open:
            return
        counts = self.counters.counts
        if self.is_member:
            counts.members -= 1
        self.is_open = False
        counts.connected -= 1
        if self.stage is not JoinStage.JOINED:
            if self.join_outcome is None:
                self.join_outcome = JoinOutcome.EOF
            self.stage = JoinStage.ENDED
