"""Scenarios: which bots a run has, and what each role does. No judging, no output.

A scenario is a *plan* (a list of :class:`BotSpec`, one per bot, each with a
role) and the roles are coroutines over :class:`harness.swarm.bot.BotConnection`:

``chat``   join before the start, send ``--rate`` messages per second on an
           open-loop schedule until the end, wait for its last message to come
           back, then ``/quit`` with everyone. Every fourth one also sends
           ``/who`` about once a second (the checker compares the answers with
           the history).
``churn``  from the start to the end: connect, join under a fresh name, send a
           few messages, then leave by ``/quit``, by an abrupt close, or by
           ``/quit`` and a close at once; again and again.
``racer``  from the start to the end: connect and offer one of a few contested
           names (in varying case), retrying on ``ERR name-taken``; the winner
           holds the name a moment and leaves; again and again.
``slow``   join (with a small ``SO_RCVBUF``), then stop reading for the whole
           run; the server may drop it as slow, which is expected.
``burst``  join, then send a bounded number of messages as fast as the server
           takes them (``--burst`` per burst).

Scenarios mix them: ``chat``, ``churn`` (half churn), ``name-race`` (racers and
a few observers), ``slow`` (a fifth slow), ``burst`` (all burst) and ``mixed``
(every role at once). The plan is a pure function of the settings and the seed.

The waits here that are not bounded by a reply (``sleep_until``, the pauses
between churn rounds) are the *schedule* of the load, not synchronisation.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from harness.record.connection import JoinOutcome
from harness.record.history import HowClosed, Role
from harness.swarm.bot import BURST_CHUNK, MAX_BATCH, Behaviour, BotConnection, BotContext, Phase

SCENARIOS = ("chat", "churn", "name-race", "slow", "burst", "mixed")
#: Roles that join before the start and stay to the end.
STEADY_ROLES = frozenset({Role.CHAT, Role.SLOW, Role.BURST})

#: SO_RCVBUF of a slow reader: small, so that the server's side backs up after
#: a few kilobytes instead of after megabytes of kernel buffers.
SLOW_RCVBUF = 4096
#: Deliveries a burst run aims at in total (bots x messages x members): enough
#: to load the server for a moment, bounded so a 500-bot burst stays a burst.
BURST_BUDGET = 500_000
#: Name offers per connection before a racer gives up and reconnects.
RACE_ATTEMPTS = 4
#: Upper bound on the rounds of one churn or racer bot (the clock ends them first).
MAX_ROUNDS = 10_000
#: A fraction of chat bots ask ``/who``; one in this many.
WHO_ONE_IN = 4
#: Wall-clock slack when deciding that a scheduled message is due (timer jitter).
DUE_SLACK = 0.001


@dataclass(frozen=True)
class BotSpec:
    """One bot of a plan: its id (carried in every payload), its role and its knobs."""

    bot: str
    role: Role
    rate: float = 0.0
    #: Chat messages to send (chat role).
    count: int = 0
    #: Send ``/who`` after every ``who_every`` messages; 0 never.
    who_every: int = 0
    #: Where in each ``1/rate`` period this bot's messages fall (0..1): bots
    #: spread over the period instead of all sending at the same instants.
    phase: float = 0.0
    bursts: int = 0
    burst_size: int = 0
    #: The names racers fight over.
    contested: tuple[str, ...] = ()
    seed: int = 0
    #: Seconds after the hives start at which a steady bot connects: joins
    #: ramp up at ``--ramp`` bots per second instead of arriving all at once.
    join_at: float = 0.0


@dataclass(frozen=True)
class Plan:
    scenario: str
    specs: tuple[BotSpec, ...]
    #: Lower-cased names that several racers want: the checker holds that one
    #: bot at a time has each.
    contested_names: frozenset[str]

    def role_counts(self) -> dict[str, int]:
        """Bots per role (by the role's name), in the order of :class:`Role`, roles without bots left out."""
        counts = dict.fromkeys(Role, 0)
        for spec in self.specs:
            counts[spec.role] += 1
        return {role.value: n for role, n in counts.items() if n}

    @property
    def steady(self) -> int:
        """Bots that join before the start and stay to the end (chat, slow, burst)."""
        return sum(1 for spec in self.specs if spec.role in STEADY_ROLES)


def _roles(scenario: str, n: int) -> list[Role]:
    """The role of each of ``n`` bots, dealt so that every role is spread out."""
    chat, churn, racer, slow, burst = Role.CHAT, Role.CHURN, Role.RACER, Role.SLOW, Role.BURST
    counts: dict[Role, int]
    if scenario == "chat":
        counts = {chat: n}
    elif scenario == "churn":
        churners = n // 2
        counts = {chat: n - churners, churn: churners}
    elif scenario == "name-race":
        observers = max(1, n // 4)
        counts = {chat: observers, racer: n - observers} if n > 1 else {racer: n}
    elif scenario == "slow":
        slow_readers = max(1, n // 5) if n > 1 else 0
        counts = {chat: n - slow_readers, slow: slow_readers}
    elif scenario == "burst":
        counts = {burst: n}
    elif scenario == "mixed":
        if n < 8:
            # Too few for fractions: one of each, chat first.
            order = [chat, churn, racer, racer, burst, slow, chat]
            return [order[i % len(order)] for i in range(n)]
        n_slow = max(1, n // 10)
        n_burst = max(1, n // 10)
        n_racer = max(2, n // 6)
        n_churn = max(2, n // 6)
        counts = {chat: n - n_slow - n_burst - n_racer - n_churn, churn: n_churn, racer: n_racer}
        counts.update({slow: n_slow, burst: n_burst})
    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    counts = {role: k for role, k in counts.items() if k > 0}
    # Interleave: each next bot takes the role whose quota is furthest behind
    # (ties by the role's name), so that every process of a --procs run gets a mix of roles.
    out: list[Role] = []
    taken = dict.fromkeys(counts, 0)
    for _ in range(sum(counts.values())):
        role = min(counts, key=lambda r: ((taken[r] + 0.5) / counts[r], r.value))
        taken[role] += 1
        out.append(role)
    return out


def default_burst_size(n: int, bursts: int = 1) -> int:
    """Messages per burst so that the run stays near :data:`BURST_BUDGET` deliveries."""
    per_bot = BURST_BUDGET // max(1, n * n * bursts)
    return max(5, min(500, per_bot))


def plan(
    scenario: str,
    clients: int,
    *,
    rate: float,
    duration: float,
    seed: int,
    burst: int | None = None,
    ramp: float = 0.0,
) -> Plan:
    """The bots of a run. Pure: the same arguments give the same plan.

    ``ramp`` is the join rate of the steady bots in bots per second (0: all
    at once). A real server greets a few hundred connections a second; five
    hundred at the same instant measure its accept backlog, not its chat.
    """
    roles = _roles(scenario, clients)
    width = len(str(max(0, clients - 1)))
    racers = roles.count(Role.RACER)
    contested = tuple(f"race{j}" for j in range(max(1, racers // 4))) if racers else ()
    bursts = 1 if scenario == "burst" else 3
    burst_size = burst if burst is not None else default_burst_size(clients, bursts)
    who_every = max(1, round(rate)) if rate > 0 else 0
    rng = random.Random(seed)
    specs: list[BotSpec] = []
    chat_index = 0
    steady_index = 0
    for i, role in enumerate(roles):
        bot = f"b{i:0{width}d}"
        spec_seed = rng.randrange(2**32)
        join_at = 0.0
        if role in STEADY_ROLES:
            join_at = steady_index / ramp if ramp > 0 else 0.0
            steady_index += 1
        if role is Role.CHAT:
            who = who_every if chat_index % WHO_ONE_IN == 0 else 0
            chat_index += 1
            phase = rng.random()
            # The messages due within the chat phase: k + phase < rate * duration.
            count = max(0, math.ceil(rate * duration - phase)) if rate > 0 else 0
            specs.append(
                BotSpec(
                    bot,
                    role,
                    rate=rate,
                    count=count,
                    who_every=who,
                    phase=phase,
                    seed=spec_seed,
                    join_at=join_at,
                )
            )
        elif role is Role.BURST:
            specs.append(
                BotSpec(bot, role, bursts=bursts, burst_size=burst_size, seed=spec_seed, join_at=join_at)
            )
        elif role is Role.RACER:
            specs.append(BotSpec(bot, role, rate=rate, contested=contested, seed=spec_seed))
        else:
            specs.append(BotSpec(bot, role, rate=rate, seed=spec_seed, join_at=join_at))
    return Plan(scenario, tuple(specs), frozenset(contested))


# -- shared steps ------------------------------------------------------------------------


async def send_schedule(
    ctx: BotContext, conn: BotConnection, start: float, count: int, rate: float, who_every: int = 0
) -> int:
    """Send ``count`` messages, message k due at ``start + k/rate``; returns the last counter sent, or -1.

    Open loop: a message is sent when due; a bot that is behind sends every
    overdue message at once and never skips one or shifts the schedule, so a
    stalled server shows as latency, not as a quieter sender.
    """
    last_n = -1
    k = 0
    while k < count and conn.is_open:
        await ctx.sleep_until(start + k / rate)
        now = time.time() + DUE_SLACK
        items: list[tuple[int, float]] = []
        extra: list[str] = []
        while k < count and len(items) < MAX_BATCH:
            due = start + k / rate
            if due > now:
                break
            items.append((ctx.next_n(), due))
            k += 1
            if who_every and k % who_every == 0:
                extra.append("/who")
                break
        if items:
            conn.send_chats(items, extra=extra)
            last_n = items[-1][0]
        else:
            await asyncio.sleep(0)
    return last_n


async def give_up(ctx: BotContext, conn: BotConnection, outcome: JoinOutcome) -> None:
    """End a connection whose handshake did not make it a member."""
    hb = ctx.config.handshake_bound
    if outcome is JoinOutcome.TIMEOUT:
        conn.close(HowClosed.TIMEOUT, f"no answer to the handshake within {hb:g}s")
    elif outcome in (JoinOutcome.TAKEN, JoinOutcome.INVALID) and conn.is_open:
        await conn.quit(ctx.deadline(hb))  # /quit during the handshake: BYE
    elif conn.is_open and not await conn.wait_closed(ctx.deadline(hb)):
        conn.close(HowClosed.DROP, f"gave up after the handshake ended with {outcome}")


async def leave_in_turn(ctx: BotContext, conn: BotConnection, released: float) -> None:
    """``/quit`` at the end, in the order and at the rate the steady bots joined.

    Every LEAVE goes to every member still there, so hundreds of bots quitting
    at one instant are a storm of n² lines; the same ramp as the joins keeps
    the end of a run from measuring only that.
    """
    await ctx.sleep_until(released + ctx.spec.join_at)
    await conn.quit(ctx.deadline(ctx.config.delivery_bound))


class Leave(Enum):
    """How a churner or a racer leaves the room."""

    #: ``/quit``, then wait (bounded) for BYE and the close.
    QUIT = "quit"
    #: An abrupt close, without a word.
    DROP = "drop"
    #: ``/quit`` and a close at once (a race on purpose).
    QUIT_CLOSE = "quit-close"


async def leave(ctx: BotContext, conn: BotConnection, mode: Leave) -> None:
    """Leave the room ``mode``."""
    if mode is Leave.QUIT:
        await conn.quit(ctx.deadline(ctx.config.delivery_bound))
    elif mode is Leave.DROP:
        conn.close(HowClosed.DROP, "abrupt close without /quit")
    else:
        conn.quit_and_close()


async def _talk_briefly(ctx: BotContext, conn: BotConnection, rng: random.Random, most: int) -> None:
    """A few messages at the bot's rate, then wait until the server echoed the last one."""
    rate = ctx.spec.rate
    if rate <= 0:
        return
    last = await send_schedule(ctx, conn, time.time(), rng.randint(1, most), rate)
    if last >= 0:
        await conn.wait_echo(last, ctx.deadline(ctx.config.delivery_bound))


def _vary_case(name: str, rng: random.Random) -> str:
    """The same name in another case now and then: uniqueness is case-insensitive."""
    style = rng.randrange(4)
    if style == 1:
        return name.upper()
    if style == 2:
        return name.capitalize()
    return name


async def join_at_the_ramp(ctx: BotContext, *, rcvbuf: int | None = None) -> BotConnection | None:
    """Connect at the bot's moment of the join ramp and join under its own name; None if it could not."""
    await ctx.sleep_until(ctx.config.t0 + ctx.spec.join_at)
    conn = await ctx.connect(rcvbuf=rcvbuf)
    if not conn.is_open:
        return None
    outcome = await conn.handshake(ctx.bot, ctx.deadline(ctx.config.handshake_bound))
    if outcome is not JoinOutcome.OK:
        await give_up(ctx, conn, outcome)
        return None
    return conn


# -- roles -----------------------------------------------------------------------------


async def chat_role(ctx: BotContext) -> None:
    cfg = ctx.config
    spec = ctx.spec
    conn = await join_at_the_ramp(ctx)
    if conn is None:
        return
    start = await ctx.barrier(Phase.JOINED)
    stop = start + cfg.duration
    first = start + spec.phase / spec.rate if spec.rate > 0 else start
    last = await send_schedule(ctx, conn, first, spec.count, spec.rate, spec.who_every)
    if last >= 0:
        await conn.wait_echo(last, ctx.deadline(cfg.delivery_bound))
    await ctx.sleep_until(stop)
    await leave_in_turn(ctx, conn, await ctx.barrier(Phase.DRAINED))


async def slow_role(ctx: BotContext) -> None:
    cfg = ctx.config
    conn = await join_at_the_ramp(ctx, rcvbuf=SLOW_RCVBUF)
    if conn is None:
        return
    start = await ctx.barrier(Phase.JOINED)
    conn.pause_reading()
    await ctx.sleep_until(start + cfg.duration)
    conn.resume_reading()
    await leave_in_turn(ctx, conn, await ctx.barrier(Phase.DRAINED))


async def burst_role(ctx: BotContext) -> None:
    cfg = ctx.config
    spec = ctx.spec
    conn = await join_at_the_ramp(ctx)
    if conn is None:
        return
    start = await ctx.barrier(Phase.JOINED)
    last = -1
    for b in range(spec.bursts):
        await ctx.sleep_until(start + b * cfg.duration / spec.bursts)
        sent = 0
        while sent < spec.burst_size and conn.is_open:
            if not await conn.writable(ctx.deadline(cfg.delivery_bound)):
                break
            t = time.time()
            items = [(ctx.next_n(), t) for _ in range(min(BURST_CHUNK, spec.burst_size - sent))]
            conn.send_chats(items)
            last = items[-1][0]
            sent += len(items)
            await asyncio.sleep(0)  # give the other bots of this loop their turn
    if last >= 0:
        await conn.wait_echo(last, ctx.deadline(cfg.delivery_bound))
    await ctx.sleep_until(start + cfg.duration)
    await leave_in_turn(ctx, conn, await ctx.barrier(Phase.DRAINED))


async def churn_role(ctx: BotContext) -> None:
    cfg = ctx.config
    rng = random.Random(ctx.spec.seed)
    start = await ctx.barrier(Phase.JOINED)
    stop = start + cfg.duration
    await ctx.sleep_until(start + rng.uniform(0.0, 0.1))
    for stint in range(1, MAX_ROUNDS + 1):
        if time.time() >= stop:
            break
        conn = await ctx.connect()
        if not conn.is_open:
            await asyncio.sleep(rng.uniform(0.05, 0.2))
            continue
        outcome = await conn.handshake(f"{ctx.bot}-{stint}", ctx.deadline(cfg.handshake_bound))
        if outcome is not JoinOutcome.OK:
            await give_up(ctx, conn, outcome)
        else:
            await _talk_briefly(ctx, conn, rng, 4)
            await asyncio.sleep(rng.uniform(0.0, 0.15))
            await leave(ctx, conn, rng.choice(tuple(Leave)))
        await asyncio.sleep(rng.uniform(0.0, 0.08))
    ctx.arrive(Phase.DRAINED)


async def racer_role(ctx: BotContext) -> None:
    cfg = ctx.config
    spec = ctx.spec
    rng = random.Random(spec.seed)
    start = await ctx.barrier(Phase.JOINED)
    stop = start + cfg.duration
    # A racer that has not won by the end keeps racing a little longer (the
    # others have stopped, so it wins soon): every bot of a run gets to join,
    # and a run where one never could is UNKNOWN, not a pass.
    overtime = stop + cfg.handshake_bound
    has_won = False
    for _ in range(MAX_ROUNDS):
        now = time.time()
        if now >= stop and (has_won or now >= overtime):
            break
        conn = await ctx.connect()
        if not conn.is_open:
            await asyncio.sleep(rng.uniform(0.05, 0.2))
            continue
        outcome = JoinOutcome.EOF
        for _attempt in range(RACE_ATTEMPTS):
            name = _vary_case(rng.choice(spec.contested), rng)
            outcome = await conn.handshake(name, ctx.deadline(cfg.handshake_bound))
            if outcome is not JoinOutcome.TAKEN:
                break
        if outcome is JoinOutcome.OK:
            has_won = True
            await _talk_briefly(ctx, conn, rng, 2)
            await asyncio.sleep(rng.uniform(0.02, 0.2))
            await leave(ctx, conn, rng.choice(tuple(Leave)))
        else:
            await give_up(ctx, conn, outcome)
        await asyncio.sleep(rng.uniform(0.0, 0.05))
    ctx.arrive(Phase.DRAINED)


BEHAVIOURS: dict[Role, Behaviour] = {
    Role.CHAT: chat_role,
    Role.CHURN: churn_role,
    Role.RACER: racer_role,
    Role.SLOW: slow_role,
    Role.BURST: burst_role,
}


def describe(plan_: Plan) -> str:
    """One line for humans: ``30 bots: 14 chat, 5 churn, 5 racer, 3 slow, 3 burst``."""
    parts = [f"{n} {role}" for role, n in plan_.role_counts().items()]
    return f"{len(plan_.specs)} bots: " + ", ".join(parts)


def role_of(specs: Sequence[BotSpec]) -> dict[str, Role]:
    return {spec.bot: spec.role for spec in specs}
