"""The batch dispatch kernel gives exactly the answers of one-by-one online dispatch, and the
min-cost-flow kernel is optimal (checked against scipy's HiGHS)."""

from __future__ import annotations

import heapq

import numpy as np
import pytest
import shapely

from citygrid.engine.layers.adjacency import compute_adjacency
from citygrid.engine.dispatch.dispatcher import Dispatcher
from citygrid.engine.dispatch.routing import Route, RoutingRule, RoutingRules
from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.dispatch.workers import SHIFT_PRESETS, Worker
from citygrid.kernels.dispatch import NEVER, min_cost_flow

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00Z in µs
HOUR = 3_600_000_000


def random_world(rng, nx: int, ny: int, workers_per_grid: float, max_hops: int):
    """A grid of squares with some holes, workers of two departments with random skills, shifts,
    duty and capacities."""
    keep = rng.random(nx * ny) > 0.1
    boxes = [shapely.box(i, j, i + 1, j + 1) for j in range(ny) for i in range(nx)]
    boxes = [b for b, k in zip(boxes, keep) if k]
    codes = [f"G{k:04d}" for k in range(len(boxes))]
    layer = GridLayer.from_geometries(boxes, {"grid_code": codes})
    shifts = list(SHIFT_PRESETS)
    workers = [
        Worker(
            worker_id=f"w{rng.integers(10**6):06d}-{k}",
            grid_code=codes[rng.integers(len(codes))],
            department=["网格员", "网格员", "城管"][rng.integers(3)],
            skills=frozenset(rng.choice(["01", "05", "10"], rng.integers(0, 4), replace=False).tolist()),
            shift=shifts[rng.integers(len(shifts))],
            capacity=int(rng.integers(0, 6)),
            on_duty=bool(rng.random() < 0.9),
        )
        for k in range(int(len(codes) * workers_per_grid))
    ]
    rules = RoutingRules((
        RoutingRule(Route(frozenset({"城管", "网格员"}), "01"), category="c1"),
        RoutingRule(Route("城管"), category="c2"),
        RoutingRule(Route("网格员", "05"), category_class="k"),
    ))
    return layer, compute_adjacency(layer), workers, rules, max_hops


def random_events(rng, layer, n: int, release_share: float):
    grid = rng.integers(-1, layer.n_grids, n)
    categories = rng.choice(["c0", "c1", "c2", "c3"], n)
    t = np.sort(T0 + rng.integers(0, 14 * 24 * HOUR, n))
    release = t + rng.integers(0, 6 * HOUR, n)
    release[rng.random(n) > release_share] = NEVER
    return grid, categories, t, release


def one_by_one(d: Dispatcher, grid, reqs, t, release):
    """The online rule, event after event, with releases from a heap (the reference)."""
    minutes = d.minutes(t)
    pending: list[tuple[int, int]] = []
    out = np.empty((len(grid), 2), dtype=np.int64)
    for i in range(len(grid)):
        while pending and pending[0][0] <= t[i]:
            _, w = heapq.heappop(pending)
            d.release(w)
        w, tier = d.choose(int(grid[i]), int(reqs[i]), int(minutes[i]))
        out[i] = (w, tier)
        if w >= 0:
            d.assign(w)
            if release[i] != NEVER:
                heapq.heappush(pending, (int(release[i]), w))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_kernel_equals_one_by_one_dispatch(seed):
    rng = np.random.default_rng(seed)
    layer, adjacency, workers, rules, hops = random_world(
        rng, int(rng.integers(3, 15)), int(rng.integers(3, 15)), float(rng.uniform(0.3, 2.5)), int(rng.integers(0, 3))
    )
    online = Dispatcher(layer, adjacency, workers, rules, max_hops=hops)
    batch = Dispatcher(layer, adjacency, workers, rules, max_hops=hops)
    start_loads = rng.integers(0, 3, len(online))
    online.load[:] = start_loads
    batch.load[:] = start_loads
    grid, categories, t, release = random_events(rng, layer, 3_000, float(rng.uniform(0, 1)))
    reqs = np.array([online.route_of(c, "k" if c == "c3" else None, g) for c, g in zip(categories, grid)])
    assert [batch.route_of(c, "k" if c == "c3" else None, g) for c, g in zip(categories, grid)] == reqs.tolist()

    expected = one_by_one(online, grid, reqs, t, release)
    # Three calls with small kernel chunks: pending releases carry over between calls.
    got = []
    for part in np.array_split(np.arange(len(grid)), 3):
        workers_out, tiers = batch.dispatch_batch(grid[part], reqs[part], t[part], release[part], chunk=97)
        got.append(np.column_stack([workers_out, tiers]))
    got = np.concatenate(got)
    assert (expected[:, 0] >= 0).any() and (expected[:, 0] < 0).any()
    np.testing.assert_array_equal(got, expected)
    # Loads agree too, once the releases still pending are counted.
    np.testing.assert_array_equal(batch.load, online.load)


def test_kernel_without_releases_keeps_every_unit(rng):
    layer, adjacency, workers, rules, hops = random_world(rng, 8, 8, 1.5, 1)
    d = Dispatcher(layer, adjacency, workers, rules, max_hops=hops)
    grid, categories, t, _ = random_events(rng, layer, 500, 0.0)
    reqs = np.array([d.route_of(c, None, g) for c, g in zip(categories, grid)])
    chosen, tiers = d.dispatch_batch(grid, reqs, t)
    assert d.load.sum() == (chosen >= 0).sum()
    assert np.all(d.load <= d.capacity)
    assert np.all((tiers >= 0) == (chosen >= 0))
    assert d.pending_releases == 0


def _flow_network(rng, n_left: int, n_right: int, density: float):
    edges = [(0, 1 + i, 1, 0) for i in range(n_left)]
    for i in range(n_left):
        for j in range(n_right):
            if rng.random() < density:
                edges.append((1 + i, 1 + n_left + j, 1, int(rng.integers(0, 4))))
    sink = 1 + n_left + n_right
    edges += [(1 + n_left + j, sink, int(rng.integers(0, 4)), 0) for j in range(n_right)]
    return edges, sink + 1


def _csr(edges, n_nodes):
    tails = np.array([e[0] for e in edges])
    heads = np.array([e[1] for e in edges])
    arc_tail = np.empty(2 * len(edges), np.int64)
    arc_tail[0::2], arc_tail[1::2] = tails, heads
    arc_to = np.empty_like(arc_tail)
    arc_to[0::2], arc_to[1::2] = heads, tails
    cap = np.zeros(2 * len(edges), np.int64)
    cap[0::2] = [e[2] for e in edges]
    cost = np.zeros(2 * len(edges), np.int64)
    cost[0::2] = [e[3] for e in edges]
    cost[1::2] = -cost[0::2]
    node_arcs = np.argsort(arc_tail, kind="stable").astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(arc_tail, minlength=n_nodes))]).astype(np.int64)
    return offsets, node_arcs, arc_to, cap, cost


@pytest.mark.parametrize("seed", range(6))
def test_min_cost_flow_is_optimal(seed):
    from scipy.optimize import linprog

    rng = np.random.default_rng(100 + seed)
    edges, n_nodes = _flow_network(rng, int(rng.integers(5, 40)), int(rng.integers(3, 20)), 0.25)
    offsets, node_arcs, arc_to, cap, cost = _csr(edges, n_nodes)
    source, sink = 0, n_nodes - 1
    flow, total = min_cost_flow(offsets, node_arcs, arc_to, cap.copy(), cost, source, sink, 10**9)

    # The same problem as a linear program (a network matrix: the LP optimum is integral).
    m = len(edges)
    a_eq = np.zeros((n_nodes, m))
    for k, (u, v, _, _) in enumerate(edges):
        a_eq[u, k] -= 1
        a_eq[v, k] += 1
    bounds = [(0, e[2]) for e in edges]
    inner = [v for v in range(n_nodes) if v not in (source, sink)]
    best_flow = -linprog(-a_eq[sink], A_eq=a_eq[inner], b_eq=np.zeros(len(inner)), bounds=bounds,
                         method="highs").fun
    assert flow == round(best_flow)
    a_eq2 = np.vstack([a_eq[inner], a_eq[sink]])
    b_eq2 = np.r_[np.zeros(len(inner)), flow]
    best_cost = linprog([e[3] for e in edges], A_eq=a_eq2, b_eq=b_eq2, bounds=bounds, method="highs").fun
    assert total == round(best_cost)
