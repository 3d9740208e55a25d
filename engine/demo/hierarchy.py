"""Streets, communities and codes: grouping whole grids into the administrative hierarchy.

- Streets grow from their real anchor points over the grid adjacency graph, each at its own speed
  (competitive growth, so each street is connected); the speeds are tuned over a few rounds towards
  the target areas of :data:`.places.STREETS` (the result is within about 20 % of them).
- Each street gets communities in proportion to its grid count and area (110 in all), grown as a
  k-medoids partition of the street's grid graph, so every community is connected.
- Codes are positional strings: street ``440307`` + 3 digits (order of :data:`.places.STREETS`),
  community = street code + 3 digits, grid = community code + 3 digits. Communities are numbered
  within their street and grids within their community in *band order* (:func:`band_order`):
  north to south in latitude bands of :data:`ORDER_BAND_DEG` degrees counted from the district's
  northern edge, west to east within a band, by the polygon's ``shapely.point_on_surface``.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import shapely
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import dijkstra

from .outline import DISTRICT_CODE, LocalPlane, area_m2
from .places import MAX_COMMUNITIES_PER_STREET, MIN_COMMUNITIES_PER_STREET, N_COMMUNITIES, STREETS, street_code
from .tessellation import Tessellation

#: Height in degrees of the latitude bands that order communities and grids (about 440 m).
ORDER_BAND_DEG = 0.004
_STREET_ROUNDS = 30
_COMMUNITY_ROUNDS = 12


def band_order(lng: np.ndarray, lat: np.ndarray, north: float) -> np.ndarray:
    """Indices that sort points by band (north to south), then by longitude (west to east)."""
    band = np.floor((north - np.asarray(lat)) / ORDER_BAND_DEG)
    return np.lexsort((np.asarray(lng), band))


@dataclass(frozen=True)
class Hierarchy:
    """Grids in code order with their community and street; communities and streets in code order."""

    grids: np.ndarray
    grid_code: np.ndarray
    grid_name: np.ndarray
    grid_community: np.ndarray
    grid_area_m2: np.ndarray
    label_lng: np.ndarray
    label_lat: np.ndarray
    community_code: np.ndarray
    community_name: np.ndarray
    community_street: np.ndarray
    communities: np.ndarray
    street_code: np.ndarray
    street_name: np.ndarray
    streets: np.ndarray

    @property
    def grid_street(self) -> np.ndarray:
        return self.community_street[self.grid_community]


def build_hierarchy(
    tessellation: Tessellation, outline: shapely.Polygon, plane: LocalPlane, rng: np.random.Generator
) -> Hierarchy:
    """Group the tessellation's grids into streets and communities and give everything its code."""
    grids = tessellation.grids
    label = shapely.point_on_surface(grids)
    lng, lat = shapely.get_x(label), shapely.get_y(label)
    xy = np.column_stack(plane.to_xy(lng, lat))
    area = area_m2(grids)
    pairs = tessellation.neighbours
    graph = _graph(pairs, np.hypot(*(xy[pairs[:, 0]] - xy[pairs[:, 1]]).T), len(grids))

    street = _grow_streets(graph, area, grids)
    n_communities = _communities_per_street(street, area)
    # Communities balance grid counts more than extents: the square root of the distance per hop.
    hops = graph.sqrt()
    community = np.full(len(grids), -1)
    next_id = 0
    for s, k in enumerate(n_communities):
        members = np.flatnonzero(street == s)
        community[members] = next_id + _partition(hops[members][:, members], xy[members], k, rng)
        next_id += k

    # Codes: communities within streets, grids within communities, each in band order.
    north = outline.bounds[3]
    community_polygons = np.array([shapely.coverage_union_all(grids[community == c]) for c in range(next_id)])
    community_label = shapely.point_on_surface(community_polygons)
    community_street = np.array([street[community == c][0] for c in range(next_id)])
    community_rank = np.empty(next_id, dtype=int)
    for s in range(len(STREETS)):
        members = np.flatnonzero(community_street == s)
        order = band_order(shapely.get_x(community_label[members]), shapely.get_y(community_label[members]), north)
        community_rank[members[order]] = np.arange(members.size)
    community_order = np.lexsort((community_rank, community_street))
    new_community = np.empty(next_id, dtype=int)
    new_community[community_order] = np.arange(next_id)

    grid_rank = np.empty(len(grids), dtype=int)
    for c in range(next_id):
        members = np.flatnonzero(community == c)
        if members.size > 999:
            raise RuntimeError("a community has more than 999 grids")
        grid_rank[members[band_order(lng[members], lat[members], north)]] = np.arange(members.size)
    grid_order = np.lexsort((grid_rank, new_community[community]))

    street_codes = np.array([street_code(DISTRICT_CODE, s) for s in range(len(STREETS))], dtype=object)
    community_street = community_street[community_order]
    community_codes = np.empty(next_id, dtype=object)
    community_names = np.empty(next_id, dtype=object)
    for s, spec in enumerate(STREETS):
        members = np.flatnonzero(community_street == s)
        for rank, c in enumerate(members):
            community_codes[c] = f"{street_codes[s]}{rank + 1:03d}"
            community_names[c] = f"{spec.community_names[rank]}社区"
    grid_community = new_community[community][grid_order]
    grid_seq = grid_rank[grid_order] + 1
    grid_codes = np.array([f"{community_codes[c]}{q:03d}" for c, q in zip(grid_community, grid_seq)], dtype=object)
    grid_names = np.array([f"{community_names[c]}第{q}网格" for c, q in zip(grid_community, grid_seq)], dtype=object)
    return Hierarchy(
        grids=grids[grid_order],
        grid_code=grid_codes,
        grid_name=grid_names,
        grid_community=grid_community,
        grid_area_m2=area[grid_order],
        label_lng=lng[grid_order],
        label_lat=lat[grid_order],
        community_code=community_codes,
        community_name=community_names,
        community_street=community_street,
        communities=community_polygons[community_order],
        street_code=street_codes,
        street_name=np.array([s.full_name for s in STREETS], dtype=object),
        streets=np.array([shapely.coverage_union_all(grids[street == s]) for s in range(len(STREETS))]),
    )


def _graph(pairs: np.ndarray, weight: np.ndarray, n: int) -> csr_matrix:
    """Symmetric sparse adjacency matrix with positive edge weights."""
    weight = np.maximum(weight, 1e-3)
    rows = np.concatenate([pairs[:, 0], pairs[:, 1]])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0]])
    return coo_matrix((np.concatenate([weight, weight]), (rows, cols)), shape=(n, n)).tocsr()


def _grow_streets(graph: csr_matrix, area: np.ndarray, grids: np.ndarray) -> np.ndarray:
    """Street index of every grid: competitive growth from the anchors, speeds tuned to target areas.

    Of the rounds, the one whose worst relative area error is smallest wins.
    """
    anchors = shapely.points([s.anchor_lng for s in STREETS], [s.anchor_lat for s in STREETS])
    anchor_index, anchor_grid = shapely.STRtree(grids).query(anchors, predicate="within")
    if not np.array_equal(anchor_index, np.arange(len(STREETS))):
        raise RuntimeError("a street anchor is not inside exactly one grid")
    target = np.array([s.area_km2 for s in STREETS])
    target = target / target.sum() * area.sum()
    speed = np.ones(len(STREETS))
    best_error, best = np.inf, None
    for _ in range(_STREET_ROUNDS):
        street = _compete(graph, anchor_grid, speed)
        got = np.bincount(street, weights=area, minlength=len(STREETS))
        error = float(np.abs(got / target - 1.0).max())
        if error < best_error:
            best_error, best = error, street
        speed *= (target / np.maximum(got, 1.0)) ** 0.3
    return best


def _compete(graph: csr_matrix, sources: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """Label every node with the source whose region reaches it first, each region growing over the
    graph from its source at its own speed (a multi-source Dijkstra on distance / speed whose paths
    stay inside their own region, so every region is connected)."""
    indptr, indices, weights = graph.indptr, graph.indices, graph.data
    label = np.full(graph.shape[0], -1)
    best = np.full(graph.shape[0], np.inf)
    heap = [(0.0, k, int(node), 0.0) for k, node in enumerate(sources)]
    heapq.heapify(heap)
    while heap:
        _, k, node, reached = heapq.heappop(heap)
        if label[node] >= 0:
            continue
        label[node] = k
        for edge in range(indptr[node], indptr[node + 1]):
            other = int(indices[edge])
            if label[other] < 0:
                distance = reached + weights[edge]
                key = distance / speed[k]
                if key < best[other]:
                    best[other] = key
                    heapq.heappush(heap, (key, k, other, distance))
    return label


def _communities_per_street(street: np.ndarray, area: np.ndarray) -> np.ndarray:
    """How many communities each street gets: proportional to its grid count and area, bounded."""
    n_streets = len(STREETS)
    share = 0.5 * np.bincount(street, minlength=n_streets) / len(street) + \
        0.5 * np.bincount(street, weights=area, minlength=n_streets) / area.sum()
    quota = share * N_COMMUNITIES
    counts = np.full(n_streets, MIN_COMMUNITIES_PER_STREET)
    while counts.sum() < N_COMMUNITIES:
        room = np.where(counts < MAX_COMMUNITIES_PER_STREET, quota - counts, -np.inf)
        counts[int(np.argmax(room))] += 1
    return counts


def _partition(graph: csr_matrix, xy: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Split a connected grid graph into ``k`` connected parts of similar grid counts (k-medoids)."""
    n = graph.shape[0]
    centres = [int(rng.integers(n))]
    gap = np.hypot(*(xy - xy[centres[0]]).T)
    for _ in range(1, k):
        centres.append(int(np.argmax(gap)))
        gap = np.minimum(gap, np.hypot(*(xy - xy[centres[-1]]).T))
    centres = np.array(centres)
    for _ in range(_COMMUNITY_ROUNDS):
        _, _, source = dijkstra(graph, directed=False, indices=centres, min_only=True, return_predecessors=True)
        part = np.searchsorted(np.sort(centres), source)
        part = np.argsort(centres)[part]
        moved = centres.copy()
        for j in range(k):
            members = np.flatnonzero(part == j)
            mean = xy[members].mean(axis=0)
            moved[j] = members[np.argmin(np.hypot(*(xy[members] - mean).T))]
        if np.array_equal(moved, centres):
            break
        centres = moved
    _, _, source = dijkstra(graph, directed=False, indices=centres, min_only=True, return_predecessors=True)
    if (source < 0).any():
        raise RuntimeError("a street's grids are not connected")
    return np.argsort(centres)[np.searchsorted(np.sort(centres), source)]
