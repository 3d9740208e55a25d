"""Dispatch: who handles an event (自动化事件分拨), one at a time, in batches, and by rebalancing.

**Routing** (who may take a category where) is :mod:`citygrid.engine.dispatch.routing`.

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

**Rebalancing** a backlog is :mod:`citygrid.engine.dispatch.rebalance`.

A worker's *load* is the number of open events dispatched to them that they have not fed back yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from citygrid.engine.layers.adjacency import Adjacency
from citygrid.engine.errors import InvalidInput, NotFound
from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.dispatch.workers import Worker, minute_of_week, shift_of
from citygrid.engine.dispatch.worktime import DEFAULT_TIMEZONE
from citygrid.engine.times import local_us
from citygrid.kernels.dispatch import NEVER, dispatch_events
from citygrid.engine.hierarchy import CODE_COLUMNS

from citygrid.engine.dispatch.routing import Route, RoutingRules

DEFAULT_MAX_HOPS = 1


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
