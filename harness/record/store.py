"""The run record: one folder per swarm run, written at the end and loadable later.

Not the recorder of events (a connection records, :mod:`harness.record.connection`);
this module only writes and reads the files. The format is documented in
docs/run-record.md::

    runs/20261125T213500Z-mixed/
        events.jsonl   one JSON object per line: a client's header line
                       {"c", "k": "client", "bot", "role"} then its events
                       (harness.record.history.event_to_dict), client after client
        summary.json   the run's summary: the very document ``--json`` prints
        meta.json      command line, versions, settings, seed, server command,
                       and the server metrics scraped during the run
        server.log     the own server's stderr (only when the swarm started it)

:func:`load_run` gives notebooks ``(histories, summary, meta)`` back.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.record.history import (
    ClientHistory,
    Received,
    Sent,
    event_to_dict,
    history_header,
    load_histories,
)

log = logging.getLogger(__name__)

EVENTS = "events.jsonl"
SUMMARY = "summary.json"
META = "meta.json"
SERVER_LOG = "server.log"
#: Version of the record layout, stored in meta.json; bumped on incompatible changes.
FORMAT = 1


def new_run_dir(root: str | os.PathLike[str], scenario: str, now: float | None = None) -> Path:
    """Create and return ``root/<UTC time>-<scenario>/``, unique even within one second."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        path = base / (f"{stamp}-{scenario}" if i == 1 else f"{stamp}-{scenario}-{i}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free run folder name under {base} for {stamp}-{scenario}")


#: A folder :func:`new_run_dir` made: ``<UTC time>-<scenario>`` with an optional ``-N``.
RUN_DIR_NAME = re.compile(r"^\d{8}T\d{6}Z-[A-Za-z0-9_-]+$")
#: Swarm run records kept under ``runs/`` by default (``--keep-runs``); 0 keeps them all.
DEFAULT_KEEP_RUNS = 10


def prune_runs(root: str | os.PathLike[str], keep: int, *, spare: Path | None = None) -> list[Path]:
    """Delete all but the ``keep`` newest swarm run records under ``root``; return what went.

    Only folders that :func:`new_run_dir` names and that hold an ``events.jsonl`` count: a bench
    record, a folder given with ``--record`` elsewhere, or anything a person put there is never
    touched. ``spare`` (the run being recorded, still empty) is never deleted and counts as one of the
    ``keep``. Newest means the latest name: the names begin with the UTC time. ``keep`` 0 keeps all.
    """
    if keep <= 0:
        return []
    base = Path(root)
    spared = spare.resolve() if spare is not None else None
    try:
        found = [
            p
            for p in base.iterdir()
            if RUN_DIR_NAME.match(p.name) and (p / EVENTS).is_file() and p.resolve() != spared
        ]
    except OSError as exc:
        log.warning("cannot list %s to prune old run records: %s", base, exc)
        return []
    found.sort(key=lambda p: p.name, reverse=True)
    gone = found[keep - 1 if spared is not None else keep :]
    for path in gone:
        try:
            shutil.rmtree(path)
        except OSError as exc:  # a record that cannot be deleted stays; the run goes on
            log.warning("cannot delete the old run record %s: %s", path, exc)
    return gone


def write_events(path: str | os.PathLike[str], histories: Iterable[ClientHistory]) -> int:
    """Write histories as events.jsonl lines; returns the number of lines.

    The output is exactly ``json.dumps(d, separators=(",", ":"), ensure_ascii=False)``
    of :func:`harness.record.history.histories_to_dicts`, but received and sent lines
    (nearly every event) are formatted without building a dict each: a run of
    500,000 deliveries is written in about a second instead of five.
    """
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        buf: list[str] = []
        for history in histories:
            c = encode(history.client)
            buf.append(encode(history_header(history)))
            for e in history.events:
                kind = type(e)
                if kind is Received:
                    buf.append(f'{{"c":{c},"k":"received","t":{e.t!r},"line":{encode(e.line)}}}')  # type: ignore[union-attr]
                elif kind is Sent and e.due is not None:  # type: ignore[union-attr]
                    buf.append(
                        f'{{"c":{c},"k":"sent","t":{e.t!r},"line":{encode(e.line)},"due":{e.due!r}}}'  # type: ignore[union-attr]
                    )
                else:
                    buf.append(encode(event_to_dict(history.client, e)))
            n += len(history.events) + 1
            if len(buf) >= 4096:
                f.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            f.write("\n".join(buf) + "\n")
    return n


def concat_events(dest: str | os.PathLike[str], parts: Sequence[str | os.PathLike[str]]) -> None:
    """Join the events files that several worker processes wrote into one."""
    with open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)


def write_json(path: str | os.PathLike[str], doc: Mapping[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")


def versions() -> dict[str, str]:
    """What produced a record, for comparisons across machines and releases."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("chat-harness", "rich", "prometheus_client"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def meta_document(
    *,
    settings: Mapping[str, Any],
    server_command: Sequence[str] | None,
    metrics_series: Sequence[Mapping[str, Any]] = (),
    argv: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": FORMAT,
        "command_line": list(argv if argv is not None else sys.argv),
        "versions": versions(),
        "settings": dict(settings),
        "seed": settings.get("seed"),
        "server_command": list(server_command) if server_command else None,
        "metrics_series": list(metrics_series),
    }
    if extra:
        doc.update(extra)
    return doc


def load_run(path: str | os.PathLike[str]) -> tuple[list[ClientHistory], dict[str, Any], dict[str, Any]]:
    """Load a run folder: ``(histories, summary, meta)``; missing JSON files load as ``{}``."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"no run record at {folder}")
    histories = load_histories(folder / EVENTS) if (folder / EVENTS).exists() else []
    return histories, _read_json(folder / SUMMARY), _read_json(folder / META)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    return doc if isinstance(doc, dict) else {"value": doc}
