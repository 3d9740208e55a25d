"""IntakeService over an in-process server (the module's ``env``: layer v1, 20 x 20 boxes, one grid
worker per box): intake and idempotency, stream acks, the lifecycle with its roles and jurisdiction,
the status code of each refusal, the dispatch feed resumed across a reconnect, relocation."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
import grpc
import pytest
from grpc_env import LAT0, LNG0, NOW, SPAN, VERSIONS, populate, start_server

from citygrid.engine.times import ManualClock
from citygrid.engine.cases.model import EventReport
from citygrid.engine.cases.intake import MAX_BATCH
from citygrid.engine.layers.registry import LayerRegistry
from citygrid.engine.cases.taxonomy import load_taxonomy
from citygrid.engine.dispatch.worktime import WorkSchedule
from citygrid.grpc_api._pb import intake_pb2
from citygrid.grpc_api.client import CityGridClient
from citygrid.engine.cases.host import LAYER_ACTIVATION, IntakeHost
from citygrid.engine.cases.settings import IntakeSettings

N = VERSIONS["v1"]
STEP = SPAN / N
TAXONOMY = load_taxonomy()
CATEGORIES = [c.code for c in TAXONOMY.categories]
CLASSES = sorted({c.class_code for c in TAXONOMY.categories})
_ids = itertools.count()


def grid(i: int, j: int) -> str:
    return f"G{i:03d}{j:03d}@v1"


def community(i: int, j: int) -> str:
    return f"C{i // 5}{j // 5}"


def worker_of(i: int, j: int) -> str:
    return f"W{i:02d}{j:02d}"


def report(i: int, j: int, *, category: str = "0101", dx: float = 0.0, dy: float = 0.0, event_id: str | None = None,
           **fields) -> intake_pb2.EventReport:
    """A report at the centre of box (i, j) of v1, moved by (dx, dy) degrees."""
    values = dict(event_id=event_id or f"t-{next(_ids):06d}", category_code=category, source="hotline_12345",
                  lng=LNG0 + (i + 0.5) * STEP + dx, lat=LAT0 + (j + 0.5) * STEP + dy)
    values.update(fields)
    message = intake_pb2.EventReport(**values)
    message.occurred_at.FromDatetime(NOW)
    return message


@pytest.fixture(scope="module")
def staffed(env):
    """One grid worker per box of v1, always on shift, every skill, room for plenty of events."""
    with env.client() as admin:
        workers = [
            intake_pb2.Worker(worker_id=worker_of(i, j), grid_code=grid(i, j), name=f"网格员{i}-{j}",
                              skills=CLASSES, shift="always", capacity=1000)
            for i in range(N) for j in range(N)
        ]
        assert admin.intake.PutWorkers(intake_pb2.PutWorkersRequest(workers=workers),
                                       metadata=admin.metadata).count == N * N
    return env


def client_as(env, admin: CityGridClient, name: str, role: str, jurisdiction=(), worker_id: str = "") -> CityGridClient:
    secret = admin.issue_token(name, role, jurisdiction, worker_id=worker_id).token
    return env.client(secret)


def code_of(exc_info) -> grpc.StatusCode:
    return exc_info.value.code()


# ---------------------------------------------------------------------- intake


def test_batch_is_placed_dispatched_and_idempotent(staffed, admin):
    reports = [report(1, 2), report(3, 4, category=CATEGORIES[5]), report(7, 7, category=CATEGORIES[9])]
    receipts = admin.submit_events(reports)
    assert [r.error.code for r in receipts] == ["", "", ""]
    assert all(r.created for r in receipts)
    assert [r.grid_code for r in receipts] == [grid(1, 2), grid(3, 4), grid(7, 7)]
    assert [r.state for r in receipts] == ["dispatched"] * 3
    assert [r.worker_id for r in receipts] == [worker_of(1, 2), worker_of(3, 4), worker_of(7, 7)]

    # The server's intake runs on the injected clock: received then, the handling deadline counted from then.
    stored = admin.get_event(receipts[0].event_id).event
    limit = TAXONOMY.category(reports[0].category_code).limits.handle
    assert stored.received_at.ToDatetime(tzinfo=timezone.utc) == NOW
    assert stored.deadline.ToDatetime(tzinfo=timezone.utc) == WorkSchedule().add_working_minutes(NOW, limit)

    again = admin.submit_events(reports)
    assert [r.created for r in again] == [False] * 3
    assert [(r.event_id, r.worker_id, r.grid_code) for r in again] == [
        (r.event_id, r.worker_id, r.grid_code) for r in receipts]

    changed = report(1, 2, event_id=reports[0].event_id, description="other content under the same id")
    [conflict] = admin.submit_events([changed])
    assert conflict.error.code == "ALREADY_EXISTS"
    assert reports[0].event_id in conflict.error.message
    stored = list(admin.list_events(areas=[grid(1, 2)]))
    assert [e.event_id for e in stored].count(reports[0].event_id) == 1
    assert admin.get_event(reports[0].event_id).event.description == ""


def test_stream_acknowledges_each_report_in_order(staffed, admin):
    reports = [report(k % N, 10, category=CATEGORIES[k % len(CATEGORIES)], dy=(k // N) * 0.001) for k in range(60)]
    reports[10] = report(0, 0, lng=200.0)
    reports[20] = report(0, 0, category="no-such-category")
    receipts = list(admin.submit_stream(reports))
    assert [r.event_id for r in receipts] == [r.event_id for r in reports]
    assert receipts[10].error.code == "INVALID_ARGUMENT"
    assert receipts[20].error.code == "INVALID_ARGUMENT" and "no-such-category" in receipts[20].error.message
    good = [r for k, r in enumerate(receipts) if k not in (10, 20)]
    assert all(r.created and not r.error.code for r in good)
    assert all(r.state in ("dispatched", "duplicate") for r in good)
    for r in good[:5]:
        assert admin.get_event(r.event_id).event.state == r.state


# ---------------------------------------------------------------------- lifecycle


def test_lifecycle_roles_and_jurisdiction(staffed, admin):
    [receipt] = admin.submit_events([report(2, 2)])
    event_id, worker_id = receipt.event_id, receipt.worker_id
    assert worker_id == worker_of(2, 2)
    worker = client_as(staffed, admin, "网格员2-2", "worker", [grid(2, 2)], worker_id=worker_id)
    other_worker = client_as(staffed, admin, "网格员3-3", "worker", [grid(3, 3)], worker_id=worker_of(3, 3))
    verifier = client_as(staffed, admin, "李核查", "verifier", [community(2, 2)])
    dispatcher = client_as(staffed, admin, "王调度", "dispatcher", [community(2, 2)])
    far_dispatcher = client_as(staffed, admin, "远调度", "dispatcher", [community(19, 19)])
    with worker, other_worker, verifier, dispatcher, far_dispatcher:
        with pytest.raises(grpc.RpcError) as info:
            other_worker.update_status(event_id, "handle")
        assert code_of(info) is grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as info:
            far_dispatcher.update_status(event_id, "dispatch")
        assert code_of(info) is grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as info:
            verifier.update_status(event_id, "handle")
        assert code_of(info) is grpc.StatusCode.PERMISSION_DENIED  # a verifier does not handle

        assert worker.update_status(event_id, "handle").state == "handling"
        assert worker.update_status(event_id, "feedback", note="cleaned up").state == "fed_back"
        with pytest.raises(grpc.RpcError) as info:
            dispatcher.update_status(event_id, "close")
        assert code_of(info) is grpc.StatusCode.FAILED_PRECONDITION
        assert "fed_back" in info.value.details()
        assert verifier.update_status(event_id, "verify").state == "verified"
        closed = dispatcher.update_status(event_id, "close")
        assert closed.state == "closed" and closed.state_label == "已结案"
        with pytest.raises(grpc.RpcError) as info:
            dispatcher.update_status(event_id, "close")
        assert code_of(info) is grpc.StatusCode.FAILED_PRECONDITION

    audit = admin.get_event(event_id, include_audit=True).audit
    assert [(a.action, a.from_state, a.to_state) for a in audit] == [
        ("report", "", "dispatched"), ("handle", "dispatched", "handling"), ("feedback", "handling", "fed_back"),
        ("verify", "fed_back", "verified"), ("close", "verified", "closed"),
    ]
    assert [a.principal for a in audit[1:]] == ["网格员2-2", "网格员2-2", "李核查", "王调度"]


def test_not_found_and_invalid_arguments(staffed, admin):
    for call in (lambda: admin.get_event("no-such-event"), lambda: admin.update_status("no-such-event", "handle")):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert code_of(info) is grpc.StatusCode.NOT_FOUND
        assert "no-such-event" in info.value.details()
    far_future = report(0, 0)
    far_future.occurred_at.seconds = 10**13  # past the year 9999
    no_time = report(0, 0)
    no_time.ClearField("occurred_at")
    bad = admin.submit_events([report(0, 0, lat=95.0), report(0, 0, category="9999"), report(0, 0, source=""),
                               far_future, no_time, report(17, 6)])  # a box no other test reports in
    assert [r.error.code for r in bad] == ["INVALID_ARGUMENT"] * 5 + [""]  # the good one is still taken in
    assert "9999" in bad[1].error.message
    assert "not a time between the years 1 and 9999" in bad[3].error.message
    assert "occurred_at is required" in bad[4].error.message
    [ok] = admin.submit_events([report(5, 5)])
    with pytest.raises(grpc.RpcError) as info:
        admin.intake.RelocateEvent(intake_pb2.RelocateEventRequest(event_id=ok.event_id, lng=114.2, lat=95.0),
                                   metadata=admin.metadata)
    assert code_of(info) is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:
        admin.update_status(ok.event_id, "teleport")
    assert code_of(info) is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:
        list(admin.list_events(states=["lost"]))
    assert code_of(info) is grpc.StatusCode.INVALID_ARGUMENT


def test_reports_from_year_1_or_9999_or_an_unknown_channel_are_refused_in_their_receipts(staffed, admin):
    """The server's window is its clock minus 3,650 days to plus 10 minutes by default; the
    reports' times are taken from the same (injected) clock, so the test holds at any hour."""
    def at(when: datetime, **fields) -> intake_pb2.EventReport:
        message = report(18, 3, **fields)  # a box no other test reports in
        message.occurred_at.FromDatetime(when)
        return message

    now = NOW  # the server intake's (injected) clock
    batch = [at(datetime(1, 1, 1, tzinfo=timezone.utc)), at(datetime(9999, 12, 31, tzinfo=timezone.utc)),
             at(now + timedelta(minutes=30)), at(now - timedelta(days=3651)), at(now, source="pigeon"),
             at(now - timedelta(days=3600), dx=0.001), at(now, source="iot_sensor", dy=0.001)]
    receipts = admin.submit_events(batch)
    assert [r.error.code for r in receipts] == ["INVALID_ARGUMENT"] * 5 + ["", ""]
    assert all("outside the accepted window" in r.error.message for r in receipts[:4])
    assert "unknown source 'pigeon'" in receipts[4].error.message
    assert all(r.created for r in receipts[5:])


def test_oversized_batch_is_resource_exhausted(staffed, admin):
    reports = [report(0, 0, event_id=f"big-{k}") for k in range(MAX_BATCH + 1)]
    with pytest.raises(grpc.RpcError) as info:
        admin.submit_events(reports)
    assert code_of(info) is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(MAX_BATCH) in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        admin.get_event("big-0")
    assert code_of(info) is grpc.StatusCode.NOT_FOUND  # nothing of the refused batch was stored


def test_intake_outside_jurisdiction_and_wrong_role(staffed, admin):
    with client_as(staffed, admin, "社区热线", "intake", [community(0, 0)]) as local:
        inside, outside = local.submit_events([report(1, 1), report(18, 18)])
        assert inside.state == "dispatched"
        assert outside.error.code == "PERMISSION_DENIED"
        with pytest.raises(grpc.RpcError) as info:
            local.intake.PutWorkers(intake_pb2.PutWorkersRequest(workers=[
                intake_pb2.Worker(worker_id="X1", grid_code=grid(1, 1))]), metadata=local.metadata)
        assert code_of(info) is grpc.StatusCode.PERMISSION_DENIED


# ---------------------------------------------------------------------- feeds and relocation


def test_watch_dispatches_resumes_from_cursor_without_missing_any(staffed, admin):
    i, j = 12, 3
    me = worker_of(i, j)
    with client_as(staffed, admin, "网格员12-3", "worker", [grid(i, j)], worker_id=me) as worker:
        # whatever this worker already had: the feed starts after it
        start = max((n.cursor for n in _drain(worker, me, 0)), default=0)
        first = admin.submit_events([report(i, j, category=CATEGORIES[k]) for k in range(5)])
        stream = worker.watch_dispatches(after=start, timeout=30)
        seen = [next(stream) for _ in range(3)]
        stream.cancel()
        second = admin.submit_events([report(i, j, category=CATEGORIES[5 + k]) for k in range(5)])
        resumed = worker.watch_dispatches(after=seen[-1].cursor, timeout=30)
        seen += [next(resumed) for _ in range(7)]
        resumed.cancel()
    expected = [r.event_id for r in first + second]
    assert all(r.worker_id == me for r in first + second)
    assert [n.event_id for n in seen] == expected
    assert all(n.kind == "dispatched" and n.worker_id == me for n in seen)
    assert [n.cursor for n in seen] == sorted({n.cursor for n in seen})


def _drain(client: CityGridClient, worker_id: str, after: int) -> list[intake_pb2.DispatchNotice]:
    """The feed's notices so far (the stream ends at its deadline)."""
    out = []
    try:
        for notice in client.watch_dispatches(worker_id, after=after, timeout=1.5):
            out.append(notice)
    except grpc.RpcError as exc:
        assert exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    return out


def test_relocate_reassigns_grid_and_redispatches(staffed, admin):
    [receipt] = admin.submit_events([report(15, 15, category=CATEGORIES[2])])
    assert receipt.worker_id == worker_of(15, 15)
    moved = admin.intake.RelocateEvent(intake_pb2.RelocateEventRequest(
        event_id=receipt.event_id, lng=LNG0 + 16.5 * STEP, lat=LAT0 + 15.5 * STEP, note="wrong side of the road"),
        metadata=admin.metadata)
    assert moved.grid_code == grid(16, 15)
    assert moved.worker_id == worker_of(16, 15) and moved.state == "dispatched"
    notices = _drain(admin, worker_of(16, 15), 0)
    assert receipt.event_id in [n.event_id for n in notices if n.kind == "dispatched"]
    revoked = _drain(admin, worker_of(15, 15), 0)
    assert receipt.event_id in [n.event_id for n in revoked if n.kind == "revoked"]


def test_workers_through_the_api(staffed, admin):
    w = admin.intake.GetWorker(intake_pb2.GetWorkerRequest(worker_id=worker_of(4, 4)), metadata=admin.metadata)
    assert w.grid_code == grid(4, 4) and w.on_duty and w.active and w.capacity == 1000
    page = admin.intake.ListWorkers(intake_pb2.ListWorkersRequest(page_size=7), metadata=admin.metadata)
    assert len(page.workers) == 7 and page.next_page_token
    off = admin.intake.SetDuty(intake_pb2.SetDutyRequest(worker_id=worker_of(4, 4), on_duty=False),
                               metadata=admin.metadata)
    assert not off.on_duty
    [receipt] = admin.submit_events([report(4, 4, category=CATEGORIES[7])])
    assert receipt.state == "dispatched" and receipt.worker_id != worker_of(4, 4)  # a neighbour takes it
    admin.intake.SetDuty(intake_pb2.SetDutyRequest(worker_id=worker_of(4, 4), on_duty=True), metadata=admin.metadata)
    plan = admin.intake.Rebalance(intake_pb2.RebalanceRequest(dry_run=True), metadata=admin.metadata)
    assert not plan.applied and plan.events >= 1 and plan.after.max_load <= plan.before.max_load


def test_activating_a_version_moves_the_open_events(tmp_path):
    """The host follows an activation: the open events go to their grid of the new version (each
    v1 box code differs from v2's), audited as the layer activation's."""
    populate(tmp_path)
    registry = LayerRegistry(tmp_path)
    host = IntakeHost(tmp_path, registry, IntakeSettings(clock_interval=3600), clock=ManualClock(NOW))
    try:
        intake = host.intake()
        step = SPAN / VERSIONS["v1"]
        event = EventReport("act-1", "0101", NOW, "hotline_12345", LNG0 + 0.5 * step, LAT0 + 0.5 * step)
        assert intake.submit_one(event, LAYER_ACTIVATION).grid_code == "G000000@v1"
        registry.activate("v2")
        moved = host.intake().get("act-1", LAYER_ACTIVATION)
        assert (moved.grid_code, moved.layer_version) == ("G000000@v2", "v2")
        relocation = [a for a in intake.audit("act-1", LAYER_ACTIVATION) if a.action == "relocate"]
        assert [a.principal for a in relocation] == ["layer-activation"] and "v1 -> v2" in relocation[0].note
    finally:
        host.close()
        registry.close()


def test_duty_set_by_set_duty_survives_a_server_restart(tmp_path):
    """SetDuty off, stop the server, start another on the same data directory and load the same
    roster again (as ``serve --demo`` does at every start): the worker is still off duty and a report
    in their box goes to their neighbour."""
    populate(tmp_path)
    roster = [intake_pb2.Worker(worker_id=worker_of(i, 0), grid_code=grid(i, 0), skills=CLASSES, shift="always")
              for i in (0, 1)]
    first = start_server(tmp_path)
    try:
        with first.client() as admin:
            admin.intake.PutWorkers(intake_pb2.PutWorkersRequest(workers=roster), metadata=admin.metadata)
            off = admin.intake.SetDuty(intake_pb2.SetDutyRequest(worker_id=worker_of(0, 0), on_duty=False),
                                       metadata=admin.metadata)
            assert not off.on_duty
    finally:
        assert first.server.stop(0).wait(10)
    second = start_server(tmp_path)
    try:
        with second.client() as admin:
            admin.intake.PutWorkers(intake_pb2.PutWorkersRequest(workers=roster), metadata=admin.metadata)
            again = admin.intake.GetWorker(intake_pb2.GetWorkerRequest(worker_id=worker_of(0, 0)),
                                           metadata=admin.metadata)
            assert not again.on_duty
            [receipt] = admin.submit_events([report(0, 0)])
            assert (receipt.state, receipt.worker_id) == ("dispatched", worker_of(1, 0))
    finally:
        assert second.server.stop(0).wait(10)
