"""The day cube's numbering of slot keys against a plain dict: keys not seen before get the next
numbers in key order, keys seen before keep theirs, across the small tier's merges; keys in any
order and repeated."""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
from hypothesis import given, settings

from citygrid.engine.analytics.cube import Numbering, distinct


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.lists(st.integers(0, 300), max_size=40), min_size=1, max_size=30),
       small=st.sampled_from([1, 2, 5, 1 << 16]))
def test_numbers_are_a_dicts(batches, small):
    numbering = Numbering(np.uint64)
    numbering.SMALL = small  # merged into the large tier often (the default: never in a test this size)
    expected: dict[int, int] = {}
    for batch in batches:
        keys = np.array(batch, dtype=np.uint64)
        seen = numbering.find(keys)
        assert seen.tolist() == [expected.get(k, -1) for k in batch]
        numbers, fresh = numbering.number(keys)
        new = sorted(set(batch) - set(expected))
        for k in new:  # in key order
            expected[k] = len(expected)
        assert numbers.tolist() == [expected[k] for k in batch]
        assert keys[fresh].tolist() == new
        assert numbering.count == len(expected)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(-(1 << 62), 1 << 62) | st.integers(-3, 3), max_size=50))
def test_distinct_is_np_unique(values):
    array = np.array(values, dtype=np.int64)
    assert distinct(array).tolist() == np.unique(array).tolist()
