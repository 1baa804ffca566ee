"""Steady chat users: ``locust -f locustfiles/chat.py --host chat://HOST:PORT``.

Only plain users live here, so that a run with no user class named gets steady
chat traffic and the web UI's user count and spawn rate apply (ramps, churn
and name races are in ramp.py, churn.py and name_race.py, chosen by naming the
file). Each user joins under a unique name, sends a message every one to three
seconds (``--chat-wait-min``/``--chat-wait-max``), asks ``/who`` now and then,
and leaves with ``/quit`` when stopped; the task weights are
``--chat-message-weight``, ``--chat-who-weight`` and ``--chat-rejoin-weight``.
When the run stops, the harness checker judges every user's history
(harness.locust.check) and a violation makes locust exit 1.
"""

from __future__ import annotations

import chat_package  # noqa: F401  # isort: skip  # first: `chat` must be the project's package

from harness.locust.user import SteadyChatUser


class ChatterUser(SteadyChatUser):
    """A person chatting: messages, ``/who`` now and then, ``/quit`` at the end."""
