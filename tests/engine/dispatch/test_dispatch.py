"""Dispatch: routing, the online rule's tiers and tie-breaks, and exact rebalancing."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from citygrid.engine.layers.adjacency import adjacency_of, compute_adjacency
from citygrid.engine.dispatch.dispatcher import Dispatcher
from citygrid.engine.dispatch.rebalance import rebalance
from citygrid.engine.dispatch.routing import Route, RoutingRule, RoutingRules
from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.cases.taxonomy import load_taxonomy
from citygrid.engine.dispatch.workers import Worker, read_workers

MONDAY_10H = 1_773_021_600_000_000  # 2026-03-09T02:00Z = Monday 10:00 in Shanghai


def strip_layer(n: int = 5) -> GridLayer:
    """Grids A, B, C, … in a row: each touches the next along an edge."""
    codes = [chr(ord("A") + i) for i in range(n)]
    return GridLayer.from_geometries([shapely.box(i, 0, i + 1, 1) for i in range(n)], {"grid_code": codes})


def dispatcher(workers, layer=None, rules=None, hops=1):
    layer = layer or strip_layer()
    return Dispatcher(layer, compute_adjacency(layer), workers, rules, max_hops=hops)


def pick(d: Dispatcher, grid: str, category: str = "x", at: int = MONDAY_10H):
    row = d.layer.row_of(grid)
    w, tier = d.choose(row, d.route_of(category, None, row), int(d.minutes(np.int64(at))[0]))
    return (None if w < 0 else d.worker_ids[w]), tier


def w(worker_id, grid, **kw):
    kw.setdefault("shift", "always")
    return Worker(worker_id, grid, **kw)


# ---------------------------------------------------------------------- routing


def test_routing_prefers_the_most_specific_rule():
    rules = RoutingRules(
        (
            RoutingRule(Route("城管"), category_class="05"),
            RoutingRule(Route("交警"), category="0505"),
            RoutingRule(Route("城管执法中队"), category="0505", area="440307003"),
            RoutingRule(Route("学校安保"), grid_type="school"),
        ),
        default=Route("网格员"),
    )
    assert rules.route("0501", "05").departments == {"城管"}
    assert rules.route("0505", "05").departments == {"交警"}
    assert rules.route("0505", "05", chain=("g", "c", "440307003", "440307")).departments == {"城管执法中队"}
    assert rules.route("0901", "09", grid_type="school").departments == {"学校安保"}
    assert rules.route("0901", "09").departments == {"网格员"}
    # One condition each: the category beats the grid type; two conditions beat one.
    assert rules.route("0505", "05", grid_type="school").departments == {"交警"}
    more = RoutingRules((*rules.rules, RoutingRule(Route("校园警务"), category_class="05", grid_type="school")))
    assert more.route("0505", "05", grid_type="school").departments == {"校园警务"}


def test_taxonomy_routes_to_the_department_and_the_grid_workers():
    taxonomy = load_taxonomy()
    rules = RoutingRules.from_taxonomy(taxonomy)
    route = rules.route("0404", "04")  # 火情 -> 消防
    assert route.departments == {"消防", "网格员"} and route.skill == "04"
    assert route.admits(Worker("a", "G", department="消防", skills=frozenset({"04"})))
    assert not route.admits(Worker("b", "G", department="消防", skills=frozenset({"08"})))
    assert not route.admits(Worker("c", "G", department="城管", skills=frozenset({"04"})))


# ---------------------------------------------------------------------- the online rule


def test_own_grid_first_even_when_a_neighbour_is_idler():
    d = dispatcher([w("own", "B"), w("next", "C")])
    d.load[d.index_of("own")] = 5
    assert pick(d, "B") == ("own", 0)


def test_least_loaded_then_lowest_id_within_a_tier():
    d = dispatcher([w("b2", "B"), w("b1", "B"), w("b3", "B")])
    assert pick(d, "B") == ("b1", 0)
    d.assign(d.index_of("b1"))
    assert pick(d, "B") == ("b2", 0)
    d.load[d.index_of("b3")] = -1  # an idler worker wins over ids
    assert pick(d, "B") == ("b3", 0)


def test_neighbours_when_the_own_grid_cannot_take_it():
    workers = [
        w("full", "B", capacity=1),
        w("off", "B", on_duty=False),
        w("nights", "B", shift="night"),
        w("unskilled", "B", skills=frozenset()),
        w("left", "A", skills=frozenset({"05"})),
        w("right", "C", skills=frozenset({"05"})),
        w("far", "E", skills=frozenset({"05"})),
    ]
    rules = RoutingRules((RoutingRule(Route("网格员", "05"), category="x"),))
    d = dispatcher(workers, rules=rules)
    d.assign(d.index_of("full"))
    d.load[d.index_of("left")] = 1
    assert pick(d, "B") == ("right", 1)
    d.assign(d.index_of("right"))
    d.assign(d.index_of("right"))
    assert pick(d, "B") == ("left", 1)
    # Two hops are not looked at with max_hops=1 …
    d.available[[d.index_of("left"), d.index_of("right")]] = False
    assert pick(d, "B") == (None, -1)
    # … but are with max_hops=3.
    d3 = dispatcher(workers, rules=rules, hops=3)
    d3.available[[d3.index_of("left"), d3.index_of("right")]] = False
    assert pick(d3, "B") == ("far", 3)


def test_shift_is_checked_at_the_dispatch_time():
    d = dispatcher([w("office", "B", shift="office"), w("late", "C", shift="late")])
    assert pick(d, "B", at=MONDAY_10H) == ("office", 0)
    evening = MONDAY_10H + 9 * 3_600_000_000  # 19:00
    assert pick(d, "B", at=evening) == ("late", 1)
    saturday = MONDAY_10H + 5 * 86_400_000_000
    assert pick(d, "B", at=saturday) == (None, -1)


def demo_dispatcher(demo_dir, demo_layer, hops=1):
    taxonomy = load_taxonomy()
    workers = read_workers(demo_dir / "workers.parquet")
    return Dispatcher(demo_layer, adjacency_of(demo_layer), workers, RoutingRules.from_taxonomy(taxonomy), max_hops=hops)


def demo_events(demo_dir, demo_layer, d: Dispatcher, n: int):
    import pyarrow.parquet as pq

    classes = {c.code: c.class_code for c in load_taxonomy().categories}
    events = pq.read_table(demo_dir / "events.parquet", columns=["category_code", "grid_code"]).slice(0, n)
    rows = np.array([demo_layer.row_of(g) for g in events.column("grid_code").to_pylist()])
    cats = events.column("category_code").to_pylist()
    return rows, np.array([d.route_of(c, classes[c], int(r)) for c, r in zip(cats, rows)])


def test_same_input_same_answer(demo_dir, demo_layer):
    a = demo_dispatcher(demo_dir, demo_layer)
    b = demo_dispatcher(demo_dir, demo_layer)
    rows, reqs = demo_events(demo_dir, demo_layer, a, 3_000)
    first = a.dispatch_batch(rows, reqs, MONDAY_10H)
    second = b.dispatch_batch(rows, reqs, MONDAY_10H)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(a.load, b.load)


@pytest.mark.parametrize("hops, served, own", [(1, 0.85, 0.45), (2, 0.98, 0.45)])
def test_demo_events_are_served_near_their_grid(demo_dir, demo_layer, hops, served, own):
    """800 demo events dispatched on a working Monday morning: most served (the rest wait for a
    worker), many by their own grid's workers, nobody above capacity. The demo's grid workers
    know three to six of the ten classes, so some matters go to a neighbour's or a department's
    officer."""
    d = demo_dispatcher(demo_dir, demo_layer, hops)
    rows, reqs = demo_events(demo_dir, demo_layer, d, 800)
    chosen, tiers = d.dispatch_batch(rows, reqs, MONDAY_10H)
    assert (chosen >= 0).mean() > served
    assert (tiers == 0).mean() > own
    assert np.all(d.load <= d.capacity)
    assert np.all(d.grid_rows[chosen[tiers == 0]] == rows[tiers == 0])


# ---------------------------------------------------------------------- rebalancing


def box_pairs(d: Dispatcher, rows, reqs, hops: int, side: int):
    """(event, worker) pairs that may be assigned, worked out without the engine's graph: a worker
    available and meeting the event's route whose box is within ``hops`` rook moves of the event's
    (boxes of a ``side`` x ``side`` lattice meet along edges exactly when they are one rook move apart)."""
    wi, wj = d.grid_rows % side, d.grid_rows // side
    ev, wk = [], []
    for k, (row, req) in enumerate(zip(rows.tolist(), reqs.tolist())):
        near = np.abs(wi - row % side) + np.abs(wj - row // side) <= hops
        for x in np.flatnonzero(near & d.available & d.eligible[:, req]).tolist():
            ev.append(k)
            wk.append(x)
    return np.array(ev, dtype=np.int64), np.array(wk, dtype=np.int64)


def most_assignable(d: Dispatcher, ev, wk, n: int, base) -> int:
    """The largest number of backlog events that can be assigned: a maximum flow source -> events
    (1 each) -> workers (pairs) -> sink (each worker's room, capacity - base load), scipy's csgraph."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow

    m = len(d)
    source, sink = n + m, n + m + 1
    room = np.maximum(d.capacity.astype(np.int64) - base, 0)
    tails = np.r_[np.full(n, source), ev, n + np.arange(m)]
    heads = np.r_[np.arange(n), n + wk, np.full(m, sink)]
    caps = np.r_[np.ones(n), np.ones(len(ev)), room].astype(np.int32)
    graph = csr_matrix((caps, (tails, heads)), shape=(n + m + 2, n + m + 2))
    graph.sum_duplicates()
    return int(maximum_flow(graph, source, sink).flow_value)


def milp_min_max_load(d: Dispatcher, ev, wk, n: int, base, assigned: int):
    """The least maximum load of an assignment of ``assigned`` backlog events over the pairs
    ``ev``, ``wk`` (HiGHS MILP)."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    m, p = len(d), len(ev)
    eligible = np.unique(wk)
    one_each = LinearConstraint(coo_matrix((np.ones(p), (ev, np.arange(p))), shape=(n, p + 1)), 0, 1)
    total = LinearConstraint(np.r_[np.ones(p), 0][None, :], assigned, assigned)
    per_worker = coo_matrix((np.ones(p), (wk, np.arange(p))), shape=(m, p + 1)).tolil()
    cap = LinearConstraint(per_worker.tocsr(), -np.inf, (d.capacity - base).astype(float))
    per_worker[:, p] = -1
    level = LinearConstraint(per_worker.tocsr()[eligible], -np.inf, -base[eligible].astype(float))
    c = np.r_[np.zeros(p), 1.0]
    res = milp(c, constraints=[one_each, total, cap, level], integrality=np.ones(p + 1),
               bounds=Bounds(np.zeros(p + 1), np.r_[np.ones(p), np.inf]))
    assert res.success
    return round(res.fun)


def random_backlog(seed: int, side: int = 6, n: int = 150):
    rng = np.random.default_rng(seed)
    layer = GridLayer.from_geometries(
        [shapely.box(i, j, i + 1, j + 1) for j in range(side) for i in range(side)],
        {"grid_code": [f"G{k:02d}" for k in range(side * side)]},
    )
    workers = [
        w(f"w{k:03d}", f"G{rng.integers(side * side):02d}", capacity=int(rng.integers(2, 12)),
          skills=frozenset(rng.choice(["a", "b"], rng.integers(1, 3), replace=False).tolist()))
        for k in range(30)
    ]
    rules = RoutingRules((RoutingRule(Route("网格员", "a"), category="A"), RoutingRule(Route("网格员", "b"), category="B")))
    hops = int(rng.integers(1, 3))
    d = dispatcher(workers, layer=layer, rules=rules, hops=hops)
    rows = rng.integers(0, side * side, n)
    hot = rng.random(n) < 0.5
    rows[hot] = rng.integers(0, 4, hot.sum())  # a hot spot
    reqs = np.array([d.route_of(c, None, int(r)) for c, r in zip(rng.choice(["A", "B"], n), rows)])
    base = rng.integers(0, 3, len(d))
    return d, rows, reqs, base, hops, side, rng


@pytest.mark.parametrize("seed", range(5))
def test_rebalance_reaches_the_exact_minimum_of_the_maximum_load(seed):
    """As many events as a maximum flow over independently worked-out pairs can assign, at the least
    maximum load a MILP finds for that many: both computed here, not taken from the plan."""
    d, rows, reqs, base, hops, side, rng = random_backlog(seed)
    n = len(rows)
    current = np.where(rng.random(n) < 0.3, rng.integers(0, len(d), n), -1)  # some events sit somewhere now
    plan = rebalance(d, rows, reqs, current, base, max_hops=hops)
    ev, wk = box_pairs(d, rows, reqs, hops, side)
    most = most_assignable(d, ev, wk, n, base)
    assert 0 < most < n  # the instance is neither trivial nor unconstrained
    assert plan.assigned == most == int((plan.workers >= 0).sum())
    assert plan.max_load == milp_min_max_load(d, ev, wk, n, base, most)
    assert np.all(plan.loads <= np.maximum(d.capacity, base))
    np.testing.assert_array_equal(plan.loads, base + np.bincount(plan.workers[plan.workers >= 0], minlength=len(d)))
    # Every assignment is to an eligible worker within the hop limit.
    pairs = set(zip(ev.tolist(), wk.tolist()))
    assert all((k, int(plan.workers[k])) in pairs for k in np.flatnonzero(plan.workers >= 0))


def test_rebalance_prefers_the_own_grid_and_keeps_current_workers():
    d = dispatcher([w("a1", "A", capacity=10), w("a2", "A", capacity=10), w("b1", "B", capacity=10)])
    rows = np.array([0, 0, 0, 0, 1, 1])
    reqs = np.zeros(6, dtype=np.int64)
    current = np.array([2, 2, 0, 1, 2, 2])  # two of A's events sit with B's worker
    plan = rebalance(d, rows, reqs, current, np.zeros(3, dtype=np.int64), max_hops=1)
    assert plan.max_load == 2
    assert (plan.hops == 0).all()  # at equal maximum load, everybody is served in their own grid
    assert plan.moved == 2 and plan.workers[2] == 0 and plan.workers[3] == 1


def test_rebalance_leaves_unreachable_events_unassigned():
    d = dispatcher([w("a1", "A", capacity=1)])
    plan = rebalance(d, np.array([0, 0, 4]), np.zeros(3, dtype=np.int64), np.full(3, -1), np.zeros(1, dtype=np.int64))
    assert plan.assigned == 1 and plan.max_load == 1 and plan.workers[2] == -1
