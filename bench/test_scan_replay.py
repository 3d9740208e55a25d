"""The space-time scans replayed day by day over the demo year, scored against its labelled anomalies.

    .venv/bin/pytest bench/test_scan_replay.py --benchmark-only -s
    CITYGRID_REPLAY_SETTINGS=stp ...          (only the shipped setting; names below)
    CITYGRID_REPLAY_DAYS=7-364 ...            (the judged days, from 1 January = 0)
    CITYGRID_REPLAY_WORKERS=2 ...             (processes over days, one Numba thread each)

Each judged day (7 .. 364: the anomalies start on day 7 or later) is scanned as a centre would scan
it that morning, with the study ending that day (``bench/scan_replay.py``): the shipped scan of a
scheduled run (every category on its own through ``discs.scan_findings``), all events together,
and the expectation-based Poisson scan per category against per-grid baselines of the 8 weeks
before. Days are cached under ``~/.cache/citygrid-scan-replay`` (a run resumes; a full replay of
one setting costs 30-60 CPU minutes at the shipped 999 replications).

Scoring (``citygrid.engine.alerts.scoring``, the issue's rule): an alert is found when it covers
one of the anomaly's grids (the grids its injected events fell in) within the anomaly's window,
for the anomaly's category (the all-events scan: any category). Two counts of false alerts:

- *clusters*: every day's reported clusters with ``p`` below the threshold, each on its own; a
  cluster that covers no labelled anomaly is false;
- *alerts*: the same clusters deduplicated as the service deduplicates them (the real
  ``AlertStore``, fed day by day: a cluster of the same category sharing a grid with an open
  alert whose window it touches updates that alert), the figure comparable with the detectors'.

Every setting is replayed once with ``decide_p`` = the sweep's largest threshold (0.05): a
cluster's decision at a smaller threshold is the same as a run with that threshold would make, so
the thresholds are read off one replay. The sweep over radius and longest window uses 199
replications (p then comes in steps of 0.005, so its smallest threshold is 0.01), the shipped
setting the shipped 999 (and 199, the sweep's peer). The picture is ``.benchmarks/scan/replay.png``.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
import time
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import scan_replay as R
from pictures import draw_scan_replay, drawn_after

CST = ZoneInfo("Asia/Shanghai")
THRESHOLDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
SETTINGS = {
    "stp": R.Setting("stp"),                                     # the shipped scan (999 replications, p < 0.005)
    "stp-all": R.Setting("stp-all"),
    "ebp": R.Setting("ebp", max_days=4, reps=99, decide_p=0.05),
    "stp-199": R.Setting("stp", reps=199, decide_p=0.05),        # the sweep's peer: shipped, 199 replications
    "stp-r0.5": R.Setting("stp", radius_km=0.5, reps=199, decide_p=0.05),
    "stp-r2": R.Setting("stp", radius_km=2.0, reps=199, decide_p=0.05),
    "stp-d3": R.Setting("stp", max_days=3, reps=199, decide_p=0.05),
    "stp-d14": R.Setting("stp", max_days=14, reps=199, decide_p=0.05),
}
_RESULTS: dict = {}
picture = drawn_after(draw_scan_replay, _RESULTS)


def _days() -> list[int]:
    lo, hi = os.environ.get("CITYGRID_REPLAY_DAYS", f"{R.FIRST_JUDGED}-364").split("-")
    return list(range(int(lo), int(hi) + 1))


def _chosen() -> list[str]:
    given = os.environ.get("CITYGRID_REPLAY_SETTINGS")
    return [s.strip() for s in given.split(",")] if given else list(SETTINGS)


@pytest.fixture(scope="module")
def labelled():
    from citygrid.engine.alerts import scoring as SC

    return SC.read_labelled(R.demo_root(), dt.datetime(2025, 1, 1, tzinfo=CST))


def _alerts(findings: list[dict]):
    from citygrid.engine.alerts import scoring as SC

    def day(text):
        return (dt.date.fromisoformat(text) - R.YEAR_START).days

    return SC.Alerts(categories=[f["category_code"] for f in findings], grids=[frozenset(f["grids"]) for f in findings],
                     first_day=np.array([day(f["first_day"]) for f in findings], dtype=np.int64),
                     last_day=np.array([day(f["last_day"]) for f in findings], dtype=np.int64))


def deduplicated(by_day: dict[int, list[dict]]) -> list[dict]:
    """The findings of each day, in day order, through the service's AlertStore (open alerts updated
    by what they touch), as the alerts it holds at the end."""
    from citygrid.engine.access.principals import Principal, Role
    from citygrid.engine.alerts import store as S

    admin = Principal("replay", Role.ADMIN)
    with tempfile.TemporaryDirectory() as tmp:
        store = S.AlertStore(tmp)
        try:
            for e in sorted(by_day):
                findings = [S.Finding(**{**f, "chain": tuple(f["chain"]), "grids": tuple(f["grids"]),
                                         "first_day": dt.date.fromisoformat(f["first_day"]),
                                         "last_day": dt.date.fromisoformat(f["last_day"])}) for f in by_day[e]]
                today = R.YEAR_START + dt.timedelta(days=e)
                at = dt.datetime.combine(today, dt.time(8), CST)
                store.record(findings, run={"started_at": at, "trigger": "replay", "first_day": today, "last_day": today,
                                            "series": 0, "events": 0, "seconds": 0.0}, at=at, principal=admin)
            alerts, before = [], None
            while True:
                page = store.list(admin, before=before, limit=S.MAX_PAGE)
                alerts += page
                if len(page) < S.MAX_PAGE:
                    break
                before = page[-1].id
        finally:
            store.close()
    return [{"category_code": a.category_code, "grids": list(a.grids), "first_day": a.first_day.isoformat(),
             "last_day": a.last_day.isoformat()} for a in alerts]


def score_setting(name: str, by_day: dict[int, list[dict]], labelled) -> list[dict]:
    """Recall and false alerts at each threshold the setting's replications can decide."""
    from citygrid.engine.alerts import scoring as SC

    setting = SETTINGS[name]
    lo, hi = min(by_day), max(by_day)
    # the anomalies whose whole window lies in the judged days (all 40 when the year is judged)
    judged = [i for i in range(len(labelled.ids)) if lo <= labelled.first_day[i] and labelled.last_day[i] <= hi]
    labelled = SC.Labelled([labelled.ids[i] for i in judged], [labelled.kinds[i] for i in judged],
                           [labelled.categories[i] for i in judged], [labelled.grids[i] for i in judged],
                           labelled.first_day[judged], labelled.last_day[judged])
    if setting.method == "stp-all":  # any category: the anomalies' categories are not the scan's
        labelled = SC.Labelled(labelled.ids, labelled.kinds, ["all"] * len(labelled.ids), labelled.grids,
                               labelled.first_day, labelled.last_day)
    n_days = len(by_day)
    rows = []
    for threshold in THRESHOLDS:
        if threshold > setting.decide_p or threshold <= 1 / (setting.reps + 1):
            continue  # not decided by this replay, or below the smallest p of its replications
        kept = {e: [f for f in fs if f["p"] < threshold] for e, fs in by_day.items()}
        clusters = [f for e in sorted(kept) for f in kept[e]]
        raw = SC.score(_alerts(clusters), labelled, n_days)
        merged = SC.score(_alerts(deduplicated(kept)), labelled, n_days)
        rows.append({"threshold": threshold, "spike": merged.recall.get("spike", math.nan),
                     "cluster": merged.recall.get("cluster", math.nan),
                     "clusters": raw.n_alerts, "false_clusters": raw.false_alerts,
                     "false_clusters_per_day": raw.false_per_day, "alerts": merged.n_alerts,
                     "false_alerts": merged.false_alerts, "false_per_day": merged.false_per_day,
                     "precision": merged.precision, "found": merged.found,
                     "raw_recall": raw.recall})
    return rows


@pytest.mark.parametrize("name", list(SETTINGS))
def test_scan_replay(benchmark, name, labelled):
    if name not in _chosen():
        pytest.skip(f"{name} not in CITYGRID_REPLAY_SETTINGS")
    setting = SETTINGS[name]
    days = _days()
    started = time.perf_counter()
    by_day = benchmark.pedantic(R.replay, args=(setting, days),
                                kwargs={"workers": int(os.environ.get("CITYGRID_REPLAY_WORKERS", "2"))},
                                rounds=1, iterations=1)
    wall = time.perf_counter() - started
    cpu = np.array([R.day_cpu(setting, e) for e in days])
    rows = score_setting(name, by_day, labelled)
    _RESULTS[name] = {"setting": setting, "rows": rows, "cpu_mean_s": float(cpu.mean()), "cpu_total_s": float(cpu.sum())}
    print(f"\n{name} ({setting.key}): days {days[0]}..{days[-1]} judged ({len(rows[0]['found'])} of "
          f"{len(labelled.ids)} labelled anomalies lie in them), {cpu.sum():,.0f} s CPU of scans "
          f"({cpu.mean():.2f} s a day, one thread; cached days cost nothing now: this run {wall:,.0f} s wall)")
    print("   p <   spikes  clusters  alerts  false/day  clusters/day  false clusters/day  precision")
    for r in rows:
        print(f"  {r['threshold']:<6g} {r['spike']:>7.0%} {r['cluster']:>9.0%} {r['alerts']:>7} {r['false_per_day']:>10.2f} "
              f"{r['clusters'] / len(days):>13.2f} {r['false_clusters_per_day']:>19.2f} {r['precision']:>10.1%}")
    benchmark.extra_info.update(days=len(days), cpu_s=float(cpu.sum()),
                                rows=[{k: v for k, v in r.items() if k not in ("found", "raw_recall")} for r in rows])
    assert rows, "no threshold scored"
