"""Poisson regression with the log link for a one-way layout with a common trend,
``log E[y_i] = a_g(i) + b t_i``, fitted by R ``glm``'s iterations in O(rows + groups) each.

This is the model of Farrington's method: R writes it as an intercept, a trend and treatment
dummies of a factor (the lowest present level the reference), which spans the same columns as one
indicator per group plus the trend. In that second (cell-means) form the weighted normal equations
of an IRLS step are an arrowhead matrix

    X'WX = [[D, u], [u', s]],  D = diag(S_g),  S_g = sum_g w,  u_g = sum_g w t,  s = sum w t^2,

so one pass over the rows gives every sum, and the step is solved in O(groups) by the scalar Schur
complement ``sigma = s - sum_g u_g^2 / S_g`` (the weighted within-group sum of squares of t):
``b = (sum w t z - sum_g u_g zbar_g) / sigma`` and ``a_g = zbar_g - b m_g`` with ``zbar_g`` and
``m_g = u_g / S_g`` the group's weighted means of the working response and of t. Its inverse is as
simple: for a row of group g at time t, ``x' (X'WX)^-1 x = 1 / S_g + (t - m_g)^2 / sigma`` (hat
values, the prediction's standard error) and the trend's variance is ``1 / sigma``.

Everything else is :func:`citygrid.kernels.glm.fit_poisson_log`'s: the start at ``mu = y + 0.1``,
working response and weights, the deviance rule (``1e-8``, 25 iterations), step halving on a non-finite
deviance, and the weights of the last iteration kept. The iterates are the same in exact arithmetic,
so the answers agree with R's to rounding (the tests hold it to the R fixtures).

R's QR reports a column as dependent when its norm left after the columns before it falls below
``1e-11`` of its own. Normal equations cannot resolve such a near-dependence, so the fit returns
``FIT_UNRESOLVED`` whenever a column of R's form could come anywhere near that (a group whose weights
are below ``1e-14`` of the total once the reference level is that small, or a trend whose
within-group spread is below ``1e-14`` of its second moment); the caller then fits R's form by
Householder QR (:mod:`citygrid.kernels.glm`), which decides exactly as R does.
"""

from __future__ import annotations

import math

import numpy as np

from citygrid.kernels._jit import njit
from citygrid.kernels.glm import (
    _DOUBLE_EPS,
    EPSILON,
    FIT_CONVERGED,
    FIT_FAILED,
    FIT_NOT_CONVERGED,
    MAX_ITERATIONS,
    poisson_deviance,
)

#: The structure cannot tell whether R's QR would find the design rank deficient (see the module).
FIT_UNRESOLVED = 4
#: Smallest relative pivot the normal equations may leave (R's QR refuses below 1e-22 squared).
GUARD = 1e-14


@njit
def _step(group, t, y, prior, mu, eta, n_groups, with_trend, z, wt, s0, u, zs, coef):
    """One IRLS solve at the current fit; writes the new coefficients, the working weights and the
    group sums; returns (sigma, ok). ``coef[n_groups]`` is the trend (0 without one)."""
    n = y.shape[0]
    for g in range(n_groups):
        s0[g] = 0.0
        u[g] = 0.0
        zs[g] = 0.0
    s2 = 0.0
    tz = 0.0
    for i in range(n):
        if prior[i] > 0.0:
            m = mu[i]
            zi = eta[i] + (y[i] - m) / m
            v = prior[i] * m
        else:
            zi = 0.0
            v = 0.0
        z[i] = zi
        wt[i] = v
        g = group[i]
        ti = t[i]
        s0[g] += v
        u[g] += v * ti
        zs[g] += v * zi
        s2 += v * ti * ti
        tz += v * ti * zi
    total = 0.0
    smallest = np.inf
    for g in range(n_groups):
        total += s0[g]
        if s0[g] < smallest:
            smallest = s0[g]
    if not (smallest > 0.0) or smallest < GUARD * total:
        return 0.0, False
    b = 0.0
    sigma = 0.0
    if with_trend:
        sigma = s2
        num = tz
        for g in range(n_groups):
            sigma -= u[g] * u[g] / s0[g]
            num -= u[g] * zs[g] / s0[g]
        if not (sigma > GUARD * s2):
            return sigma, False
        b = num / sigma
    for g in range(n_groups):
        coef[g] = (zs[g] - b * u[g]) / s0[g]
    coef[n_groups] = b
    return sigma, True


@njit
def _update(group, t, y, prior, coef, n_groups, mu, eta):
    """The fit at ``coef``; returns its deviance (inf when a mean is not finite)."""
    b = coef[n_groups]
    finite = True
    for i in range(y.shape[0]):
        e = coef[group[i]] + b * t[i]
        eta[i] = e
        m = math.exp(e)
        if m > _DOUBLE_EPS:
            mu[i] = m
        else:
            mu[i] = _DOUBLE_EPS
        if not math.isfinite(m):
            finite = False
    if not finite:
        return np.inf
    return poisson_deviance(y, mu, prior)


@njit
def fit_factor_trend(group, t, y, prior, n_groups, with_trend, coef, mu, eta, wt, s0, mean_t, z, u, zs):
    """Fit ``log E[y] = a_group + b t`` (``b`` = 0 without a trend) as R's glm.fit; returns a FIT_* code.

    ``group`` holds each row's group in 0..n_groups-1 (every group has a row), ``t`` its time
    (any origin). Writes ``coef`` (n_groups + 1: the groups' effects, then the trend), the fitted
    means and linear predictor, the working weights of the last iteration in ``wt`` and, from that
    iteration, each group's weight sum ``s0`` and weighted mean time ``mean_t``; returns
    (code, sigma) with ``sigma`` the within-group weighted sum of squares of t (see the module).
    ``z``, ``u``, ``zs`` are scratch (n, n_groups, n_groups).
    """
    n = y.shape[0]
    coef_old = np.zeros(n_groups + 1)
    have_old = False
    for i in range(n):
        eta[i] = math.log(y[i] + 0.1)
        mu[i] = max(math.exp(eta[i]), _DOUBLE_EPS)
    dev_old = poisson_deviance(y, mu, prior)
    converged = False
    sigma = 0.0
    for _ in range(MAX_ITERATIONS):
        sigma, ok = _step(group, t, y, prior, mu, eta, n_groups, with_trend, z, wt, s0, u, zs, coef)
        if not ok:
            return FIT_UNRESOLVED, sigma
        for g in range(n_groups):
            mean_t[g] = u[g] / s0[g]
        dev = _update(group, t, y, prior, coef, n_groups, mu, eta)
        halvings = 0
        while not math.isfinite(dev):
            if not have_old or halvings >= MAX_ITERATIONS:
                return FIT_FAILED, sigma
            for j in range(n_groups + 1):
                coef[j] = 0.5 * (coef[j] + coef_old[j])
            dev = _update(group, t, y, prior, coef, n_groups, mu, eta)
            halvings += 1
        if abs(dev - dev_old) / (abs(dev) + 0.1) < EPSILON:
            converged = True
            break
        dev_old = dev
        for j in range(n_groups + 1):
            coef_old[j] = coef[j]
        have_old = True
    return (FIT_CONVERGED if converged else FIT_NOT_CONVERGED), sigma


@njit
def leverage(g, ti, s0, mean_t, sigma, with_trend):
    """x' (X'WX)^-1 x for a row of group g at time ti (multiply by its weight for the hat value)."""
    q = 1.0 / s0[g]
    if with_trend:
        d = ti - mean_t[g]
        q += d * d / sigma
    return q
