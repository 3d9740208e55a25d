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

Scoring (``scan_replay.score_replay`` with ``citygrid.engine.alerts.scoring``, the issue's rule): an alert is found when it covers
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
import os
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
    "ebp-999": R.Setting("ebp", max_days=4, reps=999, decide_p=0.005),  # the shipped scan's replications and p
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
    rows = R.score_replay(setting, by_day, labelled, THRESHOLDS)
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
