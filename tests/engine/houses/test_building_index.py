"""Nearest building to points (``citygrid.engine.houses.spatial`` over ``citygrid.kernels.nearest``),
against a brute-force haversine oracle."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from citygrid.engine.layers.coordinates import from_wgs84
from citygrid.engine.errors import DeadlineExceeded, InvalidInput
from citygrid.engine.houses.spatial import MAX_RADIUS_M, BuildingIndex

R = 6371008.8
#: Two answers count as the same distance within this many metres (float rounding of two formulas).
TIE_M = 1e-6


def haversine(lng1, lat1, lng2, lat2) -> np.ndarray:
    """Great-circle metres on the same sphere, by the haversine formula (not the kernel's chords)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lng2) - np.asarray(lng1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * R * np.arcsin(np.minimum(np.sqrt(a), 1.0))


def check_against_oracle(b_lng, b_lat, q_lng, q_lat, radius_m, found) -> None:
    for n in range(len(q_lng)):
        if not (abs(q_lng[n]) <= 180 and abs(q_lat[n]) <= 90):
            assert found.rows[n] == -1 and np.isnan(found.distance_m[n])
            continue
        d = haversine(q_lng[n], q_lat[n], b_lng, b_lat)
        best = d.min()
        row = found.rows[n]
        if row < 0:
            assert best > radius_m - TIE_M, (n, best, radius_m)
            assert found.distance_m[n] == -1.0
            continue
        assert d[row] <= radius_m + TIE_M
        assert abs(found.distance_m[n] - d[row]) <= TIE_M
        # the nearest (two formulas agree to TIE_M), and of buildings at that very spot the lowest row
        # (positions a hair apart may round either way in either formula: no order is asserted there)
        assert d[row] <= best + TIE_M, (n, row, d[row], best)
        same_spot = np.flatnonzero((b_lng == b_lng[row]) & (b_lat == b_lat[row]))
        assert row == same_spot.min()


coordinate_lng = st.floats(114.0, 114.02, allow_nan=False)
coordinate_lat = st.floats(22.6, 22.615, allow_nan=False)


@st.composite
def worlds(draw):
    n = draw(st.integers(1, 120))
    lng = draw(st.lists(coordinate_lng, min_size=n, max_size=n))
    lat = draw(st.lists(coordinate_lat, min_size=n, max_size=n))
    copies = draw(st.lists(st.integers(0, n - 1), max_size=10))  # buildings at the same spot: ties
    lng += [lng[c] for c in copies]
    lat += [lat[c] for c in copies]
    m = draw(st.integers(1, 60))
    q_lng = draw(st.lists(st.one_of(st.floats(113.99, 114.03), st.sampled_from(lng), st.just(float("nan"))),
                          min_size=m, max_size=m))
    q_lat = draw(st.lists(st.one_of(st.floats(22.59, 22.625), st.sampled_from(lat), st.just(200.0)),
                          min_size=m, max_size=m))
    radius = draw(st.one_of(st.floats(1.0, 500.0), st.just(MAX_RADIUS_M)))
    per_cell = draw(st.sampled_from([0.05, 0.5, 1.0, 4.0, 30.0]))
    return np.array(lng), np.array(lat), np.array(q_lng), np.array(q_lat), radius, per_cell


@settings(max_examples=300, deadline=None)  # the first example compiles the kernels
@given(worlds())
@example((np.array([114.0, 114.0, 114.001]), np.array([22.6, 22.6, 22.6]), np.array([114.0, 114.0005]),
          np.array([22.6, 22.6]), 100.0, 1.0))  # two buildings at one spot: the lower row; a point halfway
@example((np.array([114.0]), np.array([22.6]), np.array([114.0, 114.5]), np.array([22.6, 22.6]), 10.0, 1.0))
def test_nearest_agrees_with_brute_force(world):
    b_lng, b_lat, q_lng, q_lat, radius, per_cell = world
    index = BuildingIndex(b_lng, b_lat, buildings_per_cell=per_cell)
    found = index.nearest(q_lng, q_lat, radius_m=radius)
    check_against_oracle(b_lng, b_lat, q_lng, q_lat, radius, found)


def test_far_points_and_large_grids(rng):
    b_lng, b_lat = rng.uniform(113.8, 114.6, 5_000), rng.uniform(22.4, 22.9, 5_000)
    q_lng = np.r_[rng.uniform(113.7, 114.7, 3_000), 116.4, 114.2, -70.0]
    q_lat = np.r_[rng.uniform(22.3, 23.0, 3_000), 39.9, 60.0, -33.0]
    index = BuildingIndex(b_lng, b_lat)
    for radius in (50.0, 1_000.0, MAX_RADIUS_M):
        check_against_oracle(b_lng, b_lat, q_lng, q_lat, radius, index.nearest(q_lng, q_lat, radius_m=radius))


def test_parallel_and_serial_paths_agree(rng):
    b_lng, b_lat = rng.uniform(114.0, 114.3, 20_000), rng.uniform(22.5, 22.8, 20_000)
    q_lng, q_lat = rng.uniform(113.95, 114.35, 50_000), rng.uniform(22.45, 22.85, 50_000)
    index = BuildingIndex(b_lng, b_lat)
    whole = index.nearest(q_lng, q_lat, radius_m=300)  # parallel kernel
    chunked = index.nearest(q_lng, q_lat, radius_m=300, chunk_size=1_000)  # serial kernel per chunk
    assert np.array_equal(whole.rows, chunked.rows) and np.array_equal(whole.distance_m, chunked.distance_m)
    sample = rng.choice(50_000, 500, replace=False)
    check_against_oracle(b_lng, b_lat, q_lng[sample], q_lat[sample], 300, index.nearest(
        q_lng[sample], q_lat[sample], radius_m=300))


@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
def test_phone_coordinates_are_converted_as_assignment_does(rng, crs):
    b_lng, b_lat = rng.uniform(114.0, 114.3, 2_000), rng.uniform(22.5, 22.8, 2_000)
    index = BuildingIndex(b_lng, b_lat)
    picked = rng.choice(2_000, 50, replace=False)
    phone_lng, phone_lat = from_wgs84(b_lng[picked], b_lat[picked], crs)
    found = index.nearest(phone_lng, phone_lat, radius_m=5, crs=crs)
    assert found.rows.tolist() == picked.tolist() and (found.distance_m < 0.01).all()
    raw = index.nearest(phone_lng, phone_lat, radius_m=5)  # read as WGS84: hundreds of metres off
    assert (raw.rows != picked).mean() > 0.9


def test_bad_input_is_refused():
    index = BuildingIndex([114.0], [22.6])
    for radius in (0, -1, float("nan"), float("inf"), MAX_RADIUS_M * 1.01):
        with pytest.raises(InvalidInput, match="radius_m"):
            index.nearest([114.0], [22.6], radius_m=radius)
    with pytest.raises(InvalidInput, match="coordinate system"):
        index.nearest([114.0], [22.6], crs="mars")
    with pytest.raises(InvalidInput, match="equal length"):
        index.nearest([114.0, 1.0], [22.6])
    with pytest.raises(InvalidInput, match="at least one building"):
        BuildingIndex([], [])
    with pytest.raises(InvalidInput, match="building row 1 has no valid position"):
        BuildingIndex([114.0, float("nan")], [22.6, 22.6])
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DeadlineExceeded, match="cancelled"):
        index.nearest([114.0], [22.6], cancel=cancel)


def test_demo_buildings(demo_dir, rng):
    import pyarrow.parquet as pq

    table = pq.read_table(demo_dir / "buildings.parquet", columns=["lng", "lat"])
    b_lng, b_lat = table.column("lng").to_numpy(), table.column("lat").to_numpy()
    index = BuildingIndex(b_lng, b_lat)
    at = rng.choice(len(b_lng), 300, replace=False)
    q_lng = b_lng[at] + rng.normal(0, 0.0005, 300)
    q_lat = b_lat[at] + rng.normal(0, 0.0005, 300)
    check_against_oracle(b_lng, b_lat, q_lng, q_lat, 200.0, index.nearest(q_lng, q_lat, radius_m=200))
