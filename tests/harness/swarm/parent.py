"""A stand-in for the run's parent, for tests that run a hive in this process."""

from __future__ import annotations

import queue
import threading
import time

from harness.swarm.hives import Arrived, Command, HiveMessage, Release


class Parent:
    """Records what a hive reports; releases each phase once the hive arrives there (unless told not to)."""

    def __init__(self, *, release: bool = True) -> None:
        self.commands: queue.Queue[Command] = queue.Queue()
        self.reports: list[HiveMessage] = []
        self.release = release
        self.changed = threading.Condition()

    def put(self, item: HiveMessage) -> None:
        with self.changed:
            self.reports.append(item)
            self.changed.notify_all()
        if isinstance(item, Arrived) and self.release:
            self.commands.put(Release(item.phase, time.time()))

    def wait_for(self, what: type, timeout: float = 10.0) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: any(isinstance(r, what) for r in self.reports), timeout)
