"""Run ``python -m harness.swarm`` in a subprocess and read its verdict: the one way the apps do it.

The demo, the benchmarks, the bug-rate measurement and the notebooks' kit run whole swarms as black
boxes, exactly as a user would: :func:`swarm_command` builds the command line from a
:class:`SwarmSpec`, :func:`run_swarm` runs it with a time bound and returns a :class:`SwarmOutcome`
(the verdict, the exit code, the one JSON document the swarm prints with ``--json``, see
docs/run-record.md, and the end of its stderr for a run that printed none).

It also answers "how soon could the checker have told?" from a finished run's record
(:func:`detection_in_record`). No clock is involved: the recorded histories are cut at a time T and
judged as if the run had ended then, and the smallest T at which the checker already reports a
violation is the figure. A correct server's prefixes are as clean as its whole run, which is what makes
the figure fair.

Nothing here prints, and nothing here imports an app (demo, bench, lab).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from chat.protocol import name_key
from harness.checker import CheckConfig, Verdict, check_all
from harness.common.launcher import REPO
from harness.record.history import ClientHistory
from harness.record.store import load_run

#: The run that exposes the catalogued bugs: 30 bots, 8 s of chat (the scenario is each bug's own).
EXPOSING_CLIENTS = 30
EXPOSING_DURATION = 8.0
#: How a run against the safe server is labelled (a run against a bug is labelled with the bug's name).
SAFE = "safe"
#: A swarm of ``duration`` seconds ends within this much more (start-up, joins, drain, quits,
#: judging, on a loaded 2-core machine), or it is killed and reported as giving no verdict.
RUN_OVERHEAD = 90.0
#: Seconds a swarm stopped at its bound has to stop its bots and its server before it is killed.
STOP_GRACE = 30.0
#: Lines of the swarm's stderr kept for a run that printed no verdict.
STDERR_TAIL_LINES = 20
#: Precision of the time-to-first-detection search, in seconds.
RESOLUTION = 0.05


@dataclass(frozen=True)
class SwarmSpec:
    """One swarm to run: its options by name. ``None`` leaves an option to the swarm's default."""

    clients: int
    duration: float
    """Seconds of chat (``--duration``)."""
    scenario: str | None = None
    seed: int | None = None
    bug: str | None = None
    """Injected into the swarm's own server as ``--unsafe BUG``; None for the safe server."""
    record_dir: Path | None = None
    """Where the run record goes; None for ``--no-record``."""
    extra: tuple[str, ...] = ()
    """Any other swarm options, as on its command line (``--rate``, ``--target``, ...)."""

    @property
    def server(self) -> str:
        """The bug this run injects, or :data:`SAFE`."""
        return self.bug or SAFE


def swarm_command(spec: SwarmSpec) -> list[str]:
    """``python -m harness.swarm --json --no-dashboard ...`` for ``spec``, with this interpreter."""
    cmd = [sys.executable, "-m", "harness.swarm", "--json", "--no-dashboard"]
    # The swarm runs in the repository root: a record folder is named absolutely.
    cmd += ["--record", os.path.abspath(spec.record_dir)] if spec.record_dir is not None else ["--no-record"]
    if spec.scenario is not None:
        cmd += ["--scenario", spec.scenario]
    cmd += ["--clients", str(spec.clients), "--duration", str(float(spec.duration))]
    if spec.seed is not None:
        cmd += ["--seed", str(spec.seed)]
    if spec.bug is not None:
        cmd.append(f"--server-arg=--unsafe {spec.bug}")
    return cmd + list(spec.extra)


class Witness(NamedTuple):
    """A violation as the summary shows it: the check that fired and its message."""

    check: str
    message: str


class Detection(NamedTuple):
    """How soon the checker could tell that a run failed, and what it saw then."""

    after: float
    """Seconds from the run's first recorded event to the end of its shortest failing prefix."""
    witness: Witness


@dataclass(frozen=True)
class SwarmOutcome:
    """One finished swarm subprocess."""

    spec: SwarmSpec
    exit_code: int | None
    """The swarm's exit code; None when it did not end within its time bound and was killed."""
    document: Mapping[str, Any] | None
    """The ``--json`` document (docs/run-record.md); None when the swarm printed none."""
    stderr_tail: str
    """The last :data:`STDERR_TAIL_LINES` lines of its stderr."""
    seconds: float
    """Wall time of the whole run, start-up and judging included."""
    detection: Detection | None = None
    """Filled in by ``run_swarm(..., detect=True)`` for a failed run with a record."""

    @property
    def verdict(self) -> Verdict | None:
        """``PASS``, ``FAIL`` or ``UNKNOWN``; None when the swarm gave no verdict."""
        value = (self.document or {}).get("verdict")
        try:
            return Verdict(value)
        except ValueError:
            return None

    @property
    def verdict_text(self) -> str:
        """The verdict, or ``ERROR`` when there was none."""
        return "ERROR" if self.verdict is None else self.verdict.value

    @property
    def is_caught(self) -> bool:
        return self.verdict is Verdict.FAIL

    @property
    def is_clean(self) -> bool:
        return self.verdict is Verdict.PASS

    @property
    def line(self) -> str:
        """The swarm's one-line summary or, without a verdict, why there is none."""
        if self.document is not None and self.verdict is not None:
            return str(self.document.get("summary", ""))
        if self.exit_code is None:
            return "the swarm did not end in time"
        return self.last_error_line

    @property
    def last_error_line(self) -> str:
        lines = self.stderr_tail.strip().splitlines()
        return lines[-1] if lines else "no output"

    @property
    def checks(self) -> dict[str, int]:
        """Violations per check, only the checks that fired."""
        counts = dict((self.document or {}).get("checks") or {})
        return {name: int(n) for name, n in counts.items() if n}

    @property
    def first_witness(self) -> Witness | None:
        """The first violation of the shortest failing prefix when known, else of the whole run."""
        if self.detection is not None:
            return self.detection.witness
        violations = (self.document or {}).get("violations") or []
        if not violations:
            return None
        return Witness(str(violations[0].get("check", "")), str(violations[0].get("message", "")))

    def as_dict(self) -> dict[str, object]:
        """The outcome as the demo's ``--json`` and the bug-rate's ``--out`` lines store it."""
        witness = self.first_witness
        return {
            "server": self.spec.server,
            "scenario": self.spec.scenario,
            "verdict": self.verdict_text,
            "exit_code": self.exit_code,
            "summary": self.line,
            "checks": self.checks,
            "first_check": witness.check if witness else "",
            "first_witness": witness.message if witness else "",
            "detected_after_s": self.detection.after if self.detection else None,
            "seconds": round(self.seconds, 2),
        }


def run_swarm(spec: SwarmSpec, *, timeout: float | None = None, detect: bool = False) -> SwarmOutcome:
    """Run the swarm of ``spec`` to its end and read its verdict.

    The run is bounded by ``timeout`` seconds (by default its duration plus
    :data:`RUN_OVERHEAD`); past it the swarm is stopped (:func:`_stop`) and the
    outcome has no verdict. With ``detect``, a failed run that kept a record also
    gets its :class:`Detection`. The swarm runs in the repository root, so that it
    imports this checkout.
    """
    bound = timeout if timeout is not None else spec.duration + RUN_OVERHEAD
    started = time.monotonic()
    with subprocess.Popen(
        swarm_command(spec),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=bound)
        except subprocess.TimeoutExpired:
            _, stderr = _stop(proc)
            return SwarmOutcome(spec, None, None, _tail(stderr), time.monotonic() - started)
        except BaseException:  # Ctrl+C: leave no swarm behind, then let the caller see it
            _stop(proc)
            raise
    outcome = SwarmOutcome(
        spec, proc.returncode, _document(stdout), _tail(stderr), time.monotonic() - started
    )
    if detect and outcome.is_caught and spec.record_dir is not None:
        outcome = dataclasses.replace(outcome, detection=detection_in_record(spec.record_dir))
    return outcome


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM, on which the swarm stops its bots and its own server; SIGKILL after :data:`STOP_GRACE`."""
    proc.terminate()
    try:
        return proc.communicate(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def _document(stdout: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(stdout)
    except json.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _tail(stderr: str) -> str:
    return "\n".join(stderr.strip().splitlines()[-STDERR_TAIL_LINES:])


# -- time to first detection -------------------------------------------------------------------

Judge = Callable[[list[ClientHistory], float], Witness | None]
"""``judge(histories, cut)``: the first violation of a run that ended at ``cut``, or None when it passes."""


def prefix(histories: Sequence[ClientHistory], cut: float) -> list[ClientHistory]:
    """The histories as they stood at wall-clock time ``cut`` (clients with no event by then left out)."""
    out = []
    for h in histories:
        events = [e for e in h.events if e.t <= cut]
        if events:
            out.append(ClientHistory(h.client, h.bot, h.role, events))
    return out


def first_detection(
    histories: Sequence[ClientHistory], judge: Judge, *, resolution: float = RESOLUTION
) -> Detection | None:
    """The shortest failing prefix of the run (to ``resolution``), or None when the whole run passes.

    Assumes that a failing prefix stays failing when it grows (a witness stays a
    witness), so a bisection over the cut time finds the edge.
    """
    times = [e.t for h in histories for e in h.events]
    if not times:
        return None
    first, passing, failing = min(times), min(times), max(times)
    found = judge(list(histories), failing)
    if found is None:
        return None
    while failing - passing > resolution:
        mid = (passing + failing) / 2
        got = judge(prefix(histories, mid), mid)
        if got is None:
            passing = mid
        else:
            failing, found = mid, got
    return Detection(failing - first, found)


def record_check_config(summary: Mapping[str, Any], meta: Mapping[str, Any]) -> CheckConfig:
    """The checker's settings of a recorded run: its bounds, contested names and end time."""
    settings = dict(meta.get("settings") or summary.get("settings") or {})
    contested = summary.get("contested_names") or meta.get("contested_names") or ()
    run_end = summary.get("run_end")
    return CheckConfig(
        handshake_bound=float(settings.get("handshake_bound", 5.0)),
        delivery_bound=float(settings.get("delivery_bound", 5.0)),
        contested_names=frozenset(name_key(str(n)) for n in contested),
        run_end=float(run_end) if isinstance(run_end, (int, float)) else None,
    )


def detection_in_record(record_dir: str | os.PathLike[str]) -> Detection | None:
    """:func:`first_detection` over a run record, judged with the record's own settings."""
    histories, summary, meta = load_run(record_dir)
    config = record_check_config(summary, meta)

    def judge(hs: list[ClientHistory], cut: float) -> Witness | None:
        report = check_all(hs, dataclasses.replace(config, run_end=cut))
        if report.passed() or not report.violations:
            return None
        first = report.violations[0]
        return Witness(first.check, first.message)

    return first_detection(histories, judge)
