"""Layer geometry for maps (engine/layers/geometry.py): areas as unions of their grids, and coverage
simplification that opens no gap and no overlap between neighbours, checked against GEOS's own area,
union and intersection."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from citygrid.engine.errors import InvalidInput, NotFound
from citygrid.engine.layers.geometry import LayerShapes, ShapeCache, rounded, simplify_coverage
from citygrid.engine.layers.layer import GridLayer


def wiggly_mesh(seed: int, nx: int, ny: int, wiggles: int) -> tuple[np.ndarray, np.ndarray]:
    """A coverage of ``nx * ny`` quadrilateral-ish cells over [0, nx] x [0, ny]: mesh vertices
    jittered inside their cell, each edge a zig-zag of ``wiggles`` shared intermediate points (so
    simplification has something to remove). Returns the cells and each cell's (i, j)."""
    rng = np.random.default_rng(seed)
    vx = np.arange(nx + 1, dtype=float)[:, None] + rng.uniform(-0.3, 0.3, (nx + 1, ny + 1))
    vy = np.arange(ny + 1, dtype=float)[None, :] + rng.uniform(-0.3, 0.3, (nx + 1, ny + 1))
    vx[0, :], vx[-1, :] = 0.0, nx  # a straight outer boundary
    vy[:, 0], vy[:, -1] = 0.0, ny
    edges: dict[tuple, list] = {}

    def edge(a, b):
        key = (a, b) if a < b else (b, a)
        if key not in edges:
            (i0, j0), (i1, j1) = key
            p, q = np.array([vx[i0, j0], vy[i0, j0]]), np.array([vx[i1, j1], vy[i1, j1]])
            # zig-zag points stay in the middle half of the edge: an offset of at most 0.04 of the
            # edge's length at 0.25 of it turns by at most atan(0.16) = 9.1 degrees, and two edges
            # meeting at a jittered vertex are at least 22.6 degrees apart, so no cell crosses itself
            # (0.05..0.95 let seed 258, 7 x 4, 12 wiggles cross a neighbour edge)
            t = np.sort(rng.uniform(0.25, 0.75, wiggles))
            normal = np.array([-(q - p)[1], (q - p)[0]])
            outer = (i0 == i1 and i0 in (0, nx)) or (j0 == j1 and j0 in (0, ny))
            offset = 0.0 if outer else 1.0
            pts = p + t[:, None] * (q - p) + offset * rng.uniform(-0.04, 0.04, wiggles)[:, None] * normal
            edges[key] = [tuple(p), *map(tuple, pts), tuple(q)]
        line = edges[key]
        return line if key == (a, b) else line[::-1]

    cells, where = [], []
    for i in range(nx):
        for j in range(ny):
            corners = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)]
            ring = []
            for a, b in zip(corners, corners[1:] + corners[:1]):
                ring.extend(edge(a, b)[:-1])
            cells.append(shapely.Polygon(ring))
            where.append((i, j))
    return np.array(cells, dtype=object), np.array(where)


#: Mesh units in degrees for layers (a mesh cell is then about 100 m, as grids are).
UNIT = 0.001


def mesh_layer(seed: int, nx: int, ny: int, wiggles: int) -> GridLayer:
    cells, where = wiggly_mesh(seed, nx, ny, wiggles)
    cells = shapely.transform(cells, lambda coords: coords * UNIT)
    n = len(cells)
    community = [f"C{i // 2}{j // 2}" for i, j in where]
    street = [f"S{i // 4}" for i, _ in where]
    return GridLayer.from_geometries(cells, {
        "grid_code": [f"G{k:03d}" for k in range(n)], "grid_name": [f"网格{k}" for k in range(n)],
        "community_code": community, "community_name": [f"{c}社区" for c in community],
        "street_code": street, "street_name": [f"{s}街道" for s in street],
        "district_code": ["D"] * n, "district_name": ["区"] * n,
    })


def assert_coverage(shapes: np.ndarray, outline: shapely.Geometry, *, exact_outline: bool) -> None:
    """No overlap (pairwise intersections of zero area) and no gap (the union has no holes and, when
    the outer boundary was kept, the same area as the original)."""
    assert shapely.is_valid(shapes).all()
    union = shapely.union_all(shapes)
    total = shapely.area(shapes).sum()
    scale = outline.area
    # overlaps would make the parts' areas add up to more than their union
    assert total == pytest.approx(union.area, rel=1e-9, abs=1e-12 * scale)
    tree = shapely.STRtree(shapes)
    left, right = tree.query(shapes, predicate="intersects")
    pairs = left < right
    overlap = shapely.area(shapely.intersection(shapes[left[pairs]], shapes[right[pairs]]))
    assert overlap.max(initial=0.0) <= 1e-12 * scale
    # gaps would show as holes in the union (the mesh has none)
    polygons = shapely.get_parts(union)
    assert sum(shapely.get_num_interior_rings(polygons)) == 0
    assert len(polygons) == 1
    if exact_outline:
        assert union.area == pytest.approx(outline.area, rel=1e-9)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), nx=st.integers(2, 7), ny=st.integers(1, 6),
       wiggles=st.integers(1, 12), tolerance=st.floats(0.01, 0.6))
@example(seed=258, nx=7, ny=4, wiggles=12, tolerance=0.1)  # made a self-crossing cell before the bound below
def test_coverage_simplification_opens_no_gap_and_no_overlap(seed, nx, ny, wiggles, tolerance):
    cells, _ = wiggly_mesh(seed, nx, ny, wiggles)
    outline = shapely.box(0, 0, nx, ny)
    assert_coverage(cells, outline, exact_outline=True)  # the generator makes a coverage
    for keep_outline in (True, False):
        simplified = simplify_coverage(cells, tolerance, keep_outline=keep_outline)
        assert shapely.get_num_coordinates(simplified).sum() <= shapely.get_num_coordinates(cells).sum()
        assert_coverage(simplified, outline, exact_outline=keep_outline)


def test_plain_simplification_would_open_gaps():
    """The control: simplifying each grid on its own opens slivers that the check above catches."""
    cells, _ = wiggly_mesh(7, 5, 5, 12)
    with pytest.raises(AssertionError):
        assert_coverage(shapely.simplify(cells, 0.2), shapely.box(0, 0, 5, 5), exact_outline=False)
    assert_coverage(simplify_coverage(cells, 0.2), shapely.box(0, 0, 5, 5), exact_outline=False)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), tolerance=st.sampled_from([0.0, 0.05 * UNIT, 0.3 * UNIT]))
def test_areas_are_unions_of_their_grids(seed, tolerance):
    layer = mesh_layer(seed, 8, 4, 6)
    shapes = LayerShapes(layer)
    grids = layer.geometries()
    communities = layer.column("community_code")
    for level, column in (("community", communities), ("street", layer.column("street_code"))):
        areas = shapes.areas(level)
        assert areas.codes == sorted(set(column))
        for k, code in enumerate(areas.codes):
            members = grids[np.asarray(column) == code]
            expected = shapely.union_all(members)
            assert shapely.symmetric_difference(areas.geometries[k], expected).area <= 1e-9
            assert (areas.area_of_row == k).sum() == len(members)
        assert_coverage(shapes.geometries(level, tolerance), shapely.box(0, 0, 8 * UNIT, 4 * UNIT), exact_outline=False)
    district = shapes.areas("district")
    assert district.codes == ["D"] and district.geometries[0].area == pytest.approx(32.0 * UNIT**2)


def test_geojson_rounds_shared_vertices_alike_and_wkb_round_trips():
    layer = mesh_layer(3, 4, 4, 5)
    shapes = LayerShapes(layer)
    collection = shapes.geojson("grid", tolerance=0.05 * UNIT)
    assert len(collection["features"]) == layer.n_grids
    first = collection["features"][0]
    assert first["properties"] == {"code": "G000", "name": "网格0", "level": "grid"}
    back = np.array([shapely.from_geojson(__import__("json").dumps(f["geometry"]))
                     for f in collection["features"]], dtype=object)
    assert_coverage(back, shapely.box(0, 0, 4 * UNIT, 4 * UNIT), exact_outline=False)
    expected = rounded(shapes.geometries("grid", 0.05 * UNIT))
    assert shapely.equals_exact(back, expected, tolerance=0).all()
    wkb = shapes.encode("grid", fmt="wkb", indices=[2, 5])
    assert shapely.equals_exact(shapely.from_wkb(wkb), layer.geometries()[[2, 5]], tolerance=0).all()


def test_one_areas_geojson_geometry_is_made_once_and_matches_geos():
    layer = mesh_layer(3, 4, 4, 5)
    shapes = LayerShapes(layer)
    for tolerance in (0.0, 0.05 * UNIT):
        expected = rounded(shapes.geometries("grid", tolerance))
        for row in range(layer.n_grids):
            geometry = shapes.geojson_geometry("grid", row, tolerance)
            back = shapely.from_geojson(__import__("json").dumps(geometry))
            assert shapely.equals_exact(back, expected[row], tolerance=0)
            assert shapes.geojson_geometry("grid", row, tolerance) is geometry
    street = shapes.geojson_geometry("community", 0)
    assert shapely.equals_exact(shapely.from_geojson(__import__("json").dumps(street)),
                                rounded(shapes.areas("community").geometries)[0], tolerance=0)
    with pytest.raises(InvalidInput, match="tolerance must be"):
        shapes.geojson_geometry("grid", 0, 1.0)


def test_simplified_shapes_are_cached_per_version_and_tolerance():
    layer = mesh_layer(1, 3, 3, 4)
    cache = ShapeCache()
    assert cache(layer) is cache(layer)
    shapes = cache(layer)
    assert shapes.geometries("grid", 0.0001) is shapes.geometries("grid", 0.0001)
    assert shapes.geometries("grid", 0.0001) is not shapes.geometries("grid", 0.0002)
    assert cache(mesh_layer(1, 3, 3, 4)) is not shapes


def test_simplified_shapes_kept_are_bounded_and_the_most_recently_asked_stay(monkeypatch):
    """The tolerance is a caller's parameter: callers asking many keep at most SIMPLIFIED_KEPT
    coverages, the least recently asked dropped first (the map's own stays while it is asked), and
    a dropped one is simplified again, equal to GEOS's coverage simplification of the shapes."""
    from citygrid.engine.layers import geometry

    monkeypatch.setattr(geometry, "SIMPLIFIED_KEPT", 3)
    layer = mesh_layer(1, 3, 3, 4)
    shapes = LayerShapes(layer)
    points = shapes.points("grid")
    kept = shapes.geometries("grid", 0.0001)
    for k in range(1, 10):
        shapes.geometries("grid", 0.0001 + k * 1e-5)
        assert shapes.geometries("grid", 0.0001) is kept  # asked again: the most recent
        assert len(shapes._simplified) <= 3
    first_other = shapes.geometries("grid", 0.0001 + 1e-5)  # dropped long ago: made again
    expected = shapely.coverage_simplify(layer.geometries(), 0.0001 + 1e-5)
    assert all(shapely.equals(a, b) for a, b in zip(first_other, expected))
    assert shapes.points("grid") is points  # label points are not simplified coverages


@pytest.mark.parametrize("tolerance", [-0.001, 0.5, float("nan"), "x"])
def test_bad_tolerance_is_refused_precisely(tolerance):
    with pytest.raises(InvalidInput, match="tolerance must be"):
        LayerShapes(mesh_layer(1, 2, 2, 2)).geometries("grid", tolerance)


def test_bad_level_format_and_code_are_refused_precisely():
    shapes = LayerShapes(mesh_layer(1, 2, 2, 2))
    with pytest.raises(InvalidInput, match="unknown level 'block'"):
        shapes.areas("block")
    with pytest.raises(InvalidInput, match="unknown geometry format 'kml'"):
        shapes.encode("grid", fmt="kml")
    with pytest.raises(NotFound, match="no community with code 'C9'"):
        shapes.areas("community").index("C9")


def test_demo_layer_simplified_stays_a_coverage(demo_layer):
    """The real district: 3,823 grids at the map's tolerance, no overlap and no hole."""
    shapes = LayerShapes(demo_layer)
    simplified = shapes.geometries("grid", 0.0001)
    outline = shapely.coverage_union_all(demo_layer.geometries())
    assert shapely.get_num_coordinates(simplified).sum() < 0.6 * shapely.get_num_coordinates(
        demo_layer.geometries()).sum()
    assert shapely.area(simplified).sum() == pytest.approx(shapely.union_all(simplified).area, rel=1e-9)
    holes = sum(shapely.get_num_interior_rings(shapely.get_parts(shapely.union_all(simplified))))
    assert holes == sum(shapely.get_num_interior_rings(shapely.get_parts(outline)))


def test_visible_areas_follow_the_jurisdiction():
    from citygrid.engine.access.principals import Principal, Role

    layer = mesh_layer(2, 8, 4, 2)
    shapes = LayerShapes(layer)
    street = Principal("街道大屏", Role.DASHBOARD, ("S1",))
    community = Principal("社区大屏", Role.DASHBOARD, ("C21",))
    everyone = Principal("区大屏", Role.DASHBOARD)
    grids = shapes.areas("grid")
    in_street = set(np.flatnonzero(np.asarray(layer.column("street_code")) == "S1").tolist())
    assert set(grids.visible(street).tolist()) == in_street
    assert [shapes.areas("street").codes[k] for k in shapes.areas("street").visible(street)] == ["S1"]
    communities = shapes.areas("community")
    assert sorted(communities.codes[k] for k in communities.visible(street)) == ["C20", "C21", "C30", "C31"]
    assert [communities.codes[k] for k in communities.visible(community)] == ["C21"]
    assert len(shapes.areas("street").visible(community)) == 0  # a community does not see its street
    assert len(communities.visible(everyone)) == len(communities.codes)


def test_label_points_lie_inside_their_areas():
    layer = mesh_layer(4, 6, 4, 6)
    shapes = LayerShapes(layer)
    for level in ("grid", "community", "street"):
        points = shapely.points(shapes.points(level))
        assert shapely.contains(shapes.areas(level).geometries, points).all()
