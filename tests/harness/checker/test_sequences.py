"""Helpers over numbers: consecutive runs, the longest increasing run, and the global-numbering test."""

from __future__ import annotations

import pytest

from harness.checker.sequences import is_consecutive, lis_outliers, numbering_is_global


@pytest.mark.parametrize(
    ("seqs", "expected"),
    [([], True), ([5], True), ([1, 2, 3], True), ([1, 3], False), ([1, 2, 2], False), ([3, 2, 1], False)],
)
def test_is_consecutive(seqs: list[int], expected: bool) -> None:
    assert is_consecutive(seqs) is expected


@pytest.mark.parametrize(
    ("values", "outliers"),
    [
        ([], []),
        ([1, 2, 3], []),
        ([1, 3, 2, 4], [1]),  # a swap: one moved value (the later of the equal-length runs is kept)
        ([1, 2, 2, 3], [2]),  # a repeat: the second copy
        ([5, 1, 2, 3], [0]),
        ([3, 2, 1], [0, 1]),
    ],
)
def test_lis_outliers(values: list[int], outliers: list[int]) -> None:
    assert lis_outliers(values) == outliers


def test_numbering_is_global_by_the_most_common_difference() -> None:
    assert not numbering_is_global({})  # no shared message: no evidence
    assert numbering_is_global({(0, 1, 0): 10})
    assert numbering_is_global({(0, 1, 0): 10, (0, 1, 3): 1})  # one misnumbered line
    assert not numbering_is_global({(0, 1, 7): 10, (0, 1, 0): 1})  # offsets: per recipient
    assert numbering_is_global({(0, 1, 7): 5, (0, 1, 0): 5})  # a tie goes to 0
    assert not numbering_is_global({(0, 1, 0): 5, (0, 2, 4): 5})  # every pair must agree
