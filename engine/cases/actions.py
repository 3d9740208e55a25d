"""The lifecycle family of :class:`~citygrid.engine.cases.intake.Intake`: one action (``act``) and the
machinery every family uses to change an event inside a transaction (pick a worker by the online rule,
dispatch, move the load, undo it when the commit fails, re-dispatch a worker's work, dispatch what waits).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime

import numpy as np

from citygrid.engine.errors import InvalidInput, PreconditionFailed
from citygrid.engine.cases.model import Event
from citygrid.engine.cases.store import AuditRow, EventChange
from citygrid.engine.cases.lifecycle import (
    LOADED_STATES, Action, State, authorize, restarts_clock,
    stage_of,
)
from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.times import from_us, to_us


#: Who the audit trail names for what the intake does by itself.
SYSTEM = ("citygrid", "system")

def _us(t: datetime | None) -> int | None:
    return None if t is None else int(to_us(t))

def _with(event: Event, **values) -> Event:
    """A copy of an event with some fields changed (``deadline_us`` / ``stage_started_us`` in µs)."""
    for name in ("deadline", "stage_started"):
        key = f"{name}_us"
        if key in values:
            v = values.pop(key)
            values[name] = None if v is None else from_us(v)
    return replace(event, **values)

def _parse_action(action: Action | str) -> Action:
    if isinstance(action, Action):
        return action
    try:
        return Action(action)
    except ValueError:
        raise InvalidInput(f"unknown action {action!r}; actions are {', '.join(a.value for a in Action)}") from None


class LifecycleActions:
    """Lifecycle actions of the intake (a part of :class:`~citygrid.engine.cases.intake.Intake`, over its state)."""

    def act(self, event_id: str, action: Action | str, principal: Principal, *, note: str = "",
            worker_id: str | None = None, minutes: float | None = None) -> Event:
        """``UpdateStatus``: take one lifecycle action. ``worker_id`` names the worker of a manual
        dispatch (otherwise the online rule picks another worker than the present one); ``minutes``
        the working minutes an extension (延期) adds to the deadline."""
        action = _parse_action(action)
        with self._writer:
            event = self.store.get(event_id)
            if not (principal.role is Role.WORKER and principal.worker_id == event.worker_id):
                principal.require_covers(event.chain, what=f"event {event_id}")
            target = authorize(action, event.state, principal, event.worker_id)
            with self._writing():
                now_us = self._now_us()
                changes, audit = self._apply(event, action, target, principal, now_us, note, worker_id, minutes)
                self._update(changes, audit)
            if not changes[-1].state.is_open:
                self._dedup.remove(event_id)
        return self.store.get(event_id)

    def _apply(self, event: Event, action: Action, target: State, principal: Principal, now_us: int, note: str,
               worker_id: str | None, minutes: float | None):
        """The changes and audit rows of one action (loads adjusted as a side effect). A worker the
        caller dispatches to (named, or picked by the online rule for them) serves inside the caller's
        jurisdiction; what the intake then does by itself follows the online rule."""
        who = (principal.name, principal.role.value)
        if action is Action.EXTEND:
            if minutes is None or not minutes > 0:
                raise InvalidInput("an extension (延期) needs the working minutes it adds, > 0")
            start = _us(event.deadline) or now_us
            deadline = int(self.config.schedule.add_working_us(np.int64(start), minutes))
            change = self._change(event, event.state, event.worker_id, now_us)
            change.deadline_us = deadline
            change.escalation = 0 if deadline > now_us else event.escalation
            text = f"deadline extended by {minutes:g} working minutes" + (f": {note}" if note else "")
            return [change], [AuditRow(event.seq, now_us, *who, action.value, event.state, event.state, text)]
        if action is Action.REGISTER and event.grid_code is None:
            raise PreconditionFailed(
                f"event {event.event_id} is not placed in any grid; relocate it before registering it"
            )
        if action is Action.DISPATCH:
            if worker_id is None:
                worker_id = self._pick(event, now_us, exclude=[event.worker_id], inside=self._workers_inside(principal))
                if worker_id is None:
                    raise PreconditionFailed(
                        f"no other eligible worker for event {event.event_id} now (grid {event.grid_code} and "
                        "its neighbours: on duty, in shift, skilled, below capacity"
                        + ("" if principal.everywhere else f", inside the jurisdiction of {principal.name}")
                        + "); name a worker or wait"
                    )
            else:
                w = self.dispatcher.position(worker_id)
                if w >= 0:
                    principal.require_covers(self._chain_of_code(self.dispatcher.workers[w].grid_code),
                                             what=f"worker {worker_id}")
                if not self._available(worker_id):
                    raise PreconditionFailed(f"worker {worker_id} is not available (off duty, inactive or unknown)")
            return self._dispatch_to(event, worker_id, who, now_us, note, "dispatch")
        if action is Action.REWORK:
            w = (event.worker_id if event.worker_id and self._available(event.worker_id)
                 else self._pick(event, now_us, inside=self._workers_inside(principal)))
            if w is not None:
                return self._dispatch_to(event, w, who, now_us, note, "rework")
            target = State.REGISTERED  # nobody can take the rework now: back to the dispatcher
        keeps_worker = target in (State.HANDLING, State.FED_BACK, State.VERIFIED, State.CLOSED)
        worker = event.worker_id if keeps_worker else None
        revoked = event.worker_id if event.state in LOADED_STATES and worker is None else None
        change = self._change(event, target, worker, now_us)
        audit = [AuditRow(event.seq, now_us, *who, action.value, event.state, target, note, revoked=revoked)]
        if target is State.REGISTERED and event.grid_code is not None:
            waiting = _with(event, state=target, worker_id=None, deadline_us=change.deadline_us,
                            stage_started_us=change.stage_started_us)
            returned_by = [event.worker_id] if action is Action.RETURN else []
            w = self._pick(waiting, now_us, exclude=returned_by)
            if w is not None:
                more, more_audit = self._dispatch_to(waiting, w, SYSTEM, now_us, "", "dispatch")
                return more, audit + more_audit
        return [change], audit

    def _pick(self, event: Event, now_us: int, exclude: Sequence[str | None] = (),
              inside: np.ndarray | None = None) -> str | None:
        """The worker the online rule gives ``event`` at ``now_us`` (its present worker competes
        without the load of this event), or ``None``; ``inside`` limits it to those workers."""
        d = self.dispatcher
        row = self._row_by_code.get(event.grid_code, -1)
        category = self._categories[event.category_code]
        req = d.route_of(category.code, category.class_code, row)
        minute = int(d.minutes(np.int64(now_us))[0])
        current = d.position(event.worker_id) if event.state in LOADED_STATES else -1
        if current >= 0:
            d.release(current)
        try:
            w, _ = d.choose(row, req, minute, exclude=[d.position(x) for x in exclude if x is not None],
                            allowed=inside)
        finally:
            if current >= 0:
                d.assign(current)
        return None if w < 0 else str(d.worker_ids[w])

    def _dispatch_to(self, event: Event, worker_id: str, who, now_us: int, note: str, action: str):
        revoked = event.worker_id if event.state in LOADED_STATES and event.worker_id != worker_id else None
        change = self._change(event, State.DISPATCHED, worker_id, now_us)
        audit = [AuditRow(event.seq, now_us, *who, action, event.state, State.DISPATCHED, note,
                          notify=worker_id, revoked=revoked)]
        return [change], audit

    def _change(self, event: Event, target: State, worker_id: str | None, now_us: int) -> EventChange:
        """The lifecycle columns of ``event`` entering ``target`` with ``worker_id``; moves the load."""
        d = self.dispatcher
        if event.state in LOADED_STATES and event.worker_id is not None:
            self._hold(event.worker_id, event.seq, False)
            if d.position(event.worker_id) >= 0:
                d.release(d.position(event.worker_id))
        if target in LOADED_STATES and worker_id is not None:
            self._hold(worker_id, event.seq, True)
            if d.position(worker_id) >= 0:
                d.assign(d.position(worker_id))
        if restarts_clock(event.state, target):
            started = now_us
            deadline = self._deadlines([event.category_code], [target], now_us)[0]
            escalation = 0
        elif stage_of(target) is None:
            started = deadline = None
            escalation = 0
        else:
            started, deadline, escalation = _us(event.stage_started), _us(event.deadline), event.escalation
        return EventChange(event.seq, target, worker_id, started, deadline, escalation, now_us, event.duplicate_of)

    def _available(self, worker_id: str) -> bool:
        w = self.dispatcher.position(worker_id)
        return w >= 0 and bool(self.dispatcher.available[w])

    def _hold(self, worker_id: str, seq: int, holds: bool) -> None:
        """Record that ``worker_id`` now holds (or no longer holds) event ``seq``."""
        seqs = self._assigned.setdefault(worker_id, set())
        if holds:
            seqs.add(seq)
        else:
            seqs.discard(seq)
        self._touched.add(worker_id)
        if self._undo is not None:
            self._undo.append((worker_id, seq, holds))

    @contextmanager
    def _writing(self):
        """A store transaction. Its failure undoes the load and assignment changes made inside it;
        its success wakes the feeds of the workers it touched."""
        d = self.dispatcher
        before = d.load.copy()
        self._undo, self._touched = [], set()
        try:
            with self.store.transaction():
                yield
        except BaseException:
            d.load[:] = before
            for worker_id, seq, holds in reversed(self._undo):
                seqs = self._assigned.setdefault(worker_id, set())
                if holds:
                    seqs.discard(seq)
                else:
                    seqs.add(seq)
            raise
        finally:
            self._undo = None
        self._wake(self._touched)

    def _update(self, changes, audit) -> None:
        """Store lifecycle changes; the workers their audit rows notify get woken after the commit."""
        self.store.update_events(changes, audit)
        for row in audit:
            self._touched.update(w for w in (row.notify, row.revoked) if w is not None)

    def _redispatch_from(self, worker_id: str, now_us: int, why: str) -> int:
        """Inside a transaction: move a worker's dispatched and in-hand events to others (back to
        the dispatcher when nobody is eligible)."""
        events = self.store.get_seqs(sorted(self._assigned.get(worker_id, ())))
        changes, audit = [], []
        for event in events:
            w = self._pick(event, now_us, exclude=[worker_id])
            if w is not None:
                c, a = self._dispatch_to(event, w, SYSTEM, now_us, why, "redispatch")
            else:
                c = [self._change(event, State.REGISTERED, None, now_us)]
                a = [AuditRow(event.seq, now_us, *SYSTEM, "redispatch", event.state, State.REGISTERED,
                              f"{why}; no other eligible worker", revoked=worker_id)]
            changes += c
            audit += a
        self._update(changes, audit)
        return len(events)

    def _dispatch_waiting(self, now_us: int) -> int:
        """Inside a transaction: dispatch registered events that wait for a worker, oldest first
        (the batch kernel decides, page by page; the changes then move the loads)."""
        d = self.dispatcher
        dispatched, after = 0, 0
        while page := self.store.in_states([State.REGISTERED], unassigned=True, after=after):
            after = page[-1].seq
            rows = np.array([self._row_by_code.get(e.grid_code, -1) for e in page], dtype=np.int32)
            reqs = np.fromiter((self._requirement(e.category_code, int(r)) for e, r in zip(page, rows)),
                               np.int32, len(page))
            before = d.load.copy()
            chosen, _ = d.dispatch_batch(rows, reqs, now_us)
            d.load[:] = before
            changes, audit = [], []
            for event, w in zip(page, chosen.tolist()):
                if w >= 0:
                    c, a = self._dispatch_to(event, str(d.worker_ids[w]), SYSTEM, now_us, "", "dispatch")
                    changes += c
                    audit += a
            self._update(changes, audit)
            dispatched += len(changes)
        return dispatched
