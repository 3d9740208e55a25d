"""``citygrid scan stp|ebp``: CSV in, every named cluster field out, the engine's answers, errors."""

from __future__ import annotations

import csv
import datetime as dt
import json

import numpy as np
import pytest

from citygrid.cli.main import main
from csv_files import write_csv
from citygrid.engine.alerts import scan as S

FIELDS = {"rank", "center", "locations", "radius_m", "start", "end", "duration", "observed", "expected", "ratio",
          "p", "recurrence_days"}


@pytest.fixture
def world(tmp_path, rng):
    n = 40
    lng = 114.0 + rng.uniform(0, 0.03, n)
    lat = 22.6 + rng.uniform(0, 0.03, n)
    ids = [f"loc-{i:02d}" for i in range(n)]
    counts = rng.poisson(0.4, size=(n, 30))
    counts[[5], -2:] += 6
    start = dt.date(2025, 3, 1)
    locs = write_csv(tmp_path / "locs.csv", ["location_id", "lat", "lng"], zip(ids, lat, lng))
    cases = [(ids[i], (start + dt.timedelta(days=t)).isoformat(), int(counts[i, t]))
             for i in range(n) for t in range(30) if counts[i, t]]
    cases_csv = write_csv(tmp_path / "cases.csv", ["location_id", "date", "count"], cases)
    return dict(ids=ids, lng=lng, lat=lat, counts=counts, start=start, locs=locs, cases=cases_csv, tmp=tmp_path)


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_stp_json_is_the_engine_answer(capsys, world):
    code, out, err = _run(capsys, "scan", "stp", "--cases", world["cases"], "--locations", world["locs"],
                          "--study-start", "2025-03-01", "--study-end", "2025-03-30", "--max-radius-km", "1",
                          "--max-share", "0.5", "--max-days", "7", "--min-cases", "2", "--reps", "99", "--seed", "4",
                          "--json")
    assert code == 0, err
    clusters = json.loads(out)
    assert clusters and set(clusters[0]) == FIELDS | {"llr"}
    direct = S.space_time_permutation(world["counts"], world["lng"], world["lat"],
                                      S.StpOptions(max_radius_km=1.0, reps=99, seed=4))
    assert len(clusters) == len(direct.clusters)
    for got, want in zip(clusters, direct.clusters):
        assert got["center"] == world["ids"][want.center]
        assert got["locations"] == [world["ids"][i] for i in want.locations]
        assert got["llr"] == want.llr and got["p"] == want.p
        assert got["end"] == "2025-03-30"
        assert got["start"] == (world["start"] + dt.timedelta(days=want.start)).isoformat()
        assert got["recurrence_days"] == pytest.approx(1 / want.p)
    assert "loc-05" in clusters[0]["locations"]


def test_stp_one_row_per_case_without_a_count_column(capsys, world):
    rows = [(world["ids"][i], (world["start"] + dt.timedelta(days=t)).isoformat())
            for i in range(len(world["ids"])) for t in range(30) for _ in range(int(world["counts"][i, t]))]
    cases = write_csv(world["tmp"] / "each.csv", ["location_id", "date"], rows)
    args = ["scan", "stp", "--locations", world["locs"], "--study-start", "2025-03-01", "--study-end", "2025-03-30",
            "--reps", "19", "--json"]
    _, one_per_row, _ = _run(capsys, *args, "--cases", cases)
    _, counted, _ = _run(capsys, *args, "--cases", world["cases"])
    assert json.loads(one_per_row) == json.loads(counted)


def test_ebp_json_and_period_labels(capsys, world, rng):
    counts_rows, base_rows = [], []
    for i, loc in enumerate(world["ids"]):
        for t in range(30):
            if world["counts"][i, t]:
                counts_rows.append((loc, t + 1, int(world["counts"][i, t])))
            base_rows.append((loc, t + 1, 0.4))
    counts = write_csv(world["tmp"] / "counts.csv", ["location_id", "period", "count"], counts_rows)
    baselines = write_csv(world["tmp"] / "base.csv", ["location_id", "period", "baseline"], base_rows)
    code, out, err = _run(capsys, "scan", "ebp", "--counts", counts, "--baselines", baselines, "--locations",
                          world["locs"], "--knn", "6", "--max-duration", "3", "--top", "3", "--reps", "49",
                          "--seed", "2", "--json")
    assert code == 0, err
    clusters = json.loads(out)
    assert 1 <= len(clusters) <= 3 and set(clusters[0]) == FIELDS | {"score"}
    assert clusters[0]["end"] == 30 and "loc-05" in clusters[0]["locations"]
    direct = S.expectation_based_poisson(world["counts"], np.full(world["counts"].shape, 0.4), world["lng"],
                                         world["lat"], S.EbpOptions(knn=6, max_duration=3, top=3, reps=49, seed=2))
    assert [c["score"] for c in clusters] == [c.llr for c in direct.clusters]
    # a missing baseline in the scanned periods is named
    base_rows = [r for r in base_rows if not (r[0] == "loc-07" and r[1] == 29)]
    baselines = write_csv(world["tmp"] / "base2.csv", ["location_id", "period", "baseline"], base_rows)
    code, out, err = _run(capsys, "scan", "ebp", "--counts", counts, "--baselines", baselines, "--locations",
                          world["locs"], "--max-duration", "3")
    assert code == 2 and "no baseline for location 'loc-07', period 29" in err


@pytest.mark.parametrize(("row", "message"), [
    (("nowhere", "2025-03-02"), "line 2, column location_id: 'nowhere' is not in the locations file"),
    (("loc-01", "2025-04-02"), "line 2, column date: 2025-04-02 is outside the study period"),
    (("loc-01", "March 2"), "line 2, column date: 'March 2' is not a date"),
])
def test_bad_case_rows_are_named(capsys, world, row, message):
    cases = write_csv(world["tmp"] / "bad.csv", ["location_id", "date"], [row])
    code, out, err = _run(capsys, "scan", "stp", "--cases", cases, "--locations", world["locs"],
                          "--study-start", "2025-03-01", "--study-end", "2025-03-30")
    assert code == 2 and message in err, err


def test_bad_locations_are_named(capsys, world):
    locs = write_csv(world["tmp"] / "locs-bad.csv", ["location_id", "lat", "lng"], [("a", 22.6, 114.0), ("b", 95, 114.0)])
    code, out, err = _run(capsys, "scan", "stp", "--cases", world["cases"], "--locations", locs,
                          "--study-start", "2025-03-01", "--study-end", "2025-03-30")
    assert code == 2 and "line 3, column lat: 95.0 is not a latitude" in err, err
