"""Rebalancing a backlog of open events over the workers of a :class:`~citygrid.engine.dispatch.dispatcher.Dispatcher`.

For a backlog of open events, an assignment to eligible workers
within ``k`` hops that (1) assigns as many events as possible, (2) minimises the maximum worker load
(binary search on the maximum load, each step a maximum-flow feasibility check), then (3) at that
maximum load, minimises the total hop distance (own-grid workers first) and then the number of events
moved away from their current worker (a min-cost flow). Each level is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from citygrid.engine.dispatch.workers import MINUTES_PER_WEEK
from citygrid.kernels.dispatch import min_cost_flow

from citygrid.engine.dispatch.dispatcher import DEFAULT_MAX_HOPS, Dispatcher


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
