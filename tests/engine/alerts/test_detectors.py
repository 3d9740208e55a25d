"""The detectors' engine API: shapes, starts, given in-control means, precise errors, deadlines."""

from __future__ import annotations

import numpy as np
import pytest

from citygrid.engine.alerts import detectors as D
from citygrid.engine.errors import DeadlineExceeded, InvalidInput


def test_a_matrix_of_series_is_judged_row_by_row(rng):
    y = rng.poisson(4.0, size=(5, 60)).astype(float)
    together = D.detect("bayes", y)
    for s in range(5):
        alone = D.detect("bayes", y[s])
        np.testing.assert_array_equal(alone.upperbound[0], together.upperbound[s])
    assert together.start == 6
    assert np.isnan(together.upperbound[:, :6]).all() and not together.alarm[:, :6].any()


@pytest.mark.parametrize("method", D.METHODS)
def test_periods_before_the_start_are_unjudged(rng, method):
    y = rng.poisson(2.0, size=(5, 5 * 52 + 12)).astype(float)
    y[[1, 3]] = 0.0
    result = D.detect(method, y, freq=52)
    assert result.start > 0
    for name in ("expected", "upperbound", "statistic"):
        assert np.isnan(getattr(result, name)[:, :result.start]).all(), name
    assert not result.alarm[:, :result.start].any()


def test_some_rows_of_an_answer_are_the_full_arrays_rows(rng):
    y = rng.poisson(2.0, size=(6, 60)).astype(float)
    y[[0, 2, 3]] = 0.0  # shared answer: rows map onto one computed row
    rows = np.array([4, 0, 3, 1])
    for read_first in (False, True):
        result = D.detect("ears", y, D.EarsOptions(method="C3"), freq=365)
        for name in ("expected", "upperbound", "statistic", "alarm"):
            full = getattr(result, name) if read_first else None
            part = result.take(name, rows)
            np.testing.assert_array_equal(part, getattr(result, name)[rows], err_msg=name)
            assert full is None or part.shape == (4, 60)
        assert result.take("statistic", rows[:0]).shape == (0, 60)


@pytest.mark.parametrize("method", D.METHODS)
def test_series_without_counts_share_one_answer(rng, method):
    """Empty series are computed once and copied: the same answers as each series alone."""
    y = rng.poisson(2.0, size=(6, 5 * 52 + 12)).astype(float)
    y[[0, 2, 3, 5]] = 0.0
    together = D.detect(method, y, freq=52)
    alarms = 0
    for s in range(6):
        alone = D.detect(method, y[s], freq=52)
        for name in ("expected", "upperbound", "statistic", "alarm"):
            np.testing.assert_array_equal(getattr(alone, name)[0], getattr(together, name)[s], err_msg=f"{method} {name}")
        for name, values in alone.extra.items():
            if name != "fit_status":  # a lone series is never pooled as sparse
                np.testing.assert_array_equal(values[0], together.extra[name][s], err_msg=f"{method} {name}")
        alarms += alone.n_alarms
    assert together.alarm.shape == y.shape and together.n_alarms == alarms == int(together.alarm.sum())
    mu = D.in_control_means(y, D.InControl(train=60))
    np.testing.assert_array_equal(mu[1], D.in_control_means(y[1], D.InControl(train=60))[0])
    np.testing.assert_array_equal(mu[5], D.in_control_means(y[5], D.InControl(train=60))[0])


def test_given_in_control_means_are_used_from_the_start(rng):
    y = rng.poisson(3.0, size=(2, 50)).astype(float)
    y[1, 40:44] += 10
    mu = np.full(y.shape, 3.0)
    result = D.detect("glr", y, expected=mu)
    assert result.start == 0
    np.testing.assert_array_equal(result.expected, mu)
    assert result.alarm[1, 40:45].any() and not result.alarm[0].any()


def test_counts_checked_once_give_the_same_answers(rng):
    """One CheckedCounts serves every method: the answers are those of a bare matrix, and the
    caller's in-control means are not written to (the engine fills its own copy before the start)."""
    y = rng.poisson(2.0, size=(6, 5 * 52 + 12)).astype(float)
    y[[0, 2, 3]] = 0.0
    checked = D.CheckedCounts(y)
    assert checked.rows is not None and checked.distinct.shape == (4, y.shape[1])
    for method in D.METHODS:
        bare, once = D.detect(method, y, freq=52), D.detect(method, checked, freq=52)
        for name in ("expected", "upperbound", "statistic", "alarm"):
            np.testing.assert_array_equal(getattr(bare, name), getattr(once, name), err_msg=f"{method} {name}")
    np.testing.assert_array_equal(D.in_control_means(checked), D.in_control_means(y))
    mu = np.full(y.shape, 2.0)
    result = D.detect("cusum", checked, expected=mu, start=10)
    assert (mu == 2.0).all() and np.isnan(result.expected[:, :10]).all() and (result.expected[:, 10:] == 2.0).all()
    no_bound = D.detect("glr", checked, D.GlrOptions(bound=False), freq=52)
    assert np.isnan(no_bound.upperbound).all()


def test_an_outbreak_raises_every_detector(rng):
    y = rng.poisson(6.0, size=(1, 5 * 52 + 30)).astype(float)
    y[0, -2] += 40
    for method in D.METHODS:
        result = D.detect(method, y, freq=52)
        assert result.alarm[0, -2], method
        assert result.alarm[0, result.start:].mean() < 0.2, method


@pytest.mark.parametrize(("counts", "message"), [
    ([[1, 2, -1, 3]], r"series 0, period 2 holds -1.0"),
    ([[1, 2, 2.5, 3]], r"whole numbers"),
    ([[1, np.nan, 2]], r"whole numbers"),
    (np.zeros((2, 3, 4)), r"series x time matrix"),
])
def test_bad_counts_are_named(counts, message):
    with pytest.raises(InvalidInput, match=message):
        D.detect("ears", counts)


@pytest.mark.parametrize(("method", "options", "message"), [
    ("ears", D.EarsOptions(method="C4"), "C1, C2 or C3"),
    ("ears", D.EarsOptions(baseline=2), "at least 3"),
    ("ears", D.EarsOptions(alpha=1.5), "alpha"),
    ("cusum", D.CusumOptions(kappa=-1.0), "kappa"),
    ("glr", D.GlrOptions(threshold=0), "threshold"),
    ("glr", D.GlrOptions(in_control=D.InControl(train=300)), "leaving none"),
    ("bayes", D.BayesOptions(b=0, act_y=False), "reference values"),
    ("farrington", D.FarringtonOptions(threshold="magic"), "threshold must be"),
    ("farrington", D.FarringtonOptions(dispersion_rule="other"), "dispersion_rule"),
    ("ears", D.BayesOptions(), "takes EarsOptions"),
])
def test_bad_options_are_named(method, options, message):
    with pytest.raises(InvalidInput, match=message):
        D.detect(method, np.ones((1, 200)), options)


def test_short_series_and_early_starts_are_refused():
    with pytest.raises(InvalidInput, match="needs more than"):
        D.detect("farrington", np.ones((1, 200)), freq=52)
    with pytest.raises(InvalidInput, match="can judge period 7 onwards"):
        D.detect("ears", np.ones((1, 50)), start=3)
    with pytest.raises(InvalidInput, match="unknown detector"):
        D.detect("magic", np.ones((1, 50)))


def test_a_passed_deadline_stops_before_the_first_chunk():
    with pytest.raises(DeadlineExceeded):
        D.detect("ears", np.ones((3, 50)), deadline=0.0)
