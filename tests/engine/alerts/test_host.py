"""Detection runs over the live counts: events taken in by a real intake on a small district, runs
at 03:00 on a public holiday by an injected clock, alarms checked against EARS C2 written out
plainly here (mean and sample deviation of days t-9..t-3, floored), alerts turned into events."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from scipy.stats import norm

from intake_world import ADMIN, INTAKE, centre, grid_code, STEP

from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.alerts.host import AlertHost, RunWindow
from citygrid.engine.alerts.settings import AlertSettings
from citygrid.engine.alerts.store import AlertFilter, Finding
from citygrid.engine.cases.model import EventReport
from citygrid.engine.errors import Forbidden, InvalidInput, PreconditionFailed

CST = ZoneInfo("Asia/Shanghai")
#: 03:00 on the fifth day of the Spring Festival holiday.
NOW = dt.datetime(2026, 2, 21, 3, 0, tzinfo=CST)
TODAY = NOW.date()
DAYS = 40
SUPERVISOR = Principal("赵督办", Role.SUPERVISOR)
STREET_1 = Principal("街道一督办", Role.SUPERVISOR, ("440307001",))
DASHBOARD = Principal("大屏", Role.DASHBOARD)
WORKER = Principal("网格员", Role.WORKER, (grid_code(0, 0),), worker_id="W00")


def submit(intakes, events):
    """events: (i, j, category, local datetime); returns the per (grid, category, day) counts."""
    reports = []
    for k, (i, j, cat, at) in enumerate(events):
        lng, lat = centre(i, j)
        reports.append(EventReport(f"e{k:05d}", cat, at, "hotline_12345", lng + (k % 7 - 3) * STEP / 20, lat))
    for lo in range(0, len(reports), 5000):
        receipts = intakes.intake().submit(reports[lo:lo + 5000], INTAKE)
        assert all(r.error is None for r in receipts)
    return Counter((grid_code(i, j), cat, at.date()) for i, j, cat, at in events)


def random_events(rng, spike=None):
    """Background reports over the last DAYS days in every grid for two categories (rates 0.2 to 2
    a day), plus ``spike``: (i, j, category, n) reported today before 03:00."""
    events = []
    rates = rng.uniform(0.2, 2.0, size=(4, 4, 2))
    for d in range(DAYS, 0, -1):
        day = dt.datetime.combine(TODAY - timedelta(days=d), dt.time(), CST)
        for i in range(4):
            for j in range(4):
                for c, cat in enumerate(("0101", "0102")):
                    for _ in range(rng.poisson(rates[i, j, c])):
                        events.append((i, j, cat, day + timedelta(minutes=int(rng.integers(0, 1440)))))
    if spike:
        i, j, cat, n = spike
        for m in range(n):
            events.append((i, j, cat, dt.datetime.combine(TODAY, dt.time(0, 10 + m), CST)))
    return events


def plain_c2(counts: Counter, units, first_day: dt.date, z: float, floor: float, key=lambda g: g):
    """Alarm days per (unit, category) from first_day to today by the textbook C2."""
    alarms = set()
    for unit in units:
        for cat in ("0101", "0102"):
            def n(day):
                return sum(v for (g, c, d), v in counts.items() if key(g) == unit and c == cat and d == day)
            day = first_day
            while day <= TODAY:
                base = [n(day - timedelta(days=k)) for k in range(3, 10)]
                m, sd = statistics.mean(base), statistics.stdev(base)
                if n(day) > m + z * max(sd, floor):
                    alarms.add((unit, cat, day))
                day += timedelta(days=1)
    return alarms


def episodes(alarms):
    """Alarm days of one series with at most one quiet day between them, joined."""
    out = []
    for unit, cat, day in sorted(alarms):
        if out and out[-1][:2] == (unit, cat) and (day - out[-1][3]).days <= 2:
            out[-1] = (unit, cat, out[-1][2], day)
        else:
            out.append((unit, cat, day, day))
    return out


def test_the_first_run_backfills_and_matches_plain_c2(district, rng):
    data_dir, intakes, clock = district
    counts = submit(intakes, random_events(rng, spike=(2, 1, "0101", 9)))
    host = AlertHost(data_dir, intakes, AlertSettings(method="C2", alpha=0.001, min_sigma=0.5, backfill_days=30, scan=False,
                                                      levels=("grid", "street"), classes=False))
    try:
        report = host.run(SUPERVISOR)
        first = TODAY - timedelta(days=29)
        assert (report.run.first_day, report.run.last_day) == (first, TODAY)
        z = float(norm.ppf(0.999))
        grids = sorted({grid_code(i, j) for i in range(4) for j in range(4)})
        expected = [("grid", *e) for e in episodes(plain_c2(counts, grids, first, z, 0.5))]
        streets = ["440307001", "440307002"]
        expected += [("street", *e) for e in episodes(plain_c2(counts, streets, first, z, 0.5, key=lambda g: g[:9]))]
        got = sorted((a.level, a.unit_code, a.category_code, a.first_day, a.last_day) for a in host.list(ADMIN, limit=1000))
        assert got == sorted(expected)
        assert (grid_code(2, 1), "0101", TODAY, TODAY) in [e[1:] for e in expected]  # the spike is among them
        spike = [a for a in host.list(ADMIN, AlertFilter(areas=(grid_code(2, 1),), since=TODAY))
                 if a.level == "grid" and a.category_code == "0101"][0]
        assert spike.observed == counts[(grid_code(2, 1), "0101", TODAY)] and spike.chain[2] == "440307002"
        assert len(report.raised) == len(expected) and report.run.raised == len(expected)
        # the next run judges today again: nothing new, the open alerts of today are updated
        again = host.run(SUPERVISOR, trigger="test")
        assert again.raised == () and again.run.first_day == TODAY
        assert set(again.updated) == {a.id for a in host.list(ADMIN, AlertFilter(since=TODAY), limit=1000)}
    finally:
        host.close()


def test_a_spike_that_grows_through_the_day_updates_one_alert(district, rng):
    data_dir, intakes, clock = district
    submit(intakes, random_events(rng, spike=(1, 3, "0102", 8)))
    host = AlertHost(data_dir, intakes, AlertSettings(backfill_days=1, scan=False))
    try:
        [alert_id] = [a for a in host.run(SUPERVISOR).raised
                      if host.get(a, ADMIN).unit_code == grid_code(1, 3) and host.get(a, ADMIN).category_code == "0102"]
        before = host.get(alert_id, ADMIN).observed
        clock.advance(hours=2)
        lng, lat = centre(1, 3)
        more = [EventReport(f"late{k}", "0102", clock(), "hotline_12345", lng, lat) for k in range(5)]
        assert all(r.error is None for r in intakes.intake().submit(more, INTAKE))
        report = host.run(SUPERVISOR)
        assert alert_id in report.updated and alert_id not in report.raised
        assert host.get(alert_id, ADMIN).observed == before + 5
        assert [c.action for c in host.audit(alert_id, ADMIN)] == ["raise", "update"]
    finally:
        host.close()


def test_roles_jurisdiction_and_what_a_street_sees_of_a_run(district, rng):
    data_dir, intakes, clock = district
    submit(intakes, random_events(rng, spike=(0, 0, "0101", 9)) + [
        (3, 3, "0101", dt.datetime.combine(TODAY, dt.time(0, 5 + m), CST)) for m in range(9)])
    host = AlertHost(data_dir, intakes, AlertSettings(backfill_days=1, scan=False))
    try:
        with pytest.raises(Forbidden, match="may not run anomaly detection"):
            host.run(DASHBOARD)
        report = host.run(STREET_1)
        assert report.raised and all(host.get(a, ADMIN).chain[2] == "440307001" for a in report.raised)
        assert report.run.raised > len(report.raised)  # the run covered the district; the street sees its own
        other = [a for a in host.list(ADMIN) if a.chain[2] == "440307002"][0]
        with pytest.raises(Forbidden, match="outside the jurisdiction"):
            host.acknowledge(other.id, STREET_1)
        with pytest.raises(Forbidden, match="may not read alerts"):
            host.list(WORKER)
        with pytest.raises(Forbidden, match="may not acknowledge alerts"):
            host.acknowledge(other.id, DASHBOARD)
        assert host.list(DASHBOARD)  # dashboards read
        with pytest.raises(InvalidInput, match="after today"):
            host.run(SUPERVISOR, since=TODAY + timedelta(days=1))
    finally:
        host.close()


def test_an_alert_becomes_an_event_through_the_intake_once(district, rng):
    data_dir, intakes, clock = district
    submit(intakes, random_events(rng, spike=(2, 2, "0101", 9)))
    host = AlertHost(data_dir, intakes, AlertSettings(backfill_days=1, scan=False))
    try:
        host.run(SUPERVISOR)
        alert = [a for a in host.list(ADMIN) if a.unit_code == grid_code(2, 2) and a.category_code == "0101"][0]
        host.acknowledge(alert.id, SUPERVISOR, "looking")
        done, event_id = host.to_event(alert.id, SUPERVISOR, "send the 城管 team")
        assert done.state == "event" and done.event_id == event_id == f"alert-{alert.id}"
        event = intakes.intake().get(event_id, ADMIN)
        assert (event.grid_code, event.category_code, event.source) == (grid_code(2, 2), "0101", "early_warning")
        assert event.state.value != "reported"  # it went through the intake's registration and dispatch
        with pytest.raises(PreconditionFailed, match=r"is event by 赵督办 .*only new or acknowledged"):
            host.to_event(alert.id, SUPERVISOR)
        with pytest.raises(PreconditionFailed, match="is event"):
            host.dismiss(alert.id, SUPERVISOR, "too late")
        assert [c.action for c in host.audit(alert.id, ADMIN)] == ["raise", "acknowledge", "to_event"]
    finally:
        host.close()


def test_a_finder_plugged_in_is_stored_with_the_detectors_findings(district, rng):
    """The extension point for other signals (a grid's registered population, one day)."""
    data_dir, intakes, clock = district
    seen = []

    def population_jump(window: RunWindow) -> list[Finding]:
        seen.append((window.first_day, window.last_day))
        chain = (grid_code(1, 1), grid_code(1, 1)[:12], grid_code(1, 1)[:9], "440307")
        return [Finding("detector", "population jump", "population", "grid", chain[0], chain, window.last_day,
                        window.last_day, 480.0, 120.0, 4.0)]

    host = AlertHost(data_dir, intakes, AlertSettings(backfill_days=3, scan=False), finders=[population_jump])
    try:
        report = host.run(SUPERVISOR)
        assert seen == [(TODAY - timedelta(days=2), TODAY)]
        [alert] = [host.get(a, ADMIN) for a in report.raised]
        assert (alert.method, alert.observed, alert.state) == ("population jump", 480.0, "new")
    finally:
        host.close()


def test_the_schedule_runs_at_its_interval(district, rng):
    import threading
    import time

    data_dir, intakes, clock = district
    submit(intakes, random_events(rng, spike=(0, 1, "0102", 9)))
    host = AlertHost(data_dir, intakes, AlertSettings(interval_seconds=0.2, backfill_days=1, scan=False))
    woken = threading.Event()
    host.on_news(woken.set)
    try:
        host.start()
        assert woken.wait(30)
        deadline = time.monotonic() + 30
        while host.store.last_run() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert host.store.last_run().trigger == "schedule" and host.store.last_run().principal == "alert schedule"
    finally:
        host.close()


def test_alarm_days_one_quiet_day_apart_are_one_alert_two_apart_are_two(district):
    """A category never reported before: 3 reports 5 and 3 days ago (one quiet day between: one
    alert), 9 today (two quiet days after: another; 3 would not do, the baseline now holds the 3s)."""
    data_dir, intakes, clock = district

    def at(days_ago, m):
        return dt.datetime.combine(TODAY - timedelta(days=days_ago), dt.time(0, 5 + m), CST)

    submit(intakes, [(1, 2, "0103", at(d, m)) for d, n in ((5, 3), (3, 3), (0, 9)) for m in range(n)])
    host = AlertHost(data_dir, intakes, AlertSettings(method="C2", alpha=0.001, min_sigma=0.5, backfill_days=30, scan=False))
    try:
        host.run(SUPERVISOR, since=TODAY - timedelta(days=6))
        got = sorted((a.first_day, a.last_day, a.observed) for a in host.list(ADMIN))
        assert got == [(TODAY - timedelta(days=5), TODAY - timedelta(days=3), 6.0), (TODAY, TODAY, 9.0)]
    finally:
        host.close()


def _cluster_events(rng, cluster):
    """Two weeks of background in category 0101 (about one report a day in each grid, so today
    alone holds no cluster), plus ``cluster``: reports today in the grids named."""
    events = []
    for d in range(14, 0, -1):
        day = dt.datetime.combine(TODAY - timedelta(days=d), dt.time(), CST)
        for i in range(4):
            for j in range(4):
                for _ in range(rng.poisson(1.0)):
                    events.append((i, j, "0101", day + timedelta(minutes=int(rng.integers(0, 1440)))))
    for i in range(4):
        for j in range(4):
            for _ in range(rng.poisson(0.1)):  # today's background until 03:00
                events.append((i, j, "0101", dt.datetime.combine(TODAY, dt.time(0, int(rng.integers(0, 59))), CST)))
    for i, j, n in cluster:
        for m in range(n):
            events.append((i, j, "0101", dt.datetime.combine(TODAY, dt.time(1, m), CST)))
    return events


def test_a_cluster_across_grid_borders_is_one_disc_alert(district, rng):
    """Six reports in each of two neighbouring grids today come back as one disc alert of the
    scan holding both grids, centred on one of them; a second run updates it instead of adding one."""
    data_dir, intakes, clock = district
    submit(intakes, _cluster_events(rng, [(1, 1, 6), (2, 1, 6)]))
    host = AlertHost(data_dir, intakes, AlertSettings(backfill_days=1, scan=True, scan_reps=199, scan_p=0.01,
                                                      scan_study_days=15))
    try:
        report = host.run(SUPERVISOR)
        discs = [a for a in host.list(ADMIN, limit=1000) if a.level == "disc"]
        assert len(discs) == 1, discs
        disc = discs[0]
        assert disc.kind == "scan" and disc.method == "stp" and disc.category_code == "0101"
        assert {grid_code(1, 1), grid_code(2, 1)} <= set(disc.grids)
        assert disc.unit_code in disc.grids and disc.last_day == TODAY and disc.p < 0.01
        assert disc.observed >= 12 and disc.radius_m > 0
        assert disc.id in report.raised
        again = host.run(SUPERVISOR, trigger="test")
        assert disc.id in again.updated and not [a for a in again.raised
                                                 if host.get(a, ADMIN).level == "disc"]
    finally:
        host.close()


def test_a_run_without_a_cluster_raises_no_disc_alert(district, rng):
    data_dir, intakes, clock = district
    submit(intakes, _cluster_events(rng, []))
    host = AlertHost(data_dir, intakes, AlertSettings(backfill_days=1, scan=True, scan_reps=199, scan_p=0.01,
                                                      scan_study_days=15))
    try:
        host.run(SUPERVISOR)
        assert [a for a in host.list(ADMIN, limit=1000) if a.level == "disc"] == []
    finally:
        host.close()


def _class_events():
    """Twenty days of 0101 twice a day and 0102 once in grids A (0, 0), B (1, 1) (street 1) and
    C (3, 3) (street 2); today before 03:00: A 4 of 0101 and 4 of 0102 (neither above its own bound,
    C2 at 0.001 with a floor of 1: 5.09 and 4.09; the class 01 above its 6.09), B 8 of 0101 and 1 of
    0102 (0101 alone), C 8 of 0101 and 6 of 0102 (both)."""
    events = []
    for d in range(20, 0, -1):
        for i, j in ((0, 0), (1, 1), (3, 3)):
            for cat, hours in (("0101", (9, 15)), ("0102", (11,))):
                events += [(i, j, cat, dt.datetime.combine(TODAY - timedelta(days=d), dt.time(h), CST)) for h in hours]
    for (i, j), n1, n2 in (((0, 0), 4, 4), ((1, 1), 8, 1), ((3, 3), 8, 6)):
        for cat, n in (("0101", n1), ("0102", n2)):
            events += [(i, j, cat, dt.datetime.combine(TODAY, dt.time(0, 10 + m), CST)) for m in range(n)]
    return events


CLASS_SETTINGS = AlertSettings(method="C2", alpha=0.001, min_sigma=1.0, backfill_days=1, scan=False, hourly=False)


def test_a_class_alert_when_its_categories_rise_together_not_when_one_does(district):
    """A: two categories, each below its bound, rise together: a class alert only. B: one category's
    spike: its alert, and the class's alarm (which only repeats it) is no second alert. C: both
    categories alarm: their alerts and the class's (two rising at once is more than either says)."""
    data_dir, intakes, clock = district
    submit(intakes, _class_events())
    host = AlertHost(data_dir, intakes, CLASS_SETTINGS)
    try:
        host.run(SUPERVISOR)
        got = sorted((a.unit_code, a.category_code, a.first_day, a.observed) for a in host.list(ADMIN))
        a, b, c = grid_code(0, 0), grid_code(1, 1), grid_code(3, 3)
        assert got == [(a, "01", TODAY, 8.0), (b, "0101", TODAY, 8.0),
                       (c, "01", TODAY, 14.0), (c, "0101", TODAY, 8.0), (c, "0102", TODAY, 6.0)]
        again = host.run(SUPERVISOR)  # today judged again: the same alerts updated, none added
        assert again.raised == () and len(again.updated) == 5
    finally:
        host.close()


def test_classes_are_judged_at_the_levels_configured(district):
    """The same events by street: street 1 (A and B) 12 of 0101 today over 4 a day and 5 of 0102
    over 2; the class's 17 over 6 alarms, but not without 0101 (5 over 2, under 5.09): 0101's
    alert only. Street 2 (C alone) as grid C: both categories and the class."""
    data_dir, intakes, clock = district
    submit(intakes, _class_events())
    host = AlertHost(data_dir, intakes, replace(CLASS_SETTINGS, levels=("street",)))
    try:
        host.run(SUPERVISOR)
        got = sorted((a.level, a.unit_code, a.category_code, a.observed) for a in host.list(ADMIN))
        assert got == [("street", "440307001", "0101", 12.0), ("street", "440307002", "01", 14.0),
                       ("street", "440307002", "0101", 8.0), ("street", "440307002", "0102", 6.0)]
        [cls] = [a for a in host.list(ADMIN) if a.category_code == "01"]
        assert cls.chain == (None, None, "440307002", "440307")
    finally:
        host.close()


def test_no_class_alert_with_classes_off(district):
    data_dir, intakes, clock = district
    submit(intakes, _class_events())
    host = AlertHost(data_dir, intakes, replace(CLASS_SETTINGS, classes=False))
    try:
        host.run(SUPERVISOR)
        assert sorted(a.category_code for a in host.list(ADMIN)) == ["0101", "0101", "0102"]
    finally:
        host.close()


def test_class_alerts_are_jurisdiction_scoped_and_become_an_event_of_their_most_risen_category(district):
    data_dir, intakes, clock = district
    submit(intakes, _class_events())
    host = AlertHost(data_dir, intakes, CLASS_SETTINGS)
    try:
        report = host.run(STREET_1)
        street_1 = [host.get(i, ADMIN) for i in report.raised]
        assert [(x.unit_code, x.category_code) for x in street_1 if x.category_code == "01"] == [(grid_code(0, 0), "01")]
        [other] = [x for x in host.list(ADMIN) if x.category_code == "01" and x.chain[2] == "440307002"]
        with pytest.raises(Forbidden, match="outside the jurisdiction"):
            host.to_event(other.id, STREET_1)
        assert other.id not in {x.id for x in host.list(STREET_1)}
        # A: 0101 4 today over a baseline of 2 a day (excess 2), 0102 4 over 1 (excess 3): 0102
        [mine] = [x for x in street_1 if x.category_code == "01"]
        done, event_id = host.to_event(mine.id, STREET_1)
        event = intakes.intake().get(event_id, ADMIN)
        assert (done.state, event.category_code, event.grid_code) == ("event", "0102", grid_code(0, 0))
        # C: 0101 8 (excess 6), 0102 6 (excess 5): 0101
        _, event_id = host.to_event(other.id, SUPERVISOR)
        assert intakes.intake().get(event_id, ADMIN).category_code == "0101"
    finally:
        host.close()
