"""Detector kernels against independent implementations: SciPy's distributions, a brute-force
GLR without the candidate pruning, plain recursions, NumPy rolling windows, the GLM's score equations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from scipy import special, stats

from citygrid.kernels import detectors as kd
from citygrid.kernels import distributions as kdist
from citygrid.kernels import glm

PROBS = st.floats(0.5, 0.9999)


@given(p=PROBS, size=st.floats(0.05, 400), prob=st.floats(0.02, 0.98))
@example(p=0.99, size=0.5, prob=0.5)
@example(p=0.95, size=3000.5, prob=6 / 7)  # a first term that underflows
@settings(max_examples=300, deadline=None)
def test_nbinom_quantile_is_scipys(p, size, prob):
    q = stats.nbinom.ppf(p, size, prob)
    # stay clear of probabilities within rounding of p, where the two fuzzes may differ
    assume(abs(stats.nbinom.cdf(q, size, prob) - p) > 1e-9 and abs(stats.nbinom.cdf(q - 1, size, prob) - p) > 1e-9)
    assert kdist.nbinom_quantile(p, size, prob) == q


@given(p=PROBS, mu=st.floats(0.0, 2000))
@example(p=0.95, mu=900.0)
@settings(max_examples=300, deadline=None)
def test_poisson_quantile_is_scipys(p, mu):
    q = stats.poisson.ppf(p, mu)
    assume(mu == 0 or (abs(stats.poisson.cdf(q, mu) - p) > 1e-9 and abs(stats.poisson.cdf(q - 1, mu) - p) > 1e-9))
    assert kdist.poisson_quantile(p, mu) == q


@given(y=st.integers(0, 300), size=st.floats(0.05, 200), prob=st.floats(0.02, 0.98), mu=st.floats(0.01, 300))
@settings(max_examples=200, deadline=None)
def test_upper_tails_are_scipys(y, size, prob, mu):
    assert kdist.nbinom_upper_tail(float(y), size, prob) == pytest.approx(stats.nbinom.sf(y - 1, size, prob), abs=1e-11)
    assert kdist.poisson_upper_tail(float(y), mu) == pytest.approx(stats.poisson.sf(y - 1, mu), abs=1e-11)


@given(t=st.floats(-40, 40), df=st.floats(1, 2000))
@settings(max_examples=200, deadline=None)
def test_student_t_is_scipys(t, df):
    assert kdist.student_t_two_sided(t, df) == pytest.approx(_t_two_sided(t, df), rel=1e-9, abs=1e-300)


def _t_two_sided(t, df):
    """P(|T| >= |t|) from scipy's incomplete beta, each side of |t| = 1 in the form without
    cancellation (``stats.t.sf`` loses digits near t = 0: at df = 1, t = 1e-8 it is off by 3e-9,
    where the Cauchy distribution's exact 1 - 2 atan(t) / pi is at hand)."""
    t2 = t * t
    if abs(t) < 1:
        return 1.0 - special.betainc(0.5, 0.5 * df, t2 / (df + t2))
    return special.betainc(0.5 * df, 0.5, df / (df + t2))


def test_student_t_near_zero_is_the_cauchy_closed_form():
    for t in (9.9e-9, 1e-6, 1e-3, 0.5, 3.0):
        assert kdist.student_t_two_sided(t, 1.0) == pytest.approx(1 - 2 * math.atan(t) / math.pi, rel=1e-12)


def _brute_glr(y, mu, c, start):
    """GLR(n) = max over every start k since the last restart, no pruning; and the least count that alarms."""
    stat, bound, alarm = [], [], []
    run = start
    for n in range(start, len(y)):
        def glr_at(x):
            best = 0.0
            for k in range(run, n + 1):
                sy = sum(y[k:n]) + x
                sm = sum(mu[k:n + 1])
                if sy > sm:
                    best = max(best, sy * math.log(sy / sm) - sy + sm)
            return best
        g = glr_at(y[n])
        x = 0
        while glr_at(x) < c:
            x += 1
        stat.append(g)
        bound.append(x)
        alarm.append(g >= c)
        if g >= c:
            run = n + 1
    return np.array(stat), np.array(bound), np.array(alarm)


@given(data=st.data())
@settings(max_examples=150, deadline=None)
def test_glr_equals_the_unpruned_statistic(data):
    n = data.draw(st.integers(5, 45))
    level = data.draw(st.floats(0.2, 6.0) | st.floats(0.001, 0.2))  # and sparse series' means
    top = 12 if level >= 0.2 else 3
    y = np.array(data.draw(st.lists(st.integers(0, top), min_size=n, max_size=n)), dtype=float)
    if data.draw(st.booleans()):  # a constant mean, as sparse series get (quiet periods repeat a bound)
        y *= np.array(data.draw(st.lists(st.sampled_from([0.0, 0.0, 0.0, 1.0]), min_size=n, max_size=n)))
        mu = np.full(n, level)
    else:
        mu = np.full(n, level) * np.array(data.draw(st.lists(st.floats(0.5, 2.0), min_size=n, max_size=n)))
    c = data.draw(st.sampled_from([1.0, 2.5, 5.0]))
    start = data.draw(st.integers(0, 3))
    statistic = np.full((1, n), np.nan)
    bound = np.full((1, n), np.nan)
    alarm = np.zeros((1, n), dtype=np.uint8)
    kd.detect_glr(y.reshape(1, -1), mu.reshape(1, -1), c, start, True, statistic, bound, alarm)
    want_stat, want_bound, want_alarm = _brute_glr(y.tolist(), mu.tolist(), c, start)
    np.testing.assert_allclose(statistic[0, start:], want_stat, rtol=1e-9, atol=1e-9)
    assert (alarm[0, start:] == want_alarm).all()
    assert (bound[0, start:] == want_bound).all()


def test_cusum_is_the_recursion():
    rng = np.random.default_rng(3)
    y = rng.poisson(2.0, 200).astype(float)
    y[150:160] += 6
    mu = np.full(200, 2.0)
    kappa, c = math.log(2), 4.0
    stat = np.full((1, 200), np.nan)
    bound = np.full((1, 200), np.nan)
    alarm = np.zeros((1, 200), dtype=np.uint8)
    kd.detect_cusum(y.reshape(1, -1), mu.reshape(1, -1), kappa, c, 10, stat, bound, alarm)
    s = 0.0
    for t in range(10, 200):
        assert bound[0, t] == pytest.approx(max(0.0, (c - s + mu[t] * (math.exp(kappa) - 1)) / kappa))
        s = max(0.0, s + kappa * y[t] - (math.exp(kappa) - 1) * mu[t])
        assert stat[0, t] == pytest.approx(s)
        assert alarm[0, t] == (s > c)
        if s > c:
            s = 0.0
    assert alarm[0, 150:165].any() and not alarm[0, :140].any()


def test_ears_c1_c2_are_rolling_means_and_deviations():
    rng = np.random.default_rng(4)
    y = rng.poisson(5.0, (3, 80)).astype(float)
    z = stats.norm.ppf(0.999)
    for method, lag in ((kd.EARS_C1, 0), (kd.EARS_C2, 2)):
        out = {k: np.full(y.shape, np.nan) for k in ("e", "u", "s")}
        alarm = np.zeros(y.shape, dtype=np.uint8)
        start = 7 + lag
        kd.detect_ears(y, method, 7, z, 0.0, kd.C3_PUBLISHED, start, out["e"], out["u"], out["s"], alarm)
        windows = np.lib.stride_tricks.sliding_window_view(y, 7, axis=1)[:, :80 - 7 - lag][:, : 80 - start]
        mean = windows.mean(axis=2)
        sd = windows.std(axis=2, ddof=1)
        np.testing.assert_allclose(out["e"][:, start:], mean, rtol=1e-12)
        np.testing.assert_allclose(out["u"][:, start:], mean + z * sd, rtol=1e-12)
        assert (alarm[:, start:] == (y[:, start:] > mean + z * sd)).all()


def test_ears_on_sparse_series_are_the_windows_too():
    """Mostly-zero series (the kernel skips summing a baseline of zeros): the same rolling means,
    deviations floored at min_sigma, statistics and alarms as the windows give, for C1, C2 and C3."""
    rng = np.random.default_rng(14)
    y = (rng.random((40, 90)) < 0.06) * rng.integers(1, 4, (40, 90)).astype(float)
    y[3] = 0.0
    y[4, :20] = 0.0
    y[4, 20] = 3.0
    y[5, 60:63] = [3, 4, 5]
    z, min_sigma = stats.norm.ppf(0.999), 0.5
    c2 = {}
    for method, lag in ((kd.EARS_C1, 0), (kd.EARS_C2, 2)):
        out = {k: np.full(y.shape, np.nan) for k in ("e", "u", "s")}
        alarm = np.zeros(y.shape, dtype=np.uint8)
        start = 7 + lag
        kd.detect_ears(y, method, 7, z, min_sigma, kd.C3_PUBLISHED, start, out["e"], out["u"], out["s"], alarm)
        windows = np.lib.stride_tricks.sliding_window_view(y, 7, axis=1)[:, :90 - start]
        mean = windows.mean(axis=2)
        sigma = np.maximum(windows.std(axis=2, ddof=1), min_sigma)
        np.testing.assert_allclose(out["e"][:, start:], mean, rtol=1e-12, atol=0)
        np.testing.assert_allclose(out["u"][:, start:], mean + z * sigma, rtol=1e-12, atol=0)
        np.testing.assert_allclose(out["s"][:, start:], (y[:, start:] - mean) / sigma, rtol=1e-12, atol=1e-12)
        assert (alarm[:, start:] == (y[:, start:] > mean + z * sigma)).all()
        c2[method] = out["s"]
    excess = np.maximum(0.0, c2[kd.EARS_C2] - 1.0)
    c3 = np.full(y.shape, np.nan)
    out = [np.full(y.shape, np.nan) for _ in range(2)]
    alarm = np.zeros(y.shape, np.uint8)
    kd.detect_ears(y, kd.EARS_C3, 7, z, min_sigma, kd.C3_PUBLISHED, 11, out[0], out[1], c3, alarm)
    want = excess[:, 11:] + excess[:, 10:-1] + excess[:, 9:-2]
    np.testing.assert_allclose(c3[:, 11:], want, rtol=1e-12, atol=1e-12)
    assert (alarm[:, 11:] == (want > z)).all() and alarm[5, 60:63].any() and alarm[4, 20]


def test_ears_c3_sums_three_days_of_c2_excess():
    rng = np.random.default_rng(5)
    y = rng.poisson(4.0, (1, 60)).astype(float)
    y[0, 40:43] += [6, 9, 12]
    z = stats.norm.ppf(0.975)
    c2 = np.full((1, 60), np.nan)
    out = [np.full((1, 60), np.nan) for _ in range(2)]
    kd.detect_ears(y, kd.EARS_C2, 7, z, 0.5, kd.C3_PUBLISHED, 9, out[0], out[1], c2, np.zeros((1, 60), np.uint8))
    c3 = np.full((1, 60), np.nan)
    bound = np.full((1, 60), np.nan)
    alarm = np.zeros((1, 60), np.uint8)
    kd.detect_ears(y, kd.EARS_C3, 7, z, 0.5, kd.C3_PUBLISHED, 11, out[0], bound, c3, alarm)
    excess = np.maximum(0.0, c2[0] - 1.0)
    for t in range(11, 60):
        assert c3[0, t] == pytest.approx(excess[t] + excess[t - 1] + excess[t - 2])
        assert alarm[0, t] == (c3[0, t] > z)
    assert alarm[0, 41:44].any()


def test_bayes_bound_is_scipys_predictive_quantile():
    rng = np.random.default_rng(6)
    y = rng.poisson(3.0, (2, 120)).astype(float)
    out = [np.full(y.shape, np.nan) for _ in range(3)]
    alarm = np.zeros(y.shape, np.uint8)
    kd.detect_bayes(y, 1, 3, True, 52, 0.05, 55, out[0], out[1], out[2], alarm)
    for s in range(2):
        for t in range(55, 120):
            ref = np.concatenate([y[s, t - 3:t], y[s, t - 52 - 3:t - 52 + 4]])
            q = stats.nbinom.ppf(0.95, ref.sum() + 0.5, len(ref) / (len(ref) + 1))
            assert out[1][s, t] == q
            assert alarm[s, t] == (y[s, t] > q)


@given(seed=st.integers(0, 10_000), harmonics=st.integers(0, 2), trend=st.booleans())
@settings(max_examples=40, deadline=None)
def test_glm_fit_solves_the_score_equations(seed, harmonics, trend):
    rng = np.random.default_rng(seed)
    n = 80
    t = np.arange(1, n + 1, dtype=float)
    cols = [np.ones(n)] + ([t / n] if trend else [])
    for h in range(1, harmonics + 1):
        cols += [np.cos(2 * np.pi * h * t / 26), np.sin(2 * np.pi * h * t / 26)]
    X = np.ascontiguousarray(np.column_stack(cols))
    y = rng.poisson(np.exp(1.0 + 0.4 * np.sin(2 * np.pi * t / 26))).astype(float)
    prior = rng.uniform(0.5, 1.5, n)
    p = X.shape[1]
    coef, mu, eta, wt = np.zeros(p), np.empty(n), np.empty(n), np.empty(n)
    r = np.zeros((p, p))
    assert glm.fit_poisson_log(X, y, prior, coef, mu, eta, wt, r) == glm.FIT_CONVERGED
    np.testing.assert_allclose(mu, np.exp(X @ coef), rtol=1e-12)
    score = X.T @ (prior * (y - mu))
    assert np.abs(score).max() < 1e-5 * max(1.0, y.sum())
    # R factor of the last step: R^T R = X^T W X
    np.testing.assert_allclose(r.T @ r, X.T @ (wt[:, None] * X), rtol=1e-9, atol=1e-9)


def test_glr_with_vanishing_in_control_means():
    """Means of 1e-42 beside 1e-9 (a GLM fitted on zeros): no cancellation, no division by zero."""
    mu = np.array([1e-9] * 5 + [1e-42] * 5 + [0.2] * 10)
    y = np.zeros(20)
    y[7] = 1.0
    y[15] = 3.0
    statistic = np.full((1, 20), np.nan)
    bound = np.full((1, 20), np.nan)
    alarm = np.zeros((1, 20), dtype=np.uint8)
    kd.detect_glr(y.reshape(1, -1), mu.reshape(1, -1), 5.0, 0, True, statistic, bound, alarm)
    want_stat, want_bound, want_alarm = _brute_glr(y.tolist(), mu.tolist(), 5.0, 0)
    assert (alarm[0] == want_alarm).all() and alarm[0, 7]
    assert (bound[0] == want_bound).all()
    np.testing.assert_allclose(statistic[0], want_stat, rtol=1e-9)


def test_kernels_write_every_entry_before_the_start_too():
    """The engine allocates outputs with np.empty: each kernel writes NaN and no alarm before
    ``start`` (and the GLR a NaN bound when asked for none), whatever the memory held."""
    rng = np.random.default_rng(13)
    y = rng.poisson(3.0, size=(4, 60)).astype(np.float64)
    mu = np.full(y.shape, 3.0)
    start = 20

    def outputs():
        return [np.full(y.shape, 7.0) for _ in range(3)] + [np.ones(y.shape, dtype=np.uint8)]

    calls = {
        "ears": lambda e, u, s, a: kd.detect_ears(y, kd.EARS_C3, 7, 2.0, 0.5, kd.C3_PUBLISHED, start, e, u, s, a),
        "bayes": lambda e, u, s, a: kd.detect_bayes(y, 0, 6, True, 365, 0.05, start, e, u, s, a),
        "cusum": lambda e, u, s, a: kd.detect_cusum(y, mu, math.log(2.0), 5.0, start, s, u, a),
        "glr": lambda e, u, s, a: kd.detect_glr(y, mu, 5.0, start, True, s, u, a),
    }
    for name, call in calls.items():
        e, u, s, a = outputs()
        call(e, u, s, a)
        written = (u, s) if name in ("cusum", "glr") else (e, u, s)
        for out in written:
            assert np.isnan(out[:, :start]).all(), name
        assert not a[:, :start].any(), name
    e, u, s, a = outputs()
    kd.detect_glr(y, mu, 5.0, start, False, s, u, a)
    assert np.isnan(u).all() and np.isnan(s[:, :start]).all() and not a[:, :start].any()
