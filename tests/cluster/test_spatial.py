"""Spatial split of a job's points: Z-order keys, equal-weight key ranges, task counts."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from citygrid.cluster.spatial import (
    INVALID_KEY,
    N_KEYS,
    KeyFrame,
    balanced_boundaries,
    choose_task_count,
    key_histogram,
    task_of_keys,
)


def test_keys_follow_the_z_order_and_keep_neighbours_close(rng):
    frame = KeyFrame(114.0, 22.5, 114.4, 22.9)
    lng, lat = rng.uniform(114.0, 114.4, 100_000), rng.uniform(22.5, 22.9, 100_000)
    keys = frame.keys(lng, lat)
    assert keys.dtype == np.uint16
    cx = ((lng - 114.0) / 0.4 * 256).astype(int)
    cy = ((lat - 22.5) / 0.4 * 256).astype(int)
    # De-interleave: even bits are x, odd bits y.
    bits = np.arange(8)
    assert np.array_equal(sum(((keys >> (2 * bits[i])) & 1).astype(int) << i for i in range(8)), cx)
    assert np.array_equal(sum(((keys >> (2 * bits[i] + 1)) & 1).astype(int) << i for i in range(8)), cy)
    # Points outside the frame take the nearest edge cell; non-finite ones the invalid key.
    edge = frame.keys(np.array([100.0, 120.0, np.nan, 114.1]), np.array([22.6, 30.0, 22.6, -np.inf]))
    assert edge[0] == frame.keys(np.array([114.0]), np.array([22.6]))[0]
    assert edge[1] == N_KEYS - 1 and edge[2] == INVALID_KEY and edge[3] == INVALID_KEY


def test_clustered_points_are_split_into_equal_tasks(rng):
    """Half the points in one dense cluster: the tasks still hold about the same number each."""
    frame = KeyFrame(0.0, 0.0, 1.0, 1.0)
    lng = np.concatenate([rng.uniform(0, 1, 200_000), rng.normal(0.3, 0.01, 200_000)])
    lat = np.concatenate([rng.uniform(0, 1, 200_000), rng.normal(0.7, 0.01, 200_000)])
    keys = frame.keys(lng, lat)
    histogram = key_histogram(keys)
    for n_tasks in (1, 2, 6, 16):
        boundaries = balanced_boundaries(histogram, n_tasks)
        sizes = np.bincount(task_of_keys(keys, boundaries), minlength=n_tasks)
        mean = len(keys) / n_tasks
        assert sizes.sum() == len(keys)
        # Cuts fall between keys: a task is off its share by at most the fullest key's weight...
        assert np.abs(sizes - mean).max() <= histogram.max(), (n_tasks, sizes)
        # ...which is small next to tasks of a realistic size.
        if n_tasks <= 6:
            assert sizes.max() < 1.05 * mean, (n_tasks, sizes)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, N_KEYS - 1), min_size=0, max_size=300), st.integers(1, 20))
def test_boundaries_cover_the_key_line_in_order(keys, n_tasks):
    boundaries = balanced_boundaries(key_histogram(np.array(keys, dtype=np.uint16)), n_tasks)
    assert len(boundaries) == n_tasks + 1
    assert boundaries[0] == 0 and boundaries[-1] == N_KEYS
    assert np.all(np.diff(boundaries) >= 0)
    if keys:
        tasks = task_of_keys(np.array(keys, dtype=np.uint16), boundaries)
        assert tasks.min() >= 0 and tasks.max() < n_tasks


def test_task_count_makes_whole_waves_of_big_tasks():
    assert choose_task_count(20_000_000, 4_000_000, 2) == 6  # 5 tasks -> 3 waves of 2
    assert choose_task_count(20_000_000, 4_000_000, 1) == 5
    assert choose_task_count(1_000_000, 4_000_000, 2) == 1  # two tasks of 0.5M would be too small
    assert choose_task_count(0, 4_000_000, 8) == 1
    assert choose_task_count(100_000_000, 4_000_000, 16) == 32
