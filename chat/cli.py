"""Command-line pieces shared by every entry point of the project.

A user's mistake on the command line must give one clear line and exit status
2, whatever the tool: :class:`OneLineParser` replaces argparse's usage block
with one line, and the ``type=`` converters below say what was wrong with the
value in the same words everywhere (``--clients: must be at least 1: -3``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn

#: The exit status of a usage error (argparse's own).
EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _number(text: str, kind: type[int] | type[float], what: str) -> float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None


def positive_int(text: str) -> int:
    """An integer of at least 1 (counts of things that must exist: bots, reps)."""
    value = int(_number(text, int, "an integer"))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def non_negative_int(text: str) -> int:
    """An integer of at least 0 (counts where none is a choice: padding, runs to skip)."""
    value = int(_number(text, int, "an integer"))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text}")
    return value


def seconds(text: str) -> float:
    """A finite number of seconds, more than 0."""
    value = _number(text, float, "a number of seconds")
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be more than 0: {text}")
    return value


def seconds_at_most(limit: float) -> Callable[[str], float]:
    """:func:`seconds`, bounded above (a run that must stay short)."""

    def convert(text: str) -> float:
        value = _number(text, float, "a number of seconds")
        if not 0 < value <= limit:
            raise argparse.ArgumentTypeError(f"must be more than 0 and at most {limit:g}: {text}")
        return value

    return convert


def positive_float(text: str) -> float:
    """A finite number, more than 0."""
    value = _number(text, float, "a number")
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be more than 0: {text}")
    return value


def rate(text: str) -> float:
    """A finite rate, 0 or more (0: that behaviour is off)."""
    value = _number(text, float, "a rate")
    if not value >= 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text}")
    return value


def port(lowest: int) -> Callable[[str], int]:
    """A TCP port number from ``lowest`` (0 for a server: pick a free one) to 65535."""

    def convert(text: str) -> int:
        value = int(_number(text, int, "a port number"))
        if not lowest <= value <= 65535:
            raise argparse.ArgumentTypeError(f"port must be {lowest}-65535: {text}")
        return value

    return convert
