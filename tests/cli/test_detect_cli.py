"""``citygrid detect``: CSV in, every named field out, the engine's answers, precise errors."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re

import numpy as np
import pytest

from citygrid.cli.main import main
from csv_files import write_csv
from citygrid.engine.alerts import detectors as D


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def weekly_k1(shared_data, tmp_path):
    with open(shared_data / "surveillance" / "k1_weekly.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    start = dt.date(2001, 1, 1)
    return write_csv(tmp_path / "k1.csv", ["period", "count"],
                  [((start + dt.timedelta(weeks=int(r["week"]) - 1)).isoformat(), r["observed"]) for r in rows])


def test_bayes_json_has_every_field_and_the_published_alarms(capsys, weekly_k1):
    code, out, err = _run(capsys, "detect", "bayes", weekly_k1, "--w", "6", "--alpha", "0.01", "--start", "26", "--json")
    assert code == 0, err
    records = json.loads(out)
    assert set(records[0]) == {"period", "count", "expected", "upperbound", "alarm", "p_value"}
    assert records[0]["period"] == "2001-07-02"  # week 27, dates kept as dates
    judged = records[:192 - 26]
    assert sum(r["alarm"] for r in judged) == 6  # TP 2 + FP 4 (the vignette)
    assert all(r["alarm"] == (r["count"] > r["upperbound"]) for r in records)


def test_several_series_and_every_method(capsys, tmp_path, rng):
    rows = []
    counts = rng.poisson(3.0, size=(3, 400))
    counts[1, -3:] += 25
    for s in range(3):
        for t in range(400):
            rows.append((f"grid-{s}", t, int(counts[s, t])))
    path = write_csv(tmp_path / "series.csv", ["series_id", "period", "count"], rows)
    expected_stat = {"ears": "c", "cusum": "cusum", "glr": "glr", "bayes": "p_value", "farrington": "score"}
    for method, extra in [("ears", ["--type", "C2", "--min-sigma", "0.5"]), ("cusum", ["--train", "100"]),
                          ("glr", ["--train", "100", "--harmonics", "0"]), ("bayes", ["--b", "1", "--w", "3"]),
                          ("farrington", ["--b", "3", "--w", "3"])]:
        code, out, err = _run(capsys, "detect", method, path, "--json", *extra)
        assert code == 0, (method, err)
        records = json.loads(out)
        assert {"series_id", "period", "count", "expected", "upperbound", "alarm", expected_stat[method]} <= set(records[0])
        by_series = {s: [r for r in records if r["series_id"] == s] for s in ("grid-0", "grid-1", "grid-2")}
        assert all(len(v) == len(by_series["grid-0"]) for v in by_series.values())
        # the planted rise in grid-1's last three periods is seen by every method
        assert any(r["alarm"] for r in by_series["grid-1"][-3:]), method
        # and the JSON is the engine's answer
        direct = D.detect(method, counts.astype(float), _options(method), freq=52)
        ours = np.array([r["alarm"] for r in records]).reshape(3, -1)
        assert (ours == direct.alarm[:, direct.start:]).all(), method


def _options(method):
    return {
        "ears": D.EarsOptions(method="C2", min_sigma=0.5),
        "cusum": D.CusumOptions(in_control=D.InControl(train=100)),
        "glr": D.GlrOptions(in_control=D.InControl(train=100, harmonics=0)),
        "bayes": D.BayesOptions(b=1, w=3),
        "farrington": D.FarringtonOptions(b=3, w=3),
    }[method]


def test_text_output_lists_the_alarms(capsys, tmp_path):
    path = write_csv(tmp_path / "s.csv", ["period", "count"], [(t, 2 if t < 30 else 40) for t in range(31)])
    code, out, err = _run(capsys, "detect", "ears", path, "--min-sigma", "1")
    assert code == 0
    assert "1 alarms" in out and "30: count 40" in out


@pytest.mark.parametrize(("rows", "message"), [
    ([("1", "3"), ("2", "x")], r"line 3, column count: 'x' is not a number"),
    ([("1", "3"), ("2", "-1")], r"line 3, column count: '-1' is not a whole number"),
    ([("1", "3"), ("1", "4")], r"line 3: period '1' .* appears twice"),
    ([("1", "3"), ("2025-01-01", "4")], r"periods mix numbers and dates"),
    ([("2025-01-01", "3"), ("2025-01-08", "4"), ("2025-01-10", "1")], r"not on the run of periods"),
])
def test_bad_series_files_name_the_line_and_column(capsys, tmp_path, rows, message):
    path = write_csv(tmp_path / "bad.csv", ["period", "count"], rows)
    code, out, err = _run(capsys, "detect", "ears", path)
    assert code == 2
    assert re.search(message, err), err


def test_a_series_too_short_for_the_method_is_refused(capsys, tmp_path):
    path = write_csv(tmp_path / "short.csv", ["period", "count"], [(t, 1) for t in range(20)])
    code, out, err = _run(capsys, "detect", "farrington", path)
    assert code == 2 and "needs more than" in err
