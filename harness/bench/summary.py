"""The bench's summary document (what ``--json`` writes) and its run record folder.

The summary holds the settings, the machine, every run's record, the aggregated rows and ratios, the
goals and ``clean``: whether every run completed without loss, reordering, a slow drop or an error,
which is the bench's exit status (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from harness.bench.cases import Bench
from harness.bench.figures import aggregate, instrumentation_cost, ratios
from harness.bench.goals import goal_figures, goals
from harness.record import store


def load_average() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        import resource

        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError):  # no resource module off Unix
        nofile = None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_bytes": psutil.virtual_memory().total,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "ulimit_nofile": nofile,
        "load_average": load_average(),
    }


def is_clean(runs: Sequence[dict[str, Any]]) -> bool:
    """The exit-status rule: every run completed, and none lost, reordered or dropped anything."""
    return all(r.get("clean") for r in runs) and not any(r.get("error") for r in runs)


def build_summary(bench: Bench, started: float, load_before: list[float] | None) -> dict[str, Any]:
    """The summary of the runs ``bench`` did; ``started`` is its ``time.time()`` at the start."""
    rows = aggregate(bench.runs)
    ratio_rows = ratios(rows, bench.s.sizes, bench.s.peers) if "saturation" in bench.s.cases else []
    summary: dict[str, Any] = {
        "kind": "bench",
        "settings": bench.s.to_json(),
        "machine": machine_info(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "seconds": round(time.time() - started, 1),
        "runs": bench.runs,
        "rows": rows,
        "ratios": ratio_rows,
        "peers": bench.peers,
        "notes": bench.notes,
        "extra": bench.extra,
    }
    summary["instrumentation_cost"] = instrumentation_cost(rows, bench.s.instrumentation_members)
    figures = goal_figures(bench.runs, rows, ratio_rows, bench.extra, bench.peers)
    summary["goals"] = [row.as_dict() for row in goals(figures)]
    summary["clean"] = is_clean(bench.runs)
    return summary


def write_record(summary: dict[str, Any], runs_dir: str, argv: Sequence[str]) -> Path:
    """``runs/<time>-bench/`` with summary.json and meta.json, like the swarm's run records."""
    folder = store.new_run_dir(runs_dir, "bench")
    store.write_json(folder / "summary.json", summary)
    store.write_json(
        folder / "meta.json",
        store.meta_document(
            settings=summary["settings"],
            server_command=None,
            argv=[sys.executable, "-m", "harness.bench", *argv],
            extra={"machine": summary["machine"], "kind": "bench"},
        ),
    )
    return folder
