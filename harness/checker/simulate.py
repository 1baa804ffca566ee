"""The one generator of correct runs: what a correct server would have its clients record.

Pure: a function of a :class:`SimConfig` (its seed included), no sockets, no
clock. The checker must pass every run made here; its tests, its property tests
and every speed measurement of the checker (``--bench``, harness.bench's checker
case) start from one, and the property tests then break it on purpose.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import NamedTuple

from chat.protocol import (
    Broadcast,
    Bye,
    Err,
    ErrorCode,
    Hello,
    Join,
    Leave,
    LeaveReason,
    Msg,
    Ok,
    Users,
    name_key,
    server_line,
    sort_names,
)
from harness.record.history import ClientHistory, Closed, Connected, HowClosed, Received, Role, Sent
from harness.record.payload import encode_payload

_INF = math.inf

#: The name racers fight over, in the spellings they try (one name, case-insensitively).
RACE_NAMES = ("race0", "Race0", "RACE0")


@dataclass(frozen=True)
class SimConfig:
    """What :func:`simulate_run` simulates; every knob keeps the server correct."""

    clients: int = 6
    messages: int = 60
    seed: int = 0
    #: ``global`` (one counter), ``per-recipient`` (a counter per member) or ``none``.
    numbering: str = "global"
    seq_start: int = 1
    #: Members that leave by /quit (and are replaced by a new client).
    quits: int = 0
    #: Members that close abruptly (the server notices a few steps later).
    drops: int = 0
    #: Members that stop reading and are dropped as slow.
    slow: int = 0
    #: /who requests.
    whos: int = 0
    #: Clients that race for one contested name.
    racers: int = 0
    #: Server steps (seconds) between actions, and the largest receive lag.
    step: float = 0.001
    lag: float = 0.003
    start: float = 1_700_000_000.0
    #: Only the first ``senders`` clients to join send chat messages (0: every member does).
    senders: int = 0


@dataclass
class _SimClient:
    history: ClientHistory
    lag: float
    name: str = ""
    is_member: bool = False
    ok_at: float = _INF
    last_t: float = 0.0
    #: Receipts at or after this are not recorded (it closed, or stopped reading).
    stop_t: float = _INF
    n: int = 0
    own_seq: int = 0
    left: bool = False
    #: It sends chat messages (see SimConfig.senders).
    chats: bool = True


class _Notice(NamedTuple):
    """The server will notice, at action ``at``, that ``client`` is gone (and announce why)."""

    at: int
    client: _SimClient
    reason: str


class _Simulator:
    """One simulated run: the server's state (members, seq, clock) and every client's history.

    The random draws happen in a fixed order, so that a seed always gives the same run.
    """

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.clients: list[_SimClient] = []
        self.members: dict[str, _SimClient] = {}
        self.seq = cfg.seq_start - 1
        self.now = cfg.start
        self.pending: list[_Notice] = []
        self.bots = 0

    # -- the server's primitives --

    def new_client(self, role: Role = Role.CHAT, bot: str | None = None, chats: bool = True) -> _SimClient:
        if bot is None:
            bot = f"b{self.bots}"
            self.bots += 1
        taken = any(c.history.bot == bot for c in self.clients)
        client = bot if not taken else f"{bot}.{len(self.clients)}"
        c = _SimClient(ClientHistory(client, bot, role), lag=self.rng.uniform(0.0, self.cfg.lag), chats=chats)
        self.clients.append(c)
        return c

    def deliver(self, c: _SimClient, line: str, t: float) -> None:
        """``c`` receives ``line``, sent at ``t``, a random lag later and in order (unless it stopped
        reading)."""
        t = max(c.last_t + 1e-6, t + self.rng.uniform(0.0, c.lag))
        c.last_t = t
        if t < c.stop_t:
            c.history.events.append(Received(t, line))

    def broadcast(self, event: Broadcast, t: float) -> None:
        """Every member gets ``event`` (its seq set by the numbering), sent at ``t``."""
        self.seq += 1
        numbering = self.cfg.numbering
        if numbering == "per-recipient":
            for c in list(self.members.values()):
                c.own_seq += 1
                self.deliver(c, server_line(replace(event, seq=c.own_seq)), t)
            return
        line = server_line(replace(event, seq=self.seq if numbering == "global" else None))
        for c in list(self.members.values()):
            self.deliver(c, line, t)

    def try_join(self, c: _SimClient, name: str, t: float) -> bool:
        step = self.cfg.step
        ev = c.history.events
        if not any(e.kind == "connected" for e in ev):
            ev.append(Connected(t - 0.6 * step, t - 0.7 * step))
            c.last_t = t - 0.5 * step
            ev.append(Received(c.last_t, server_line(Hello("welcome"))))
        ev.append(Sent(t - 0.3 * step, name))
        if name_key(name) in self.members:
            self.deliver(c, server_line(Err(ErrorCode.NAME_TAKEN, "the name is taken")), t)
            return False
        self.members[name_key(name)] = c
        c.name = name
        c.is_member = True
        c.own_seq = self.rng.randrange(0, 1000)
        self.deliver(c, server_line(Ok(name)), t)
        c.ok_at = c.last_t
        self.broadcast(Join(None, name), t)
        return True

    def leave(self, c: _SimClient, reason: str, t: float) -> None:
        del self.members[name_key(c.name)]
        c.is_member = False
        c.left = True
        self.broadcast(Leave(None, c.name, reason), t)

    def quit(self, c: _SimClient) -> None:
        """``c`` sends /quit: BYE, its LEAVE, and it closes."""
        c.history.events.append(Sent(self.now - 0.2 * self.cfg.step, "/quit"))
        self.deliver(c, server_line(Bye("goodbye")), self.now)
        self.leave(c, LeaveReason.QUIT.value, self.now)
        c.history.events.append(Closed(c.last_t + 1e-6, HowClosed.QUIT))

    # -- the run --

    def run(self) -> list[ClientHistory]:
        """Everyone joins, then the shuffled actions run one step apart (a racer's turn, or one
        ready member's message, /who, quit, drop or stall); then the server notices who is gone,
        and every client still open closes."""
        cfg = self.cfg
        step = cfg.step
        rng = self.rng
        # Everyone joins first (racers race later).
        for i in range(cfg.clients):
            c = self.new_client(chats=not cfg.senders or i < cfg.senders)
            self.now += step
            self.try_join(c, c.history.bot, self.now)
        racers = [self.new_client(Role.RACER, chats=not cfg.senders) for _ in range(cfg.racers)]
        actions = ["msg"] * cfg.messages + ["quit"] * cfg.quits + ["drop"] * cfg.drops
        actions += ["slow"] * cfg.slow + ["who"] * cfg.whos + ["race"] * (2 * cfg.racers)
        rng.shuffle(actions)
        for index, action in enumerate(actions):
            self.now += step
            self._notice_departures(index)
            if action == "race" and racers:
                self._race(racers)
                continue
            ready = [c for c in self.members.values() if c.ok_at < self.now - 2 * step and c.stop_t == _INF]
            if action == "msg" and cfg.senders:
                ready = [c for c in ready if c.chats]
            if not ready:
                continue
            c = rng.choice(ready)
            if action == "msg":
                self._chat(c)
            elif action == "who":
                c.history.events.append(Sent(self.now - 0.2 * step, "/who"))
                names = sort_names([m.name for m in self.members.values()])
                self.deliver(c, server_line(Users(names)), self.now)
            elif action == "quit":
                self.quit(c)
                fresh = self.new_client(chats=not cfg.senders)
                self.now += step
                self.try_join(fresh, fresh.history.bot, self.now)
            elif action == "drop":
                c.stop_t = self.now - 0.1 * step
                c.history.events.append(Closed(c.stop_t, HowClosed.DROP))
                self.pending.append(_Notice(index + rng.randint(1, 4), c, LeaveReason.DISCONNECTED.value))
            elif action == "slow":
                c.history.role = Role.SLOW
                c.stop_t = self.now
                self.pending.append(_Notice(index + rng.randint(2, 6), c, LeaveReason.SLOW.value))
        self.now += 3 * step
        for notice in self.pending:
            if notice.client.is_member:
                self.leave(notice.client, notice.reason, self.now)
        return self._close_all(self.now + cfg.lag + step)

    def _notice_departures(self, index: int) -> None:
        """The server notices the drops and slow readers due by action ``index``, one step each."""
        for notice in [n for n in self.pending if n.at <= index]:
            self.pending.remove(notice)
            if notice.client.is_member:
                self.leave(notice.client, notice.reason, self.now)
            self.now += self.cfg.step

    def _race(self, racers: list[_SimClient]) -> None:
        """A racer that holds the name quits (and a fresh one takes its place), or one tries to get it."""
        r = self.rng.choice(racers)
        if r.is_member and r.ok_at < self.now - 2 * self.cfg.step:
            self.quit(r)
            racers.remove(r)
            racers.append(self.new_client(Role.RACER, r.history.bot, chats=not self.cfg.senders))
        elif not r.left and not r.is_member:
            self.try_join(r, self.rng.choice(RACE_NAMES), self.now)

    def _chat(self, c: _SimClient) -> None:
        """``c`` sends its next message, due a little before the server broadcasts it."""
        step = self.cfg.step
        due = self.now - self.rng.uniform(0.2, 0.4) * step
        text = encode_payload(c.history.bot, c.n, due)
        c.n += 1
        c.history.events.append(Sent(due + 0.05 * step, text, due))
        self.broadcast(Msg(None, c.name, text), self.now)

    def _close_all(self, end: float) -> list[ClientHistory]:
        """Every client still open closes at ``end``: ``eof`` if it had left, else ``stopped``."""
        for c in self.clients:
            if not any(e.kind == "closed" for e in c.history.events):
                how = HowClosed.EOF if c.left else HowClosed.STOPPED
                c.history.events.append(Closed(end, how))
            c.history.events.sort(key=lambda e: e.t)
        return [c.history for c in self.clients if c.history.events]


def simulate_run(cfg: SimConfig = SimConfig()) -> list[ClientHistory]:
    """The histories a correct server would give: a pure function of ``cfg``.

    One broadcast order, every member gets every broadcast from its JOIN until
    it leaves, receive times lag by a random amount per delivery (so members
    see the same event at different times), abrupt drops lose what was in
    flight, slow members stop reading and are dropped. The checker must pass
    every such run; the property tests then break them on purpose.
    """
    return _Simulator(cfg).run()


class SimulatedRun(NamedTuple):
    histories: list[ClientHistory]
    #: When the run stopped: the last event recorded.
    end: float


def simulate_events(
    events: int, *, members: int = 50, senders: int = 0, seed: int = 1, step: float = 0.0005
) -> SimulatedRun:
    """A correct chat run of at least ``events`` recorded events, and at most ``members`` more
    (unless the joins and one message make more).

    ``members`` join one after the other and stay; ``senders`` of them chat (0:
    all); every member receives every broadcast. For speed measurements, which
    want a run of a given size rather than of a given number of messages.
    """
    if events < 1 or members < 1:
        raise ValueError("simulate_events needs events >= 1 and members >= 1")
    # Per member: connect, HELLO, its name, OK, the JOINs of itself and of those after it, and
    # its close; per message: one send and one receipt per member.
    fixed = 5 * members + members * (members + 1) // 2
    per_message = members + 1
    cfg = SimConfig(clients=members, messages=1, seed=seed, step=step, senders=senders)
    wanted = max(1, math.ceil((events - fixed) / per_message))
    while True:
        cfg = replace(cfg, messages=wanted)
        histories = simulate_run(cfg)
        made = sum(len(h.events) for h in histories)
        if made >= events:
            return SimulatedRun(histories, max(h.events[-1].t for h in histories))
        # A message whose senders had not yet seen their OK was not sent: ask for as many more.
        wanted += math.ceil((events - made) / per_message)
