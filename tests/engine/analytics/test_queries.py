"""The analytics engine's contract: precise errors, jurisdiction, live counts right after intake,
rates per resident and per km², and the [analytics] configuration."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st
from intake_world import ADMIN, CST, INTAKE, LAT0, LNG0, SIDE, STEP, grid_code, make_world, worker_id

from citygrid.engine.analytics.config import AnalyticsConfig
from citygrid.engine.analytics.population import StaticPopulation
from citygrid.engine.analytics.queries import MAX_CELLS, Analytics
from citygrid.engine.errors import Forbidden, InvalidInput
from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.access.principals import Principal, Role

DASHBOARD = Principal("大屏", Role.DASHBOARD)
STREET1 = Principal("街道大屏", Role.DASHBOARD, ("440307001",))


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path)
    w.intake.submit([w.report(i, j) for i in range(SIDE) for j in range(SIDE)], INTAKE)
    analytics = Analytics.for_intake(w.intake, tmp_path)
    yield w, analytics
    analytics.close()
    w.intake.close()


def window(w):
    return {"start": w.now[0] - timedelta(hours=1), "end": w.now[0] + timedelta(hours=1)}


def test_a_query_right_after_a_submit_counts_it(world):
    w, analytics = world
    before = analytics.aggregate(DASHBOARD, **window(w)).columns["reported"][0]
    w.intake.submit([w.report(0, 0, category="0501", dx=0.001)], INTAKE)
    assert analytics.aggregate(DASHBOARD, **window(w)).columns["reported"][0] == before + 1


def test_a_street_dashboard_sees_only_its_street(world):
    w, analytics = world
    table = analytics.aggregate(STREET1, dimensions=("street",), **window(w))
    assert table.columns["street"] == ["440307001"]
    assert table.columns["reported"].tolist() == [SIDE * SIDE // 2]
    cells = analytics.heatmap(STREET1, h3_resolution=10, **window(w)).columns["reported"]
    assert cells.sum() == SIDE * SIDE // 2


def test_a_worker_reads_only_their_own_kpis(world):
    w, analytics = world
    me = Principal("网格员", Role.WORKER, (grid_code(1, 1),), worker_id=worker_id(1, 1))
    table = analytics.kpis(me, unit="worker", **window(w))
    assert table.columns["worker"] == [worker_id(1, 1)]
    with pytest.raises(Forbidden):
        analytics.kpis(me, unit="grid", **window(w))
    with pytest.raises(Forbidden):
        analytics.aggregate(me, **window(w))
    with pytest.raises(Forbidden):
        analytics.trend(INTAKE, **window(w))


@pytest.mark.parametrize("call, message", [
    (lambda a, win: a.aggregate(ADMIN, dimensions=("planet",), **win), "unknown dimension 'planet'"),
    (lambda a, win: a.aggregate(ADMIN, measures=("joy",), **win), "unknown measure 'joy'"),
    (lambda a, win: a.aggregate(ADMIN, filters={"day": ["x"]}, **win), "cannot filter by 'day'"),
    (lambda a, win: a.aggregate(ADMIN, dimensions=("day", "day"), **win), "named twice"),
    (lambda a, win: a.aggregate(ADMIN, measures=("reported_per_km2",), **win), "exactly one area dimension"),
    (lambda a, win: a.aggregate(ADMIN, start=win["end"], end=win["start"]), "is empty"),
    (lambda a, win: a.aggregate(ADMIN, start=datetime(2026, 3, 9), end=win["end"]), "with a time zone"),
    (lambda a, win: a.aggregate(ADMIN, dimensions=("hour", "grid", "worker", "category"),
                                start=win["start"] - timedelta(days=400), end=win["end"]), f"at most {MAX_CELLS:,}"),
    (lambda a, win: a.heatmap(ADMIN, h3_resolution=6, **win), "choose 7-10"),
    (lambda a, win: a.top_areas(ADMIN, level="grid", n=0, **win), "n must be"),
    (lambda a, win: a.top_areas(ADMIN, level="house", **win), "level 'house'"),
    (lambda a, win: a.kpis(ADMIN, unit="class", **win), "not 'class'"),
    (lambda a, win: a.trend(ADMIN, measure="close_minutes_mean", **win), "a trend is of a count"),
])
def test_bad_queries_are_refused_precisely(world, call, message):
    w, analytics = world
    with pytest.raises(InvalidInput, match=message):
        call(analytics, window(w))


def test_rates_per_resident_and_km2(tmp_path):
    w = make_world(tmp_path)
    w.intake.submit([w.report(0, 0), w.report(0, 0, category="0501"), w.report(3, 3)], INTAKE)
    boxes = [shapely.box(LNG0 + i * STEP, LAT0 + j * STEP, LNG0 + (i + 1) * STEP, LAT0 + (j + 1) * STEP)
             for j in range(SIDE) for i in range(SIDE)]
    codes = [grid_code(i, j) for j in range(SIDE) for i in range(SIDE)]
    layer = GridLayer.from_geometries(boxes, {
        "grid_code": codes, "community_code": [c[:12] for c in codes], "street_code": [c[:9] for c in codes],
        "district_code": ["440307"] * len(codes), "area_m2": [250_000.0] * len(codes)}, version_id="areas")
    people = StaticPopulation({code: 400 for code in codes})
    analytics = Analytics(tmp_path, layer=layer, population=people, clock=w.intake.clock)
    rows = {r["community"]: r for r in analytics.aggregate(
        DASHBOARD, dimensions=("community",), measures=("reported", "reported_per_1000_residents", "reported_per_km2"),
        **window(w)).rows()}
    first = rows[grid_code(0, 0)[:12]]  # 4 grids: 1,600 residents, 1 km²
    assert first["reported"] == 2
    assert first["reported_per_1000_residents"] == pytest.approx(2 * 1000 / 1600)
    assert first["reported_per_km2"] == pytest.approx(2.0)
    top = analytics.top_areas(DASHBOARD, level="grid", by="rate", n=2, **window(w))
    assert [r.code for r in top] == sorted([grid_code(0, 0), grid_code(3, 3)], key=lambda c: (c != grid_code(0, 0), c))
    assert top[0].per_1000_residents == pytest.approx(5.0)
    analytics.close()
    w.intake.close()


class MovingPopulation:
    """Residents per grid that change while the server runs, as the house registry's do: a new
    ``generation()`` with every change (citygrid.engine.houses.host.RegistryPopulation)."""

    def __init__(self, residents):
        self.residents, self.changes = dict(residents), 0

    def generation(self):
        return self.changes

    def residents_by_grid(self):
        return dict(self.residents)


def test_rates_follow_a_population_that_changes(tmp_path):
    w = make_world(tmp_path)
    w.intake.submit([w.report(0, 0), w.report(0, 0, category="0501")], INTAKE)
    people = MovingPopulation({grid_code(i, j): 400 for j in range(SIDE) for i in range(SIDE)})
    analytics = Analytics.for_intake(w.intake, tmp_path, population=people)

    def rate():
        table = analytics.aggregate(DASHBOARD, dimensions=("grid",), measures=("reported_per_1000_residents",),
                                    filters={"grid": [grid_code(0, 0)]}, **window(w))
        return table.columns["reported_per_1000_residents"][0]

    assert rate() == pytest.approx(2 * 1000 / 400)
    people.residents[grid_code(0, 0)] = 1000  # 600 people moved in: the registry's counts changed
    people.changes += 1
    assert rate() == pytest.approx(2 * 1000 / 1000)
    analytics.close()
    w.intake.close()


def test_trend_compares_with_the_window_before_and_a_year_before(world):
    w, analytics = world
    trend = analytics.trend(DASHBOARD, **window(w))
    assert (trend.current, trend.previous, trend.year_before) == (SIDE * SIDE, 0, 0)
    assert math.isnan(trend.vs_previous)


def test_config_worked_example():
    """The README's worked example: weights 0.4 / 0.3 / 0.15 / 0.15, a worker with 18 of 20 handled on
    time (90 %), 19 of 20 registered closed (95 %), 2 of 19 closed reworked (10.5 %), 20 of 20
    dispatched in time: 0.4*90 + 0.3*95 + 0.15*89.47 + 0.15*100 = 92.9 -> A."""
    config = AnalyticsConfig.from_table({})
    score = (0.4 * 90 + 0.3 * 95 + 0.15 * (100 - 2 / 19 * 100) + 0.15 * 100) / 1.0
    assert round(score, 1) == 92.9 and config.grade(score) == "A"
    assert [config.grade(x) for x in (90, 89.99, 75, 60, 40, 39.9)] == ["A", "B", "B", "C", "D", "E"]
    for bad, message in [({"weights": {"joy": 1}}, "no such rate"), ({"grades": {"A": 50, "B": 75}}, "fall from A"),
                         ({"weights": {k: 0 for k in ("on_time_disposal", "closure", "rework", "timely_dispatch")}},
                          "at least one weight"), ({"colour": 1}, "unknown keys")]:
        with pytest.raises(InvalidInput, match=message):
            AnalyticsConfig.from_table(bad)


def test_buckets_are_local_days_at_three_in_the_morning(tmp_path):
    night = datetime(2026, 3, 10, 3, 0, tzinfo=CST)  # 2026-03-09 19:00 UTC
    w = make_world(tmp_path, start=night)
    w.intake.submit([w.report(1, 1)], INTAKE)
    analytics = Analytics.for_intake(w.intake, tmp_path)
    table = analytics.aggregate(DASHBOARD, dimensions=("day", "hour_of_day", "weekday"),
                                start=night - timedelta(days=1), end=night + timedelta(days=1))
    assert table.rows()[0] | {} == {"day": "2026-03-10", "hour_of_day": 3, "weekday": 1, "reported": 1}
    utc = analytics.aggregate(DASHBOARD, dimensions=("day",), start=night.astimezone(timezone.utc) - timedelta(hours=1),
                              end=night.astimezone(timezone.utc) + timedelta(hours=1))
    assert utc.columns["day"] == ["2026-03-10"]
    analytics.close()
    w.intake.close()


def test_areas_of_another_layer_version(world):
    """A version that moves grid (1, 1) to the other street counts its events there."""
    w, analytics = world
    moved = grid_code(1, 1)
    codes = [grid_code(i, j) for j in range(SIDE) for i in range(SIDE)]
    street = {c: ("440307002" if c == moved else c[:9]) for c in codes}
    boxes = [shapely.box(LNG0 + i * STEP, LAT0 + j * STEP, LNG0 + (i + 1) * STEP, LAT0 + (j + 1) * STEP)
             for j in range(SIDE) for i in range(SIDE)]
    layer = GridLayer.from_geometries(boxes, {
        "grid_code": codes, "community_code": [street[c] + c[9:12] for c in codes],
        "street_code": [street[c] for c in codes], "district_code": ["440307"] * len(codes)}, version_id="v2")
    stored = {r["street"]: r["reported"] for r in analytics.aggregate(DASHBOARD, dimensions=("street",), **window(w)).rows()}
    v2 = {r["street"]: r["reported"] for r in
          analytics.aggregate(DASHBOARD, dimensions=("street",), layer=layer, **window(w)).rows()}
    assert stored == {"440307001": 8, "440307002": 8}
    assert v2 == {"440307001": 7, "440307002": 9}


# ---------------------------------------------------------------------- remembered answers


def _overdue(analytics, bounds):
    return int(analytics.aggregate(DASHBOARD, measures=("reported", "overdue_now"), **bounds)
               .columns["overdue_now"].sum())


def test_a_remembered_answer_follows_the_clock_past_a_deadline_and_back(world, tmp_path):
    """The same question asked again with nothing committed is answered from memory, but not once
    the clock passes a deadline of an event it counted (nor when the clock goes back); a fresh
    engine over the same store, which has remembered nothing, is the expectation."""
    w, analytics = world
    start, bounds = w.now[0], window(w)
    assert _overdue(analytics, bounds) == 0
    later = [start + timedelta(hours=h) for h in (1, 24, 72, 24 * 40)]
    seen = []
    for t in later + [start]:
        w.now[0] = t
        fresh = Analytics.for_intake(w.intake, tmp_path)
        try:
            want = _overdue(fresh, bounds)
        finally:
            fresh.close()
        seen.append(want)
        assert _overdue(analytics, bounds) == want
    assert max(seen) > 0 and seen[-1] == 0, seen  # the clock did pass deadlines, and came back


def test_a_remembered_answer_is_forgotten_on_a_commit_and_copies_are_the_callers_own(world):
    w, analytics = world
    first = analytics.aggregate(DASHBOARD, dimensions=("street",), **window(w))
    first.columns["reported"][:] = -1  # the caller's copy: the next caller's answer is untouched
    first.columns["street"].clear()
    again = analytics.aggregate(DASHBOARD, dimensions=("street",), **window(w))
    assert again.columns["reported"].sum() == SIDE * SIDE and len(again.columns["street"]) == 2
    w.intake.submit([w.report(0, 0, category="0501", dx=0.001)], INTAKE)
    assert analytics.aggregate(DASHBOARD, dimensions=("street",), **window(w)).columns["reported"].sum() == \
        SIDE * SIDE + 1
    # a street's dashboard asking the same question gets its street's answer, not the district's
    assert analytics.aggregate(STREET1, dimensions=("street",), **window(w)).columns["street"] == ["440307001"]


def test_remembered_answers_stay_within_their_budget(world, monkeypatch):
    """Least recently asked answers are forgotten once the remembered values pass the budget (here 50:
    twelve answers of two streets x two columns), and every answer is still the right one."""
    from citygrid.engine.analytics import queries

    w, analytics = world
    monkeypatch.setattr(queries, "KEPT_VALUES", 50)
    start = w.now[0] - timedelta(hours=1)
    for k in range(1, 25):
        bounds = {"start": start, "end": w.now[0] + timedelta(minutes=5 * k)}
        for _ in range(2):
            table = analytics.aggregate(DASHBOARD, dimensions=("street",), **bounds)
            assert table.columns["reported"].sum() == SIDE * SIDE and len(table.columns["street"]) == 2
            assert analytics._kept_values <= 50
            assert sum(entry[3] for entry in analytics._answers.values()) == analytics._kept_values
    assert len(analytics._answers) == 12


class _MovingPopulation(StaticPopulation):
    """Residents that move: ``generation`` grows with each move, as the house registry's does."""

    def __init__(self, residents):
        super().__init__(residents)
        self.moves = 0

    def generation(self) -> int:
        return self.moves


def test_an_answer_is_at_hand_only_while_it_holds_and_never_after_a_wait(world, tmp_path):
    """``at_hand`` (what an event loop asks) gives the remembered answer, the caller's copy, only
    while ``remembered`` would give it without counting or catching up: not before it is remembered,
    not to another jurisdiction, not while another thread holds the mirror (it does not wait for it:
    were it to, it would get the lock when the holder lets go and answer), not after a commit, a move
    of residents or the clock passing what it counted, until a thread has asked ``remembered`` again."""
    import threading

    w, _ = world
    population = _MovingPopulation({grid_code(0, 0): 100})
    analytics = Analytics.for_intake(w.intake, tmp_path, population=population)
    question, bounds = ("test", "streets"), window(w)

    def ask():
        return analytics.remembered(question, DASHBOARD, lambda: analytics.aggregate(
            DASHBOARD, dimensions=("street",), measures=("reported", "overdue_now"), **bounds))

    try:
        assert analytics.at_hand(question, DASHBOARD) is None  # nothing remembered yet
        first = ask()
        assert first.columns["reported"].sum() == SIDE * SIDE
        hand = analytics.at_hand(question, DASHBOARD)
        assert hand.columns["reported"].tolist() == first.columns["reported"].tolist()
        hand.columns["reported"][:] = -1  # the caller's own copy
        assert analytics.at_hand(question, DASHBOARD).columns["reported"].sum() == SIDE * SIDE
        assert analytics.at_hand(question, STREET1) is None  # a street's dashboard: its own answer

        held, release = threading.Event(), threading.Event()

        def hold():
            with analytics.mirror.lock:
                held.set()
                release.wait(5)  # a waiting at_hand would get the lock then, and answer

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert held.wait(30)
            assert analytics.at_hand(question, DASHBOARD) is None
        finally:
            release.set()
            holder.join()
        assert analytics.at_hand(question, DASHBOARD) is not None

        w.intake.submit([w.report(0, 0, category="0501", dx=0.001)], INTAKE)
        assert analytics.at_hand(question, DASHBOARD) is None  # committed, not caught up
        assert ask().columns["reported"].sum() == SIDE * SIDE + 1
        assert analytics.at_hand(question, DASHBOARD).columns["reported"].sum() == SIDE * SIDE + 1

        population.moves += 1
        assert analytics.at_hand(question, DASHBOARD) is None
        ask()
        assert analytics.at_hand(question, DASHBOARD) is not None

        w.now[0] += timedelta(days=40)  # past the deadlines of the open events counted
        assert analytics.at_hand(question, DASHBOARD) is None
        assert ask().columns["overdue_now"].sum() > 0
    finally:
        analytics.close()


def test_h3_cells_past_the_kept_budget_are_made_again_and_counted_right(world, tmp_path, monkeypatch):
    import collections
    import sqlite3

    import h3

    from citygrid.engine.analytics import mirror as mirror_module
    from citygrid.engine.database import database_path

    w, analytics = world
    monkeypatch.setattr(mirror_module, "H3_KEPT", 5)
    with sqlite3.connect(database_path(tmp_path)) as conn:
        positions = conn.execute("SELECT grid_code, wgs_lng, wgs_lat FROM events").fetchall()
    grids = sorted({g for g, *_ in positions})
    # 4 grids' events (kept), all 16 (more than the budget: made, not kept), 4 others (kept instead).
    for kept, chosen in ((4, grids[:4]), (4, grids), (4, grids[4:8])):
        expected = collections.Counter(h3.latlng_to_cell(lat, lng, 9) for g, lng, lat in positions if g in chosen)
        table = analytics.heatmap(ADMIN, h3_resolution=9, filters={"grid": chosen}, **window(w))
        assert dict(zip(*table.columns.values())) == expected
        kept_rows, kept_numbers = analytics.mirror._h3[9]
        assert len(kept_rows) == kept and (np.diff(kept_rows) > 0).all()


@given(st.lists(st.integers(0, 300), min_size=1, max_size=200) | st.lists(st.integers(0, 10**12), min_size=1, max_size=50),
       st.integers(1, 200))
def test_nth_greatest_count_is_what_sorting_says(counts, n):
    from citygrid.engine.analytics.queries import _nth_greatest

    n = min(n, len(counts))
    assert _nth_greatest(np.array(counts, dtype=np.int64), n) == sorted(counts, reverse=True)[n - 1]


def test_a_category_first_seen_after_a_query_gets_its_own_row(world):
    w, analytics = world
    by_category = lambda: analytics.aggregate(ADMIN, dimensions=("category",), **window(w)).columns  # noqa: E731
    assert by_category()["category"] == ["0101"]
    w.intake.submit([w.report(1, 1, category="0501"), w.report(2, 2, category="0501")], INTAKE)
    columns = by_category()
    assert dict(zip(columns["category"], columns["reported"].tolist())) == {"0101": SIDE * SIDE, "0501": 2}


def test_h3_cells_met_later_are_numbered_on_and_listed_in_id_order():
    from citygrid.engine.analytics.mirror import H3Cells

    met = H3Cells()
    assert met.number(np.array([30, 10, 30], np.uint64)).tolist() == [1, 0, 1]
    assert met.number(np.array([20, 1, 10, 40], np.uint64)).tolist() == [3, 2, 0, 4]  # 1: no position
    assert met.cells[met.order].tolist() == [10, 20, 30, 40]
    assert [met.labels[k] for k in met.order] == ["a", "14", "1e", "28"]


def test_a_heatmap_after_events_in_new_cells_counts_every_cell_in_id_order(world, tmp_path):
    import collections
    import sqlite3

    import h3

    from citygrid.engine.database import database_path

    w, analytics = world
    analytics.heatmap(ADMIN, h3_resolution=10, **window(w))
    w.intake.submit([w.report(1, 1, dx=0.0004), w.report(0, 0, dx=-0.0003), w.report(0, 0, dx=-0.0003)], INTAKE)
    table = analytics.heatmap(ADMIN, h3_resolution=10, **window(w))
    with sqlite3.connect(database_path(tmp_path)) as conn:
        positions = conn.execute("SELECT wgs_lng, wgs_lat FROM events").fetchall()
    expected = collections.Counter(h3.latlng_to_cell(lat, lng, 10) for lng, lat in positions)
    assert table.columns["h3_cell"] == sorted(expected, key=h3.str_to_int)
    assert table.columns["reported"].tolist() == [expected[c] for c in table.columns["h3_cell"]]
