"""A run record as pandas tables: every event, every delivery with its latency, every member.

Lines are read by :func:`chat.protocol.parse_server_line` and payloads by
:func:`harness.record.payload.decode_payload`: the same readings the checker makes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from chat import protocol
from harness.record.history import ClientHistory, Closed, Connected, Received, Sent
from harness.record.payload import decode_payload
from harness.record.store import load_run


@dataclass
class RunFrames:
    """A run record as tables: what happened, who got what, and how long it took."""

    histories: list[ClientHistory]
    summary: dict[str, Any]
    meta: dict[str, Any]
    events: pd.DataFrame
    """One row per recorded event: client, bot, role, kind, t, s (seconds from the first event),
    line, due, how."""
    deliveries: pd.DataFrame
    """One row per chat message received: receiver, receiver_bot, role, t, s, seq, sender (name),
    sender_bot, sender_role, n, due, latency_ms (due time to receipt: open loop, as the checker
    measures it; the checker leaves the ``slow`` receivers out of its percentiles)."""
    members: pd.DataFrame
    """One row per connection: bot, role, joined, sent, received (chat messages), first_s, last_s."""

    @property
    def start(self) -> float:
        """Wall-clock time of the first event: ``s`` columns count from here."""
        return float(self.events["t"].min()) if len(self.events) else 0.0


def load_frames(run_dir: str | os.PathLike[str]) -> RunFrames:
    """Load a run record (:func:`harness.record.store.load_run`) and tabulate it
    (:func:`frames_from_histories`)."""
    histories, summary, meta = load_run(run_dir)
    return frames_from_histories(histories, summary, meta)


def frames_from_histories(
    histories: Sequence[ClientHistory],
    summary: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> RunFrames:
    events = events_frame(histories)
    start = float(events["t"].min()) if len(events) else 0.0
    deliveries = deliveries_frame(histories, start)
    return RunFrames(
        list(histories),
        dict(summary or {}),
        dict(meta or {}),
        events,
        deliveries,
        members_frame(histories, start),
    )


_EVENT_COLUMNS = ["client", "bot", "role", "kind", "t", "s", "line", "due", "how"]
_DELIVERY_COLUMNS = [
    "receiver",
    "receiver_bot",
    "role",
    "t",
    "s",
    "seq",
    "sender",
    "sender_bot",
    "sender_role",
    "n",
    "due",
    "latency_ms",
]


def events_frame(histories: Sequence[ClientHistory]) -> pd.DataFrame:
    """Every event of every client, one row each, in each client's order."""
    rows = []
    for h in histories:
        for e in h.events:
            rows.append(
                (
                    h.client,
                    h.bot,
                    h.role,
                    e.kind,
                    e.t,
                    e.line if isinstance(e, (Sent, Received)) else None,
                    e.due if isinstance(e, Sent) else None,
                    e.how if isinstance(e, Closed) else None,
                )
            )
    frame = pd.DataFrame(rows, columns=[c for c in _EVENT_COLUMNS if c != "s"])
    frame.insert(5, "s", frame["t"] - frame["t"].min() if len(frame) else frame["t"])
    return frame


def deliveries_frame(histories: Sequence[ClientHistory], start: float | None = None) -> pd.DataFrame:
    """Every ``MSG`` a client received that carries a bot payload, with its latency.

    ``seq`` is missing (NA) on a server that does not number its lines;
    ``sender_role`` is the role of the bot that sent the message.
    """
    role_of = {h.bot: h.role for h in histories}
    rows = []
    for h in histories:
        for e in h.events:
            if not isinstance(e, Received) or not e.line.startswith("MSG "):
                continue
            try:
                event = protocol.parse_server_line(e.line)
            except protocol.RemoteProtocolError:
                continue  # a garbled line is the checker's business, not a delivery
            if not isinstance(event, protocol.Msg):
                continue
            payload = decode_payload(event.text)
            if payload is None:
                continue
            latency = (e.t - payload.due) * 1000.0
            rows.append(
                (
                    h.client,
                    h.bot,
                    h.role,
                    e.t,
                    event.seq,
                    event.name,
                    payload.bot,
                    role_of.get(payload.bot, ""),
                    payload.n,
                    payload.due,
                    latency,
                )
            )
    frame = pd.DataFrame(rows, columns=[c for c in _DELIVERY_COLUMNS if c != "s"])
    frame["seq"] = frame["seq"].astype("Int64")
    origin = start if start is not None else (float(frame["t"].min()) if len(frame) else 0.0)
    frame.insert(4, "s", frame["t"] - origin)
    return frame


def stream_frame(histories: Sequence[ClientHistory], client: str, start: float | None = None) -> pd.DataFrame:
    """One member's broadcast stream: the JOIN, MSG and LEAVE lines it received once it got OK.

    ``position`` counts them from 0, as the checker's witnesses do (``position``
    in a seq or membership witness is a row here). Columns: position, t, s,
    kind (``JOIN``/``MSG``/``LEAVE``), seq (NA when unnumbered), name, line.
    """
    found = [h for h in histories if h.client == client]
    if not found:
        raise KeyError(f"no client {client!r} in the run")
    rows: list[tuple[object, ...]] = []
    member = False
    for e in found[0].events:
        if not isinstance(e, Received):
            continue
        try:
            event = protocol.parse_server_line(e.line)
        except protocol.RemoteProtocolError:
            continue
        if isinstance(event, protocol.Ok):
            member = True
        elif member and isinstance(event, (protocol.Join, protocol.Msg, protocol.Leave)):
            rows.append((len(rows), e.t, type(event).__name__.upper(), event.seq, event.name, e.line))
    frame = pd.DataFrame(rows, columns=["position", "t", "kind", "seq", "name", "line"])
    frame["seq"] = frame["seq"].astype("Int64")
    if start is None:
        start = min((e.t for e in found[0].events), default=0.0)
    frame.insert(2, "s", frame["t"] - start)
    return frame


def members_frame(histories: Sequence[ClientHistory], start: float | None = None) -> pd.DataFrame:
    """Per connection: did it join, how many chat messages it sent and received, when it came and went."""
    origin = start
    if origin is None:
        times = [e.t for h in histories for e in h.events]
        origin = min(times) if times else 0.0
    rows = []
    for h in histories:
        joined = any(isinstance(e, Received) and e.line.startswith("OK ") for e in h.events)
        sent = sum(1 for e in h.events if isinstance(e, Sent) and e.due is not None)
        received = sum(1 for e in h.events if isinstance(e, Received) and e.line.startswith("MSG "))
        first = next(
            (e.t for e in h.events if isinstance(e, Connected)), h.events[0].t if h.events else origin
        )
        last = h.events[-1].t if h.events else origin
        rows.append((h.client, h.bot, h.role, joined, sent, received, first - origin, last - origin))
    columns = ["client", "bot", "role", "joined", "sent", "received", "first_s", "last_s"]
    return pd.DataFrame(rows, columns=columns).set_index("client")


def throughput(deliveries: pd.DataFrame, bin_s: float = 0.25) -> pd.DataFrame:
    """Deliveries per second over time, in bins of ``bin_s`` seconds: ``s`` (bin start) and ``per_s``."""
    if not len(deliveries):
        return pd.DataFrame({"s": [], "per_s": []})
    bins = (deliveries["s"] // bin_s).astype(int)
    counts = bins.value_counts().sort_index()
    full = counts.reindex(range(int(bins.min()), int(bins.max()) + 1), fill_value=0)
    return pd.DataFrame({"s": full.index * bin_s, "per_s": full.to_numpy() / bin_s})


def latency_cdf(deliveries: pd.DataFrame) -> pd.DataFrame:
    """The empirical CDF of delivery latency: ``latency_ms`` sorted and the share ``p`` at or below it."""
    values = deliveries["latency_ms"].sort_values().to_numpy()
    n = len(values)
    return pd.DataFrame({"latency_ms": values, "p": [(i + 1) / n for i in range(n)]})
