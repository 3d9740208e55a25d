"""Rebalancing of :class:`~citygrid.engine.cases.intake.Intake`: the backlog inside a jurisdiction
re-assigned at the least maximum load (the algorithm is :mod:`citygrid.engine.dispatch.rebalance`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from citygrid.engine.dispatch.dispatcher import Dispatcher
from citygrid.engine.dispatch.rebalance import rebalance
from citygrid.engine.errors import InvalidInput
from citygrid.engine.cases.model import Event
from citygrid.engine.cases.lifecycle import (
    State,
)
from citygrid.engine.access.principals import Principal, Role


@dataclass(frozen=True)
class RebalanceReport:
    """What :meth:`Intake.rebalance` found (and did, when ``applied``)."""

    events: int
    assigned: int
    moved: int
    before: dict
    after: dict
    moves: list[tuple[str, str | None, str]]
    applied: bool

def _summary(loads: np.ndarray, workers: np.ndarray, assigned: np.ndarray, rows: np.ndarray, d: Dispatcher) -> dict:
    """Max and mean load over ``workers`` and the share of assigned events outside their own grid."""
    ok = assigned >= 0
    outside = float((d.grid_rows[assigned[ok]] != rows[ok]).mean()) if ok.any() else 0.0
    values = loads[workers] if len(workers) else np.zeros(0)
    return {
        "max_load": int(values.max()) if len(values) else 0,
        "mean_load": float(values.mean()) if len(values) else 0.0,
        "assigned": int(ok.sum()),
        "outside_share": outside,
    }


class Rebalancing:
    """Rebalancing (a part of :class:`~citygrid.engine.cases.intake.Intake`, over its state)."""

    def rebalance(self, principal: Principal, *, max_hops: int | None = None, apply: bool = True,
                  respect_shifts: bool = False) -> RebalanceReport:
        """``Rebalance``: re-assign the backlog (events waiting for a worker, and dispatched ones not
        yet started) inside the caller's jurisdiction to the workers serving inside it, at the least
        maximum worker load (exact), then own-grid workers first, then the fewest moves. A backlog
        event that no such worker can take keeps its worker."""
        principal.require_role(Role.DISPATCHER, Role.SUPERVISOR, action="rebalance the backlog")
        hops = self.config.max_hops if max_hops is None else max_hops
        if hops < 0:
            raise InvalidInput("max_hops must be >= 0")
        with self._writer:
            d = self.dispatcher
            backlog: list[Event] = []
            for state in (State.REGISTERED, State.DISPATCHED):
                after = 0
                while True:
                    page = self.store.in_states([state], after=after)
                    if not page:
                        break
                    after = page[-1].seq
                    backlog += [e for e in page if e.grid_code is not None and principal.covers(e.chain)]
            backlog.sort(key=lambda e: e.seq)
            n = len(backlog)
            rows = np.array([self._row_by_code.get(e.grid_code, -1) for e in backlog], dtype=np.int64)
            reqs = np.array(
                [d.route_of(e.category_code, self._categories[e.category_code].class_code, int(r))
                 for e, r in zip(backlog, rows)], dtype=np.int64,
            )
            current = np.array([d.position(e.worker_id) for e in backlog], dtype=np.int64)
            base = d.load.astype(np.int64).copy()
            np.subtract.at(base, current[current >= 0], 1)
            minute = int(d.minutes(np.int64(self._now_us()))[0]) if respect_shifts else None
            plan = rebalance(d, rows, reqs, current, base, max_hops=hops, minute=minute,
                             allowed=self._workers_inside(principal))
            before_loads = d.load.astype(np.int64)
            touched = np.unique(np.concatenate([current[current >= 0], plan.workers[plan.workers >= 0]]))
            before = _summary(before_loads, touched, current, rows, d)
            after_summary = _summary(plan.loads, touched, plan.workers.astype(np.int64), rows, d)
            moves = [
                (backlog[k].event_id, backlog[k].worker_id, d.worker_ids[plan.workers[k]])
                for k in range(n) if plan.workers[k] >= 0 and plan.workers[k] != current[k]
            ]
            if apply and moves:
                with self._writing():
                    now_us = self._now_us()
                    who = (principal.name, principal.role.value)
                    changes, audit = [], []
                    for k in range(n):
                        w = int(plan.workers[k])
                        if w >= 0 and w != current[k]:
                            c, a = self._dispatch_to(backlog[k], str(d.worker_ids[w]), who, now_us, "", "rebalance")
                            changes += c
                            audit += a
                    self._update(changes, audit)
        return RebalanceReport(n, plan.assigned, len(moves), before, after_summary, moves, apply)
