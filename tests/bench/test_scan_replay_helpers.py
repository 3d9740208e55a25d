"""The year replay's helpers (``bench/scan_replay.py``): EBP's baselines, the cluster-to-finding
mapping of the all-events and EBP scans, and the scoring (thresholds, judged days, deduplication
through the AlertStore). Small inputs, no replay of the year."""

from __future__ import annotations

import datetime as dt
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import scan_replay as R  # noqa: E402

from citygrid.engine.alerts import scoring as SC  # noqa: E402

# ------------------------------------------------------------------ EBP baselines


def test_ebp_baselines_by_hand():
    """Three grids over two weeks starting on a Monday: grid 0 has an event every Monday, grid 1
    three on the first Wednesday, grid 2 none. T = 14, N = 5, mu = 5 / 42 a grid and day."""
    history = np.zeros((3, 14), dtype=np.int64)
    history[0, [0, 7]] = 1
    history[1, 2] = 3
    weekday = np.arange(14) % 7
    window_weekday = np.array([2, 3, 0, 1])  # Wednesday, Thursday, Monday, Tuesday
    got = R.ebp_baselines(history, weekday, window_weekday)
    prior = R.EBP_PRIOR_DAYS * (5 / 42)
    per_day = [(2 + prior) / 42, (3 + prior) / 42, prior / 42]  # (n_g + a mu) / (T + a), T + a = 14 + 28
    mean = 5 / 14
    # Mondays: 2 events over 2 Mondays; Wednesdays: 3 over 2; Tuesdays and Thursdays none (the floor)
    factor = [(3 / 2) / mean, 0.05, (2 / 2) / mean, 0.05]
    expected = np.array([[p * f for f in factor] for p in per_day])
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_ebp_baselines_keep_the_district_total_and_stay_positive(rng):
    """Over a whole number of weeks the weekday factors average 1, so the baselines of a week sum to
    the history's weekly total; a grid without events has a positive baseline below the others'."""
    history = rng.poisson(rng.gamma(0.5, 0.2, (200, 1)), size=(200, 56))
    history[:10] = 0
    history[10, :] += 3
    weekday = (np.arange(56) + 3) % 7
    week = (np.arange(7) + 3) % 7
    got = R.ebp_baselines(history, weekday, week)
    assert got.shape == (200, 7)
    assert math.isclose(got.sum(), history.sum() / 8, rel_tol=1e-9)
    assert (got[:10] > 0).all() and (got[:10] == got[0]).all()
    assert (got[:10].max(axis=0) <= got[10:].min(axis=0)).all()
    assert (got[10] > got[11:]).all()


def test_ebp_baselines_of_an_empty_history_are_none():
    assert R.ebp_baselines(np.zeros((4, 28), dtype=np.int64), np.arange(28) % 7, np.arange(4)) is None


# ------------------------------------------------------------------ clusters to findings


@pytest.fixture(scope="module")
def year(demo_dir):
    return R.Year(demo_dir)


def _plant(year, rows, category: int, days, per_cell: int):
    """Events added to the year: ``per_cell`` at each of ``rows`` on each of ``days``."""
    cells = [(r, d) for r in rows for d in days for _ in range(per_cell)]
    year.rows = np.concatenate([year.rows, [r for r, _ in cells]])
    year.day = np.concatenate([year.day, [d for _, d in cells]])
    year.category = np.concatenate([year.category, np.full(len(cells), category, dtype=year.category.dtype)])


@pytest.fixture
def planted(year):
    """A burst in a grid and its nearest neighbour on days 99 and 100, in the year's commonest category."""
    saved = (year.rows, year.day, year.category)
    lng, lat = year.points
    g = 1000
    near = int(np.argsort(np.hypot(lng - lng[g], lat - lat[g]))[1])
    k = int(np.argmax(np.bincount(year.category, minlength=len(year.categories))))
    _plant(year, [g, near], k, [99, 100], 6)
    yield {"rows": {g, near}, "category": str(year.categories[k]), "day": 100}
    year.rows, year.day, year.category = saved


def _check_burst(finding, year, burst):
    codes = year.layer.codes
    assert finding.last_day == R.YEAR_START + dt.timedelta(days=burst["day"])
    assert finding.first_day == R.YEAR_START + dt.timedelta(days=burst["day"] - 1)
    assert {str(codes[r]) for r in burst["rows"]} <= set(finding.grids)
    assert finding.observed >= 24
    centre = list(codes).index(finding.unit_code)
    assert (finding.lng, finding.lat) == (float(year.points[0][centre]), float(year.points[1][centre]))
    assert finding.chain[0] == finding.unit_code and finding.chain[3] is not None  # the grid's own chain
    assert finding.p < 0.05 and finding.radius_m >= 0


def test_an_ebp_burst_becomes_a_finding_on_its_own_days(year, planted):
    findings = R._ebp_categories(year, R.Setting("ebp", reps=99, decide_p=0.05, max_days=4), planted["day"])
    mine = [f for f in findings if f.category_code == planted["category"]]
    assert mine, "the burst is found"
    assert all(f.method == "ebp" and f.level == "disc" for f in findings)
    _check_burst(mine[0], year, planted)


def test_an_all_events_burst_becomes_a_finding_on_its_own_days(year, planted):
    findings = R._stp_all(year, R.Setting("stp-all", reps=99, decide_p=0.05), planted["day"])
    assert findings and all(f.category_code == "all" and f.method == "stp" for f in findings)
    top = max(findings, key=lambda f: f.score)
    _check_burst(top, year, planted)


# ------------------------------------------------------------------ scoring


def _finding(category: str, grids, first: int, last: int, p: float) -> dict:
    return {"kind": "scan", "method": "stp", "category_code": category, "level": "disc", "unit_code": grids[0],
            "chain": [grids[0], "c", "s", "d"], "first_day": (R.YEAR_START + dt.timedelta(days=first)).isoformat(),
            "last_day": (R.YEAR_START + dt.timedelta(days=last)).isoformat(), "observed": 9.0, "expected": 1.0,
            "score": 5.0, "p": p, "grids": list(grids), "lng": 114.2, "lat": 22.7, "radius_m": 300.0}


LABELLED = SC.Labelled(ids=["A", "B", "C"], kinds=["spike", "cluster", "cluster"], categories=["01", "02", "01"],
                       grids=[frozenset({"g1"}), frozenset({"g2", "g3"}), frozenset({"g7"})],
                       first_day=np.array([10, 20, 300]), last_day=np.array([10, 22, 302]))


def _by_day(found: dict[int, list[dict]]) -> dict[int, list[dict]]:
    return {e: found.get(e, []) for e in range(5, 31)}  # 26 judged days; C lies outside them


def test_scoring_reads_each_threshold_and_deduplicates_as_the_store_does():
    by_day = _by_day({
        10: [_finding("01", ["g1"], 10, 10, 0.001)],                                   # finds A at p < 0.002
        11: [_finding("01", ["g9"], 10, 11, 0.004)],                                   # false, from p < 0.005
        12: [_finding("01", ["g9", "g8"], 11, 12, 0.004)],                             # the same alert, grown
        21: [_finding("02", ["g3", "g4"], 19, 21, 0.03), _finding("01", ["g3"], 21, 21, 0.001)],  # B; wrong category
        25: [_finding("01", ["g5"], 25, 25, 0.005)],                                   # false, p not below 0.005
    })
    rows = {r["threshold"]: r for r in R.score_replay(R.Setting("stp", reps=999, decide_p=0.05), by_day, LABELLED,
                                                      (0.001, 0.002, 0.005, 0.05, 0.1))}
    assert sorted(rows) == [0.002, 0.005, 0.05]  # 0.001 is 1 / (999 + 1); 0.1 above the replay's decide_p
    assert rows[0.002]["found"] == {"A": True, "B": False}
    assert (rows[0.002]["clusters"], rows[0.002]["alerts"], rows[0.002]["false_alerts"]) == (2, 2, 1)
    assert (rows[0.005]["clusters"], rows[0.005]["false_clusters"]) == (4, 3)
    assert (rows[0.005]["alerts"], rows[0.005]["false_alerts"]) == (3, 2)  # g9's two days are one alert
    assert rows[0.005]["false_per_day"] == 2 / 26 and rows[0.005]["false_clusters_per_day"] == 3 / 26
    assert rows[0.05]["found"] == {"A": True, "B": True}
    assert (rows[0.05]["spike"], rows[0.05]["cluster"]) == (1.0, 1.0)
    assert (rows[0.05]["clusters"], rows[0.05]["alerts"], rows[0.05]["false_alerts"]) == (6, 5, 3)
    assert rows[0.05]["precision"] == 2 / 5


def test_the_all_events_scan_covers_any_category():
    by_day = _by_day({10: [_finding("all", ["g1"], 9, 10, 0.001)], 22: [_finding("all", ["g2"], 22, 22, 0.001)]})
    setting = R.Setting("stp-all", reps=999, decide_p=0.005)
    row = R.score_replay(setting, by_day, LABELLED, (0.002, 0.005))[-1]
    assert row["found"] == {"A": True, "B": True} and row["false_alerts"] == 0
    # scored as a per-category scan, "all" covers nothing
    plain = R.score_replay(R.Setting("stp", reps=999, decide_p=0.005), by_day, LABELLED, (0.005,))[0]
    assert plain["found"] == {"A": False, "B": False} and plain["false_alerts"] == 2


def test_alerts_count_days_from_the_first_of_january():
    alerts = R.alerts_of([_finding("01", ["g1", "g2"], 40, 42, 0.001)])
    assert alerts.categories == ["01"] and alerts.grids == [frozenset({"g1", "g2"})]
    assert alerts.first_day.tolist() == [40] and alerts.last_day.tolist() == [42]
