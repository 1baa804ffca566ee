"""The notebooks' kit: start a server, run a swarm, load a run record into pandas, read the lock metrics.

Not a new harness: every function here is a thin, documented wrapper over what
chat/ and harness/ already do, so that a notebook cell reads like the lesson
and copies no logic. A server is ``python -m chat.server`` in a subprocess,
stopped by its PID; a swarm is ``python -m harness.swarm`` in a subprocess
(built by :func:`harness.demo.swarm_command`); a record is read by
:func:`harness.record.load_run`, lines by :mod:`chat.protocol`, payloads by
:mod:`harness.history`, the verdict by :func:`harness.checker.check_all`, and
metrics by :mod:`harness.metrics_scrape`.

Every wait has a deadline (a line, a process, a barrier), never a sleep.
Works from the repository root or from ``notebooks/``: subprocesses run in the
repository root, whatever the current directory.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from chat import protocol
from harness.checker import CheckConfig, Report, check_all
from harness.common.metrics_scrape import Histogram, MetricsSnapshot, scrape
from harness.demo.cli import swarm_command
from harness.record.history import ClientHistory, Closed, Connected, Received, Sent
from harness.record.payload import decode_payload
from harness.record.store import load_run

#: The repository root: subprocesses run here, so ``-m chat.server`` imports this checkout.
REPO = Path(__file__).resolve().parent.parent
#: Seconds a server has to print ``listening on HOST:PORT`` (a loaded 2-core machine is slow to import).
START_TIMEOUT = 20.0
#: Seconds a server has to exit after SIGTERM (it promises 2 s) before it is killed.
STOP_TIMEOUT = 10.0
#: Seconds a swarm may run beyond its chat phase (joins, drain, liveness bounds, judging).
SWARM_OVERHEAD = 60.0
#: Seconds a notebook client waits for any one line.
LINE_TIMEOUT = 10.0


# -- a chat server ---------------------------------------------------------------------


@dataclass
class LabServer:
    """A ``python -m chat.server`` subprocess on 127.0.0.1 and a free port.

    stdout carries only the ready line; stderr (the log, the unsafe banner,
    ``metrics on URL``) goes to a file so that a chatty server can never fill
    a pipe nobody reads and stall.
    """

    args: tuple[str, ...]
    proc: subprocess.Popen[str]
    log_path: Path
    host: str = "127.0.0.1"
    port: int = 0
    metrics_url: str | None = None
    returncode: int | None = None
    _log_dir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)
    _final_log: str | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def address(self) -> str:
        """``HOST:PORT``, as ``python -m harness.swarm --target`` takes it."""
        return f"{self.host}:{self.port}"

    @property
    def is_running(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        """What the server wrote on stderr so far (all of it, once stopped)."""
        if self._final_log is not None:
            return self._final_log
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def threads(self) -> int:
        """Threads of the server process right now (one per client and more: the threading model)."""
        return thread_count(self.pid)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM by PID, wait for the exit (kill after ``timeout``); returns the exit code. Idempotent."""
        if self.returncode is None:
            if self.proc.poll() is None:
                self.proc.terminate()
            try:
                self.returncode = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.returncode = self.proc.wait(timeout)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self._final_log = self.log()
            if self._log_dir is not None:
                self._log_dir.cleanup()  # the log is kept in memory; no folder is left behind
            atexit.unregister(self.stop)
        return self.returncode

    def __enter__(self) -> LabServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def server_command(*args: str, metrics: bool = False) -> list[str]:
    """The command line of a lab server: localhost, a free port, then ``args`` (e.g. ``--unsafe BUG``)."""
    cmd = [sys.executable, "-m", "chat.server", "--host", "127.0.0.1", "--port", "0"]
    if metrics and "--metrics-port" not in args:
        cmd += ["--metrics-port", "0"]
    return cmd + list(args)


def start_server(*args: str, metrics: bool = False, timeout: float = START_TIMEOUT) -> LabServer:
    """Start ``chat.server`` with extra ``args`` and wait (at most ``timeout``) for its ready line.

    With ``metrics`` the server serves Prometheus metrics on a free port too;
    its URL is in ``.metrics_url``. The server is stopped at interpreter exit
    if nobody stopped it before; prefer ``with start_server(...) as srv:`` or
    ``srv.stop()``. Raises RuntimeError (with the server's own error line) if
    it exits or stays silent instead.
    """
    cmd = server_command(*args, metrics=metrics)
    log_dir = tempfile.TemporaryDirectory(prefix="chat-lab-")
    log_path = Path(log_dir.name) / "server.log"
    with open(log_path, "w", encoding="utf-8") as log_file:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=log_file,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    server = LabServer(tuple(args), proc, log_path, _log_dir=log_dir)
    atexit.register(server.stop)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("listening on "):
        server.stop()
        why = server.log().strip().splitlines()
        detail = why[-1] if why else ("no ready line within the timeout" if not ready else repr(line))
        raise RuntimeError(f"chat.server did not start: {detail}")
    server.host, _, port = line.strip().removeprefix("listening on ").rpartition(":")
    server.port = int(port)
    # The server prints `metrics on URL` on stderr before its ready line (chat/server.py).
    for log_line in server.log().splitlines():
        if log_line.startswith("metrics on "):
            server.metrics_url = log_line.split(" ", 2)[2].strip()
    return server


@contextmanager
def chat_server(*args: str, metrics: bool = False, timeout: float = START_TIMEOUT) -> Iterator[LabServer]:
    """``with chat_server("--delivery", "direct") as srv:``: a server for the block, stopped by PID after."""
    server = start_server(*args, metrics=metrics, timeout=timeout)
    try:
        yield server
    finally:
        server.stop()


def thread_count(pid: int) -> int:
    """Threads of process ``pid`` (psutil: works beyond Linux's /proc)."""
    return int(psutil.Process(pid).num_threads())


# -- a small blocking client, for experiments by hand ------------------------------------


class LabClient:
    """One connection to a chat server that a notebook drives line by line.

    Blocking and single-threaded on purpose: the lesson is the server's
    threads, not the client's. Lines go through :mod:`chat.protocol` both ways.
    """

    def __init__(self, address: str, *, timeout: float = LINE_TIMEOUT) -> None:
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.timeout = timeout
        self._buffer = protocol.LineBuffer()
        self._lines: list[str] = []

    def send(self, text: str) -> None:
        self.sock.sendall(protocol.encode_client_line(text))

    def read_line(self, timeout: float | None = None) -> str | None:
        """The next line from the server, or None when it closed the connection."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self._lines:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no line from the server within the timeout")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                return None
            for raw in self._buffer.feed(data):
                if isinstance(raw, bytes):
                    self._lines.append(raw.decode(protocol.ENCODING, "replace"))
        return self._lines.pop(0)

    def read_event(self, timeout: float | None = None) -> protocol.ServerEvent | None:
        """The next line, parsed by :func:`chat.protocol.parse_server_line`; None on close."""
        line = self.read_line(timeout)
        return None if line is None else protocol.parse_server_line(line)

    def join(self, name: str) -> protocol.ServerEvent | None:
        """Read the greeting, send ``name``, return the answer (``Ok`` or ``Err``)."""
        self.read_event()  # HELLO
        self.send(name)
        return self.read_event()

    def close(self) -> None:
        """Leave politely when possible, then close the socket."""
        try:
            self.send("/quit")
        except OSError:
            pass  # already closed by the server: nothing to say goodbye to
        self.sock.close()

    def __enter__(self) -> LabClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def race_for_name(address: str, name: str, contenders: int = 8, timeout: float = LINE_TIMEOUT) -> list[str]:
    """``contenders`` connections, each in its own thread, send ``name`` at the same instant.

    Each thread connects and reads HELLO, then all wait on one barrier and send
    the name together; the answers are returned in thread order (``OK name``
    or ``ERR name-taken``). A correct server answers OK exactly once. The
    server needs ``--max-clients`` of at least ``contenders``. Every
    connection stays open until all have been answered (so the winner still
    holds the name), then quits.
    """
    barrier = threading.Barrier(contenders, timeout=timeout)
    answered = threading.Barrier(contenders, timeout=timeout)
    answers: list[str] = ["no answer"] * contenders

    def contend(i: int) -> None:
        client: LabClient | None = None
        try:
            client = LabClient(address, timeout=timeout)
            greeting = client.read_event()
            if not isinstance(greeting, protocol.Hello):
                answers[i] = f"refused: {greeting!r}"  # e.g. ERR full: raise --max-clients
                raise ConnectionRefusedError(answers[i])
            barrier.wait()
            client.send(name)
            reply = client.read_event()
            if isinstance(reply, protocol.Ok):
                answers[i] = f"OK {reply.name}"
            elif isinstance(reply, protocol.Err):
                answers[i] = f"ERR {reply.code.value}"
            else:
                answers[i] = repr(reply)
        except (OSError, threading.BrokenBarrierError, protocol.ProtocolError) as exc:
            if answers[i] == "no answer":
                answers[i] = f"error: {type(exc).__name__} {exc}".strip()
            barrier.abort()
        finally:
            try:
                answered.wait()
            except threading.BrokenBarrierError:
                pass  # another contender failed: no need to hold the name any longer
            if client is not None:
                client.close()

    threads = [threading.Thread(target=contend, args=(i,), name=f"contender-{i}") for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(3 * timeout)
    return answers


# -- a swarm run -----------------------------------------------------------------------


@dataclass
class SwarmRun:
    """One finished ``python -m harness.swarm`` run: its verdict document and its record folder."""

    record: Path
    summary: dict[str, Any]
    """The ``--json`` document (also summary.json of the record): see docs/run-record.md."""
    exit_code: int
    seconds: float
    """Wall time of the whole run, start-up and judging included."""

    @property
    def verdict(self) -> str:
        return str(self.summary.get("verdict", "ERROR"))

    @property
    def line(self) -> str:
        """The one-line verdict, e.g. ``PASS: 0 violations in 12,000 deliveries``."""
        return str(self.summary.get("summary", ""))


def run_swarm(
    record_dir: str | os.PathLike[str],
    *,
    scenario: str = "chat",
    clients: int = 10,
    duration: float = 2.0,
    seed: int = 1,
    bug: str | None = None,
    delivery: str | None = None,
    extra: Sequence[str] = (),
    timeout: float | None = None,
) -> SwarmRun:
    """Run a swarm against its own server and return its verdict; the record goes to ``record_dir``.

    ``bug`` injects ``--unsafe BUG`` into the swarm's server, ``delivery``
    picks its broadcast design; ``extra`` holds any other swarm arguments
    (``--rate``, ``--server-arg=...``). Bounded by ``duration`` +
    :data:`SWARM_OVERHEAD` (or ``timeout``). Raises RuntimeError, with the
    swarm's last error line, if it gives no verdict.
    """
    record = Path(record_dir)
    args = list(extra)
    if delivery is not None:
        args += ["--delivery", delivery]
    cmd = swarm_command(
        scenario=scenario,
        clients=clients,
        duration=duration,
        seed=seed,
        bug=bug,
        record_dir=record,
        extra=args,
    )
    started = time.monotonic()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        timeout=timeout if timeout is not None else duration + SWARM_OVERHEAD,
    )
    try:
        summary = json.loads(proc.stdout)
    except json.JSONDecodeError:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the swarm gave no verdict (exit {proc.returncode}): {tail}") from None
    return SwarmRun(record, summary, proc.returncode, time.monotonic() - started)


# -- a run record as pandas DataFrames ---------------------------------------------------------


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
    """Load a run record (:func:`harness.record.load_run`) and tabulate it (:func:`frames_from_histories`)."""
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

    Lines are parsed by :func:`chat.protocol.parse_server_line` and payloads by
    :func:`harness.history.decode_payload`: the same readings the checker makes.
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


# -- judging a record again -----------------------------------------------------------------


def check_config(summary: dict[str, Any], meta: dict[str, Any]) -> CheckConfig:
    """The checker's settings of a recorded run: its bounds, contested names and end time."""
    settings = dict(meta.get("settings") or summary.get("settings") or {})
    contested = summary.get("contested_names") or meta.get("contested_names") or ()
    run_end = summary.get("run_end")
    return CheckConfig(
        handshake_bound=float(settings.get("handshake_bound", 5.0)),
        delivery_bound=float(settings.get("delivery_bound", 5.0)),
        contested_names=frozenset(str(n).lower() for n in contested),
        run_end=float(run_end) if isinstance(run_end, (int, float)) else None,
    )


def judge(frames: RunFrames, histories: Sequence[ClientHistory] | None = None) -> Report:
    """Run every check of :mod:`harness.checker` over the record (or over ``histories``, e.g. a cut of it)."""
    return check_all(
        frames.histories if histories is None else histories, check_config(frames.summary, frames.meta)
    )


def violations_frame(report: Report | dict[str, Any]) -> pd.DataFrame:
    """The witnesses of a report (or of a summary.json document): check, message, witness."""
    if isinstance(report, Report):
        rows = [(v.check, v.message, v.witness) for v in report.violations]
    else:
        rows = [(v.get("check"), v.get("message"), v.get("witness")) for v in report.get("violations") or []]
    return pd.DataFrame(rows, columns=["check", "message", "witness"])


def checks_frame(report: Report | dict[str, Any]) -> pd.DataFrame:
    """Violations per check (every check named, zeros included), from a report or a summary document."""
    counts = report.counts if isinstance(report, Report) else dict(report.get("checks") or {})
    return pd.DataFrame({"check": list(counts), "violations": [int(v) for v in counts.values()]}).set_index(
        "check"
    )


# -- lock metrics ---------------------------------------------------------------------------


def scrape_metrics(url: str) -> MetricsSnapshot:
    """One scrape of a server's ``/metrics`` (:func:`harness.metrics_scrape.scrape`)."""
    return scrape(url)


def _ms(h: Histogram | None, q: float) -> float | None:
    value = h.quantile(q) if h is not None else None
    return None if value is None else value * 1000.0


def locks_frame(snapshot: MetricsSnapshot, since: MetricsSnapshot | None = None) -> pd.DataFrame:
    """Lock figures: one row per lock (``site`` empty) and one per critical section that took it.

    ``lock`` is the lock's name (``registry``: the room's one lock) and
    ``site`` the critical section, named as in chat/room.py (``join``,
    ``say``, ...); see docs/metrics.md. With ``since``, counts and percentiles
    cover only what happened between the two scrapes. Columns: acquisitions,
    contended, contended_share (0..1), wait_p50_ms, wait_p99_ms, hold_p50_ms,
    hold_p99_ms (milliseconds; NaN where nothing was measured).
    """
    base = {(lk.section, lk.site): lk for lk in since.locks} if since is not None else {}
    rows = []
    for lk in snapshot.locks:
        b = base.get((lk.section, lk.site))
        acq = lk.acquisitions - (b.acquisitions if b else 0.0)
        cont = lk.contended - (b.contended if b else 0.0)
        wait = lk.wait.minus(b.wait if b else None) if lk.wait else None
        hold = lk.hold.minus(b.hold if b else None) if lk.hold else None
        rows.append(
            (
                lk.section,
                lk.site,
                acq,
                cont,
                cont / acq if acq else 0.0,
                _ms(wait, 0.5),
                _ms(wait, 0.99),
                _ms(hold, 0.5),
                _ms(hold, 0.99),
            )
        )
    columns = [
        "lock",
        "site",
        "acquisitions",
        "contended",
        "contended_share",
        "wait_p50_ms",
        "wait_p99_ms",
        "hold_p50_ms",
        "hold_p99_ms",
    ]
    return pd.DataFrame(rows, columns=columns).astype({c: float for c in columns[5:]})


def lock_histogram(
    snapshot: MetricsSnapshot,
    kind: str = "wait",
    site: str = "",
    lock: str = "registry",
    since: MetricsSnapshot | None = None,
) -> pd.DataFrame:
    """One lock histogram as bars: ``lo_ms``, ``hi_ms`` (bucket edges, ms) and ``count`` in that bucket.

    ``kind`` is ``wait`` (asking for the lock to getting it; contended
    acquisitions only) or ``hold`` (getting it to releasing it); ``site`` picks
    a critical section (empty: the whole lock). The last bucket's upper edge
    is infinite. Raises KeyError when the server has no such lock or site.
    """
    if kind not in ("wait", "hold"):
        raise ValueError(f"kind must be 'wait' or 'hold', not {kind!r}")
    found = [lk for lk in snapshot.locks if (lk.section, lk.site) == (lock, site)]
    if not found:
        raise KeyError(f"no lock {lock!r} site {site!r} in the metrics")
    h: Histogram | None = getattr(found[0], kind)
    if h is None:
        return pd.DataFrame({"lo_ms": [], "hi_ms": [], "count": []})
    if since is not None:
        prev = next((b for b in since.locks if (b.section, b.site) == (lock, site)), None)
        h = h.minus(getattr(prev, kind) if prev is not None else None)
    rows, lo, below = [], 0.0, 0.0
    for le, cumulative in h.buckets:
        rows.append((lo * 1000.0, le * 1000.0, cumulative - below))
        lo, below = le, cumulative
    return pd.DataFrame(rows, columns=["lo_ms", "hi_ms", "count"])


def metrics_series(meta: dict[str, Any], names: Sequence[str] = ()) -> pd.DataFrame:
    """The scrapes a swarm kept in meta.json (about one a second): ``s`` from the first, then samples.

    ``names`` picks sample keys (e.g. ``chat_deliveries_total``,
    ``chat_lock_acquisitions_total{section="say"}``); empty keeps them all.
    """
    series = pd.DataFrame(list(meta.get("metrics_series") or []))
    if not len(series):
        return series
    series.insert(0, "s", series["t"] - series["t"].min())
    if names:
        series = series[["s", "t", *[n for n in names if n in series.columns]]]
    return series
