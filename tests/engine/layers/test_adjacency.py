"""Grid adjacency from shared edges: checked against shapely on real and demo layers, cached per
layer version."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from citygrid.engine.layers import snapshots
from citygrid.engine.layers.adjacency import CACHE_DIR, CACHE_FILE, adjacency_of, compute_adjacency
from citygrid.engine.layers.layer import FieldMap, GridLayer
from citygrid.engine.layers.sources import read_layer


def pairs(adjacency) -> set[tuple[int, int]]:
    out = set()
    for g in range(adjacency.n_grids):
        out |= {(g, int(h)) for h in adjacency.neighbours(g)}
    return out


def oracle_pairs(layer: GridLayer, rows=None) -> set[tuple[int, int]]:
    """Neighbours by measuring the shared boundary (or overlap) of every pair whose boxes meet
    (only pairs with a grid among ``rows``, when given)."""
    geoms = layer.geometries()
    left, right = shapely.STRtree(geoms).query(geoms)
    keep = left < right
    if rows is not None:
        keep &= np.isin(left, rows) | np.isin(right, rows)
    left, right = left[keep], right[keep]
    shared = shapely.length(shapely.intersection(shapely.boundary(geoms[left]), shapely.boundary(geoms[right])))
    overlap = shapely.area(shapely.intersection(geoms[left], geoms[right]))
    hit = (shared > 0) | (overlap > 0)
    return {(int(a), int(b)) for a, b in zip(left[hit], right[hit])} | {
        (int(b), int(a)) for a, b in zip(left[hit], right[hit])
    }


def test_corners_do_not_make_neighbours_and_holes_do():
    ring = shapely.box(0, 0, 3, 3).difference(shapely.box(1, 1, 2, 2))
    layer = GridLayer.from_geometries(
        [ring, shapely.box(1, 1, 2, 2), shapely.box(3, 3, 4, 4), shapely.box(3, 0, 4, 1)],
        {"grid_code": ["ring", "hole", "corner", "side"]},
    )
    adj = compute_adjacency(layer)
    assert adj.neighbours(0).tolist() == [1, 3]
    assert adj.neighbours(1).tolist() == [0]
    assert adj.neighbours(2).tolist() == []


def test_nyc_tracts_match_the_measured_boundaries(shared_data):
    layer = read_layer(shared_data / "nyc" / "nyct2020.shp", FieldMap(grid_code="GEOID"))
    adj = compute_adjacency(layer)
    got = pairs(adj)
    assert got == oracle_pairs(layer)
    assert all((b, a) in got for a, b in got)
    degree = adj.degree()
    assert 5 <= np.median(degree) <= 7  # a planar tessellation: about six neighbours each


def test_demo_layer_is_connected_with_shared_edges(demo_layer):
    adj = adjacency_of(demo_layer)
    assert adj.n_grids == 3823
    assert adj.degree().min() >= 1
    # The district is one piece: a search from any grid reaches all the others.
    reach, frontier = {0}, {0}
    while frontier:
        frontier = {int(h) for g in frontier for h in adj.neighbours(g)} - reach
        reach |= frontier
    assert len(reach) == 3823
    sample = np.arange(0, 3823, 9)
    assert {p for p in pairs(adj) if p[0] in set(sample) or p[1] in set(sample)} == oracle_pairs(demo_layer, sample)


def test_rings_are_exact_hop_distances(demo_layer):
    adj = adjacency_of(demo_layer)
    k = 2
    offsets, rows = adj.rings(k)
    for g in (0, 17, 1999, 3822):
        seen = {g}
        frontier = {g}
        for h in range(k + 1):
            if h:
                frontier = {int(x) for f in frontier for x in adj.neighbours(f)} - seen
                seen |= frontier
            got = rows[offsets[g * (k + 1) + h] : offsets[g * (k + 1) + h + 1]].tolist()
            assert got == sorted(frontier)


def test_saved_version_caches_its_adjacency(tmp_path):
    boxes = [shapely.box(i, j, i + 1, j + 1) for j in range(4) for i in range(5)]
    layer = GridLayer.from_geometries(boxes, {"grid_code": [f"G{k}" for k in range(20)]}, version_id="v-adj")
    path = snapshots.save_layer(layer, tmp_path)
    loaded = snapshots.load_layer(path)
    first = adjacency_of(loaded)
    cache = path / CACHE_DIR / CACHE_FILE
    assert cache.is_file()
    from citygrid.engine.layers.adjacency import _read_cached

    again = _read_cached(cache, loaded.content_hash)
    assert again is not None
    np.testing.assert_array_equal(again.offsets, first.offsets)
    np.testing.assert_array_equal(again.rows, first.rows)
    assert _read_cached(cache, "another-hash") is None
    assert snapshots.load_layer(path, verify=True).content_hash == layer.content_hash


@pytest.mark.parametrize("k", [0, 1])
def test_rings_of_a_line(k):
    layer = GridLayer.from_geometries([shapely.box(i, 0, i + 1, 1) for i in range(4)], {"grid_code": list("ABCD")})
    offsets, rows = compute_adjacency(layer).rings(k)
    assert rows[offsets[1 * (k + 1)] : offsets[1 * (k + 1) + 1]].tolist() == [1]
    if k:
        assert rows[offsets[1 * 2 + 1] : offsets[1 * 2 + 2]].tolist() == [0, 2]
