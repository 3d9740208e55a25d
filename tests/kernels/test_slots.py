"""The day cube's slot kernels against plain Python: slot keys (area chains numbered through each
grid's last chain, odd ones too; ids past their bits), and the most events a slot would hold."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import hypothesis.strategies as st
import numpy as np
from hypothesis import example, given, settings

from citygrid.engine.analytics.cube import DayCube
from citygrid.kernels import slots as slot_kernels
from citygrid.kernels.tally import US_PER_DAY

OFFSET_US = 8 * 3_600_000_000
# An event: grid, its chain's variant (0: the grid's usual chain), category, worker, report time.
EVENT = st.tuples(st.integers(-1, 6), st.integers(0, 2), st.integers(-1, 30), st.integers(-1, 30),
                  st.integers(-3 * US_PER_DAY, 3 * US_PER_DAY))


def _columns(events, wide):
    """The mirror's columns of ``events``: codes rows 0 (category), 4 (worker), 5-8 (area chain)."""
    codes = np.full((9, len(events)), -1, dtype=np.int32)
    for i, (grid, variant, category, worker, _) in enumerate(events):
        codes[0, i], codes[4, i] = category, worker
        codes[5:9, i] = grid, grid // 2 + variant, variant, 0
    codes[0, : len(wide)] = wide  # ids at and past the edge of their bits
    occurred = np.array([t for *_, t in events], dtype=np.int64)
    return SimpleNamespace(codes=codes, occurred=occurred)


def _expected_keys(mirror, before):
    """Keys by a plain loop (None: an id outgrew its bits); chains numbered ``before``, then new ones
    in key order."""
    codes, n = mirror.codes.astype(np.int64) + 1, mirror.codes.shape[1]
    chains = [int(codes[5, i]) << 36 | int(codes[6, i]) << 24 | int(codes[7, i]) << 12 | int(codes[8, i])
              for i in range(n)]
    place = {c: k for k, c in enumerate(before)}
    for c in sorted(set(chains) - set(place)):
        place[c] = len(place)
    keys = []
    for i in range(n):
        day = (int(mirror.occurred[i]) + OFFSET_US) // US_PER_DAY + (1 << 15)
        if codes[0, i] >= 1 << 12 or codes[4, i] >= 1 << 18 or not 0 <= day < 1 << 16:
            return None
        keys.append(day << 48 | int(codes[0, i]) << 36 | int(codes[4, i]) << 18 | place[chains[i]])
    return keys


@settings(max_examples=200, deadline=None)
@given(events=st.lists(EVENT, min_size=1, max_size=40), before=st.lists(st.integers(0, 6), max_size=4, unique=True),
       wide=st.lists(st.sampled_from([4094, 4095]), max_size=1))
@example(events=[(1, 0, 0, 0, 0), (1, 1, 0, 0, 0), (1, 0, 0, 0, 0)], before=[], wide=[])  # a grid's odd chain
@example(events=[(1, 0, 0, 0, 0)], before=[], wide=[4095])  # category id + 1 = 4096: past its 12 bits
def test_slot_keys_match_a_plain_loop(events, before, wide):
    mirror = _columns(events, wide)
    cube = DayCube(OFFSET_US)
    known = sorted({(g + 1) << 36 | (g // 2 + 1) << 24 | 1 << 12 | 1 for g in before})  # numbered earlier
    cube._place_of_chain.number(np.array(known, dtype=np.int64))
    keys = cube._keys(np.arange(len(events)), mirror)
    expected = _expected_keys(mirror, known)
    assert (keys if keys is None else keys.tolist()) == expected


@settings(max_examples=200, deadline=None)
@given(slots=st.lists(st.integers(0, 40), max_size=60), spread=st.sampled_from([1, 10_000]),
       held=st.lists(st.integers(0, 127), min_size=41, max_size=41))
def test_most_reported_is_a_counters(slots, spread, held):
    """Dense slots (a table over their span) and spread ones (sorted)."""
    slots = np.array(slots, dtype=np.int64) * spread
    counts = np.zeros((40 * spread + 1, 3), dtype=np.int8)
    counts[np.arange(41) * spread, 0] = held
    expected = max((int(counts[s, 0]) + k for s, k in Counter(slots.tolist()).items()), default=0)
    assert slot_kernels.most_reported(slots, counts, 0) == expected
