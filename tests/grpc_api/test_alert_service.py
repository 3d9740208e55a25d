"""AlertService against a real server on a real port: events reported through IntakeService over
two weeks, a detection run at 03:00 on a public holiday (the server's intake clock), the alerts it
raises where the spikes were and nowhere else, the legal transitions and their refusals by status
code, jurisdiction, an alert turned into an event, and WatchAlerts resuming from a cursor without
a thread per stream."""

from __future__ import annotations

import threading
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import grpc
import pytest
from grpc_env import LAT0, LNG0, SPAN, VERSIONS, populate, start_server

from citygrid.engine.times import ManualClock
from citygrid.grpc_api._pb import intake_pb2

CST = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 10, 3, 3, 0, tzinfo=CST)  # 03:00 in the National Day holiday
STEP = SPAN / VERSIONS["v1"]
#: Grids with a spike of 0101 today: two in street S00, two in S10.
SPIKES = {(9, 1): "S00", (8, 3): "S00", (10, 2): "S10", (11, 0): "S10"}


def grid(i, j):
    return f"G{i:03d}{j:03d}@v1"


def report(k, i, j, at, category="0101"):
    m = intake_pb2.EventReport(event_id=f"a-{k:05d}", category_code=category, source="hotline_12345",
                               lng=LNG0 + (i + 0.5) * STEP + (k % 5) * STEP / 50, lat=LAT0 + (j + 0.5) * STEP)
    m.occurred_at.FromDatetime(at)
    return m


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("alert-data")
    populate(data_dir)
    from citygrid.grpc_api.config import ServerConfig
    env = start_server(data_dir, clock=ManualClock(NOW), alerts=ServerConfig().alerts.__class__(backfill_days=30))
    reports, k = [], 0
    for d in range(1, 15):  # one report a day at noon in every grid of the patch, the last two weeks
        at = datetime.combine(NOW.date() - timedelta(days=d), time(12), CST)
        for i in range(8, 12):
            for j in range(0, 4):
                reports.append(report(k, i, j, at))
                k += 1
    for (i, j) in SPIKES:
        for m in range(8):
            reports.append(report(k, i, j, datetime.combine(NOW.date(), time(1, m), CST)))
            k += 1
    with env.client() as admin:
        assert all(not r.HasField("error") for r in admin.submit_events(reports))
    yield env
    assert env.server.stop(1.0).wait(10)


@pytest.fixture(scope="module")
def admin(env):
    with env.client() as client:
        yield client


def token(admin, env, name, role, jurisdiction=()):
    return env.client(admin.issue_token(name, role, list(jurisdiction)).token)


@pytest.fixture(scope="module")
def run(env, admin):
    """The first detection run, by street S00's supervisor."""
    with token(admin, env, "S00 督办", "supervisor", ["S00"]) as s00:
        return s00.run_detection()


def alert_of(admin, i, j):
    [a] = [a for a in admin.list_alerts(areas=[grid(i, j)])]
    return a


def code(info) -> grpc.StatusCode:
    return info.value.code()


def test_a_run_raises_the_spikes_and_a_street_hears_of_its_own(run, admin):
    # backfill 30 days, but no day whose baseline (C3: 7 days, a 2-day gap, 2 days before) reaches
    # before the first event, 14 days ago
    assert (run.first_day, run.last_day) == ("2026-09-30", "2026-10-03")
    alerts = list(admin.list_alerts())
    assert sorted((a.unit_code, a.category_code, a.first_day, a.last_day, a.observed) for a in alerts) == \
        sorted((grid(i, j), "0101", "2026-10-03", "2026-10-03", 8.0) for i, j in SPIKES)
    assert all(a.state == "new" and a.level == "grid" and a.method == "ears C3" for a in alerts)
    s00 = {a.alert_id for a in alerts if a.street_code == "S00"}
    assert set(run.raised) == s00 and len(s00) == 2 and run.events == 16 * 14 + 8 * len(SPIKES)


def test_a_second_run_updates_instead_of_adding(run, admin, env):
    before = {a.alert_id for a in admin.list_alerts()}
    again = admin.run_detection()
    assert list(again.raised) == [] and set(again.updated) == before and again.first_day == "2026-10-03"
    assert {a.alert_id for a in admin.list_alerts()} == before


def test_roles_and_jurisdiction(run, admin, env):
    s10_alert = alert_of(admin, 10, 2)
    with token(admin, env, "S00 督办 2", "supervisor", ["S00"]) as s00:
        assert {a.street_code for a in s00.list_alerts()} == {"S00"}
        for call in (lambda: s00.get_alert(s10_alert.alert_id), lambda: s00.acknowledge_alert(s10_alert.alert_id)):
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert code(info) is grpc.StatusCode.PERMISSION_DENIED and "outside the jurisdiction" in info.value.details()
    with token(admin, env, "大屏", "dashboard") as screen:
        assert len(list(screen.list_alerts())) == len(SPIKES)
        with pytest.raises(grpc.RpcError) as info:
            screen.run_detection()
        assert code(info) is grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as info:
            screen.dismiss_alert(s10_alert.alert_id, "noise")
        assert code(info) is grpc.StatusCode.PERMISSION_DENIED
    with token(admin, env, "热线", "intake") as hotline:
        with pytest.raises(grpc.RpcError) as info:
            list(hotline.list_alerts())
        assert code(info) is grpc.StatusCode.PERMISSION_DENIED
    for bad, status in ((lambda: admin.get_alert(10**6), grpc.StatusCode.NOT_FOUND),
                        (lambda: admin.run_detection("October 1st"), grpc.StatusCode.INVALID_ARGUMENT),
                        (lambda: admin.run_detection("2026-10-09"), grpc.StatusCode.INVALID_ARGUMENT),
                        (lambda: list(admin.list_alerts(states=["open"])), grpc.StatusCode.INVALID_ARGUMENT)):
        with pytest.raises(grpc.RpcError) as info:
            bad()
        assert code(info) is status, info.value.details()


def test_transitions_and_their_refusals(run, admin):
    a = alert_of(admin, 8, 3)
    assert admin.acknowledge_alert(a.alert_id, "on it").state == "acknowledged"
    with pytest.raises(grpc.RpcError) as info:
        admin.acknowledge_alert(a.alert_id)
    assert code(info) is grpc.StatusCode.FAILED_PRECONDITION
    assert "is acknowledged by" in info.value.details() and "only new alerts can be acknowledged" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        admin.dismiss_alert(a.alert_id, "")
    assert code(info) is grpc.StatusCode.INVALID_ARGUMENT and "needs a reason" in info.value.details()
    dismissed = admin.dismiss_alert(a.alert_id, "a planned clean-up drive")
    assert (dismissed.state, dismissed.reason) == ("dismissed", "a planned clean-up drive")
    with pytest.raises(grpc.RpcError) as info:
        admin.alert_to_event(a.alert_id)
    assert code(info) is grpc.StatusCode.FAILED_PRECONDITION and "is dismissed" in info.value.details()
    audit = admin.get_alert(a.alert_id, include_audit=True).audit
    assert [c.action for c in audit] == ["raise", "update", "acknowledge", "dismiss"]


def test_an_alert_becomes_an_event(run, admin):
    a = alert_of(admin, 11, 0)
    response = admin.alert_to_event(a.alert_id, "城管 please look")
    assert response.alert.state == "event" and response.event_id == response.alert.event_id == f"alert-{a.alert_id}"
    event = admin.get_event(response.event_id).event
    assert (event.grid_code, event.category_code, event.source) == (grid(11, 0), "0101", "early_warning")
    assert [e.event_id for e in admin.list_events(source="early_warning")] == [response.event_id]


def test_watch_resumes_from_a_cursor_and_holds_no_thread(run, admin, env):
    a = alert_of(admin, 9, 1)
    with token(admin, env, "S00 值班", "supervisor", ["S00"]) as s00:
        first = []
        stream = s00.watch_alerts(timeout=60)
        for change in stream:
            first.append(change)
            if change.alert.alert_id == a.alert_id and change.action == "update":
                break
        stream.cancel()
        assert {c.alert.street_code for c in first} == {"S00"}
        assert [c.action for c in first if c.alert.alert_id == a.alert_id] == ["raise", "update"]
        cursor = first[-1].cursor
        # more open watches than the server has handler threads (8), all waiting for news
        idle = [s00.watch_alerts(after=10**9, timeout=60) for _ in range(12)]
        got = []
        resumed = s00.watch_alerts(after=cursor, timeout=60)
        reader = threading.Thread(target=lambda: got.extend(c for _, c in zip(range(3), resumed)), daemon=True)
        reader.start()
        s00.acknowledge_alert(a.alert_id, "seen on the big screen")  # a unary call still gets a thread
        reader.join(30)
        resumed.cancel()
        for stream in idle:
            stream.cancel()
        # what S00 saw after its cursor: the earlier test's acts on (8, 3), then this acknowledgement
        b = alert_of(admin, 8, 3).alert_id
        assert [(c.action, c.alert.alert_id) for c in got] == [("acknowledge", b), ("dismiss", b), ("acknowledge", a.alert_id)]
        assert got[-1].alert.state == "acknowledged" and cursor < got[0].cursor < got[1].cursor < got[2].cursor
