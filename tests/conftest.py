from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import ServerProcess


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    """A default server (10 slots) on a free port; stopped by PID, stderr checked for tracebacks."""
    srv = ServerProcess("--max-clients", "10").start()
    yield srv
    err = srv.stop()
    assert "Traceback" not in err, err
