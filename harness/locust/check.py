"""Judge a locust run with the harness checker when it stops; in distributed mode, add up the workers.

Not a locustfile (it has no user). Every chat connection of this process is
registered with :data:`RECORDER` and records what it sent and received, with
times, as a :class:`harness.record.history.ClientHistory`. When the test stops, the
``test_stop`` listener below closes what is still open, runs
:func:`harness.checker.check_all` over the histories, logs the verdict and
each violation with its witness, and sets ``environment.process_exit_code``
to 1 if there was any: locust then exits non-zero.

**What the checker may assume here.** Users join at different times, stop
mid-run (a ramp down, a web UI change, a stop), rejoin on new connections and
may be killed in the middle of a task: all of that is what the checker's
conservative windows are built for (a member is owed only what was provably
broadcast while it was registered; a connection still open at the stop is
``stopped`` and owed nothing in flight). Two things are locust's own:

* **Partial views.** A distributed worker holds only its own users'
  histories, while the others' users share the room. Workers therefore judge
  with ``CheckConfig(foreign_clients=True)``: names no local user offered are
  not phantoms, and nothing that needs another process's history is judged.
  ``--chat-shared-server`` asks the same of a single process when people or
  other tools chat on the server during the run.
* **Times.** Send times are taken just before the write (a lower bound on
  when the server saw a line, tighter than the bots' "just after"); receive
  times when the reader greenlet got the bytes (an upper bound). A locust
  process short of CPU records receipts late: its liveness verdicts then
  measure the load generator, and the log says so when locust warned about CPU.

**Distributed runs.** Each worker judges its own users when it stops and
sends the result to the master as a custom message (``chat_check_report``).
The master adds them up, logs the total and exits non-zero if any worker found
a violation. A worker's report precedes its ``client_stopped`` message, so
when the master stops the workers (the web UI's stop) every report is in by
its own ``test_stop``. When locust quits at once (a headless ``--run-time``
end: the master stops without waiting for the workers), the master asks each
worker that has not reported to stop and report (``chat_check_request``) and
waits for the answers, boundedly, before locust reads the exit code.
"""

from __future__ import annotations

# locust first: importing it patches the standard library (sockets, threads) for gevent.
from locust import events  # isort: skip
from locust.runners import MasterRunner, WorkerRunner  # isort: skip

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gevent.event import Event

from harness.checker import CheckConfig, Report, check_all
from harness.locust.options import ChatOptions, options_of
from harness.record.history import ClientHistory

# The name locust prints in each of this module's log lines (docs/locust.md shows them).
log = logging.getLogger("chat_check")

#: Custom message types between the workers and the master.
REPORT = "chat_check_report"
REQUEST = "chat_check_request"
#: Witness lines a worker sends to the master (it logs all of its own).
WITNESSES_TO_MASTER = 5
#: Seconds the master waits for the workers' reports, beyond --stop-timeout:
#: the time to stop users (a bounded /quit each) and to run the checker.
REPORT_WAIT = 30.0


class Recorded(Protocol):
    """A connection that recorded its history (:class:`harness.locust.client.ChatClient`)."""

    def finish(self, t: float) -> ClientHistory:
        """Close the connection if it is still open (as ``stopped``) and return its history."""
        ...


@dataclass
class Recorder:
    """This process's recorded connections since the last check, and the names raced for."""

    clients: list[Recorded] = field(default_factory=list)
    contested: set[str] = field(default_factory=set)

    def add(self, client: Recorded) -> None:
        self.clients.append(client)

    def take(self, t: float) -> list[ClientHistory]:
        """Every recorded history (open connections are closed as stopped at ``t``); starts afresh."""
        clients, self.clients = self.clients, []
        return [c.finish(t) for c in clients]


RECORDER = Recorder()


# -- judging (pure but for the log) -------------------------------------------------------


def check_config(opts: ChatOptions, contested: Iterable[str], run_end: float, foreign: bool) -> CheckConfig:
    """The checker's settings for a locust run: the same bounds the requests time out on."""
    return CheckConfig(
        handshake_bound=opts.handshake_bound,
        delivery_bound=opts.delivery_bound,
        contested_names=frozenset(n.lower() for n in contested),
        run_end=run_end,
        foreign_clients=foreign,
    )


def witness_line(check: str, message: str, witness: Mapping[str, object]) -> str:
    """``[check] message  {witness as JSON}``: the form the swarm and the checker CLI print."""
    return f"[{check}] {message}  {json.dumps(witness, default=str)}"


def report_message(report: Report | None, clients: int, *, checked: bool = True) -> dict[str, Any]:
    """What a worker sends the master: counts, the summary line and the first witnesses."""
    if not checked:
        return {
            "checked": False,
            "clients": clients,
            "total": 0,
            "counts": {},
            "deliveries": 0,
            "witnesses": [],
        }
    assert report is not None
    return {
        "checked": True,
        "clients": clients,
        "total": report.total(),
        "counts": {k: v for k, v in report.counts.items() if v},
        "deliveries": report.deliveries,
        "summary": report.summary_line(),
        "witnesses": [
            witness_line(v.check, v.message, v.witness) for v in report.violations[:WITNESSES_TO_MASTER]
        ],
    }


def total_line(reports: Mapping[str, Mapping[str, Any]]) -> str:
    """The master's one line over the workers' reports: PASS/FAIL with exact counts per check."""
    total = sum(int(r.get("total", 0)) for r in reports.values())
    deliveries = sum(int(r.get("deliveries", 0)) for r in reports.values())
    counts: dict[str, int] = {}
    for r in reports.values():
        for k, v in dict(r.get("counts", {})).items():
            counts[k] = counts.get(k, 0) + int(v)
    workers = f"{len(reports)} worker{'s' if len(reports) != 1 else ''}"
    if total == 0:
        return f"PASS: 0 violations in {deliveries:,} deliveries ({workers})"
    detail = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    plural = "s" if total != 1 else ""
    return f"FAIL: {total:,} violation{plural} ({detail}) in {deliveries:,} deliveries ({workers})"


def judge_here(environment: Any) -> dict[str, Any]:
    """Judge this process's recorded histories; log the verdict and witnesses; set the exit code."""
    opts = options_of(environment.parsed_options)
    now = time.time()
    histories = RECORDER.take(now)
    if not opts.check:
        return report_message(None, len(histories), checked=False)
    if not histories:
        log.info("chat check: no chat connection to judge")
        return report_message(check_all([]), 0)
    runner = environment.runner
    foreign = opts.shared_server or isinstance(runner, WorkerRunner)
    report = check_all(histories, check_config(opts, RECORDER.contested, now, foreign))
    view = " (this worker's users only)" if isinstance(runner, WorkerRunner) else ""
    line = (
        f"chat check{view}: {report.summary_line()}; {report.clients} connections, "
        f"{report.joined} joined; checked in {report.elapsed:.2f} s"
    )
    if report.passed():
        log.info(line)
    else:
        log.error(line)
        shown = report.violations[: max(0, opts.witnesses)]
        for v in shown:
            log.error("  %s", witness_line(v.check, v.message, v.witness))
        if report.total() > len(shown):
            log.error("  ... %s more (the counts above are exact)", f"{report.total() - len(shown):,}")
        if report.counts.get("liveness") and getattr(runner, "cpu_warning_emitted", False):
            log.warning(
                "chat check: locust's CPU went above 90%% during the run; liveness violations may be "
                "the load generator's own delay"
            )
        if any("no client ever offered" in v.message for v in report.violations) and not foreign:
            log.warning("chat check: other clients on the server? judge with --chat-shared-server")
        environment.process_exit_code = 1
    return report_message(report, len(histories))


# -- wiring: local, worker and master ------------------------------------------------------------


@dataclass
class MasterState:
    """The master's view of one run: the workers' reports, and whom it still waits for."""

    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    waiting: set[str] = field(default_factory=set)
    all_in: Event = field(default_factory=Event)

    def reset(self) -> None:
        self.reports.clear()
        self.waiting.clear()
        self.all_in.clear()

    def add(self, worker: str, data: Mapping[str, Any]) -> None:
        """A worker's report; a second one in the same run (after a request) is added to the first."""
        old = self.reports.get(worker)
        new = dict(data)
        if old is not None:
            new["total"] = int(old.get("total", 0)) + int(new.get("total", 0))
            new["deliveries"] = int(old.get("deliveries", 0)) + int(new.get("deliveries", 0))
            counts = dict(old.get("counts", {}))
            for k, v in dict(new.get("counts", {})).items():
                counts[k] = counts.get(k, 0) + int(v)
            new["counts"] = counts
            new["witnesses"] = list(old.get("witnesses", [])) + list(new.get("witnesses", []))
            new["checked"] = bool(old.get("checked")) or bool(new.get("checked"))
        self.reports[worker] = new
        self.waiting.discard(worker)
        if not self.waiting:
            self.all_in.set()


MASTER = MasterState()


class _Worker:
    """The worker's side: whether a report went out since the last request."""

    reports_sent = 0


def _send_report(environment: Any, data: dict[str, Any]) -> None:
    environment.runner.send_message(REPORT, data)
    _Worker.reports_sent += 1


def _on_report(environment: Any, msg: Any, **_: Any) -> None:
    """Master: a worker's report arrived."""
    MASTER.add(str(msg.node_id), dict(msg.data or {}))


def _on_request(environment: Any, msg: Any, **_: Any) -> None:
    """Worker: the master asks for this run's report (it is quitting without stopping us first)."""
    before = _Worker.reports_sent
    environment.runner.stop()  # fires test_stop (which reports) if users were running
    if _Worker.reports_sent == before:
        _send_report(environment, judge_here(environment))


def _collect_from_workers(environment: Any) -> None:
    """Master, at test_stop: ask every worker that has not reported, wait (boundedly), log the total."""
    runner = environment.runner
    missing = [c.id for c in runner.clients.all if c.id not in MASTER.reports]
    if missing:
        MASTER.waiting.update(missing)
        MASTER.all_in.clear()
        for worker in missing:
            runner.send_message(REQUEST, None, client_id=worker)
        wait = environment.stop_timeout + REPORT_WAIT
        if not MASTER.all_in.wait(timeout=wait):
            for worker in sorted(MASTER.waiting):
                log.warning(
                    "chat check: worker %s sent no report within %.0f s: its users were not judged",
                    worker,
                    wait,
                )
    if not MASTER.reports:
        log.info("chat check: no worker report to add up")
        return
    failed = False
    for worker, report in sorted(MASTER.reports.items()):
        if not report.get("checked", True):
            log.info("chat check: worker %s did not judge its users (--chat-no-check)", worker)
            continue
        if int(report.get("total", 0)):
            failed = True
            log.error("chat check: worker %s: %s", worker, report.get("summary", ""))
            for w in report.get("witnesses", []):
                log.error("  %s", w)
        else:
            log.info("chat check: worker %s: %s", worker, report.get("summary", "no connection"))
    line = f"chat check (all workers): {total_line(MASTER.reports)}"
    if failed:
        log.error(line)
        environment.process_exit_code = 1
    else:
        log.info(line)
    MASTER.reset()


def _on_init(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        runner.register_message(REPORT, _on_report)
    elif isinstance(runner, WorkerRunner):
        # Concurrent: stopping the users takes a moment, and the worker keeps
        # answering heartbeats meanwhile.
        try:
            runner.register_message(REQUEST, _on_request, concurrent=True)
        except TypeError:  # a locust older than the concurrent flag: handled inline
            runner.register_message(REQUEST, _on_request)


def _on_test_start(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        MASTER.reset()


def _on_test_stop(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        _collect_from_workers(environment)
        return
    data = judge_here(environment)
    if isinstance(runner, WorkerRunner):
        _send_report(environment, data)


def listen(hook: Any, handler: Callable[..., None]) -> None:
    """Add ``handler`` to the locust event ``hook`` (locust's ``add_listener`` carries no types)."""
    hook.add_listener(handler)


listen(events.init, _on_init)
listen(events.test_start, _on_test_start)
listen(events.test_stop, _on_test_stop)
