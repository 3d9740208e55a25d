"""Every query family against a plain SQL GROUP BY over the store, after random mixes of intake,
lifecycle actions, relocations, layer activations (with the re-grid of open events), clock ticks
(escalations) and duplicate reports, driven through the real intake on a real store, with a
manual clock. Zero differences."""

from __future__ import annotations

import math
import shutil
import tempfile
from datetime import datetime, timedelta

import h3
import pytest
import hypothesis.strategies as st
import shapely
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from busy import held_elsewhere
from intake_world import (
    ADMIN, CST, DISPATCHER, INTAKE, LNG0, LAT0, SIDE, STEP, SUPERVISOR, VERIFIER, build_layer, centre, grid_code,
    worker_id,
)
from sql_oracle import STAGE_STATES, Oracle, close, nearest_rank

from citygrid.engine.analytics.config import RATES, AnalyticsConfig
from citygrid.engine.analytics.queries import COUNTS, DURATIONS, Analytics
from citygrid.engine.times import ManualClock
from citygrid.engine.errors import CityGridError
from citygrid.engine.cases.model import EventFilter, EventReport
from citygrid.engine.cases.store import SqliteEventStore
from citygrid.engine.cases.intake import Intake
from citygrid.engine.cases.locator import AssignerLocator
from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.cases.lifecycle import Action, State
from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.dispatch.workers import Worker

START = datetime(2026, 3, 6, 16, 30, tzinfo=CST)  # a Friday afternoon: nights, a weekend, Monday
CATEGORIES = ("0101", "0102", "0501", "1001")
SOURCES = ("hotline_12345", "inspector_terminal", "citizen_app")
DIMENSION_SETS = (
    (), ("grid",), ("community",), ("street", "day"), ("district", "class", "day"), ("category", "source"),
    ("state",), ("stage", "worker"), ("department", "hour"), ("grid_type", "week"), ("month", "street"),
    ("hour_of_day", "weekday"),
)
SCOPES = (None, ("440307001",), ("440307002001",), (grid_code(1, 1),))


def shifted_layer() -> GridLayer:
    """The same grid codes with every column boundary moved a quarter grid east: activating it
    re-grids events near the edges (and leaves the western strip outside every grid)."""
    boxes, codes = [], []
    for j in range(SIDE):
        for i in range(SIDE):
            x = LNG0 + (i + 0.25) * STEP
            boxes.append(shapely.box(x, LAT0 + j * STEP, x + STEP, LAT0 + (j + 1) * STEP))
            codes.append(grid_code(i, j))
    return GridLayer.from_geometries(
        boxes,
        {"grid_code": codes, "community_code": [c[:12] for c in codes], "street_code": [c[:9] for c in codes],
         "district_code": ["440307"] * len(codes), "grid_type": ["01" if c[-1] in "12" else "02" for c in codes]},
        version_id="shifted",
    )


class AnalyticsMatchesSql(RuleBasedStateMachine):
    @initialize()
    def start(self):
        self.dir = tempfile.mkdtemp(prefix="analytics-exact-")
        self.clock = ManualClock(START)
        self.layers = {"world": build_layer(), "shifted": shifted_layer()}
        self.store = SqliteEventStore(self.dir)
        self.intake = Intake(self.store, AssignerLocator.for_layer(self.layers["world"]), clock=self.clock)
        workers = [Worker(worker_id(i, j), grid_code(i, j), skills=frozenset({"01", "05", "10"}), shift="always",
                          capacity=3) for i in range(SIDE) for j in range(SIDE) if (i + j) % 3]
        self.intake.put_workers(workers, ADMIN)
        # Reports in several slots of the day cube before the analytics start, so the slots of the
        # first catch-up (kept as sorted keys) are many and later ones fall between them.
        self.intake.submit([self._report(i, j, category, 0.0, "hotline_12345") for i, j in ((1, 1), (0, 2), (2, 1))
                            for category in CATEGORIES[:2]], INTAKE)
        self.config = AnalyticsConfig.from_table({"denominators": {"closure": "reported"}})
        self.analytics = Analytics.for_intake(self.intake, self.dir, config=self.config)
        self.oracle = Oracle(self.dir, self.intake.taxonomy, self.intake.config.schedule)
        self.oracle.use_layer(self.layers["world"])
        self.counter = 0

    def teardown(self):
        if hasattr(self, "analytics"):
            self.analytics.close()
            self.intake.close()
            self.oracle.conn.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _report(self, i, j, category, dx, source):
        self.counter = getattr(self, "counter", 0) + 1
        lng, lat = centre(i, j)
        return EventReport(f"ev-{self.counter:05d}", category, self.clock(), source, lng + dx * STEP, lat)

    def _events(self):
        return self.store.list_events(EventFilter(), limit=1000)

    @rule(n=st.integers(1, 6), i=st.integers(0, SIDE - 1), j=st.integers(0, SIDE - 1),
          category=st.sampled_from(CATEGORIES), dx=st.sampled_from([0.0, 0.1, -0.45, 0.4]),
          source=st.sampled_from(SOURCES))
    def report(self, n, i, j, category, dx, source):
        # Several reports of one matter at one place: the later ones are duplicates.
        self.intake.submit([self._report(i, j, category, dx, source) for _ in range(n)], INTAKE)

    @rule(pick=st.integers(0, 10_000), action=st.sampled_from(list(Action)), minutes=st.sampled_from([30, 600]))
    def act(self, pick, action, minutes):
        events = self._events()
        event = events[pick % len(events)]
        who = {Action.HANDLE: None, Action.FEEDBACK: None, Action.RETURN: None, Action.VERIFY: VERIFIER,
               Action.REWORK: VERIFIER, Action.EXTEND: SUPERVISOR, Action.PARK: SUPERVISOR,
               Action.UNPARK: SUPERVISOR}.get(action, DISPATCHER)
        if who is None:
            who = Principal("w", Role.WORKER, ("*",), worker_id=event.worker_id)
        try:
            self.intake.act(event.event_id, action, who, minutes=minutes if action is Action.EXTEND else None)
        except CityGridError:
            pass

    @rule(pick=st.integers(0, 10_000), i=st.integers(0, SIDE - 1), j=st.integers(0, SIDE - 1))
    def relocate(self, pick, i, j):
        events = self._events()
        event = events[pick % len(events)]
        lng, lat = centre(i, j)
        try:
            self.intake.relocate(event.event_id, DISPATCHER, lng=lng, lat=lat)
        except CityGridError:
            pass

    @rule(steps=st.lists(st.tuples(st.sampled_from(["report", "act", "relocate"]), st.integers(0, 10_000),
                                   st.integers(0, SIDE - 1), st.integers(0, SIDE - 1)), min_size=2, max_size=6))
    def several_while_a_query_counts(self, steps):
        """Several commits while another thread holds the mirror: the intake's batches wait, handed
        over, between lifecycle actions and relocations, and one catch-up takes them all."""
        with held_elsewhere(self.analytics.mirror.lock):
            for kind, pick, i, j in steps:
                if kind == "report":
                    self.report(1 + pick % 3, i, j, CATEGORIES[pick % len(CATEGORIES)], 0.1, SOURCES[pick % 3])
                elif kind == "act":
                    self.act(pick, list(Action)[pick % len(Action)], 30)
                else:
                    self.relocate(pick, i, j)

    @rule(name=st.sampled_from(["world", "shifted"]))
    def activate(self, name):
        layer = self.layers[name]
        self.intake.use_layer(AssignerLocator.for_layer(layer))
        self.intake.regrid_open_events(SUPERVISOR)  # the analytics follows the intake's layer by itself
        self.oracle.use_layer(layer)

    @rule(minutes=st.sampled_from([5, 90, 600, 3000]))
    def advance(self, minutes):
        self.clock.advance(minutes=minutes)
        self.intake.tick()

    # ------------------------------------------------------------------ the comparisons

    def _window(self, which: str):
        """"wide" (everything), "narrow" (part of it) or "days" (local midnight to local midnight around
        everything: what the day cube counts)."""
        if which == "wide":
            return START - timedelta(days=1), self.clock() + timedelta(hours=1)
        if which == "days":
            return _midnight(START - timedelta(days=1)), _midnight(self.clock() + timedelta(days=1))
        return START + timedelta(hours=2), START + timedelta(days=2, hours=5)

    @invariant()
    @precondition(lambda self: hasattr(self, "analytics"))
    def totals_match(self):
        self._check_aggregate(*self._window("wide"), ("state",), None)
        self._check_aggregate(*self._window("days"), (), None, order_statistics=False)

    @rule(dims=st.sampled_from(DIMENSION_SETS), scope=st.sampled_from(SCOPES),
          window=st.sampled_from(["wide", "narrow", "days"]))
    def aggregates_match(self, dims, scope, window):
        # Over whole days without p50/p90 the day cube counts (where it has the dimensions).
        self._check_aggregate(*self._window(window), dims, scope, order_statistics=window != "days")

    def _principal(self, scope):
        return ADMIN if scope is None else Principal("大屏", Role.DASHBOARD, scope)

    def _check_aggregate(self, start, end, dims, scope, order_statistics=True):
        stats = ("mean", "p50", "p90") if order_statistics else ("mean",)
        measures = list(COUNTS) + [f"{d}_{s}" for d in DURATIONS for s in stats]
        got = self.analytics.aggregate(self._principal(scope), start=start, end=end, dimensions=dims,
                                       measures=measures).rows()
        want = self.oracle.aggregate(start, end, dims, self.clock(), scope)
        got_keys = {tuple(r[d] for d in dims): r for r in got}
        assert set(got_keys) == set(want), (dims, scope, set(got_keys) ^ set(want))
        durations = {name: self.oracle.durations(start, end, dims, name.removesuffix("_minutes"), scope)
                     for name in DURATIONS}
        for key, expected in want.items():
            row = got_keys[key]
            for m in COUNTS:
                assert row[m] == expected[m], (dims, scope, key, m, row[m], expected[m])
            for name in DURATIONS:
                stage = name.removesuffix("_minutes")
                s, n = ((expected["close_us"], expected["closed"]) if stage == "close"
                        else (expected[f"{stage}_us"], expected[f"{stage}_n"]))
                assert close(row[f"{name}_mean"], s / n / 60e6 if n else math.nan), (dims, key, name)
                values = durations[name].get(key, [])
                for tenths, stat in ((5, "p50"), (9, "p90"))[: 2 if order_statistics else 0]:
                    exp = nearest_rank(values, tenths) / 60e6 if values else math.nan
                    assert close(row[f"{name}_{stat}"], exp), (dims, key, name, stat, row[f"{name}_{stat}"], exp)

    @rule(dims=st.sampled_from(DIMENSION_SETS), window=st.sampled_from(["wide", "days"]), scan=st.booleans())
    def a_rebuild_matches_the_caught_up_mirror(self, dims, window, scan):
        """A mirror rebuilt from the store now (its audit log read on the second connection, its day
        cube made in one go; events, audit and escalations read through store scans, or with none
        available through the sqlite3 module) answers as the one caught up step by step."""
        from citygrid.engine.analytics import mirror, store_scan

        kept = (mirror.ASIDE_AUDIT_ROWS, mirror.SCAN_EVENTS, mirror.SCAN_ESCALATIONS, store_scan.available)
        mirror.ASIDE_AUDIT_ROWS = mirror.SCAN_EVENTS = mirror.SCAN_ESCALATIONS = 0
        if not scan:
            store_scan.available = lambda: False
        try:
            fresh = Analytics.for_intake(self.intake, self.dir, config=self.config)
        finally:
            mirror.ASIDE_AUDIT_ROWS, mirror.SCAN_EVENTS, mirror.SCAN_ESCALATIONS, store_scan.available = kept
        try:
            start, end = self._window(window)
            measures = list(COUNTS) + [f"{d}_mean" for d in DURATIONS]
            for who in (ADMIN, self._principal(SCOPES[1])):
                want = self.analytics.aggregate(who, start=start, end=end, dimensions=dims, measures=measures).rows()
                got = fresh.aggregate(who, start=start, end=end, dimensions=dims, measures=measures).rows()
                _same(got, want, lambda r: tuple(r[d] for d in dims))
        finally:
            fresh.close()

    @rule(scope=st.sampled_from(SCOPES))
    def other_families_match(self, scope):
        for which in ("wide", "days"):
            start, end = self._window(which)
            who = self._principal(scope)
            # Heatmap per H3 cell (h3-py over the stored positions, grouped here).
            for res in (7, 9, 10):
                got = dict(zip(*self.analytics.heatmap(who, start=start, end=end, h3_resolution=res).columns.values()))
                want: dict = {}
                for x, y in self.oracle.positions(start, end, scope):
                    cell = h3.latlng_to_cell(y, x, res)
                    want[cell] = want.get(cell, 0) + 1
                assert {k: int(v) for k, v in got.items()} == want
            # Trend: this window, the one before, a year before; and a street's (the day cube reads
            # that street's slots only).
            mid = self.clock() - timedelta(hours=12) if which == "wide" else _midnight(self.clock())
            for measure, whose, filters, within in (("closed", who, None, scope),
                                                    ("reported", ADMIN, {"street": ["440307001"]}, ("440307001",))):
                trend = self.analytics.trend(whose, start=mid, end=end, measure=measure, filters=filters)
                for value, (a, b) in ((trend.current, (mid, end)), (trend.previous, (mid - (end - mid), mid)),
                                      (trend.year_before, (mid.replace(year=mid.year - 1), end.replace(year=end.year - 1)))):
                    want = self.oracle.aggregate(a, b, (), self.clock(), within)
                    assert value == (want[()][measure] if want else 0)
            # Top areas by count (ties: smaller code first).
            for level in ("grid", "community"):
                got = [(r.code, r.count) for r in self.analytics.top_areas(who, level=level, start=start, end=end, n=5)]
                want = sorted(((k[0], v["reported"]) for k, v in
                               self.oracle.aggregate(start, end, (level,), self.clock(), scope).items()),
                              key=lambda kv: (-kv[1], kv[0] or ""))[:5]
                assert got == want
            # KPIs: the rates from the SQL counts under the configured denominators, then the score.
            for unit in ("worker", "grid"):
                want = self.oracle.aggregate(start, end, (unit,), self.clock(), scope)
                for kpi in self.analytics.kpis(who, unit=unit, start=start, end=end).rows():
                    counts = want[(kpi[unit],)]
                    assert kpi["overdue_now"] == counts["overdue_now"]
                    for name in ("reported", "registered", "dispatched", "closed", "reworked", "handled",
                                 "handled_on_time", "dispatched_on_time"):  # the counts behind the rates
                        assert kpi[name] == counts[name], (unit, name)
                    for stage in STAGE_STATES:  # and the mean working minutes per stage
                        s, n = counts[f"{stage}_us"], counts[f"{stage}_n"]
                        assert close(kpi[f"{stage}_minutes_mean"], s / n / 60e6 if n else math.nan), (unit, stage)
                    parts = weights = 0.0
                    for name, (numerator, _, higher) in RATES.items():
                        den = counts[self.config.denominators[name]]
                        rate = counts[numerator] / den if den else math.nan
                        assert close(kpi[f"{name}_rate"], rate)
                        if den:
                            parts += self.config.weights[name] * 100 * (rate if higher else 1 - rate)
                            weights += self.config.weights[name]
                    assert close(kpi["score"], parts / weights if weights else math.nan)
                    assert kpi["grade"] == self.config.grade(kpi["score"])


def _same(got: list[dict], want: list[dict], key) -> None:
    """Rows equal by key, NaN equal to NaN (means without a denominator)."""
    g, w = {key(r): r for r in got}, {key(r): r for r in want}
    assert set(g) == set(w)
    for k, row in w.items():
        for name, value in row.items():
            assert close(g[k][name], value) if isinstance(value, float) else g[k][name] == value, (k, name)


def _midnight(t: datetime) -> datetime:
    """Local midnight (the world's zone) of the day of ``t``."""
    return t.astimezone(CST).replace(hour=0, minute=0, second=0, microsecond=0)


AnalyticsMatchesSql.TestCase.settings = settings(
    max_examples=15, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestAnalyticsMatchesSql = AnalyticsMatchesSql.TestCase


@pytest.mark.slow
class TestAnalyticsMatchesSqlLonger(AnalyticsMatchesSql.TestCase):
    """The same with more and longer runs (``pytest -m slow``)."""

    settings = settings(max_examples=80, stateful_step_count=60, deadline=None,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
