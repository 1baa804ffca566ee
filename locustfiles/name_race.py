"""A name race: users that all want the same few names, at the same moments.

``locust -f locustfiles/name_race.py --host chat://HOST:PORT``. Each racer
connects and offers one of ``--chat-race-names`` contested names (``race0``,
``race1``, ... in varying case). The server must give each name to one user
at a time: the others get ``ERR name-taken``, which here is the expected
answer, not a failure; they then join under their own name on the same
connection. A holder sends ``--chat-race-messages`` messages and leaves with
``/quit``, and the race starts again. The checker is told the contested names
and holds that no two users ever held one at once, and that a name was only
refused while someone held it.
"""

from __future__ import annotations

import random
from typing import Any

import chat_package  # noqa: F401  # isort: skip  # first: `chat` must be the project's package
from locust import events, task

from harness.locust.check import RECORDER
from harness.locust.options import add_scenario_options
from harness.locust.user import ChatUser
from harness.record.history import Role


def contested_name(index: int, rng: random.Random) -> str:
    """``race<index>`` with each letter's case drawn at random: names clash case-insensitively."""
    return "".join(c.upper() if rng.random() < 0.5 else c for c in f"race{index}")


class RacerUser(ChatUser):
    """Race for a contested name (own name if refused), chat a little, quit; again."""

    role = Role.RACER

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.sent_this_stint = 0
        for i in range(self.options.race_names):
            RECORDER.contested.add(f"race{i}")

    def on_start(self) -> None:
        self.race()

    def race(self) -> None:
        self.sent_this_stint = 0
        self.join([contested_name(random.randrange(self.options.race_names), random.Random())])

    @task
    def step(self) -> None:
        """One step: race if out, else a message, else leave."""
        if not self.is_member:
            self.race()
        elif self.sent_this_stint < self.options.race_messages:
            self.sent_this_stint += 1
            self.say()
        else:
            self.leave()


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    add_scenario_options(parser, "race_names", "race_messages")
