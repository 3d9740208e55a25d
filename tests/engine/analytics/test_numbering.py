"""The day cube's numbering of slot keys against a plain dict: keys not seen before get the next
numbers in key order, keys seen before keep theirs, across the small tier's merges."""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
from hypothesis import given, settings

from citygrid.engine.analytics.cube import Numbering


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.lists(st.integers(0, 300), max_size=40), min_size=1, max_size=30),
       small=st.sampled_from([1, 2, 5, 1 << 16]))
def test_numbers_are_a_dicts(batches, small):
    numbering = Numbering(np.uint64)
    numbering.SMALL = small  # merged into the large tier often (the default: never in a test this size)
    expected: dict[int, int] = {}
    for keys in batches:
        unique = np.unique(np.array(keys, dtype=np.uint64))
        numbers, fresh = numbering.number(unique)
        new = [k for k in unique.tolist() if k not in expected]
        for k in new:  # in key order
            expected[k] = len(expected)
        assert numbers.tolist() == [expected[k] for k in unique.tolist()]
        assert unique[fresh].tolist() == new
        assert numbering.count == len(expected)
