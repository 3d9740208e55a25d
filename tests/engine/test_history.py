"""The demo's year of events written into a real store as history (``serve --demo --events``): the
year moved by whole weeks to end at the intake clock's present; every event's audit trail a legal
walk of the lifecycle ending in its stored state; the intake rebuilt from the store (its workers'
loads and its escalation policy agree with what was written: a clock tick at the present escalates
nothing more); the analytics mirror counts what SQL counts; written once per data directory."""

from __future__ import annotations

import collections
import sqlite3
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow.parquet as pq
import pytest

from citygrid.engine.analytics.queries import Analytics
from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.cases.host import IntakeHost
from citygrid.engine.cases.lifecycle import LOADED_STATES, TRANSITIONS, Action, State
from citygrid.engine.database import database_path
from citygrid.engine.demo.history import WEEK_US, load_demo_history
from citygrid.engine.layers.registry import LayerRegistry
from citygrid.engine.times import ManualClock

#: A Wednesday morning in Shenzhen (10:00 +08:00), a working day.
NOW = datetime(2026, 3, 11, 2, 0, tzinfo=timezone.utc)
NOW_US = int(NOW.timestamp() * 1_000_000)
ADMIN = Principal("admin", Role.ADMIN)


@pytest.fixture(scope="module")
def loaded(demo_dir, demo_layer, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("history")
    registry = LayerRegistry(data_dir)
    registry.register(demo_layer)
    registry.publish(demo_layer.version_id, NOW - timedelta(days=800))
    registry.activate(demo_layer.version_id)
    host = IntakeHost(data_dir, registry, clock=ManualClock(NOW))
    host.load_staff(demo_dir / "workers.parquet")
    before = host.intake()
    report = load_demo_history(host, demo_dir, data_dir)
    conn = sqlite3.connect(database_path(data_dir))
    yield host, report, conn, data_dir, before
    conn.close()
    host.close()
    registry.close()


def test_the_year_moves_by_whole_weeks_to_end_now(loaded, demo_dir):
    _, report, conn, _, _ = loaded
    source = pq.read_table(demo_dir / "events.parquet", columns=["event_id", "occurred_at"]).to_pydict()
    original = {e: int(t.timestamp() * 1_000_000) for e, t in zip(source["event_id"], source["occurred_at"])}
    stored = dict(conn.execute("SELECT event_id, occurred_at FROM events").fetchall())
    assert report.written and report.events == len(stored) > 0.95 * len(original)
    shifts = {stored[e] - original[e] for e in stored}
    assert len(shifts) == 1 and shifts.pop() % WEEK_US == 0
    assert max(stored.values()) <= NOW_US and max(stored.values()) > NOW_US - 86_400_000_000
    # Left out: only the events the shift would put after the present.
    late = [e for e in original if e not in stored]
    assert all(original[e] >= min(original[x] for x in late) for x in late for e in [x])
    assert min(original[e] for e in late) > max(original[e] for e in stored) if late else True


def test_each_audit_trail_is_a_legal_walk_to_the_stored_state(loaded):
    _, _, conn, _, _ = loaded
    states = dict(conn.execute("SELECT seq, state FROM events").fetchall())
    trails = collections.defaultdict(list)
    for seq, at, action, a, b in conn.execute("SELECT event_seq, at, action, from_state, to_state FROM audit ORDER BY seq"):
        trails[seq].append((at, action, a, b))
    assert trails.keys() == states.keys()
    for seq, trail in trails.items():
        assert trail[0][1] == "report" and trail[0][2] is None
        for (t1, _, _, reached), (t2, action, a, b) in zip(trail, trail[1:]):
            assert a == reached and t2 >= t1
            assert State(a) in TRANSITIONS[Action(action)].sources and TRANSITIONS[Action(action)].target is State(b)
        assert trail[-1][3] == states[seq] and trail[-1][0] <= NOW_US


def test_the_history_looks_like_a_district(loaded):
    _, _, conn, _, _ = loaded
    month = NOW_US - 30 * 86_400_000_000
    old = dict(conn.execute("SELECT state, count(*) FROM events WHERE occurred_at < ? GROUP BY state", (month,)))
    still_open = sum(n for s, n in old.items() if State(s).is_open)
    assert old["closed"] / sum(old.values()) > 0.9 and still_open < 0.001 * sum(old.values())
    recent = dict(conn.execute("SELECT state, count(*) FROM events WHERE occurred_at >= ? GROUP BY state",
                               (NOW_US - 3 * 86_400_000_000,)))
    assert {"dispatched", "handling", "fed_back", "closed"} <= set(recent)
    # Duplicates link to an earlier event of the same category and grid less than a day before.
    pairs = conn.execute("SELECT d.occurred_at - f.occurred_at, d.category_code = f.category_code, "
                         "d.grid_code = f.grid_code FROM events d JOIN events f ON f.event_id = d.duplicate_of").fetchall()
    assert pairs and all(0 <= dt < 86_400_000_000 * 10 and same_c and same_g for dt, same_c, same_g in pairs)
    escalated = conn.execute("SELECT count(DISTINCT event_seq) FROM escalations").fetchone()[0]
    total = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    assert 0.02 < escalated / total < 0.3


def test_the_intake_is_rebuilt_from_the_store(loaded):
    host, _, conn, _, before = loaded
    intake = host.intake()
    assert intake is not before
    loaded_states = [s.value for s in LOADED_STATES]
    expected = dict(conn.execute(f"SELECT worker_id, count(*) FROM events WHERE state IN "
                                 f"({','.join('?' * len(loaded_states))}) AND worker_id IS NOT NULL GROUP BY worker_id",
                                 loaded_states).fetchall())
    assert {w: n for w, n in intake._loads_by_id().items() if n} == expected
    # The intake's escalation policy finds nothing the history did not record.
    n_escalations = conn.execute("SELECT count(*) FROM escalations").fetchone()[0]
    assert intake.tick(NOW).escalated == 0
    assert conn.execute("SELECT count(*) FROM escalations").fetchone()[0] == n_escalations


@pytest.fixture(params=["scan", "sqlite3"])
def rebuild_reads(request, monkeypatch):
    """How a rebuild reads the store: through store scans even for this small history, or with
    none available through the sqlite3 module."""
    from citygrid.engine.analytics import mirror, store_scan

    if request.param == "scan":
        assert store_scan.available()
        for name in ("ASIDE_AUDIT_ROWS", "SCAN_EVENTS", "SCAN_ESCALATIONS"):
            monkeypatch.setattr(mirror, name, 0)
    else:
        monkeypatch.setattr(store_scan, "available", lambda: False)
    return request.param


def test_the_mirror_counts_what_sql_counts(loaded, demo_layer, rebuild_reads):
    host, _, conn, data_dir, _ = loaded
    analytics = Analytics.for_intake(host.intake(), data_dir)
    try:
        start, end = NOW - timedelta(days=400), NOW + timedelta(hours=1)
        table = analytics.aggregate(ADMIN, start=start, end=end, dimensions=["state"],
                                    measures=["reported", "escalated", "reworked"])
        got = {s: (r, e, w) for s, r, e, w in zip(*(table.columns[c] for c in ("state", "reported", "escalated",
                                                                               "reworked")))}
        sql = conn.execute(
            "SELECT state, count(*), sum(seq IN (SELECT event_seq FROM escalations)), "
            "sum(seq IN (SELECT event_seq FROM audit WHERE action = 'rework')) FROM events GROUP BY state").fetchall()
        assert got == {s: (n, e, w) for s, n, e, w in sql}
    finally:
        analytics.close()


def test_a_rebuild_through_scans_has_the_columns_of_one_through_sqlite3(loaded, monkeypatch):
    from citygrid.engine.analytics import mirror, store_scan

    host, _, _, data_dir, _ = loaded
    for name in ("ASIDE_AUDIT_ROWS", "SCAN_EVENTS", "SCAN_ESCALATIONS"):
        monkeypatch.setattr(mirror, name, 0)
    scanned = Analytics.for_intake(host.intake(), data_dir)
    monkeypatch.setattr(store_scan, "available", lambda: False)
    read = Analytics.for_intake(host.intake(), data_dir)
    try:
        a, b = scanned.mirror, read.mirror
        assert a.n == b.n > 10_000 and a.reader.codes == b.reader.codes
        for name in mirror.EventMirror._COLUMNS:
            assert np.array_equal(getattr(a, name)[..., : a.n], getattr(b, name)[..., : b.n], equal_nan=True), name
        assert np.array_equal(a.open_rows, b.open_rows) and np.array_equal(a.open_due, b.open_due)
        assert a.cube.n == b.cube.n and np.array_equal(a.cube.counts[: a.cube.n], b.cube.counts[: b.cube.n])
        assert np.array_equal(a.cube.sums[: a.cube.n], b.cube.sums[: b.cube.n])
    finally:
        scanned.close()
        read.close()


def test_a_second_load_writes_nothing(loaded, demo_dir):
    host, _, conn, data_dir, _ = loaded
    n = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    again = load_demo_history(host, demo_dir, data_dir)
    assert not again.written and conn.execute("SELECT count(*) FROM events").fetchone()[0] == n



def _same_columns(a, b) -> None:
    from citygrid.engine.analytics import mirror

    assert a.n == b.n and a.reader.codes == b.reader.codes
    for name in mirror.EventMirror._COLUMNS:
        assert np.array_equal(getattr(a, name)[..., : a.n], getattr(b, name)[..., : b.n]), name
    assert np.array_equal(a.open_rows, b.open_rows) and np.array_equal(a.open_due, b.open_due)
    assert _slots(a.cube) == _slots(b.cube)


def _slots(cube) -> dict:
    """The measures of a day cube's slots that hold events, by day and codes (slots are numbered in the
    order they were made)."""
    n = cube.n
    held = np.flatnonzero(cube.counts[:n, 0])
    keys = np.vstack([cube.day_us[held], cube.codes[:, held]]).T.tolist()
    values = np.hstack([cube.counts[held].astype(np.int64), cube.sums[held]]).tolist()
    return {tuple(k): tuple(v) for k, v in zip(keys, values)}


def test_a_long_catch_up_folding_its_audit_chunks_on_two_threads_has_the_columns_of_one_through_sqlite3(
        loaded, monkeypatch, tmp_path):
    """The audit log of a long catch-up read in many chunks on two threads and folded as they come, in
    log order whichever thread read them, and its events placed in the day cube's slots read by read:
    from nothing (a rebuild), and from a mirror that has the older events (whose rows in the new
    stretch make their lifecycle again from their whole history)."""
    from citygrid.engine.analytics import mirror, store_scan

    host, _, conn, data_dir, _ = loaded
    part = tmp_path / "part"
    part.mkdir()
    whole = sqlite3.connect(str(database_path(part)), isolation_level=None)
    conn.execute("VACUUM INTO ?", (str(database_path(part)) + ".whole",))
    whole.execute("ATTACH ? AS w", (str(database_path(part)) + ".whole",))
    for table in ("schema_versions", "events", "audit", "escalations"):
        whole.execute(f"CREATE TABLE {table} AS SELECT * FROM w.{table} WHERE 0")
    n_audit = conn.execute("SELECT max(seq) FROM audit").fetchone()[0]
    half = n_audit // 2
    last_event = conn.execute("SELECT max(event_seq) FROM audit WHERE seq <= ?", (half,)).fetchone()[0]
    # escalations up to the first of a later event (each log is only ever appended)
    escalated = conn.execute("SELECT coalesce(min(seq) - 1, 0) FROM escalations WHERE event_seq > ?",
                             (last_event,)).fetchone()[0]
    whole.execute("INSERT INTO schema_versions SELECT * FROM w.schema_versions")
    whole.execute("INSERT INTO events SELECT * FROM w.events WHERE seq <= ?", (last_event,))
    whole.execute("INSERT INTO audit SELECT * FROM w.audit WHERE seq <= ?", (half,))
    whole.execute("INSERT INTO escalations SELECT * FROM w.escalations WHERE seq <= ?", (escalated,))
    monkeypatch.setattr(mirror, "AUDIT_CHUNK", 997)
    monkeypatch.setattr(mirror, "SCAN_CHUNK", 1499)  # events read (and placed in the day cube) in many reads
    for name in ("ASIDE_AUDIT_ROWS", "SCAN_EVENTS", "SCAN_ESCALATIONS"):
        monkeypatch.setattr(mirror, name, 0)
    caught_up = Analytics.for_intake(host.intake(), part)
    try:
        assert 0 < caught_up.mirror.n == last_event
        whole.execute("INSERT INTO events SELECT * FROM w.events WHERE seq > ?", (last_event,))
        whole.execute("INSERT INTO audit SELECT * FROM w.audit WHERE seq > ?", (half,))
        whole.execute("INSERT INTO escalations SELECT * FROM w.escalations WHERE seq > ?", (escalated,))
        assert conn.execute("SELECT count(*) FROM audit WHERE seq > ? AND event_seq <= ?",
                            (half, last_event)).fetchone()[0] > 0  # older events change in the stretch
        caught_up.mirror.catch_up()
        rebuilt = Analytics.for_intake(host.intake(), part)
        monkeypatch.undo()
        monkeypatch.setattr(store_scan, "available", lambda: False)
        read = Analytics.for_intake(host.intake(), part)
        try:
            _same_columns(caught_up.mirror, read.mirror)
            _same_columns(rebuilt.mirror, read.mirror)
            assert rebuilt.mirror.cube.capacity == rebuilt.mirror.cube.n  # no room left by its growing
            assert not rebuilt.mirror.cube.placing  # later slots grow the cube by a sixty-fourth
        finally:
            rebuilt.close()
            read.close()
    finally:
        caught_up.close()
        whole.close()
