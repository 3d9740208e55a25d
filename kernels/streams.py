"""A counter-based random stream for Monte Carlo replications (numpy, numba, math only).

Each replication ``r`` of a scan under a seed gets its own SplitMix64 stream (Steele, Lea and Flood
2014) started from ``(seed, r)`` alone, so its numbers do not depend on which thread ran it or in
which order: a scan is deterministic for a seed on any number of cores, and a test can replay one
replication outside the kernel.
"""

from __future__ import annotations

import math

import numpy as np

from citygrid.kernels._jit import njit

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_INDEX_MIX = np.uint64(0xD1B54A32D192ED03)
_TWO53 = 9007199254740992.0


@njit
def _splitmix(state):
    """(next state, 64 random bits)."""
    state = (state + _GOLDEN) & _MASK64
    z = state
    z = ((z ^ (z >> np.uint64(30))) * _MIX1) & _MASK64
    z = ((z ^ (z >> np.uint64(27))) * _MIX2) & _MASK64
    return state, z ^ (z >> np.uint64(31))


@njit
def stream_start(seed, index):
    """The first state of stream ``index`` under ``seed`` (two non-negative integers)."""
    _, a = _splitmix(np.uint64(seed))
    _, b = _splitmix((a ^ ((np.uint64(index) * _INDEX_MIX) & _MASK64)) & _MASK64)
    return b


@njit
def next_uniform(state):
    """(next state, a double uniform on [0, 1) with 53 random bits)."""
    state, z = _splitmix(state)
    return state, np.float64(z >> np.uint64(11)) / _TWO53


@njit
def next_below(state, n):
    """(next state, an integer uniform on 0 .. n-1); the bias of scaling 53 bits is below n / 2**53."""
    state, u = next_uniform(state)
    k = np.int64(u * n)
    if k >= n:
        k = n - 1
    return state, k


@njit
def next_poisson(state, mu):
    """(next state, a Poisson(mu) count) by inversion of one uniform (:func:`poisson_of_uniform`);
    no uniform is drawn when mu <= 0 (the count is 0)."""
    if not (mu > 0.0):
        return state, np.int64(0)
    state, u = next_uniform(state)
    return state, poisson_of_uniform(u, mu)


@njit
def poisson_zero_below(mu):
    """The uniforms below which :func:`poisson_of_uniform` answers 0 without a loop: exp(-mu), the
    probability of 0, for mu < 700 (0.0 above, where the sum starts elsewhere)."""
    return math.exp(-mu) if mu < 700.0 else 0.0


@njit
def poisson_of_uniform(u, mu):
    """The Poisson(mu) count (mu > 0) whose cdf first exceeds the uniform u (inversion).

    The cdf is summed from 0, or from 40 standard deviations below the mean in log space when
    exp(-mu) would underflow (the mass left out is below 1e-300).
    """
    if mu < 700.0:
        term = math.exp(-mu)
        cdf = term
        k = 0
        while u >= cdf:
            k += 1
            term *= mu / k
            cdf += term
            if term == 0.0 and k > mu:
                break
        return np.int64(k)
    k0 = max(0.0, math.floor(mu - 40.0 * math.sqrt(mu)))
    lterm = k0 * math.log(mu) - mu - math.lgamma(k0 + 1.0)
    cdf = math.exp(lterm)
    k = k0
    while u >= cdf:
        k += 1.0
        lterm += math.log(mu / k)
        cdf += math.exp(lterm)
        if lterm < -745.0 and k > mu:
            break
    return np.int64(k)
