"""Steady chat users: ``locust -f locustfiles/chat.py --host chat://HOST:PORT``.

Only plain users live here, so that a run with no user class named gets steady
chat traffic and the web UI's user count and spawn rate apply. Each user joins
with a unique name, chats at a human pace, asks ``/who`` now and then, and
leaves with ``/quit`` when stopped. Message times are measured from the send to
the message's echo back to its sender.
"""

from __future__ import annotations

from chat_user import ChatUser
from locust import between, task


class ChatterUser(ChatUser):
    """A person chatting: a message every one to three seconds."""

    wait_time = between(1.0, 3.0)

    @task(10)
    def say(self) -> None:
        self.client.say()

    @task(1)
    def who(self) -> None:
        self.client.who()
