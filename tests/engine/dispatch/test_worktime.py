"""Working-time limits: the schedule, the official calendar, and both operations against a
day-by-day reference."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone
from importlib import resources
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citygrid.engine.errors import InvalidInput
from citygrid.engine.dispatch.worktime import HolidayCalendar, WorkSchedule
from citygrid.engine.times import local_us, to_us

CST = ZoneInfo("Asia/Shanghai")
SCHEDULE = WorkSchedule()


def cst(*args) -> datetime:
    return datetime(*args, tzinfo=CST)


def reference_deadline(schedule: WorkSchedule, start: datetime, minutes: float) -> datetime:
    """Walk the local days one by one, consuming each working period (the definition, not the table)."""
    tz = ZoneInfo(schedule.timezone)
    left = timedelta(minutes=minutes)
    t = start.astimezone(tz)
    if left == timedelta(0):
        return t
    day = t.date()
    while True:
        if schedule.calendar.is_working_day(day):
            for a, b in schedule.periods:
                lo = max(t, datetime.combine(day, a, tzinfo=tz))
                hi = datetime.combine(day, b, tzinfo=tz)
                if lo >= hi:
                    continue
                if hi - lo >= left:
                    return lo + left
                left -= hi - lo
        day += timedelta(days=1)


def reference_between(schedule: WorkSchedule, a: datetime, b: datetime) -> float:
    tz = ZoneInfo(schedule.timezone)
    total = timedelta(0)
    a, b = a.astimezone(tz), b.astimezone(tz)
    day = a.date()
    while day <= b.date():
        if schedule.calendar.is_working_day(day):
            for p, q in schedule.periods:
                lo = max(a, datetime.combine(day, p, tzinfo=tz))
                hi = min(b, datetime.combine(day, q, tzinfo=tz))
                if hi > lo:
                    total += hi - lo
        day += timedelta(days=1)
    return total / timedelta(minutes=1)


# ---------------------------------------------------------------------- the official calendar


def test_calendar_file_holds_the_2026_notice():
    payload = json.loads(resources.files("citygrid.engine").joinpath("data/calendar_cn.json").read_text("utf-8"))
    holidays_2026 = [d for d in payload["holidays"] if d.startswith("2026")]
    workdays_2026 = sorted(d for d in payload["workdays"] if d.startswith("2026"))
    # 元旦 3 + 春节 9 + 清明 3 + 劳动节 5 + 端午 3 + 中秋 3 + 国庆 7
    assert len(holidays_2026) == 33
    assert workdays_2026 == ["2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"]
    assert "2026" in payload["sources"] and "2025" in payload["sources"]


@pytest.mark.parametrize(
    "day, working",
    [
        (date(2026, 2, 13), True),    # Friday before 春节
        (date(2026, 2, 14), True),    # Saturday, 调休上班
        (date(2026, 2, 15), False),   # 春节 starts (Sunday)
        (date(2026, 2, 23), False),   # 春节 ends (Monday)
        (date(2026, 2, 24), True),
        (date(2026, 2, 28), True),    # Saturday, 调休上班
        (date(2026, 3, 7), False),    # an ordinary Saturday
        (date(2026, 10, 7), False),   # 国庆
        (date(2026, 10, 10), True),   # Saturday, 调休上班
        (date(2025, 9, 28), True),    # Sunday, 调休上班 (2025 notice)
        (date(2025, 10, 8), False),   # 国庆、中秋 2025
        (date(2030, 10, 1), True),    # a Tuesday in a year the file does not list: weekend rule only
    ],
)
def test_official_working_days(day, working):
    assert HolidayCalendar.china().is_working_day(day) is working


# ---------------------------------------------------------------------- known answers


@pytest.mark.parametrize(
    "start, minutes, deadline",
    [
        (cst(2026, 3, 6, 17, 30), 60, cst(2026, 3, 9, 8, 30)),     # Friday evening -> Monday
        (cst(2026, 3, 9, 11, 0), 60, cst(2026, 3, 9, 12, 0)),      # ends with the period, not at 14:00
        (cst(2026, 3, 9, 11, 0), 61, cst(2026, 3, 9, 14, 1)),      # lunch break skipped
        (cst(2026, 3, 9, 12, 30), 30, cst(2026, 3, 9, 14, 30)),    # starts in the break
        (cst(2026, 3, 7, 10, 0), 30, cst(2026, 3, 9, 8, 30)),      # starts on a Saturday
        (cst(2026, 2, 13, 17, 0), 120, cst(2026, 2, 14, 9, 0)),    # 调休 Saturday is worked
        (cst(2026, 2, 14, 17, 0), 120, cst(2026, 2, 24, 9, 0)),    # the 9-day 春节 is skipped
        (cst(2026, 3, 9, 20, 0), 0, cst(2026, 3, 9, 20, 0)),       # zero minutes: the start itself
        (cst(2026, 3, 9, 8, 0), 2400, cst(2026, 3, 13, 18, 0)),    # five working days
    ],
)
def test_known_deadlines(start, minutes, deadline):
    assert SCHEDULE.add_working_minutes(start, minutes) == deadline
    if minutes:
        assert SCHEDULE.working_minutes_between(start, deadline) == pytest.approx(minutes)


def test_answer_keeps_the_callers_zone():
    start = datetime(2026, 3, 9, 0, 0, tzinfo=timezone.utc)  # 08:00 in Shanghai
    assert SCHEDULE.add_working_minutes(start, 90) == datetime(2026, 3, 9, 1, 30, tzinfo=timezone.utc)


def test_between_is_signed_and_counts_only_working_time():
    a, b = cst(2026, 3, 6, 17, 0), cst(2026, 3, 9, 9, 0)
    assert SCHEDULE.working_minutes_between(a, b) == 120
    assert SCHEDULE.working_minutes_between(b, a) == -120
    assert SCHEDULE.is_working_time(cst(2026, 3, 9, 8, 0)) and not SCHEDULE.is_working_time(cst(2026, 3, 9, 12, 0))


def test_custom_schedule_and_calendar():
    calendar = HolidayCalendar.from_dict({"holidays": ["2026-03-09"], "workdays": ["2026-03-08"], "weekend": [6]})
    schedule = WorkSchedule(periods=("09:00-17:00",), timezone="UTC", calendar=calendar)
    utc = timezone.utc
    # Saturday is a working day here (weekend: Sunday only), Sunday the 8th is a make-up day, Monday the 9th a holiday.
    assert schedule.add_working_minutes(datetime(2026, 3, 7, 16, 0, tzinfo=utc), 120) == datetime(2026, 3, 8, 10, 0, tzinfo=utc)
    assert schedule.add_working_minutes(datetime(2026, 3, 8, 16, 0, tzinfo=utc), 120) == datetime(2026, 3, 10, 10, 0, tzinfo=utc)


def test_a_round_the_clock_schedule_ends_its_day_at_24_00():
    always = WorkSchedule(periods=("00:00-24:00",), timezone="Asia/Shanghai", calendar=HolidayCalendar.from_dict({"weekend": []}))
    start = datetime(2026, 2, 16, 23, 30, tzinfo=ZoneInfo("Asia/Shanghai"))  # Spring Festival's eve, a holiday elsewhere
    assert always.add_working_minutes(start, 60) == start + timedelta(minutes=60)  # no gap at midnight
    assert always.add_working_minutes(start, 3 * 24 * 60) == start + timedelta(days=3)
    assert always.is_working_time(datetime(2026, 2, 17, 0, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    late = WorkSchedule(periods=("18:00-24:00",), timezone="UTC", calendar=HolidayCalendar.from_dict({"weekend": []}))
    assert late.add_working_minutes(datetime(2026, 3, 2, 23, 0, tzinfo=timezone.utc), 90) == datetime(
        2026, 3, 3, 18, 30, tzinfo=timezone.utc)
    with pytest.raises(InvalidInput, match="bad working period"):
        WorkSchedule(periods=("24:00-08:00",))


def test_daylight_saving_zone_uses_local_wall_time():
    berlin = WorkSchedule(timezone="Europe/Berlin", calendar=HolidayCalendar())
    start = datetime(2026, 3, 27, 17, 30, tzinfo=ZoneInfo("Europe/Berlin"))  # Friday, CET
    # Monday 08:00 is CEST (UTC+2) after the switch on Sunday the 29th.
    assert berlin.add_working_minutes(start, 60) == datetime(2026, 3, 30, 8, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    t = np.array(["2026-03-29T00:30", "2026-03-29T01:30"], dtype="datetime64[us]").astype(np.int64)
    assert (local_us(t, "Europe/Berlin") - t).tolist() == [3_600_000_000, 7_200_000_000]


def test_bad_input_is_refused_with_a_reason():
    with pytest.raises(InvalidInput, match="time zone"):
        SCHEDULE.add_working_minutes(datetime(2026, 3, 9, 8, 0), 10)
    with pytest.raises(InvalidInput, match="not negative"):
        SCHEDULE.add_working_minutes(cst(2026, 3, 9, 8, 0), -1)
    with pytest.raises(InvalidInput, match="08:00-12:00"):
        WorkSchedule(periods=("8 to 12",))
    with pytest.raises(InvalidInput, match="overlap"):
        WorkSchedule(periods=("08:00-12:00", "11:00-13:00"))
    with pytest.raises(InvalidInput, match="covers"):
        SCHEDULE.add_working_minutes(cst(2150, 1, 1, 8, 0), 10)
    with pytest.raises(InvalidInput, match="both"):
        HolidayCalendar.from_dict({"holidays": ["2026-01-01"], "workdays": ["2026-01-01"]})


# ---------------------------------------------------------------------- against the reference

_starts = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 20)).map(
    lambda d: d.replace(second=0, microsecond=0, tzinfo=CST)
)


@settings(max_examples=300, deadline=None)
@given(start=_starts, minutes=st.integers(min_value=0, max_value=6000))
def test_deadline_matches_the_day_by_day_reference(start, minutes):
    got = SCHEDULE.add_working_minutes(start, minutes)
    assert got == reference_deadline(SCHEDULE, start, minutes)
    assert SCHEDULE.working_minutes_between(start, got) == pytest.approx(minutes, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(a=_starts, hours=st.integers(min_value=0, max_value=24 * 20))
def test_between_matches_the_reference(a, hours):
    b = a + timedelta(hours=hours, minutes=17)
    assert SCHEDULE.working_minutes_between(a, b) == pytest.approx(reference_between(SCHEDULE, a, b), abs=1e-6)


def test_arrays_give_the_scalar_answers(rng):
    base = to_us(cst(2025, 1, 1, 0, 0))
    starts = base + rng.integers(0, 700 * 86_400, 2_000) * 1_000_000
    minutes = rng.uniform(0, 5_000, 2_000)
    deadlines = SCHEDULE.add_working_minutes(starts.astype("datetime64[us]"), minutes)
    for s, m, d in zip(starts[:200], minutes[:200], deadlines[:200]):
        scalar = SCHEDULE.add_working_minutes(datetime.fromtimestamp(s / 1e6, timezone.utc), float(m))
        assert np.datetime64(scalar.replace(tzinfo=None), "us") == d
    back = SCHEDULE.working_minutes_between(starts.astype("datetime64[us]"), deadlines)
    np.testing.assert_allclose(back, minutes, atol=1e-6)
    assert np.all(np.diff(SCHEDULE.add_working_minutes(np.full(50, starts[0]).astype("datetime64[us]"),
                                                       np.arange(50) * 37.0).astype(np.int64)) >= 0)


def test_periods_accept_times():
    assert WorkSchedule(periods=((time(8), time(12)),), calendar=HolidayCalendar()).periods == ((time(8), time(12)),)
