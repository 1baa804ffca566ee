"""The garbage collector's settings: restored after each tool, nested or not."""

from __future__ import annotations

import gc

from harness.common.gctune import collector_paused, freeze_survivors, heap_frozen


def test_collector_paused_restores() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_collector_paused_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_heap_frozen_unfreezes() -> None:
    before = gc.get_freeze_count()
    with heap_frozen():
        assert gc.get_freeze_count() >= before
        keep = [object() for _ in range(100)]
        freeze_survivors()
        assert gc.get_freeze_count() >= len(keep)
    assert gc.get_freeze_count() == 0
