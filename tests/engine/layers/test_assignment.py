"""Point-in-grid assignment: the API, the rule, and zero mismatches against GEOS on real layers (the NYC
2020 tracts and the demo district): uniform points, points on vertices and on edges."""

from __future__ import annotations

import threading
import time

import numba
import numpy as np
import pytest
import shapely

from citygrid.engine.layers import coordinates
from citygrid.engine.layers.assignment import Assigner, Assignment, Status, assign_points, reference_assignment
from citygrid.engine.errors import DeadlineExceeded, InvalidInput, NotFound
from citygrid.engine.layers.layer import FieldMap, GridLayer
from citygrid.engine.layers.sources import read_layer


@pytest.fixture(scope="module")
def tracts(shared_data) -> GridLayer:
    return read_layer(shared_data / "nyc" / "nyct2020.shp", FieldMap(grid_code="GEOID"))


@pytest.fixture(scope="module")
def tracts_assigner(tracts) -> Assigner:
    return Assigner(tracts)


@pytest.fixture(scope="module")
def demo_assigner(demo_layer) -> Assigner:
    return Assigner(demo_layer)


@pytest.fixture(scope="module")
def two_boxes() -> Assigner:
    """Two 100 m grids side by side in Longgang, with parents."""
    x, y, d = 114.25, 22.70, 0.001
    layer = GridLayer.from_geometries(
        [shapely.box(x, y, x + d, y + d), shapely.box(x + d, y, x + 2 * d, y + d)],
        {
            "grid_code": ["440307001001001", "440307001001002"],
            "grid_type": ["urban-community", "industrial"],
            "community_code": ["440307001001", "440307001001"],
            "community_name": ["和平社区", "和平社区"],
            "street_code": ["440307001", "440307001"],
            "street_name": ["平湖街道", "平湖街道"],
            "district_code": ["440307", "440307"],
            "district_name": ["龙岗区", "龙岗区"],
        },
    )
    return Assigner(layer)


def assert_matches_geos(assigner: Assigner, lng, lat, result: Assignment | None = None):
    result = result or assigner.assign(lng, lat)
    expected = reference_assignment(assigner.layer, lng, lat)
    wrong = np.flatnonzero((result.grid_rows != expected.grid_rows) | (result.status != expected.status))
    assert len(wrong) == 0, [
        (float(lng[i]), float(lat[i]), int(result.grid_rows[i]), int(expected.grid_rows[i])) for i in wrong[:5]
    ]
    return expected


def edge_points(layer: GridLayer, rng: np.random.Generator, n: int):
    """``n`` points: half on vertices, half interpolated on edges (GEOS decides their side), and the
    interpolated ones again one ulp to the right and above."""
    x, y = layer.x, layer.y
    vertices = rng.choice(len(x), size=n // 2, replace=len(x) < n // 2)
    starts = np.flatnonzero(np.isin(np.arange(len(x) - 1), layer.ring_offsets[1:] - 1, invert=True))
    pick = rng.choice(starts, size=n - n // 2)
    t = rng.random(len(pick))
    ex = x[pick] + t * (x[pick + 1] - x[pick])
    ey = y[pick] + t * (y[pick + 1] - y[pick])
    lng = np.concatenate([x[vertices], ex, np.nextafter(ex, np.inf), ex])
    lat = np.concatenate([y[vertices], ey, ey, np.nextafter(ey, np.inf)])
    return lng, lat


def uniform_points(layer: GridLayer, rng: np.random.Generator, n: int):
    x0, y0, x1, y1 = layer.bounds
    return rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)


# ---------------------------------------------------------------------- the rule and the API


def test_statuses_and_counts(two_boxes):
    x, y, d = 114.25, 22.70, 0.001
    result = two_boxes.assign(
        [x + d / 2, x + d, x + 1.5 * d, x, x + 3 * d, np.nan, np.inf, 181.0, x],
        [y + d / 2, y + d / 2, y + d / 2, y, y, y, y, y, -91.0],
    )
    assert result.grid_rows.dtype == np.int32 and result.status.dtype == np.uint8
    assert result.grid_rows.tolist() == [0, 0, 1, 0, -1, -1, -1, -1, -1]
    assert [Status(s).name for s in result.status] == [
        "INSIDE", "SHARED_BOUNDARY", "INSIDE", "INSIDE", "OUTSIDE", "INVALID", "INVALID", "INVALID", "INVALID"
    ]
    assert result.counts() == {"inside": 3, "shared_boundary": 1, "fallback": 0, "outside": 1, "invalid": 4}
    assert len(result) == 9


def test_grid_chain_and_codes(two_boxes):
    chain = two_boxes.grid_chain(1)
    assert chain["code"] == "440307001001002" and chain["type"] == "industrial"
    assert chain["community"] == {"code": "440307001001", "name": "和平社区"}
    assert chain["street"] == {"code": "440307001", "name": "平湖街道"}
    assert chain["district"] == {"code": "440307", "name": "龙岗区"}
    assert two_boxes.codes_of([1, -1, 0]).tolist() == ["440307001001002", None, "440307001001001"]
    with pytest.raises(NotFound):
        two_boxes.grid_chain(2)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"crs": "utm50"}, "unknown coordinate system"),
        ({"fallback_m": -1}, "fallback_m"),
        ({"fallback_m": float("nan")}, "fallback_m"),
        ({"fallback_m": 1e9}, "fallback_m"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_arguments_are_invalid_input(two_boxes, kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        two_boxes.assign([114.25], [22.7], **kwargs)


def test_mismatched_arrays_are_invalid_input(two_boxes):
    with pytest.raises(InvalidInput, match="equal length"):
        two_boxes.assign([114.25, 114.26], [22.7])
    with pytest.raises(InvalidInput, match="one-dimensional"):
        two_boxes.assign(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(InvalidInput, match="must be numbers"):
        two_boxes.assign([114.25, "east"], [22.7, 22.7])


def test_scalar_and_empty_input(two_boxes):
    assert two_boxes.assign(114.2505, 22.7005).grid_rows.tolist() == [0]
    empty = two_boxes.assign([], [])
    assert len(empty) == 0 and empty.counts()["inside"] == 0


BAD_POINTS = [(np.nan, 22.7), (114.25, np.inf), (-np.inf, 0.0), (180.0001, 22.7), (114.25, -90.5)]


def test_one_point_agrees_with_geos_and_with_a_batch_of_one(demo_assigner, rng):
    """``assign_one`` (the unary path) gives what GEOS and a one-point batch give: points on vertices
    and edges (and one ulp off them), uniform ones, invalid ones, in GCJ-02 and with a fallback."""
    edge_lng, edge_lat = edge_points(demo_assigner.layer, rng, 600)
    uni_lng, uni_lat = uniform_points(demo_assigner.layer, rng, 300)
    lng = np.concatenate([edge_lng, uni_lng, [x for x, _ in BAD_POINTS]])
    lat = np.concatenate([edge_lat, uni_lat, [y for _, y in BAD_POINTS]])
    expected = reference_assignment(demo_assigner.layer, lng, lat)
    one = [demo_assigner.assign_one(x, y) for x, y in zip(lng.tolist(), lat.tolist())]
    assert one == list(zip(expected.grid_rows.tolist(), expected.status.tolist()))
    assert (expected.status == Status.SHARED_BOUNDARY).sum() > 100 and (expected.status == Status.INVALID).sum() == 5
    for k in range(0, len(lng), 7):
        for options in ({"crs": "gcj02"}, {"crs": "bd09", "fallback_m": 80.0}, {"fallback_m": 30.0}):
            batch = demo_assigner.assign(lng[k:k + 1], lat[k:k + 1], **options)
            assert demo_assigner.assign_one(lng[k], lat[k], **options) == (batch.grid_rows[0], batch.status[0])


@pytest.mark.parametrize("kwargs,message", [({"crs": "utm50"}, "unknown coordinate system"),
                                            ({"fallback_m": -1}, "fallback_m")])
def test_one_point_refuses_what_a_batch_refuses(two_boxes, kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        two_boxes.assign_one(114.25, 22.7, **kwargs)
    with pytest.raises(InvalidInput, match="must be numbers"):
        two_boxes.assign_one("east", 22.7)


def test_deadline_and_cancel_stop_between_chunks(two_boxes, rng):
    lng, lat = rng.uniform(114.25, 114.252, 10_000), rng.uniform(22.70, 22.701, 10_000)
    with pytest.raises(DeadlineExceeded, match="deadline"):
        two_boxes.assign(lng, lat, deadline=time.monotonic() - 1)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DeadlineExceeded, match="cancelled after 0 of 10,000"):
        two_boxes.assign(lng, lat, cancel=cancel)

    class CancelAfterTwoChecks(threading.Event):
        checks = 0

        def is_set(self):
            self.checks += 1
            return self.checks > 2

    with pytest.raises(DeadlineExceeded, match="cancelled after 2,000 of 10,000"):
        two_boxes.assign(lng, lat, cancel=CancelAfterTwoChecks(), chunk_size=1_000)
    assert len(two_boxes.assign(lng, lat, deadline=time.monotonic() + 60, chunk_size=1_000)) == 10_000


def test_chunk_size_does_not_change_answers(tracts_assigner, rng):
    lng, lat = uniform_points(tracts_assigner.layer, rng, 50_000)
    whole = tracts_assigner.assign(lng, lat)
    chunked = tracts_assigner.assign(lng, lat, chunk_size=777)
    assert np.array_equal(whole.grid_rows, chunked.grid_rows) and np.array_equal(whole.status, chunked.status)


def test_fallback_gives_the_nearest_grid_within_the_distance(two_boxes):
    x, y, d = 114.25, 22.70, 0.001
    metre = 1.0 / 111_195.0  # degrees of latitude
    lat = [y - 20 * metre, y - 20 * metre, y + d / 2, y - 80 * metre, y + d + 10 * metre]
    lng = [x + 0.2 * d, x + 1.8 * d, x + 2 * d + 30 * metre / np.cos(np.radians(y)), x + d / 2, x + d]
    plain = two_boxes.assign(lng, lat)
    assert (plain.status == Status.OUTSIDE).all()
    result = two_boxes.assign(lng, lat, fallback_m=50)
    assert result.grid_rows.tolist() == [0, 1, 1, -1, 0]  # the last is 10 m from both: lowest row
    assert [Status(s).name for s in result.status] == ["FALLBACK"] * 3 + ["OUTSIDE", "FALLBACK"]


def test_fallback_on_the_tracts_agrees_with_geos_distances(tracts_assigner, rng):
    """Every point outside the tracts gets the tract whose boundary is nearest within 200 m (on the
    local equirectangular plane, as documented), and only when there is one."""
    layer = tracts_assigner.layer
    radius = 200.0
    lng, lat = uniform_points(layer, rng, 20_000)
    plain = tracts_assigner.assign(lng, lat)
    result = tracts_assigner.assign(lng, lat, fallback_m=radius)
    kept = plain.status != Status.OUTSIDE
    assert np.array_equal(result.grid_rows[kept], plain.grid_rows[kept])
    outside = np.flatnonzero(~kept)[:1500]
    geoms = layer.geometries()
    tree = shapely.STRtree(geoms)
    fell_back = 0
    for i in outside:
        k = np.cos(np.radians(lat[i]))
        ry = radius / 111_195.0
        near = tree.query(shapely.box(lng[i] - ry / k, lat[i] - ry, lng[i] + ry / k, lat[i] + ry))
        point = shapely.affinity.scale(shapely.Point(lng[i], lat[i]), k, 1.0, origin=(0, 0))
        dist = {int(g): shapely.distance(shapely.affinity.scale(geoms[g], k, 1.0, origin=(0, 0)), point) * 111_195.0
                for g in near}
        within = {g: d for g, d in dist.items() if d <= radius}
        if not within:
            assert result.status[i] == Status.OUTSIDE and result.grid_rows[i] == -1
            continue
        fell_back += 1
        best = min(within.values())
        assert result.status[i] == Status.FALLBACK
        # The nearest (ties within a micrometre: either, as the engine breaks them by row).
        assert within[int(result.grid_rows[i])] <= best + 1e-6
    assert fell_back > 100


def test_points_in_gcj02_and_bd09_land_where_their_wgs84_points_do(demo_assigner, demo_layer, rng):
    lng, lat = uniform_points(demo_layer, rng, 20_000)
    expected = demo_assigner.assign(lng, lat)
    for crs in ("gcj02", "bd09"):
        shifted = coordinates.from_wgs84(lng, lat, crs)
        got = demo_assigner.assign(*shifted, crs=crs)
        differ = np.flatnonzero(got.grid_rows != expected.grid_rows)
        # Only a point within a hair (the inverse's ~0.01 mm) of a boundary may change sides.
        for i in differ:
            point = shapely.Point(lng[i], lat[i])
            assert shapely.distance(demo_layer.geometries()[expected.grid_rows[i]].boundary, point) < 1e-9
        assert len(differ) <= 2
    cgcs = demo_assigner.assign(lng, lat, crs="CGCS2000")
    assert np.array_equal(cgcs.grid_rows, expected.grid_rows)


def test_eight_threads_at_once_on_the_parallel_kernel(tracts_assigner, rng):
    """Server threads calling assign together (each on the parallel kernel) get the same answers as
    one caller alone; the threading layer is a thread-safe one."""
    lng, lat = uniform_points(tracts_assigner.layer, rng, 200_000)
    expected = tracts_assigner.assign(lng, lat)
    results, errors = [None] * 8, []

    def work(k):
        try:
            for _ in range(3):
                results[k] = tracts_assigner.assign(lng, lat, chunk_size=50_000)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert numba.threading_layer() in ("tbb", "omp")
    for result in results:
        assert np.array_equal(result.grid_rows, expected.grid_rows)


def test_assign_points_convenience(two_boxes):
    assert assign_points(two_boxes.layer, [114.2515], [22.7005]).grid_rows.tolist() == [1]


# ---------------------------------------------------------------------- zero mismatches against GEOS


@pytest.mark.parametrize("which", ["tracts", "demo"])
def test_uniform_points_agree_with_geos(request, rng, which):
    assigner = request.getfixturevalue(f"{which}_assigner")
    lng, lat = uniform_points(assigner.layer, rng, 300_000)
    expected = assert_matches_geos(assigner, lng, lat)
    assert (expected.status == Status.INSIDE).sum() > 100_000


@pytest.mark.parametrize("which", ["tracts", "demo"])
def test_points_on_vertices_and_edges_agree_with_geos(request, rng, which):
    """100,000 points on vertices and edges (plus their one-ulp neighbours): shared ones go to the
    lowest row, the district's outer edge to its one grid."""
    assigner = request.getfixturevalue(f"{which}_assigner")
    lng, lat = edge_points(assigner.layer, rng, 100_000)
    expected = assert_matches_geos(assigner, lng, lat)
    assert (expected.status == Status.SHARED_BOUNDARY).sum() > 10_000


@pytest.mark.slow
@pytest.mark.parametrize("which", ["tracts", "demo"])
def test_ten_million_uniform_points_agree_with_geos(request, rng, which):
    assigner = request.getfixturevalue(f"{which}_assigner")
    for _ in range(10):
        lng, lat = uniform_points(assigner.layer, rng, 1_000_000)
        assert_matches_geos(assigner, lng, lat)
