"""The locate kernels against GEOS (shapely ``covers``) on generated layers, with hard points on purpose:
vertices, points interpolated on edges (within rounding of the edge: GEOS decides their side), points
one ulp either side, holes and their rims, multi-part grids, overlaps, NaN, infinities, far-off points.

The rule checked for every point: covered by one grid -> that row, ``INSIDE``; by several -> the lowest
of their rows, ``SHARED_BOUNDARY``; by none -> -1, ``OUTSIDE``; not a valid lng/lat -> -1, ``INVALID``.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from citygrid.engine.layers.assignment import Status, reference_assignment
from citygrid.engine.layers.index import build_index
from citygrid.engine.layers.layer import GridLayer
from citygrid.kernels.locate import locate_points, locate_points_serial
from citygrid.kernels.predicates import CCW_ERRBOUND_A

#: A 1 km square near Longgang: generated layers live here, at city-grid scale.
ORIGIN = (114.25, 22.70)
SPAN = 0.01


def tessellation(seed: int, n_cells: int, *, hole: bool, multipart: bool, overlap: bool) -> GridLayer:
    """Voronoi cells of random seeds clipped to the square (edges shared exactly between neighbours),
    optionally with a grid holding an island grid in a hole, a two-part grid, and an overlapping grid."""
    rng = np.random.default_rng(seed)
    x0, y0 = ORIGIN
    box = shapely.box(x0, y0, x0 + SPAN, y0 + SPAN)
    seeds = shapely.multipoints(np.column_stack([x0 + rng.random(n_cells) * SPAN, y0 + rng.random(n_cells) * SPAN]))
    cells = [shapely.intersection(c, box) for c in shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=box))]
    cells = [c for c in cells if not c.is_empty and c.geom_type == "Polygon"]
    if hole and cells:
        k = int(np.argmax([c.area for c in cells]))
        island = shapely.buffer(cells[k].centroid, (cells[k].area ** 0.5) * 0.15, quad_segs=3)
        if cells[k].contains(island):
            cells[k] = cells[k].difference(island)
            cells.append(island)
    if multipart and len(cells) >= 4:
        far = int(np.argmax([c.centroid.distance(cells[0].centroid) for c in cells]))
        if far != 0:
            cells[0] = shapely.MultiPolygon([cells[0], cells[far]])
            cells.pop(far)
    if overlap and cells:
        cells.append(shapely.buffer(cells[len(cells) // 2], SPAN * 0.01, quad_segs=2))
    rng.shuffle(cells)
    return GridLayer.from_geometries(cells, {"grid_code": [f"G{i}" for i in range(len(cells))]})


def near_collinear_points(layer: GridLayer, rng: np.random.Generator, n_edges: int = 8, per_edge: int = 20_000):
    """Points next to the longest slanted edges where the plain floating-point orientation gets the
    side wrong (checked in rational arithmetic), and points exactly on those edges' lines: only the
    exact path decides them right."""
    x, y = layer.x, layer.y
    starts = np.concatenate([np.arange(a, b - 1) for a, b in zip(layer.ring_offsets[:-1], layer.ring_offsets[1:])])
    slanted = starts[(x[starts] != x[starts + 1]) & (y[starts] != y[starts + 1])]
    length = np.hypot(x[slanted + 1] - x[slanted], y[slanted + 1] - y[slanted])
    out_x, out_y = [], []
    for i in slanted[np.argsort(-length)[:n_edges]]:
        ax, ay, bx, by = (float(v) for v in (x[i], y[i], x[i + 1], y[i + 1]))
        t = rng.random(per_edge)
        px = ax + t * (bx - ax)
        py = ay + t * (by - ay)
        for kx in (-2, -1, 0, 1, 2):
            for ky in (-2, -1, 0, 1, 2):
                cx = px + kx * np.spacing(px)
                cy = py + ky * np.spacing(py)
                left = (ax - cx) * (by - cy)
                right = (ay - cy) * (bx - cx)
                uncertain = np.abs(left - right) <= CCW_ERRBOUND_A * (np.abs(left) + np.abs(right))
                for qx, qy, det in zip(cx[uncertain].tolist(), cy[uncertain].tolist(), (left - right)[uncertain]):
                    exact = (Fraction(ax) - Fraction(qx)) * (Fraction(by) - Fraction(qy)) - (
                        Fraction(ay) - Fraction(qy)) * (Fraction(bx) - Fraction(qx))
                    if exact == 0 or (exact > 0) != (det > 0):
                        out_x.append(qx)
                        out_y.append(qy)
    return np.array(out_x), np.array(out_y)


def hard_points(layer: GridLayer, rng: np.random.Generator, n_random: int = 400):
    """Uniform points, every vertex, points on edges, one ulp either side of them, points whose side
    floating point cannot decide, and invalid ones."""
    x, y = layer.x, layer.y
    x0, y0, x1, y1 = layer.bounds
    pad = (x1 - x0) * 0.05
    lng = [rng.uniform(x0 - pad, x1 + pad, n_random)]
    lat = [rng.uniform(y0 - pad, y1 + pad, n_random)]
    lng.append(x)
    lat.append(y)
    starts = np.concatenate([np.arange(a, b - 1) for a, b in zip(layer.ring_offsets[:-1], layer.ring_offsets[1:])])
    pick = rng.choice(starts, size=min(len(starts), 300), replace=False)
    t = rng.random(len(pick))
    ex = x[pick] + t * (x[pick + 1] - x[pick])
    ey = y[pick] + t * (y[pick + 1] - y[pick])
    for dx, dy in [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)]:
        lng.append(np.nextafter(ex, ex + dx) if dx else ex)
        lat.append(np.nextafter(ey, ey + dy) if dy else ey)
    for dx, dy in [(1, 0), (-1, 0), (0, 1), (0, -1)]:  # one ulp off the vertices too
        lng.append(np.nextafter(x[pick], x[pick] + dx) if dx else x[pick])
        lat.append(np.nextafter(y[pick], y[pick] + dy) if dy else y[pick])
    near_x, near_y = near_collinear_points(layer, rng)
    lng.append(near_x)
    lat.append(near_y)
    lng.append(np.array([np.nan, 0.0, np.inf, -np.inf, 181.0, ORIGIN[0], -170.0, 179.9999]))
    lat.append(np.array([ORIGIN[1], np.nan, 0.0, ORIGIN[1], ORIGIN[1], 91.0, -80.0, 89.9999]))
    return np.concatenate(lng), np.concatenate(lat)


def located(layer: GridLayer, lng, lat, *, parallel: bool = True, **build):
    index = build_index(layer, h3_resolution=9, **build)
    rows = np.empty(len(lng), dtype=np.int32)
    status = np.empty(len(lng), dtype=np.uint8)
    kernel = locate_points if parallel else locate_points_serial
    kernel(np.ascontiguousarray(lng), np.ascontiguousarray(lat), *index.locate_args(), rows, status)
    return rows, status


def assert_agrees_with_geos(layer: GridLayer, lng, lat, rows, status):
    expected = reference_assignment(layer, lng, lat)
    wrong = np.flatnonzero((rows != expected.grid_rows) | (status != expected.status))
    assert len(wrong) == 0, (
        f"{len(wrong)} of {len(lng)} points disagree with GEOS, e.g. "
        + "; ".join(
            f"({lng[i]!r}, {lat[i]!r}): got {rows[i]} {Status(status[i]).name}, GEOS {expected.grid_rows[i]} "
            f"{Status(expected.status[i]).name}"
            for i in wrong[:5]
        )
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_cells=st.integers(2, 40),
    hole=st.booleans(),
    multipart=st.booleans(),
    overlap=st.booleans(),
    cells_per_grid=st.sampled_from([1.0, 16.0, 64.0, 256.0]),
    block_shift=st.integers(0, 3),
    strip_shift=st.integers(0, 3),
)
@example(seed=1, n_cells=12, hole=True, multipart=True, overlap=True, cells_per_grid=64.0, block_shift=2,
         strip_shift=2)
@example(seed=2, n_cells=2, hole=False, multipart=False, overlap=False, cells_per_grid=1.0, block_shift=0,
         strip_shift=0)
def test_generated_layers_agree_with_geos(seed, n_cells, hole, multipart, overlap, cells_per_grid, block_shift,
                                          strip_shift):
    layer = tessellation(seed, n_cells, hole=hole, multipart=multipart, overlap=overlap)
    lng, lat = hard_points(layer, np.random.default_rng(seed))
    rows, status = located(layer, lng, lat, cells_per_grid=cells_per_grid, block_shift=block_shift,
                           strip_shift=strip_shift)
    assert_agrees_with_geos(layer, lng, lat, rows, status)


def test_points_floating_point_misplaces_are_placed_exactly(rng):
    """Two grids sharing a 40 km diagonal (a district-sized lever arm): next to it, thousands of
    points where the plain floating-point orientation has the wrong sign, or lie exactly on the
    line; all agree with GEOS."""
    a, b, c, d = (114.0, 22.5), (114.4, 22.5), (114.4, 22.9), (114.0, 22.9)
    layer = GridLayer.from_geometries([shapely.Polygon([a, b, c]), shapely.Polygon([a, c, d])],
                                      {"grid_code": ["lower", "upper"]})
    lng, lat = near_collinear_points(layer, rng, n_edges=1, per_edge=100_000)
    assert len(lng) > 50
    rows, status = located(layer, lng, lat)
    assert_agrees_with_geos(layer, lng, lat, rows, status)


def test_shared_edges_and_vertices_go_to_the_lowest_row():
    """Four unit squares meeting at (1, 1), listed out of order: the centre vertex is covered by all
    four and goes to row 0; each shared edge to the lower row of its two grids."""
    boxes = [shapely.box(1, 1, 2, 2), shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), shapely.box(0, 1, 1, 2)]
    scale = 1e-3  # city-grid scale around the origin of the module
    geoms = [shapely.affinity.translate(shapely.affinity.scale(b, scale, scale, origin=(0, 0)), *ORIGIN) for b in boxes]
    layer = GridLayer.from_geometries(geoms, {"grid_code": list("ABCD")})
    x, y = ORIGIN
    lng = np.array([x + 1e-3, x + 0.5e-3, x + 1e-3, x + 1.5e-3, x + 1e-3, x, x + 2e-3])
    lat = np.array([y + 1e-3, y + 1e-3, y + 0.5e-3, y + 1e-3, y + 1.5e-3, y, y + 2e-3])
    rows, status = located(layer, lng, lat)
    assert rows.tolist() == [0, 1, 1, 0, 0, 1, 0]
    assert [Status(s).name for s in status] == ["SHARED_BOUNDARY"] * 5 + ["INSIDE", "INSIDE"]
    assert_agrees_with_geos(layer, lng, lat, rows, status)


def test_serial_and_parallel_kernels_agree(rng):
    layer = tessellation(7, 30, hole=True, multipart=True, overlap=True)
    lng, lat = hard_points(layer, rng, n_random=20_000)
    assert np.array_equal(np.stack(located(layer, lng, lat)), np.stack(located(layer, lng, lat, parallel=False)))


@pytest.mark.parametrize("cells_per_grid,block_shift", [(1.0, 0), (64.0, 2), (512.0, 3)])
def test_cell_table_shape_does_not_change_answers(rng, cells_per_grid, block_shift):
    layer = tessellation(11, 25, hole=True, multipart=False, overlap=True)
    lng, lat = hard_points(layer, rng, n_random=5_000)
    rows, status = located(layer, lng, lat, cells_per_grid=cells_per_grid, block_shift=block_shift)
    assert_agrees_with_geos(layer, lng, lat, rows, status)
