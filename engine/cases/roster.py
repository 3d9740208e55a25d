"""The worker operations of :class:`~citygrid.engine.cases.intake.Intake`: add or replace workers, duty,
reading workers and their loads, and which workers a caller may dispatch to.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from citygrid.engine.errors import InvalidInput
from citygrid.engine.cases.model import MAX_PAGE
from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.dispatch.workers import Worker, with_duty


def _page_size(size: int) -> int:
    if not 0 < size <= MAX_PAGE:
        raise InvalidInput(f"page size must be 1-{MAX_PAGE}")
    return size


class WorkerOperations:
    """Worker operations of the intake (a part of :class:`~citygrid.engine.cases.intake.Intake`, over its state)."""

    def put_workers(self, workers: Sequence[Worker], principal: Principal) -> int:
        """Add or replace workers. One who is no longer available loses their open work to others.
        Every worker's grid, and the present grid of one replaced, must lie inside the caller's
        jurisdiction (a supervisor cannot take over another street's worker)."""
        principal.require_role(Role.SUPERVISOR, action="manage workers")
        with self._writer:
            before = {w.worker_id: w for w in self.dispatcher.workers}
            for w in workers:
                principal.require_covers(self._chain_of_code(w.grid_code), what=f"worker {w.worker_id}'s grid")
                old = before.get(w.worker_id)
                if old is not None:
                    principal.require_covers(self._chain_of_code(old.grid_code),
                                             what=f"worker {w.worker_id} (now of grid {old.grid_code})")
            previous = self.dispatcher
            try:
                with self._writing():
                    now_us = self._now_us()
                    self.store.workers.upsert(workers, now_us)
                    roster = self.store.workers.all()
                    self._rebuild_dispatcher(roster, self._loads_by_id())
                    now = {w.worker_id: w for w in roster}
                    for w in workers:
                        old = before.get(w.worker_id)
                        if not now[w.worker_id].available and old is not None and old.available:
                            self._redispatch_from(w.worker_id, now_us, f"{w.worker_id} is no longer available")
                    self._dispatch_waiting(now_us)
            except BaseException:
                self.dispatcher = previous
                raise
        return len(workers)

    def set_duty(self, worker_id: str, on_duty: bool, principal: Principal) -> Worker:
        """A worker goes on or off duty; going off re-dispatches their open work."""
        if not (principal.role is Role.WORKER and principal.worker_id == worker_id):
            principal.require_role(Role.DISPATCHER, Role.SUPERVISOR, action="change another worker's duty")
        with self._writer:
            worker = self.store.workers.get(worker_id)
            if principal.role is not Role.WORKER:
                principal.require_covers(self._chain_of_code(worker.grid_code), what=f"worker {worker_id}'s grid")
            updated = with_duty(worker, on_duty)
            w = self.dispatcher.index_of(worker_id)
            was = bool(self.dispatcher.available[w])
            try:
                with self._writing():
                    now_us = self._now_us()
                    self.store.workers.set_duty(worker_id, on_duty, now_us, f"{principal.name} ({principal.role.value})")
                    self.dispatcher.available[w] = updated.available
                    if was and not updated.available:
                        self._redispatch_from(worker_id, now_us, f"{worker_id} went off duty")
                    elif updated.available and not was:
                        self._dispatch_waiting(now_us)
            except BaseException:
                self.dispatcher.available[w] = was
                raise
            self.dispatcher.workers[w] = updated
        return updated

    def get_worker(self, worker_id: str, principal: Principal) -> Worker:
        worker = self.store.workers.get(worker_id)
        if not (principal.role is Role.WORKER and principal.worker_id == worker_id):
            principal.require_covers(self._chain_of_code(worker.grid_code), what=f"worker {worker_id}")
        return worker

    def list_workers(self, principal: Principal, *, page_size: int = 100, page_token: str = "",
                     grid_codes: Sequence[str] | None = None) -> tuple[list[Worker], str]:
        """Workers in id order inside the caller's jurisdiction; returns (workers, next page token)."""
        page_size = _page_size(page_size)
        out: list[Worker] = []
        after = page_token
        while len(out) < page_size:
            batch = self.store.workers.list(grid_codes=grid_codes, after=after, limit=page_size)
            if not batch:
                after = ""
                break
            for w in batch:
                after = w.worker_id
                if principal.covers(self._chain_of_code(w.grid_code)):
                    out.append(w)
                    if len(out) == page_size:
                        break
            if len(batch) < page_size and len(out) < page_size:
                after = ""
                break
        return out, after

    def worker_load(self, worker_id: str) -> int:
        return int(self.dispatcher.load[self.dispatcher.index_of(worker_id)])

    def worker_chain(self, worker_id: str) -> tuple:
        """The parent chain of a worker's grid (for jurisdiction checks); :class:`NotFound` for an
        unknown worker."""
        return self._chain_of_code(self.store.workers.get(worker_id).grid_code)

    def _workers_inside(self, principal: Principal) -> np.ndarray | None:
        """Per worker of the dispatcher, whether their grid lies inside ``principal``'s jurisdiction
        (``None``: everywhere): the workers a dispatcher may dispatch to."""
        if principal.everywhere:
            return None
        d = self.dispatcher
        return np.fromiter((principal.covers(self._chain_of_code(w.grid_code)) for w in d.workers), np.bool_, len(d))
