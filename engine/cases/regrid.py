"""Relocation and re-gridding of :class:`~citygrid.engine.cases.intake.Intake`: a corrected place
(``relocate``), and after a layer activation every open event placed again (``regrid_open_events``).
"""

from __future__ import annotations


import numpy as np

from citygrid.engine.errors import Forbidden, InvalidInput, PreconditionFailed
from citygrid.engine.cases.model import Event, EventReport
from citygrid.engine.cases.store import AuditRow, EventChange
from citygrid.engine.cases.lifecycle import (
    LOADED_STATES, OPEN_STATES, State,
)
from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.times import to_us

from citygrid.engine.cases.actions import SYSTEM, _with


class Regridding:
    """Relocation and re-gridding (a part of :class:`~citygrid.engine.cases.intake.Intake`, over its state)."""

    def relocate(self, event_id: str, principal: Principal, *, lng: float | None = None, lat: float | None = None,
                 crs: str = "wgs84", building_code: str | None = None, note: str = "") -> Event:
        """``RelocateEvent``: a corrected place. The event moves to the grid of the new place; one
        waiting for or in the hands of a worker is dispatched again by the online rule (its worker
        keeps it when the rule still picks them)."""
        principal.require_role(Role.DISPATCHER, Role.SUPERVISOR, Role.INTAKE, action="relocate events")
        with self._writer:
            event = self.store.get(event_id)
            principal.require_covers(event.chain, what=f"event {event_id}")
            if not event.state.is_open:
                raise PreconditionFailed(f"event {event_id} is {event.state.value} ({event.state.label}); "
                                         "only open cases are relocated")
            EventReport(event_id, event.category_code, event.occurred_at, event.source, lng, lat, crs,
                        building_code).check()
            if lng is None:
                position = self.buildings.get(building_code)
                if position is None:
                    raise InvalidInput(f"unknown building code {building_code!r}")
                lng, lat, crs = position[0], position[1], "wgs84"
            rows, status, wlng, wlat = self._locate(np.array([lng]), np.array([lat]), np.array([crs], dtype=object))
            if rows[0] < 0:
                raise InvalidInput(f"({lng}, {lat}) {crs} lies in no grid of layer {self.layer.version_id}")
            chain = self._chains_of(rows)[0]
            if not principal.covers(chain):
                raise Forbidden(f"the new place of event {event_id} lies outside the jurisdiction of {principal.name}")
            who = (principal.name, principal.role.value)
            text = f"moved from grid {event.grid_code} to {chain[0]}" + (f": {note}" if note else "")
            with self._writing():
                changes, audit = self._move(event, chain, int(status[0]), (float(wlng[0]), float(wlat[0])),
                                            (lng, lat, crs, building_code), who, self._now_us(), text)
                self._update(changes, audit)
            self._refile_duplicate(event, float(wlng[0]), float(wlat[0]))
        return self.store.get(event_id)

    def _move(self, event: Event, chain: tuple, status: int, position: tuple[float, float], place: tuple,
              who, now_us: int, text: str) -> tuple[list[EventChange], list[AuditRow]]:
        """Inside a transaction: the change and audit rows of an open event moving to the grid of
        ``chain`` (placed at the WGS84 ``position``; ``place`` is the stored (lng, lat, crs, building
        code)). A reported one is registered when the intake registers by itself; one waiting for
        or in the hands of a worker is dispatched again by the online rule (its worker keeps it when
        the rule still picks them). Loads move as a side effect."""
        moved = _with(event, grid_code=chain[0], community_code=chain[1], street_code=chain[2],
                      district_code=chain[3])
        audit = [AuditRow(event.seq, now_us, *who, "relocate", event.state, event.state, text)]
        change = self._change(event, event.state, event.worker_id, now_us)
        if event.state is State.REPORTED and self.config.auto_register:
            change = self._change(moved, State.REGISTERED, None, now_us)
            audit.append(AuditRow(event.seq, now_us, *SYSTEM, "register", State.REPORTED, State.REGISTERED))
            moved = _with(moved, state=State.REGISTERED, deadline_us=change.deadline_us,
                          stage_started_us=change.stage_started_us)
        if moved.state in (State.REGISTERED, State.DISPATCHED, State.HANDLING):
            w = self._pick(moved, now_us)
            if w is not None and w != moved.worker_id:
                [change], more = self._dispatch_to(moved, w, SYSTEM, now_us, text, "redispatch")
                audit += more
            elif w is None and moved.state in LOADED_STATES:
                change = self._change(moved, State.REGISTERED, None, now_us)
                audit.append(AuditRow(event.seq, now_us, *SYSTEM, "redispatch", moved.state, State.REGISTERED,
                                      f"{text}; no eligible worker there", revoked=moved.worker_id))
        change.relocation = (*position, *place, chain, status, self.layer.version_id)
        return [change], audit

    def _refile_duplicate(self, event: Event, lng: float, lat: float) -> None:
        """After a move commits: the duplicate index knows the event at its new place."""
        self._dedup.remove(event.event_id)
        self._dedup.add(event.seq, event.event_id, event.category_code, lng, lat, to_us(event.occurred_at))

    def regrid_open_events(self, principal: Principal, *, note: str = "") -> list[tuple[str, str | None, str]]:
        """After :meth:`use_layer`: place every open event again on the current layer version and
        move those whose grid changed (a split or merged grid) exactly as :meth:`relocate` moves a
        corrected one, dispatched again by the online rule, in one transaction, each audited with
        the layer versions. Events the new version places in no grid keep theirs. Returns
        (event id, old grid, new grid) of the moved events; a second call moves nothing."""
        principal.require_role(Role.SUPERVISOR, action="re-grid the open events after a layer change")
        with self._writer:
            events = [e for e in self._open_events() if e.position is not None or e.lng is not None]
            if not events:
                return []
            lng = np.array([e.position[0] if e.position else e.lng for e in events], dtype=float)
            lat = np.array([e.position[1] if e.position else e.lat for e in events], dtype=float)
            crs = np.array(["wgs84" if e.position else e.crs for e in events], dtype=object)
            rows, status, wlng, wlat = self._locate(lng, lat, crs)
            chains = self._chains_of(rows)
            version = self.layer.version_id
            who = (principal.name, principal.role.value)
            moved: list[tuple[Event, tuple, int, float, float]] = []
            for k, event in enumerate(events):
                chain = chains[k]
                if rows[k] < 0 or chain[0] == event.grid_code:
                    continue
                if principal.covers(event.chain if event.grid_code is not None else chain):
                    moved.append((event, chain, int(status[k]), float(wlng[k]), float(wlat[k])))
            if moved:
                with self._writing():
                    now_us = self._now_us()
                    changes, audit = [], []
                    for event, chain, located, x, y in moved:
                        text = (f"moved from grid {event.grid_code} to {chain[0]}: layer version "
                                f"{event.layer_version} -> {version}" + (f"; {note}" if note else ""))
                        c, a = self._move(event, chain, located, (x, y),
                                          (event.lng, event.lat, event.crs, event.building_code), who, now_us, text)
                        changes += c
                        audit += a
                    self._update(changes, audit)
                for event, _, _, x, y in moved:
                    self._refile_duplicate(event, x, y)
        return [(event.event_id, event.grid_code, chain[0]) for event, chain, *_ in moved]

    def _open_events(self) -> list[Event]:
        """Every open event, in arrival order."""
        events: list[Event] = []
        while page := self.store.in_states(sorted(OPEN_STATES), after=events[-1].seq if events else 0):
            events += page
        return events

    def open_event_locations(self) -> list[tuple[str, float, float, str]]:
        """(event id, WGS84 lng, lat, grid code) of every open placed event: the open events of a
        re-indexing job's change report (:data:`citygrid.cluster.changes.OpenEvent`)."""
        return [(e.event_id, e.position[0], e.position[1], e.grid_code)
                for e in self._open_events() if e.position is not None]

    def grid_workers(self) -> list[tuple[str, str]]:
        """(worker id, grid code) of every worker: the workers of a change report
        (:data:`citygrid.cluster.changes.GridWorker`)."""
        return [(w.worker_id, w.grid_code) for w in self.store.workers.all()]
