"""The detectors against R ``surveillance`` on random series (fixtures made by
``bench/oracle/surveillance_fixtures.py``; no R needed here).

Alarms must be identical. Upper bounds that are quantiles of a discrete distribution (Bayes,
Farrington's nbPlugin / muan, the GLR's "cases") must be equal; continuous ones (EARS, the CUSUM's
cases, Farrington's delta bound) and statistics agree to a relative 1e-9 (R writes 15 significant
digits and fits its GLMs with a different QR; the difference seen is below 1e-12).
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from citygrid.engine.alerts import detectors as D

FIXTURE = Path(__file__).parent / "data" / "surveillance_oracle.json.gz"
RTOL = 1e-9


def _load():
    with gzip.open(FIXTURE) as fh:
        return json.load(fh)


ORACLE = _load()


def _jobs(method):
    return [pytest.param(j, id=f"{method}-{j['id']}") for j in ORACLE["jobs"] if j["method"] == method]


def _r(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _series(job) -> np.ndarray:
    return np.array(ORACLE["series"][job["series"]], dtype=float)


def _assert_close(ours, theirs, what, job, rtol=RTOL, exact=False):
    ours = np.asarray(ours, dtype=float)
    theirs = np.asarray(theirs, dtype=float)
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    both_nan = np.isnan(ours) & np.isnan(theirs)
    if exact:
        bad = ~both_nan & (ours != theirs)
    else:
        bad = ~both_nan & ~np.isclose(ours, theirs, rtol=rtol, atol=1e-12)
    if bad.any():
        i = int(np.argmax(bad))
        raise AssertionError(f"job {job['id']} {what}: {bad.sum()} differ, first at monitored index {i}: "
                             f"ours {ours[i]!r}, R {theirs[i]!r} (control {job['control']})")


def _alarms(ours, job):
    theirs = np.array([bool(v) if v is not None else False for v in job["answer"]["alarm"]])
    assert theirs.shape == ours.shape
    if (ours != theirs).any():
        i = int(np.argmax(ours != theirs))
        raise AssertionError(f"job {job['id']} alarms differ at monitored index {i} (ours {ours[i]}, "
                             f"R {theirs[i]}); ours {int(ours.sum())}, R {int(theirs.sum())} (control {job['control']})")


def test_fixture_covers_every_method():
    methods = {j["method"] for j in ORACLE["jobs"]}
    assert methods == {"ears", "glr", "cusum", "bayes", "farrington"}
    assert all("error" not in j["answer"] for j in ORACLE["jobs"])
    assert sum(sum(v or 0 for v in j["answer"]["alarm"]) for j in ORACLE["jobs"]) > 200


@pytest.mark.parametrize("job", _jobs("ears"))
def test_ears_matches_r(job):
    c = job["control"]
    options = D.EarsOptions(method=c["method"], baseline=c["baseline"], alpha=c.get("alpha"),
                            min_sigma=c["minSigma"], c3_rule="surveillance")
    start = job["first"] - 1
    result = D.detect("ears", _series(job), options, start=start)
    _alarms(result.alarm[0, start:], job)
    _assert_close(result.upperbound[0, start:], _r(job["answer"]["upperbound"]), "upperbound", job)


@pytest.mark.parametrize("job", _jobs("glr") + _jobs("cusum"))
def test_glr_and_cusum_match_r(job):
    c = job["control"]
    start = job["first"] - 1
    y = _series(job)
    in_control = D.InControl(train=start, harmonics=c.get("S", 1), trend=c.get("trend", False),
                             min_events_per_coefficient=0)  # R's glrpois fits the GLM to every series
    if job["method"] == "glr":
        options = D.GlrOptions(threshold=c["c"], in_control=in_control, bound=c["ret"] == "cases")
    else:
        options = D.CusumOptions(kappa=c["kappa"], threshold=c["c"], in_control=in_control)
    expected = None
    if job["mu0"] is not None:
        expected = np.array(ORACLE["means"][job["mu0"]])
    result = D.detect(job["method"], y, options, freq=job["freq"], start=start, expected=expected)
    _alarms(result.alarm[0, start:], job)
    _assert_close(result.expected[0, start:], _r(job["answer"]["mu0"]), "in-control mean", job, rtol=1e-8)
    theirs = _r(job["answer"]["upperbound"])
    if c["ret"] == "value":
        _assert_close(result.statistic[0, start:], theirs, "statistic", job)
    else:
        ours = np.maximum(result.upperbound[0, start:], 0.0)
        _assert_close(ours, theirs, "cases", job, exact=job["method"] == "glr")


@pytest.mark.parametrize("job", _jobs("bayes"))
def test_bayes_matches_r(job):
    c = job["control"]
    start = job["first"] - 1
    options = D.BayesOptions(b=c["b"], w=c["w"], act_y=c["actY"], alpha=c["alpha"])
    result = D.detect("bayes", _series(job), options, freq=job["freq"], start=start)
    _alarms(result.alarm[0, start:], job)
    _assert_close(result.upperbound[0, start:], _r(job["answer"]["upperbound"]), "upperbound", job, exact=True)


def _published_rule_applies(job) -> bool:
    """R's dispersion quirk only matters after reweighting, for the muan / delta bounds and a real t-test."""
    c = job["control"]
    return not c["reweight"] or (c["thresholdMethod"] == "nbPlugin" and c["pThresholdTrend"] >= 1.0)


FARRINGTON = [pytest.param(j, "surveillance", id=f"farrington-{j['id']}") for j in ORACLE["jobs"]
              if j["method"] == "farrington"]
FARRINGTON += [pytest.param(j, "published", id=f"farrington-{j['id']}-published") for j in ORACLE["jobs"]
               if j["method"] == "farrington" and _published_rule_applies(j)]


def test_published_dispersion_rule_is_checked_on_several_jobs():
    assert sum(1 for p in FARRINGTON if p.values[1] == "published") >= 6


@pytest.mark.parametrize(("job", "rule"), FARRINGTON)
def test_farrington_matches_r(job, rule):
    c = job["control"]
    start = job["first"] - 1
    options = D.FarringtonOptions(
        b=c["b"], w=c["w"], periods=c["noPeriods"], past_excluded=c["pastWeeksNotIncluded"],
        reweight=c["reweight"], weights_threshold=c["weightsThreshold"], trend=c["trend"],
        p_trend=c["pThresholdTrend"], threshold=c["thresholdMethod"].lower(), power=c["powertrans"],
        alpha=c["alpha"], limit_cases=c["limit54"][0], limit_periods=c["limit54"][1],
        dispersion_rule=rule)
    result = D.detect("farrington", _series(job), options, freq=job["freq"], start=start)
    a = job["answer"]
    _alarms(result.alarm[0, start:], job)
    reported = ~np.isnan(_r(a["upperbound"]))
    exact = c["thresholdMethod"] != "delta"
    _assert_close(result.upperbound[0, start:][reported], _r(a["upperbound"])[reported], "upperbound", job,
                  exact=exact)
    _assert_close(result.extra["phi"][0, start:], _r(a["phi"]), "phi", job)
    _assert_close(result.statistic[0, start:], _r(a["score"]), "score", job)
    _assert_close(result.extra["p_value"][0, start:], _r(a["pvalue"]), "p-value", job)
    assert (result.extra["trend"][0, start:] == (_r(a["trend"]) == 1)).all()
    expected = _r(a["expected"])
    known = ~np.isnan(expected) & (expected != 0)
    _assert_close(result.expected[0, start:][known], expected[known], "expected", job)
    assert math.isfinite(result.expected[0, start:][known].sum())
