"""Hourly judging of the fast-moving categories in the service's detection runs: a burst in a quiet
hour is an alert within the hour, the day/night cycle is none, an hourly and a daily finding of one
rise are one alert, and streets see their own. Runs at about 03:00 on a public holiday (the fifth
day of the Spring Festival) by an injected clock; the hour series against EARS C2 written out
plainly here (hour h of day d against hour h of days d-9 .. d-3)."""

from __future__ import annotations

import datetime as dt
import statistics
from datetime import timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from scipy.stats import norm

from intake_world import ADMIN, INTAKE, centre, grid_code

from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.alerts import hourly as H
from citygrid.engine.alerts.host import AlertHost
from citygrid.engine.alerts.series import EventSeries, fast_moving
from citygrid.engine.alerts.settings import AlertSettings
from citygrid.engine.cases.model import EventReport
from citygrid.engine.cases.taxonomy import load_taxonomy
from citygrid.engine.errors import InvalidInput

CST = ZoneInfo("Asia/Shanghai")
#: 03:00 on the fifth day of the Spring Festival holiday (the district fixture's clock).
NOW = dt.datetime(2026, 2, 21, 3, 0, tzinfo=CST)
TODAY = NOW.date()
SUPERVISOR = Principal("赵督办", Role.SUPERVISOR)
STREET_1 = Principal("街道一督办", Role.SUPERVISOR, ("440307001",))
STREET_2 = Principal("街道二督办", Role.SUPERVISOR, ("440307002",))
FAST, SLOW = "0501", "0101"
HOURLY = AlertSettings().hourly_method_name
DAILY = AlertSettings().method_name


def submit(intakes, events, tag="e"):
    """events: (i, j, category, local datetime)."""
    reports = []
    for k, (i, j, cat, at) in enumerate(events):
        lng, lat = centre(i, j)
        reports.append(EventReport(f"{tag}{k:05d}", cat, at, "hotline_12345", lng, lat))
    for lo in range(0, len(reports), 5000):
        assert all(r.error is None for r in intakes.intake().submit(reports[lo:lo + 5000], INTAKE))


def day_shift(days=20, grids=((1, 1),), cat=FAST, per_hour=lambda d, h: 1 if 9 <= h <= 18 else 0):
    """Reports in working hours on the ``days`` days before today: ``per_hour(d, h)`` at hour h of day d."""
    events = []
    for d in range(days, 0, -1):
        midnight = dt.datetime.combine(TODAY - timedelta(days=d), dt.time(), CST)
        for h in range(24):
            for i, j in grids:
                events += [(i, j, cat, midnight + timedelta(hours=h, minutes=5 + 7 * k)) for k in range(per_hour(d, h))]
    return events


def burst(i, j, n, hour=2, cat=FAST, day=TODAY):
    return [(i, j, cat, dt.datetime.combine(day, dt.time(hour, 5 + 5 * k), CST)) for k in range(n)]


def alerts_of(host, i, j, cat):
    return [a for a in host.list(ADMIN, limit=1000) if a.level == "grid" and a.unit_code == grid_code(i, j)
            and a.category_code == cat]


def test_the_taxonomy_watches_fire_and_flooding_hourly_and_disputes_daily():
    fast = fast_moving(load_taxonomy(), AlertSettings().hourly_handle_minutes)
    assert FAST in fast and "0404" in fast and SLOW not in fast


def test_folding_puts_each_hour_of_the_day_in_a_series_of_its_own(rng):
    counts = rng.integers(0, 9, size=(3, 5 * 24)).astype(float)
    folded = H.fold_hours(counts, 5)
    assert folded.shape == (3 * 24, 5)
    for r in range(3):
        for d in range(5):
            for h in range(24):
                assert folded[r * 24 + h, d] == counts[r, d * 24 + h]
    assert (H.unfold_hours(folded, 3, 5) == counts).all()
    with pytest.raises(InvalidInput, match="needs 120 columns"):
        H.fold_hours(counts[:, :-1], 5)


def plain_hourly_c2(counts, z, floor, baseline=7):
    """(row, day, hour) alarms of a (series x days*24) matrix by the textbook C2 over each hour of the day."""
    n, n_hours = counts.shape
    alarms = set()
    for r in range(n):
        for d in range(baseline + 2, n_hours // 24):
            for h in range(24):
                base = [counts[r, (d - k) * 24 + h] for k in range(3, 3 + baseline)]
                bound = statistics.mean(base) + z * max(statistics.stdev(base), floor)
                if counts[r, d * 24 + h] > bound:
                    alarms.add((r, d, h))
    return alarms


def test_hour_findings_match_plain_c2_over_each_hour_of_the_day(rng):
    n_days, settings = 16, AlertSettings(hourly_min_sigma=0.5)
    cycle = np.r_[np.full(8, 0.1), np.full(12, 3.0), np.full(4, 0.5)]
    counts = rng.poisson(np.tile(cycle, n_days), size=(7, n_days * 24)).astype(float)
    counts[0] = 0  # a grid without a report: no alarm, so the others' rows are not the alarmed rows' order
    counts[2, 14 * 24 + 2] += 6  # a burst at 02:00 of day 14
    start_ms = round(dt.datetime(2026, 2, 1, tzinfo=CST).timestamp() * 1000)
    series = EventSeries("grid", np.array([f"g{r}" for r in range(7)], dtype=object), np.array([FAST] * 7, dtype=object),
                         start_ms, 3_600_000, counts)
    judged_from = 10
    found = H.hourly_findings(series, settings, judged_from, dt.date(2026, 2, 1), "grid", {})
    want = {a for a in plain_hourly_c2(counts, float(norm.ppf(1 - 0.001)), 0.5) if a[1] >= judged_from}
    assert (2, 14, 2) in want
    days = sorted({(f"g{r}", d) for r, d, _ in want})
    got = sorted((f.unit_code, (f.first_day - dt.date(2026, 2, 1)).days + k) for f in found
                 for k in range((f.last_day - f.first_day).days + 1))
    # each finding covers its alarm days (and the one quiet day it may bridge): every alarm day is in one
    assert set(days) <= set(got)
    for f in found:
        r, d0 = int(f.unit_code[1:]), (f.first_day - dt.date(2026, 2, 1)).days
        d1 = (f.last_day - dt.date(2026, 2, 1)).days
        hours = [(d, h) for rr, d, h in want if rr == r and d0 <= d <= d1]
        assert f.observed == sum(counts[r, d * 24 + h] for d, h in hours)
        assert (f.method, f.period, f.joins) == (HOURLY, "hour", (DAILY,))


@pytest.mark.parametrize("hourly", [True, False])
def test_a_burst_in_a_quiet_hour_is_an_alert_within_the_hour(district, hourly):
    """Ten reports a day in working hours, then five at 02:05-02:25 today: the day so far (5) is
    below the usual 10, so only the hour can tell. The run at 03:00 raises it."""
    data_dir, intakes, clock = district
    submit(intakes, day_shift() + burst(1, 1, 5))
    host = AlertHost(data_dir, intakes, AlertSettings(backfill_days=1, scan=False, hourly=hourly))
    try:
        report = host.run(SUPERVISOR)
        found = alerts_of(host, 1, 1, FAST)
        if not hourly:
            assert found == [] and report.raised == ()
            return
        [alert] = found
        assert report.raised == (alert.id,)
        assert (alert.method, alert.first_day, alert.last_day, alert.observed) == (HOURLY, TODAY, TODAY, 5)
        assert alert.expected == 0 and alert.chain[0] == grid_code(1, 1)
    finally:
        host.close()


def test_the_day_and_night_cycle_raises_nothing(district):
    """Every grid reports 3-5 an hour from 08:00 to 20:00 and none at night, for three weeks and this
    morning up to 11:00: judged against the hours before, every morning would alarm."""
    data_dir, intakes, clock = district
    grids = [(i, j) for i in range(4) for j in range(4)]

    def cycle(d, h):
        return 3 + (d + h) % 3 if 8 <= h <= 20 else 0

    events = day_shift(21, grids, per_hour=cycle)
    events += [(i, j, FAST, dt.datetime.combine(TODAY, dt.time(h, 5 + 7 * k), CST))
               for i, j in grids for h in range(8, 11) for k in range(cycle(0, h))]
    clock.set(dt.datetime.combine(TODAY, dt.time(11, 30), CST))
    submit(intakes, events)
    host = AlertHost(data_dir, intakes, AlertSettings(backfill_days=10, scan=False, levels=("grid", "street")))
    try:
        report = host.run(SUPERVISOR)
        assert report.run.series > 16  # the daily and the hourly series were judged
        assert host.list(ADMIN) == []
    finally:
        host.close()


def test_a_rise_seen_hourly_and_then_daily_is_one_alert(district):
    data_dir, intakes, clock = district
    submit(intakes, day_shift() + burst(1, 1, 5))
    host = AlertHost(data_dir, intakes, AlertSettings(backfill_days=1, scan=False))
    try:
        [alert_id] = host.run(SUPERVISOR).raised
        assert host.get(alert_id, ADMIN).method == HOURLY
        # the working day's ten, and ten more at 19:00: by 21:30 the day (25) is a daily alarm too
        clock.set(dt.datetime.combine(TODAY, dt.time(21, 30), CST))
        submit(intakes, [(1, 1, FAST, dt.datetime.combine(TODAY, dt.time(h, 5), CST)) for h in range(9, 19)]
               + burst(1, 1, 10, hour=19), tag="late")
        report = host.run(SUPERVISOR)
        assert report.raised == () and alert_id in report.updated
        [alert] = alerts_of(host, 1, 1, FAST)
        assert alert.id == alert_id
        # the day's figures (the daily detector's) are the alert's now
        assert (alert.method, alert.observed, alert.first_day, alert.last_day) == (DAILY, 25, TODAY, TODAY)
        notes = [(c.action, c.note.split(" ")[:3]) for c in host.audit(alert_id, ADMIN)]
        assert notes[0][0] == "raise" and all(action == "update" for action, _ in notes[1:])
        assert any(note[:2] == DAILY.split() for _, note in notes[1:])
    finally:
        host.close()


def test_a_quiet_category_burst_seen_by_both_in_one_run_is_one_alert(district):
    data_dir, intakes, clock = district
    submit(intakes, day_shift(cat=SLOW) + burst(2, 2, 6, cat="0404"))
    host = AlertHost(data_dir, intakes, AlertSettings(backfill_days=1, scan=False))
    try:
        report = host.run(SUPERVISOR)
        [alert] = alerts_of(host, 2, 2, "0404")
        assert report.raised == (alert.id,) and alert.updates == 1  # raised by one, updated by the other
        assert alert.method == DAILY and alert.observed == 6
    finally:
        host.close()


def test_streets_see_their_own_hourly_alerts(district):
    data_dir, intakes, clock = district
    submit(intakes, day_shift(grids=((0, 0), (2, 1))) + burst(2, 1, 5))
    host = AlertHost(data_dir, intakes, AlertSettings(backfill_days=1, scan=False, levels=("grid", "street")))
    try:
        report = host.run(STREET_1)
        assert report.raised == () and report.run.raised == 2  # the grid and its street; none in street 1
        assert host.list(STREET_1) == []
        mine = host.list(STREET_2)
        assert sorted((a.level, a.unit_code, a.method) for a in mine) == [
            ("grid", grid_code(2, 1), HOURLY), ("street", "440307002", HOURLY)]
        assert all(a.chain[2] == "440307002" for a in mine)
    finally:
        host.close()


def test_hourly_settings_are_checked():
    with pytest.raises(InvalidInput, match="hourly_method must be C1 or C2"):
        AlertSettings(hourly_method="C3")
    with pytest.raises(InvalidInput, match="hourly_baseline_days"):
        AlertSettings(hourly_baseline_days=2)
    with pytest.raises(InvalidInput, match="hourly must be true or false"):
        AlertSettings.from_table({"hourly": "yes"})
    assert AlertSettings.from_table({"hourly": False}).hourly is False
