"""A swarm run from a notebook: ``python -m harness.swarm`` in a subprocess, its verdict and its record."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.swarm.invoke import SwarmSpec
from harness.swarm.invoke import run_swarm as invoke_swarm


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
    """Run a swarm against its own server (or a ``--target`` in ``extra``) and return its verdict; the
    record goes to ``record_dir``.

    ``bug`` injects ``--unsafe BUG`` into the swarm's server, ``delivery`` picks its broadcast design;
    ``extra`` holds any other swarm arguments (``--rate``, ``--server-arg=...``). Bounded by ``timeout``
    (by default :func:`harness.swarm.invoke.run_swarm`'s). Raises RuntimeError, with the swarm's last
    error line, if it gives no verdict.
    """
    record = Path(record_dir).resolve()
    args = list(extra) + (["--delivery", delivery] if delivery is not None else [])
    spec = SwarmSpec(
        clients=clients,
        duration=duration,
        scenario=scenario,
        seed=seed,
        bug=bug,
        record_dir=record,
        extra=tuple(args),
    )
    out = invoke_swarm(spec, timeout=timeout)
    if out.document is None or out.exit_code is None:
        ended = f"exit {out.exit_code}" if out.exit_code is not None else "stopped at its time bound"
        raise RuntimeError(f"the swarm gave no verdict ({ended}): {out.line}")
    return SwarmRun(record, dict(out.document), out.exit_code, out.seconds)
