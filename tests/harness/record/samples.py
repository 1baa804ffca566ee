"""A small recorded run (two clients) for the record's tests."""

from __future__ import annotations

from harness.record.history import ClientHistory, Closed, Connected, Received, Sent


def sample_histories() -> list[ClientHistory]:
    a = ClientHistory("b0", "b0", "chat")
    a.events += [
        Connected(100.0, 99.5),
        Received(100.1, "HELLO welcome"),
        Sent(100.2, "b0"),
        Received(100.3, "OK b0"),
        Received(100.3, "JOIN 1 b0"),
        Sent(100.4, "b=b0 n=0 t=100.400000", 100.4),
        Received(100.5, "MSG 2 b0 b=b0 n=0 t=100.400000"),
        Received(100.6, 'MSG 3 x quotes " and \\ and ünïcödé \ufffd'),
        Sent(100.7, "/quit"),
        Received(100.8, "BYE goodbye"),
        Closed(100.9, "quit"),
    ]
    b = ClientHistory("b1.2", "b1", "churn")
    b.events += [Closed(101.0, "error", "connect: Connection refused")]
    return [a, b]
