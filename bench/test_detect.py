"""Every detector over every grid x category daily series of the demo year, and R ``surveillance``
on a sample of the same series in the same run.

    .venv/bin/pytest bench/test_detect.py --benchmark-only -s

``test_recall_per_detector`` scores each detector's alarms against the demo's labelled anomalies.

Series without a single count (about 58 %) share one computation (the engine computes an empty
series once). The demo district (3,823 grids, the taxonomy's categories, 200,000 events of 2025) is generated
once; its events are counted per grid, category and local day into (grids x 365) matrices, one
per category (all of them, empty series included: about 190,000 series, 70 million cells). One
round runs EARS C1, C2 and C3 (``min_sigma`` 0.5), the Poisson CUSUM and GLR (in-control GLM with a
weekly harmonic on the first 91 days; the GLR with its upper bound) and the Bayes predictive method
(b = 0, w = 6) over all of them; the CUSUM and GLR give sparse series (fewer than 10 training events
per coefficient) the pooled constant in-control mean, the engine's default. Farrington needs at least
three years and is benched apart on weekly series (below).

The R peer runs the same methods through ``bench/oracle/surveillance_fixtures.R`` on
``CITYGRID_BENCH_R_SERIES`` (default 40) series drawn among those with at least 20 events, one R
call per series and method as an analyst would; we compare seconds per series (ours: the whole
round divided by the number of series, each method with its share of the counts' check, which the
round does once for all methods with ``CheckedCounts``) and require identical alarms, the CUSUM and GLR fitting
their in-control GLM to every series as R does (``min_events_per_coefficient = 0``). Skipped without Rscript.

**Farrington flexible** at its shipped defaults (Noufaily et al. 2013: b = 5 years, w = 3, 10 seasonal
levels, 26 recent weeks left out, nbPlugin threshold) needs 5 years and 3 periods of history before
the first judged one. It runs on weekly series (freq 52, the method's usual use and what
``citygrid detect farrington`` runs on weekly dates; the scheduled detection run of the service runs
EARS only): 5 years and 3 weeks generated from the demo year, then the demo year itself (its 52 weeks,
labelled anomalies included) judged. History week t of a series of category c draws
Poisson(m * p_c(week of year) * G), m the series' mean weekly count of the demo year, p_c the
category's weekly profile of the demo year (yearly seasonality), G a Gamma(10, 1/10) over-dispersion,
all from a fixed seed. One fit a judged week (a quasi-Poisson GLM of about 240 weeks and 12
coefficients, refitted after down-weighting) is far dearer than the other methods, so our kernel is
timed on ``CITYGRID_BENCH_FARRINGTON_SERIES`` (default 400; ``all`` for every series) drawn among all
grid x category series (empty ones in their share, computed once), and R's ``farringtonFlexible`` on
``CITYGRID_BENCH_R_FARRINGTON_SERIES`` (default 20) drawn among those with at least 20 events, where
ours is timed again on the same series. Alarms must be identical (the shipped options are
those where R 1.20's dispersion after reweighting does not change the answer).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from citygrid.engine.alerts import detectors as D

HERE = Path(__file__).resolve().parent
SEED = 20261130
TRAIN = 91
R_SERIES = int(os.environ.get("CITYGRID_BENCH_R_SERIES", "40"))

#: name -> (method, options, R control) of one round
METHODS = {
    "ears C1": ("ears", D.EarsOptions(method="C1", min_sigma=0.5), {"method": "C1", "baseline": 7, "minSigma": 0.5}),
    "ears C2": ("ears", D.EarsOptions(method="C2", min_sigma=0.5), {"method": "C2", "baseline": 7, "minSigma": 0.5}),
    "ears C3": ("ears", D.EarsOptions(method="C3", min_sigma=0.5, c3_rule="surveillance"),
                {"method": "C3", "baseline": 7, "minSigma": 0.5}),
    "cusum": ("cusum", D.CusumOptions(in_control=D.InControl(train=TRAIN, period=7)),
              {"c": 5.0, "ret": "cases", "kappa": float(np.log(2)), "S": 1, "trend": False}),
    "glr": ("glr", D.GlrOptions(in_control=D.InControl(train=TRAIN, period=7)),
            {"c": 5.0, "ret": "cases", "S": 1, "trend": False}),
    "bayes": ("bayes", D.BayesOptions(b=0, w=6, alpha=0.05), {"b": 0, "w": 6, "actY": True, "alpha": 0.05}),
}


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    from citygrid.engine.demo import generate_demo

    root = tmp_path_factory.mktemp("bench-detect-demo")
    generate_demo(root, seed=SEED)
    return root


@pytest.fixture(scope="module")
def year(demo_root):
    """(categories, list of (grids x 365) float64 count matrices, one per category)."""
    import pyarrow.parquet as pq

    root = demo_root
    grids = pq.read_table(root / "grids.parquet", columns=["grid_code"]).column("grid_code").to_pylist()
    events = pq.read_table(root / "events.parquet", columns=["grid_code", "category_code", "occurred_at"])
    row = {code: i for i, code in enumerate(grids)}
    grid = np.array([row[c] for c in events.column("grid_code").to_pylist()])
    categories = sorted(set(events.column("category_code").to_pylist()))
    cat_of = {c: i for i, c in enumerate(categories)}
    cat = np.array([cat_of[c] for c in events.column("category_code").to_pylist()])
    ms = events.column("occurred_at").cast("int64").to_numpy()
    day = ((ms + 8 * 3600 * 1000) // 86_400_000 - 20089).astype(np.int64)  # local days since 2025-01-01
    assert day.min() == 0 and day.max() == 364
    cube = np.zeros((len(categories), len(grids), 365))
    np.add.at(cube, (cat, grid, day), 1)
    return categories, [np.ascontiguousarray(cube[k]) for k in range(len(categories))]


#: Seconds each method took over every series in this run (read by the R comparison).
_SECONDS: dict[str, float] = {}


def _round(matrices):
    alarms = {}
    started = time.perf_counter()
    checked = [D.CheckedCounts(m) for m in matrices]  # checked and gathered once for every method
    _SECONDS["check"] = time.perf_counter() - started
    for name, (method, options, _) in METHODS.items():
        started = time.perf_counter()
        alarms[name] = [D.detect(method, c, options, freq=365).alarm for c in checked]
        _SECONDS[name] = time.perf_counter() - started
    return alarms


#: Seconds of the first calls (Numba compiling, or loading its cache of an earlier run).
_WARM: dict[str, float] = {}


@pytest.fixture(scope="module")
def warm(year):
    _, matrices = year
    started = time.perf_counter()
    _round([matrices[0][:50]])  # compile every kernel first (or load the cache)
    _WARM["seconds"] = time.perf_counter() - started


def test_all_detectors_over_the_year(benchmark, year, warm):
    categories, matrices = year
    n_series = sum(m.shape[0] for m in matrices)
    cells = sum(m.size for m in matrices)
    started = time.process_time()
    alarms = benchmark.pedantic(_round, args=(matrices,), rounds=1, iterations=1)
    cpu = time.process_time() - started
    wall = benchmark.stats.stats.mean
    benchmark.extra_info.update(series=n_series, cells=cells, categories=len(categories), cpu_s=cpu,
                                first_calls_s=_WARM.get("seconds"))
    counts = {name: int(sum(a.sum() for a in per)) for name, per in alarms.items()}
    print(f"\nall detectors over {n_series:,} grid x category daily series ({cells / 1e6:.1f} M cells, "
          f"{len(categories)} categories): {wall:.2f} s wall, {cpu:.2f} s CPU on {os.cpu_count()} cores; "
          f"{wall / n_series * 1e6:.1f} us per series; alarms {counts}; seconds by method "
          + ", ".join(f"{k} {v:.2f}" for k, v in _SECONDS.items())
          + f"; first calls before (compile or cache load, not in the round) {_WARM.get('seconds', 0.0):.2f} s")
    assert all(v > 0 for v in counts.values())


def _r_answers(jobs: list[dict]) -> dict[int, dict]:
    """R ``surveillance``'s answers to the jobs (``bench/oracle/surveillance_fixtures.R``: one R call
    a job, timed inside R), by job id."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "jobs.json", Path(tmp) / "answers.json"
        src.write_text(json.dumps(jobs))
        subprocess.run(["Rscript", str(HERE / "oracle" / "surveillance_fixtures.R"), str(src), str(dst)],
                       check=True, capture_output=True)
        return {a["id"]: a for a in json.loads(dst.read_text())["answers"]}


def _as_r_fits(options):
    """The options with R glrpois's in-control fit (a GLM for every series, sparse or not)."""
    if isinstance(options, (D.CusumOptions, D.GlrOptions)):
        return replace(options, in_control=replace(options.in_control, min_events_per_coefficient=0))
    return options


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="R (Rscript) is not installed")
def test_against_r_surveillance(benchmark, year, warm):
    _, matrices = year
    everything = np.concatenate(matrices)
    rng = np.random.default_rng(SEED)
    active = np.flatnonzero(everything.sum(axis=1) >= 20)
    sample = everything[rng.choice(active, size=min(R_SERIES, len(active)), replace=False)]

    if not _SECONDS:
        _round(matrices)
    # our time per series: each method's time over every series of the year, with its share of the
    # counts' check (done once for all the methods)
    share = _SECONDS.get("check", 0.0) / len(METHODS)
    ours = {name: (_SECONDS[name] + share) / len(everything) for name in METHODS}

    jobs = []
    for name, (method, options, control) in METHODS.items():
        first = {"ears C1": 8, "ears C2": 10, "ears C3": 12, "bayes": 7}.get(name, TRAIN + 1)
        for s, y in enumerate(sample):
            jobs.append({"id": len(jobs), "name": name, "series": s, "method": method.split()[0], "y": y.astype(int).tolist(),
                         "freq": 7, "first": first, "control": control})
    answers = _r_answers(jobs)

    rows = []
    for name, (method, options, _) in METHODS.items():
        mine = D.detect(method, sample, _as_r_fits(options), freq=365)
        r_seconds, mismatched = [], 0
        for job in (j for j in jobs if j["name"] == name):
            answer = answers[job["id"]]
            assert "error" not in answer, answer
            r_seconds.append(answer["seconds"])
            theirs = np.array([bool(v) if v is not None else False for v in answer["alarm"]])
            mismatched += int((mine.alarm[job["series"], job["first"] - 1:] != theirs).sum())
        per_r = float(np.mean(r_seconds))
        rows.append((name, ours[name], per_r, per_r / ours[name], mismatched))
        assert mismatched == 0, f"{name}: {mismatched} alarms differ from R"
    print(f"\nR surveillance on {len(sample)} series (seconds per series; ours over all {len(everything):,}):")
    for name, t_ours, t_r, ratio, bad in rows:
        print(f"  {name:8s} ours {t_ours * 1e6:9.1f} us   R {t_r * 1e3:8.1f} ms   {ratio:9.0f}x   alarms differing {bad}")
    benchmark.extra_info.update({name: {"ours_s": a, "r_s": b, "ratio": c} for name, a, b, c, _ in rows})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


def test_recall_per_detector(benchmark, year, demo_root, warm):
    """Recall of the demo's 24 spikes and 16 clusters and false alerts per day, per detector (the
    shipped options above; an alarm on a grid x category x day covers an anomaly of that category
    with an event in that grid within its window, see ``citygrid.engine.alerts.scoring``)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    import pyarrow.parquet as pq

    from citygrid.engine.alerts import scoring as SC

    categories, matrices = year
    grids = pq.read_table(demo_root / "grids.parquet", columns=["grid_code"]).column("grid_code").to_pylist()
    labelled = SC.read_labelled(demo_root, dt.datetime(2025, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai")))
    units = np.tile(np.array(grids, dtype=object), len(categories))
    cats = np.repeat(np.array(categories, dtype=object), len(grids))
    rows = []
    for name, (method, options, _) in METHODS.items():
        results = [D.detect(method, m, options, freq=365) for m in matrices]
        alarm = np.concatenate([r.alarm for r in results])
        result = SC.score(SC.alerts_from_detection(units, cats, alarm), labelled, 365 - results[0].start)
        rows.append((name, results[0].start, result))
    print(f"\nrecall against the demo's {len(labelled.ids)} labelled anomalies (alerts per grid x category x day; "
          "false alerts per monitored day across the district):")
    for name, start, r in rows:
        print(f"  {name:8s} from day {start:3d}: spikes {r.recall['spike']:5.0%}  clusters {r.recall['cluster']:5.0%}  "
              f"alerts {r.n_alerts:6d}  false {r.false_alerts:6d} ({r.false_per_day:6.1f} a day)  "
              f"precision {r.precision:5.1%}")
    benchmark.extra_info.update({name: {"spike": r.recall["spike"], "cluster": r.recall["cluster"],
                                        "false_per_day": r.false_per_day} for name, _, r in rows})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


# ------------------------------------------------------------------------- Farrington flexible

FARRINGTON = D.FarringtonOptions()
WEEKS = 52
#: Weeks before the first judged one: b years and w weeks (the demo year is judged after them).
HISTORY = FARRINGTON.b * WEEKS + FARRINGTON.w
_F = os.environ.get("CITYGRID_BENCH_FARRINGTON_SERIES", "400")
F_SERIES = None if _F == "all" else int(_F)
R_F_SERIES = int(os.environ.get("CITYGRID_BENCH_R_FARRINGTON_SERIES", "20"))

#: Seconds of our Farrington over the timed series, and how many (read by the R comparison).
_F_SECONDS: dict[str, float] = {}


@pytest.fixture(scope="module")
def weekly_years(year):
    """(every series' demo-year counts (series x 365), a function giving rows' weekly series of
    HISTORY generated weeks followed by the demo year's 52 weeks)."""
    _, matrices = year
    daily = np.concatenate(matrices)
    demo_weeks = daily[:, :WEEKS * 7].reshape(len(daily), WEEKS, 7).sum(axis=2)
    category = np.repeat(np.arange(len(matrices)), [len(m) for m in matrices])
    totals = np.stack([m[:, :WEEKS * 7].reshape(len(m), WEEKS, 7).sum(axis=(0, 2)) for m in matrices])
    profile = totals / np.maximum(totals.mean(axis=1, keepdims=True), 1e-12)  # categories x 52
    mean = demo_weeks.mean(axis=1)
    week_of_year = (np.arange(HISTORY) - HISTORY) % WEEKS  # the demo year starts at week of year 0

    def series(rows: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng([SEED, 13])
        rate = mean[rows, None] * profile[category[rows]][:, week_of_year]
        history = rng.poisson(rate * rng.gamma(10.0, 0.1, size=rate.shape))
        return np.ascontiguousarray(np.concatenate([history, demo_weeks[rows]], axis=1), dtype=np.float64)

    return daily, series


@pytest.fixture(scope="module")
def farrington_warm():
    y = np.random.default_rng(SEED).poisson(3.0, size=(2, HISTORY + 4)).astype(np.float64)
    started = time.perf_counter()
    D.detect("farrington", y, FARRINGTON, freq=WEEKS)
    _WARM["farrington"] = time.perf_counter() - started


def test_farrington_over_weekly_years(benchmark, weekly_years, farrington_warm):
    daily, series = weekly_years
    n_all = len(daily)
    rows = np.arange(n_all) if F_SERIES is None else \
        np.sort(np.random.default_rng(SEED).choice(n_all, size=min(F_SERIES, n_all), replace=False))
    y = series(rows)
    started = time.process_time()
    result = benchmark.pedantic(D.detect, args=("farrington", y, FARRINGTON), kwargs={"freq": WEEKS},
                                rounds=1, iterations=1)
    cpu = time.process_time() - started
    wall = benchmark.stats.stats.mean
    _F_SECONDS.update(seconds=wall, series=len(rows))
    judged = y.shape[1] - result.start
    distinct = len(np.unique(result.rows)) if result.rows is not None else len(rows)
    per = wall / len(rows)
    benchmark.extra_info.update(series=len(rows), of_series=n_all, weeks=y.shape[1], judged_weeks=judged,
                                fitted_series=distinct, cpu_s=cpu, per_series_s=per,
                                first_calls_s=_WARM.get("farrington"))
    print(f"\nFarrington flexible (shipped defaults, freq 52) over {len(rows):,} of the {n_all:,} grid x category "
          f"series ({distinct:,} computed, the rest empty), {y.shape[1]} weeks each, the last {judged} judged: "
          f"{wall:.2f} s wall, {cpu:.2f} s CPU on {os.cpu_count()} cores; {per * 1e3:.2f} ms per series "
          f"({per / judged * 1e3:.3f} ms a series-week); all {n_all:,} series at this rate: {per * n_all:.0f} s; "
          f"alarms {result.n_alarms}; first call before (compile or cache load, not timed) "
          f"{_WARM.get('farrington', 0.0):.2f} s")
    assert result.start == HISTORY and result.alarm.shape == y.shape


def _r_farrington_control(o: D.FarringtonOptions) -> dict:
    """R ``farringtonFlexible``'s control for our options."""
    return {"b": o.b, "w": o.w, "reweight": o.reweight, "weightsThreshold": o.weights_threshold,
            "alpha": o.alpha, "trend": o.trend, "pThresholdTrend": o.p_trend,
            "limit54": [o.limit_cases, o.limit_periods], "powertrans": o.power, "noPeriods": o.periods,
            "pastWeeksNotIncluded": o.past_excluded,
            "thresholdMethod": {"nbplugin": "nbPlugin"}.get(o.threshold, o.threshold)}


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="R (Rscript) is not installed")
def test_farrington_against_r_surveillance(benchmark, weekly_years, farrington_warm):
    daily, series = weekly_years
    rng = np.random.default_rng([SEED, 14])
    active = np.flatnonzero(daily.sum(axis=1) >= 20)
    rows = np.sort(rng.choice(active, size=min(R_F_SERIES, len(active)), replace=False))
    sample = series(rows)
    started = time.perf_counter()
    mine = D.detect("farrington", sample, FARRINGTON, freq=WEEKS)
    ours_same = (time.perf_counter() - started) / len(rows)
    control = _r_farrington_control(FARRINGTON)
    jobs = [{"id": i, "method": "farrington", "y": y.astype(int).tolist(), "freq": WEEKS, "first": HISTORY + 1,
             "control": control} for i, y in enumerate(sample)]
    answers = _r_answers(jobs)
    r_seconds, mismatched, r_alarms = [], 0, 0
    for job in jobs:
        answer = answers[job["id"]]
        assert "error" not in answer, answer
        r_seconds.append(answer["seconds"])
        theirs = np.array([bool(v) if v is not None else False for v in answer["alarm"]])
        r_alarms += int(theirs.sum())
        mismatched += int((mine.alarm[job["id"], HISTORY:] != theirs).sum())
    per_r = float(np.mean(r_seconds))
    lines = [f"same {len(rows)} series, ours {ours_same * 1e3:8.2f} ms   R {per_r * 1e3:8.1f} ms   "
             f"{per_r / ours_same:7.1f}x"]
    if _F_SECONDS:
        ours_all = _F_SECONDS["seconds"] / _F_SECONDS["series"]
        lines.append(f"ours over {_F_SECONDS['series']:,} series of all  {ours_all * 1e3:8.2f} ms   "
                     f"R {per_r * 1e3:8.1f} ms   {per_r / ours_all:7.1f}x")
    print(f"\nR farringtonFlexible on {len(rows)} weekly series ({HISTORY + WEEKS} weeks, the last {WEEKS} judged; "
          f"seconds per series; alarms ours {int(mine.alarm.sum())} R {r_alarms}, differing {mismatched}):\n  "
          + "\n  ".join(lines))
    benchmark.extra_info.update(ours_same_s=ours_same, r_s=per_r, ratio_same=per_r / ours_same,
                                alarms_differing=mismatched, r_alarms=r_alarms)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert mismatched == 0, f"farrington: {mismatched} alarms differ from R"
