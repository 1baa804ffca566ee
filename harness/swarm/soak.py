"""A soak: one server, swarm rounds back to back for the whole duration, its resources sampled all along.

``python -m harness.swarm --scenario mixed --duration 1h --soak`` runs this instead of one long swarm.
One swarm run of an hour would hold every history of the hour in memory (tens of millions of events);
a soak runs the scenario in rounds of :func:`round_seconds` against the same server instead, each round
judged by the checker like any run and then dropped, so that the churn, chat, races, slow readers and
bursts go on for the whole duration while the harness stays small. Between rounds every bot leaves and
the next round's bots connect afresh: a server that leaks per connection shows round after round.

A sampler thread reads the server's RSS, threads and open descriptors (:mod:`harness.common.procstat`)
every :func:`sample_every` seconds, from its PID: the own server's, or a ``--target``'s when it is a
process of this machine that we may read (found by its listening port). Otherwise the resources are not
sampled and the leaks check says so. At the end, :func:`harness.checker.leaks.check_leaks` judges the
series. The verdict: FAIL if a round failed or a resource kept growing, else PASS (UNKNOWN when no round
could be judged). docs/swarm.md ("Soak runs") has the rules and the figures of a one-hour soak.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.checker.leaks import ResourceSample, ResourceVerdict, check_leaks
from harness.common.gctune import collect_now
from harness.common.launcher import ServerProcess
from harness.common.procstat import find_listening_pid, sample_process
from harness.record import store
from harness.swarm.run import (
    SetupError,
    StopFlag,
    Swarm,
    SwarmSettings,
    judged_backlog,
    probe,
    start_own_server,
)

log = logging.getLogger(__name__)

#: Rounds are at most this long, and at least :data:`MIN_ROUND` (or the whole duration, if shorter).
MAX_ROUND = 60.0
MIN_ROUND = 5.0
#: A soak keeps at least this many rounds when its duration allows.
ROUNDS_AT_LEAST = 6


def round_seconds(duration: float) -> float:
    """Seconds of chat per round: a sixth of the duration, within 5 to 60 s (never more than it)."""
    return min(duration, max(MIN_ROUND, min(MAX_ROUND, duration / ROUNDS_AT_LEAST)))


def sample_every(duration: float) -> float:
    """Seconds between resource samples: about 300 samples, at most one every 5 s, at least every 0.5 s."""
    return max(0.5, min(5.0, duration / 300.0))


class Sampler:
    """Samples a process's resources on a thread of its own until :meth:`stop` (which joins it)."""

    def __init__(self, pid: int, every: float) -> None:
        self.pid = pid
        self.every = every
        self.series: list[ResourceSample] = []
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"soak-sampler-{pid}", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            sample = sample_process(self.pid)
            if sample is not None:
                with self._lock:
                    self.series.append(
                        ResourceSample(round(sample.t - self.t0, 3), sample.rss, sample.threads, sample.fds)
                    )
            if self._stop.wait(self.every):  # the pace of sampling; stop() ends the wait at once
                return

    def latest(self) -> ResourceSample | None:
        with self._lock:
            return self.series[-1] if self.series else None

    def stop(self) -> list[ResourceSample]:
        self._stop.set()
        self._thread.join(10.0)
        with self._lock:
            return list(self.series)


@dataclass
class SoakResult:
    doc: dict[str, Any]
    exit_code: int
    record_dir: Path | None


def _round_entry(i: int, doc: dict[str, Any], started: float) -> dict[str, Any]:
    return {
        "round": i,
        "t": round(started, 3),
        "verdict": doc.get("verdict"),
        "exit_code": doc.get("exit_code"),
        "summary": doc.get("summary"),
        "deliveries": doc.get("deliveries", 0),
        "checks": doc.get("checks", {}),
        "violations": list(doc.get("violations", []))[:3],
    }


def _fmt_sample(s: ResourceSample | None) -> str:
    if s is None:
        return "server not sampled"
    return f"server rss {s.rss / 1048576:.1f} MiB, threads {s.threads}, fds {s.fds}"


def run_soak(
    settings: SwarmSettings,
    *,
    record_dir: Path | None,
    progress: Callable[[str], None],
    argv: Sequence[str],
    stop: StopFlag,
) -> SoakResult:
    """The soak of the module docstring; raises :class:`SetupError` when the server cannot be had."""
    total = settings.duration
    each = round_seconds(total)
    server: ServerProcess | None = None
    sampler: Sampler | None = None
    rounds: list[dict[str, Any]] = []
    not_sampled = ""
    pid: int | None
    t0 = time.monotonic()
    scratch = tempfile.TemporaryDirectory(prefix="soak-") if record_dir is None else None
    try:
        if settings.target is None:
            log_dir = record_dir if record_dir is not None else Path(scratch.name)  # type: ignore[union-attr]
            server = start_own_server(settings, log_dir / store.SERVER_LOG, has_slow=True)
            target, metrics_url, pid = server.endpoint, server.metrics_url, server.pid
        else:
            probe(settings.target, timeout=max(1.0, settings.handshake_bound))
            target, metrics_url = settings.target, settings.metrics_url
            pid = find_listening_pid(target.port)
            if pid is None:
                not_sampled = f"the process listening on {target} is not visible from here"
        if pid is not None:
            sampler = Sampler(pid, sample_every(total)).start()
        i = 0
        while not stop.is_set():
            elapsed = time.monotonic() - t0
            if elapsed >= total:
                break
            i += 1
            round_settings = dataclasses.replace(
                settings,
                target=target,
                metrics_url=metrics_url,
                duration=max(1.0, min(each, total - elapsed)),
                seed=settings.seed + i,
                max_backlog=judged_backlog(settings, server is not None),
            )
            swarm = Swarm(round_settings, record_dir=None, progress=None, argv=argv, stop=stop)
            started = time.monotonic() - t0
            try:
                result = swarm.run()
            except SetupError as exc:
                rounds.append({"round": i, "t": round(started, 3), "verdict": "ERROR", "summary": str(exc)})
                progress(f"[soak {_clock(started)}/{_clock(total)}] round {i}: setup error: {exc}")
                break
            rounds.append(_round_entry(i, result.doc, started))
            summary = result.doc["summary"]
            # The round's histories are dropped here; free them before the next round (gctune).
            del swarm, result
            collect_now()
            now = _clock(time.monotonic() - t0)
            progress(
                f"[soak {now}/{_clock(total)}] round {i}: {summary} | "
                + _fmt_sample(sampler.latest() if sampler else None)
            )
    finally:
        series = sampler.stop() if sampler is not None else []
        if server is not None:
            server.stop()
        if scratch is not None:
            scratch.cleanup()
    return _finish(settings, rounds, series, not_sampled, time.monotonic() - t0, server, record_dir, argv)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


def _finish(
    settings: SwarmSettings,
    rounds: list[dict[str, Any]],
    series: list[ResourceSample],
    not_sampled: str,
    seconds: float,
    server: ServerProcess | None,
    record_dir: Path | None,
    argv: Sequence[str],
) -> SoakResult:
    verdicts = check_leaks(series) if series else []
    grew = [v for v in verdicts if v.grew]
    failed = [r for r in rounds if r.get("verdict") in ("FAIL", "ERROR")]
    judged = [r for r in rounds if r.get("verdict") in ("PASS", "FAIL")]
    deliveries = sum(int(r.get("deliveries") or 0) for r in rounds)
    violations = sum(sum((r.get("checks") or {}).values()) for r in rounds)
    if failed or grew:
        verdict, code = "FAIL", 1
    elif not judged:
        verdict, code = "UNKNOWN", 3
    else:
        verdict, code = "PASS", 0
    leak_note = _leaks_note(verdicts, grew, not_sampled or ("no sample was taken" if not series else ""))
    summary = (
        f"{verdict}: soak of {len(rounds)} rounds in {seconds:.0f} s, {len(failed)} failed, "
        f"{violations:,} violations in {deliveries:,} deliveries; {leak_note}"
    )
    doc: dict[str, Any] = {
        "verdict": verdict,
        "exit_code": code,
        "summary": summary,
        "soak": True,
        "seconds": round(seconds, 1),
        "settings": settings.to_dict(),
        "rounds": rounds,
        "deliveries": deliveries,
        "violations": [{"check": "leaks", "message": v.message(), "witness": v.as_dict()} for v in grew]
        + [v for r in failed for v in r.get("violations", [])][:20],
        "leaks": {
            "sampled": bool(series),
            "not_sampled": not_sampled or None,
            "resources": [v.as_dict() for v in verdicts],
        },
        "series": [s._asdict() for s in series],
    }
    if record_dir is not None:
        store.write_json(record_dir / store.SUMMARY, doc)
        store.write_json(
            record_dir / store.META,
            store.meta_document(
                settings=settings.to_dict(),
                server_command=server.command if server is not None else None,
                argv=argv,
                extra={"kind": "soak"},
            ),
        )
    return SoakResult(doc, code, record_dir)


def _leaks_note(verdicts: list[ResourceVerdict], grew: list[ResourceVerdict], not_sampled: str) -> str:
    if not_sampled:
        return f"leaks not judged: server not sampled ({not_sampled})"
    if not any(v.judged for v in verdicts):
        return "leaks not judged: too few samples after warm-up"
    if grew:
        return "leaks: " + ", ".join(f"{v.resource} grew" for v in grew)
    return "leaks: " + ", ".join(v.resource for v in verdicts if v.judged) + " flat"
