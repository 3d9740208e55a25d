"""The calendar buckets and per-cell quantiles of the tally kernels against Python's datetime and
a plain sort."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import hypothesis.strategies as st
import numpy as np
from hypothesis import example, given, settings

from citygrid.kernels import tally

EPOCH = datetime(1970, 1, 1)
LOW, HIGH = -(10**15), 4 * 10**15  # 1938 … 2096


@settings(max_examples=300, deadline=None)
@given(st.integers(LOW, HIGH))
@example(int((datetime(2025, 12, 29) - EPOCH).total_seconds() * 1e6))  # Monday of ISO week 2026-W01
@example(int((datetime(2027, 1, 3, 23, 59, 59) - EPOCH).total_seconds() * 1e6))  # Sunday of 2026-W53
@example(int((datetime(2024, 2, 29, 3, 0) - EPOCH).total_seconds() * 1e6))
@example(-1)
def test_time_codes_match_datetime(local_us):
    t = EPOCH + timedelta(microseconds=local_us)
    day = (t.date() - EPOCH.date()).days
    assert tally.time_code(tally.HOUR, local_us) == day * 24 + t.hour
    assert tally.time_code(tally.DAY, local_us) == day
    assert tally.time_code(tally.MONTH, local_us) == t.year * 12 + t.month - 1
    assert tally.time_code(tally.HOUR_OF_DAY, local_us) == t.hour
    assert tally.time_code(tally.WEEKDAY, local_us) == t.weekday()
    monday = t.date() - timedelta(days=t.weekday())
    assert tally.time_code(tally.WEEK, local_us) == ((monday - EPOCH.date()).days + 3) // 7
    assert ((monday - EPOCH.date()).days + 3) % 7 == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 10**9)), max_size=60))
def test_quantiles_are_nearest_rank(pairs):
    cells = np.array([c for c, _ in pairs], dtype=np.int64)
    values = np.array([v for _, v in pairs], dtype=np.int64)
    ranks = np.array([0.5, 0.9, 1.0, 0.7])
    out = np.empty((5, len(ranks)), np.int64)
    tally.quantiles_by_cell(cells, values, 5, ranks, out)
    for c in range(5):
        mine = sorted(v for cc, v in pairs if cc == c)
        for q, tenths in enumerate((5, 9, 10, 7)):
            expected = mine[max(1, -(-tenths * len(mine) // 10)) - 1] if mine else -1
            assert out[c, q] == expected


def test_replay_counts_an_interval_in_the_stage_it_began():
    # One event: reported+dispatched at 0, fed back at 100, reworked at 150, fed back at 400, verified, closed.
    codes = [tally.DISPATCHED, tally.FED_BACK, tally.DISPATCHED, tally.FED_BACK, tally.VERIFIED, tally.CLOSED]
    worked = np.array([0, 100, 150, 400, 420, 420], np.int64) + 1000
    n = len(codes)
    flags = np.zeros(2, np.uint16)
    stage_us, close_us = np.zeros((4, 2), np.int64), np.zeros(2, np.int64)
    # The event is mirror row 1; the replay keeps its first/last working µs and last state at place 0.
    first, last, state = np.zeros(1, np.int64), np.zeros(1, np.int64), np.full(1, -1, np.int8)
    tally.replay_audit(np.ones(n, np.int64), np.zeros(n, np.int64), worked, np.array(codes, np.int8),
                       np.array([0, 0, 1, 0, 0, 0], np.int8), first, last, state, flags, stage_us, close_us)
    assert stage_us[:, 1].tolist() == [0, 0, 100 + 250, 50 + 20 + 0] and not stage_us[:, 0].any()
    assert close_us.tolist() == [0, 420]
    f = flags[1]
    assert f & tally.F_REWORKED and f & tally.F_DISPATCHED and f & tally.F_REGISTERED and not flags[0]
    assert f & (tally.F_STAGE_DONE0 << 2) and not f & (tally.F_STAGE_DONE0 << 0)
    # Counted as a closed event, into the sums' part of the table.
    out = np.zeros((1, tally.N_MEASURES), np.int64)
    event_codes = np.full((9, 2), -1, np.int16)
    event_codes[3, 1] = tally.CLOSED
    tally.tally_cells(np.ones(1, np.int64), np.zeros(1, np.int64), event_codes, flags, np.empty(0, np.int64),
                      np.empty(0, np.int64), close_us, stage_us, 0, 1, out[:, : tally.N_COUNTS], out[:, tally.N_COUNTS :])
    assert out[0, tally.M_CLOSE_US] == 420 and out[0, tally.M_CLOSED] == 1
    assert out[0, tally.M_STAGE_US0 + 2] == 350 and out[0, tally.M_STAGE_N0 + 2] == 1


def test_local_day_of_a_night_report():
    # 03:00 on 1 January in Shanghai is still 31 December in UTC: the local day is the 1st.
    utc = datetime(2026, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=8)))
    us = int(utc.timestamp() * 1e6) + 8 * 3600 * 10**6
    assert tally.time_code(tally.DAY, us) == (datetime(2026, 1, 1) - EPOCH).days


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(-1, 2), st.integers(0, 50)), max_size=40),
       st.integers(0, 5), st.integers(1, 6),
       st.one_of(st.lists(st.integers(0, tally.N_MEASURES - 1), unique=True, min_size=1, max_size=6),
                 st.just(list(range(tally.N_MEASURES)))))
def test_a_cube_window_adds_the_read_measures_of_each_slot_in_its_cell(slots, t_lo, width, read):
    # Slots (day, class id or -1, weight) of a day cube, counted by class in days [t_lo, t_lo + width):
    # each kept slot's measures `read` go into its class's cell, as a plain loop over the slots adds them.
    day = tally.US_PER_DAY
    n = len(slots)
    day_us = np.array([d * day for d, _, _ in slots], np.int64)
    codes = np.full((9, n), -1, np.int16)
    codes[1] = [c for _, c, _ in slots]
    counts = np.array([[w + m for m in range(tally.N_COUNTS)] for *_, w in slots], np.int16).reshape(n, tally.N_COUNTS)
    sums = np.array([[w * 10**12 + m for m in range(tally.N_MEASURES - tally.N_COUNTS)] for *_, w in slots],
                    np.int64).reshape(n, tally.N_MEASURES - tally.N_COUNTS)
    block = 4
    n_blocks = -(-n // block)
    block_lo, block_hi = np.zeros(n_blocks, np.int64), np.zeros(n_blocks, np.int64)
    tally.block_ranges(day_us, n, block, block_lo, block_hi, 0)
    lut = np.array([3, 0, 1, 2], np.int64)  # class id + 1 -> cell; no class: 3, the last cell (None)
    one = np.ones(1, np.int64)
    out = np.zeros((4, tally.N_MEASURES), np.int64)
    none = np.zeros(0, np.int64)
    tally.cells_in_window(block_lo, block_hi, block, day_us, codes, t_lo * day, (t_lo + width) * day, 0,
                          np.array([tally.BY_COLUMN]), one, one, np.zeros(1, np.int64), np.array([4]), one,
                          np.concatenate([np.zeros(1, np.int64), lut]), np.zeros(1, np.bool_), np.zeros(4, np.int64),
                          False, n, none, False, none, none, np.array(sorted(read), np.int64), counts, sums, out)

    def plain(lut):
        expected = np.zeros((4, tally.N_MEASURES), np.int64)
        for s, (d, c, _) in enumerate(slots):
            if t_lo <= d < t_lo + width and lut[c + 1] >= 0:
                for m in read:
                    expected[lut[c + 1], m] += counts[s, m] if m < tally.N_COUNTS else sums[s, m - tally.N_COUNTS]
        return expected

    assert np.array_equal(out, plain(lut))
    if len(read) == tally.N_MEASURES:  # every measure by one column: the leaner loop adds the same
        for kept in (lut, np.array([3, -1, 1, 2], np.int64)):  # and with class 0 excluded
            rows = np.zeros((4, tally.N_MEASURES), np.int64)
            added = tally.add_slot_rows(block_lo, block_hi, block, day_us, codes[1], t_lo * day, (t_lo + width) * day,
                                        kept, n, counts, sums, rows)
            assert np.array_equal(rows, plain(kept))
            assert added == sum(t_lo <= d < t_lo + width and kept[c + 1] >= 0 for d, c, _ in slots)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(-1, 3), st.integers(-1, 2), st.integers(0, 50)), max_size=40),
       st.integers(0, 5), st.integers(1, 6), st.sets(st.integers(-1, 3), max_size=2), st.integers(0, 40))
# A block of slots inside the window but its last day, the window's end (not read whole):
@example([(0, -1, 0, 1), (1, -1, 0, 1), (2, -1, 0, 1), (3, -1, 0, 1)], 0, 3, {-1}, 0)
def test_a_count_of_a_cube_window_reads_the_kept_streets_slots_through_their_order(slots, t_lo, width, kept, first):
    # Slots (day, street id or -1, class id or -1, count) counted by class in days [t_lo, t_lo + width)
    # with a street filter: read in order or through the slots ordered by street (ordered in two
    # goes, the first `first` slots and then the rest, as a cube ordering new slots does), the
    # kernel adds what a plain loop over the slots adds.
    day = tally.US_PER_DAY
    n = len(slots)
    day_us = np.array([d * day for d, *_ in slots], np.int64)
    codes = np.full((9, n), -1, np.int16)
    codes[7] = [s for _, s, _, _ in slots]
    codes[1] = [c for _, _, c, _ in slots]
    counts = np.array([w for *_, w in slots], np.int16)
    block = 4
    n_blocks = -(-n // block)
    block_lo, block_hi = np.zeros(n_blocks, np.int64), np.zeros(n_blocks, np.int64)
    tally.block_ranges(day_us, n, block, block_lo, block_hi, 0)
    order, street_lo = np.zeros(n_blocks * block, np.uint16), np.zeros((n_blocks, 3 + 3), np.int16)
    first = min(first, n)
    tally.order_slots_by_street(codes[7], first, block, 0, order, street_lo)
    tally.order_slots_by_street(codes[7], n, block, first // block, order, street_lo)
    class_lut = np.array([3, 0, 1, 2], np.int64)  # class id + 1 -> cell; no class: 3
    street_lut = np.array([0 if s in kept else -1 for s in range(-1, 4)], np.int64)
    luts = np.concatenate([np.zeros(1, np.int64), class_lut, street_lut])
    expected = np.zeros(4, np.int64)
    for s, (d, street, c, w) in enumerate(slots):
        if t_lo <= d < t_lo + width and street in kept:
            expected[class_lut[c + 1]] += w
    for indexed in (False, True):
        out = np.zeros(4, np.int64)
        tally.add_slot_count(block_lo, block_hi, block, day_us, codes, t_lo * day, (t_lo + width) * day,
                             np.array([1, 7]), np.array([1, 5]), np.array([1, 1]), luts, n, indexed, order, street_lo,
                             np.array(sorted(s + 1 for s in kept), np.int64), counts, out)
        assert np.array_equal(out, expected)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3), st.integers(0, 2), st.booleans()), max_size=30), st.integers(-3, 3))
def test_overdue_alone_counts_as_the_whole_tally_does(events, now):
    # Open events with a deadline (due, cell, counted by the query or not): "overdue now" and the
    # next deadline as tally_cells counts them with every measure.
    n = len(events)
    open_rows = np.arange(0, 2 * n, 2, dtype=np.int64)  # events 0, 2, 4, …: the rest are not open
    open_due = np.array([due for due, _, _ in events], np.int64)
    rows = np.array([open_rows[k] for k, (_, _, counted) in enumerate(events) if counted], np.int64)
    cells = np.array([c for _, c, counted in events if counted], np.int64)
    codes = np.zeros((9, 2 * n + 1), np.int16)
    codes[3] = tally.HANDLING
    zeros = np.zeros(2 * n + 1, np.int64)
    whole = np.zeros((3, tally.N_MEASURES), np.int64)
    want_due = tally.tally_cells(rows, cells, codes, zeros.astype(np.int32), open_rows, open_due, zeros,
                                 np.zeros((4, 2 * n + 1), np.int64), now, 1, whole[:, : tally.N_COUNTS],
                                 whole[:, tally.N_COUNTS :])
    out = np.zeros((3, tally.N_MEASURES), np.int64)
    assert tally.add_overdue(rows, cells, open_rows, open_due, now, out[:, tally.M_OVERDUE_NOW]) == want_due
    assert np.array_equal(out[:, tally.M_OVERDUE_NOW], whole[:, tally.M_OVERDUE_NOW])


@settings(max_examples=200, deadline=None)
@given(listed=st.dictionaries(st.integers(0, 60), st.integers(0, 10**6), max_size=30),
       read=st.dictionaries(st.integers(0, 60), st.tuples(st.integers(-1, 9), st.integers(-1, 10**6)), max_size=30))
def test_the_open_list_follows_the_events_read(listed, read):
    """The open events with a deadline after a read, against a dict: those read are as they are now
    (listed when open, before VERIFIED included, with a deadline), the others as they were."""
    expected = {e: due for e, due in listed.items() if e not in read}
    expected.update({e: due for e, (state, due) in read.items() if state <= tally.VERIFIED and due >= 0})
    rows = np.array(list(read), dtype=np.int64)  # in the order drawn: not sorted
    got_rows, got_due = tally.follow_open(
        np.array(sorted(listed), dtype=np.int64), np.array([listed[e] for e in sorted(listed)], dtype=np.int64), rows,
        np.array([s for s, _ in read.values()], dtype=np.int64), np.array([d for _, d in read.values()], dtype=np.int64))
    assert got_rows.tolist() == sorted(expected) and got_due.tolist() == [expected[e] for e in sorted(expected)]
