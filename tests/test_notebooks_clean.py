"""The committed notebooks hold no outputs: diffs stay readable, and CI (tox -e notebooks) makes the outputs.

Read as plain JSON (nbformat 4), so that this test needs none of the notebook packages.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "notebooks/ holds no .ipynb file"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc.get("nbformat") == 4, f"{path.name}: not an nbformat 4 notebook"
    dirty = [
        i
        for i, cell in enumerate(doc["cells"])
        if cell.get("cell_type") == "code"
        and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} hold outputs or execution counts; "
        f"clear them (jupyter nbconvert --clear-output --inplace {path.name})"
    )
    assert "widgets" not in doc.get("metadata", {}), f"{path.name}: widget state in the metadata"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_on_the_default_python3_kernel(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    kernel = doc.get("metadata", {}).get("kernelspec", {}).get("name")
    assert kernel == "python3", f"{path.name}: kernel {kernel!r}, not the default python3"
