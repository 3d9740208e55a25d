"""AnalyticsService over a real server on a real port (the module's ``env``: layer v1, 20 x 20 boxes
in communities of 5 x 5 and streets of 10 x 10): a query right after SubmitEvents counts those
events; answers match an independent count of the receipts (columns and Arrow alike); a street's
token sees its street only; H3 cells match h3-py on the points sent; each bad input gets its precise
status; WatchTallies pushes the changed counts and holds no handler thread while it waits."""

from __future__ import annotations

import collections
import itertools
import threading
import time
from datetime import timedelta

import grpc
import h3
import numpy as np
import pytest
from grpc_env import LAT0, LNG0, NOW, SPAN, VERSIONS, populate, start_server

from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.analytics.queries import Analytics
from citygrid.engine.cases.taxonomy import load_taxonomy
from citygrid.engine.times import ManualClock
from citygrid.grpc_api import analytics_service
from citygrid.grpc_api._pb import analytics_pb2, intake_pb2

N = VERSIONS["v1"]
STEP = SPAN / N
CATEGORIES = [c.code for c in load_taxonomy().categories][:8]
DAY = (NOW - timedelta(days=1), NOW + timedelta(hours=1))
ADMIN = Principal("test", Role.ADMIN)
_ids = itertools.count()


def street_of(grid_code: str) -> str:
    i, j = int(grid_code[1:4]), int(grid_code[4:7])
    return f"S{i // 10}{j // 10}"


def reports(rng, n: int, *, at=NOW, box=None) -> list[intake_pb2.EventReport]:
    """``n`` reports at random points (of one box (i, j) when ``box``), minutes before ``at``."""
    out = []
    for k in range(n):
        if box is None:
            lng, lat = LNG0 + rng.uniform(0.0005, SPAN - 0.0005), LAT0 + rng.uniform(0.0005, SPAN - 0.0005)
        else:
            lng, lat = LNG0 + (box[0] + rng.uniform(0.1, 0.9)) * STEP, LAT0 + (box[1] + rng.uniform(0.1, 0.9)) * STEP
        m = intake_pb2.EventReport(event_id=f"a-{next(_ids):06d}", category_code=CATEGORIES[k % len(CATEGORIES)],
                                   source="hotline_12345", lng=lng, lat=lat)
        m.occurred_at.FromDatetime(at - timedelta(minutes=int(rng.integers(0, 600))))
        out.append(m)
    return out


@pytest.fixture(scope="module")
def sent(env):
    """Reports sent before the module's queries: (report, receipt) pairs."""
    rng = np.random.default_rng(12)
    batch = reports(rng, 400)
    with env.client() as admin:
        receipts = admin.submit_events(batch)
    assert all(not r.HasField("error") for r in receipts)
    return list(zip(batch, receipts))


def _client(env, admin, name, role, jurisdiction=(), worker_id=""):
    return env.client(admin.issue_token(name, role, list(jurisdiction), worker_id=worker_id).token)


def _counts(table, key: str, measure: str = "reported") -> dict:
    return dict(zip(table.column(key).to_pylist(), table.column(measure).to_pylist()))


def test_a_query_right_after_submit_counts_the_new_events(env, sent, admin):
    before = admin.aggregate(*DAY).column("reported").to_pylist()
    batch = reports(np.random.default_rng(1), 37)
    admin.submit_events(batch)
    after = admin.aggregate(*DAY).column("reported").to_pylist()
    assert after == [before[0] + 37]


def test_a_remembered_answer_is_handed_back_on_the_event_loop_and_a_submit_is_counted(env, sent, admin,
                                                                                      monkeypatch):
    """An answer the engine remembers comes back from the event loop (no handler thread); counting
    happens in handler threads; a query right after SubmitEvents still counts those events."""
    where = []
    at_hand, remembered = Analytics.at_hand, Analytics.remembered

    def spy_at_hand(self, question, principal):
        answer = at_hand(self, question, principal)
        if answer is not None:
            where.append(("at hand", threading.current_thread().name))
        return answer

    def spy_remembered(self, question, principal, compute):
        if question[0] == "grpc":
            where.append(("asked", threading.current_thread().name))
        return remembered(self, question, principal, compute)

    monkeypatch.setattr(Analytics, "at_hand", spy_at_hand)
    monkeypatch.setattr(Analytics, "remembered", spy_remembered)
    answers = [admin.aggregate(*DAY).column("reported").to_pylist() for _ in range(6)]
    assert answers == answers[:1] * 6
    assert ("at hand", "citygrid-aio") in where, where
    assert all(name.startswith("citygrid-grpc") for kind, name in where if kind == "asked"), where
    admin.submit_events(reports(np.random.default_rng(3), 11))
    assert admin.aggregate(*DAY).column("reported").to_pylist() == [answers[0][0] + 11]


def test_a_revoked_token_is_refused_on_the_next_call_though_its_answer_is_at_hand(env, sent, admin):
    issued = admin.issue_token("大屏-撤销", "dashboard")
    with env.client(issued.token) as screen:
        first = screen.top_areas(*DAY, level="street")
        assert [screen.top_areas(*DAY, level="street") for _ in range(3)] == [first] * 3
        admin.revoke_token(issued.info.token_id)
        with pytest.raises(grpc.RpcError) as info:
            screen.top_areas(*DAY, level="street")
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in info.value.details()


def test_counts_by_street_and_category_match_the_receipts(env, sent, admin):
    table = admin.aggregate(*DAY, dimensions=["street", "category"], measures=["reported", "registered"],
                            filters={"source": ["hotline_12345"]}, bucket="day")
    assert table.column_names == ["street", "category", "day", "reported", "registered"]
    got = collections.Counter()
    for street, category, reported in zip(*(table.column(c).to_pylist() for c in ("street", "category", "reported"))):
        got[street, category] += reported
    # Every event the module sent (this test's fixture and the others sent before it) is in the day.
    events = list(admin.list_events(occurred_from=_ts(DAY[0]), occurred_to=_ts(DAY[1])))
    expected = collections.Counter((street_of(e.grid_code), e.category_code) for e in events)
    assert got == expected and sum(expected.values()) >= len(sent)


def test_arrow_answers_equal_column_answers(admin, sent, monkeypatch):
    columns = admin.aggregate(*DAY, dimensions=["grid"], measures=["reported", "close_minutes_mean"])
    arrow = admin.aggregate(*DAY, dimensions=["grid"], measures=["reported", "close_minutes_mean"], arrow=True)
    assert columns.column("grid").to_pylist() == arrow.column("grid").to_pylist()
    assert columns.column("reported").to_pylist() == arrow.column("reported").to_pylist()
    assert len(columns) > 50
    # A large answer comes as Arrow by itself (AUTO), and as columns it is refused past the limit.
    monkeypatch.setattr(analytics_service, "MAX_COLUMN_ROWS", 10)
    request = analytics_pb2.AggregateRequest(window=_window(*DAY), dimensions=["grid"])
    message = admin.analytics.Aggregate(request, metadata=admin.metadata)
    assert message.arrow_ipc and not message.columns and message.rows == len(columns)
    request.format = analytics_pb2.ANSWER_FORMAT_COLUMNS
    with pytest.raises(grpc.RpcError) as info:
        admin.analytics.Aggregate(request, metadata=admin.metadata)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "Arrow" in info.value.details()


def test_a_street_token_sees_only_its_street(env, sent, admin):
    with _client(env, admin, "S00 大屏", "dashboard", ["S00"]) as street:
        mine = street.aggregate(*DAY, dimensions=["street", "grid"])
        assert set(mine.column("street").to_pylist()) == {"S00"}
        everything = admin.aggregate(*DAY, dimensions=["street", "grid"])
        rows = {(s, g): c for s, g, c in zip(*(everything.column(x).to_pylist() for x in ("street", "grid", "reported")))}
        assert {(s, g): c for s, g, c in zip(*(mine.column(x).to_pylist() for x in ("street", "grid", "reported")))} \
            == {k: v for k, v in rows.items() if k[0] == "S00"}
        assert len(set(everything.column("street").to_pylist())) == 4
        top = street.top_areas(*DAY, level="grid", n=1000)
        assert {street_of(a.code) for a in top} == {"S00"}
        cells = street.heatmap(*DAY, h3_resolution=9)
        assert sum(cells.column("reported").to_pylist()) == sum(v for k, v in rows.items() if k[0] == "S00")
        trend = street.trend(*DAY)
        assert trend.current == sum(v for k, v in rows.items() if k[0] == "S00")


def test_h3_heatmap_matches_h3_on_the_points_sent(env, sent, admin):
    events = list(admin.list_events(occurred_from=_ts(DAY[0]), occurred_to=_ts(DAY[1])))
    expected = collections.Counter(h3.latlng_to_cell(e.position.lat, e.position.lng, 9) for e in events)
    table = admin.heatmap(*DAY, h3_resolution=9)
    assert _counts(table, "h3_cell") == expected
    grids = admin.heatmap(*DAY)
    assert _counts(grids, "grid") == collections.Counter(e.grid_code for e in events)


def test_trend_against_the_year_before(env, admin):
    window = (NOW - timedelta(days=30), NOW - timedelta(days=29))
    year_before = (window[0].replace(year=window[0].year - 1), window[1].replace(year=window[1].year - 1))
    rng = np.random.default_rng(3)
    admin.submit_events(reports(rng, 5, at=window[1] - timedelta(hours=1)) +
                        reports(rng, 3, at=year_before[1] - timedelta(hours=1)))
    trend = admin.trend(*window)
    assert (trend.current, trend.previous, trend.year_before) == (5, 0, 3)
    assert trend.vs_year_before == pytest.approx(2 / 3) and np.isnan(trend.vs_previous)


def test_top_areas_rank_by_count_with_ties_to_the_smaller_code(env, sent, admin):
    events = list(admin.list_events(occurred_from=_ts(DAY[0]), occurred_to=_ts(DAY[1])))
    by_community = collections.Counter(e.community_code for e in events)
    expected = sorted(by_community.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert [(a.code, a.count) for a in admin.top_areas(*DAY, level="community", n=5)] == expected


def test_kpis_by_worker_and_a_worker_reads_only_their_own(env, sent, admin):
    table = admin.kpis(*DAY, unit="street")
    assert {"score", "grade", "closure_rate", "on_time_disposal_rate"} <= set(table.column_names)
    assert set(table.column("street").to_pylist()) <= {"S00", "S01", "S10", "S11"}
    with _client(env, admin, "网格员", "worker", worker_id="W0000") as worker:
        with pytest.raises(grpc.RpcError) as info:
            worker.kpis(*DAY, unit="street")
        assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert set(worker.kpis(*DAY, unit="worker").column("worker").to_pylist()) <= {"W0000"}


@pytest.mark.parametrize("call, code, words", [
    (lambda c: c.aggregate(*DAY, dimensions=["planet"]), "INVALID_ARGUMENT", "unknown dimension"),
    (lambda c: c.aggregate(*DAY, measures=["happiness"]), "INVALID_ARGUMENT", "unknown measure"),
    (lambda c: c.aggregate(*DAY, filters={"colour": ["red"]}), "INVALID_ARGUMENT", "cannot filter"),
    (lambda c: c.aggregate(*DAY, bucket="fortnight"), "INVALID_ARGUMENT", "bucket"),
    (lambda c: c.aggregate(DAY[1], DAY[0]), "INVALID_ARGUMENT", "empty"),
    (lambda c: c.aggregate(NOW - timedelta(days=365), NOW, dimensions=["hour", "grid", "category"]),
     "INVALID_ARGUMENT", "cells"),
    (lambda c: c.top_areas(*DAY, level="province"), "INVALID_ARGUMENT", "level"),
    (lambda c: c.top_areas(*DAY, n=5000), "INVALID_ARGUMENT", "n must be"),
    (lambda c: c.heatmap(*DAY, h3_resolution=12), "INVALID_ARGUMENT", "H3 resolution"),
    (lambda c: c.kpis(*DAY, unit="planet"), "INVALID_ARGUMENT", "KPIs are per"),
    (lambda c: c.trend(*DAY, measure="close_minutes_mean"), "INVALID_ARGUMENT", "a trend is of a count"),
])
def test_bad_input_gets_its_precise_status(admin, call, code, words):
    with pytest.raises(grpc.RpcError) as info:
        call(admin)
    assert info.value.code().name == code and words in info.value.details()


def test_a_missing_window_and_a_role_that_may_not_read(env, admin):
    with pytest.raises(grpc.RpcError) as info:
        admin.analytics.Aggregate(analytics_pb2.AggregateRequest(), metadata=admin.metadata)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "window" in info.value.details()
    with _client(env, admin, "采集终端", "intake") as reporter:
        with pytest.raises(grpc.RpcError) as info:
            reporter.aggregate(*DAY)
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
    with env.client(None) as anonymous, pytest.raises(grpc.RpcError) as info:
        anonymous.aggregate(*DAY)
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("level, interval, words", [("planet", 1, "level"), ("grid", 0.1, "interval"),
                                                    ("grid", 7200, "interval")])
def test_watch_tallies_refuses_bad_requests(admin, level, interval, words):
    with pytest.raises(grpc.RpcError) as info:
        next(iter(admin.watch_tallies(level, interval_seconds=interval, timeout=10)))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT and words in info.value.details()


def test_watch_tallies_pushes_the_changed_areas(env, sent, admin):
    since = NOW - timedelta(days=1)
    stream = admin.watch_tallies("grid", since=since, interval_seconds=1, timeout=60)
    try:
        first = next(stream)
        assert first.full
        expected = admin.aggregate(since, NOW + timedelta(days=1), dimensions=["grid"])
        assert {a.code: a.reported for a in first.areas} == _counts(expected, "grid")
        box = (3, 17)
        admin.submit_events(reports(np.random.default_rng(9), 4, box=box))
        update = next(stream)
        assert not update.full
        grid = f"G{box[0]:03d}{box[1]:03d}@v1"
        assert [a.code for a in update.areas] == [grid]
        assert update.areas[0].reported == {a.code: a.reported for a in first.areas}.get(grid, 0) + 4
    finally:
        stream.cancel()


def test_waiting_watches_hold_no_handler_thread(env, sent, admin):
    """More watches than the server has handler threads (8), all between checks: a unary query
    still gets a thread at once."""
    streams = [admin.watch_tallies("street", interval_seconds=3600, timeout=60) for _ in range(12)]
    firsts = []
    readers = [threading.Thread(target=lambda s=s: firsts.append(next(s))) for s in streams]
    try:
        for r in readers:
            r.start()
        for r in readers:
            r.join(30)
        assert len(firsts) == 12 and all(f.full for f in firsts)
        t0 = time.monotonic()
        assert admin.aggregate(*DAY, dimensions=["street"]).num_rows == 4
        assert time.monotonic() - t0 < 20
    finally:
        for s in streams:
            s.cancel()


def _ts(when):
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


def _window(start, end):
    return analytics_pb2.Window(start=_ts(start), end=_ts(end))


def test_remembered_answers_follow_the_clock_past_deadlines_and_back(tmp_path):
    """The servicer remembers its messages beside the engine's answers: asked the same questions
    with nothing committed, the answers still follow the clock past the events' deadlines (and
    back); the expectation is a fresh engine over the same store that remembers nothing."""
    populate(tmp_path)
    clock = ManualClock(NOW)
    env = start_server(tmp_path, clock=clock)
    try:
        with env.client() as admin:
            admin.submit_events(reports(np.random.default_rng(5), 60))
            intake = env.server.state.intake.intake()
            seen = []
            for hours in (0, 30, 24 * 9, 24 * 60, 0):
                clock.set(NOW + timedelta(hours=hours))
                fresh = Analytics.for_intake(intake, tmp_path, kept_answers=0)
                try:
                    want = int(fresh.aggregate(ADMIN, start=DAY[0], end=DAY[1], measures=("overdue_now",))
                               .columns["overdue_now"].sum())
                    want_kpi = fresh.kpis(ADMIN, unit="worker", start=DAY[0], end=DAY[1]).columns["overdue_now"].tolist()
                finally:
                    fresh.close()
                seen.append(want)
                for _ in range(2):  # the second time from memory
                    # as Arrow first: the message of columns is then built from the engine's remembered answer
                    for arrow in (True, False):
                        assert admin.aggregate(*DAY, measures=["overdue_now"], arrow=arrow).column(
                            "overdue_now").to_pylist() == [want]
                    assert admin.kpis(*DAY, unit="worker").column("overdue_now").to_pylist() == want_kpi
            assert max(seen) > 0 and seen[0] == seen[-1] == 0, seen
    finally:
        assert env.server.stop(1.0).wait(10)
