"""Detectors over a (series x time) matrix of counts, parallel over series.

Every kernel takes ``counts`` (float64, series x time, C order), a first monitored time index
``start`` and caller-allocated outputs of the same shape and writes every entry: the monitored ones
``[:, start:]``, and NaN (no alarm) before them, so the caller allocates them with ``np.empty`` and
the pages are first touched by the parallel threads. None validates or raises.

- ``detect_ears``: CDC EARS C1, C2 and C3 (Hutwagner et al. 2003; Fricker et al. 2008). The
  baseline is the ``baseline`` periods before t (C1) or before t-2 (C2, C3); mean ``m``, sample
  standard deviation ``s``, ``sigma = max(s, min_sigma)``; ``C(t) = (y_t - m) / sigma``; upper bound
  ``m + z sigma``; alarm when the count exceeds it. C3 is ``sum over t-2..t of max(0, C2 - 1)``
  with alarm when it exceeds z; its bound is ``m + sigma (1 + z - L)``, ``L`` the two earlier
  days' part, and -inf when ``L > z`` (those two days alone alarm). ``c3_rule = 1`` instead
  reproduces R ``surveillance``'s ``earsC`` C3 (see the engine's documentation).
- ``detect_cusum``: Poisson CUSUM for a rise of known size ``kappa`` (log rate ratio) over an
  in-control mean ``mu0``: ``S_t = max(0, S_{t-1} + kappa y_t - (e^kappa - 1) mu0_t)``, alarm when
  ``S_t > c`` and then restart from 0 (Lucas 1985 in the log-likelihood-ratio form of Hoehle and
  Paul 2008). The upper bound is the count that would make ``S_t = c``.
- ``detect_glr``: Poisson GLR-CUSUM for a rise in the intercept (Hoehle and Paul 2008):
  ``GLR(n) = max over k of sup over kappa >= 0 of sum_{t=k..n} [kappa y_t - (e^kappa - 1) mu0_t]``,
  with k running back to the last restart; alarm when ``GLR(n) >= c``, then restart at n+1. The
  maximum is taken over the candidate starts that are strict suffix minima of the cumulative
  excess ``D_k = sum_{t<k}(y_t - mu0_t)``: a start whose segment to a later start has no excess
  (``D_k >= D_j``) can never beat that later start (for the added part
  ``kappa a - (e^kappa - 1) b <= 0`` when ``a <= b``), so the scan is exact and usually O(1) per
  period. The upper bound is the smallest count at n that would sound the alarm.
- ``detect_bayes``: the Bayes predictive method of R ``surveillance`` (``algo.bayes``): reference
  values are the ``w`` periods before t (``act_y``) and, for each of ``b`` past years, the periods
  ``t - i*freq - w .. t - i*freq + w``; with ``n`` references summing to ``S`` the predictive is
  negative binomial(S + 1/2, n / (n + 1)) (Poisson with Jeffreys' prior); the upper bound is its
  (1 - alpha) quantile and the alarm is a count above it.
- ``fit_seasonal_means``: the in-control means of the GLR / CUSUM, a Poisson log-linear model
  ``1 (+ t) + sum_s cos(2 pi s t / period) + sin(2 pi s t / period)`` (t = 1, 2, ... as R does)
  fitted on the first ``n_train`` periods of each series and predicted over all of them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from citygrid.kernels._jit import njit, pnjit
from citygrid.kernels.distributions import nbinom_quantile, nbinom_upper_tail
from citygrid.kernels.glm import FIT_CONVERGED, fit_poisson_log

EARS_C1 = 1
EARS_C2 = 2
EARS_C3 = 3
#: Relative distance from a whole count within which the GLR's bound is settled with the statistic
#: itself (the root-find is good to about 1e-12; farther off, ceil(need) is the bound).
GLR_BOUND_SLACK = 1e-7
#: C3 rules: the published sum-of-three-days statistic, or R surveillance 1.20's earsC formula.
C3_PUBLISHED = 0
C3_SURVEILLANCE = 1


@pnjit
def check_counts(counts, first_bad, nonempty):
    """Per series: the first period whose count is not a whole number >= 0 (NaN, inf, negative,
    fractional; -1 for none) and whether it holds a count above 0 (meaningless when one is bad)."""
    n_series, n_time = counts.shape
    for s in prange(n_series):
        n_bad = 0
        top = 0.0
        for t in range(n_time):  # no early exit: this loop vectorises
            v = counts[s, t]
            n_bad += not (v >= 0.0 and v == math.floor(v) and v < np.inf)
            top = max(top, v)
        bad = -1
        if n_bad:
            for t in range(n_time):
                v = counts[s, t]
                if not (v >= 0.0 and v == math.floor(v) and v < np.inf):
                    bad = t
                    break
        first_bad[s] = bad
        nonempty[s] = top > 0.0


@njit
def _unjudged(s, start, a, b, c, alarm):
    """Periods of series s before ``start``: NaN in a, b and c, no alarm."""
    for t in range(start):
        a[s, t] = np.nan
        b[s, t] = np.nan
        c[s, t] = np.nan
        alarm[s, t] = 0


@njit
def _mean_sd(y, lo, hi):
    """Mean and sample standard deviation of y[lo:hi] (two passes)."""
    n = hi - lo
    s = 0.0
    for i in range(lo, hi):
        s += y[i]
    m = s / n
    ss = 0.0
    for i in range(lo, hi):
        d = y[i] - m
        ss += d * d
    return m, math.sqrt(ss / (n - 1))


@njit
def _divide(a, b):
    """a / b with IEEE results for b == 0 (inf with a's sign, NaN for 0/0)."""
    if b != 0.0:
        return a / b
    if a != a or a == 0.0:
        return np.nan
    return math.copysign(np.inf, a)


@njit
def _c2(y, t, baseline, min_sigma):
    m, s = _mean_sd(y, t - baseline - 2, t - 2)
    sigma = max(s, min_sigma)
    return m, sigma


@pnjit
def detect_ears(counts, method, baseline, z, min_sigma, c3_rule, start,
                expected, upperbound, statistic, alarm):
    """EARS C1/C2/C3 (method 1/2/3). start must be >= baseline (C1), baseline+2 (C2), baseline+4 (C3)."""
    n_series, n_time = counts.shape
    lag = 0 if method == EARS_C1 else 2  # the baseline ends this many periods before t
    for s in prange(n_series):
        _unjudged(s, start, expected, upperbound, statistic, alarm)
        y = counts[s]
        c2_now = c2_1 = c2_2 = 0.0
        # the last count above 0 before the current baseline's end: a baseline of zeros (most of a
        # sparse series) has mean and standard deviation 0 without summing it
        last_positive = -1
        for i in range(start - lag):
            if y[i] > 0.0:
                last_positive = i
        for t in range(start, n_time):
            if y[t - lag - 1] > 0.0:
                last_positive = t - lag - 1
            quiet = last_positive < t - lag - baseline
            if method == EARS_C1:
                m, sd = (0.0, 0.0) if quiet else _mean_sd(y, t - baseline, t)
                sigma = max(sd, min_sigma)
                expected[s, t] = m
                upperbound[s, t] = m + z * sigma
                statistic[s, t] = _divide(y[t] - m, sigma)
                alarm[s, t] = 1 if y[t] > upperbound[s, t] else 0
            elif method == EARS_C2:
                m, sigma = (0.0, max(0.0, min_sigma)) if quiet else _c2(y, t, baseline, min_sigma)
                expected[s, t] = m
                upperbound[s, t] = m + z * sigma
                statistic[s, t] = _divide(y[t] - m, sigma)
                alarm[s, t] = 1 if y[t] > upperbound[s, t] else 0
            else:
                # C2 of t-1 and t-2 carry over from the two periods before (computed the same way)
                if t == start:
                    m2, sigma2 = _c2(y, t - 2, baseline, min_sigma)
                    c2_2 = _divide(y[t - 2] - m2, sigma2)
                    m1, sigma1 = _c2(y, t - 1, baseline, min_sigma)
                    c2_1 = _divide(y[t - 1] - m1, sigma1)
                else:
                    c2_2 = c2_1
                    c2_1 = c2_now
                m, sigma = (0.0, max(0.0, min_sigma)) if quiet else _c2(y, t, baseline, min_sigma)
                c2_now = _divide(y[t] - m, sigma)
                expected[s, t] = m
                if c3_rule == C3_PUBLISHED:
                    # 0/0 (a flat baseline and a count equal to it) is no deviation
                    part1 = max(0.0, c2_1 - 1.0) if c2_1 == c2_1 else 0.0
                    part2 = max(0.0, c2_2 - 1.0) if c2_2 == c2_2 else 0.0
                    part0 = max(0.0, c2_now - 1.0) if c2_now == c2_now else 0.0
                    earlier = part1 + part2
                    c3 = part0 + earlier
                    statistic[s, t] = c3
                    if earlier <= z:
                        upperbound[s, t] = m + sigma * (1.0 + z - earlier)
                    else:
                        upperbound[s, t] = -np.inf
                    alarm[s, t] = 1 if c3 > z else 0
                else:
                    # R surveillance earsC (1.20): y + sigma (z - lag parts), clipped at 0; NaN propagates
                    part1 = c2_1 - 1.0 if c2_1 - 1.0 > 0.0 or c2_1 != c2_1 else 0.0
                    part2 = c2_2 - 1.0 if c2_2 - 1.0 > 0.0 or c2_2 != c2_2 else 0.0
                    ub = y[t] + sigma * (z - (part2 + part1))
                    if ub != ub:
                        upperbound[s, t] = np.nan
                        alarm[s, t] = 0
                    else:
                        upperbound[s, t] = max(0.0, ub)
                        alarm[s, t] = 1 if y[t] > upperbound[s, t] else 0
                    statistic[s, t] = np.nan


@pnjit
def detect_cusum(counts, mu0, kappa, c, start, statistic, upperbound, alarm):
    """Poisson CUSUM (log-likelihood-ratio form) with restart after each alarm."""
    n_series, n_time = counts.shape
    growth = math.exp(kappa) - 1.0
    for s in prange(n_series):
        _unjudged(s, start, statistic, upperbound, statistic, alarm)
        prev = 0.0
        for t in range(start, n_time):
            bound = (c - prev + mu0[s, t] * growth) / kappa
            upperbound[s, t] = bound if bound > 0.0 else 0.0
            value = prev + kappa * counts[s, t] + (1.0 - math.exp(kappa)) * mu0[s, t]
            value = value if value > 0.0 else 0.0
            statistic[s, t] = value
            if value > c:
                alarm[s, t] = 1
                prev = 0.0
            else:
                alarm[s, t] = 0
                prev = value


@njit
def _glr_term(sum_y, sum_mu):
    """sup over kappa >= 0 of kappa*sum_y - (e^kappa - 1)*sum_mu (inf for counts where none are expected)."""
    if sum_y > sum_mu:
        if sum_mu <= 0.0:
            return np.inf
        return sum_y * math.log(sum_y / sum_mu) - sum_y + sum_mu
    return 0.0


@njit
def _glr_count_needed(c, sum_mu, before, guess):
    """(x, T, near): the smallest whole count x >= 0 with ``before + x >= T``, T > M = sum_mu the
    total with ``T log(T / M) - T + M = c``; near when T - before lies within rounding of a whole
    number (the caller then settles x with the statistic itself).

    Newton on the convex, increasing left side: started right of T (or from ``guess`` > M, after
    which the iterates come from the right), each iterate t >= T comes with a lower bound
    ``t - f(t) / log(L / M)`` (f's slope at T is at least its slope at ``L = M + sqrt(2 c M)`` <=
    T), so the iteration stops as soon as both ends give the same x.
    """
    m = sum_mu
    if guess > m:
        t = guess
    else:  # T <= M + c + sqrt(c^2 + 2cM), as the term is at least (T - M)^2 / 2T
        t = m + c + math.sqrt(c * c + 2.0 * c * m)
    slope_floor = math.log1p(math.sqrt(2.0 * c / m))
    for _ in range(100):
        log_ratio = math.log(t / m)
        f = t * log_ratio - t + m - c
        upper = t - f / log_ratio
        if f >= 0.0:
            lo = t - f / slope_floor - before
            hi = upper - before
            x = math.ceil(hi) if hi > 0.0 else 0.0
            slack = GLR_BOUND_SLACK * max(1.0, abs(hi))
            if hi <= x - slack and lo > x - 1.0 + slack:
                return x, upper, False
        if abs(t - upper) <= 1e-12 * upper:
            t = upper
            break
        t = upper
    need = t - before
    x = math.ceil(need) if need > 0.0 else 0.0
    near = need > -1.0 and abs(need - round(need)) <= GLR_BOUND_SLACK * max(1.0, abs(need))
    return x, t, near


@njit
def _glr_with(before, sums_mu, size, x):
    """GLR(n) if the count at n were x: before[j] = counts of candidate j's segment before n."""
    best = 0.0
    for j in range(size):
        g = _glr_term(before[j] + x, sums_mu[j])
        if g > best:
            best = g
    return best


@pnjit
def detect_glr(counts, mu0, c, start, with_bound, statistic, upperbound, alarm):
    """Poisson GLR-CUSUM for a rise in the intercept, restarting after each alarm.

    Each candidate start keeps its own running sums of counts and means (no differences of
    prefix sums, which would cancel when early means dwarf late ones).
    """
    n_series, n_time = counts.shape
    for s in prange(n_series):
        _unjudged(s, start, statistic, upperbound, statistic, alarm)
        y = counts[s]
        mu = mu0[s]
        cand_d = np.empty(n_time)   # cumulative excess before the candidate start
        sum_y = np.empty(n_time)    # counts of the candidate's segment
        sum_mu = np.empty(n_time)   # means of the candidate's segment
        total = np.zeros(n_time)    # the candidate's bound total T at the last period (0: none yet)
        floor = np.empty(n_time)    # a lower bound of the count at n the candidate needs
        size = 0
        excess = 0.0
        # a candidate without counts needs a count that depends on its mean alone: under a constant
        # mean (a sparse series) every quiet period's fresh candidate asks the same question
        quiet_mu = -1.0
        quiet_x = 0.0
        quiet_total = 0.0
        quiet_near = False
        for n in range(start, n_time):
            while size > 0 and cand_d[size - 1] >= excess:
                size -= 1
            cand_d[size] = excess
            sum_y[size] = 0.0
            sum_mu[size] = 0.0
            total[size] = 0.0
            size += 1
            for j in range(size):
                sum_mu[j] += mu[n]
            if with_bound:
                # smallest count x at n with GLR(n) >= c (sum_y still holds the counts before n):
                # candidate j's term reaches c from x >= need_j on, so x = min_j ceil(need_j)
                x_best = np.inf
                near = False  # a need within rounding of a whole count
                # T_j >= M_j + sqrt(2 c M_j) (the term is at most (T - M)^2 / 2M): start with the
                # candidate of the lowest such floor and skip those whose floor cannot win
                first = 0
                for j in range(size):
                    floor[j] = sum_mu[j] + math.sqrt(2.0 * c * sum_mu[j]) - sum_y[j]
                    if floor[j] < floor[first]:
                        first = j
                for k in range(size):
                    j = first if k == 0 else (k - 1 if k <= first else k)
                    if k > 0 and floor[j] > x_best - 1.0 + GLR_BOUND_SLACK * max(1.0, abs(floor[j])):
                        continue
                    if sum_y[j] == 0.0 and sum_mu[j] == quiet_mu:
                        total[j] = quiet_total
                        near = near or quiet_near
                        if quiet_x < x_best:
                            x_best = quiet_x
                    elif sum_mu[j] > 0.0:
                        # start from last period's total moved along dT/dM = (T/M - 1) / log(T/M)
                        guess = 0.0
                        before = sum_mu[j] - mu[n]
                        if total[j] > before > 0.0 and mu[n] >= 0.0:
                            ratio = total[j] / before
                            guess = total[j] + (ratio - 1.0) / math.log(ratio) * mu[n]
                        x, total[j], near_j = _glr_count_needed(c, sum_mu[j], sum_y[j], guess)
                        if sum_y[j] == 0.0:
                            quiet_mu, quiet_x, quiet_total, quiet_near = sum_mu[j], x, total[j], near_j
                        near = near or near_j
                        if x < x_best:
                            x_best = x
                    else:
                        x_best = min(x_best, 1.0)
                if x_best < np.inf and near:
                    # settle rounding at the boundary with the statistic itself
                    while x_best > 0.0 and _glr_with(sum_y, sum_mu, size, x_best - 1.0) >= c:
                        x_best -= 1.0
                    while _glr_with(sum_y, sum_mu, size, x_best) < c:
                        x_best += 1.0
                upperbound[s, n] = x_best
            else:
                upperbound[s, n] = np.nan
            best = 0.0
            for j in range(size):
                sum_y[j] += y[n]
                g = _glr_term(sum_y[j], sum_mu[j])
                if g > best:
                    best = g
            statistic[s, n] = best
            excess += y[n] - mu[n]
            if best >= c:
                alarm[s, n] = 1
                size = 0
                excess = 0.0
            else:
                alarm[s, n] = 0


@pnjit
def detect_bayes(counts, b, w, act_y, freq, alpha, start, expected, upperbound, statistic, alarm):
    """Bayes predictive (algo.bayes); start must be >= b*freq + w (and >= w with act_y)."""
    n_series, n_time = counts.shape
    for s in prange(n_series):
        _unjudged(s, start, expected, upperbound, statistic, alarm)
        y = counts[s]
        last_total = -1.0
        last_q = 0.0
        for t in range(start, n_time):
            total = 0.0
            n = 0
            if act_y:
                for i in range(t - w, t):
                    total += y[i]
                n += w
            for year in range(1, b + 1):
                centre = t - year * freq
                for i in range(centre - w, centre + w + 1):
                    total += y[i]
                n += 2 * w + 1
            size = total + 0.5
            prob = n / (n + 1.0)
            if t == start or total != last_total:  # a run of equal totals shares its quantile
                last_q = nbinom_quantile(1.0 - alpha, size, prob)
                last_total = total
            q = last_q
            expected[s, t] = size / n
            upperbound[s, t] = q
            statistic[s, t] = nbinom_upper_tail(y[t], size, prob)
            alarm[s, t] = 1 if y[t] > q else 0


@pnjit
def fit_seasonal_means(counts, n_train, period, harmonics, trend, mu_out, status):
    """In-control means: Poisson GLM on the first n_train periods, predicted for every period."""
    n_series, n_time = counts.shape
    p = 1 + (1 if trend else 0) + 2 * harmonics
    for s in prange(n_series):
        X = np.empty((n_train, p))
        y = np.empty(n_train)
        for t in range(n_train):
            _seasonal_row(t + 1.0, period, harmonics, trend, X[t])
            y[t] = counts[s, t]
        prior = np.ones(n_train)
        coef = np.zeros(p)
        mu = np.empty(n_train)
        eta = np.empty(n_train)
        wt = np.empty(n_train)
        r = np.zeros((p, p))
        code = fit_poisson_log(X, y, prior, coef, mu, eta, wt, r)
        status[s] = code
        row = np.empty(p)
        for t in range(n_time):
            _seasonal_row(t + 1.0, period, harmonics, trend, row)
            e = 0.0
            for j in range(p):
                e += row[j] * coef[j]
            mu_out[s, t] = math.exp(e) if code == FIT_CONVERGED or code == 1 else np.nan


@njit
def _seasonal_row(t, period, harmonics, trend, row):
    row[0] = 1.0
    j = 1
    if trend:
        row[1] = t
        j = 2
    for h in range(1, harmonics + 1):
        angle = 2.0 * h * math.pi / period * t
        row[j] = math.cos(angle)
        row[j + 1] = math.sin(angle)
        j += 2
