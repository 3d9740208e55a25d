"""Cut the district outline into base grids with jagged, exactly shared edges.

1. The Voronoi diagram of the block seeds gives one straight edge (ridge) per pair of neighbouring
   blocks.
2. Every ridge is replaced by a jagged polyline (midpoint displacement). Its offsets are clamped to
   the ridge's *kite* — the two triangles formed by the ridge and the two seeds — scaled by
   ``_KITE_MARGIN``. The kites of different ridges have disjoint interiors and the clamped envelope
   is convex, so jagged edges never cross each other and every seed stays inside its own block.
3. All jagged edges and the outline's boundary are noded together once (``shapely.union_all``) and
   polygonized, so every face shares exactly the same vertex coordinates with its neighbours, the
   outline's own vertices are kept, and the faces inside the outline cover it exactly.
4. Faces outside the outline are dropped; a face holding a block seed is that block; the few faces
   the outline cuts off without a seed join the neighbouring block they share the longest edge with.
5. Grids grow from their seed blocks over the block adjacency graph (shortest paths with randomised
   edge weights), so a grid is a connected, irregular, non-convex group of a few blocks. Its polygon
   is the coverage union of its faces (``shapely.coverage_union_all`` drops the inner edges and keeps
   every vertex of the outer ones, so neighbours still share their vertices exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import Voronoi

from .outline import LocalPlane

_KITE_MARGIN = 0.8
_FRAME_MARGIN_M = 10_000.0
_FRAME_SPACING_M = 2_000.0
_MAX_LEVELS = 7
_GROWTH_NOISE = 0.45


@dataclass(frozen=True)
class Tessellation:
    """The grids of a district and which grids share an edge.

    ``grids``: lon/lat Polygons, one per grid seed. ``neighbours``: ``(k, 2)`` grid index pairs
    (i < j) that share an edge.
    """

    grids: np.ndarray
    neighbours: np.ndarray


def _ridges(seeds_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voronoi ridges between two real seeds: ``(vertex_a, vertex_b, seed_pair)`` plane coordinates.

    A frame of far points around the seeds makes every ridge between two real seeds finite.
    """
    lo = seeds_xy.min(axis=0) - _FRAME_MARGIN_M
    hi = seeds_xy.max(axis=0) + _FRAME_MARGIN_M
    xs = np.arange(lo[0], hi[0] + _FRAME_SPACING_M, _FRAME_SPACING_M)
    ys = np.arange(lo[1], hi[1] + _FRAME_SPACING_M, _FRAME_SPACING_M)
    frame = np.concatenate([
        np.column_stack([xs, np.full_like(xs, lo[1])]),
        np.column_stack([xs, np.full_like(xs, ys[-1])]),
        np.column_stack([np.full_like(ys[1:-1], lo[0]), ys[1:-1]]),
        np.column_stack([np.full_like(ys[1:-1], xs[-1]), ys[1:-1]]),
    ])
    voronoi = Voronoi(np.concatenate([seeds_xy, frame]))
    pairs = voronoi.ridge_points
    ends = np.asarray(voronoi.ridge_vertices)
    real = (pairs < len(seeds_xy)).all(axis=1)
    if (ends[real] < 0).any():
        raise RuntimeError("an infinite Voronoi ridge between two seeds")
    pairs, ends = pairs[real], ends[real]
    a, b = voronoi.vertices[ends[:, 0]], voronoi.vertices[ends[:, 1]]
    proper = (a != b).any(axis=1)
    return a[proper], b[proper], pairs[proper]


def _kite_envelope(t: np.ndarray, t0: np.ndarray, half_gap: np.ndarray) -> np.ndarray:
    """Largest allowed offset at parameters ``t`` (row-broadcast) for ridges with seed foot ``t0``.

    The triangle (ridge end A, ridge end B, seed) has width ``half_gap * min(t / t0, (1 - t) / (1 - t0))``
    measured perpendicular to the ridge, dropping a side when the seed's foot lies beyond that end.
    """
    t0 = t0[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(t0 > 0, t / t0, np.inf)
        right = np.where(t0 < 1, (1 - t) / (1 - t0), np.inf)
    return _KITE_MARGIN * half_gap[:, None] * np.minimum(left, right)


def _jagged_edges(
    a: np.ndarray, b: np.ndarray, pairs: np.ndarray, seeds_xy: np.ndarray,
    roughness: np.ndarray, segment_m: np.ndarray, rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Midpoint-displaced polylines for ridges A→B: flat ``(points, ridge_index)`` plane coordinates.

    ``roughness`` scales the first displacement (fraction of the ridge length), ``segment_m`` is the
    wanted segment length; both per ridge. Endpoints are exactly the Voronoi vertices.
    """
    along = b - a
    length = np.hypot(along[:, 0], along[:, 1])
    normal = np.column_stack([-along[:, 1], along[:, 0]]) / length[:, None]
    mid = (seeds_xy[pairs[:, 0]] + seeds_xy[pairs[:, 1]]) / 2.0
    t0 = ((mid - a) * along).sum(axis=1) / length**2
    half_gap = np.hypot(*(seeds_xy[pairs[:, 0]] - seeds_xy[pairs[:, 1]]).T) / 2.0
    levels = np.clip(np.ceil(np.log2(np.maximum(length / segment_m, 1.0))), 1, _MAX_LEVELS).astype(int)

    points, owners = [], []
    for level in range(1, _MAX_LEVELS + 1):
        rows = np.flatnonzero(levels == level)
        if rows.size == 0:
            continue
        n_points = 2**level + 1
        offset = np.zeros((rows.size, n_points))
        amplitude = roughness[rows] * length[rows]
        step = n_points - 1
        for depth in range(level):
            half = step // 2
            centres = np.arange(half, n_points - 1, step)
            noise = rng.standard_normal((rows.size, centres.size))
            offset[:, centres] = (offset[:, centres - half] + offset[:, centres + half]) / 2.0 + \
                noise * (amplitude * 0.55**depth)[:, None]
            step = half
        t = np.linspace(0.0, 1.0, n_points)
        limit = _kite_envelope(t[None, :], t0[rows], half_gap[rows])
        offset = np.clip(offset, -limit, limit)
        xy = a[rows, None, :] + t[None, :, None] * along[rows, None, :] + offset[:, :, None] * normal[rows, None, :]
        xy[:, 0] = a[rows]
        xy[:, -1] = b[rows]
        points.append(xy.reshape(-1, 2))
        owners.append(np.repeat(rows, n_points))
    points, owners = np.concatenate(points), np.concatenate(owners)
    order = np.argsort(owners, kind="stable")
    return points[order], owners[order]


def tessellate(
    outline: shapely.Polygon, plane: LocalPlane, block_xy: np.ndarray, grid_block: np.ndarray,
    roughness: np.ndarray, segment_m: np.ndarray, rng: np.random.Generator,
) -> Tessellation:
    """Cut ``outline`` (lon/lat) into one grid per entry of ``grid_block``; see the module docstring.

    ``block_xy``: block seeds (plane metres); ``grid_block``: the blocks the grids grow from;
    ``roughness`` and ``segment_m``: per block, how wiggly and how finely drawn its edges are.
    """
    faces, face_block = _block_faces(outline, plane, block_xy, roughness, segment_m, rng)
    face_pairs, face_shared = _shared_edges(faces)
    _merge_orphan_faces(face_block, face_pairs, face_shared)
    block_grid = _grow_grids(block_xy, grid_block, face_block[face_pairs], rng)
    face_grid = block_grid[face_block]
    grids = _grid_polygons(faces, face_grid, len(grid_block))

    _check_cover(grids, outline)

    grid_pairs = np.sort(face_grid[face_pairs], axis=1)
    neighbours = np.unique(grid_pairs[grid_pairs[:, 0] != grid_pairs[:, 1]], axis=0)
    return Tessellation(grids, neighbours)


def _block_faces(
    outline: shapely.Polygon, plane: LocalPlane, block_xy: np.ndarray,
    roughness: np.ndarray, segment_m: np.ndarray, rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Faces of the jagged block edges noded with the outline, and the block of each face (−1: none).

    A face holding a block seed belongs to that block; faces cut off by the outline hold none.
    """
    a, b, pairs = _ridges(block_xy)
    xy, ridge = _jagged_edges(
        a, b, pairs, block_xy, roughness[pairs].mean(axis=1), segment_m[pairs].mean(axis=1), rng)
    lng, lat = plane.to_lnglat(xy[:, 0], xy[:, 1])
    lines = shapely.linestrings(np.column_stack([lng, lat]), indices=ridge)
    linework = shapely.union_all(np.append(lines, outline.exterior))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(linework)))
    inner = shapely.point_on_surface(faces)
    faces = faces[shapely.contains_xy(outline, shapely.get_x(inner), shapely.get_y(inner))]

    seed_lng, seed_lat = plane.to_lnglat(block_xy[:, 0], block_xy[:, 1])
    block, face = shapely.STRtree(faces).query(shapely.points(seed_lng, seed_lat), predicate="within")
    if block.size != len(block_xy) or np.unique(face).size != len(block_xy):
        raise RuntimeError("a block seed is not inside exactly one face of its own")
    face_block = np.full(len(faces), -1)
    face_block[face] = block
    return faces, face_block


def _grow_grids(
    block_xy: np.ndarray, grid_block: np.ndarray, block_pairs: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The grid of every block: the nearest grid seed block over the block adjacency graph.

    Edge weights are seed distances times a random factor, so grids take irregular groups of
    blocks; every grid keeps its own seed block and is connected (shortest-path trees).
    """
    pairs = np.unique(np.sort(block_pairs, axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    weight = np.hypot(*(block_xy[pairs[:, 0]] - block_xy[pairs[:, 1]]).T)
    weight *= rng.uniform(1.0 - _GROWTH_NOISE, 1.0 + _GROWTH_NOISE, size=weight.size)
    n = len(block_xy)
    graph = coo_matrix((weight, (pairs[:, 0], pairs[:, 1])), shape=(n, n)).tocsr()
    _, _, source = dijkstra(graph, directed=False, indices=grid_block, min_only=True, return_predecessors=True)
    if (source < 0).any():
        raise RuntimeError("a block is not connected to any grid seed")
    grid_of_seed_block = np.full(n, -1)
    grid_of_seed_block[grid_block] = np.arange(len(grid_block))
    return grid_of_seed_block[source]


def _shared_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face index pairs (i < j) that share an edge, and the edge length in degrees."""
    left, right = shapely.STRtree(faces).query(faces, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    shared = shapely.length(shapely.intersection(faces[left], faces[right]))
    edge = shared > 0
    return np.column_stack([left[edge], right[edge]]), shared[edge]


def _merge_orphan_faces(owner: np.ndarray, pairs: np.ndarray, shared: np.ndarray) -> None:
    """Give every face without a block (owner −1) to the owned neighbour with the longest shared edge."""
    directed = np.concatenate([pairs, pairs[:, ::-1]])
    lengths = np.concatenate([shared, shared])
    while (owner < 0).any():
        candidate = (owner[directed[:, 0]] < 0) & (owner[directed[:, 1]] >= 0)
        if not candidate.any():
            raise RuntimeError("a face cut off by the outline has no owned neighbour")
        face, other, length = directed[candidate, 0], directed[candidate, 1], lengths[candidate]
        order = np.lexsort((-length, face))
        face, other = face[order], other[order]
        first = np.r_[True, face[1:] != face[:-1]]
        owner[face[first]] = owner[other[first]]


def _grid_polygons(faces: np.ndarray, owner: np.ndarray, n_grids: int) -> np.ndarray:
    """One Polygon per grid: the coverage union of its faces (shared vertices are kept)."""
    grids = np.empty(n_grids, dtype=object)
    order = np.argsort(owner, kind="stable")
    starts = np.searchsorted(owner[order], np.arange(n_grids + 1))
    for grid in range(n_grids):
        members = faces[order[starts[grid]:starts[grid + 1]]]
        grids[grid] = members[0] if members.size == 1 else shapely.coverage_union_all(members)
    if not (shapely.get_type_id(grids) == shapely.GeometryType.POLYGON).all():
        raise RuntimeError("a grid is not a single polygon")
    return grids


def _check_cover(grids: np.ndarray, outline: shapely.Polygon) -> None:
    """Refuse a result that is not an exact, valid cover of the outline (planar lon/lat areas)."""
    if not shapely.is_valid(grids).all():
        raise RuntimeError("a grid polygon is invalid")
    union = shapely.coverage_union_all(grids)
    total = float(shapely.area(grids).sum())
    if abs(union.area - outline.area) > 1e-9 * outline.area or abs(total - union.area) > 1e-9 * union.area:
        raise RuntimeError("the grids do not cover the outline exactly once")
