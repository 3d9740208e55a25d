"""The day cube's numbering of slot keys against a plain dict: keys not seen before get the next
numbers in key order, keys seen before keep theirs, across the small tier's merges."""

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
    for keys in batches:
        unique = np.unique(np.array(keys, dtype=np.uint64))
        numbers, fresh = numbering.number(unique)
        new = [k for k in unique.tolist() if k not in expected]
        for k in new:  # in key order
            expected[k] = len(expected)
        assert numbers.tolist() == [expected[k] for k in unique.tolist()]
        assert unique[fresh].tolist() == new
        assert numbering.count == len(expected)


@settings(max_examples=60, deadline=None)
@given(events=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3)), min_size=1, max_size=60),
       before=st.lists(st.integers(0, 40), max_size=5))
def test_place_ids_of_chains_where_a_grid_has_more_than_one_chain(events, before):
    """A day cube's place ids of packed area chains, found through each grid's usual chain, are a
    numbering of the distinct chains (new ones next, in key order), also for the events of a grid
    whose chain is not its usual one."""
    from citygrid.engine.analytics.cube import DayCube

    cube = DayCube(0)
    known = np.unique(np.array(before, dtype=np.int64)) * 1000 + 999  # chains numbered by an earlier batch
    cube._place_of_chain.number(known)
    grid = np.array([g for g, _ in events], dtype=np.int64)
    packed = grid * 1000 + np.array([c for _, c in events], dtype=np.int64)
    expected = {int(k): n for n, k in enumerate(known.tolist())}
    for k in sorted(set(packed.tolist()) - set(expected)):
        expected[k] = len(expected)
    assert cube._places(packed, grid).tolist() == [expected[k] for k in packed.tolist()]


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(-(1 << 62), 1 << 62) | st.integers(-3, 3), max_size=50))
def test_distinct_is_np_unique(values):
    array = np.array(values, dtype=np.int64)
    assert distinct(array).tolist() == np.unique(array).tolist()
