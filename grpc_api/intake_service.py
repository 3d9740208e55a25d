"""``citygrid.v1.IntakeService``: event intake, the case lifecycle, dispatch feeds and workers over
the engine's :class:`~citygrid.engine.cases.intake.Intake`.

The servicer converts messages to engine calls and back; the rules (roles, jurisdiction, lifecycle,
dispatch, idempotency, limits) are the engine's, and its errors map to status codes through
:mod:`citygrid.grpc_api.errors` (a refused report inside a batch or stream carries that status name in
its receipt instead).

The intake itself is held by :class:`~citygrid.engine.cases.host.IntakeHost`, built by the server
factory and given to the servicer ready-made.

The streaming methods are async and hold no thread while they wait (:mod:`citygrid.grpc_api.threads`);
their engine calls (commits, feed reads) run in the server's handler threads. ``SubmitStream`` reads
the client's reports as they come and submits whatever has arrived when the previous commit ends (at
most :data:`STREAM_BATCH`), so a client that sends without waiting for each receipt gets its reports
committed in groups; the receipts go back one per report, in order, each sent only once its report is
durable. The watch streams read their feed, and when it has nothing new wait for the intake's news
of it (:meth:`~citygrid.engine.cases.intake.Intake.on_news`) on the event loop; a call that ends (the client
goes away, its deadline passes) simply stops waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from citygrid.engine.errors import CityGridError, InvalidInput
from citygrid.engine.cases.model import (
    AuditEntry, DispatchNotice, Event, EventFilter, EventReport, OverdueNotice, Receipt,
)
from citygrid.engine.cases.host import IntakeHost
from citygrid.engine.cases.intake import Intake
from citygrid.engine.cases.rebalancing import RebalanceReport
from citygrid.engine.cases.lifecycle import State
from citygrid.engine.access.principals import Principal
from citygrid.engine.dispatch.workers import DEFAULT_CAPACITY, DEFAULT_DEPARTMENT, DEFAULT_SHIFT, Worker
from citygrid.grpc_api import convert
from citygrid.grpc_api._pb import intake_pb2, intake_pb2_grpc
from citygrid.grpc_api.convert import STATUS_OFFSET, crs_of, from_timestamp, to_timestamp
from citygrid.grpc_api.errors import details_of, status_of
from citygrid.grpc_api.interceptors import Authenticator
from citygrid.grpc_api.threads import Blocking

log = logging.getLogger("citygrid.grpc_api")

SERVICE_NAME = intake_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name
#: Most reports of a SubmitStream that go into one commit.
STREAM_BATCH = 1000
#: Page size when a request gives none.
DEFAULT_PAGE_SIZE = 100
#: Notices a watch stream reads at a time.
WATCH_PAGE = 100


class IntakeServicer(intake_pb2_grpc.IntakeServiceServicer):
    def __init__(self, host: IntakeHost, auth: Authenticator, blocking: Blocking):
        self._host = host
        self._auth = auth
        self._blocking = blocking

    # ------------------------------------------------------------------ intake

    def SubmitEvents(self, request, context):
        principal = self._auth.principal()
        if not request.events:
            raise InvalidInput("the batch is empty; send at least one report")
        response = intake_pb2.SubmitEventsResponse()
        _receipts(_submit(self._host.intake(), request.events, principal), response.receipts.add)
        return response

    async def SubmitStream(self, request_iterator, context):
        principal = self._auth.principal()
        intake = await self._blocking(self._host.intake)
        inbox: asyncio.Queue = asyncio.Queue()
        reader = asyncio.ensure_future(_read_into(request_iterator, inbox))
        try:
            finished = False
            while not finished:
                batch = [await inbox.get()]
                while len(batch) < STREAM_BATCH and not inbox.empty():
                    batch.append(inbox.get_nowait())
                if batch[-1] is _END:
                    batch.pop()
                    finished = True
                elif isinstance(batch[-1], BaseException):
                    raise batch[-1]
                if batch:
                    for receipt in _receipts(await self._blocking(_submit, intake, batch, principal)):
                        yield receipt
        finally:
            reader.cancel()

    def GetEvent(self, request, context):
        principal = self._auth.principal()
        intake = self._host.intake()
        response = intake_pb2.GetEventResponse(event=_event(intake.get(request.event_id, principal)))
        if request.include_audit:
            response.audit.extend(_audit(a) for a in intake.audit(request.event_id, principal))
        return response

    def UpdateStatus(self, request, context):
        principal = self._auth.principal()
        minutes = request.minutes if request.HasField("minutes") else None
        event = self._host.intake().act(request.event_id, request.action, principal, note=request.note,
                                        worker_id=request.worker_id or None, minutes=minutes)
        return _event(event)

    def RelocateEvent(self, request, context):
        principal = self._auth.principal()
        event = self._host.intake().relocate(
            request.event_id, principal, lng=_optional(request, "lng"), lat=_optional(request, "lat"),
            crs=crs_of(request.crs).stored_name, building_code=request.building_code or None, note=request.note,
        )
        return _event(event)

    def ListEvents(self, request, context):
        principal = self._auth.principal()
        where = EventFilter(
            states=tuple(_state(s) for s in request.states),
            category_codes=tuple(request.category_codes),
            areas=tuple(request.areas),
            worker_id=request.worker_id or None,
            source=request.source or None,
            occurred_from=from_timestamp(request, "occurred_from"),
            occurred_to=from_timestamp(request, "occurred_to"),
            overdue_at=from_timestamp(request, "overdue_at"),
            duplicate_of=request.duplicate_of or None,
        )
        page = self._host.intake().list(principal, where, page_size=_page_size(request.page_size),
                                        page_token=request.page_token)
        return intake_pb2.ListEventsResponse(events=[_event(e) for e in page.events],
                                             next_page_token=page.next_page_token)

    # ------------------------------------------------------------------ feeds

    async def WatchDispatches(self, request, context):
        principal = self._auth.principal()
        worker_id = request.worker_id or principal.worker_id
        if not worker_id:
            raise InvalidInput("name the worker_id to watch (only a worker's own token may leave it empty)")
        intake = await self._blocking(self._host.intake)
        read = functools.partial(intake.dispatches, worker_id, principal, limit=WATCH_PAGE)
        async with contextlib.aclosing(_watch(self._blocking, intake, worker_id, request.after, read)) as notices:
            async for notice in notices:
                yield _dispatch_notice(notice)

    async def WatchOverdue(self, request, context):
        principal = self._auth.principal()
        intake = await self._blocking(self._host.intake)
        read = functools.partial(intake.overdue, principal, limit=WATCH_PAGE)
        async with contextlib.aclosing(_watch(self._blocking, intake, None, request.after, read)) as notices:
            async for notice in notices:
                yield _overdue_notice(notice)

    # ------------------------------------------------------------------ dispatch and workers

    def Rebalance(self, request, context):
        principal = self._auth.principal()
        report = self._host.intake().rebalance(
            principal, max_hops=request.max_hops if request.HasField("max_hops") else None,
            apply=not request.dry_run, respect_shifts=request.respect_shifts,
        )
        return _rebalance(report)

    def PutWorkers(self, request, context):
        principal = self._auth.principal()
        if not request.workers:
            raise InvalidInput("no workers given")
        count = self._host.intake().put_workers([_worker_in(w) for w in request.workers], principal)
        return intake_pb2.PutWorkersResponse(count=count)

    def SetDuty(self, request, context):
        principal = self._auth.principal()
        return _worker_out(self._host.intake().set_duty(request.worker_id, request.on_duty, principal))

    def GetWorker(self, request, context):
        principal = self._auth.principal()
        return _worker_out(self._host.intake().get_worker(request.worker_id, principal))

    def ListWorkers(self, request, context):
        principal = self._auth.principal()
        workers, token = self._host.intake().list_workers(
            principal, page_size=_page_size(request.page_size), page_token=request.page_token,
            grid_codes=list(request.grid_codes) or None,
        )
        return intake_pb2.ListWorkersResponse(workers=[_worker_out(w) for w in workers], next_page_token=token)


# ---------------------------------------------------------------------- submitting


def _submit(intake: Intake, messages, principal: Principal) -> list[Receipt]:
    """Receipts for report messages in order; one that does not convert (no time, an unknown
    coordinate system) gets its error receipt like any other refused report."""
    receipts: list[Receipt | None] = [None] * len(messages)
    reports, positions = [], []
    for k, m in enumerate(messages):
        try:
            reports.append(_report(m))
            positions.append(k)
        except CityGridError as exc:
            receipts[k] = Receipt(m.event_id, error=exc)
    if reports:
        for k, receipt in zip(positions, intake.submit(reports, principal)):
            receipts[k] = receipt
    return receipts


# ---------------------------------------------------------------------- streams

_END = object()


async def _read_into(request_iterator, inbox: asyncio.Queue) -> None:
    """Move a stream's requests into ``inbox``, then :data:`_END` (or the error that ended it)."""
    try:
        async for message in request_iterator:
            inbox.put_nowait(message)
        inbox.put_nowait(_END)
    except Exception as exc:  # noqa: BLE001 - handed to the stream's coroutine, which raises it
        inbox.put_nowait(exc)


async def _watch(blocking: Blocking, intake: Intake, worker_id: str | None, after: int, read):
    """The notices of a feed (``worker_id``'s dispatches; ``None``: the overdue feed) after the
    cursor ``after``, for as long as the call lasts: ``read(after=cursor)`` in a handler thread, and when
    it has nothing new, a wait for the intake's news of the feed that holds no thread."""
    loop = asyncio.get_running_loop()
    news = asyncio.Event()
    stop = intake.on_news(lambda: loop.call_soon_threadsafe(news.set), worker_id)
    try:
        cursor = after
        while True:
            news.clear()  # before the read: news committed after this point wakes the wait below
            notices = await blocking(read, after=cursor)
            for notice in notices:
                yield notice
                cursor = notice.cursor
            if len(notices) < WATCH_PAGE:  # all there is: wait for news
                await news.wait()
    finally:
        stop()


# ---------------------------------------------------------------------- conversions


def _optional(message, name: str):
    return getattr(message, name) if message.HasField(name) else None


def _report(m: intake_pb2.EventReport) -> EventReport:
    occurred = from_timestamp(m, "occurred_at")
    if occurred is None:
        raise InvalidInput(f"event {m.event_id}: occurred_at is required")
    has = m.HasField
    return EventReport(
        m.event_id, m.category_code, occurred, m.source, m.lng if has("lng") else None,
        m.lat if has("lat") else None, crs_of(m.crs).stored_name, m.building_code or None, m.reporter, m.description,
        tuple(m.attachments),
    )


def _receipts(receipts, make=intake_pb2.Receipt) -> list[intake_pb2.Receipt]:
    """Receipt messages made by ``make`` (a new message, or ``response.receipts.add`` to build them
    in place); the reports of one commit share their received time, converted once."""
    stamps: dict[datetime, Timestamp] = {}
    out = []
    for r in receipts:
        if r.error is not None:
            code = status_of(r.error)
            out.append(make(event_id=r.event_id, error=intake_pb2.ReportError(
                code=code.name if code is not None else "INTERNAL", message=details_of(r.error))))
            continue
        received = stamps.get(r.received_at)
        if received is None and r.received_at is not None:
            received = stamps[r.received_at] = to_timestamp(r.received_at)
        out.append(make(
            event_id=r.event_id, created=r.created, state=r.state.value if r.state else "",
            grid_code=r.grid_code or "", worker_id=r.worker_id or "", duplicate_of=r.duplicate_of or "",
            locate_status=r.locate_status + STATUS_OFFSET if r.locate_status is not None else 0, received_at=received,
        ))
    return out


def _position(position: tuple[float, float] | None) -> intake_pb2.Position | None:
    return None if position is None else intake_pb2.Position(lng=position[0], lat=position[1])


def _event(e: Event) -> intake_pb2.Event:
    return intake_pb2.Event(
        event_id=e.event_id, seq=e.seq, category_code=e.category_code, occurred_at=to_timestamp(e.occurred_at),
        received_at=to_timestamp(e.received_at), source=e.source, reporter=e.reporter, description=e.description,
        attachments=list(e.attachments), lng=e.lng, lat=e.lat, crs=e.crs, building_code=e.building_code or "",
        position=_position(e.position), grid_code=e.grid_code or "", community_code=e.community_code or "",
        street_code=e.street_code or "", district_code=e.district_code or "",
        locate_status=convert.point_status(e.locate_status), layer_version=e.layer_version or "",
        state=e.state.value, state_label=e.state.label, worker_id=e.worker_id or "",
        duplicate_of=e.duplicate_of or "", stage_started=to_timestamp(e.stage_started),
        deadline=to_timestamp(e.deadline), escalation=e.escalation, updated_at=to_timestamp(e.updated_at),
    )


def _audit(a: AuditEntry) -> intake_pb2.AuditEntry:
    return intake_pb2.AuditEntry(
        seq=a.seq, at=to_timestamp(a.at), principal=a.principal, role=a.role, action=a.action,
        from_state=a.from_state.value if a.from_state else "", to_state=a.to_state.value,
        worker_id=a.worker_id or "", note=a.note,
    )


def _dispatch_notice(n: DispatchNotice) -> intake_pb2.DispatchNotice:
    return intake_pb2.DispatchNotice(
        cursor=n.cursor, event_id=n.event_id, worker_id=n.worker_id, kind=n.kind, at=to_timestamp(n.at),
        action=n.action, category_code=n.category_code, grid_code=n.grid_code or "",
        position=_position(n.position), deadline=to_timestamp(n.deadline), description=n.description,
    )


def _overdue_notice(n: OverdueNotice) -> intake_pb2.OverdueNotice:
    return intake_pb2.OverdueNotice(
        cursor=n.cursor, event_id=n.event_id, level=n.level, unit_code=n.unit_code or "", at=to_timestamp(n.at),
        state=n.state.value, stage=n.stage, deadline=to_timestamp(n.deadline), overdue_minutes=n.overdue_minutes,
        grid_code=n.grid_code or "", worker_id=n.worker_id or "",
    )


def _rebalance(r: RebalanceReport) -> intake_pb2.RebalanceResponse:
    return intake_pb2.RebalanceResponse(
        events=r.events, assigned=r.assigned, moved=r.moved, before=intake_pb2.LoadSummary(**r.before),
        after=intake_pb2.LoadSummary(**r.after), applied=r.applied,
        moves=[intake_pb2.Move(event_id=e, from_worker_id=f or "", to_worker_id=t) for e, f, t in r.moves],
    )


def _worker_in(m: intake_pb2.Worker) -> Worker:
    return Worker(
        worker_id=m.worker_id, grid_code=m.grid_code, name=m.name, department=m.department or DEFAULT_DEPARTMENT,
        skills=frozenset(m.skills), shift=m.shift or DEFAULT_SHIFT,
        capacity=m.capacity if m.HasField("capacity") else DEFAULT_CAPACITY,
        on_duty=m.on_duty if m.HasField("on_duty") else None, active=m.active if m.HasField("active") else True,
    )


def _worker_out(w: Worker) -> intake_pb2.Worker:
    return intake_pb2.Worker(
        worker_id=w.worker_id, grid_code=w.grid_code, name=w.name, department=w.department,
        skills=sorted(w.skills), shift=w.shift, capacity=w.capacity, on_duty=w.on_duty, active=w.active,
    )


def _state(value: str) -> State:
    try:
        return State(value)
    except ValueError:
        raise InvalidInput(f"unknown state {value!r}; states are {', '.join(s.value for s in State)}") from None


def _page_size(size: int) -> int:
    return size or DEFAULT_PAGE_SIZE


def add_to_server(server: grpc.Server, servicer: IntakeServicer) -> str:
    """Register ``servicer`` on ``server``; return the service's full name."""
    intake_pb2_grpc.add_IntakeServiceServicer_to_server(servicer, server)
    return SERVICE_NAME
