"""The in-control mean of sparse series: the GLR's false alarms on in-control simulated sparse
series stay near those it raises knowing the true means; a GLM fitted to each series (R's
glrpois) alarms several times as often. And the pooled (empirical-Bayes) means themselves."""

from __future__ import annotations

import numpy as np
import pytest

from citygrid.engine.alerts import detectors as D

N_SERIES, N_DAYS, TRAIN = 2000, 365, 91


def _in_control_world(rng, mean_rate):
    """Daily counts of grids whose rates differ (gamma, shape 1/2) around ``mean_rate`` a day."""
    rate = rng.gamma(0.5, mean_rate / 0.5, N_SERIES)
    return rng.poisson(rate[:, None], (N_SERIES, N_DAYS)).astype(float), rate


def _alarms_per_series(result):
    return result.alarm[:, TRAIN:].sum() / N_SERIES


@pytest.mark.parametrize("mean_rate", [0.01, 0.05, 0.2])
def test_glr_false_alarms_on_sparse_series_stay_near_the_known_mean_rate(rng, mean_rate):
    y, rate = _in_control_world(rng, mean_rate)
    known = D.detect("glr", y, D.GlrOptions(bound=False), expected=np.repeat(rate[:, None], N_DAYS, axis=1),
                     start=TRAIN)
    pooled = D.detect("glr", y, D.GlrOptions(bound=False, in_control=D.InControl(train=TRAIN, period=7)), freq=365)
    per_series = D.detect("glr", y, D.GlrOptions(bound=False, in_control=D.InControl(
        train=TRAIN, period=7, min_events_per_coefficient=0)), freq=365)
    assert (pooled.extra["fit_status"] == D.SPARSE_MEAN).mean() > 0.7  # most of them are sparse
    ours, reference, glm = map(_alarms_per_series, (pooled, known, per_series))
    assert reference > 0.05  # the threshold itself lets some through
    assert ours < 1.7 * reference, (ours, reference)
    assert glm > 2 * ours, (glm, ours)  # the fault fixed: a GLM on a handful of events


def test_a_rise_in_a_sparse_series_still_alarms(rng):
    y, _ = _in_control_world(rng, 0.03)
    y[:50, 300] += 5  # five cases in a day where a few a year are usual
    result = D.detect("glr", y, D.GlrOptions(in_control=D.InControl(train=TRAIN, period=7)), freq=365)
    assert result.alarm[:50, 300].mean() > 0.9


def test_dense_series_keep_their_seasonal_glm(rng):
    t = np.arange(N_DAYS)
    y = rng.poisson(20 * (1.5 + np.sin(2 * np.pi * t / 7)), (3, N_DAYS)).astype(float)
    a = D.in_control_means(y, D.InControl(train=TRAIN, period=7), freq=365)
    b = D.in_control_means(y, D.InControl(train=TRAIN, period=7, min_events_per_coefficient=0), freq=365)
    np.testing.assert_array_equal(a, b)


def test_pooled_means_are_gamma_poisson_posterior_means():
    n = 100
    counts = np.array([0, 0, 0, 1, 2, 0, 7, 0, 3, 0], dtype=float)
    got = D.sparse_means(counts, n)
    # the moments by hand
    m = counts.mean() / n
    v = (counts.var(ddof=1) - n * m) / n**2
    b = m / v
    np.testing.assert_allclose(got, (counts + m * b) / (n + b), rtol=1e-12)
    assert (got > 0).all() and got[6] < 7 / n and got[0] > 0  # shrunk towards the pool both ways
    # weights stand for repeated rows
    np.testing.assert_allclose(D.sparse_means(np.array([0.0, 7.0, 3.0]), n, np.array([7, 1, 2])),
                               D.sparse_means(np.array([0.0] * 7 + [7.0, 3.0, 3.0]), n)[[0, 7, 8]], rtol=1e-12)
    # no excess variance: the pooled rate; one series or no events: Jeffreys' prior
    np.testing.assert_allclose(D.sparse_means(np.array([3.0, 3.0, 3.0]), n), 0.03)
    np.testing.assert_allclose(D.sparse_means(np.array([0.0]), n), 0.005)
    np.testing.assert_allclose(D.sparse_means(np.zeros(4), n), 0.005)


def test_pooled_means_estimate_rates_better_than_each_series_alone(rng):
    rate = rng.gamma(0.5, 0.02, 5000)  # about one event a series in training
    counts = rng.poisson(rate * TRAIN).astype(float)
    pooled = D.sparse_means(counts, TRAIN)
    alone = counts / TRAIN
    assert ((pooled - rate) ** 2).mean() < 0.8 * ((alone - rate) ** 2).mean()
