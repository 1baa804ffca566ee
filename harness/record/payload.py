"""The text a harness client chats: ``b=<bot> n=<counter> t=<due time>`` then optional padding.

The one owner of that format: the bots, the locust users, the load generator and
the simulator write it here, and the checker, the bots and the load generator
read it here. The bot id and counter make loss and per-sender order judgeable
without trusting the server's numbering; the due time (when the open-loop
schedule said the message was to be sent) makes latency honest under coordinated
omission (docs/swarm.md).
"""

from __future__ import annotations

import re
from typing import NamedTuple

#: The payload at the start of a chat text; anything after a space is padding.
_PAYLOAD_RE = re.compile(r"^b=(\S+) n=(\d+) t=(\d+\.\d+)(?: .*)?$")

#: The same fields as a bytes pattern, for scanners that read raw received data
#: (groups: bot, counter, due time). Compose it after a MSG line's head
#: (:func:`chat.protocol.broadcast_scanner`).
PAYLOAD_BYTES_PATTERN = rb"b=(\S+) n=(\d+) t=(\d+\.\d+)"

#: Decimal places of the due time: microseconds.
DUE_DECIMALS = 6


class Payload(NamedTuple):
    bot: str
    n: int
    due: float


def encode_payload(bot: str, n: int, due: float, pad: int = 0) -> str:
    """The text of message ``n`` of ``bot``, due at ``due`` (seconds), with ``pad`` bytes of padding."""
    text = f"b={bot} n={n} t={due:.{DUE_DECIMALS}f}"
    if pad > 0:
        text += " " + "x" * pad
    return text


def payload_head(bot: str) -> str:
    """What every payload of ``bot`` starts with, for writers that format the rest themselves."""
    return f"b={bot} n="


#: Digits of the counter in :func:`payload_template`: zero-padded to a fixed width, so that every
#: message of a writer has the same length (the load generator's messages are exactly 64 bytes).
COUNTER_DIGITS = 10


def payload_template(bot: str, pad: int = 0) -> bytes:
    """The payload of ``bot`` as a bytes %-template, for writers that format millions of messages.

    ``template % (n, due_text(due))`` is :func:`encode_payload`'s text with the
    counter zero-padded to :data:`COUNTER_DIGITS` digits, which every reader accepts.
    """
    head = payload_head(bot).replace("%", "%%")
    template = f"{head}%0{COUNTER_DIGITS}d t=%s".encode()
    return template + (b" " + b"x" * pad if pad > 0 else b"")


def due_text(due: float) -> bytes:
    """A due time as the payload writes it (the ``t=`` field of :func:`payload_template`)."""
    return b"%.*f" % (DUE_DECIMALS, due)


def decode_payload(text: str) -> Payload | None:
    """The fields of a payload; None when ``text`` is not one (a person's chat, another client's)."""
    m = _PAYLOAD_RE.match(text)
    if m is None:
        return None
    return Payload(m.group(1), int(m.group(2)), float(m.group(3)))


#: Builds a :class:`Payload` from a tuple without the Python-level ``__new__`` of a
#: NamedTuple: half the cost, for receivers that read one in every few lines.
_new_payload = tuple.__new__


def split_payload(text: str) -> Payload | None:
    """:func:`decode_payload` without a regex, for receivers that sample many lines per second.

    Accepts everything :func:`decode_payload` accepts, and is looser about the
    numbers (``int`` and ``float`` read them: no insisting on the due time's
    decimal point, and ``+1`` is 1): a receiver's live figures, not a judge's.
    """
    fields = text.split(" ", 3)
    if len(fields) < 3:
        return None
    bot, n, due = fields[0], fields[1], fields[2]
    if bot[:2] != "b=" or n[:2] != "n=" or due[:2] != "t=":
        return None
    try:
        return _new_payload(Payload, (bot[2:], int(n[2:]), float(due[2:])))
    except ValueError:
        return None
