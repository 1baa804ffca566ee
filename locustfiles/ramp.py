"""A ramp: steady chat users from 0 to N, held, then the run stops.

``locust -f locustfiles/ramp.py --host chat://HOST:PORT`` (add ``--headless``
to run without the web UI). The load shape adds users evenly over
``--chat-ramp-seconds`` up to ``--chat-ramp-users``, holds them for
``--chat-ramp-hold`` seconds, then ends the run. With a shape, the web UI's
user count and spawn rate do not apply: that is why it lives in its own file.
"""

from __future__ import annotations

import math
from typing import Any

import chat_package  # noqa: F401  # isort: skip  # first: `chat` must be the project's package
from locust import LoadTestShape, events

from harness.locust.options import DEFAULTS, add_scenario_options, options_of
from harness.locust.user import SteadyChatUser


class RampUser(SteadyChatUser):
    """A steady chatter, spawned by the ramp."""


def ramp_target(t: float, users: int, seconds: float, hold: float) -> int | None:
    """Users wanted ``t`` seconds into the run: a straight ramp, a plateau, then None (stop)."""
    if t < seconds:
        return min(users, math.ceil(users * t / seconds))
    if t < seconds + hold:
        return users
    return None


class ChatRamp(LoadTestShape):
    """0 to ``--chat-ramp-users`` over ``--chat-ramp-seconds``, hold ``--chat-ramp-hold``, stop."""

    def tick(self) -> tuple[int, float] | None:
        parsed = self.runner.environment.parsed_options if self.runner is not None else None
        o = options_of(parsed) if parsed is not None else DEFAULTS
        target = ramp_target(self.get_run_time(), o.ramp_users, o.ramp_seconds, o.ramp_hold)
        if target is None:
            return None
        return target, max(1.0, o.ramp_users / o.ramp_seconds)


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    add_scenario_options(parser, "ramp_users", "ramp_seconds", "ramp_hold")
