"""The detectors reproduce the R ``surveillance`` package's published results on its own series
(``../shared/data/surveillance/README.md``)."""

from __future__ import annotations

import csv
import datetime

import numpy as np
import pytest

from citygrid.engine.alerts import detectors as D


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_ears_c1_upper_bounds_of_salmonella_newport(shared_data):
    """test-earsC.R: C1, baseline 7, alpha 0.05 on the national series; the first four weeks of 2011."""
    rows = _rows(shared_data / "surveillance" / "salmNewport_weekly_by_state.csv")
    national = np.array([sum(int(v) for k, v in r.items() if k != "week_start") for r in rows], dtype=float)
    weeks = [datetime.date.fromisoformat(r["week_start"]) for r in rows]
    first_2011 = next(i for i, day in enumerate(weeks) if day.isocalendar()[0] == 2011)
    result = D.detect("ears", national, D.EarsOptions(method="C1", baseline=7, alpha=0.05))
    bounds = result.upperbound[0, first_2011:first_2011 + 4]
    np.testing.assert_allclose(bounds, [3.278854, 3.278854, 3.436517, 3.855617], rtol=0, atol=5e-7)


@pytest.mark.parametrize(("threshold", "alarms"), [(1, 15), (2, 11), (3, 8), (4, 7), (5, 6), (6, 4)])
def test_glr_alarm_counts_of_salmonella_hadar(shared_data, threshold, alarms):
    """The glrnb vignette: Poisson GLR for a rise, in-control GLM with one harmonic on weeks 1-104."""
    rows = _rows(shared_data / "surveillance" / "shadar_weekly.csv")
    y = np.array([int(r["observed"]) for r in rows], dtype=float)
    assert len(y) == 295
    options = D.GlrOptions(threshold=threshold,
                           in_control=D.InControl(train=104, harmonics=1, min_events_per_coefficient=0))
    result = D.detect("glr", y, options, freq=52)
    assert result.start == 104
    assert result.n_alarms == alarms


def test_bayes_confusion_counts_of_k1(shared_data):
    """The package vignette: algo.bayes with w = 6, b = 0, alpha 0.01 over weeks 27-192 of k1."""
    rows = _rows(shared_data / "surveillance" / "k1_weekly.csv")
    y = np.array([int(r["observed"]) for r in rows], dtype=float)
    state = np.array([int(r["state"]) for r in rows]) == 1
    result = D.detect("bayes", y, D.BayesOptions(b=0, w=6, alpha=0.01), start=26)
    alarm = result.alarm[0, 26:192]
    truth = state[26:192]
    tp, fp = int((alarm & truth).sum()), int((alarm & ~truth).sum())
    tn, fn = int((~alarm & ~truth).sum()), int((~alarm & truth).sum())
    assert (tp, fp, tn, fn) == (2, 4, 160, 0)
    assert tn / (tn + fp) == pytest.approx(0.9756098, abs=5e-8)
