"""The chat users' command-line options, declared once and read as one frozen :class:`ChatOptions`.

No locust here: this module is usable (and tested) without locust's gevent patching.

Locust shows custom options in its web UI too (editable before each start),
and a master hands them to its workers. Options shared by every chat
locustfile are declared here; a scenario's own options are declared in its
file (:func:`add_scenario_options`), so that the plain run's web UI shows only
what applies to it. :func:`options_of` reads whichever are present and falls
back to the defaults; :func:`problems` says, one line each, what is wrong
with a combination (bad input must give one clear line, not a traceback).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from harness.common.address import CHAT_SCHEME, Endpoint, parse_endpoint

#: The target when ``--host`` is not given.
DEFAULT_HOST = "chat://localhost:9999"
DEFAULT_PORT = 9999


@dataclass(frozen=True)
class ChatOptions:
    """Everything a chat user and the end-of-run check read from the command line.

    Each field ``x`` is the option ``--chat-x`` (``_`` written as ``-``),
    except :attr:`check`, which is ``--chat-no-check`` inverted.
    """

    #: Seconds a user waits between two tasks: uniform in [wait_min, wait_max].
    wait_min: float = 1.0
    wait_max: float = 3.0
    #: Relative weights of the steady users' tasks: send a message, ask /who,
    #: leave and join again on a new connection.
    message_weight: int = 10
    who_weight: int = 1
    rejoin_weight: int = 0
    #: Seconds for HELLO, and for the answer to the name (a join's steps); the
    #: checker's liveness bound for handshakes too.
    handshake_bound: float = 5.0
    #: Seconds for a message's echo and a /who answer; the checker's delivery bound.
    delivery_bound: float = 5.0
    #: Record every line and judge the run with harness.checker when it stops.
    check: bool = True
    #: Other clients (people, another locust) may use the server during the run:
    #: judge only what this process's users can prove. Always so on a worker.
    shared_server: bool = False
    #: Violations logged with their witnesses (the count is always exact).
    witnesses: int = 20
    # -- scenarios (declared in their files) --
    #: churn.py: messages per stint, and the share of stints that end by an abrupt close.
    churn_messages: int = 3
    churn_drop: float = 0.3
    #: name_race.py: how many names the racers contest, and how many messages a holder sends.
    race_names: int = 2
    race_messages: int = 2
    #: ramp.py: ramp to this many users over this many seconds, hold, then stop.
    ramp_users: int = 20
    ramp_seconds: float = 20.0
    ramp_hold: float = 10.0


DEFAULTS = ChatOptions()


def _flag(field: str) -> str:
    return "--chat-" + field.replace("_", "-")


def add_common_options(parser: Any) -> None:
    """Declare the options every chat locustfile has (listener of ``init_command_line_parser``)."""
    d = DEFAULTS
    parser.add_argument(
        "--chat-wait-min", type=float, default=d.wait_min, help="seconds between a user's tasks, at least"
    )
    parser.add_argument(
        "--chat-wait-max", type=float, default=d.wait_max, help="seconds between a user's tasks, at most"
    )
    parser.add_argument(
        "--chat-message-weight", type=int, default=d.message_weight, help="weight of the task: send a message"
    )
    parser.add_argument(
        "--chat-who-weight", type=int, default=d.who_weight, help="weight of the task: ask /who"
    )
    parser.add_argument(
        "--chat-rejoin-weight",
        type=int,
        default=d.rejoin_weight,
        help="weight of the task: leave, then join again on a new connection",
    )
    parser.add_argument(
        "--chat-handshake-bound",
        type=float,
        default=d.handshake_bound,
        help="seconds for HELLO and for the answer to a name (request timeout and checker bound)",
    )
    parser.add_argument(
        "--chat-delivery-bound",
        type=float,
        default=d.delivery_bound,
        help="seconds for a message's echo and a /who answer (request timeout and checker bound)",
    )
    parser.add_argument(
        "--chat-no-check",
        action="store_true",
        default=False,
        help="do not record histories nor judge the run when it stops (long soak runs)",
    )
    parser.add_argument(
        "--chat-shared-server",
        action="store_true",
        default=False,
        help="other clients use the server too: judge only what these users can prove",
    )
    parser.add_argument(
        "--chat-witnesses",
        type=int,
        default=d.witnesses,
        help="violations logged with their witnesses when the run stops",
    )


def add_scenario_options(parser: Any, *names: str) -> None:
    """Declare scenario options by field name (``churn_messages``, ...), with their defaults."""
    helps = {
        "churn_messages": "messages a churning user sends per stint",
        "churn_drop": "share of stints that end by an abrupt close instead of /quit (0 to 1)",
        "race_names": "how many names the racers contest (race0, race1, ...)",
        "race_messages": "messages a racer sends while it holds a name",
        "ramp_users": "users at the top of the ramp",
        "ramp_seconds": "seconds to ramp from 0 to the top",
        "ramp_hold": "seconds to hold the top before the run stops",
    }
    for name in names:
        default = getattr(DEFAULTS, name)
        parser.add_argument(_flag(name), type=type(default), default=default, help=helps[name])


def options_of(parsed: Any) -> ChatOptions:
    """The options of a parsed command line (``environment.parsed_options``; None gives the defaults)."""
    values: dict[str, Any] = {}
    for f in fields(ChatOptions):
        if f.name == "check":
            values["check"] = not bool(getattr(parsed, "chat_no_check", False))
            continue
        value = getattr(parsed, "chat_" + f.name, None)
        if value is not None:
            values[f.name] = type(getattr(DEFAULTS, f.name))(value)
    return ChatOptions(**values)


def parse_host(host: str | None) -> Endpoint:
    """``chat://HOST:PORT`` or ``HOST:PORT`` (the port defaults to 9999; None: the default host).

    Raises :class:`ValueError` with the one line a user sees.
    """
    try:
        return parse_endpoint(host or DEFAULT_HOST, schemes=(CHAT_SCHEME,), default_port=DEFAULT_PORT)
    except ValueError:
        raise ValueError(f"--host must look like chat://HOST:PORT, got {host!r}") from None


def problems(opts: ChatOptions, host: str | None = None) -> list[str]:
    """What is wrong with these options, one line each (empty: nothing)."""
    out: list[str] = []
    if host is not None:
        try:
            parse_host(host)
        except ValueError as exc:
            out.append(str(exc))
    if not 0 <= opts.wait_min <= opts.wait_max:
        out.append(
            f"--chat-wait-min and --chat-wait-max need 0 <= min <= max, "
            f"got {opts.wait_min} and {opts.wait_max}"
        )
    weights = (opts.message_weight, opts.who_weight, opts.rejoin_weight)
    if min(weights) < 0 or sum(weights) == 0:
        out.append(
            "task weights (--chat-message-weight, --chat-who-weight, --chat-rejoin-weight) "
            "must be >= 0, not all 0"
        )
    for name in ("handshake_bound", "delivery_bound", "ramp_seconds"):
        if not getattr(opts, name) > 0:
            out.append(f"{_flag(name)} must be > 0, got {getattr(opts, name)}")
    for name in ("witnesses", "churn_messages", "race_messages", "ramp_users", "ramp_hold"):
        if getattr(opts, name) < 0:
            out.append(f"{_flag(name)} must be >= 0, got {getattr(opts, name)}")
    if not 1 <= opts.race_names <= 100:
        out.append(f"--chat-race-names must be 1 to 100, got {opts.race_names}")
    if not 0.0 <= opts.churn_drop <= 1.0:
        out.append(f"--chat-churn-drop must be between 0 and 1, got {opts.churn_drop}")
    return out
