from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import ServerProcess  # noqa: E402


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    """A default server (10 slots) on a free port; stopped by PID, stderr checked for tracebacks."""
    srv = ServerProcess("--max-clients", "10").start()
    yield srv
    err = srv.stop()
    assert "Traceback" not in err, err
