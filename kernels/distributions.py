"""Discrete quantiles and tail probabilities the detectors need.

- ``poisson_quantile(p, mu)`` and ``nbinom_quantile(p, size, prob)``: the smallest integer ``q >= 0``
  with ``P(Y <= q) >= p``, the definition R's ``qpois`` / ``qnbinom`` use (with their 8-ulp fuzz
  towards the left, so a probability a rounding error short of ``p`` still counts);
- ``poisson_upper_tail(y, mu)`` / ``nbinom_upper_tail(y, size, prob)``: ``P(Y >= y)``;
- ``normal_upper_tail(x)``: ``P(Z > x)`` for a standard normal ``Z``;
- ``student_t_two_sided(t, df)``: ``P(|T| >= |t|)`` for Student's t with ``df`` degrees of freedom,
  through the regularised incomplete beta function (Lentz's continued fraction).

The negative binomial is R's parametrisation: ``size`` > 0 and success probability ``prob``, mean
``size * (1 - prob) / prob``. Probabilities are summed term by term from zero with the pmf
recurrence (exact to a few ulps for the small means of count surveillance); when the first term
underflows they are summed from a few standard deviations below the mean in log space.
"""

from __future__ import annotations

import math

import numpy as np

from citygrid.kernels._jit import njit

#: R's left-continuity fuzz of discrete quantiles (R >= 4.2: 8 ulps).
_FUZZ = 1.0 - 8.0 * 2.220446049250313e-16
#: Below this log probability a first pmf term underflows; sum in log space from near the mean.
_LOG_TINY = -700.0


@njit
def _nbinom_log_pmf(k, size, prob):
    return (math.lgamma(k + size) - math.lgamma(size) - math.lgamma(k + 1.0)
            + size * math.log(prob) + k * math.log1p(-prob))


@njit
def nbinom_quantile(p, size, prob):
    """Smallest integer q >= 0 with P(Y <= q) >= p, Y ~ NB(size, prob); NaN for bad parameters."""
    if not (size >= 0.0) or not (prob > 0.0) or not (prob <= 1.0) or not (p >= 0.0) or not (p <= 1.0):
        return np.nan
    if size == 0.0 or prob == 1.0:
        return 0.0
    target = p * _FUZZ
    if p >= 1.0:
        return np.inf
    log0 = size * math.log(prob)
    q = 1.0 - prob
    if log0 > _LOG_TINY:
        term = math.exp(log0)
        cdf = term
        k = 0.0
        while cdf < target:
            term *= (k + size) / (k + 1.0) * q
            k += 1.0
            cdf += term
            if term == 0.0 and k > size * q / prob:
                break
        return k
    mean = size * q / prob
    sd = math.sqrt(mean / prob)
    k = math.floor(max(0.0, mean - 40.0 * sd))
    lterm = _nbinom_log_pmf(k, size, prob)
    cdf = math.exp(lterm)
    while cdf < target:
        lterm += math.log((k + size) / (k + 1.0) * q)
        k += 1.0
        cdf += math.exp(lterm)
        if lterm < _LOG_TINY and k > mean:
            break
    return k


@njit
def poisson_quantile(p, mu):
    """Smallest integer q >= 0 with P(Y <= q) >= p, Y ~ Poisson(mu); NaN for bad parameters."""
    if not (mu >= 0.0) or not (p >= 0.0) or not (p <= 1.0) or mu == np.inf:
        return np.nan
    if mu == 0.0:
        return 0.0
    if p >= 1.0:
        return np.inf
    target = p * _FUZZ
    if -mu > _LOG_TINY:
        term = math.exp(-mu)
        cdf = term
        k = 0.0
        while cdf < target:
            k += 1.0
            term *= mu / k
            cdf += term
            if term == 0.0 and k > mu:
                break
        return k
    k = math.floor(max(0.0, mu - 40.0 * math.sqrt(mu)))
    lterm = k * math.log(mu) - mu - math.lgamma(k + 1.0)
    cdf = math.exp(lterm)
    while cdf < target:
        k += 1.0
        lterm += math.log(mu / k)
        cdf += math.exp(lterm)
        if lterm < _LOG_TINY and k > mu:
            break
    return k


@njit
def nbinom_upper_tail(y, size, prob):
    """P(Y >= y) for Y ~ NB(size, prob) and a count y (1 for y <= 0)."""
    if y <= 0.0:
        return 1.0
    if size == 0.0 or prob == 1.0:
        return 0.0
    q = 1.0 - prob
    log0 = size * math.log(prob)
    below = 0.0
    if log0 > _LOG_TINY:
        term = math.exp(log0)
        below = term
        k = 0.0
        while k + 1.0 < y:
            term *= (k + size) / (k + 1.0) * q
            k += 1.0
            below += term
    else:
        mean = size * q / prob
        sd = math.sqrt(mean / prob)
        k = math.floor(max(0.0, mean - 40.0 * sd))
        if k > y - 1.0:
            return 1.0
        lterm = _nbinom_log_pmf(k, size, prob)
        below = math.exp(lterm)
        while k + 1.0 < y:
            lterm += math.log((k + size) / (k + 1.0) * q)
            k += 1.0
            below += math.exp(lterm)
    return max(0.0, 1.0 - below)


@njit
def poisson_upper_tail(y, mu):
    """P(Y >= y) for Y ~ Poisson(mu) and a count y (1 for y <= 0)."""
    if y <= 0.0:
        return 1.0
    if mu == 0.0:
        return 0.0
    below = 0.0
    if -mu > _LOG_TINY:
        term = math.exp(-mu)
        below = term
        k = 0.0
        while k + 1.0 < y:
            k += 1.0
            term *= mu / k
            below += term
    else:
        k = math.floor(max(0.0, mu - 40.0 * math.sqrt(mu)))
        if k > y - 1.0:
            return 1.0
        lterm = k * math.log(mu) - mu - math.lgamma(k + 1.0)
        below = math.exp(lterm)
        while k + 1.0 < y:
            k += 1.0
            lterm += math.log(mu / k)
            below += math.exp(lterm)
    return max(0.0, 1.0 - below)


@njit
def normal_upper_tail(x):
    """P(Z > x) for a standard normal Z."""
    return 0.5 * math.erfc(x / math.sqrt(2.0))


@njit
def _lentz_step(aa, c, d):
    """One step of the modified Lentz algorithm: (c, d, the factor to multiply the fraction by)."""
    tiny = 1e-300
    d = 1.0 + aa * d
    if abs(d) < tiny:
        d = tiny
    c = 1.0 + aa / c
    if abs(c) < tiny:
        c = tiny
    d = 1.0 / d
    return c, d, d * c


@njit
def _beta_continued_fraction(a, b, x):
    """Continued fraction of the regularised incomplete beta (modified Lentz), for x < (a+1)/(a+b+2)."""
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1.0)
    if abs(d) < 1e-300:
        d = 1e-300
    d = 1.0 / d
    h = d
    for m in range(1, 10000):
        m2 = 2.0 * m
        c, d, f = _lentz_step(m * (b - m) * x / ((a - 1.0 + m2) * (a + m2)), c, d)
        h *= f
        c, d, f = _lentz_step(-(a + m) * (a + b + m) * x / ((a + m2) * (a + 1.0 + m2)), c, d)
        h *= f
        if abs(f - 1.0) < 1e-16:
            break
    return h


@njit
def regularized_beta(x, a, b, one_minus_x):
    """I_x(a, b), the regularised incomplete beta function; ``one_minus_x`` is 1 - x computed
    without cancellation by the caller."""
    if x <= 0.0:
        return 0.0
    if one_minus_x <= 0.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log(one_minus_x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, one_minus_x) / b


@njit
def student_t_two_sided(t, df):
    """P(|T| >= |t|) for Student's t with df degrees of freedom (NaN when df <= 0 or t is NaN)."""
    if not (df > 0.0) or t != t:
        return np.nan
    if t == 0.0:
        return 1.0
    if math.isinf(t):
        return 0.0
    t2 = t * t
    return regularized_beta(df / (df + t2), 0.5 * df, 0.5, t2 / (df + t2))
