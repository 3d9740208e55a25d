"""Scoring alerts against labelled anomalies: by hand, and on the demo's own anomalies."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from citygrid.engine.alerts import scoring as SC
from citygrid.engine.alerts import series as S
from citygrid.engine.errors import InvalidInput

TZ = ZoneInfo("Asia/Shanghai")
START = dt.datetime(2025, 1, 1, tzinfo=TZ)


def test_alerts_cover_an_anomaly_by_category_grid_and_overlapping_window():
    labelled = SC.Labelled(ids=["A1", "A2", "A3"], kinds=["spike", "cluster", "cluster"], categories=["a", "b", "b"],
                           grids=[frozenset({"g1"}), frozenset({"g2", "g3"}), frozenset({"g9"})],
                           first_day=np.array([3, 10, 40]), last_day=np.array([4, 12, 41]))
    alerts = SC.Alerts(categories=["a", "a", "b", "a", "b"],
                       grids=[frozenset({"g1"}), frozenset({"g1"}), frozenset({"g3", "g7"}), frozenset({"g3"}),
                              frozenset({"g9"})],
                       first_day=np.array([4, 6, 8, 11, 42]), last_day=np.array([4, 6, 10, 11, 43]))
    result = SC.score(alerts, labelled, n_days=20)
    assert result.found == {"A1": True, "A2": True, "A3": False}
    assert result.recall == {"cluster": 0.5, "spike": 1.0}
    # day 6 is after A1's window; g3 on day 11 has the wrong category; days 42-43 follow A3's
    assert result.false_alerts == 3 and result.n_alerts == 5
    assert result.false_per_day == 3 / 20
    assert result.precision == pytest.approx(2 / 5)


def test_a_class_alert_covers_the_anomalies_of_its_categories():
    labelled = SC.Labelled(ids=["A1", "A2"], kinds=["spike", "cluster"], categories=["0101", "0201"],
                           grids=[frozenset({"g1"}), frozenset({"g2"})], first_day=np.array([3, 10]),
                           last_day=np.array([4, 12]))
    alerts = SC.Alerts(categories=["01", "01"], grids=[frozenset({"g1"}), frozenset({"g2"})],
                       first_day=np.array([4, 11]), last_day=np.array([4, 11]))
    result = SC.score(alerts, labelled, n_days=20, classes={"0101": "01", "0201": "02"})
    assert result.found == {"A1": True, "A2": False} and result.false_alerts == 1
    assert SC.score(alerts, labelled, n_days=20).false_alerts == 2  # without the classes, no class alert covers


def test_detector_alarms_become_one_grid_one_day_alerts():
    alarm = np.zeros((3, 5), dtype=bool)
    alarm[1, 2] = alarm[2, 4] = True
    alerts = SC.alerts_from_detection(["g1", "g2", "g1"], ["a", "a", "b"], alarm, first_day=10)
    assert alerts.categories == ["a", "b"]
    assert alerts.grids == [frozenset({"g2"}), frozenset({"g1"})]
    assert alerts.first_day.tolist() == [12, 14] and alerts.last_day.tolist() == [12, 14]
    with pytest.raises(InvalidInput, match="one row per series"):
        SC.alerts_from_detection(["g1"], ["a"], alarm)


@pytest.fixture(scope="module")
def demo(demo_dir):
    events = pd.read_parquet(demo_dir / "events.parquet", columns=["grid_code", "category_code", "occurred_at",
                                                                    "anomaly_id"])
    anomalies = pd.read_parquet(demo_dir / "anomalies.parquet")
    return events, anomalies, SC.read_labelled(demo_dir, START)


def test_the_demo_anomalies_are_read_with_their_grids_and_days(demo):
    events, anomalies, labelled = demo
    assert labelled.ids == anomalies.anomaly_id.tolist()
    injected = events.dropna(subset=["anomaly_id"]).groupby("anomaly_id").grid_code.agg(frozenset)
    assert labelled.grids == [injected[a] for a in labelled.ids]
    spikes = anomalies.kind == "spike"
    assert all(g == frozenset({c}) for g, c in zip(np.array(labelled.grids, dtype=object)[spikes],
                                                  anomalies.grid_code[spikes]))
    local_start = anomalies.start_at.dt.tz_convert("Asia/Shanghai").dt.date
    assert labelled.first_day.tolist() == [(d - START.date()).days for d in local_start]
    assert (labelled.last_day >= labelled.first_day).all()


def test_alarms_where_the_anomalies_are_find_them_all_and_nothing_false(demo):
    events, _, labelled = demo
    injected = events.dropna(subset=["anomaly_id"])
    ms = injected.occurred_at.dt.as_unit("ms").astype("int64")
    counts = S.count_events(injected.grid_code, injected.category_code, ms, start=START,
                            end=dt.datetime(2026, 1, 1, tzinfo=TZ))
    perfect = SC.score(SC.alerts_from_detection(counts.units, counts.categories, counts.counts > 0), labelled, 365)
    assert perfect.recall == {"cluster": 1.0, "spike": 1.0} and perfect.false_alerts == 0
    late = SC.score(SC.alerts_from_detection(counts.units, counts.categories, np.roll(counts.counts > 0, 8, axis=1)),
                    labelled, 365)
    assert late.recall == {"cluster": 0.0, "spike": 0.0} and late.false_alerts == late.n_alerts > 0
