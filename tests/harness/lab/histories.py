"""Hand-made recorded histories for the notebooks' kit's pure tests."""

from __future__ import annotations

from harness.record.history import ClientHistory, Closed, Connected, Received, Sent
from harness.record.payload import encode_payload

T0 = 1_000.0


def member(client: str, *events: object, role: str = "chat") -> ClientHistory:
    return ClientHistory(client, client.split(".")[0], role, list(events))  # type: ignore[arg-type]


def two_members_and_a_refusal() -> list[ClientHistory]:
    m0 = encode_payload("a", 0, T0 + 1.0)
    m1 = encode_payload("b", 0, T0 + 1.5)
    a = member(
        "a",
        Connected(T0, T0),
        Received(T0 + 0.1, "HELLO welcome"),
        Sent(T0 + 0.1, "a"),
        Received(T0 + 0.2, "OK a"),
        Received(T0 + 0.2, "JOIN 1 a"),
        Received(T0 + 0.3, "JOIN 2 b"),
        Sent(T0 + 1.0, m0, T0 + 1.0),
        Received(T0 + 1.002, f"MSG 3 a {m0}"),
        Received(T0 + 1.504, f"MSG 4 b {m1}"),
        Received(T0 + 1.6, "MSG 5 b not a payload"),
        Sent(T0 + 2.0, "/quit"),
        Received(T0 + 2.0, "BYE goodbye"),
        Closed(T0 + 2.0, "quit"),
    )
    b = member(
        "b",
        Connected(T0 + 0.25, T0 + 0.25),
        Received(T0 + 0.26, "HELLO welcome"),
        Sent(T0 + 0.26, "b"),
        Received(T0 + 0.3, "OK b"),
        Received(T0 + 0.3, "JOIN 2 b"),
        Received(T0 + 1.001, f"MSG 3 a {m0}"),
        Sent(T0 + 1.5, m1, T0 + 1.5),
        Received(T0 + 1.503, f"MSG 4 b {m1}"),
        Closed(T0 + 2.5, "drop"),
    )
    refused = member("c.2", Connected(T0 + 0.5, T0 + 0.5), Received(T0 + 0.5, "ERR full"), role="churn")
    return [a, b, refused]
