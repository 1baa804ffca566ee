"""Pure helpers over sequences of numbers that parsing and the order checks share.

A broken stream is described by what is *not* in its longest increasing run
(:func:`lis_outliers`): the fewest events that must move to make it right.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence


def is_consecutive(seqs: Sequence[int]) -> bool:
    """Each number is one more than the one before (an empty sequence is)."""
    return not seqs or (seqs[-1] - seqs[0] == len(seqs) - 1 and seqs == list(range(seqs[0], seqs[-1] + 1)))


def lis_outliers(values: Sequence[float]) -> list[int]:
    """Positions not in a longest strictly increasing subsequence of ``values`` (O(n log n))."""
    n = len(values)
    tails: list[float] = []
    tails_pos: list[int] = []
    parent = [-1] * n
    for i, r in enumerate(values):
        k = bisect.bisect_left(tails, r)
        if k < len(tails) and tails[k] == r:
            continue  # an equal value: keep the earlier one (a repeat is the outlier)
        if k == len(tails):
            tails.append(r)
            tails_pos.append(i)
        else:
            tails[k] = r
            tails_pos[k] = i
        parent[i] = tails_pos[k - 1] if k > 0 else -1
    keep = set()
    i = tails_pos[-1] if tails_pos else -1
    while i >= 0:
        keep.add(i)
        i = parent[i]
    return [i for i in range(n) if i not in keep]


def numbering_is_global(pair_diffs: dict[tuple[int, int, int], int]) -> bool:
    """Whether seqs come from one global counter, from how two members numbered shared messages.

    ``pair_diffs`` maps (one member, another member, the difference of their seqs
    for a message both got) to how often that difference was seen. Any numbering
    that counts every broadcast gives two members a constant difference on the
    messages they share: 0 for a global counter, the difference of their offsets
    for per-recipient counters. So the numbering is global when, for every pair
    of members, the most common difference is 0 (a broken global server
    misnumbers now and then; it does not shift the mode). With no shared message
    there is no evidence either way: not global.
    """
    mode: dict[tuple[int, int], tuple[int, int]] = {}  # pair -> (times seen, difference)
    for (a, b, diff), seen in pair_diffs.items():
        top = mode.get((a, b))
        if top is not None:
            top_seen, _ = top
            if seen < top_seen or (seen == top_seen and diff != 0):
                continue  # a tie goes to 0
        mode[(a, b)] = (seen, diff)
    return bool(mode) and all(diff == 0 for _, diff in mode.values())
