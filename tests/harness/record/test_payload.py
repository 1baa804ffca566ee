"""The harness's chat payload: one writer, two readers that agree."""

from __future__ import annotations

import re

import pytest

from harness.record.payload import (
    PAYLOAD_BYTES_PATTERN,
    Payload,
    decode_payload,
    encode_payload,
    payload_head,
    split_payload,
)


def test_round_trip() -> None:
    text = encode_payload("b07", 41, 1700000000.123456, pad=5)
    assert text == "b=b07 n=41 t=1700000000.123456 xxxxx"
    assert decode_payload(text) == Payload("b07", 41, 1700000000.123456)
    assert split_payload(text) == decode_payload(text)
    assert text.startswith(payload_head("b07"))


@pytest.mark.parametrize("text", ["hello", "b=x", "b=x n=1", "b=x n=one t=1.0", "b=x n=1 t=soon", ""])
def test_not_a_payload(text: str) -> None:
    assert decode_payload(text) is None
    assert split_payload(text) is None


def test_bytes_pattern_reads_the_same_fields() -> None:
    text = encode_payload("p0-ab", 7, 12.5)
    m = re.match(PAYLOAD_BYTES_PATTERN, text.encode())
    assert m is not None
    assert (m.group(1).decode(), int(m.group(2)), float(m.group(3))) == ("p0-ab", 7, 12.5)
