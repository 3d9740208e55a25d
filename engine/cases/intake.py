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
``on_inserted``                  a callback with the rows of each committed batch of new reports
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

The class is a composition of its families, one module each in this wing, over one shared state (the
store, the writer lock, the dispatcher and the holdings, which every family changes inside one
transaction): submit and group commit (here, with reading and the layer in use),
:mod:`~citygrid.engine.cases.roster` (worker operations), :mod:`~citygrid.engine.cases.actions`
(lifecycle actions and the change machinery the others use), :mod:`~citygrid.engine.cases.regrid`
(relocation, re-gridding after an activation), :mod:`~citygrid.engine.cases.feeds` (dispatch and overdue
feeds), :mod:`~citygrid.engine.cases.clock` (ticks, escalation) and
:mod:`~citygrid.engine.cases.rebalancing` (the backlog at the least maximum load); reports are placed by
a :mod:`~citygrid.engine.cases.locator`.

One process owns an intake (the writer). Its in-memory state (who holds which open event and the
loads that follow, the duplicate index) is rebuilt from the database when it starts and changes only
with a successful commit: a failed one undoes it.
"""

from __future__ import annotations

import logging
import math
import operator
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

import numpy as np

from citygrid.engine.layers.adjacency import adjacency_of
from citygrid.engine.layers.assignment import Status
from citygrid.engine.times import Clock, system_clock
from citygrid.engine.dispatch.dispatcher import Dispatcher
from citygrid.engine.dispatch.routing import RoutingRules
from citygrid.engine.cases.duplicates import DuplicateIndex, DuplicatePolicy
from citygrid.engine.errors import CityGridError, Conflict, Forbidden, InvalidInput, Overloaded, PreconditionFailed
from citygrid.engine.cases.model import (
    CHANNELS, AuditEntry, Event, EventFilter, EventReport, Page, Receipt, attachments_json,
)
from citygrid.engine.cases.store import CommittedEvents, EventStore, InsertColumns, NewEvent
from citygrid.engine.cases.lifecycle import (
    LOADED_STATES, REPORTER_ROLES, EscalationPolicy, State, stage_of,
)
from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.cases.taxonomy import Category, Taxonomy, load_taxonomy
from citygrid.engine.dispatch.workers import Worker
from citygrid.engine.dispatch.worktime import WorkSchedule
from citygrid.engine.times import from_us, to_us

from citygrid.engine.cases.locator import Locator
from citygrid.engine.cases.actions import LifecycleActions
from citygrid.engine.cases.clock import ClockWork
from citygrid.engine.cases.feeds import Feeds
from citygrid.engine.cases.rebalancing import Rebalancing
from citygrid.engine.cases.regrid import Regridding
from citygrid.engine.cases.roster import WorkerOperations, _page_size

from citygrid.engine.hierarchy import Chains

log = logging.getLogger(__name__)

#: Most reports in one ``submit`` call; a bigger batch is refused (:class:`Overloaded`).
MAX_BATCH = 10_000
#: Most reports one group commit takes from the queue.
MAX_COMMIT = 20_000
#: How long a caller whose batch waits for a commit sleeps before it checks whether the writer is free.
_GROUP_WAIT_S = 0.0005
#: Item getters of a :class:`NewEvent` tuple's columns and each state's index (:meth:`_insert_columns`).
_OCCURRED, _CATEGORY, _SOURCE = (operator.itemgetter(NewEvent._fields.index(name))
                                 for name in ("occurred_us", "category_code", "source"))
_STATE_INDEX = {s: k for k, s in enumerate(State)}
_NO_DEADLINE = {None: -1}  # each deadline its own default: itself, or -1 for None
#: Reports may say they occurred at most this long before the intake's clock (ten years: backfills
#: from an older system are taken in, a year-1 date is not) ...
MAX_REPORT_AGE = timedelta(days=3650)
#: ... and at most this long after it (terminals whose clocks run fast).
MAX_REPORT_AHEAD = timedelta(minutes=10)


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


class Intake(WorkerOperations, LifecycleActions, Regridding, Feeds, ClockWork, Rebalancing):
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
        #: The category codes in the taxonomy's order, and each one's index (the hand-over's columns).
        self._category_codes = [c.code for c in self.taxonomy.categories]
        self._category_index = {code: k for k, code in enumerate(self._category_codes)}
        # Working minutes each category allows in each state's stage (NaN: the state has no limit).
        self._limits: dict[tuple[str, State], float] = {
            (c.code, state): math.nan if stage_of(state) is None else float(getattr(c.limits, stage_of(state)))
            for c in self.taxonomy.categories for state in State
        }
        self._check_open_categories()
        self.routing = routing or RoutingRules.from_taxonomy(self.taxonomy)
        #: Positions of building codes (a dict of its own, or a live mapping such as the house registry's).
        self.buildings = dict(buildings or {}) if buildings is None or isinstance(buildings, dict) else buildings
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
        #: Callbacks of :meth:`on_inserted` (a new tuple on each change: the commit path reads it unlocked).
        self._inserted_listeners: tuple[Callable[[CommittedEvents], None], ...] = ()
        self._inserted_lock = threading.Lock()
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
        #: Each grid row's (grid, community, street, district) codes, one tuple shared by its events.
        self.hierarchy = Chains.of_layer(layer)
        self._row_by_code = self.hierarchy.row_by_code
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

    def on_inserted(self, callback: Callable[[CommittedEvents], None]) -> Callable[[], None]:
        """Call ``callback(committed)`` with the rows of each batch of new reports once its commit is
        durable (not for an insert inside an outer transaction, which commits later), in commit
        order, until the function returned is called. It runs in the committing thread, holding
        the writer, and must return at once (keep the rows, do the work elsewhere); an error in
        it is logged, not raised. Other commits (lifecycle actions, relocations, re-grids,
        escalations, other connections) are not handed on: a follower still learns of them from
        the store."""
        with self._inserted_lock:
            self._inserted_listeners = (*self._inserted_listeners, callback)

        def stop() -> None:
            with self._inserted_lock:
                self._inserted_listeners = tuple(c for c in self._inserted_listeners if c is not callback)

        return stop

    def _hand_over(self, committed: CommittedEvents) -> None:
        for callback in self._inserted_listeners:
            try:
                callback(committed)
            except Exception:  # noqa: BLE001 - a follower's bug must not fail the commit that is already done
                log.warning("an insert listener failed", exc_info=True)

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
        worker_rows = np.full(n, -1, dtype=np.int32)  # each report's worker, as the dispatcher's index
        dedup_added: list[str] = []
        auto = self.config.auto_register
        inner = self.store.in_transaction()
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
                    worker_rows[to_dispatch] = chosen
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
                first_audit = self.store.insert_events(new_rows, audit)
        except BaseException:
            for event_id in dedup_added:
                self._dedup.remove(event_id)
            raise
        if new_rows and not inner and self._inserted_listeners:
            self._hand_over(CommittedEvents(new_rows, audit, first_audit, self._insert_columns(
                new_rows, [states[k] for k in keep], deadlines, worker_rows[keep], rows[keep], now_us)))
        for k in range(n):
            t, i = fresh[k]
            if errors[k] is not None:
                t.receipts[i] = Receipt(reports[k].event_id, error=errors[k])
            else:
                t.receipts[i] = Receipt(reports[k].event_id, True, states[k], chains[k][0], status_list[k],
                                        workers[k], duplicate_of[k], received)

    def _insert_columns(self, new_rows: list[tuple], states: list[State], deadlines: list[int | None],
                        worker_rows: np.ndarray, grid_rows: np.ndarray, now_us: int) -> InsertColumns:
        """The columns a follower keeps of the rows just inserted, each made in one C pass (a map
        into ``np.fromiter``) over what the intake has at hand, not a Python step per event."""
        n = len(new_rows)
        return InsertColumns(
            occurred_us=np.fromiter(map(_OCCURRED, new_rows), np.int64, n),
            deadline_us=np.fromiter(map(_NO_DEADLINE.get, deadlines, deadlines), np.int64, n),
            state=np.fromiter(map(_STATE_INDEX.__getitem__, states), np.int8, n),
            category=np.fromiter(map(self._category_index.__getitem__, map(_CATEGORY, new_rows)), np.int32, n),
            category_codes=self._category_codes,
            source=list(map(_SOURCE, new_rows)),
            worker=worker_rows, worker_ids=self.dispatcher.worker_ids,
            grid_rows=grid_rows, chains=self.hierarchy, received_us=now_us,
        )

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
        return self.hierarchy.chains_of(rows)

    def _chain_of_code(self, grid_code: str | None) -> tuple:
        return self.hierarchy.chain_of_code(grid_code)

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

    # ------------------------------------------------------------------ helpers

    def close(self) -> None:
        with self._writer:
            self.store.close()

    def _now_us(self) -> int:
        return int(to_us(self.clock()))


# ---------------------------------------------------------------------- module helpers



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






def _parse_token(token: str) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise InvalidInput("bad page token; pass the next_page_token of the previous page")
    return int(token)


