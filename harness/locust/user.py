"""The abstract chat users: ``ChatUser`` and ``SteadyChatUser``. Not a locustfile (no concrete user).

A user is one *bot* in the checker's terms: its id ``<process token>-<n>`` is
carried in every message it sends, its message counter goes on across its
connections, and each connection (a :class:`~harness.locust.client.ChatClient`)
is one client history (``<bot>``, then ``<bot>.2``, ...). The locustfiles give
the concrete users and their tasks; :meth:`ChatUser.task_weights` lets them take
the weights from the ``--chat-*`` options (:mod:`harness.locust.options`), which
this module declares to locust.
"""

from __future__ import annotations

# locust first: importing it patches the standard library (sockets, threads) for gevent.
from locust import User, events, task  # isort: skip

import itertools
import logging
import random
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from harness.locust.check import RECORDER, listen
from harness.locust.client import ChatClient, ChatError, timed_request
from harness.locust.options import add_common_options, options_of, parse_host, problems
from harness.record.history import ClientHistory, HowClosed, Role

# The name locust prints in each of this module's log lines (docs/locust.md shows them).
log = logging.getLogger("chat_user")

#: Names are ``L<process token>-<user>[-<stint>]``: unique across processes and connections,
#: and at most 19 characters (the protocol allows 20).
NAME_PREFIX = "L"
#: Six hex digits per process, so that several workers (on several machines) never share a name.
PROCESS_TOKEN = secrets.token_hex(3)

_user_numbers = itertools.count(1)


class ChatUser(User):
    """Abstract: a chat user, with its identity, its current connection and its options."""

    abstract = True
    #: The checker's role for this user's histories.
    role = Role.CHAT

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.options = options_of(environment.parsed_options)
        self.bot = f"{PROCESS_TOKEN}-{next(_user_numbers)}"
        self.stint = 0
        self.n = 0
        self.client: ChatClient | None = None
        weights = self.task_weights()
        if weights is not None:
            self.tasks = [fn for fn, w in weights.items() for _ in range(max(0, w))]

    def task_weights(self) -> dict[Callable[..., Any], int] | None:
        """Weights of this user's tasks from the options; None keeps the class's ``@task`` weights."""
        return None

    def wait_time(self) -> float:
        return random.uniform(self.options.wait_min, self.options.wait_max)

    @property
    def is_member(self) -> bool:
        """The current connection is open and the server announced this user's JOIN on it."""
        return self.client is not None and self.client.is_member

    def own_name(self) -> str:
        """This user's name on its current connection: unique per process, user and stint."""
        suffix = f"-{self.stint}" if self.stint > 1 else ""
        return f"{NAME_PREFIX}{self.bot}{suffix}"

    def join(self, names: Sequence[str] = ()) -> bool:
        """Open a new connection and join (``names`` first, then the own name); a ``join`` request."""
        self.stint += 1
        try:
            address = parse_host(self.host)
        except ValueError as exc:
            with timed_request(self.environment, "join", {}):
                raise ChatError(str(exc)) from None
            return False
        client_id = self.bot if self.stint == 1 else f"{self.bot}.{self.stint}"
        history = ClientHistory(client_id, self.bot, self.role)
        on_open = RECORDER.add if self.options.check else None
        self.client = ChatClient(self.environment, address, history, self.options, on_open=on_open)
        return self.client.join([*names, self.own_name()])

    def ensure_member(self) -> bool:
        """Joined, or join now (a user whose connection ended joins again on its next task)."""
        if self.is_member:
            return True
        if self.client is not None and self.client.is_open:
            self.client.close(HowClosed.DROP, "not a member")
        return self.join()

    def say(self) -> None:
        """Send the next message (a ``message`` request)."""
        if self.ensure_member():
            assert self.client is not None
            n, self.n = self.n, self.n + 1
            self.client.say(n)

    def ask_who(self) -> None:
        if self.ensure_member():
            assert self.client is not None
            self.client.who()

    def leave(self, *, abruptly: bool = False) -> None:
        """Leave by ``/quit``, or by an abrupt close (a ``leave`` request)."""
        if self.client is not None and self.client.is_open:
            if abruptly:
                self.client.drop()
            else:
                self.client.quit()

    def rejoin(self) -> None:
        """Leave by ``/quit``, then join again on a new connection under a new name."""
        self.leave()
        self.join()

    def on_start(self) -> None:
        self.join()

    def on_stop(self) -> None:
        self.leave()


class SteadyChatUser(ChatUser):
    """Abstract: a person chatting: messages, ``/who`` now and then, and (if weighted) rejoins.

    The weights come from ``--chat-message-weight``, ``--chat-who-weight`` and
    ``--chat-rejoin-weight``; the ``@task`` weights below are their defaults.
    """

    abstract = True

    def task_weights(self) -> dict[Callable[..., Any], int] | None:
        o = self.options
        return {
            SteadyChatUser.message: o.message_weight,
            SteadyChatUser.who: o.who_weight,
            SteadyChatUser.rejoin_task: o.rejoin_weight,
        }

    @task(10)
    def message(self) -> None:
        self.say()

    @task(1)
    def who(self) -> None:
        self.ask_who()

    def rejoin_task(self) -> None:
        self.rejoin()


def _add_options(parser: Any) -> None:
    add_common_options(parser)


def _check_options(environment: Any, **_: Any) -> None:
    """Bad options or host: one clear line and exit code 2, before any user starts."""
    found = problems(options_of(environment.parsed_options), environment.host)
    if found:
        log.error("error: %s", found[0])
        raise SystemExit(2)


listen(events.init_command_line_parser, _add_options)
listen(events.init, _check_options)
