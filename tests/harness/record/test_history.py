"""What one client saw and did: the events, their dict form, and the names of roles and endings."""

from __future__ import annotations

import json

import pytest

from harness.record.history import (
    ClientHistory,
    Closed,
    HowClosed,
    Role,
    event_from_dict,
    event_to_dict,
    histories_from_dicts,
    histories_to_dicts,
    history_header,
)
from tests.harness.record.samples import sample_histories


def test_interleaved_events_load_per_client() -> None:
    items = list(histories_to_dicts(sample_histories()))
    headers = [d for d in items if d["k"] == "client"]
    events = [d for d in items if d["k"] != "client"]
    assert histories_from_dicts(headers + events[::-1])[1].events == sample_histories()[1].events


def test_event_before_its_header_is_refused() -> None:
    with pytest.raises(ValueError, match="before its header"):
        histories_from_dicts([{"c": "x", "k": "received", "t": 1.0, "line": "HELLO"}])


def test_roles_and_endings_are_enums_whose_values_are_the_recorded_strings() -> None:
    assert [r.value for r in Role] == ["chat", "churn", "racer", "slow", "burst"]
    assert [h.value for h in HowClosed] == ["quit", "drop", "eof", "error", "timeout", "stopped"]
    assert Role.SLOW == "slow" and f"{Role.SLOW}" == "slow" and str(HowClosed.QUIT) == "quit"
    assert Role.SLOW in frozenset({"slow"})  # a str mixin: equal to, and hashed as, its value


def test_the_record_holds_the_plain_strings() -> None:
    history = ClientHistory("b1.2", "b1", Role.CHURN, [Closed(3.0, HowClosed.DROP)])
    assert json.dumps(history_header(history)) == '{"c": "b1.2", "k": "client", "bot": "b1", "role": "churn"}'
    d = event_to_dict("b1.2", history.events[0])
    assert d == {"c": "b1.2", "k": "closed", "t": 3.0, "how": "drop"} and type(d["how"]) is str
    assert event_from_dict(d) == Closed(3.0, HowClosed.DROP)


def test_strings_are_read_as_the_enums_and_unknown_ones_are_refused() -> None:
    loaded = histories_from_dicts([{"c": "x", "k": "client", "bot": "x", "role": "racer"}])
    assert loaded[0].role is Role.RACER
    assert ClientHistory("x", "x", "slow").role is Role.SLOW  # type: ignore[arg-type]
    assert Closed(1.0, "timeout").how is HowClosed.TIMEOUT  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'sleepy' is not a valid Role"):
        histories_from_dicts([{"c": "x", "k": "client", "bot": "x", "role": "sleepy"}])
    with pytest.raises(ValueError, match="'vanished' is not a valid HowClosed"):
        event_from_dict({"c": "x", "k": "closed", "t": 1.0, "how": "vanished"})


def test_an_old_record_loads_with_the_same_values() -> None:
    items = list(histories_to_dicts(sample_histories()))
    again = list(histories_to_dicts(histories_from_dicts(items)))
    assert again == items
