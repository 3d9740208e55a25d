"""Event intake and case management: the engine behind ``IntakeService``.

:class:`Intake` ties the pieces together, one method per RPC:

===============================  ================================================================
``submit`` / ``submit_one``      ``SubmitEvents`` / ``SubmitStream``: reports in, one
                                 :class:`Receipt` each (or its error), durable (one commit) before
                                 it returns; concurrent callers' batches share commits
``get`` / ``audit``              ``GetEvent`` (and its audit trail)
``act``                          ``UpdateStatus``: one lifecycle action (:mod:`~citygrid.engine.cases.lifecycle`)
``relocate``                     ``RelocateEvent``: a corrected place, its grid, a new dispatch
``list``                         ``ListEvents``: filters, pages, the caller's jurisdiction
``dispatches``                   ``WatchDispatches``: a worker's feed after a cursor, waiting for news
``overdue``                      ``WatchOverdue``: escalations (督办) after a cursor
``on_news``                      a callback after each commit with news for a feed (waiting without a thread)
``rebalance``                    ``Rebalance``: the backlog at the least maximum load (exact)
``put_workers`` / ``set_duty``   workers, their grids, skills, shifts, capacity; on / off duty
``get_worker`` / ``list_workers``
``tick`` / ``run_clock``         the clock: dispatch what waits for a worker, escalate what is late
``use_layer``                    place new reports on another (activated) layer version
``regrid_open_events``           then move the open events whose grid changed, dispatched again
===============================  ================================================================

A report goes: check -> place (coordinates in WGS84 / GCJ-02 / BD-09, or a building code) ->
jurisdiction -> duplicate check (:mod:`citygrid.engine.cases.duplicates`) -> register (立案, automatic
unless configured otherwise) -> dispatch by the online rule (the batch kernel for the whole commit,
:mod:`citygrid.engine.dispatch.dispatcher`) -> stage deadline in working minutes
(:mod:`citygrid.engine.dispatch.worktime`) -> one transaction with its audit rows. A report that cannot be
placed stays ``reported`` for a dispatcher to relocate or reject.

One process owns an intake (the writer). Its in-memory state (who holds which open event and the
loads that follow, the duplicate index) is rebuilt from the database when it starts and changes only
with a successful commit: a failed one undoes it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

import numpy as np

from citygrid.engine.layers import coordinates
from citygrid.engine.layers.adjacency import adjacency_of
from citygrid.engine.layers.assignment import Assigner, Status
from citygrid.engine.times import Clock, system_clock
from citygrid.engine.dispatch.dispatcher import Dispatcher, RoutingRules, rebalance
from citygrid.engine.cases.duplicates import DuplicateIndex, DuplicatePolicy
from citygrid.engine.errors import CityGridError, Conflict, Forbidden, InvalidInput, Overloaded, PreconditionFailed
from citygrid.engine.cases.events import (
    CHANNELS, MAX_PAGE, AuditEntry, AuditRow, DispatchNotice, EscalationRow, Event, EventChange, EventFilter,
    EventReport, EventStore, OverdueNotice, Page, Receipt, attachments_json,
)
from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.cases.lifecycle import (
    LOADED_STATES, OPEN_STATES, REPORTER_ROLES, Action, Escalation, EscalationPolicy, State, authorize, restarts_clock,
    stage_of,
)
from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.cases.taxonomy import Category, Taxonomy, load_taxonomy
from citygrid.engine.dispatch.workers import Worker, with_duty
from citygrid.engine.dispatch.worktime import US_PER_MINUTE, WorkSchedule, from_us, to_us

log = logging.getLogger(__name__)

#: Most reports in one ``submit`` call; a bigger batch is refused (:class:`Overloaded`).
MAX_BATCH = 10_000
#: Most reports one group commit takes from the queue.
MAX_COMMIT = 20_000
#: How long a caller whose batch waits for a commit sleeps before it checks whether the writer is free.
_GROUP_WAIT_S = 0.0005
#: The key of the escalation feed among the feeds' news counters (worker ids cannot contain a space).
_OVERDUE = "overdue feed"
#: Who the audit trail names for what the intake does by itself.
SYSTEM = ("citygrid", "system")
#: Reports may say they occurred at most this long before the intake's clock (ten years: backfills
#: from an older system are taken in, a year-1 date is not) ...
MAX_REPORT_AGE = timedelta(days=3650)
#: ... and at most this long after it (terminals whose clocks run fast).
MAX_REPORT_AHEAD = timedelta(minutes=10)

class Located(NamedTuple):
    grid_rows: np.ndarray  #: int32, -1 where no grid
    status: np.ndarray  #: uint8 :class:`citygrid.engine.layers.assignment.Status`
    lng: np.ndarray  #: WGS84 longitude of each point
    lat: np.ndarray


class Locator(Protocol):
    """Places points on one layer version: ``locate(lng, lat, crs)`` for one coordinate system."""

    layer: GridLayer

    def locate(self, lng: np.ndarray, lat: np.ndarray, crs: str) -> Located: ...


class AssignerLocator:
    """Places points with the exact assigner of a layer version (:mod:`citygrid.engine.layers.assignment`):
    converted to WGS84 first (GCJ-02 and BD-09 reports), then one grid per point; ``fallback_m``
    places a point just outside every grid in the nearest one within that distance (属地兜底)."""

    def __init__(self, assigner: Assigner, *, fallback_m: float = 0.0):
        self.assigner = assigner
        self.layer = assigner.layer
        self.fallback_m = fallback_m

    @classmethod
    def for_layer(cls, layer: GridLayer, *, fallback_m: float = 0.0) -> "AssignerLocator":
        return cls(Assigner.for_layer(layer), fallback_m=fallback_m)

    def locate(self, lng: np.ndarray, lat: np.ndarray, crs: str) -> Located:
        if not coordinates.is_wgs84(crs):
            lng, lat = coordinates.to_wgs84(lng, lat, crs)
        assignment = self.assigner.assign(lng, lat, fallback_m=self.fallback_m)
        return Located(assignment.grid_rows, assignment.status, np.asarray(lng, float), np.asarray(lat, float))


def read_buildings(path) -> dict[str, tuple[float, float]]:
    """Building positions (WGS84) by building code from a Parquet table with ``building_code``,
    ``lng``, ``lat`` columns (the demo's ``buildings.parquet``)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=["building_code", "lng", "lat"])
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidInput(f"cannot read building positions from {path}: {exc}") from None
    codes = table.column("building_code").to_pylist()
    return dict(zip(codes, zip(table.column("lng").to_pylist(), table.column("lat").to_pylist())))


@dataclass(frozen=True)
class IntakeConfig:
    schedule: WorkSchedule = field(default_factory=WorkSchedule)
    duplicates: DuplicatePolicy = field(default_factory=DuplicatePolicy)
    escalation: EscalationPolicy = field(default_factory=EscalationPolicy)
    #: Hops from an event's grid the online rule looks for workers (1: own grid, then neighbours).
    max_hops: int = 1
    #: Register placed reports automatically (立案 by the system); False leaves it to dispatchers.
    auto_register: bool = True
    max_batch: int = MAX_BATCH
    #: The channels a report's ``source`` may name (the demo's five by default).
    sources: frozenset[str] = frozenset(CHANNELS)
    #: How long before the intake's clock a report may say it occurred (older: refused) ...
    max_report_age: timedelta = MAX_REPORT_AGE
    #: ... and how far after it (a terminal's clock running fast).
    max_report_ahead: timedelta = MAX_REPORT_AHEAD


@dataclass(frozen=True)
class TickReport:
    dispatched: int
    escalated: int


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


class _Ticket:
    """One caller's batch waiting for a (group) commit."""

    __slots__ = ("reports", "principal", "who", "receipts", "occurred", "done", "error")

    def __init__(self, reports, principal):
        self.reports = reports
        self.principal = principal
        self.who = (principal.name, principal.role.value)
        self.receipts: list[Receipt | None] = [None] * len(reports)
        self.occurred: list[int] = [0] * len(reports)
        self.done = threading.Event()
        self.error: BaseException | None = None


class Intake:
    """Event intake, lifecycle, dispatch and workers over an :class:`EventStore` and one layer
    version. Thread-safe; one instance per data directory."""

    def __init__(
        self,
        store: EventStore,
        locator: Locator,
        *,
        taxonomy: Taxonomy | None = None,
        routing: RoutingRules | None = None,
        buildings: Mapping[str, tuple[float, float]] | None = None,
        config: IntakeConfig | None = None,
        clock: Clock | None = None,
    ):
        self.store = store
        self.config = config or IntakeConfig()
        self.taxonomy = taxonomy or load_taxonomy()
        self._categories: dict[str, Category] = {c.code: c for c in self.taxonomy.categories}
        # Working minutes each category allows in each state's stage (NaN: the state has no limit).
        self._limits: dict[tuple[str, State], float] = {
            (c.code, state): math.nan if stage_of(state) is None else float(getattr(c.limits, stage_of(state)))
            for c in self.taxonomy.categories for state in State
        }
        self._check_open_categories()
        self.routing = routing or RoutingRules.from_taxonomy(self.taxonomy)
        self.buildings = dict(buildings or {})
        #: The present time of every shift, deadline, escalation and duplicate window (:mod:`~citygrid.engine.times`).
        self.clock: Clock = clock or system_clock
        self._writer = threading.RLock()
        self._queue: list[_Ticket] = []
        self._queue_lock = threading.Lock()
        # Who holds which open events (their loads), kept with every commit; changes made inside a
        # transaction are logged so that a failed commit undoes them.
        self._assigned: dict[str, set[int]] = {}
        for seq, worker_id in store.assignments():
            self._assigned.setdefault(worker_id, set()).add(seq)
        self._undo: list[tuple[str, int, bool]] | None = None
        self._touched: set[str] = set()
        # Feeds: a news counter and a condition per watched worker (and one for escalations).
        self._feed_lock = threading.Lock()
        self._feed_news: dict[str, int] = {}
        self._feed_waiters: dict[str, threading.Condition] = {}
        self._feed_listeners: dict[str, list[Callable[[], None]]] = {}
        with self._writer:
            self._use_locator(locator)
            self._dedup = DuplicateIndex(self.config.duplicates)
            for seq, event_id, category, x, y, t in store.open_primaries():
                self._dedup.add(seq, event_id, category, x, y, t)

    def _check_open_categories(self) -> None:
        """Refuse a taxonomy that lacks the category of an open event: its stage limits, routing
        and escalation would be unknown."""
        missing = self.store.open_categories() - set(self._categories)
        if missing:
            raise PreconditionFailed(
                f"taxonomy {self.taxonomy.name} {self.taxonomy.version} lacks the categories "
                f"{', '.join(sorted(missing))} of open events; keep those categories in the taxonomy file "
                "until their events are closed"
            )

    # ------------------------------------------------------------------ layer and workers

    def _use_locator(self, locator: Locator) -> None:
        layer = locator.layer
        self.locator = locator
        self.layer = layer
        self._row_by_code = {code: row for row, code in enumerate(layer.codes)}
        # Each grid row's (grid, community, street, district) codes, one tuple shared by its events.
        self._chains = list(zip(*(layer.column(c).tolist() for c in ("grid_code", "community_code", "street_code",
                                                                      "district_code"))))
        self._rebuild_dispatcher(self.store.workers.all(), self._loads_by_id())

    def _rebuild_dispatcher(self, workers: Sequence[Worker], loads: Mapping[str, int]) -> None:
        self.dispatcher = Dispatcher(
            self.layer, adjacency_of(self.layer), workers, self.routing,
            max_hops=self.config.max_hops, timezone=self.config.schedule.timezone, loads=loads,
        )

    def use_layer(self, locator: Locator) -> None:
        """Place new reports on another layer version (events keep the grid they were placed in)."""
        with self._writer:
            self._use_locator(locator)

    def _loads_by_id(self) -> dict[str, int]:
        return {worker_id: len(seqs) for worker_id, seqs in self._assigned.items()}

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

    # ------------------------------------------------------------------ intake

    def submit(self, reports: Sequence[EventReport], principal: Principal) -> list[Receipt]:
        """Take in reports; every receipt is durable when this returns. A report refused for its
        own reason (invalid, unknown category, outside the caller's jurisdiction, an id reused with
        other content) gets a receipt with ``error`` and does not stop the others."""
        principal.require_role(*REPORTER_ROLES, action="report events")
        if len(reports) > self.config.max_batch:
            raise Overloaded(f"{len(reports)} reports in one batch; send at most {self.config.max_batch}")
        ticket = _Ticket(list(reports), principal)
        now = self.clock()
        earliest, latest = now - self.config.max_report_age, now + self.config.max_report_ahead
        for i, report in enumerate(ticket.reports):
            try:
                report.check()
                if report.category_code not in self._categories:
                    raise InvalidInput(
                        f"event {report.event_id}: unknown category {report.category_code!r} "
                        f"(taxonomy {self.taxonomy.name} {self.taxonomy.version})"
                    )
                if report.source not in self.config.sources:
                    raise InvalidInput(
                        f"event {report.event_id}: unknown source {report.source!r}; the intake takes reports from "
                        f"{', '.join(sorted(self.config.sources))} ([intake] sources)"
                    )
                if not earliest <= report.occurred_at <= latest:
                    raise InvalidInput(
                        f"event {report.event_id}: occurred_at {report.occurred_at.isoformat()} is outside the "
                        f"accepted window {earliest.isoformat(timespec='seconds')} to "
                        f"{latest.isoformat(timespec='seconds')} (at most {_span(self.config.max_report_age)} "
                        f"before the server's clock and {_span(self.config.max_report_ahead)} after it)"
                    )
                ticket.occurred[i] = to_us(report.occurred_at)
            except CityGridError as exc:
                ticket.receipts[i] = Receipt(getattr(report, "event_id", ""), error=exc)
        with self._queue_lock:
            self._queue.append(ticket)
        # Group commit: whoever gets the writer takes every batch queued so far into one
        # transaction; the others wait for their batch to be done (or for the writer to be free).
        while not ticket.done.is_set():
            if self._writer.acquire(blocking=False):
                try:
                    if not ticket.done.is_set():
                        self._commit_tickets(self._take_queue())
                finally:
                    self._writer.release()
            else:
                ticket.done.wait(_GROUP_WAIT_S)
        if ticket.error is not None:
            raise ticket.error
        return ticket.receipts  # type: ignore[return-value]

    def submit_one(self, report: EventReport, principal: Principal) -> Receipt:
        """One report (a ``SubmitStream`` message): its receipt, or its error raised."""
        [receipt] = self.submit([report], principal)
        if receipt.error is not None:
            raise receipt.error
        return receipt

    def _take_queue(self) -> list[_Ticket]:
        with self._queue_lock:
            taken, size = [], 0
            while self._queue and (not taken or size + len(self._queue[0].reports) <= MAX_COMMIT):
                size += len(self._queue[0].reports)
                taken.append(self._queue.pop(0))
        return taken

    def _commit_tickets(self, tickets: list[_Ticket]) -> None:
        """Take in the reports of several callers in one transaction (group commit)."""
        try:
            self._take_in(tickets)
        except BaseException as exc:
            for t in tickets:
                t.error = exc
        finally:
            for t in tickets:
                t.done.set()

    def _take_in(self, tickets: list[_Ticket]) -> None:
        items = [(t, i) for t in tickets for i in range(len(t.reports)) if t.receipts[i] is None]
        if not items:
            return
        stored = self.store.receipts([t.reports[i].event_id for t, i in items])
        first_of: dict[str, tuple[_Ticket, int]] = {}
        fresh: list[tuple[_Ticket, int]] = []
        repeats: list[tuple[_Ticket, int, _Ticket, int]] = []
        for t, i in items:
            report = t.reports[i]
            if report.event_id in stored:
                content, receipt = stored[report.event_id]
                same = content == report.content(t.occurred[i])
                t.receipts[i] = receipt if same else Receipt(report.event_id, error=_conflict(report))
            elif report.event_id in first_of:
                ft, fi = first_of[report.event_id]
                if ft.reports[fi].content(ft.occurred[fi]) == report.content(t.occurred[i]):
                    repeats.append((t, i, ft, fi))
                else:
                    t.receipts[i] = Receipt(report.event_id, error=_conflict(report))
            else:
                first_of[report.event_id] = (t, i)
                fresh.append((t, i))
        if fresh:
            self._insert_fresh(fresh)
        for t, i, ft, fi in repeats:
            first = ft.receipts[fi]
            t.receipts[i] = first if first.error is not None else _replayed(first)

    def _insert_fresh(self, fresh: list[tuple[_Ticket, int]]) -> None:
        """Place, check, deduplicate, register, dispatch and store new reports (one transaction).

        The intake's own steps (registration and the first dispatch happen in the same instant as
        the report) are recorded in the report's audit row: from nothing to the state the intake
        left the event in, the note naming the automatic steps, the worker in its ``notify``."""
        now_us = self._now_us()
        received = from_us(now_us)
        n = len(fresh)
        reports = [t.reports[i] for t, i in fresh]
        errors: list[CityGridError | None] = [None] * n
        lng, lat, crs = [math.nan] * n, [math.nan] * n, ["wgs84"] * n
        for k, r in enumerate(reports):
            if r.lng is not None:
                lng[k], lat[k], crs[k] = r.lng, r.lat, r.crs
            else:
                position = self.buildings.get(r.building_code)
                if position is None:
                    errors[k] = InvalidInput(f"event {r.event_id}: unknown building code {r.building_code!r}")
                else:
                    lng[k], lat[k] = position
        rows, status, wlng, wlat = self._locate(np.array(lng, dtype=np.float64), np.array(lat, dtype=np.float64),
                                                np.array(crs, dtype=object))
        chains = self._chains_of(rows)
        row_list, status_list, lng_list, lat_list = rows.tolist(), status.tolist(), wlng.tolist(), wlat.tolist()
        for k, (t, _) in enumerate(fresh):
            if errors[k] is None and not t.principal.everywhere and not t.principal.covers(chains[k]):
                errors[k] = Forbidden(
                    f"event {reports[k].event_id} lies outside the jurisdiction of {t.principal.name}"
                    if row_list[k] >= 0 else
                    f"event {reports[k].event_id} could not be placed in a grid, so not in the jurisdiction of "
                    f"{t.principal.name}"
                )
        keep = [k for k in range(n) if errors[k] is None]
        states: list[State | None] = [None] * n
        duplicate_of: list[str | None] = [None] * n
        workers: list[str | None] = [None] * n
        dedup_added: list[str] = []
        auto = self.config.auto_register
        try:
            with self._writing():
                seq0 = self.store.next_seq()
                to_dispatch: list[int] = []
                for j, k in enumerate(keep):
                    if row_list[k] < 0:
                        states[k] = State.REPORTED
                        continue
                    r = reports[k]
                    t, i = fresh[k]
                    primary = self._dedup.find_or_add(seq0 + j, r.event_id, r.category_code, lng_list[k],
                                                      lat_list[k], t.occurred[i])
                    if primary is not None:
                        states[k], duplicate_of[k] = State.DUPLICATE, primary
                        continue
                    dedup_added.append(r.event_id)
                    if auto:
                        states[k] = State.REGISTERED
                        to_dispatch.append(k)
                    else:
                        states[k] = State.REPORTED
                if to_dispatch:
                    reqs = np.fromiter(
                        (self._requirement(reports[k].category_code, row_list[k]) for k in to_dispatch),
                        np.int32, len(to_dispatch),
                    )
                    chosen, _ = self.dispatcher.dispatch_batch(rows[to_dispatch], reqs, now_us)
                    ids = self.dispatcher.worker_ids
                    position = {k: j for j, k in enumerate(keep)}
                    for k, w in zip(to_dispatch, chosen.tolist()):
                        if w >= 0:
                            workers[k] = ids[w]
                            states[k] = State.DISPATCHED
                            self._hold(ids[w], seq0 + position[k], True)
                deadlines = self._deadlines([reports[k].category_code for k in keep], [states[k] for k in keep], now_us)
                version = self.layer.version_id
                new_rows, audit = [], []
                for j, k in enumerate(keep):
                    r, (t, i) = reports[k], fresh[k]
                    state, seq, worker, deadline = states[k], seq0 + j, workers[k], deadlines[j]
                    placed = row_list[k] >= 0
                    # Plain tuples in the layouts of NewEvent and AuditRow (the hot path).
                    new_rows.append((
                        seq, r.event_id, r.category_code, t.occurred[i], now_us, r.source, r.reporter,
                        r.description, attachments_json(r.attachments), r.lng, r.lat, r.crs, r.building_code,
                        lng_list[k] if placed else None, lat_list[k] if placed else None, *chains[k],
                        status_list[k], version, state, worker, duplicate_of[k],
                        None if deadline is None else now_us, deadline, 0, now_us, state, worker,
                    ))
                    audit.append((seq, now_us, *t.who, "report", None, state,
                                  _intake_note(state, placed, status_list[k], r, duplicate_of[k]), worker, None))
                self.store.insert_events(new_rows, audit)
        except BaseException:
            for event_id in dedup_added:
                self._dedup.remove(event_id)
            raise
        for k in range(n):
            t, i = fresh[k]
            if errors[k] is not None:
                t.receipts[i] = Receipt(reports[k].event_id, error=errors[k])
            else:
                t.receipts[i] = Receipt(reports[k].event_id, True, states[k], chains[k][0], status_list[k],
                                        workers[k], duplicate_of[k], received)

    def _requirement(self, category_code: str, grid_row: int) -> int:
        category = self._categories[category_code]
        return self.dispatcher.route_of(category.code, category.class_code, grid_row)

    def _locate(self, lng: np.ndarray, lat: np.ndarray, crs: np.ndarray):
        n = len(lng)
        rows = np.full(n, -1, dtype=np.int32)
        status = np.full(n, Status.INVALID, dtype=np.uint8)
        wlng, wlat = lng.copy(), lat.copy()
        finite = np.isfinite(lng) & np.isfinite(lat)
        for name in set(crs[finite].tolist()):
            idx = np.flatnonzero(finite & (crs == name))
            located = self.locator.locate(lng[idx], lat[idx], name)
            rows[idx], status[idx] = located.grid_rows, located.status
            wlng[idx], wlat[idx] = located.lng, located.lat
        return rows, status, wlng, wlat

    def _chains_of(self, rows: np.ndarray) -> list[tuple]:
        chains = self._chains
        return [_NO_CHAIN if r < 0 else chains[r] for r in rows.tolist()]

    def _chain_of_code(self, grid_code: str | None) -> tuple:
        row = self._row_by_code.get(grid_code, -1)
        return self._chains[row] if row >= 0 else (grid_code, None, None, None)

    def _deadlines(self, categories: Sequence[str], states: Sequence[State], start_us: int | np.ndarray) -> list[int | None]:
        limits = np.array(
            [self._limit(c, s) for c, s in zip(categories, states)], dtype=np.float64
        ) if len(states) else np.empty(0)
        out: list[int | None] = [None] * len(states)
        has = np.flatnonzero(~np.isnan(limits))
        if len(has):
            starts = np.broadcast_to(np.asarray(start_us, dtype=np.int64), limits.shape)[has]
            ends = self.config.schedule.add_working_us(starts, limits[has])
            for k, v in zip(has.tolist(), ends.tolist()):
                out[k] = v
        return out

    def _limit(self, category: str, state: State) -> float:
        return self._limits[(category, state)]

    # ------------------------------------------------------------------ reading

    def get(self, event_id: str, principal: Principal) -> Event:
        event = self.store.get(event_id)
        self._require_sees(event, principal)
        return event

    def audit(self, event_id: str, principal: Principal) -> list[AuditEntry]:
        self.get(event_id, principal)
        return self.store.audit_trail(event_id)

    def list(self, principal: Principal, where: EventFilter | None = None, *, page_size: int = 100,
             page_token: str = "") -> Page:
        """Events matching ``where`` inside the caller's jurisdiction, in arrival order (a worker
        sees the events dispatched to them)."""
        where = where or EventFilter()
        page_size = _page_size(page_size)
        after = _parse_token(page_token)
        scope: Sequence[str] = () if principal.everywhere else principal.jurisdiction
        if principal.role is Role.WORKER:
            if where.worker_id not in (None, principal.worker_id):
                raise Forbidden(f"{principal.name} may list only their own events")
            where = replace(where, worker_id=principal.worker_id or "")
            scope = ()
        if where.worker_id is not None and where.states and set(where.states) <= LOADED_STATES:
            # A worker's work in hand: from the holdings in memory, not a scan of every event.
            held = sorted(seq for seq in self._assigned.get(where.worker_id, ()) if seq > after)
            events = [e for e in self.store.get_seqs(held) if _matches(e, where, scope)][:page_size]
        else:
            events = self.store.list_events(where, scope=scope, after=after, limit=page_size)
        return Page(events, str(events[-1].seq) if len(events) == page_size else "")

    def _require_sees(self, event: Event, principal: Principal) -> None:
        if principal.role is Role.WORKER and principal.worker_id is not None and principal.worker_id == event.worker_id:
            return
        principal.require_covers(event.chain, what=f"event {event.event_id}")

    # ------------------------------------------------------------------ lifecycle

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

    # ------------------------------------------------------------------ relocation

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

    # ------------------------------------------------------------------ feeds

    def dispatches(self, worker_id: str, principal: Principal, *, after: int = 0, limit: int = 100,
                   wait: float = 0.0) -> list[DispatchNotice]:
        """``WatchDispatches``: a worker's notices after the cursor ``after``; with ``wait`` seconds,
        blocks until one arrives or the time is up (the servicer loops, passing the last cursor)."""
        if not (principal.role is Role.WORKER and principal.worker_id == worker_id):
            principal.require_role(Role.DISPATCHER, Role.SUPERVISOR, action="watch another worker's dispatches")
            principal.require_covers(self._chain_of_code(self.store.workers.get(worker_id).grid_code),
                                     what=f"worker {worker_id}")
        limit = _page_size(limit)
        return self._wait(lambda: self.store.dispatch_feed(worker_id, after=after, limit=limit), worker_id, wait)

    def overdue(self, principal: Principal, *, after: int = 0, limit: int = 100, wait: float = 0.0) -> list[OverdueNotice]:
        """``WatchOverdue``: escalations inside the caller's jurisdiction after the cursor ``after``."""
        principal.require_role(Role.DISPATCHER, Role.SUPERVISOR, Role.DASHBOARD, action="watch overdue events")
        areas = () if principal.everywhere else principal.jurisdiction
        limit = _page_size(limit)
        return self._wait(lambda: self.store.overdue_feed(after=after, limit=limit, areas=areas), _OVERDUE, wait)

    def _wait(self, read, key: str, wait: float):
        """Read; when there is nothing yet, wait (at most ``wait`` seconds) for news of ``key`` (a
        worker id, or the overdue feed) and read again. A news counter taken before each read tells
        whether a commit came between the read and the wait."""
        deadline = time.monotonic() + wait
        while True:
            with self._feed_lock:
                seen = self._feed_news.get(key, 0)
            rows = read()
            remaining = deadline - time.monotonic()
            if rows or remaining <= 0:
                return rows
            with self._feed_lock:
                if self._feed_news.get(key, 0) == seen:
                    news = self._feed_waiters.get(key)
                    if news is None:
                        news = self._feed_waiters[key] = threading.Condition(self._feed_lock)
                    news.wait(remaining)

    def on_news(self, callback: Callable[[], None], worker_id: str | None = None) -> Callable[[], None]:
        """Call ``callback()`` after each commit that brings news to ``worker_id``'s dispatch feed
        (``None``: the overdue feed), until the function returned is called.

        This is how a caller waits for news without a thread of its own: an event loop passes
        something like ``lambda: loop.call_soon_threadsafe(news.set)``, awaits the event, then reads
        with :meth:`dispatches` or :meth:`overdue` (``wait=0``). Subscribe before the first read and
        clear the event before each read, and no news is missed. The callback runs in the committing
        thread after the commit and must return at once; an error in it is logged, not raised.
        """
        key = _OVERDUE if worker_id is None else worker_id
        with self._feed_lock:
            self._feed_listeners.setdefault(key, []).append(callback)

        def stop() -> None:
            with self._feed_lock:
                listeners = self._feed_listeners.get(key, [])
                if callback in listeners:
                    listeners.remove(callback)
                if not listeners:
                    self._feed_listeners.pop(key, None)

        return stop

    def _wake(self, keys) -> None:
        """After a commit: count news for these workers (or the overdue feed) and wake their watchers."""
        listeners: list[Callable[[], None]] = []
        with self._feed_lock:
            for key in keys:
                self._feed_news[key] = self._feed_news.get(key, 0) + 1
                news = self._feed_waiters.get(key)
                if news is not None:
                    news.notify_all()
                listeners.extend(self._feed_listeners.get(key, ()))
        for callback in listeners:
            try:
                callback()
            except Exception:  # noqa: BLE001 - a watcher's bug must not fail the commit that is already done
                log.warning("a feed listener failed", exc_info=True)

    # ------------------------------------------------------------------ the clock

    def tick(self, now: datetime | None = None) -> TickReport:
        """The clock (call it every minute or so): dispatch events waiting for a worker (oldest
        first) and escalate overdue ones (督办)."""
        with self._writer:
            with self._writing():
                now_us = to_us(now) if now is not None else self._now_us()
                dispatched = self._dispatch_waiting(now_us)
                escalated = self._escalate(now_us)
            if escalated:
                self._wake([_OVERDUE])
        return TickReport(dispatched, escalated)

    def run_clock(self, stop: threading.Event, interval: float = 60.0) -> None:
        """Call :meth:`tick` every ``interval`` seconds until ``stop`` is set (run it in a thread of
        the serving process). A tick that fails with a CityGrid error is logged and retried at the
        next one; any other error ends the thread (a bug)."""
        while not stop.wait(interval):
            try:
                self.tick()
            except CityGridError as exc:
                log.warning("intake clock: tick failed, retrying in %.0f s: %s", interval, exc)

    def _escalate(self, now_us: int) -> int:
        """Inside a transaction: escalate overdue events to their community, then their street."""
        rows: list[EscalationRow] = []
        levels: list[tuple[int, int]] = []
        worked = self.config.schedule.worked_until
        after = (0, 0)
        while due := self.store.due(now_us, after=after):
            after = (_us(due[-1].deadline), due[-1].seq)
            deadlines = np.array([_us(e.deadline) for e in due], dtype=np.int64)
            overdue = (worked(np.full(len(due), now_us)) - worked(deadlines)) / US_PER_MINUTE
            for e, minutes in zip(due, overdue.tolist()):
                limit = self._limit(e.category_code, e.state)
                level = max(int(self.config.escalation.level(minutes, limit)), int(Escalation.COMMUNITY))
                if level <= e.escalation:
                    continue
                for lv in range(e.escalation + 1, level + 1):
                    unit = e.community_code if lv == Escalation.COMMUNITY else e.street_code
                    rows.append(EscalationRow(e.seq, now_us, lv, unit, stage_of(e.state), _us(e.deadline), minutes))
                levels.append((e.seq, level))
        self.store.add_escalations(rows, levels)
        return len(rows)

    # ------------------------------------------------------------------ rebalancing

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

    # ------------------------------------------------------------------ helpers

    def close(self) -> None:
        with self._writer:
            self.store.close()

    def _now_us(self) -> int:
        return int(to_us(self.clock()))


# ---------------------------------------------------------------------- module helpers


_NO_CHAIN = (None, None, None, None)


def _conflict(report: EventReport) -> Conflict:
    return Conflict(
        f"event id {report.event_id} was already used for a report with other content; "
        "a new report needs a new id (resending the same report is safe)"
    )


def _replayed(receipt: Receipt) -> Receipt:
    return receipt._replace(created=False)


_INTAKE_NOTES = {
    State.DISPATCHED: "registered and dispatched by the intake (自动立案、派遣)",
    State.REGISTERED: "registered by the intake (自动立案); waiting for an eligible worker",
    State.REPORTED: "",
}


def _intake_note(state: State, placed: bool, status: int, report: EventReport, duplicate_of: str | None) -> str:
    if state is State.DUPLICATE:
        return f"duplicate of {duplicate_of} (重复上报), not dispatched"
    if not placed:
        where = f"building {report.building_code}" if report.lng is None else f"({report.lng}, {report.lat}) {report.crs}"
        return f"reported at {where}: not placed in any grid (status {status})"
    return _INTAKE_NOTES[state]


def _span(delta: timedelta) -> str:
    """A window's length as people say it (``3650 days``, ``10 minutes``)."""
    minutes = delta.total_seconds() / 60
    return f"{minutes / 1440:g} days" if minutes >= 1440 else f"{minutes:g} minutes"


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


def _matches(event: Event, where: EventFilter, scope: Sequence[str]) -> bool:
    """Whether an event passes a filter (the in-memory twin of the store's query)."""
    chain = [code for code in event.chain if code is not None]
    occurred = event.occurred_at
    return (
        (not where.states or event.state in where.states)
        and (not where.category_codes or event.category_code in where.category_codes)
        and (not where.areas or any(code in where.areas for code in chain))
        and (not scope or any(code in scope for code in chain))
        and (where.worker_id is None or event.worker_id == where.worker_id)
        and (where.source is None or event.source == where.source)
        and (where.occurred_from is None or occurred >= where.occurred_from)
        and (where.occurred_to is None or occurred < where.occurred_to)
        and (where.overdue_at is None or (event.deadline is not None and event.deadline < where.overdue_at))
        and (where.duplicate_of is None or event.duplicate_of == where.duplicate_of)
    )


def _parse_action(action: Action | str) -> Action:
    if isinstance(action, Action):
        return action
    try:
        return Action(action)
    except ValueError:
        raise InvalidInput(f"unknown action {action!r}; actions are {', '.join(a.value for a in Action)}") from None


def _page_size(size: int) -> int:
    if not 0 < size <= MAX_PAGE:
        raise InvalidInput(f"page size must be 1-{MAX_PAGE}")
    return size


def _parse_token(token: str) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise InvalidInput("bad page token; pass the next_page_token of the previous page")
    return int(token)


