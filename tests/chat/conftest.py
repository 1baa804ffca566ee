"""Fixtures of the chat tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chat.kit import Sockets


@pytest.fixture
def sockets() -> Iterator[Sockets]:
    """Socket pairs for one test, all closed at its end."""
    s = Sockets()
    yield s
    s.close()
