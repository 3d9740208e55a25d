"""Event series per grid x category (daily, and hourly for the fast-moving categories) and their
rollups, against pandas groupby counts of the demo's events in local (Asia/Shanghai) time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from citygrid.engine.alerts import series as S
from citygrid.engine.errors import InvalidInput, NotFound
from citygrid.engine.cases.taxonomy import load_taxonomy

TZ = ZoneInfo("Asia/Shanghai")
YEAR = (dt.datetime(2025, 1, 1, tzinfo=TZ), dt.datetime(2026, 1, 1, tzinfo=TZ))


@pytest.fixture(scope="module")
def demo(demo_dir):
    grids = pd.read_parquet(demo_dir / "grids.parquet",
                            columns=["grid_code", "community_code", "street_code", "district_code"])
    events = pd.read_parquet(demo_dir / "events.parquet", columns=["grid_code", "category_code", "occurred_at"])
    events["local"] = events["occurred_at"].dt.tz_convert("Asia/Shanghai")
    return grids, events.merge(grids, on="grid_code", how="left")


def _expected(events, unit_col, cat_col, period):
    return events.groupby([unit_col, cat_col, period]).size()


def _observed(series: S.EventSeries, freq: str) -> pd.Series:
    rows, cols = np.nonzero(series.counts)
    start = pd.Timestamp(series.start_ms, unit="ms", tz="UTC").tz_convert("Asia/Shanghai")
    stamps = start + pd.to_timedelta(cols * series.step_ms, unit="ms")
    index = pd.MultiIndex.from_arrays([series.units[rows], series.categories[rows], stamps])
    return pd.Series(series.counts[rows, cols].astype(np.int64), index=index).sort_index()


def _ms(events):
    return events.occurred_at.dt.as_unit("ms").astype("int64")


def _daily(grids, events):
    return S.count_events(events.grid_code, events.category_code, _ms(events),
                          start=YEAR[0], end=YEAR[1], grids=grids.grid_code)


def test_daily_grid_category_counts_equal_a_groupby(demo):
    grids, events = demo
    series = _daily(grids, events)
    assert series.counts.shape == (events.category_code.nunique() * len(grids), 365)
    want = _expected(events, "grid_code", "category_code", events.local.dt.floor("D")).sort_index()
    got = _observed(series, "D")
    assert got.index.equals(want.index)
    assert (got.to_numpy() == want.to_numpy()).all()
    assert series.counts.sum() == len(events)  # every event of the year is counted once


def test_only_the_seen_pairs_are_the_groupby_and_no_empty_row(demo):
    grids, events = demo
    series = S.count_events(events.grid_code, events.category_code, _ms(events), start=YEAR[0], end=YEAR[1],
                            grids=grids.grid_code, only_seen=True)
    pairs = events.groupby(["category_code", "grid_code"]).size()
    assert len(series.units) == len(pairs) and series.counts.any(axis=1).all()
    want = _expected(events, "grid_code", "category_code", events.local.dt.floor("D")).sort_index()
    got = _observed(series, "D")
    assert got.index.equals(want.index) and (got.to_numpy() == want.to_numpy()).all()


def test_hourly_series_of_the_fast_moving_categories(demo):
    grids, events = demo
    fast = S.fast_moving(load_taxonomy())
    assert "0404" in fast and "0701" not in fast  # 火情 within the hour; 邻里纠纷 in days
    start, end = dt.datetime(2025, 7, 1, tzinfo=TZ), dt.datetime(2025, 7, 15, tzinfo=TZ)
    series = S.count_events(events.grid_code, events.category_code, _ms(events),
                            start=start, end=end, step="hour", grids=grids.grid_code, categories=fast)
    assert series.counts.shape == (len(fast) * len(grids), 14 * 24)
    inside = events[events.category_code.isin(fast) & (events.local >= start) & (events.local < end)]
    want = _expected(inside, "grid_code", "category_code", inside.local.dt.floor("h")).sort_index()
    got = _observed(series, "h")
    assert len(want) > 100
    assert got.index.equals(want.index)
    assert (got.to_numpy() == want.to_numpy()).all()


@pytest.mark.parametrize("level", ["community_code", "street_code", "district_code"])
def test_rollups_to_community_street_and_district(demo, level):
    grids, events = demo
    series = S.roll_up(_daily(grids, events), level.split("_")[0],
                       unit_parent=dict(zip(grids.grid_code, grids[level])))
    assert series.counts.shape[0] == grids[level].nunique() * events.category_code.nunique()
    want = _expected(events, level, "category_code", events.local.dt.floor("D")).sort_index()
    got = _observed(series, "D")
    assert got.index.equals(want.index)
    assert (got.to_numpy() == want.to_numpy()).all()


def test_rollup_to_category_class_and_community(demo):
    grids, events = demo
    classes = S.category_classes(load_taxonomy())
    series = S.roll_up(_daily(grids, events), "community", unit_parent=dict(zip(grids.grid_code, grids.community_code)),
                       category_parent=classes)
    events = events.assign(class_code=events.category_code.map(classes))
    want = _expected(events, "community_code", "class_code", events.local.dt.floor("D")).sort_index()
    got = _observed(series, "D")
    assert got.index.equals(want.index)
    assert (got.to_numpy() == want.to_numpy()).all()
    # a block per class, every community in it
    assert series.matrix("04").shape == (grids.community_code.nunique(), 365)
    assert series.row(grids.community_code.iloc[0], "01") == 0


def test_events_outside_the_span_or_the_categories_are_left_out():
    t0 = dt.datetime(2025, 3, 1, tzinfo=TZ)
    ms = int(t0.timestamp() * 1000)
    hour = 3_600_000
    series = S.count_events(["g1", "g2", "g1", "g1", "g1"], ["a", "a", "b", "a", "a"],
                            [ms - 1, ms, ms + hour, ms + 24 * hour - 1, ms + 24 * hour],
                            start=t0, end=t0 + dt.timedelta(days=1), step="hour", categories=["a"])
    assert series.units.tolist() == ["g1", "g2"] and series.categories.tolist() == ["a", "a"]
    assert series.counts.shape == (2, 24)
    assert series.counts[0].tolist() == [0] * 23 + [1] and series.counts[1].tolist() == [1] + [0] * 23


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(step="week"), "step must be one of day, hour"),
    (dict(end=dt.datetime(2025, 1, 1, 12, tzinfo=TZ)), "whole number of days"),
    (dict(start=dt.datetime(2025, 1, 1)), "timezone-aware"),
    (dict(grids=["g2"]), "grid 'g1', which is not in the grid list"),
    (dict(grids=["g1", "g1"]), "names a grid twice"),
])
def test_bad_series_requests_are_named(kwargs, message):
    args = dict(start=YEAR[0], end=dt.datetime(2025, 1, 3, tzinfo=TZ))
    args.update(kwargs)
    with pytest.raises(InvalidInput, match=message):
        S.count_events(["g1"], ["a"], [int(YEAR[0].timestamp() * 1000)], **args)


def test_a_rollup_needs_every_parent():
    series = S.count_events(["g1", "g2"], ["a", "a"], [0, 0], start=dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc),
                            end=dt.datetime(1970, 1, 2, tzinfo=dt.timezone.utc))
    with pytest.raises(InvalidInput, match="does not name unit 'g2'"):
        S.roll_up(series, "community", unit_parent={"g1": "c1"})
    with pytest.raises(NotFound, match="category 'b'"):
        series.matrix("b")
