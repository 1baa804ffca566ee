"""Churn: users that join, say a little and leave, again and again, beside steady chatters.

``locust -f locustfiles/churn.py --host chat://HOST:PORT``. Half the users
(by weight) churn: each stint is a new connection under a new name, a few
messages (``--chat-churn-messages``), then a leave, by ``/quit`` or, for a
share of the stints (``--chat-churn-drop``), by closing the connection
without a word; the next task joins again. The other half chat steadily and
watch: every leave must be announced to them, and nothing a churner sent
while they were members may be lost. Both kinds wait
``--chat-wait-min``..``--chat-wait-max`` between tasks.
"""

from __future__ import annotations

import random
from typing import Any

import chat_package  # noqa: F401  # isort: skip  # first: `chat` must be the project's package
from locust import events, task

from harness.locust.options import add_scenario_options
from harness.locust.user import ChatUser, SteadyChatUser
from harness.record.history import Role


class ChurnUser(ChatUser):
    """Join, a few messages, leave (quit or abrupt close); again."""

    role = Role.CHURN

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.sent_this_stint = 0

    @task
    def step(self) -> None:
        """One step of a stint: join if out, else a message, else leave."""
        if not self.is_member:
            self.sent_this_stint = 0
            self.ensure_member()
        elif self.sent_this_stint < self.options.churn_messages:
            self.sent_this_stint += 1
            self.say()
        else:
            self.leave(abruptly=random.random() < self.options.churn_drop)


class WatcherUser(SteadyChatUser):
    """A steady chatter that stays: the churners' leaves must all reach it."""


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    add_scenario_options(parser, "churn_messages", "churn_drop")
