"""The one-way-layout-with-trend fit (``kernels/factor_glm.py``) against the Householder QR fit of R's
own design (intercept, trend, treatment dummies; ``kernels/glm.py``, itself held to R's fixtures),
and Farrington's fall-back to that QR when the structure cannot resolve a near-dependence."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from citygrid.kernels import factor_glm as fg
from citygrid.kernels import farrington as kf
from citygrid.kernels import glm


def _layout(seed, n_groups, n, zero_groups, trend_rate, level):
    """Rows in random groups (every group present), times 1..n, Poisson counts; ``zero_groups`` of
    the groups get only zeros (their fitted means drift to 0 as in R's glm)."""
    rng = np.random.default_rng(seed)
    group = np.concatenate([np.arange(n_groups), rng.integers(0, n_groups, n - n_groups)])
    rng.shuffle(group)
    t = np.arange(1.0, n + 1)
    effect = rng.normal(0.0, 0.7, n_groups)
    y = rng.poisson(np.exp(level + effect[group] + trend_rate * t / n)).astype(float)
    for g in rng.choice(n_groups, size=zero_groups, replace=False):
        y[group == g] = 0.0
    prior = rng.uniform(0.3, 2.0, n)
    return group.astype(np.int64), t, y, prior


def _r_design(group, t, n_groups, with_trend):
    """R's columns: intercept, trend, a dummy per group but the lowest (the reference)."""
    cols = [np.ones(len(t))] + ([t] if with_trend else [])
    cols += [(group == g).astype(float) for g in range(1, n_groups)]
    return np.ascontiguousarray(np.column_stack(cols))


def _fit_both(group, t, y, prior, n_groups, with_trend):
    n = len(y)
    coef, mu, eta, wt = np.empty(n_groups + 1), np.empty(n), np.empty(n), np.empty(n)
    s0, mean_t = np.empty(n_groups), np.empty(n_groups)
    code, sigma = fg.fit_factor_trend(group, t, y, prior, n_groups, with_trend, coef, mu, eta, wt, s0, mean_t,
                                      np.empty(n), np.empty(n_groups), np.empty(n_groups))
    X = _r_design(group, t, n_groups, with_trend)
    p = X.shape[1]
    dense = {"coef": np.zeros(p), "mu": np.empty(n), "eta": np.empty(n), "wt": np.empty(n), "r": np.zeros((p, p))}
    dense["code"] = glm.fit_poisson_log(X, y, prior, dense["coef"], dense["mu"], dense["eta"], dense["wt"],
                                        dense["r"])
    ours = {"code": code, "sigma": sigma, "coef": coef, "mu": mu, "eta": eta, "wt": wt, "s0": s0, "mean_t": mean_t}
    return ours, dense, X


@given(seed=st.integers(0, 100_000), n_groups=st.integers(1, 10), zero_groups=st.integers(0, 3),
       with_trend=st.booleans(), trend_rate=st.floats(-1.5, 1.5), level=st.floats(-2.0, 4.0))
@settings(max_examples=150, deadline=None)
def test_the_same_fit_as_the_qr_of_rs_design(seed, n_groups, zero_groups, with_trend, trend_rate, level):
    group, t, y, prior = _layout(seed, n_groups, 120, min(zero_groups, n_groups - 1), trend_rate, level)
    ours, dense, X = _fit_both(group, t, y, prior, n_groups, with_trend)
    if ours["code"] == fg.FIT_UNRESOLVED:  # the caller then fits R's design itself
        return
    assert ours["code"] == dense["code"]
    if dense["code"] not in (glm.FIT_CONVERGED, glm.FIT_NOT_CONVERGED):
        return
    # the same iterates: linear predictors, working weights, coefficients mapped from R's treatment
    # contrasts to one effect per group. A group of zeros drifts towards -inf with weights that vanish;
    # the QR's error on its column grows like the rounding unit over the group's share of the weight
    # (the structured solve divides by the group's own sums and stays exact there)
    share = ours["s0"] / ours["s0"].sum()
    slack = 1e-9 + 1e-14 / share
    assert (np.abs(ours["eta"] - dense["eta"]) <= slack[group] * np.maximum(1.0, np.abs(dense["eta"]))).all()
    assert (np.abs(ours["wt"] / dense["wt"] - 1.0) <= 2 * slack[group] * np.maximum(1.0, np.abs(dense["eta"]))).all()
    beta = dense["coef"]
    start = 2 if with_trend else 1
    effects = beta[0] + np.concatenate([[0.0], beta[start:]])
    assert (np.abs(ours["coef"][:n_groups] - effects) <= slack * np.maximum(1.0, np.abs(effects))).all()
    assert ours["coef"][n_groups] == (0.0 if not with_trend else ours["coef"][n_groups])
    if with_trend:
        np.testing.assert_allclose(ours["coef"][n_groups], beta[1], rtol=1e-7, atol=1e-12)
    # hat values and the inverse's quadratic forms from the group sums of the last iteration
    hat = np.empty(len(y))
    glm.hat_values(X, dense["wt"], dense["r"], hat)
    ours_hat = np.array([ours["wt"][i] * fg.leverage(group[i], t[i], ours["s0"], ours["mean_t"], ours["sigma"],
                                                     with_trend) for i in range(len(y))])
    assert (np.abs(ours_hat - hat) <= 1e-7 * hat + 1e-12 + 4 * slack[group] * hat).all()
    scratch = np.empty(X.shape[1])
    for g in range(n_groups):  # a prediction in each group at a time past the data
        x = np.zeros(X.shape[1])
        x[0] = 1.0
        if with_trend:
            x[1] = len(y) + 5.0
        if g > 0:
            x[start + g - 1] = 1.0
        want = glm.quadratic_form_inverse(dense["r"], x, scratch)
        got = fg.leverage(g, len(y) + 5.0, ours["s0"], ours["mean_t"], ours["sigma"], with_trend)
        assert abs(got - want) <= (1e-7 + 4 * slack.max()) * want
    if with_trend:
        unit = np.zeros(X.shape[1])
        unit[1] = 1.0
        np.testing.assert_allclose(1.0 / ours["sigma"], glm.quadratic_form_inverse(dense["r"], unit, scratch),
                                   rtol=1e-7)


def test_a_fit_the_structure_cannot_resolve_is_reported():
    """Counts of 1e12 beside a group of zeros: that group's weights fall below 1e-14 of the total
    before the deviance settles, where R's QR would still judge its column (1e-11 of its norm)."""
    group, t, y, prior = _layout(3, 4, 60, 0, 0.2, 27.0)
    y[group == 2] = 0.0
    ours, dense, _ = _fit_both(group, t, y, np.ones(len(y)), 4, True)
    assert ours["code"] == fg.FIT_UNRESOLVED
    assert dense["code"] in (glm.FIT_CONVERGED, glm.FIT_NOT_CONVERGED)  # the QR still finds every column


def _farrington(counts, dense_only):
    """detect_farrington's answers, or (dense_only) the same steps on R's design by QR for every task."""
    n_series, n_time = counts.shape
    start = 5 * 52 + 3
    ts = np.repeat(np.arange(n_series, dtype=np.int64), n_time - start)
    tt = np.tile(np.arange(start, n_time, dtype=np.int64), n_series)
    n = len(ts)
    out = [np.empty(n) for _ in range(5)] + [np.zeros(n, np.uint8) for _ in range(3)]
    args = (5, 3, 52, 10, 26, True, 2.58, True, 1.0, kf.THRESHOLD_NBPLUGIN, kf.POWER_TWO_THIRDS, 1.6448536269514722,
            0.05, kf.DISPERSION_SURVEILLANCE, 5.0, 4)
    if not dense_only:
        kf.detect_farrington(counts, ts, tt, *args, *out)
        return out
    b, w, freq, n_levels, past, reweight, thr, trend, p_trend, method, power, z, alpha, rule, cases, periods = args
    for task in range(n):
        k = tt[task] + 1
        y = counts[ts[task]]
        levels = np.zeros(n_time, np.int64)
        kf.reference_levels(k, n_levels, b, w, freq, past, levels)
        fit = kf._dense_task(k, levels, y, n_levels, b, trend, p_trend, reweight, thr, rule,
                             np.empty((n_time, 12)), np.empty(n_time), np.zeros(12), np.zeros(12), np.empty(n_time),
                             np.empty(n_time), np.empty(n_time), np.zeros((12, 12)), np.empty(n_time),
                             np.empty(n_time), np.empty(12))
        kf._judge(task, method, power, z, alpha, cases, periods, k, y, *fit, *out)
    return out


def test_farrington_falls_back_to_rs_design_where_the_structure_cannot_resolve():
    """One judged week of two series: counts of about 1e9 with one seasonal level of zeros (the
    structure cannot resolve it: QR on R's design), and an ordinary series (the structure)."""
    rng = np.random.default_rng(5)
    n_time = 5 * 52 + 3 + 1
    levels = np.zeros(n_time, np.int64)
    kf.reference_levels(n_time, 10, 5, 3, 52, 26, levels)
    huge = rng.poisson(1e9, n_time).astype(float)
    huge[levels == 4] = 0.0
    counts = np.ascontiguousarray(np.stack([huge, rng.poisson(4.0, n_time).astype(float)]))
    resolved = [kf._factor_task(n_time, levels, y, 10, 5, True, 1.0, True, 2.58, 1)[0] for y in counts]
    assert resolved == [False, True]
    ours = _farrington(counts, dense_only=False)
    want = _farrington(counts, dense_only=True)
    names = ("expected", "upperbound", "score", "p_value", "phi", "trend", "alarm", "status")
    for name, a, b in zip(names, ours, want, strict=True):
        assert a[0] == b[0], name  # the QR itself
        np.testing.assert_allclose(a[1], b[1], rtol=1e-9, atol=1e-12, err_msg=name)
    assert (ours[7] == kf.STATUS_OK).all()
