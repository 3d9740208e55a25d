"""The Farrington flexible detector (Farrington et al. 1996; Noufaily et al. 2013) over a series matrix.

For each monitored period ``k`` of each series, one task (the tasks run in parallel):

1. **Reference periods.** Times are 1-based as in the papers. The periods ``k - i*freq`` (i = 1..b)
   and their ``w`` neighbours on each side are the comparable periods (level ``noPeriods``), as
   are ``k - w .. k``. With ``noPeriods > 1`` the ``freq - 2w - 1`` periods between two comparable
   windows are cut into ``noPeriods - 1`` consecutive blocks (levels 1, 2, ...; the first
   ``(freq - 2w - 1) mod (noPeriods - 1)`` blocks one period longer), so every past period back to
   ``k - b*freq - w`` is used (Noufaily et al.'s 10-level factor). The last
   ``past_excluded`` periods before ``k`` and ``k`` itself are left out.
2. **Model.** A quasi-Poisson log-linear model with an intercept, a linear trend in ``t`` (when
   ``trend``), and the block factor (treatment contrasts, the lowest present level as reference),
   fitted with R glm.fit's iterations in the structured form of :mod:`citygrid.kernels.factor_glm`
   (one effect per level and the trend: O(rows + levels) an iteration), or by
   :func:`citygrid.kernels.glm.fit_poisson_log` on R's design when that form cannot resolve a
   near-dependence R's QR would judge. If it does not converge with the trend it
   is refitted without; if it still does not converge the period gets no result (status 1).
   Dispersion ``phi = max(1, Pearson chi^2 / df)``.
3. **Down-weighting past outbreaks** (``reweight``): Anscombe residuals
   ``s = 3/2 (y^(2/3) mu^(-1/6) - mu^(1/2)) / sqrt(phi (1 - h))``; weights ``gamma s^-2`` where
   ``s > threshold``, ``gamma`` elsewhere, ``gamma`` making them sum to n; refit with these prior
   weights and re-estimate ``phi``.
4. **Trend.** Kept only when ``b >= 3``, its two-sided t-test p-value (residual df, dispersion
   estimated) is below ``p_trend``, and the prediction at ``k`` does not exceed the largest
   reference count; otherwise steps 2-3 are redone without it.
5. **Threshold** at the prediction ``eta0 = x_k' beta`` (level ``noPeriods``), alpha one-sided:
   ``"nbplugin"`` (Noufaily): the (1 - alpha) quantile of a negative binomial with mean
   ``exp(eta0)`` and variance ``phi`` times the mean (Poisson when ``phi = 1``); ``"muan"``: the
   same with the mean ``exp(eta0 + z se(eta0))``; ``"delta"`` (Farrington): the power-transformed
   normal bound ``(mu0^e + z sqrt(var))^(1/e)`` with ``tau = phi + se(mu0)^2 / mu0`` and
   ``e`` = 1, 1/2 or 2/3.
6. **Alarm** when the exceedance score ``(y - f) / (U - f)`` exceeds 1, the count is not 0 and at
   least ``limit_cases`` were counted in the ``limit_periods`` periods ending at ``k``. As in R's
   ``surveillance``, ``f`` is the prediction on the scale the threshold method works on: the link
   scale ``eta0`` for ``nbplugin`` and ``muan``, the mean ``mu0`` for ``delta``.

Kernels take flat buffers, write into caller-allocated outputs and never validate.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from citygrid.kernels._jit import njit, pnjit
from citygrid.kernels.distributions import (
    nbinom_quantile,
    nbinom_upper_tail,
    normal_upper_tail,
    poisson_quantile,
    poisson_upper_tail,
    student_t_two_sided,
)
from citygrid.kernels.factor_glm import FIT_UNRESOLVED, fit_factor_trend, leverage
from citygrid.kernels.glm import (
    FIT_CONVERGED,
    FIT_NOT_CONVERGED,
    fit_poisson_log,
    hat_values,
    pearson_dispersion,
    quadratic_form_inverse,
    residual_df,
)

#: Threshold methods (``method`` argument).
THRESHOLD_DELTA = 0
THRESHOLD_NBPLUGIN = 1
THRESHOLD_MUAN = 2
#: Power transformations of the delta method (``power`` argument): exponent 1, 1/2, 2/3.
POWER_NONE = 0
POWER_HALF = 1
POWER_TWO_THIRDS = 2
#: Dispersion of the standard errors and the trend test after reweighting: the Pearson statistic
#: with the working weights (published), or with the down-weighting weights in their place as R
#: ``surveillance`` 1.20 does (it overwrites the fit's weights before summarising it).
DISPERSION_PUBLISHED = 0
DISPERSION_SURVEILLANCE = 1
#: Status of a period's result.
STATUS_OK = 0
STATUS_NO_FIT = 1


@njit
def reference_levels(k, n_periods_factor, b, w, freq, past_excluded, levels):
    """Fill ``levels[0:k]`` (1-based time t at index t-1) with the block level of each past period,
    0 where the period is not used. ``k`` is 1-based; requires ``k - b*freq - w >= 1``."""
    for t in range(k):
        levels[t] = 0
    p = n_periods_factor
    for t in range(k - w, k + 1):
        levels[t - 1] = p
    for i in range(1, b + 1):
        ref = k - i * freq
        for t in range(ref - w, ref + w + 1):
            levels[t - 1] = p
        if p != 1:
            gap = freq - 2 * w - 1
            size = gap // (p - 1)
            rest = gap % (p - 1)
            t = ref + w + 1
            for j in range(1, p):
                length = size + (1 if j <= rest else 0)
                for _ in range(length):
                    levels[t - 1] = j
                    t += 1
    lo = k - past_excluded
    if lo < 1:
        lo = 1
    for t in range(lo, k + 1):
        levels[t - 1] = 0


@njit
def _design(k, levels, y_series, with_trend, p_level, X, y, x0):
    """Build the design over the used periods; returns (n, n_columns, max response)."""
    # Present levels, in increasing order (the lowest is the reference level).
    present = np.zeros(p_level + 1, np.bool_)
    n = 0
    for t in range(k):
        if levels[t] > 0:
            present[levels[t]] = True
            n += 1
    col_of = np.full(p_level + 1, -1, np.int64)
    ncol = 2 if with_trend else 1
    first = True
    for lev in range(1, p_level + 1):
        if present[lev]:
            if first:
                first = False
            else:
                col_of[lev] = ncol
                ncol += 1
    row = 0
    ymax = -np.inf
    for t in range(k):
        lev = levels[t]
        if lev > 0:
            for j in range(ncol):
                X[row, j] = 0.0
            X[row, 0] = 1.0
            if with_trend:
                X[row, 1] = t + 1.0
            if col_of[lev] >= 0:
                X[row, col_of[lev]] = 1.0
            y[row] = y_series[t]
            if y_series[t] > ymax:
                ymax = y_series[t]
            row += 1
    for j in range(ncol):
        x0[j] = 0.0
    x0[0] = 1.0
    if with_trend:
        x0[1] = k * 1.0
    if col_of[p_level] >= 0:
        x0[col_of[p_level]] = 1.0
    return n, ncol, ymax


@njit
def _outbreak_weights(y, mu, hat, phi, weights_threshold, prior):
    """Step 3's prior weights from the Anscombe residuals of a fit (``hat`` its hat values)."""
    n = y.shape[0]
    total = 0.0
    for i in range(n):
        if y[i] > 0.0:
            a = 1.5 * (y[i] ** (2.0 / 3.0) * mu[i] ** (-1.0 / 6.0) - math.sqrt(mu[i]))
        else:
            a = -1.5 * math.sqrt(mu[i])  # the same number, without two powers: the first term is 0
        s = a / math.sqrt(phi * (1.0 - hat[i]))
        if s > weights_threshold:
            prior[i] = 1.0 / (s * s)
        else:
            prior[i] = 1.0
        total += prior[i]
    gamma = n / total
    for i in range(n):
        prior[i] *= gamma


@njit
def _fit_flexible(X, y, reweight, weights_threshold, dispersion_rule, coef, mu, eta, wt, r, prior, hat):
    """Steps 2-3 on a design; returns (status code, phi, the dispersion standard errors use)."""
    n, p = X.shape
    for i in range(n):
        prior[i] = 1.0
    code = fit_poisson_log(X, y, prior, coef, mu, eta, wt, r)
    if code != FIT_CONVERGED:
        return code, np.nan, np.nan
    disp = pearson_dispersion(y, mu, wt, p)
    phi = max(disp, 1.0) if disp == disp else np.nan
    if reweight:
        hat_values(X, wt, r, hat)
        _outbreak_weights(y, mu, hat, phi, weights_threshold, prior)
        code2 = fit_poisson_log(X, y, prior, coef, mu, eta, wt, r)
        if code2 > 1:  # rank deficient or failed; non-convergence of the refit is accepted, as in R
            return code2, np.nan, np.nan
        disp = pearson_dispersion(y, mu, wt, p)
        phi = max(disp, 1.0) if disp == disp else np.nan
        if dispersion_rule == DISPERSION_SURVEILLANCE:
            disp = _prior_weighted_dispersion(y, mu, prior, wt, p)
    return FIT_CONVERGED, phi, disp


@njit
def _prior_weighted_dispersion(y, mu, prior, wt, rank):
    """R surveillance's dispersion after reweighting: sum(omega ((y - mu) / mu)^2) / df."""
    total = 0.0
    for i in range(y.shape[0]):
        if prior[i] > 0.0:
            r = (y[i] - mu[i]) / mu[i]
            total += prior[i] * r * r
    df = residual_df(wt, rank)
    return total / df if df > 0 else np.nan


@njit
def _fit_design(k, levels, y_series, with_trend, n_levels, reweight, weights_threshold, dispersion_rule,
                Xfull, yfull, x0, coef, mu, eta, wt, r, prior, hat):
    """Design and steps 2-3; returns (code, phi, dispersion, n rows, n columns, largest count)."""
    n, ncol, ymax = _design(k, levels, y_series, with_trend, n_levels, Xfull, yfull, x0)
    code, phi, disp = _fit_flexible(Xfull[:n, :ncol], yfull[:n], reweight, weights_threshold, dispersion_rule,
                                    coef[:ncol], mu[:n], eta[:n], wt[:n], r[:ncol, :ncol], prior[:n], hat[:n])
    return code, phi, disp, n, ncol, ymax


@njit
def _keep_trend(b, p_trend, disp, n, ncol, ymax, x0, coef, wt, r, scratch):
    """Step 4: b >= 3, the trend's t-test below p_trend, and no extrapolation beyond the largest count."""
    eta0 = 0.0
    for j in range(ncol):
        eta0 += x0[j] * coef[j]
    unit = np.zeros(ncol)
    unit[1] = 1.0
    se = math.sqrt(disp * quadratic_form_inverse(r[:ncol, :ncol], unit, scratch[:ncol]))
    tval = coef[1] / se if se > 0.0 else (np.inf if coef[1] != 0.0 else np.nan)
    pv = student_t_two_sided(tval, residual_df(wt[:n], ncol) * 1.0)
    return b >= 3 and pv < p_trend and math.exp(eta0) <= ymax


@njit
def _threshold(method, power, z, alpha, eta0, se_eta, phi, y_now):
    """Step 5: (upper bound, P(Y >= y), the prediction on the threshold's scale)."""
    mu0 = math.exp(eta0)
    if method == THRESHOLD_DELTA:
        se_mu = mu0 * se_eta
        tau = phi + se_mu * se_mu / mu0
        if power == POWER_NONE:
            e = 1.0
            sd = math.sqrt(mu0 * tau)
        elif power == POWER_HALF:
            e = 0.5
            sd = math.sqrt(0.25 * tau)
        else:
            e = 2.0 / 3.0
            sd = math.sqrt(4.0 / 9.0 * mu0 ** (1.0 / 3.0) * tau)
        upper = (mu0 ** e + z * sd) ** (1.0 / e)
        return upper, normal_upper_tail((y_now ** e - mu0 ** e) / sd), mu0
    mq = mu0 if method == THRESHOLD_NBPLUGIN else math.exp(eta0 + z * se_eta)
    if not math.isfinite(mq):
        return np.nan, np.nan, eta0
    if phi > 1.0:
        size = mq / (phi - 1.0)
        return nbinom_quantile(1.0 - alpha, size, 1.0 / phi), nbinom_upper_tail(y_now, size, 1.0 / phi), eta0
    return poisson_quantile(1.0 - alpha, mq), poisson_upper_tail(y_now, mq), eta0


@njit
def _factor_rows(k, levels, y_series, n_levels, group, t, y):
    """The used periods as groups (the present levels in increasing order), centred times and counts;
    returns (rows, groups, the prediction's group, its centred time, the largest count)."""
    index = np.full(n_levels + 1, -1, np.int64)
    n = 0
    total_t = 0.0
    for tt in range(k):
        if levels[tt] > 0:
            index[levels[tt]] = 0
            n += 1
            total_t += tt + 1.0
    n_groups = 0
    for lev in range(1, n_levels + 1):
        if index[lev] == 0:
            index[lev] = n_groups
            n_groups += 1
    centre = total_t / n
    row = 0
    ymax = -np.inf
    for tt in range(k):
        lev = levels[tt]
        if lev > 0:
            group[row] = index[lev]
            t[row] = tt + 1.0 - centre
            y[row] = y_series[tt]
            if y_series[tt] > ymax:
                ymax = y_series[tt]
            row += 1
    # R's prediction row carries the dummy of level n_levels, or none (the reference) when it is absent
    g0 = index[n_levels] if index[n_levels] >= 0 else 0
    return n, n_groups, g0, k - centre, ymax


@njit
def _fit_flexible_factor(group, t, y, n_groups, with_trend, reweight, weights_threshold, dispersion_rule, buffers):
    """Steps 2-3 in the structured form; returns (code, phi, dispersion, sigma), code FIT_UNRESOLVED
    when the structure cannot stand in for R's QR. ``buffers``: (coef, mu, eta, wt, prior, hat) of the
    rows' and groups' sizes and the fit's scratch (s0, mean_t, z, u, zs); coef, wt, s0 and mean_t are
    read after the call."""
    coef, mu, eta, wt, prior, hat, s0, mean_t, z, u, zs = buffers
    n = y.shape[0]
    rank = n_groups + (1 if with_trend else 0)
    for i in range(n):
        prior[i] = 1.0
    code, sigma = fit_factor_trend(group, t, y, prior, n_groups, with_trend, coef, mu, eta, wt, s0, mean_t, z, u, zs)
    if code != FIT_CONVERGED:
        return code, np.nan, np.nan, sigma
    disp = pearson_dispersion(y, mu, wt, rank)
    phi = max(disp, 1.0) if disp == disp else np.nan
    if reweight:
        for i in range(n):
            hat[i] = wt[i] * leverage(group[i], t[i], s0, mean_t, sigma, with_trend) if wt[i] > 0.0 else 0.0
        _outbreak_weights(y, mu, hat, phi, weights_threshold, prior)
        code2, sigma = fit_factor_trend(group, t, y, prior, n_groups, with_trend, coef, mu, eta, wt, s0, mean_t,
                                        z, u, zs)
        if code2 > FIT_NOT_CONVERGED:  # unresolved, rank deficient or failed; R accepts a refit not converged
            return code2, np.nan, np.nan, sigma
        disp = pearson_dispersion(y, mu, wt, rank)
        phi = max(disp, 1.0) if disp == disp else np.nan
        if dispersion_rule == DISPERSION_SURVEILLANCE:
            disp = _prior_weighted_dispersion(y, mu, prior, wt, rank)
    return FIT_CONVERGED, phi, disp, sigma


@njit
def _factor_task(k, levels, y_series, n_levels, b, trend, p_trend, reweight, weights_threshold, dispersion_rule):
    """Steps 2-4 in the structured form; returns (resolved, code, phi, dispersion, eta0,
    x0' (X'WX)^-1 x0, trend kept); not resolved: fit R's design instead."""
    group = np.empty(k, np.int64)
    t = np.empty(k)
    y = np.empty(k)
    n, n_groups, g0, t0, ymax = _factor_rows(k, levels, y_series, n_levels, group, t, y)
    group = group[:n]
    t = t[:n]
    y = y[:n]
    coef = np.empty(n_groups + 1)
    wt = np.empty(n)
    s0 = np.empty(n_groups)
    mean_t = np.empty(n_groups)
    buffers = (coef, np.empty(n), np.empty(n), wt, np.empty(n), np.empty(n), s0, mean_t, np.empty(n),
               np.empty(n_groups), np.empty(n_groups))
    with_trend = trend
    code, phi, disp, sigma = _fit_flexible_factor(group, t, y, n_groups, with_trend, reweight, weights_threshold,
                                                  dispersion_rule, buffers)
    if code != FIT_CONVERGED and code != FIT_UNRESOLVED and with_trend:
        with_trend = False
        code, phi, disp, sigma = _fit_flexible_factor(group, t, y, n_groups, False, reweight, weights_threshold,
                                                      dispersion_rule, buffers)
    kept_trend = False
    if code == FIT_CONVERGED and with_trend:
        # step 4: b >= 3, the trend's t-test below p_trend, and no extrapolation beyond the largest count
        eta0 = coef[g0] + coef[n_groups] * t0
        se = math.sqrt(disp / sigma)
        slope = coef[n_groups]
        tval = slope / se if se > 0.0 else (np.inf if slope != 0.0 else np.nan)
        pv = student_t_two_sided(tval, residual_df(wt, n_groups + 1) * 1.0)
        kept_trend = b >= 3 and pv < p_trend and math.exp(eta0) <= ymax
        if not kept_trend:
            with_trend = False
            code, phi, disp, sigma = _fit_flexible_factor(group, t, y, n_groups, False, reweight,
                                                          weights_threshold, dispersion_rule, buffers)
    if code == FIT_UNRESOLVED:
        return False, code, np.nan, np.nan, np.nan, np.nan, False
    if code != FIT_CONVERGED:
        return True, code, np.nan, np.nan, np.nan, np.nan, False
    eta0 = coef[g0] + (coef[n_groups] * t0 if with_trend else 0.0)
    return True, code, phi, disp, eta0, leverage(g0, t0, s0, mean_t, sigma, with_trend), kept_trend


@njit
def _dense_task(k, levels, y_series, n_levels, b, trend, p_trend, reweight, weights_threshold, dispersion_rule,
                Xfull, yfull, x0, coef, mu, eta, wt, r, prior, hat, scratch):
    """Steps 2-4 on R's own design (intercept, trend, treatment dummies) by Householder QR; returns
    (code, phi, dispersion, eta0, x0' (X'WX)^-1 x0, trend kept)."""
    with_trend = trend
    code, phi, disp, n, ncol, ymax = _fit_design(k, levels, y_series, with_trend, n_levels, reweight,
                                                 weights_threshold, dispersion_rule, Xfull, yfull, x0,
                                                 coef, mu, eta, wt, r, prior, hat)
    if code != FIT_CONVERGED and with_trend:
        with_trend = False
        code, phi, disp, n, ncol, ymax = _fit_design(k, levels, y_series, False, n_levels, reweight,
                                                     weights_threshold, dispersion_rule, Xfull, yfull, x0,
                                                     coef, mu, eta, wt, r, prior, hat)
    kept_trend = False
    if code == FIT_CONVERGED and with_trend:
        kept_trend = _keep_trend(b, p_trend, disp, n, ncol, ymax, x0, coef, wt, r, scratch)
        if not kept_trend:
            code, phi, disp, n, ncol, ymax = _fit_design(k, levels, y_series, False, n_levels, reweight,
                                                         weights_threshold, dispersion_rule, Xfull, yfull,
                                                         x0, coef, mu, eta, wt, r, prior, hat)
    if code != FIT_CONVERGED:
        return code, np.nan, np.nan, np.nan, np.nan, False
    eta0 = 0.0
    for j in range(ncol):
        eta0 += x0[j] * coef[j]
    return code, phi, disp, eta0, quadratic_form_inverse(r[:ncol, :ncol], x0[:ncol], scratch[:ncol]), kept_trend


@njit
def _judge(task, method, power, z, alpha, limit_cases, limit_periods, k, y_series, code, phi, disp, eta0, q0,
           kept_trend, expected, upperbound, score, pvalue, phi_out, trend_out, alarm, status):
    """Steps 5-6 for one task from its fit: the prediction eta0 and q0 = x0' (X'WX)^-1 x0."""
    y_now = y_series[k - 1]
    if code != FIT_CONVERGED:
        status[task] = STATUS_NO_FIT
        expected[task] = upperbound[task] = score[task] = pvalue[task] = phi_out[task] = np.nan
        trend_out[task] = 0
        alarm[task] = 0
        return
    se_eta = math.sqrt(disp * q0)
    upper, prob, fit_scale = _threshold(method, power, z, alpha, eta0, se_eta, phi, y_now)
    denom = upper - fit_scale
    if denom != 0.0:
        x = (y_now - fit_scale) / denom
    else:
        x = np.nan if y_now == fit_scale else math.copysign(np.inf, y_now - fit_scale)
    recent = 0.0
    for t in range(k - limit_periods, k):
        recent += y_series[t]
    status[task] = STATUS_OK
    expected[task] = math.exp(eta0)
    upperbound[task] = upper
    score[task] = x
    pvalue[task] = prob
    phi_out[task] = phi
    trend_out[task] = 1 if kept_trend else 0
    alarm[task] = 1 if (recent >= limit_cases and x > 1.0 and y_now != 0.0) else 0


@pnjit
def detect_farrington(
    counts, task_series, task_time,
    b, w, freq, n_levels, past_excluded,
    reweight, weights_threshold, trend, p_trend,
    method, power, z, alpha, dispersion_rule,
    limit_cases, limit_periods,
    expected, upperbound, score, pvalue, phi_out, trend_out, alarm, status,
):
    """Farrington flexible for the tasks (task_series[i], task_time[i]) (0-based time index).

    Writes per task: expected (exp(eta0)), upperbound, score, pvalue (P(Y >= y) under the
    threshold's distribution), phi, trend_out (1 when the trend was kept), alarm (0/1), status.
    ``z`` is the standard normal (1 - alpha) quantile. Each task is fitted in the structured form of
    :mod:`citygrid.kernels.factor_glm`; a task whose fits that form cannot resolve is fitted on R's
    design by QR instead (:func:`_dense_task`).
    """
    n_tasks = task_series.shape[0]
    n_time = counts.shape[1]
    max_cols = 2 + n_levels
    for task in prange(n_tasks):
        k = task_time[task] + 1
        y_series = counts[task_series[task]]
        levels = np.zeros(n_time, np.int64)
        reference_levels(k, n_levels, b, w, freq, past_excluded, levels)
        resolved, code, phi, disp, eta0, q0, kept_trend = _factor_task(
            k, levels, y_series, n_levels, b, trend, p_trend, reweight, weights_threshold, dispersion_rule)
        if not resolved:
            code, phi, disp, eta0, q0, kept_trend = _dense_task(
                k, levels, y_series, n_levels, b, trend, p_trend, reweight, weights_threshold, dispersion_rule,
                np.empty((n_time, max_cols)), np.empty(n_time), np.zeros(max_cols), np.zeros(max_cols),
                np.empty(n_time), np.empty(n_time), np.empty(n_time), np.zeros((max_cols, max_cols)),
                np.empty(n_time), np.empty(n_time), np.empty(max_cols))
        _judge(task, method, power, z, alpha, limit_cases, limit_periods, k, y_series, code, phi, disp, eta0, q0,
               kept_trend, expected, upperbound, score, pvalue, phi_out, trend_out, alarm, status)
