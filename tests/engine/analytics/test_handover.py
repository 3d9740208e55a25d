"""The intake hands the rows of each committed batch to the analytics mirror, which takes them from
memory instead of reading them back; everything else still comes from the store. Each test compares
the mirror with one rebuilt from the store alone (the store's reading is itself held to SQL by the
exactness test), column by column and slot by slot, after interleavings that the hand-over must
not get wrong: other writers, lifecycle actions and relocations between batches, a batch handed
twice, a batch committed while a catch-up reads, and an insert inside a transaction rolled back."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest
from busy import held_elsewhere
from intake_world import DISPATCHER, INTAKE, SIDE, SUPERVISOR, centre, make_world

from citygrid.engine.analytics import source
from citygrid.engine.analytics.mirror import EventMirror
from citygrid.engine.analytics.queries import Analytics
from citygrid.engine.cases.intake import Intake
from citygrid.engine.cases.lifecycle import Action
from citygrid.engine.cases.locator import AssignerLocator
from citygrid.engine.cases.store import SqliteEventStore
from citygrid.engine.database import database_path

ADMIN_DASHBOARD = source.Principal("大屏", source.Role.DASHBOARD)


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path)
    w.intake.submit([w.report(i, j) for i in range(SIDE) for j in range(SIDE)], INTAKE)
    analytics = Analytics.for_intake(w.intake, tmp_path)
    yield w, analytics, tmp_path
    analytics.close()
    w.intake.close()


def batch(w, n=5, category="0101"):
    """``n`` reports in different grids, each at a place of its own inside its grid (70 m or more
    from any other report's: none is a duplicate)."""
    out = []
    for k in range(n):
        spot = w.counter + 1  # the report's number: a new spot in a 6 x 6 lattice of its grid
        i, j = k % SIDE, (k // SIDE) % SIDE
        lng, lat = centre(i, j)
        out.append(w.report(i, j, category=category, dx=-0.002 + 0.0008 * (spot % 6),
                            lat=lat - 0.002 + 0.0008 * ((spot // 6) % 6)))
    return out


class ReadCounter:
    """Counts the events the mirror's reader reads back from the store (the real reader, wrapped)."""

    def __init__(self, reader: source.StoreReader):
        self.events = 0
        real = reader._events

        def counted(where, params):
            rows = real(where, params)
            self.events += len(rows.row)
            return rows

        reader._events = counted


def decoded(mirror: EventMirror) -> dict:
    """The mirror's columns with codes as texts (dictionary ids differ with reading order)."""
    n, codes, names = mirror.n, mirror.codes, mirror.reader.codes
    out = {name: getattr(mirror, name)[..., :n].copy() for name in ("occurred", "flags", "close_us", "stage_us")}
    out["open_rows"], out["open_due"] = mirror.open_rows.copy(), mirror.open_due.copy()
    for row, column in ((0, "category_code"), (2, "source"), (4, "worker_id"), (5, "grid_code"),
                        (6, "community_code"), (7, "street_code"), (8, "district_code")):
        out[column] = [None if k < 0 else names[column][k] for k in codes[row, :n].tolist()]
    out["class"], out["state"] = codes[1, :n].copy(), codes[3, :n].copy()
    return out


def slots(mirror: EventMirror) -> dict:
    """The day cube's sums by decoded slot (category, worker, area chain, day), empty slots left
    out; no two slots may have one key."""
    cube, names = mirror.cube, mirror.reader.codes
    out, keys = {}, []
    for k in range(cube.n):
        key = tuple(None if c < 0 else names[col][c] for c, col in
                    zip(cube.codes[[0, 4, 5, 6, 7, 8], k].tolist(),
                        ("category_code", "worker_id", "grid_code", "community_code", "street_code",
                         "district_code"))) + (int(cube.day_us[k]),)
        keys.append(key)
        if cube.counts[k].any() or cube.sums[k].any():
            out[key] = cube.counts[k].tolist() + cube.sums[k].tolist()
    assert len(set(keys)) == len(keys), "a slot made twice"
    return out


def assert_as_rebuilt(analytics: Analytics, data_dir) -> None:
    """The mirror, caught up, equals one rebuilt from the store alone; and the counts by state
    equal SQL's."""
    analytics.refresh()
    mirror = analytics.mirror
    rebuilt = EventMirror(data_dir, mirror.vocabulary, mirror.schedule, cube_offset_us=mirror.cube.offset_us)
    try:
        rebuilt.catch_up()
        assert mirror.n == rebuilt.n
        mine, theirs = decoded(mirror), decoded(rebuilt)
        for name in theirs:
            assert np.array_equal(np.asarray(mine[name]), np.asarray(theirs[name])), name
        assert slots(mirror) == slots(rebuilt)
    finally:
        rebuilt.close()
    conn = sqlite3.connect(str(database_path(data_dir)))
    try:
        expected = dict(conn.execute("SELECT state, count(*) FROM events GROUP BY state").fetchall())
    finally:
        conn.close()
    start, end = np.int64(mirror.occurred[: mirror.n].min()), np.int64(mirror.occurred[: mirror.n].max())
    table = analytics.aggregate(ADMIN_DASHBOARD, start=source.from_us(int(start)), end=source.from_us(int(end) + 1),
                                dimensions=("state",))
    assert dict(zip(table.columns["state"], table.columns["reported"].tolist())) == expected


def test_the_intake_hands_over_the_rows_it_committed(world):
    w, _, data_dir = world
    handed = []
    stop = w.intake.on_inserted(handed.append)
    receipts = w.intake.submit(batch(w, 7), INTAKE)
    stop()
    w.intake.submit(batch(w, 2, category="0501"), INTAKE)  # after stop(): not handed
    [committed] = handed
    conn = sqlite3.connect(str(database_path(data_dir)))
    try:
        events = conn.execute("SELECT seq, event_id, state, worker_id FROM events WHERE event_id IN "
                              f"({','.join('?' * len(receipts))}) ORDER BY seq",
                              [r.event_id for r in receipts]).fetchall()
        audit = conn.execute("SELECT seq, event_seq, to_state FROM audit WHERE seq >= ? ORDER BY seq LIMIT ?",
                             (committed.first_audit, len(committed.audit))).fetchall()
    finally:
        conn.close()
    assert [(e[0], e[1], e[21].value, e[22]) for e in committed.events] == events
    assert [(a[0], a[6].value) for a in committed.audit] == [(e, s) for _, e, s in audit]
    assert [seq for seq, *_ in audit] == list(range(committed.first_audit, committed.first_audit + len(audit)))


def test_a_catch_up_takes_the_handed_rows_without_reading_them_back(world):
    w, analytics, data_dir = world
    reads = ReadCounter(analytics.mirror.reader)
    with held_elsewhere(analytics.mirror.lock):  # two inserts one after the other: taken in one run
        w.intake.submit(batch(w, 9), INTAKE)
        w.advance(minutes=17)  # each insert's reports at its own instant
        second = w.intake.submit(batch(w, 4, category="0501"), INTAKE)
    analytics.refresh()
    assert reads.events == 0
    w.intake.submit(batch(w, 3, category="1001"), INTAKE)
    analytics.refresh()
    w.intake.submit(batch(w, 3, category="1001"), INTAKE)  # into the slots the batch before made
    analytics.refresh()
    assert reads.events == 0
    w.advance(minutes=5)
    w.intake.act(second[0].event_id, Action.PARK, SUPERVISOR, note="挂账")  # its stage's working time from its report
    assert_as_rebuilt(analytics, data_dir)


def test_other_writers_and_lifecycle_actions_between_batches_are_read(world):
    w, analytics, data_dir = world
    other = Intake(SqliteEventStore(data_dir), AssignerLocator.for_layer(w.layer), clock=w.intake.clock)
    try:
        with held_elsewhere(analytics.mirror.lock):
            # Working minutes pass between the steps: the stages' times are not all zero.
            first = w.intake.submit(batch(w, 6), INTAKE)
            w.advance(minutes=37)
            w.intake.act(first[0].event_id, Action.PARK, SUPERVISOR, note="挂账")
            w.intake.act(first[3].event_id, Action.DISPATCH, DISPATCHER)
            w.advance(minutes=11)
            w.intake.relocate(first[1].event_id, DISPATCHER, lng=centre(3, 3)[0], lat=centre(3, 3)[1])
            other.submit([w.report(2, 2, category="0501", dx=0.001)], INTAKE)  # another connection's commit
            second = w.intake.submit(batch(w, 5, category="1001"), INTAKE)
            w.advance(minutes=23)
            w.intake.relocate(second[2].event_id, DISPATCHER, lng=centre(0, 3)[0], lat=centre(0, 3)[1])
            w.intake.act(second[3].event_id, Action.DISPATCH, DISPATCHER)
            w.intake.submit(batch(w, 3, category="0102"), INTAKE)
        assert_as_rebuilt(analytics, data_dir)
    finally:
        other.close()


def test_a_batch_handed_twice_is_counted_once(world):
    w, analytics, data_dir = world
    again = w.intake.on_inserted(analytics.mirror.hand_over)  # every batch now arrives twice
    try:
        with held_elsewhere(analytics.mirror.lock):
            w.intake.submit(batch(w, 6), INTAKE)
            w.intake.submit(batch(w, 6, category="0501"), INTAKE)
        assert_as_rebuilt(analytics, data_dir)
        w.intake.submit(batch(w, 4, category="1001"), INTAKE)
        assert_as_rebuilt(analytics, data_dir)
    finally:
        again()


def test_a_batch_committed_while_a_catch_up_reads_is_taken_by_the_next(world):
    w, analytics, data_dir = world
    reader = analytics.mirror.reader
    real = reader.cursors
    late = []

    def cursors_then_a_commit():
        seen = real()  # this read's commit is fixed now; the batch below comes after it
        if not late:
            thread = threading.Thread(target=lambda: late.append(w.intake.submit(batch(w, 4, category="0501"),
                                                                                 INTAKE)))
            thread.start()
            thread.join()
        return seen

    with held_elsewhere(analytics.mirror.lock):
        w.intake.submit(batch(w, 5), INTAKE)
    reader.cursors = cursors_then_a_commit
    try:
        analytics.refresh()
    finally:
        reader.cursors = real
    assert late and analytics.mirror.n == 16 + 5  # the late batch is not in this catch-up ...
    assert_as_rebuilt(analytics, data_dir)  # ... but in the next one, once
    assert analytics.mirror.n == 16 + 5 + 4


def test_an_insert_inside_a_transaction_rolled_back_is_not_handed_over(world):
    w, analytics, data_dir = world
    with held_elsewhere(analytics.mirror.lock):
        with pytest.raises(RuntimeError):
            with w.store.transaction():
                w.intake.submit(batch(w, 3, category="0501"), INTAKE)
                raise RuntimeError("the outer work failed")
        # The same sequence numbers, other events.
        w.intake.submit(batch(w, 3, category="1001"), INTAKE)
    assert_as_rebuilt(analytics, data_dir)


def test_a_catch_up_made_elsewhere_forgets_the_remembered_answers(world):
    """The alerts share the mirror and catch it up themselves (a remembered answer must not outlive that)."""
    w, analytics, _ = world
    window = {"start": w.now[0] - timedelta(hours=1), "end": w.now[0] + timedelta(hours=1)}
    before = analytics.aggregate(ADMIN_DASHBOARD, **window).columns["reported"][0]
    with held_elsewhere(analytics.mirror.lock):
        w.intake.submit(batch(w, 2), INTAKE)
    analytics.mirror.catch_up()  # as the alerts' runs do
    assert analytics.aggregate(ADMIN_DASHBOARD, **window).columns["reported"][0] == before + 2
    w.intake.submit(batch(w, 3, category="0501"), INTAKE)
    assert analytics.aggregate(ADMIN_DASHBOARD, **window).columns["reported"][0] == before + 5


@pytest.mark.parametrize("warm", [True, False], ids=["codes-known", "codes-new"])
def test_handed_rows_give_the_ids_the_store_gives(world, warm):
    """The columns made from a handed batch equal, id for id, those read back from the store by a
    reader whose dictionaries saw the same events in the same order: placed, duplicate, not placed
    (no area chain, no worker), without a worker (a category nobody on duty takes), codes new to the
    dictionaries (grids first met out of their layer order too) and known ones, in two batches."""
    w, _, data_dir = world
    handed = []
    stop = w.intake.on_inserted(handed.append)
    try:
        first = batch(w, 5)
        w.intake.submit([w.report(3, 3, category="0501"), w.report(0, 2), *first, first[2]._replace(event_id="ev-again"),  # a duplicate of the third
                         w.report(1, 1, lng=121.5, lat=31.2),  # in no grid: reported, no chain
                         w.report(2, 1, category="0201"),  # no worker has its skill: registered, no worker
                         w.report(3, 2, category="0501", source="video_analytics")], INTAKE)
        w.intake.submit([*batch(w, 3, category="1001"), w.report(0, 3, category="0201", source="inspector")], INTAKE)
    finally:
        stop()
    states = {e[21] for c in handed for e in c.events}
    assert {source.State.DISPATCHED, source.State.DUPLICATE, source.State.REPORTED} <= states
    assert any(e[22] is None for c in handed for e in c.events) and any(e[15] is None for c in handed for e in c.events)
    from_memory, from_store = source.StoreReader(data_dir), source.StoreReader(data_dir)
    try:
        known = handed[0].events[0][0] - 1
        for reader in (from_memory, from_store) if warm else ():  # the events before the batches, read alike
            reader.events_between(0, known)
        for committed in handed:
            events, audit = from_memory.committed_rows([source.HandedInsert.of(committed)])
            lo, last_audit = committed.events[0][0] - 1, committed.first_audit + len(committed.audit) - 1
            expected = from_store.events_between(lo, committed.events[-1][0])
            expected_audit = from_store.audit_between(committed.first_audit - 1, last_audit)
            for name in ("row", "occurred", "deadline", "state", "text_ids"):
                assert np.array_equal(getattr(events, name), getattr(expected, name)), name
            for name in ("row", "at", "to_state", "rework"):
                assert np.array_equal(getattr(audit, name), getattr(expected_audit, name)), name
        assert from_memory.codes == from_store.codes
    finally:
        from_memory.close()
        from_store.close()
    conn = sqlite3.connect(str(database_path(data_dir)))
    try:  # the dictionaries: each column's codes in order of first appearance
        for name, codes in from_memory.codes.items():
            column = [code for (code,) in conn.execute(f"SELECT {name} FROM events WHERE seq > ? ORDER BY seq",
                                                       (0 if warm else known,))]
            assert codes == [code for code in dict.fromkeys(column) if code], name
    finally:
        conn.close()


def test_a_new_roster_between_batches_gives_each_worker_its_own_id(world):
    """The intake hands over workers as indices into its dispatcher's list; a new roster makes a
    new list whose indices shift (a worker sorted first), so ids must come through a table of
    the new list, not the old one's."""
    from intake_world import ADMIN, grid_code
    from citygrid.engine.dispatch.workers import Worker

    w, analytics, data_dir = world
    w.intake.submit(batch(w, 6), INTAKE)
    analytics.refresh()
    w.intake.put_workers([Worker("A00", grid_code(1, 1), "新网格员", skills=frozenset({"01", "05", "10"}),
                                 shift="always", capacity=50)], ADMIN)
    w.intake.submit(batch(w, 6), INTAKE)
    assert_as_rebuilt(analytics, data_dir)
    names = analytics.mirror.reader.codes["worker_id"]
    rows = analytics.mirror.codes[4, : analytics.mirror.n]
    assert "A00" in {names[k] for k in rows.tolist() if k >= 0}  # the new worker took some of the batch


def test_a_handed_insert_waits_for_its_catch_up_without_its_row_tuples(world):
    """What waits for a catch-up is the insert's columns and sequence numbers: the row tuples of
    the events and audit rows die with the intake's batch (kept, every young collection of the
    garbage collector walked them while the intake made the next batches)."""
    import gc

    from citygrid.engine.cases.store import EVENT_TABLE

    w, analytics, data_dir = world
    with held_elsewhere(analytics.mirror.lock):
        receipts = w.intake.submit(batch(w, 6), INTAKE)
        ids = {r.event_id for r in receipts}
        gc.collect()
        kept = [o for o in gc.get_objects() if type(o) is tuple and len(o) == len(EVENT_TABLE) and o[1] in ids]
        assert kept == []
        assert sum(h.last_seq - h.first_seq + 1 for h in analytics.mirror._handed) == 6
    assert_as_rebuilt(analytics, data_dir)


@settings(max_examples=200, deadline=None)
@given(known=st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=6),
       strings=st.lists(st.one_of(st.none(), st.just(""), st.sampled_from("abcdefghij")), max_size=40),
       grow=st.booleans())
def test_a_few_codes_are_looked_up_as_many_are(known, strings, grow):
    """Ids of a handful of codes come from a loop, of more from numpy's passes: the same ids, the
    same new codes in the same order, NULL and '' -1, unknown codes -2 when asked to tell them."""
    results = []
    for few in (source._FEW, -1):  # the loop, then numpy's passes for every length
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(source, "_FEW", few)
            ids, codes = {c: k for k, c in enumerate(known)}, list(known)
            out = source._table(ids, strings, codes if grow else None, unknown=-1 if grow else source._UNSEEN)
        results.append((out.tolist(), ids, codes))
    assert results[0] == results[1]


@pytest.mark.parametrize("polls", [50, 0], ids=["waits", "no-wait"])
def test_a_catch_up_between_a_commit_and_its_hand_over_waits_for_it(world, monkeypatch, polls):
    """A catch-up that sees an insert committed and not yet handed over waits for the hand-over
    and takes the insert from memory; one that does not get it in time (another writer's events,
    or here a hand-over held back) reads the events from the store. Either way the mirror equals a
    rebuild."""
    from citygrid.engine.analytics import mirror as mirror_module

    monkeypatch.setattr(mirror_module, "HAND_OVER_WAIT", 0.1 * polls)  # polls of 0.1 s: long enough for any machine
    monkeypatch.setattr(mirror_module, "HAND_OVER_POLLS", polls)
    w, analytics, data_dir = world
    reads = ReadCounter(analytics.mirror.reader)
    real = analytics.mirror.reader.cursors
    reading = threading.Event()

    def cursors():
        seen = real()
        reading.set()  # the catch-up's read sees the commit now
        return seen

    def catch_up_before_the_hand_over(committed):
        # Runs on the committing thread after the commit, before the mirror's own listener.
        thread = threading.Thread(target=analytics.refresh)
        thread.start()
        assert reading.wait(10)
        threads.append(thread)
        if polls:
            time.sleep(0.2)  # the hand-over comes 0.2 s after the catch-up saw the commit ...
        else:
            thread.join()  # ... or only once the catch-up is done

    threads = []
    analytics._stop_following()
    stop = w.intake.on_inserted(catch_up_before_the_hand_over)
    analytics._stop_following = w.intake.on_inserted(analytics.mirror.hand_over)
    analytics.mirror.reader.cursors = cursors
    try:
        w.intake.submit(batch(w, 7), INTAKE)
        threads[0].join()
    finally:
        stop()
        analytics.mirror.reader.cursors = real
    assert analytics.mirror.n == 16 + 7
    assert reads.events == (0 if polls else 7)
    assert_as_rebuilt(analytics, data_dir)
