"""Workers: shifts, the stored roster and its management through the intake."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from intake_world import ADMIN, DISPATCHER, INTAKE, SUPERVISOR, grid_code, make_world, worker, worker_id

from citygrid.engine.errors import Forbidden, InvalidInput, NotFound
from citygrid.engine.cases.store import SqliteEventStore
from citygrid.engine.cases.intake import Intake
from citygrid.engine.cases.locator import AssignerLocator
from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.dispatch.workers import MINUTES_PER_WEEK, Shift, Worker, minute_of_week, read_workers
from citygrid.engine.times import to_us


def minute(day: int, hh: int, mm: int = 0) -> int:
    return day * 1440 + hh * 60 + mm


def test_shift_patterns():
    office = Shift.parse("office")
    assert office.minutes[minute(0, 8)] and office.minutes[minute(4, 17, 59)]
    assert not office.minutes[minute(0, 12, 30)] and not office.minutes[minute(5, 10)]
    night = Shift.parse("night")  # 22:00-06:00 runs past midnight, Sunday night into Monday
    assert night.minutes[minute(6, 23)] and night.minutes[minute(0, 5, 59)] and not night.minutes[minute(0, 6)]
    weekend = Shift.parse("sat,sun 09:00-12:00; wed 14:00-15:00")
    assert weekend.minutes.sum() == 2 * 180 + 60
    assert Shift.parse("fri-mon 10:00-11:00").minutes.sum() == 4 * 60  # wraps from Friday to Monday
    assert Shift.parse("always").minutes.all() and len(Shift.parse("always").minutes) == MINUTES_PER_WEEK


@pytest.mark.parametrize("spec", ["", "everyday 8-18", "mon 8 to 18", "xyz 08:00-09:00", "mon 25:00-26:00"])
def test_bad_shifts_are_refused(spec):
    with pytest.raises(InvalidInput):
        Shift.parse(spec)


def test_minute_of_week_starts_on_monday():
    monday = np.datetime64("2026-03-09T00:00", "us").astype(np.int64)
    assert minute_of_week(np.array([monday, monday + 90 * 60_000_000, monday - 60_000_000])).tolist() == [
        0, 90, MINUTES_PER_WEEK - 1,
    ]


def test_worker_fields_are_checked():
    with pytest.raises(InvalidInput, match="worker id"):
        Worker("bad id with spaces", "G1")
    with pytest.raises(InvalidInput, match="capacity"):
        Worker("w1", "G1", capacity=-1)
    with pytest.raises(InvalidInput, match="shift"):
        Worker("w1", "G1", shift="sometimes")


def test_demo_workers_read(demo_dir, demo_layer):
    workers = read_workers(demo_dir / "workers.parquet")
    assert len(workers) == 4_500
    codes = set(demo_layer.codes.tolist())
    assert all(w.grid_code in codes for w in workers)
    assert {w.department for w in workers} >= {"网格员", "城管"}
    assert all(w.skills for w in workers)


def test_roster_round_trip_and_management(tmp_path):
    world = make_world(tmp_path)
    intake = world.intake
    stored = intake.get_worker("C00", ADMIN)
    assert stored.department == "城管" and stored.skills == {"01", "05"} and stored.capacity == 10

    community = grid_code(0, 0)[:12]
    local = Principal("社区网格长", Role.SUPERVISOR, (community,))
    intake.put_workers([Worker("N1", grid_code(0, 0), "新网格员", skills=frozenset({"01"}), shift="always")], local)
    with pytest.raises(Forbidden):
        intake.put_workers([Worker("N2", grid_code(3, 3), shift="always")], local)
    with pytest.raises(Forbidden):
        intake.put_workers([Worker("N3", grid_code(0, 0))], DISPATCHER)
    listed, token = intake.list_workers(local, page_size=3)
    assert len(listed) == 3 and token
    rest, token2 = intake.list_workers(local, page_size=100, page_token=token)
    everyone = [w.worker_id for w in listed + rest]
    assert token2 == "" and everyone == sorted(everyone)
    assert all(w.grid_code.startswith(community) for w in listed + rest)
    assert {"N1", "C00"} <= set(everyone)
    with pytest.raises(NotFound):
        intake.get_worker("nobody", ADMIN)
    with pytest.raises(Forbidden):
        intake.get_worker(worker_id(3, 3), local)
    assert intake.get_worker(worker_id(1, 1), worker(1, 1)).worker_id == worker_id(1, 1)


def test_deactivating_a_worker_moves_their_work(tmp_path):
    world = make_world(tmp_path)
    intake = world.intake
    [receipt] = intake.submit([world.report(i=2, j=0, category="1001")], INTAKE)
    assert receipt.worker_id == worker_id(2, 0)
    old = intake.get_worker(worker_id(2, 0), ADMIN)
    intake.put_workers([Worker(**{**old.__dict__, "active": False})], SUPERVISOR)
    moved = intake.get(receipt.event_id, ADMIN)
    assert moved.worker_id not in (None, worker_id(2, 0))
    with pytest.raises(Forbidden):
        intake.set_duty(worker_id(2, 1), False, worker(1, 1))  # not their own duty


def test_reads_do_not_see_an_open_transaction(tmp_path):
    world = make_world(tmp_path)
    store = world.store
    seen = []
    inside = threading.Event()
    release = threading.Event()

    def writer():
        with store.transaction():
            store.workers.upsert([Worker("T1", grid_code(0, 0))], 0)
            assert store.workers.get("T1").worker_id == "T1"  # the writer sees its own change
            inside.set()
            release.wait(5)

    t = threading.Thread(target=writer)
    t.start()
    inside.wait(5)
    try:
        store.workers.get("T1")
    except NotFound:
        seen.append("not yet")
    release.set()
    t.join()
    assert seen == ["not yet"] and store.workers.get("T1").worker_id == "T1"


def test_the_clock_thread_dispatches_when_a_shift_starts(tmp_path):
    from datetime import datetime

    from intake_world import CST

    world = make_world(tmp_path, start=datetime(2026, 3, 9, 7, 0, tzinfo=CST))  # Monday 07:00
    intake = world.intake
    for who in (worker_id(3, 3), worker_id(2, 3), worker_id(3, 2)):
        intake.set_duty(who, False, DISPATCHER)
    intake.put_workers([Worker("OFFICE", grid_code(3, 3), skills=frozenset({"10"}), shift="office")], SUPERVISOR)
    [waiting] = intake.submit([world.report(i=3, j=3, category="1001")], INTAKE)
    assert waiting.worker_id is None  # nobody on shift at 07:00
    world.advance(hours=2)
    stop = threading.Event()
    clock = threading.Thread(target=intake.run_clock, args=(stop, 0.01))
    clock.start()
    try:
        got = intake.dispatches("OFFICE", ADMIN, wait=5)
    finally:
        stop.set()
        clock.join()
    assert [n.event_id for n in got] == [waiting.event_id]
    with pytest.raises(InvalidInput):
        intake.submit_one(world.report(category="nope"), INTAKE)
    assert intake.submit_one(world.report(i=1, j=1), INTAKE).created


# ---------------------------------------------------------------------- duty is durable


def roster_of(world) -> list[Worker]:
    """The world's roster as a file would give it again: every field but the duty."""
    return [Worker(**{**w.__dict__, "on_duty": None}) for w in world.store.workers.all()]


def test_duty_survives_a_restart_and_a_roster_loaded_again(tmp_path):
    """Off duty stays off across a restart and across the roster loaded again (as ``serve --demo``
    does at every start) when the roster does not state the duty; a roster that states it sets it."""
    world = make_world(tmp_path)
    off = worker_id(1, 1)
    world.intake.set_duty(off, False, DISPATCHER)
    roster = roster_of(world)
    world.intake.close()

    restarted = Intake(SqliteEventStore(tmp_path), AssignerLocator.for_layer(world.layer), clock=lambda: world.now[0])
    assert restarted.get_worker(off, ADMIN).on_duty is False
    restarted.put_workers(roster, SUPERVISOR)
    assert restarted.get_worker(off, ADMIN).on_duty is False
    assert restarted.store.workers.duty_record(off) == (False, to_us(world.now[0]), f"{DISPATCHER.name} (dispatcher)")
    [receipt] = restarted.submit([world.report(i=1, j=1, category="1001")], INTAKE)
    assert receipt.worker_id not in (None, off)  # a neighbour takes it, not the worker off duty

    restarted.put_workers([Worker(**{**roster[0].__dict__, "worker_id": off, "grid_code": grid_code(1, 1),
                                     "on_duty": True})], SUPERVISOR)
    assert restarted.get_worker(off, ADMIN).on_duty is True
    assert restarted.store.workers.duty_record(off)[2] == "roster"
    assert restarted.get_worker(worker_id(2, 2), ADMIN).on_duty is True  # never switched: on duty


def test_a_database_of_the_old_layout_keeps_its_duties(tmp_path):
    """The migration moves each worker's duty out of the ``workers`` table into ``worker_duty``."""
    from citygrid.engine.database import open_database
    from citygrid.engine.dispatch.workers import MIGRATIONS

    old = open_database(tmp_path, "workers", MIGRATIONS[:1])
    old.executemany("INSERT INTO workers VALUES (?,?,?,?,?,?,?,?,?,?)", [
        ("A1", "甲", grid_code(0, 0), "网格员", '["01"]', "always", 5, 0, 1, 1_000),
        ("A2", "乙", grid_code(1, 0), "网格员", '["01"]', "always", 5, 1, 1, 2_000)])
    old.close()
    store = SqliteEventStore(tmp_path)
    try:
        assert [(w.worker_id, w.on_duty) for w in store.workers.all()] == [("A1", False), ("A2", True)]
        assert store.workers.duty_record("A1") == (False, 1_000, "roster")
    finally:
        store.close()
