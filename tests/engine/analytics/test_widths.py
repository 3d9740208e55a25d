"""The narrow widths of the mirror and the day cube at their edges: code ids past int16 and a slot's
counts past int8 and int16 (and int32) widen before they are written, and never wrap."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import numpy as np
import pytest
from intake_world import INTAKE, make_world

from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.analytics.queries import Analytics
from citygrid.engine.database import database_path
from citygrid.kernels import tally

DASHBOARD = Principal("大屏", Role.DASHBOARD)
#: Past int16: 32,767 is the greatest id it holds, and a slot count it holds.
DISTINCT_WORKERS = SAME_SLOT = 32_800


def _copies(data_dir) -> None:
    """Copies of the one submitted event (same grid, category and local day): one per new worker,
    and as many more of one worker (a single day-cube slot), written straight into the store."""
    with sqlite3.connect(database_path(data_dir)) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(events)") if row[1] not in ("seq", "event_id",
                                                                                                  "worker_id")]
        copy = (f"INSERT INTO events (event_id, worker_id, {', '.join(columns)}) "
                f"SELECT ?, ?, {', '.join(columns)} FROM events WHERE seq = 1")
        workers = [f"W{k:05d}" for k in range(DISTINCT_WORKERS)] + ["BIG"] * SAME_SLOT
        conn.executemany(copy, [(f"copy-{k}", worker) for k, worker in enumerate(workers)])


def _by_worker(data_dir, lo_us: int, hi_us: int) -> dict:
    with sqlite3.connect(database_path(data_dir)) as conn:
        return dict(conn.execute("SELECT worker_id, count(*) FROM events WHERE occurred_at >= ? AND occurred_at < ? "
                                 "GROUP BY worker_id", (lo_us, hi_us)).fetchall())


@pytest.fixture
def one_event(tmp_path):
    """A store with one submitted event, and the analytics over it."""
    w = make_world(tmp_path)
    w.intake.submit([w.report(0, 0)], INTAKE)
    analytics = Analytics.for_intake(w.intake, tmp_path)
    yield w, analytics
    analytics.close()
    w.intake.close()


def test_ids_and_slot_counts_past_int16_widen_instead_of_wrapping(one_event, tmp_path):
    w, analytics = one_event
    _copies(tmp_path)
    mirror = analytics.mirror
    mirror.catch_up()
    day = w.now[0].replace(hour=0, minute=0, second=0, microsecond=0)
    to_us = lambda t: int(t.timestamp() * 1_000_000)  # noqa: E731
    # Whole local days: counted from the day cube's slots; a window short of them: from the events.
    # Both against SQL's GROUP BY over the store.
    for end in (day + timedelta(days=1), w.now[0] + timedelta(seconds=1)):
        expected = _by_worker(tmp_path, to_us(day), to_us(end))
        table = analytics.aggregate(DASHBOARD, start=day, end=end, dimensions=("worker",))
        got = dict(zip(table.columns["worker"], table.columns["reported"]))
        assert len(got) == DISTINCT_WORKERS + 2 and got == expected
        assert expected["BIG"] == SAME_SLOT
    total = analytics.aggregate(DASHBOARD, start=day, end=day + timedelta(days=1), dimensions=("day",))
    assert list(total.columns["reported"]) == [DISTINCT_WORKERS + SAME_SLOT + 1]
    assert mirror.codes.dtype == np.int32 and mirror.cube.codes.dtype == np.int32
    assert mirror.cube.counts.dtype == np.int32


def test_a_slot_count_at_the_int32_edge_widens_to_int64(one_event):
    _, analytics = one_event
    mirror = analytics.mirror
    mirror.catch_up()
    cube = mirror.cube
    one = np.zeros(1, dtype=np.int64)
    slot = int(cube.slots_of(one, mirror)[0])
    cube.counts = cube.counts.astype(np.int32)  # as after a slot outgrew int16
    edge = np.iinfo(np.int32).max
    cube.counts[slot, tally.M_REPORTED] = edge  # a slot with as many events as int32 holds
    cube._fit_counts(cube.slots_of(one, mirror))
    cube._add(one, cube.slots_of(one, mirror), 1, mirror)
    assert cube.counts.dtype == np.int64 and cube.counts[slot, tally.M_REPORTED] == edge + 1


def test_ids_and_counts_that_fit_stay_narrow(one_event):
    _, analytics = one_event
    analytics.mirror.catch_up()
    assert analytics.mirror.codes.dtype == np.int16 and analytics.mirror.cube.counts.dtype == np.int8


def test_live_aggregates_grow_by_a_sixty_fourth():
    """Once live, the columns and the cube grow by a sixty-fourth of their size (at least a step), so
    a 10 M-event mirror rebuilt at 988 MiB is about 1,004 MiB after the next event, not 1,480; a
    large catch-up gets exactly the room it needs."""
    from citygrid.engine.analytics.cube import room_for

    assert room_for(10_000_001, 10_000_000, 65_536) == 10_000_000 + 156_250
    assert room_for(1, 0, 65_536) == 65_536
    assert room_for(5_000_000, 1_000_000, 65_536) == 5_000_000
    # Growing one event at a time to 2 M copies each row a bounded number of times (amortised).
    capacity, copied = 0, 0
    for n in range(1, 2_000_001, 1000):
        if n > capacity:
            copied += capacity
            capacity = room_for(n, capacity, 65_536)
    assert capacity <= 2_000_000 * (1 + 1 / 64) + 65_536 and copied < 2_000_000 * 40
