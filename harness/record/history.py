"""What one client saw and did: the data the recorder writes and the checker judges.

Pure data, no sockets, no threads, no clock. A bot *records* (appends events as
they happen, with times from ``time.time()`` so that several processes agree);
it never judges. The checker (:mod:`harness.checker`) takes a list of
:class:`ClientHistory` and returns violations.

Times are wall-clock seconds (``time.time()``), because bots may run in several
processes and their records are merged. Lines are kept raw (the text of the
line, terminator removed) so that a server's exact output is what gets judged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from harness.common.gctune import collector_paused

# -- names ----------------------------------------------------------------------


class Role(str, Enum):
    """What a scenario has a client do; the run record keeps the value (``"chat"``, ...).

    The checker reads it to treat what a role does on purpose as expected: a
    ``slow`` reader dropped by the server is no violation. (``str`` mixin: 3.10
    has no StrEnum; ``str()`` and f-strings give the value.)
    """

    #: Joins before the start, chats on an open-loop schedule, quits with everyone.
    CHAT = "chat"
    #: Joins, says a little and leaves (quit, drop, or both at once), again and again.
    CHURN = "churn"
    #: Fights over a few contested names, again and again.
    RACER = "racer"
    #: Joins and stops reading: the server may drop it as slow.
    SLOW = "slow"
    #: Sends bounded bursts as fast as the server takes them.
    BURST = "burst"

    def __str__(self) -> str:
        return self.value


class HowClosed(str, Enum):
    """How a connection ended (:attr:`Closed.how`); the run record keeps the value (``"quit"``, ...)."""

    #: The client sent ``/quit`` and saw the server close (after ``BYE``).
    QUIT = "quit"
    #: The client closed abruptly, on purpose.
    DROP = "drop"
    #: The server closed it.
    EOF = "eof"
    #: A socket error, or the connection could not open.
    ERROR = "error"
    #: The client gave up waiting for the server: a liveness failure.
    TIMEOUT = "timeout"
    #: The run was stopped with the connection still open.
    STOPPED = "stopped"

    def __str__(self) -> str:
        return self.value


# -- events of one client -------------------------------------------------------


@dataclass(frozen=True)
class Connected:
    """The TCP connection was opened (``t``) after being asked for at ``asked``."""

    t: float
    asked: float
    kind: Literal["connected"] = "connected"


@dataclass(frozen=True)
class Sent:
    """A line the client wrote. ``due`` is the schedule's time for a chat message."""

    t: float
    line: str
    due: float | None = None
    kind: Literal["sent"] = "sent"


@dataclass(frozen=True)
class Received:
    """A line the client read, terminator removed."""

    t: float
    line: str
    kind: Literal["received"] = "received"


@dataclass(frozen=True)
class Closed:
    """The connection ended, ``how`` (:class:`HowClosed`; its value as a string is accepted too)."""

    t: float
    how: HowClosed
    detail: str = ""
    kind: Literal["closed"] = "closed"

    def __post_init__(self) -> None:
        if type(self.how) is not HowClosed:
            object.__setattr__(self, "how", HowClosed(self.how))


Event = Connected | Sent | Received | Closed


@dataclass
class ClientHistory:
    """Everything one connection did, in the order it happened.

    ``client`` is unique per connection in a run (a bot that reconnects gets a
    new client id per connection, e.g. ``b7.2``); ``bot`` is the bot's id as
    carried in its payloads; ``role`` (:class:`Role`; its value as a string is
    accepted too) what the scenario had it do.
    """

    client: str
    bot: str
    role: Role = Role.CHAT
    events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        if type(self.role) is not Role:
            self.role = Role(self.role)


def event_to_dict(client: str, event: Event) -> dict[str, object]:
    d: dict[str, object] = {"c": client, "k": event.kind, "t": event.t}
    if isinstance(event, (Sent, Received)):
        d["line"] = event.line
    if isinstance(event, Sent) and event.due is not None:
        d["due"] = event.due
    if isinstance(event, Connected):
        d["asked"] = event.asked
    if isinstance(event, Closed):
        d["how"] = event.how.value
        if event.detail:
            d["detail"] = event.detail
    return d


def event_from_dict(d: dict[str, object]) -> Event:
    kind = d["k"]
    t = float(d["t"])  # type: ignore[arg-type]
    if kind == "received":
        return Received(t, str(d["line"]))
    if kind == "sent":
        due = d.get("due")
        return Sent(t, str(d["line"]), float(due) if due is not None else None)  # type: ignore[arg-type]
    if kind == "connected":
        return Connected(t, float(d.get("asked", t)))  # type: ignore[arg-type]
    if kind == "closed":
        return Closed(t, HowClosed(str(d["how"])), str(d.get("detail", "")))
    raise ValueError(f"unknown event kind {kind!r}")


# -- a run's events as dicts (the run record's events.jsonl lines) ---------------------


def history_header(history: ClientHistory) -> dict[str, object]:
    """The line that introduces a client in an event stream, before its events."""
    return {"c": history.client, "k": "client", "bot": history.bot, "role": history.role.value}


def histories_to_dicts(histories: Iterable[ClientHistory]) -> Iterator[dict[str, object]]:
    """Each client's header, then its events, client after client."""
    for history in histories:
        yield history_header(history)
        for event in history.events:
            yield event_to_dict(history.client, event)


def histories_from_dicts(items: Iterable[dict[str, object]]) -> list[ClientHistory]:
    """The inverse of :func:`histories_to_dicts`; events may interleave across clients.

    A client's events must follow its header line; clients keep the order of
    their headers.
    """
    by_client: dict[str, ClientHistory] = {}
    for d in items:
        client = str(d["c"])
        if d["k"] == "client":
            if client not in by_client:
                bot, role = str(d.get("bot", client)), str(d.get("role", "chat"))
                by_client[client] = ClientHistory(client, bot, Role(role))
            continue
        history = by_client.get(client)
        if history is None:
            raise ValueError(f"event of client {client!r} before its header line")
        history.events.append(event_from_dict(d))
    return list(by_client.values())


#: Lines parsed per ``json.loads`` call by :func:`load_histories`.
_LOAD_CHUNK = 20_000


def _read_dicts(path: str | os.PathLike[str]) -> Iterator[dict[str, object]]:
    """The JSON objects of a JSON Lines file, parsed many lines per call.

    Joining lines into one JSON array halves the parse time of a large
    events.jsonl: the per-call overhead of ``json.loads`` is paid per chunk.
    A chunk that is not valid as a whole is parsed line by line, so that the
    error names the bad line.
    """
    with open(path, encoding="utf-8") as f:
        chunk: list[str] = []
        for line in f:
            if line.strip():
                chunk.append(line)
            if len(chunk) >= _LOAD_CHUNK:
                yield from _parse_chunk(chunk)
                chunk = []
        if chunk:
            yield from _parse_chunk(chunk)


def _parse_chunk(lines: list[str]) -> list[dict[str, object]]:
    try:
        items = json.loads("[" + ",".join(lines) + "]")
    except json.JSONDecodeError:
        items = [json.loads(line) for line in lines]  # raises on the bad line itself
    if not all(isinstance(d, dict) for d in items):
        raise ValueError("an events.jsonl line is not a JSON object")
    return items  # type: ignore[no-any-return]


def load_histories(path: str | os.PathLike[str]) -> list[ClientHistory]:
    """Read an events.jsonl file (see docs/run-record.md) into histories.

    The cyclic garbage collector is paused while the events are made: they
    hold no cycles, and a million new objects would otherwise make it run
    over the growing heap again and again (half the load time).
    """
    with collector_paused():
        return histories_from_dicts(_read_dicts(path))
