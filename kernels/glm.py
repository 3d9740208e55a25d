"""Poisson / quasi-Poisson regression with the log link, fitted as R's ``glm`` fits it.

``fit_poisson_log`` is iteratively reweighted least squares with the steps, start and stopping rule
of ``glm.fit`` (McCullagh and Nelder 1989; R's documented defaults): start at ``mu = y + 0.1``; each
iteration solves the weighted least-squares problem of the working response
``z = eta + (y - mu) / mu`` with working weights ``prior * mu`` by a Householder QR; stop when the
deviance changes by less than ``1e-8 * (|deviance| + 0.1)``, after at most 25 iterations; halve the
step when the deviance is not finite. Like ``glm.fit`` it returns the working weights and the QR of
the *last* iteration (computed at the fitted values before its update), which is what R's
dispersion, hat values and standard errors use, so the numbers agree with R's to rounding.

The design is a dense ``n x p`` float64 matrix (p is small: an intercept, a trend, a few seasonal
columns); rows with prior weight 0 take no part. A column whose remaining norm falls below
``1e-11`` of its own norm (R's ``dqrdc2`` tolerance) makes the fit rank deficient: the kernel
reports that instead of pivoting it away.
"""

from __future__ import annotations

import math

import numpy as np

from citygrid.kernels._jit import njit

#: Outcomes of a fit.
FIT_CONVERGED = 0
FIT_NOT_CONVERGED = 1
FIT_RANK_DEFICIENT = 2
FIT_FAILED = 3

MAX_ITERATIONS = 25
EPSILON = 1e-8
RANK_TOLERANCE = 1e-11
_DOUBLE_EPS = 2.220446049250313e-16


@njit
def poisson_deviance(y, mu, prior):
    """Sum of the Poisson deviance residuals ``2 w (y log(y/mu) - (y - mu))`` (``2 w mu`` at y = 0)."""
    dev = 0.0
    for i in range(y.shape[0]):
        if y[i] > 0.0:
            dev += 2.0 * prior[i] * (y[i] * math.log(y[i] / mu[i]) - (y[i] - mu[i]))
        else:
            dev += 2.0 * prior[i] * mu[i]
    return dev


@njit
def _weighted_least_squares(X, z, w, scratch, rhs, r_out, coef_out):
    """Solve min ||w*(X c - z)|| by Householder QR of diag(w) X; R factor into r_out.

    Returns False when a column is numerically dependent on the ones before it.
    """
    n, p = X.shape
    for i in range(n):
        for j in range(p):
            scratch[i, j] = X[i, j] * w[i]
        rhs[i] = z[i] * w[i]
    for j in range(p):
        norm0 = 0.0
        for i in range(n):
            norm0 += X[i, j] * w[i] * X[i, j] * w[i]
        norm0 = math.sqrt(norm0)
        sigma = 0.0
        for i in range(j, n):
            sigma += scratch[i, j] * scratch[i, j]
        alpha = math.sqrt(sigma)
        if alpha <= RANK_TOLERANCE * norm0 or alpha == 0.0:
            return False
        if scratch[j, j] > 0.0:
            alpha = -alpha
        # v = x - alpha e1, stored in place; H = I - 2 v v^T / (v^T v)
        scratch[j, j] -= alpha
        vtv = sigma - 2.0 * alpha * (scratch[j, j] + alpha) + alpha * alpha
        # (x - a e1)^T (x - a e1) = sigma - 2 a x_j + a^2 with x_j the original entry
        if vtv <= 0.0:
            return False
        for k in range(j + 1, p):
            dot = 0.0
            for i in range(j, n):
                dot += scratch[i, j] * scratch[i, k]
            f = 2.0 * dot / vtv
            for i in range(j, n):
                scratch[i, k] -= f * scratch[i, j]
        dot = 0.0
        for i in range(j, n):
            dot += scratch[i, j] * rhs[i]
        f = 2.0 * dot / vtv
        for i in range(j, n):
            rhs[i] -= f * scratch[i, j]
        r_out[j, j] = alpha
        for k in range(j + 1, p):
            r_out[j, k] = scratch[j, k]
        for k in range(j):
            r_out[j, k] = 0.0
    for j in range(p - 1, -1, -1):
        s = rhs[j]
        for k in range(j + 1, p):
            s -= r_out[j, k] * coef_out[k]
        coef_out[j] = s / r_out[j, j]
    return True


@njit
def fit_poisson_log(X, y, prior, coef_out, mu_out, eta_out, work_weights_out, r_out):
    """Fit log E[y] = X coef by IRLS as R's glm.fit does; returns one of the FIT_* codes.

    Writes the coefficients, the fitted means and linear predictor, the working weights of the last
    iteration (0 where the prior weight is 0) and the upper-triangular R of its QR.
    """
    n, p = X.shape
    scratch = np.empty((n, p))
    rhs = np.empty(n)
    z = np.empty(n)
    w = np.empty(n)
    coef_old = np.zeros(p)
    have_old = False
    for i in range(n):
        eta_out[i] = math.log(y[i] + 0.1)
        mu_out[i] = max(math.exp(eta_out[i]), _DOUBLE_EPS)
    dev_old = poisson_deviance(y, mu_out, prior)
    converged = False
    for _ in range(MAX_ITERATIONS):
        for i in range(n):
            mu_eta = max(math.exp(eta_out[i]), _DOUBLE_EPS)
            if prior[i] > 0.0:
                z[i] = eta_out[i] + (y[i] - mu_out[i]) / mu_eta
                w[i] = math.sqrt(prior[i] * mu_eta * mu_eta / mu_out[i])
            else:
                z[i] = 0.0
                w[i] = 0.0
        if not _weighted_least_squares(X, z, w, scratch, rhs, r_out, coef_out):
            return FIT_RANK_DEFICIENT
        for i in range(n):
            work_weights_out[i] = w[i] * w[i]
        dev = _update_fit(X, y, prior, coef_out, mu_out, eta_out)
        halvings = 0
        while not math.isfinite(dev):
            if not have_old or halvings >= MAX_ITERATIONS:
                return FIT_FAILED
            for j in range(p):
                coef_out[j] = 0.5 * (coef_out[j] + coef_old[j])
            dev = _update_fit(X, y, prior, coef_out, mu_out, eta_out)
            halvings += 1
        if abs(dev - dev_old) / (abs(dev) + 0.1) < EPSILON:
            converged = True
            break
        dev_old = dev
        for j in range(p):
            coef_old[j] = coef_out[j]
        have_old = True
    return FIT_CONVERGED if converged else FIT_NOT_CONVERGED


@njit
def _update_fit(X, y, prior, coef, mu_out, eta_out):
    n, p = X.shape
    for i in range(n):
        e = 0.0
        for j in range(p):
            e += X[i, j] * coef[j]
        eta_out[i] = e
        m = math.exp(e)
        mu_out[i] = m if m > _DOUBLE_EPS else _DOUBLE_EPS
    for i in range(n):
        if not math.isfinite(mu_out[i]):
            return np.inf
    return poisson_deviance(y, mu_out, prior)


@njit
def pearson_dispersion(y, mu, work_weights, rank):
    """R's quasi-Poisson dispersion: sum(wt * ((y - mu) / mu)^2) / (n_ok - rank) over wt > 0.

    NaN when there are no residual degrees of freedom.
    """
    total = 0.0
    n_ok = 0
    for i in range(y.shape[0]):
        if work_weights[i] > 0.0:
            r = (y[i] - mu[i]) / mu[i]
            total += work_weights[i] * r * r
            n_ok += 1
    df = n_ok - rank
    if df <= 0:
        return np.nan
    return total / df


@njit
def residual_df(work_weights, rank):
    n_ok = 0
    for i in range(work_weights.shape[0]):
        if work_weights[i] > 0.0:
            n_ok += 1
    return n_ok - rank


@njit
def solve_upper_transposed(r, x, out):
    """out = R^{-T} x for an upper-triangular R (forward substitution)."""
    p = r.shape[0]
    for j in range(p):
        s = x[j]
        for k in range(j):
            s -= r[k, j] * out[k]
        out[j] = s / r[j, j]


@njit
def quadratic_form_inverse(r, x, scratch):
    """x^T (R^T R)^{-1} x = ||R^{-T} x||^2."""
    solve_upper_transposed(r, x, scratch)
    s = 0.0
    for j in range(r.shape[0]):
        s += scratch[j] * scratch[j]
    return s


@njit
def hat_values(X, work_weights, r, out):
    """Diagonal of the weighted hat matrix W^1/2 X (X^T W X)^-1 X^T W^1/2 of the last IRLS step."""
    n, p = X.shape
    row = np.empty(p)
    scratch = np.empty(p)
    for i in range(n):
        if work_weights[i] > 0.0:
            sw = math.sqrt(work_weights[i])
            for j in range(p):
                row[j] = X[i, j] * sw
            out[i] = quadratic_form_inverse(r, row, scratch)
        else:
            out[i] = 0.0
