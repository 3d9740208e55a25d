"""Dispatch: who handles an event (自动化事件分拨), one at a time, in batches, and by rebalancing.

**Routing.** A category (optionally narrowed by grid type or area) routes to responsible
departments and, optionally, a skill: :class:`RoutingRules`. From the taxonomy
(:meth:`RoutingRules.from_taxonomy`) each category goes to its department together with the grid
workers (网格员, the first responders of every grid), asking for the skill named by its class code.
A worker meets a route when their department is one of the route's and they have its skill.

**The online rule** (:meth:`Dispatcher.choose`): candidates come in tiers by hop distance from the
event's grid: the grid's own workers, then those of the neighbouring grids (adjacency from shared
edges, :mod:`citygrid.engine.layers.adjacency`), up to ``max_hops``. A candidate is eligible when available
(active, on duty), inside their shift at the dispatch time, meeting the route and below capacity. The
first tier with an eligible worker wins; in it the least loaded, ties to the lowest worker id. The
same input and state give the same answer.

**Batches** (:meth:`Dispatcher.dispatch_batch`) run the Numba kernel
:func:`citygrid.kernels.dispatch.dispatch_events`, which applies that rule to millions of events in
arrival order and gives exactly the answers of calling :meth:`~Dispatcher.choose` event by event
(optionally with each event's release time, when it stops counting on its worker's load: replays).

**Rebalancing** (:func:`rebalance`): for a backlog of open events, an assignment to eligible workers
within ``k`` hops that (1) assigns as many events as possible, (2) minimises the maximum worker load
(binary search on the maximum load, each step a maximum-flow feasibility check), then (3) at that
maximum load, minimises the total hop distance (own-grid workers first) and then the number of events
moved away from their current worker (a min-cost flow). Each level is exact.

A worker's *load* is the number of open events dispatched to them that they have not fed back yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from citygrid.engine.layers.adjacency import Adjacency
from citygrid.engine.errors import InvalidInput, NotFound
from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.dispatch.workers import DEFAULT_DEPARTMENT, MINUTES_PER_WEEK, Worker, minute_of_week, shift_of
from citygrid.engine.dispatch.worktime import DEFAULT_TIMEZONE
from citygrid.engine.times import local_us
from citygrid.kernels.dispatch import NEVER, dispatch_events, min_cost_flow
from citygrid.engine.hierarchy import CODE_COLUMNS

DEFAULT_MAX_HOPS = 1


# ---------------------------------------------------------------------- routing


@dataclass(frozen=True)
class Route:
    """Who may take an event: a worker of one of ``departments`` with the ``skill`` (if any)."""

    departments: frozenset[str]
    skill: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.departments, str):
            object.__setattr__(self, "departments", frozenset({self.departments}))
        else:
            object.__setattr__(self, "departments", frozenset(self.departments))
        if not self.departments:
            raise InvalidInput("a route needs at least one department")

    def admits(self, worker: Worker) -> bool:
        return worker.department in self.departments and (self.skill is None or self.skill in worker.skills)


@dataclass(frozen=True)
class RoutingRule:
    """A category (or a whole category class), optionally only in grids of a type or inside an area
    (a grid, community or street code), routes to ``route``."""

    route: Route
    category: str | None = None
    category_class: str | None = None
    grid_type: str | None = None
    area: str | None = None

    def matches(self, category: str, category_class: str | None, grid_type: str | None, chain) -> bool:
        return (
            (self.category is None or self.category == category)
            and (self.category_class is None or self.category_class == category_class)
            and (self.grid_type is None or self.grid_type == grid_type)
            and (self.area is None or self.area in chain)
        )

    @property
    def specificity(self) -> tuple[int, bool, bool, bool, bool]:
        """More conditions first; among as many, category, then area, then grid type, then class."""
        conditions = (self.category is not None, self.area is not None, self.grid_type is not None,
                      self.category_class is not None)
        return (sum(conditions), *conditions)


@dataclass(frozen=True)
class RoutingRules:
    """The most specific matching rule wins: the one with the most conditions (a class in a grid type
    beats a category alone), then category over area over grid type over class; among equally
    specific rules, the first listed. With no match the default route applies."""

    rules: tuple[RoutingRule, ...] = ()
    default: Route = Route(DEFAULT_DEPARTMENT)

    def __post_init__(self) -> None:
        by_category: dict[str, list[RoutingRule]] = {}
        for rule in self.rules:
            if rule.category is not None:
                by_category.setdefault(rule.category, []).append(rule)
        object.__setattr__(self, "_by_category", by_category)
        object.__setattr__(self, "_general", [r for r in self.rules if r.category is None])
        object.__setattr__(self, "spatial", any(r.grid_type is not None or r.area is not None for r in self.rules))

    def route(
        self,
        category: str,
        category_class: str | None = None,
        grid_type: str | None = None,
        chain: Sequence[str | None] = (),
    ) -> Route:
        best: RoutingRule | None = None
        for rule in (*self._by_category.get(category, ()), *self._general):
            if rule.matches(category, category_class, grid_type, chain):
                if best is None or rule.specificity > best.specificity:
                    best = rule
        return best.route if best is not None else self.default

    def routes(self) -> list[Route]:
        """Every route a rule can give, the default first."""
        return list(dict.fromkeys([self.default, *(r.route for r in self.rules)]))

    @classmethod
    def from_taxonomy(
        cls,
        taxonomy,
        *,
        first_responders: Sequence[str] = (DEFAULT_DEPARTMENT,),
        skill_by_class: bool = True,
        extra: Iterable[RoutingRule] = (),
    ) -> "RoutingRules":
        """One rule per taxonomy category: its responsible department, together with the
        ``first_responders`` (the grid workers, 网格员, who take any matter of their grid), and,
        with ``skill_by_class``, the skill named by the category's class code. ``extra`` rules (for
        grid types or areas) follow and win when more specific."""
        rules = [
            RoutingRule(
                Route(frozenset({c.department, *first_responders}), c.class_code if skill_by_class else None),
                category=c.code,
            )
            for c in taxonomy.categories
        ]
        return cls(tuple(rules) + tuple(extra), Route(frozenset(first_responders) or DEFAULT_DEPARTMENT))


# ---------------------------------------------------------------------- the dispatcher


@dataclass(frozen=True)
class Candidates:
    """Workers by (grid, hop tier): ``workers[offsets[g*T+h]:offsets[g*T+h+1]]`` for ``T`` tiers."""

    offsets: np.ndarray
    workers: np.ndarray
    tiers: int


class Dispatcher:
    """The dispatch state of one layer version: the roster (workers in worker-id order), who is
    eligible for what, and every worker's load. Not thread-safe: its owner serialises calls."""

    def __init__(
        self,
        layer: GridLayer,
        adjacency: Adjacency,
        workers: Iterable[Worker],
        routing: RoutingRules | None = None,
        *,
        max_hops: int = DEFAULT_MAX_HOPS,
        timezone: str = DEFAULT_TIMEZONE,
        loads: Mapping[str, int] | None = None,
    ):
        if adjacency.n_grids != layer.n_grids:
            raise InvalidInput(
                f"adjacency of {adjacency.n_grids} grids does not belong to layer {layer.version_id} "
                f"({layer.n_grids} grids)"
            )
        if max_hops < 0:
            raise InvalidInput("max_hops must be >= 0")
        self.layer = layer
        self.adjacency = adjacency
        self.routing = routing or RoutingRules()
        self.max_hops = max_hops
        self.timezone = timezone
        self.workers: list[Worker] = sorted(workers, key=lambda w: w.worker_id)
        ids = [w.worker_id for w in self.workers]
        if len(set(ids)) != len(ids):
            raise InvalidInput("worker ids must be unique")
        self.worker_ids = np.asarray(ids, dtype=object)
        self._index = {wid: i for i, wid in enumerate(ids)}
        n = len(self.workers)
        row_of = {code: row for row, code in enumerate(layer.codes.tolist())}
        self.grid_rows = np.fromiter((row_of.get(w.grid_code, -1) for w in self.workers), np.int32, n)
        self.capacity = np.fromiter((w.capacity for w in self.workers), np.int32, n)
        self.available = np.fromiter((w.available for w in self.workers), np.bool_, n)
        specs = list(dict.fromkeys(w.shift for w in self.workers)) or ["always"]
        self.shift_minutes = np.stack([shift_of(s).minutes for s in specs])
        spec_index = {s: i for i, s in enumerate(specs)}
        self.shift_of = np.fromiter((spec_index[w.shift] for w in self.workers), np.int32, n)
        self.load = np.zeros(n, dtype=np.int32)
        for wid, value in (loads or {}).items():
            if wid in self._index:
                self.load[self._index[wid]] = value
        self._routes: list[Route] = []
        self._route_index: dict[Route, int] = {}
        self.eligible = np.zeros((n, 0), dtype=np.bool_)
        for route in self.routing.routes():
            self.requirement(route)
        self._grid_workers = _grid_workers(self.grid_rows, layer.n_grids)
        self._rings = adjacency.rings(max_hops)
        self._candidates: dict[int, tuple[Candidates, np.ndarray]] = {}
        self._grid_columns: list[list] | None = None
        self._req_cache: dict = {}
        # Releases of a replay still pending after its last batch (a min-heap by time).
        self._heap_time = np.empty(0, dtype=np.int64)
        self._heap_worker = np.empty(0, dtype=np.int32)
        self._heap_size = np.zeros(1, dtype=np.int64)

    # ------------------------------------------------------------------ lookups

    def __len__(self) -> int:
        return len(self.workers)

    def position(self, worker_id: str | None) -> int:
        """The index of a worker, -1 for an unknown one (or ``None``)."""
        return self._index.get(worker_id, -1) if worker_id is not None else -1

    def index_of(self, worker_id: str) -> int:
        try:
            return self._index[worker_id]
        except KeyError:
            raise NotFound(f"no worker {worker_id!r}") from None

    def requirement(self, route: Route) -> int:
        """The column of ``eligible`` for a route (added on first use)."""
        r = self._route_index.get(route)
        if r is None:
            column = np.fromiter((route.admits(w) for w in self.workers), np.bool_, len(self.workers))
            self.eligible = np.ascontiguousarray(np.column_stack([self.eligible, column]))
            r = self._route_index[route] = len(self._routes)
            self._routes.append(route)
        return r

    def route_of(self, category: str, category_class: str | None, grid_row: int) -> int:
        """Requirement index of an event of this category in this grid (-1 when there is no grid)."""
        if grid_row < 0:
            return -1
        key = (category, grid_row) if self.routing.spatial else category
        req = self._req_cache.get(key)
        if req is None:
            grid_type, chain = self._grid_record(grid_row)
            route = self.routing.route(category, category_class, grid_type, chain)
            req = self._req_cache[key] = self.requirement(route)
        return req

    def _grid_record(self, row: int) -> tuple[str | None, tuple]:
        if self._grid_columns is None:
            names = ("grid_type", *CODE_COLUMNS)
            self._grid_columns = [self.layer.column(name).tolist() for name in names]
        grid_type, *chain = (column[row] for column in self._grid_columns)
        return grid_type, tuple(chain)

    def minutes(self, t_us) -> np.ndarray:
        """Minute of the week, in the dispatcher's time zone, of UTC microsecond times."""
        return minute_of_week(local_us(t_us, self.timezone))

    def tier_grids(self, grid_row: int, hop: int) -> np.ndarray:
        offsets, rows = self._rings
        base = grid_row * (self.max_hops + 1) + hop
        return rows[offsets[base] : offsets[base + 1]]

    # ------------------------------------------------------------------ the online rule

    def is_eligible(self, w: int, req: int, minute: int) -> bool:
        return bool(
            self.available[w]
            and self.eligible[w, req]
            and self.load[w] < self.capacity[w]
            and self.shift_minutes[self.shift_of[w], minute]
        )

    def choose(self, grid_row: int, req: int, minute: int, exclude: Iterable[int] = (),
               allowed: np.ndarray | None = None) -> tuple[int, int]:
        """The worker index and hop tier the online rule picks (``(-1, -1)``: nobody eligible).
        ``exclude`` leaves out workers (the one who returned the event); ``allowed`` (a mask over
        the workers) keeps only those (a dispatcher's jurisdiction)."""
        if grid_row < 0 or req < 0:
            return -1, -1
        excluded = set(exclude)
        for hop in range(self.max_hops + 1):
            best = -1
            for g in self.tier_grids(grid_row, hop):
                for w in self._grid_workers[g]:
                    if w in excluded or (allowed is not None and not allowed[w]):
                        continue
                    if not self.is_eligible(w, req, minute):
                        continue
                    if best < 0 or (self.load[w], w) < (self.load[best], best):
                        best = w
            if best >= 0:
                return best, hop
        return -1, -1

    def assign(self, w: int) -> None:
        self.load[w] += 1

    def release(self, w: int) -> None:
        if self.load[w] > 0:
            self.load[w] -= 1

    # ------------------------------------------------------------------ batches

    def candidates(self, max_hops: int | None = None) -> tuple[Candidates, np.ndarray]:
        """The candidate CSR for ``max_hops`` tiers, and the hop of each entry."""
        k = self.max_hops if max_hops is None else max_hops
        if k not in self._candidates:
            rings = self._rings if k == self.max_hops else self.adjacency.rings(k)
            self._candidates[k] = _candidates(rings, k + 1, self._grid_workers, self.layer.n_grids)
        return self._candidates[k]

    def dispatch_batch(
        self,
        grid_rows: np.ndarray,
        reqs: np.ndarray,
        t_us: np.ndarray,
        release_us: np.ndarray | None = None,
        *,
        chunk: int = 1 << 20,
        on_chunk=None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Dispatch events in arrival order with the batch kernel; loads change as the online rule
        would change them. ``t_us`` is each event's dispatch time (non-decreasing when
        ``release_us`` is given: a replay); ``release_us`` when each event leaves its worker's load
        (``None``: they all stay; releases not reached by the last event stay pending for the next
        batch). ``on_chunk()`` runs between chunks (deadline checks).
        Returns (worker index or -1, hop tier or -1) per event."""
        grid_rows = np.ascontiguousarray(grid_rows, dtype=np.int32)
        reqs = np.ascontiguousarray(reqs, dtype=np.int32)
        t_us = np.ascontiguousarray(np.broadcast_to(t_us, grid_rows.shape), dtype=np.int64)
        n = len(grid_rows)
        if release_us is None:
            release = np.full(n, NEVER, dtype=np.int64)
        else:
            release = np.ascontiguousarray(release_us, dtype=np.int64)
            if n > 1 and np.any(np.diff(t_us) < 0):
                raise InvalidInput("a replay with release times needs its events in time order")
        minutes = self.minutes(t_us)
        cand, _ = self.candidates()
        pending = int(self._heap_size[0])
        heap_time = np.empty(pending + n + 1, dtype=np.int64)
        heap_worker = np.empty(pending + n + 1, dtype=np.int32)
        heap_time[:pending] = self._heap_time[:pending]
        heap_worker[:pending] = self._heap_worker[:pending]
        out_worker = np.empty(n, dtype=np.int32)
        out_tier = np.empty(n, dtype=np.int8)
        for lo in range(0, n, chunk):
            hi = min(lo + chunk, n)
            dispatch_events(
                grid_rows[lo:hi], reqs[lo:hi], minutes[lo:hi], t_us[lo:hi], release[lo:hi],
                cand.offsets, cand.workers, cand.tiers,
                self.eligible, self.shift_of, self.shift_minutes, self.available, self.capacity,
                self.load, heap_time, heap_worker, self._heap_size, out_worker[lo:hi], out_tier[lo:hi],
            )
            if on_chunk is not None and hi < n:
                on_chunk()
        self._heap_time, self._heap_worker = heap_time, heap_worker
        return out_worker, out_tier

    @property
    def pending_releases(self) -> int:
        """Releases of a replay not reached yet (they happen when a later batch reaches their time)."""
        return int(self._heap_size[0])


def _grid_workers(grid_rows: np.ndarray, n_grids: int) -> list[list[int]]:
    by_grid: list[list[int]] = [[] for _ in range(n_grids)]
    for w, g in enumerate(grid_rows.tolist()):
        if g >= 0:
            by_grid[g].append(w)
    return by_grid


def _candidates(rings, tiers: int, grid_workers: list[list[int]], n_grids: int):
    ring_offsets, ring_rows = rings
    counts = np.fromiter((len(ws) for ws in grid_workers), np.int64, n_grids)
    worker_offsets = np.concatenate([[0], np.cumsum(counts)])
    flat = np.fromiter((w for ws in grid_workers for w in ws), np.int32, int(counts.sum()))
    per_ring_grid = counts[ring_rows]
    slot_of_entry = np.repeat(np.arange(n_grids * tiers), np.diff(ring_offsets))
    slot_counts = np.bincount(slot_of_entry, weights=per_ring_grid, minlength=n_grids * tiers).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(slot_counts)]).astype(np.int64)
    total = int(offsets[-1])
    starts = np.repeat(worker_offsets[ring_rows], per_ring_grid)
    within = np.arange(total) - np.repeat(np.cumsum(per_ring_grid) - per_ring_grid, per_ring_grid)
    workers = flat[starts + within] if total else np.empty(0, np.int32)
    hops = np.repeat(slot_of_entry % tiers, per_ring_grid).astype(np.int8)
    return Candidates(offsets, np.ascontiguousarray(workers, dtype=np.int32), tiers), hops


# ---------------------------------------------------------------------- rebalancing


@dataclass
class RebalancePlan:
    """The outcome of :func:`rebalance` for backlog events ``0 … n-1``."""

    workers: np.ndarray  #: chosen worker index per event (-1: no eligible worker)
    hops: np.ndarray  #: hop distance from the event's grid to the worker's (-1: unassigned)
    loads: np.ndarray  #: every worker's load after the plan (base load + assigned backlog)
    max_load: int  #: the maximum load over the workers eligible for some backlog event
    assigned: int
    moved: int  #: events whose worker changes
    feasibility_checks: int = 0
    details: dict = field(default_factory=dict)


def rebalance(
    dispatcher: Dispatcher,
    grid_rows: np.ndarray,
    reqs: np.ndarray,
    current: np.ndarray,
    base_load: np.ndarray,
    *,
    max_hops: int = DEFAULT_MAX_HOPS,
    minute: int | None = None,
    allowed: np.ndarray | None = None,
) -> RebalancePlan:
    """Assign a backlog exactly: most events assigned, then the least maximum load, then the fewest
    hops from each event's grid, then the fewest moves (see the module docstring).

    ``current`` is each event's present worker index (-1: none); ``base_load`` every worker's load
    from events outside the backlog (those being handled). Eligible workers are within ``max_hops``
    of the event's grid, available, meeting its route, inside their shift at ``minute`` (``None``:
    shifts ignored), among the ``allowed`` ones (a mask over the workers; ``None``: all), and a worker
    takes at most ``capacity - base_load`` backlog events.
    """
    grid_rows = np.asarray(grid_rows, dtype=np.int64)
    reqs = np.asarray(reqs, dtype=np.int64)
    current = np.asarray(current, dtype=np.int64)
    base_load = np.asarray(base_load, dtype=np.int64)
    n, n_workers = len(grid_rows), len(dispatcher)
    graph = backlog_pairs(dispatcher, grid_rows, reqs, current, max_hops, minute, allowed)
    ev, wk, hop, moved = graph
    eligible_workers = np.unique(wk)
    room = np.maximum(dispatcher.capacity.astype(np.int64) - base_load, 0)
    network = _FlowNetwork(n, n_workers, ev, wk)

    checks = 0
    best = network.max_flow(room)
    checks += 1
    lo, hi = 0, int(room.max()) if n_workers else 0
    while lo < hi:
        mid = (lo + hi) // 2
        caps = np.minimum(room, np.maximum(mid - base_load, 0))
        checks += 1
        if network.max_flow(caps) == best:
            hi = mid
        else:
            lo = mid + 1
    base_max = int(base_load[eligible_workers].max()) if len(eligible_workers) else 0
    level = max(lo, base_max)
    caps = np.minimum(room, np.maximum(level - base_load, 0))
    cost = hop.astype(np.int64) * (n + 1) + moved
    flow = network.min_cost_assignment(caps, cost, best)

    workers = np.full(n, -1, dtype=np.int32)
    hops = np.full(n, -1, dtype=np.int8)
    workers[ev[flow]] = wk[flow]
    hops[ev[flow]] = hop[flow]
    loads = base_load + np.bincount(workers[workers >= 0], minlength=n_workers)
    max_load = int(loads[eligible_workers].max()) if len(eligible_workers) else 0
    return RebalancePlan(
        workers=workers,
        hops=hops,
        loads=loads,
        max_load=max_load,
        assigned=int((workers >= 0).sum()),
        moved=int(((workers != current) & (workers >= 0)).sum()),
        feasibility_checks=checks,
    )


def backlog_pairs(dispatcher: Dispatcher, grid_rows, reqs, current, max_hops: int, minute, allowed=None):
    """The eligible (event, worker) pairs of a backlog, as arrays: event index, worker index, hop
    distance, and 1 where the worker is not the event's ``current`` one (what :func:`rebalance`
    optimises over; exact solvers in the benchmarks take the same pairs). ``allowed``: a mask of
    the workers that may take part (``None``: all)."""
    cand, cand_hops = dispatcher.candidates(max_hops)
    tiers = cand.tiers
    ok = (grid_rows >= 0) & (reqs >= 0)
    base = np.where(ok, grid_rows * tiers, 0)
    start = np.where(ok, cand.offsets[base], 0)
    stop = np.where(ok, cand.offsets[base + tiers], 0)
    lengths = stop - start
    ev = np.repeat(np.arange(len(grid_rows)), lengths)
    pos = np.repeat(start - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    wk = cand.workers[pos].astype(np.int64)
    hop = cand_hops[pos]
    keep = dispatcher.available[wk] & dispatcher.eligible[wk, reqs[ev]]
    if allowed is not None:
        keep &= np.asarray(allowed, dtype=np.bool_)[wk]
    if minute is not None:
        keep &= dispatcher.shift_minutes[dispatcher.shift_of[wk], int(minute) % MINUTES_PER_WEEK]
    ev, wk, hop = ev[keep], wk[keep], hop[keep]
    moved = (wk != current[ev]).astype(np.int64)
    return ev, wk, hop, moved


class _FlowNetwork:
    """source -> event (1) -> eligible worker (1) -> sink (a capacity per worker), as paired arcs in
    CSR order for :func:`min_cost_flow`. Arc ``2k`` is edge ``k``; edges are the ``n`` source arcs,
    then the event-worker pairs, then one sink arc per worker."""

    def __init__(self, n_events: int, n_workers: int, ev: np.ndarray, wk: np.ndarray):
        self.n_events, self.n_workers, self.n_pairs = n_events, n_workers, len(ev)
        source, sink = 0, n_events + n_workers + 1
        tails = np.concatenate([np.zeros(n_events, np.int64), ev + 1, n_events + 1 + np.arange(n_workers)])
        heads = np.concatenate([1 + np.arange(n_events), n_events + 1 + wk, np.full(n_workers, sink)])
        self.source, self.sink = source, sink
        arc_tail = np.empty(2 * len(tails), dtype=np.int64)
        arc_tail[0::2], arc_tail[1::2] = tails, heads
        self.arc_to = np.empty_like(arc_tail)
        self.arc_to[0::2], self.arc_to[1::2] = heads, tails
        self.node_arcs = np.argsort(arc_tail, kind="stable").astype(np.int64)
        n_nodes = sink + 1
        self.node_offsets = np.concatenate([[0], np.cumsum(np.bincount(arc_tail, minlength=n_nodes))]).astype(np.int64)
        self._zero_cost = np.zeros(len(arc_tail), dtype=np.int64)

    def _caps(self, worker_caps: np.ndarray) -> np.ndarray:
        caps = np.zeros(len(self.arc_to), dtype=np.int64)
        forward = np.concatenate([np.ones(self.n_events + self.n_pairs, np.int64), worker_caps])
        caps[0::2] = forward
        return caps

    def max_flow(self, worker_caps: np.ndarray) -> int:
        caps = self._caps(worker_caps)
        flow, _ = min_cost_flow(self.node_offsets, self.node_arcs, self.arc_to, caps, self._zero_cost,
                                self.source, self.sink, self.n_events)
        return int(flow)

    def min_cost_assignment(self, worker_caps: np.ndarray, pair_cost: np.ndarray, limit: int) -> np.ndarray:
        """A least-cost flow of ``limit`` units; returns which event-worker pairs carry flow."""
        caps = self._caps(worker_caps)
        cost = np.zeros(len(self.arc_to), dtype=np.int64)
        first = self.n_events
        cost[2 * first : 2 * (first + self.n_pairs) : 2] = pair_cost
        cost[2 * first + 1 : 2 * (first + self.n_pairs) : 2] = -pair_cost
        min_cost_flow(self.node_offsets, self.node_arcs, self.arc_to, caps, cost,
                      self.source, self.sink, limit)
        return caps[2 * first + 1 : 2 * (first + self.n_pairs) : 2] > 0


def load_summary(loads: np.ndarray, workers: np.ndarray | None = None) -> dict[str, float]:
    """Maximum and mean load over the given workers (default: all)."""
    values = loads if workers is None else loads[workers]
    if len(values) == 0:
        return {"max": 0.0, "mean": 0.0}
    return {"max": float(values.max()), "mean": float(values.mean())}
