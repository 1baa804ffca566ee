"""The checker over a record in a notebook, and its verdict as tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from harness.checker import CheckConfig, Report, check_all
from harness.lab.frames import RunFrames
from harness.record.history import ClientHistory
from harness.swarm.invoke import record_check_config


def check_config(summary: dict[str, Any], meta: dict[str, Any]) -> CheckConfig:
    """The checker's settings of a recorded run: its bounds, contested names and end time
    (:func:`harness.swarm.invoke.record_check_config`)."""
    return record_check_config(summary, meta)


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
