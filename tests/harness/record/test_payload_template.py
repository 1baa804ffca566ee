"""The payload's template for writers in a hot loop: the same text as encode_payload, fixed width."""

from __future__ import annotations

from harness.record.payload import (
    COUNTER_DIGITS,
    Payload,
    decode_payload,
    due_text,
    encode_payload,
    payload_template,
    split_payload,
)


def test_template_writes_what_the_readers_read() -> None:
    text = (payload_template("p0", pad=3) % (41, due_text(1700000000.123456))).decode()
    assert text == "b=p0 n=0000000041 t=1700000000.123456 xxx"
    assert decode_payload(text) == Payload("p0", 41, 1700000000.123456)
    assert split_payload(text) == decode_payload(text)


def test_template_is_encode_payload_with_a_fixed_width_counter() -> None:
    n, due = 7, 12.5
    written = (payload_template("b3") % (n, due_text(due))).decode()
    assert written == encode_payload("b3", n, due).replace(f"n={n}", f"n={n:0{COUNTER_DIGITS}d}")


def test_every_message_of_a_writer_has_the_same_length() -> None:
    template = payload_template("p1", pad=10)
    lengths = {len(template % (n, due_text(1e9 + n / 7))) for n in (0, 9, 12345, 10**COUNTER_DIGITS - 1)}
    assert len(lengths) == 1


def test_a_percent_sign_in_the_bot_id_is_text() -> None:
    assert (payload_template("a%b") % (1, due_text(1.0))).startswith(b"b=a%b n=")
