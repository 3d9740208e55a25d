"""Event intake and the store: validation, idempotency, one commit per batch, crash safety,
listing, feeds, duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timedelta
from pathlib import Path

import json
import math

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from intake_world import (
    ADMIN, CST, DISPATCHER, INTAKE, SUPERVISOR, VERIFIER, centre, grid_code, make_world, worker, worker_id,
)

from citygrid.engine.cases.duplicates import DuplicateIndex, DuplicatePolicy, distance_m
from citygrid.engine.cases import taxonomy as taxonomy_module
from citygrid.engine.errors import Conflict, Forbidden, InvalidInput, NotFound, Overloaded, PreconditionFailed
from citygrid.engine.cases.model import EventFilter, read_reports
from citygrid.engine.cases.store import SqliteEventStore
from citygrid.engine.cases.intake import Intake, IntakeConfig
from citygrid.engine.cases.locator import AssignerLocator, read_buildings
from citygrid.engine.cases.lifecycle import Action, State
from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.cases.taxonomy import load_taxonomy
from citygrid.engine.dispatch.workers import read_workers

HERE = Path(__file__).parents[1]  # tests/engine, where intake_world lives


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path)


# ---------------------------------------------------------------------- reports


@pytest.mark.parametrize(
    "change, reason",
    [
        (dict(event_id=""), "event id"),
        (dict(event_id="x" * 200), "event id"),
        (dict(category_code=""), "category"),
        (dict(source=""), "source"),
        (dict(occurred_at=datetime(2026, 3, 9, 9)), "time zone"),
        (dict(crs="epsg:3857"), "coordinate system"),
        (dict(lng=None), "both lng and lat"),
        (dict(lng=None, lat=None), "building code"),
        (dict(lat=95.0), "not a lng/lat"),
        (dict(lng=float("nan")), "not a lng/lat"),
        (dict(attachments=tuple(f"a{k}" for k in range(40))), "attachments"),
    ],
)
def test_bad_reports_get_their_own_error(world, change, reason):
    good = world.report()
    bad = world.report(**change)
    receipts = world.intake.submit([good, bad], INTAKE)
    assert receipts[0].ok and receipts[0].created
    assert isinstance(receipts[1].error, InvalidInput) and reason in str(receipts[1].error)
    assert world.intake.get(good.event_id, ADMIN).state is State.DISPATCHED
    with pytest.raises(NotFound):
        world.store.get(bad.event_id or "missing")


def test_unknown_category_and_building(world):
    receipts = world.intake.submit(
        [world.report(category="9999"), world.report(lng=None, lat=None, building_code="B-404")], INTAKE
    )
    assert "unknown category" in str(receipts[0].error)
    assert "unknown building" in str(receipts[1].error)


def test_report_times_outside_the_window_around_the_clock_are_refused(world):
    """Year 1 and 9999 are refused; the window's edges are the intake's (injected) clock minus
    ``max_report_age`` and plus ``max_report_ahead``, whatever the hour."""
    now = world.now[0]
    config = world.intake.config
    cases = {
        "year 1": (datetime(1, 1, 1, tzinfo=CST), False),
        "year 9999": (datetime(9999, 12, 31, tzinfo=CST), False),
        "oldest": (now - config.max_report_age, True),
        "older": (now - config.max_report_age - timedelta(seconds=1), False),
        "latest": (now + config.max_report_ahead, True),
        "later": (now + config.max_report_ahead + timedelta(seconds=1), False),
        "now": (now, True),
    }
    reports = [world.report(i=k % 4, j=k // 4, occurred_at=t) for k, (t, _) in enumerate(cases.values())]
    receipts = world.intake.submit(reports, INTAKE)
    for (name, (_, taken)), receipt in zip(cases.items(), receipts):
        assert receipt.ok is taken, name
        if not taken:
            assert isinstance(receipt.error, InvalidInput) and "outside the accepted window" in str(receipt.error)
    assert (config.max_report_age, config.max_report_ahead) == (timedelta(days=3650), timedelta(minutes=10))


def test_the_window_follows_the_configured_limits_at_night(tmp_path):
    night = datetime(2026, 10, 1, 3, 0, tzinfo=CST)  # 03:00 on National Day
    world = make_world(tmp_path, start=night,
                       config=IntakeConfig(max_report_age=timedelta(hours=2), max_report_ahead=timedelta(0)))
    receipts = world.intake.submit([world.report(occurred_at=night - timedelta(hours=2)),
                                    world.report(i=2, occurred_at=night - timedelta(hours=2, seconds=1)),
                                    world.report(i=3, occurred_at=night + timedelta(microseconds=1))], INTAKE)
    assert [r.ok for r in receipts] == [True, False, False]


def test_an_unknown_source_is_refused_in_its_receipt(world):
    from citygrid.engine.demo.rhythms import SOURCES

    # the demo's five and alerts turned into events (citygrid.engine.alerts) by default
    assert world.intake.config.sources == {s.code for s in SOURCES} | {"early_warning"}
    reports = [world.report(i=k, source=s.code) for k, s in enumerate(SOURCES[:4])]
    reports.insert(2, world.report(i=0, j=3, source="carrier pigeon"))
    receipts = world.intake.submit(reports, INTAKE)
    assert [r.ok for r in receipts] == [True, True, False, True, True]
    assert isinstance(receipts[2].error, InvalidInput)
    assert "unknown source 'carrier pigeon'" in str(receipts[2].error) and "hotline_12345" in str(receipts[2].error)


def test_the_configured_sources_are_the_ones_taken(tmp_path):
    world = make_world(tmp_path, config=IntakeConfig(sources=frozenset({"pigeon"})))
    receipts = world.intake.submit([world.report(source="pigeon"), world.report(i=2, source="hotline_12345")], INTAKE)
    assert receipts[0].ok and isinstance(receipts[1].error, InvalidInput)


def test_building_code_places_the_event(tmp_path):
    world = make_world(tmp_path)
    world.intake.buildings = {"B-1": centre(2, 1)}
    [receipt] = world.intake.submit([world.report(lng=None, lat=None, building_code="B-1")], INTAKE)
    assert receipt.grid_code == grid_code(2, 1) and receipt.worker_id == worker_id(2, 1)


def test_gcj02_and_bd09_reports_are_placed_in_wgs84(world):
    """The same spot reported from a GCJ-02 map (about 500 m off in Shenzhen) and a BD-09 one lands
    in the grid of its WGS84 position and is recognised as the same matter."""
    from citygrid.engine.layers.coordinates import from_wgs84

    lng, lat = centre(2, 2)
    (g_lng,), (g_lat,) = from_wgs84([lng], [lat], "gcj02")
    (b_lng,), (b_lat,) = from_wgs84([lng], [lat], "bd09")
    assert distance_m(lng, lat, g_lng, g_lat) > 300
    first = world.report(i=2, j=2)
    gcj = world.report(lng=float(g_lng), lat=float(g_lat), crs="gcj02")
    bd = world.report(lng=float(b_lng), lat=float(b_lat), crs="bd09", category="0501")
    receipts = world.intake.submit([first, gcj, bd], INTAKE)
    assert [r.grid_code for r in receipts] == [grid_code(2, 2)] * 3
    assert receipts[1].duplicate_of == first.event_id
    event = world.intake.get(bd.event_id, ADMIN)
    assert event.crs == "bd09" and event.lng == bd.lng
    assert distance_m(*event.position, lng, lat) < 0.01


def test_outside_every_grid_stays_reported(world):
    [receipt] = world.intake.submit([world.report(lng=100.0, lat=10.0)], INTAKE)
    assert receipt.state is State.REPORTED and receipt.grid_code is None and receipt.locate_status == 3
    event = world.intake.get(receipt.event_id, ADMIN)
    assert event.position is None and event.deadline is not None  # the register clock runs


def test_batch_limit_and_reporter_roles(world):
    with pytest.raises(Overloaded, match="at most"):
        world.intake.submit([world.report() for _ in range(world.intake.config.max_batch + 1)], INTAKE)
    with pytest.raises(Forbidden):
        world.intake.submit([world.report()], Principal("大屏", Role.DASHBOARD))


def test_jurisdiction_of_the_reporter(world):
    community = grid_code(0, 0)[:12]
    local = Principal("社区工作站", Role.INTAKE, (community,))
    inside, outside = world.report(i=0, j=0), world.report(i=3, j=3)
    receipts = world.intake.submit([inside, outside], local)
    assert receipts[0].ok and isinstance(receipts[1].error, Forbidden)
    with pytest.raises(Forbidden):
        world.intake.get(inside.event_id, Principal("别的社区", Role.DASHBOARD, (grid_code(3, 3)[:12],)))


# ---------------------------------------------------------------------- idempotency


def test_resending_returns_the_original_receipt(world):
    reports = [world.report(i=k % 4, j=k // 4) for k in range(16)]
    first = world.intake.submit(reports, INTAKE)
    world.advance(minutes=5)
    again = world.intake.submit(reports, INTAKE)
    for a, b in zip(first, again):
        assert a.created and not b.created
        assert (a.state, a.grid_code, a.worker_id, a.received_at) == (b.state, b.grid_code, b.worker_id, b.received_at)
    # Nothing new: one event and one set of audit rows each, loads unchanged.
    assert len(world.intake.list(ADMIN, page_size=100).events) == 16
    everyone = [worker_id(i, j) for i in range(4) for j in range(4)] + ["C00"]
    assert sum(world.intake.worker_load(w) for w in everyone) == 16
    # After the case moved on, a replay still answers with what the intake first said.
    world.intake.act(reports[5].event_id, Action.FEEDBACK, worker(1, 1))
    assert world.intake.submit(reports[5:6], INTAKE)[0].state is State.DISPATCHED


def test_other_content_under_a_known_id_is_a_conflict(world):
    report = world.report()
    world.intake.submit([report], INTAKE)
    changed = report._replace(description="另一个事件")
    [receipt] = world.intake.submit([changed], INTAKE)
    assert isinstance(receipt.error, Conflict) and report.event_id in str(receipt.error)
    assert world.intake.get(report.event_id, ADMIN).description == ""


def test_the_same_id_twice_in_one_batch(world):
    report = world.report()
    twin = report._replace(description="x")
    receipts = world.intake.submit([report, report, twin], INTAKE)
    assert receipts[0].created and not receipts[1].created and receipts[1].worker_id == receipts[0].worker_id
    assert isinstance(receipts[2].error, Conflict)


def test_a_failed_commit_leaves_nothing_behind(world, monkeypatch):
    before = world.intake.worker_load(worker_id(1, 1))
    reports = [world.report(i=1, j=1, dx=k * 0.0008) for k in range(3)]

    def broken(rows, audit):
        raise OSError("disk full")

    monkeypatch.setattr(world.store, "insert_events", broken)
    with pytest.raises(OSError):
        world.intake.submit(reports, INTAKE)
    monkeypatch.undo()
    assert world.intake.worker_load(worker_id(1, 1)) == before
    assert world.intake.list(ADMIN).events == []
    receipts = world.intake.submit(reports, INTAKE)  # the retry is taken as new, not as duplicates
    assert all(r.created and r.duplicate_of is None for r in receipts)


def test_concurrent_callers_share_commits(world):
    errors, receipts = [], []

    def client(c):
        try:
            for b in range(25):
                batch = [world.report(i=(c + k) % 4, j=b % 4, category="0202", event_id=f"c{c}-b{b}-k{k}",
                                      dx=k * 0.0009 - 0.002, lat=22.70 + 0.0002 + b * 0.00015)
                         for k in range(5)]
                receipts.extend(world.intake.submit(batch, INTAKE))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    commits = []
    original = world.store.insert_events

    def counting(rows, audit):
        commits.append(len(rows))
        return original(rows, audit)

    world.store.insert_events = counting
    threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(receipts) == 500 and all(r.ok and r.created for r in receipts)
    assert sum(commits) == 500 and len(commits) <= 100
    page, seen = world.intake.list(ADMIN, page_size=1000), set()
    seen |= {e.event_id for e in page.events}
    assert len(seen) == 500


# ---------------------------------------------------------------------- durability


CLIENT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {here!r})
    from intake_world import make_world, INTAKE
    world = make_world({data!r})
    k = 0
    while True:
        batch = []
        for _ in range(200):
            i, j = k % 4, (k // 4) % 4
            batch.append(world.report(i=i, j=j, category="0101", event_id=f"s-{{k:06d}}",
                                      dx=((k * 7919) % 997) * 4e-6))
            k += 1
        receipts = world.intake.submit(batch, INTAKE)
        assert all(r.ok for r in receipts)
        print("ACK", k, flush=True)
    """
)


def test_acknowledged_events_survive_sigkill(tmp_path):
    """A client streams batches; the process is killed with SIGKILL mid-stream. Every event it
    acknowledged is there exactly once with its dispatch, and resending everything (what a client
    retries after an error) creates each missing event once and changes none of the others."""
    data = tmp_path / "data"
    errors = tmp_path / "client.err"
    acked = 0
    with open(errors, "w") as err, subprocess.Popen(
        [sys.executable, "-c", CLIENT.format(here=str(HERE), data=str(data))],
        stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as child:
        try:
            for line in child.stdout:
                acked = int(line.split()[1])
                if acked >= 6_000:
                    break
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert acked >= 6_000, errors.read_text()

    world = make_world(data)
    intake = world.intake
    stored = {e.event_id: e for e in _all_events(intake)}
    assert all(f"s-{k:06d}" in stored for k in range(acked))
    dispatched = [e for e in stored.values() if e.state is State.DISPATCHED]
    assert dispatched, "a crash test without dispatches proves little"
    for e in dispatched[:200]:
        trail = intake.audit(e.event_id, ADMIN)
        assert [(a.action, a.to_state, a.worker_id) for a in trail] == [("report", State.DISPATCHED, e.worker_id)]
    # Loads rebuilt from the database agree with the stored dispatches.
    for w in {e.worker_id for e in dispatched}:
        assert intake.worker_load(w) == sum(1 for e in dispatched if e.worker_id == w)

    attempted = max(len(stored), acked + 200)
    reports = [world.report(i=k % 4, j=(k // 4) % 4, category="0101", event_id=f"s-{k:06d}",
                            dx=((k * 7919) % 997) * 4e-6) for k in range(attempted)]
    receipts = []
    for lo in range(0, attempted, 1000):
        receipts += intake.submit(reports[lo:lo + 1000], INTAKE)
    assert all(r.ok for r in receipts)
    assert sum(r.created for r in receipts) == attempted - len(stored)
    for r in receipts[:acked]:
        original = stored[r.event_id]
        assert not r.created and r.worker_id == original.worker_id and r.grid_code == original.grid_code
    assert len(_all_events(intake)) == attempted


def _all_events(intake):
    out, token = [], ""
    while True:
        page = intake.list(ADMIN, page_size=1000, page_token=token)
        out += page.events
        token = page.next_page_token
        if not token:
            return out


def test_a_new_process_sees_committed_events(tmp_path, world):
    receipts = world.intake.submit([world.report(i=2, j=2)], INTAKE)
    other = SqliteEventStore(tmp_path)
    assert other.get(receipts[0].event_id).worker_id == worker_id(2, 2)


# ---------------------------------------------------------------------- listing and feeds


def test_list_filters_pages_and_jurisdiction(world):
    intake = world.intake
    reports = [world.report(i=k % 4, j=(k // 4) % 4, category=("0101" if k % 2 else "0501"),
                            dx=(k // 16) * 0.001) for k in range(48)]
    intake.submit(reports, INTAKE)
    assert len(intake.list(ADMIN, page_size=1000).events) == 48
    pages, token = [], ""
    while True:
        page = intake.list(ADMIN, page_size=10, page_token=token)
        pages.append([e.event_id for e in page.events])
        token = page.next_page_token
        if not token:
            break
    assert [len(p) for p in pages] == [10, 10, 10, 10, 8]
    assert sum(pages, []) == [r.event_id for r in reports]

    by_category = intake.list(ADMIN, EventFilter(category_codes=("0501",)), page_size=100).events
    assert len(by_category) == 24 and {e.category_code for e in by_category} == {"0501"}
    community = grid_code(0, 0)[:12]
    local = intake.list(Principal("社区", Role.DASHBOARD, (community,)), page_size=100).events
    assert local and all(e.community_code == community for e in local)
    street = intake.list(ADMIN, EventFilter(areas=(grid_code(3, 3)[:9],)), page_size=100).events
    assert all(e.street_code == grid_code(3, 3)[:9] for e in street) and len(street) == 24
    mine = intake.list(worker(1, 1), page_size=100).events
    assert mine and all(e.worker_id == worker_id(1, 1) for e in mine)
    # Work in hand comes from the holdings in memory; it agrees with a scan of the table.
    intake.act(mine[0].event_id, Action.HANDLE, worker(1, 1))
    in_hand = EventFilter(states=(State.DISPATCHED, State.HANDLING))
    held = intake.list(worker(1, 1), in_hand, page_size=2)
    rest = intake.list(worker(1, 1), in_hand, page_size=100, page_token=held.next_page_token)
    scanned = world.store.list_events(EventFilter(states=in_hand.states, worker_id=worker_id(1, 1)), limit=100)
    assert [e.event_id for e in held.events + rest.events] == [e.event_id for e in scanned] and len(scanned) == 3
    with pytest.raises(Forbidden):
        intake.list(worker(1, 1), EventFilter(worker_id=worker_id(2, 2)))
    with pytest.raises(InvalidInput):
        intake.list(ADMIN, page_token="garbage")
    later = world.now[0] + timedelta(days=3)
    overdue = intake.list(ADMIN, EventFilter(overdue_at=later, states=(State.DISPATCHED,)), page_size=100).events
    assert overdue and all(e.deadline < later for e in overdue)


def test_dispatch_feed_resumes_from_a_cursor(world):
    intake = world.intake
    me = worker(2, 1)
    first = intake.submit([world.report(i=2, j=1, dx=k * 0.0011 - 0.0015) for k in range(3)], INTAKE)
    feed = intake.dispatches(worker_id(2, 1), me)
    assert [n.event_id for n in feed] == [r.event_id for r in first]
    assert all(n.kind == "dispatched" and n.grid_code == grid_code(2, 1) for n in feed)
    cursor = feed[-1].cursor
    assert intake.dispatches(worker_id(2, 1), me, after=cursor) == []
    second = intake.submit([world.report(i=2, j=1, category="0501")], INTAKE)
    resumed = intake.dispatches(worker_id(2, 1), me, after=cursor)
    assert [n.event_id for n in resumed] == [second[0].event_id] and resumed[0].cursor > cursor
    limited = intake.dispatches(worker_id(2, 1), me, limit=2)
    assert len(limited) == 2 and intake.dispatches(worker_id(2, 1), me, after=limited[-1].cursor)[0].event_id == first[2].event_id
    assert intake.dispatches(worker_id(2, 1), SUPERVISOR)  # a supervisor may watch anyone in jurisdiction


def test_news_callbacks_follow_the_commits_of_their_feed(world, caplog):
    """``on_news`` calls back after each commit with news for its feed only, until stopped; a
    failing callback is logged and the commit stands."""
    intake = world.intake
    calls = {"mine": 0, "other": 0, "overdue": 0}

    def count(name):
        return lambda: calls.__setitem__(name, calls[name] + 1)

    stop_mine = intake.on_news(count("mine"), worker_id(2, 1))
    intake.on_news(count("other"), worker_id(0, 0))
    intake.on_news(count("overdue"))
    intake.on_news(lambda: 1 / 0, worker_id(2, 1))
    with caplog.at_level("WARNING", logger="citygrid.engine.cases.intake"):
        [receipt] = intake.submit([world.report(i=2, j=1)], INTAKE)
    assert calls == {"mine": 1, "other": 0, "overdue": 0}
    assert "feed listener failed" in caplog.text
    assert [n.event_id for n in intake.dispatches(worker_id(2, 1), worker(2, 1))] == [receipt.event_id]
    stop_mine()
    stop_mine()  # stopping twice is harmless
    intake.submit([world.report(i=2, j=1, category="0501")], INTAKE)
    assert calls == {"mine": 1, "other": 0, "overdue": 0}
    world.advance(hours=6, minutes=1)  # past the handle limit of the first report (240 working minutes)
    assert intake.tick().escalated >= 1
    assert calls == {"mine": 1, "other": 0, "overdue": 1}


# ---------------------------------------------------------------------- duplicates


def test_duplicate_index_rules():
    index = DuplicateIndex(DuplicatePolicy(distance_m=50, window_minutes=60))
    minute = 60_000_000
    index.add(1, "A", "0101", 114.25, 22.72, 0)
    index.add(2, "B", "0101", 114.2502, 22.72, 0)
    assert index.find("0101", 114.2501, 22.72, 10 * minute) == "A"  # both match: the first received wins
    assert index.find("0501", 114.2501, 22.72, 0) is None  # another category
    assert index.find("0101", 114.2501, 22.72, 61 * minute) is None  # outside the window
    assert index.find("0101", 114.2501, 22.72, -59 * minute) == "A"  # the window runs both ways
    lat_50m = 50 / 111_195
    assert index.find("0101", 114.25, 22.72 + lat_50m * 0.99, 0) == "A"
    assert index.find("0101", 114.25, 22.72 - lat_50m * 1.01, 0) is None
    index.remove("A")
    assert index.find("0101", 114.2501, 22.72, 0) == "B"
    assert DuplicateIndex(DuplicatePolicy(distance_m=0)).find("0101", 114.25, 22.72, 0) is None


def test_duplicate_index_never_misses_a_close_report(rng):
    index = DuplicateIndex(DuplicatePolicy(distance_m=80, window_minutes=10**6))
    points = [(114.0 + rng.random() * 0.05, 22.6 + rng.random() * 0.05) for _ in range(400)]
    for k, (x, y) in enumerate(points):
        index.add(k, f"e{k}", "c", x, y, 0)
    for _ in range(300):
        x, y = 114.0 + rng.random() * 0.05, 22.6 + rng.random() * 0.05
        near = [k for k, (px, py) in enumerate(points) if distance_m(x, y, px, py) <= 80]
        assert index.find("c", x, y, 0) == (f"e{min(near)}" if near else None)


@settings(max_examples=60, deadline=None)
@given(
    lng=st.floats(-170, 170), lat=st.floats(-84.9, 84.9), d=st.floats(1, 10_000),
    offsets=st.lists(st.tuples(st.floats(-3, 3), st.floats(-3, 3)), min_size=1, max_size=40),
    probes=st.lists(st.tuples(st.floats(-2, 2), st.floats(-2, 2)), min_size=1, max_size=20),
)
def test_duplicate_index_agrees_with_great_circle_distance(lng, lat, d, offsets, probes):
    """At any latitude up to the limit and any linking distance, the index finds exactly the
    earliest report within the distance (offsets in units of d, so many fall near the boundary)."""
    index = DuplicateIndex(DuplicatePolicy(distance_m=d, window_minutes=60))
    deg_lat = d / 111_195
    deg_lng = deg_lat / max(math.cos(math.radians(lat)), 1e-3)

    def place(ox, oy):
        return lng + ox * deg_lng, max(-85.0, min(85.0, lat + oy * deg_lat))

    points = [place(ox, oy) for ox, oy in offsets]
    for k, (x, y) in enumerate(points):
        index.add(k, f"e{k}", "c", x, y, 0)
    for ox, oy in probes + offsets[:5]:
        x, y = place(ox * 1.0001, oy)
        near = [k for k, (px, py) in enumerate(points) if distance_m(x, y, px, py) <= d]
        assert index.find("c", x, y, 0) == (f"e{min(near)}" if near else None)


def test_duplicate_policy_limits():
    for bad in (0.5, 10_001, -1, float("nan")):
        with pytest.raises(InvalidInput, match="duplicate distance"):
            DuplicatePolicy(distance_m=bad)
    with pytest.raises(InvalidInput, match="duplicate window"):
        DuplicatePolicy(window_minutes=-1)
    assert not DuplicatePolicy(distance_m=0).enabled


def test_duplicates_are_linked_not_dispatched(world):
    intake = world.intake
    first = world.report(i=1, j=2)
    again = world.report(i=1, j=2, dx=0.0002, source="video_analytics")  # ~20 m away, minutes later
    other_kind = world.report(i=1, j=2, category="0501")
    receipts = intake.submit([first, again, other_kind], INTAKE)
    assert receipts[1].state is State.DUPLICATE and receipts[1].duplicate_of == first.event_id
    assert receipts[1].worker_id is None and receipts[2].state is State.DISPATCHED
    assert intake.worker_load(worker_id(1, 2)) == 2
    linked = intake.list(ADMIN, EventFilter(duplicate_of=first.event_id)).events
    assert [e.event_id for e in linked] == [again.event_id]
    # Once the first case is closed, the same matter reported again is a new case.
    me = worker(1, 2)
    intake.act(first.event_id, Action.FEEDBACK, me)
    intake.act(first.event_id, Action.VERIFY, VERIFIER)
    intake.act(first.event_id, Action.CLOSE, DISPATCHER)
    [later] = intake.submit([world.report(i=1, j=2, dx=0.0001)], INTAKE)
    assert later.state is State.DISPATCHED and later.duplicate_of is None


def test_duplicate_index_is_rebuilt_on_restart(tmp_path):
    world = make_world(tmp_path)
    first = world.report(i=3, j=0)
    world.intake.submit([first], INTAKE)
    restarted = Intake(SqliteEventStore(tmp_path), AssignerLocator.for_layer(world.layer), clock=lambda: world.now[0])
    [receipt] = restarted.submit([world.report(i=3, j=0, dx=0.0001)], INTAKE)
    assert receipt.duplicate_of == first.event_id


def test_demo_reports_and_buildings(demo_dir, demo_layer, tmp_path):
    """The first demo events go in through their building codes and coordinates alike."""
    reports = read_reports(demo_dir / "events.parquet", limit=300)
    buildings = read_buildings(demo_dir / "buildings.parquet")
    store = SqliteEventStore(tmp_path)
    clock = [datetime(2025, 3, 3, 10, 0, tzinfo=CST)]
    intake = Intake(store, AssignerLocator.for_layer(demo_layer), buildings=buildings, clock=lambda: clock[0],
                    config=IntakeConfig(duplicates=DuplicatePolicy(distance_m=30, window_minutes=120)))
    intake.put_workers(read_workers(demo_dir / "workers.parquet"), ADMIN)
    by_building = [r._replace(lng=None, lat=None) for r in reports if r.building_code][:100]
    receipts = intake.submit(reports, INTAKE)
    assert all(r.ok for r in receipts)
    truth = pq.read_table(demo_dir / "events.parquet", columns=["grid_code"]).slice(0, 300).column("grid_code").to_pylist()
    assert [r.grid_code for r in receipts] == truth
    assert sum(r.state is State.DISPATCHED for r in receipts) > 200
    resent = intake.submit([r._replace(event_id="b-" + r.event_id) for r in by_building], INTAKE)
    assert all(r.ok for r in resent)
    # A building code is the code of its grid followed by a 4-digit sequence number.
    assert all(r.grid_code == b.building_code[:15] for r, b in zip(resent, by_building))


def test_a_taxonomy_without_an_open_events_category_is_refused(tmp_path):
    """Restarting on a taxonomy file that dropped the category of an open event would leave its stage
    limits and routing unknown: the intake refuses to start and says which categories are missing."""
    world = make_world(tmp_path / "data")
    world.intake.submit([world.report(i=2, j=2, category="0101")], INTAKE)
    payload = json.loads((Path(taxonomy_module.__file__).parents[1] / "data" / "taxonomy.json").read_text())
    for cls in payload["classes"]:
        cls["categories"] = [c for c in cls["categories"] if c["code"] != "0101"]
    path = tmp_path / "taxonomy.json"
    path.write_text(json.dumps(payload, ensure_ascii=False))
    store = SqliteEventStore(tmp_path / "data")
    with pytest.raises(PreconditionFailed, match="lacks the categories 0101 of open events"):
        Intake(store, AssignerLocator.for_layer(world.layer), taxonomy=load_taxonomy(path))
    # The shipped taxonomy still has it.
    Intake(store, AssignerLocator.for_layer(world.layer), clock=lambda: world.now[0])


def test_demo_events_submitted_at_three_in_the_morning_are_dispatched(demo_dir, demo_layer, tmp_path):
    """A newcomer loads the demo's workers and submits its events at 03:05 on a Monday night: the
    workers on night duty (值班) take them; every urgent one (class 04, 突发事件) is dispatched, and most
    of the others (71 % of the first 1,000: those that need a skill the duty worker lacks wait for the
    morning's shift)."""
    reports = read_reports(demo_dir / "events.parquet", limit=1000)
    night = datetime(2026, 12, 7, 3, 5, tzinfo=CST)
    intake = Intake(SqliteEventStore(tmp_path), AssignerLocator.for_layer(demo_layer), clock=lambda: night)
    intake.put_workers(read_workers(demo_dir / "workers.parquet"), ADMIN)
    receipts = intake.submit(reports, INTAKE)
    registered = [(report, r) for report, r in zip(reports, receipts) if r.state is not State.DUPLICATE]
    urgent = [r for report, r in registered if report.category_code.startswith("04")]
    assert urgent and all(r.state is State.DISPATCHED for r in urgent)
    dispatched = sum(r.state is State.DISPATCHED for _, r in registered)
    assert dispatched > 0.6 * len(registered)
    on_duty = {r.worker_id for _, r in registered if r.worker_id}
    shifts = {w.worker_id: w.shift for w in read_workers(demo_dir / "workers.parquet")}
    assert all("18:00-08:30" in shifts[w] for w in on_duty)  # all taken by workers on night duty


def test_a_code_is_named_as_a_class_or_a_category():
    """An alert's category_code may be a class (a class rollup's alert) or a category: the page
    names it from the taxonomy, saying which."""
    from citygrid.engine.cases.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    cls = taxonomy.classes[0]
    leaf = cls.categories[1]
    assert taxonomy.name_of(cls.code) == ("class", cls.name)
    assert taxonomy.name_of(leaf.code) == ("category", leaf.name)
    assert taxonomy.name_of("nope") is None
