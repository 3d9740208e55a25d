"""Space-time scan kernels: cylinders and zones, their statistics, Monte Carlo maxima.

Locations are points on a sphere of radius 6,367 km in 3-D Cartesian coordinates, and distances are
the straight-line (chord) distances between them, as SaTScan computes them for latitude /
longitude data (a chord of 1 km is 6e-12 km shorter than its arc).

**Prospective space-time permutation scan** (Kulldorff et al. 2005). ``C`` cases over locations
and days; ``C_z`` cases at location z, ``C_d`` on day d. A cylinder is the set of locations within
a radius of a centre (locations at the same distance enter together) times the last ``w`` days
of the study (``w = 1 .. W``). With ``S`` its locations' case total and ``T_w`` the cases of its
days, the expected count is ``mu = S * T_w / C`` and, for ``c > mu`` observed and at least
``min_cases``, its log-likelihood ratio is

    LLR = c ln c + (C - c) ln(C - c) - c (ln S + ln T_w - ln C) - (C - c) ln(C - mu)

(``c ln(c/mu) + (C-c) ln((C-c)/(C-mu))`` rearranged so that ``x ln x`` comes from a table, ``ln S``
and ``ln(C - mu)`` are computed once per cylinder and no logarithm is taken in a replication);
0 otherwise. ``c > mu`` is decided exactly in integers (``c C > S T_w``). Circles grow
while their case total stays within ``max_share * C``. A replication permutes the days among the
cases: the cases that land in the last ``W`` days are an ordered sample without replacement of
``sum_w C_d`` of them, the first ``C_last`` getting the last day and so on (the same law as a
full permutation, at the cost of the window's cases only).

**Expectation-based Poisson scan** (Neill et al. 2005). Zones are each location's 1, 2, ..., k
nearest locations; windows the last 1 .. D periods; with ``C`` counted and ``B`` expected (summed
baselines) the score is ``C ln C - C ln B + B - C`` when ``C > B`` (``C ln(C/B) + B - C``), else 0.
A replication draws every location-period count from Poisson(baseline).

Each replication ``r`` draws from its own stream (``citygrid.kernels.streams``), seeded by
``(seed, r)`` (the space-time permutation) or ``(seed, r * n_locations + location)`` (the
expectation-based scan), so results are deterministic for a seed on any number of threads. Work is
parallel over centres. Kernels take flat buffers, write into caller-allocated outputs and never
validate.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from citygrid.kernels._jit import njit, pnjit
from citygrid.kernels.streams import next_below, next_poisson, stream_start

EARTH_RADIUS_KM = 6367.0


@njit
def to_cartesian(lng, lat, out):
    """out[i] = (x, y, z) in km of the point (lng[i], lat[i]) in degrees."""
    for i in range(lng.shape[0]):
        la = lat[i] * math.pi / 180.0
        lo = lng[i] * math.pi / 180.0
        out[i, 0] = EARTH_RADIUS_KM * math.cos(la) * math.cos(lo)
        out[i, 1] = EARTH_RADIUS_KM * math.cos(la) * math.sin(lo)
        out[i, 2] = EARTH_RADIUS_KM * math.sin(la)


@njit
def chord_km(xyz, i, j):
    dx = xyz[i, 0] - xyz[j, 0]
    dy = xyz[i, 1] - xyz[j, 1]
    dz = xyz[i, 2] - xyz[j, 2]
    return math.sqrt(dx * dx + dy * dy + dz * dz)


@pnjit
def count_within(xyz, max_km, counts):
    """counts[i] = number of locations within max_km of location i (itself included)."""
    n = xyz.shape[0]
    for i in prange(n):
        k = 0
        for j in range(n):
            if chord_km(xyz, i, j) <= max_km:
                k += 1
        counts[i] = k


@pnjit
def fill_within(xyz, max_km, offsets, nbr_index, nbr_km):
    """Each centre's locations within max_km, sorted by (distance, index), into CSR rows."""
    n = xyz.shape[0]
    for i in prange(n):
        lo = offsets[i]
        k = 0
        for j in range(n):
            d = chord_km(xyz, i, j)
            if d <= max_km:
                nbr_index[lo + k] = j
                nbr_km[lo + k] = d
                k += 1
        order = np.argsort(nbr_km[lo:lo + k], kind="mergesort")
        idx = nbr_index[lo:lo + k].copy()
        dist = nbr_km[lo:lo + k].copy()
        for m in range(k):
            nbr_index[lo + m] = idx[order[m]]
            nbr_km[lo + m] = dist[order[m]]


@pnjit
def nearest_k(xyz, k, nbr_index, nbr_km):
    """nbr_index[i, :] = the k locations nearest to i (itself first), by (distance, index)."""
    n = xyz.shape[0]
    for i in prange(n):
        filled = 0
        for j in range(n):
            d = chord_km(xyz, i, j)
            if filled < k:
                pos = filled
                filled += 1
            elif d >= nbr_km[i, k - 1]:
                continue  # an equal distance keeps the lower index already in
            else:
                pos = k - 1
            while pos > 0 and nbr_km[i, pos - 1] > d:
                nbr_km[i, pos] = nbr_km[i, pos - 1]
                nbr_index[i, pos] = nbr_index[i, pos - 1]
                pos -= 1
            nbr_km[i, pos] = d
            nbr_index[i, pos] = j


@njit
def x_log_x_table(n):
    """t[c] = c ln c for c = 0 .. n-1 (0 at 0)."""
    t = np.zeros(n)
    for c in range(1, n):
        t[c] = c * math.log(c)
    return t


@njit
def _x_log_x(table, c):
    if c < table.shape[0]:
        return table[c]
    return c * math.log(c)


# ------------------------------------------------------------------ space-time permutation scan


#: c_min of a neighbour position that closes no circle (or one over the share): never evaluated.
NOT_A_CYLINDER = np.iinfo(np.int32).max


@pnjit
def stp_cylinders(offsets, nbr_index, nbr_km, location_totals, window_totals, total, max_share_cases, min_cases,
                  c_min, ln_s, ln_rest_tab):
    """Per neighbour position ``pos`` (the circle closed there) and window w:

    - ``c_min[pos*W + w]``: the least count that is both above the expected count
      ``mu = S * T_w / C`` (``c C > S T_w``, exact in integers) and at least ``min_cases``;
      NOT_A_CYLINDER when the position closes no circle (the next location is at the same
      distance) or the circle holds more than ``max_share_cases``;
    - ``ln_s[pos] = ln S`` and ``ln_rest_tab[pos*W + w] = ln(C - mu)``.
    """
    n_centres = offsets.shape[0] - 1
    n_windows = window_totals.shape[0]
    for ci in prange(n_centres):
        s = 0
        over = False
        for pos in range(offsets[ci], offsets[ci + 1]):
            s += location_totals[nbr_index[pos]]
            if s > max_share_cases:
                over = True
            closes = pos + 1 == offsets[ci + 1] or nbr_km[pos + 1] != nbr_km[pos]
            ln_s[pos] = math.log(s) if s > 0 else -np.inf
            for w in range(n_windows):
                st = s * window_totals[w]
                if closes and not over and s > 0:
                    c = st // total + 1  # least c with c * C > S * T_w
                    c_min[pos * n_windows + w] = max(c, min_cases)
                else:
                    c_min[pos * n_windows + w] = NOT_A_CYLINDER
                rest = total - (s * 1.0) * (window_totals[w] * 1.0) / (total * 1.0)
                ln_rest_tab[pos * n_windows + w] = math.log(rest) if rest > 0.0 else -np.inf


@njit
def _stp_llr(xlx, c, total, ln_s, ln_window, ln_total, ln_rest):
    return (_x_log_x(xlx, c) + _x_log_x(xlx, total - c)
            - c * (ln_s + ln_window - ln_total) - (total - c) * ln_rest)


@njit
def _stp_best_of_centre(ci, offsets, nbr_index, c_min, least, ln_s, ln_rest_tab, ln_window, ln_total,
                        window_counts, total, xlx, cum):
    """(best LLR, neighbour position, window index, observed) of one centre's cylinders.

    window_counts[l, w] = cases at l in the last w+1 days; ln_window[w] = ln T_w; cum is scratch of W
    entries; least[pos] = the smallest of c_min[pos*W .. pos*W + W-1], at most 255 (a circle
    whose longest window, the largest count, falls short of it has no cylinder to score; see
    stp_position_floors). Ties keep the first cylinder met: fewer locations, then the shorter
    window.
    """
    n_windows = cum.shape[0]
    for w in range(n_windows):
        cum[w] = 0
    best = 0.0
    best_pos = -1
    best_w = -1
    best_c = 0
    last = n_windows - 1
    for pos in range(offsets[ci], offsets[ci + 1]):
        loc = nbr_index[pos]
        if window_counts[loc, last] != 0:
            for w in range(n_windows):
                cum[w] += window_counts[loc, w]
        if cum[last] < least[pos]:
            continue  # every window's count is below its threshold (0 until a case is in the circle)
        base = pos * n_windows
        for w in range(n_windows):
            c = cum[w]
            if c >= c_min[base + w]:
                llr = _stp_llr(xlx, c, total, ln_s[pos], ln_window[w], ln_total, ln_rest_tab[base + w])
                if llr > best:
                    best = llr
                    best_pos = pos
                    best_w = w
                    best_c = c
    return best, best_pos, best_w, best_c


@pnjit
def stp_scan(offsets, nbr_index, c_min, least, ln_s, ln_rest_tab, ln_window, ln_total, window_counts, total, xlx,
             best_llr, best_pos, best_w, best_c):
    """Every centre's most likely cylinder (best_pos -1 when none has an LLR above 0)."""
    n_centres = offsets.shape[0] - 1
    n_windows = window_counts.shape[1]
    scratch = np.zeros((n_centres, n_windows), np.int64)
    for ci in prange(n_centres):
        llr, pos, w, c = _stp_best_of_centre(ci, offsets, nbr_index, c_min, least, ln_s, ln_rest_tab, ln_window,
                                             ln_total, window_counts, total, xlx, scratch[ci])
        best_llr[ci] = llr
        best_pos[ci] = pos
        best_w[ci] = w
        best_c[ci] = c


@pnjit
def stp_position_floors(thresholds, offsets, n_windows, floor, least):
    """floor[pos, w] = the smallest thresholds[q*W + w] over q = pos and the positions after it in
    its centre's list; least[pos] = the smallest of thresholds[pos*W .. pos*W + W-1]. Both are
    bytes capped at 255 (a cap only makes the checks that skip positions skip fewer), so that
    they stay in cache."""
    n_centres = offsets.shape[0] - 1
    for ci in prange(n_centres):
        for w in range(n_windows):
            running = NOT_A_CYLINDER
            for pos in range(offsets[ci + 1] - 1, offsets[ci] - 1, -1):
                running = min(running, thresholds[pos * n_windows + w])
                floor[pos, w] = min(running, 255)
        for pos in range(offsets[ci], offsets[ci + 1]):
            m = thresholds[pos * n_windows]
            for w in range(1, n_windows):
                m = min(m, thresholds[pos * n_windows + w])
            least[pos] = min(m, 255)


@njit
def stp_replicate_cases(seed, replicate, n_cases, n_window_cases, picked, seen, perm):
    """The cases that receive the window's dates in one replication, in slot order (the last
    day's slots first): picked[j] for j < n_window_cases. seen (n_cases, all False) and perm
    (n_cases) are scratch; seen is left all False again."""
    state = stream_start(seed, replicate)
    if 2 * n_window_cases > n_cases:
        for i in range(n_cases):
            perm[i] = i
        for j in range(n_window_cases):
            state, k = next_below(state, n_cases - j)
            k += j
            tmp = perm[j]
            perm[j] = perm[k]
            perm[k] = tmp
            picked[j] = perm[j]
        return
    for j in range(n_window_cases):
        while True:
            state, k = next_below(state, n_cases)
            if not seen[k]:
                seen[k] = True
                picked[j] = k
                break
    for j in range(n_window_cases):
        seen[picked[j]] = False


@pnjit
def stp_thresholds(c_min, ln_s, ln_rest_tab, ln_window, ln_total, total, c_cap, xlx, level, c_need):
    """c_need[pos*W + w] = the least count >= c_min, at most c_cap (the most a replication can put
    in a cylinder: the window's cases), whose LLR reaches ``level`` (NOT_A_CYLINDER if none).

    The LLR grows with the count above the expected one, so a replication's cylinders below
    c_need cannot reach ``level``: a replication whose largest LLR is at least ``level`` can be
    scanned comparing counts with c_need alone.
    """
    n_windows = ln_window.shape[0]
    n_pos = ln_s.shape[0]
    for pos in prange(n_pos):
        for w in range(n_windows):
            i = pos * n_windows + w
            lo = c_min[i]
            if lo == NOT_A_CYLINDER or lo > c_cap:
                c_need[i] = NOT_A_CYLINDER
                continue
            if _stp_llr(xlx, lo, total, ln_s[pos], ln_window[w], ln_total, ln_rest_tab[i]) >= level:
                c_need[i] = lo
                continue
            # exponential then binary search for the least c with LLR(c) >= level in (lo, total]
            step = 1
            hi = lo + step
            while hi <= c_cap and _stp_llr(xlx, hi, total, ln_s[pos], ln_window[w], ln_total, ln_rest_tab[i]) < level:
                lo = hi
                step *= 2
                hi = lo + step
            if hi > c_cap:
                hi = c_cap
                if hi <= lo:
                    c_need[i] = NOT_A_CYLINDER
                    continue
                if _stp_llr(xlx, hi, total, ln_s[pos], ln_window[w], ln_total, ln_rest_tab[i]) < level:
                    c_need[i] = NOT_A_CYLINDER
                    continue
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _stp_llr(xlx, mid, total, ln_s[pos], ln_window[w], ln_total, ln_rest_tab[i]) >= level:
                    hi = mid
                else:
                    lo = mid
            c_need[i] = hi


def replication_blocks(n_reps):
    """Blocks of replications for stp_replicate_maxima: a few per thread, so uneven ones even out."""
    return max(1, min(n_reps, 4 * numba.get_num_threads()))


@njit
def _stp_jump_centre(ci, entries, entry_loc, lo, hi, offsets, thresholds, floor, ln_s, ln_rest_tab, ln_window,
                     ln_total, window_counts, total, xlx, cum):
    """The largest LLR of centre ci's cylinders, visiting only the positions entries[lo:hi] (sorted;
    entry_loc their locations) where a window case enters and, window by window, the positions
    after each while the count can still reach a threshold: up to the next entry the count stays
    put while every threshold ahead is at least floor[pos, w], so the walk stops at the first floor
    above the count."""
    n_windows = cum.shape[0]
    for w in range(n_windows):
        cum[w] = 0
    best = 0.0
    for k in range(lo, hi):
        loc = entry_loc[k]
        for w in range(n_windows):
            cum[w] += window_counts[loc, w]
        first = entries[k]
        end = entries[k + 1] if k + 1 < hi else offsets[ci + 1]
        for w in range(n_windows):
            c = cum[w]
            pos = first
            while pos < end and c >= floor[pos, w]:
                i = pos * n_windows + w
                if c >= thresholds[i]:
                    llr = _stp_llr(xlx, c, total, ln_s[pos], ln_window[w], ln_total, ln_rest_tab[i])
                    if llr > best:
                        best = llr
                pos += 1
    return best


@njit
def _stp_replicate_max(seed, r, case_location, window_day_totals, offsets, nbr_index, c_need, floor_need, least_need,
                       c_min, floor_min, least_min, accept, ln_s, ln_rest_tab, ln_window, ln_total, total, xlx,
                       loc_offsets, loc_centres, loc_pos, picked, seen, perm, window_counts, touched, centres, stamp,
                       count, start, entries, entry_loc, cum):
    """The largest LLR of replication r (see stp_replicate_maxima); the scratch arrays come back clean."""
    n_cases = case_location.shape[0]
    n_windows = window_day_totals.shape[0]
    n_window_cases = picked.shape[0]
    stp_replicate_cases(seed, r, n_cases, n_window_cases, picked, seen, perm)
    # the window's cases at their locations; the distinct locations they touch
    n_touched = 0
    j = 0
    for d in range(n_windows):
        for _ in range(window_day_totals[d]):
            loc = case_location[picked[j]]
            if window_counts[loc, n_windows - 1] == 0:
                touched[n_touched] = loc
                n_touched += 1
            for w in range(d, n_windows):
                window_counts[loc, w] += 1
            j += 1
    # only circles around a centre whose list holds a touched location can hold a case
    n_centres = 0
    n_entries = 0
    walk = 0
    for k in range(n_touched):
        loc = touched[k]
        for m in range(loc_offsets[loc], loc_offsets[loc + 1]):
            ci = loc_centres[m]
            if stamp[ci] != r:
                stamp[ci] = r
                count[ci] = 0
                centres[n_centres] = ci
                n_centres += 1
                walk += offsets[ci + 1] - offsets[ci]
            count[ci] += 1
            n_entries += 1
    # few entries per centre: visit those (sorted per centre); many: walk the lists
    jump = 4 * n_entries < walk
    if jump:
        run = 0
        for k in range(n_centres):
            ci = centres[k]
            start[ci] = run
            run += count[ci]
            count[ci] = start[ci]  # fill pointer
        for k in range(n_touched):
            loc = touched[k]
            for m in range(loc_offsets[loc], loc_offsets[loc + 1]):
                ci = loc_centres[m]
                entries[count[ci]] = loc_pos[m]
                entry_loc[count[ci]] = loc
                count[ci] += 1
        for k in range(n_centres):
            ci = centres[k]
            for a in range(start[ci] + 1, count[ci]):  # insertion sort: a handful each
                v = entries[a]
                v_loc = entry_loc[a]
                b = a - 1
                while b >= start[ci] and entries[b] > v:
                    entries[b + 1] = entries[b]
                    entry_loc[b + 1] = entry_loc[b]
                    b -= 1
                entries[b + 1] = v
                entry_loc[b + 1] = v_loc
    best = 0.0
    for attempt in range(2):
        thresholds = c_need if attempt == 0 else c_min
        floor = floor_need if attempt == 0 else floor_min
        least = least_need if attempt == 0 else least_min
        best = 0.0
        for k in range(n_centres):
            ci = centres[k]
            if jump:
                llr = _stp_jump_centre(ci, entries, entry_loc, start[ci], count[ci], offsets, thresholds, floor, ln_s,
                                       ln_rest_tab, ln_window, ln_total, window_counts, total, xlx, cum)
            else:
                llr, _, _, _ = _stp_best_of_centre(ci, offsets, nbr_index, thresholds, least, ln_s, ln_rest_tab,
                                                   ln_window, ln_total, window_counts, total, xlx, cum)
            if llr > best:
                best = llr
        if best >= accept:
            break
    for k in range(n_touched):
        for w in range(n_windows):
            window_counts[touched[k], w] = 0
    return best


@pnjit
def stp_replicate_maxima(seed, rep_lo, rep_hi, case_location, window_day_totals, offsets, nbr_index, c_min,
                         floor_min, least_min, c_need, floor_need, least_need, accept, ln_s, ln_rest_tab, ln_window,
                         ln_total, total, xlx, n_locations, loc_offsets, loc_centres, loc_pos, n_blocks, out_max):
    """out_max[r - rep_lo] = the largest LLR of replication r, for r in rep_lo .. rep_hi-1.

    case_location[i] is the location of case i (one entry per case); window_day_totals[d] the
    cases of the d-th last day (d = 0 .. W-1); loc_offsets / loc_centres / loc_pos list, for each
    location, the centres whose neighbour lists hold it and where (a circle without a window case
    has LLR 0, so a replication scans only the centres around the locations its window cases fall
    on). Each replication is first scanned against c_need (the counts that reach LLR ``accept``,
    see stp_thresholds); when its largest LLR falls short of ``accept`` it is scanned again against
    c_min, so the maximum is exact either way. floor / least come from stp_position_floors.
    Replications run in parallel, ``n_blocks`` blocks of them (each block strides through the
    range with its own scratch); a replication's answer depends on (seed, r) alone.
    """
    n_cases = case_location.shape[0]
    n_windows = window_day_totals.shape[0]
    n_window_cases = 0
    for d in range(n_windows):
        n_window_cases += window_day_totals[d]
    n_centres = offsets.shape[0] - 1
    n_reps = rep_hi - rep_lo
    for b in prange(n_blocks):
        picked = np.empty(n_window_cases, np.int64)
        seen = np.zeros(n_cases, np.bool_)
        perm = np.empty(n_cases if 2 * n_window_cases > n_cases else 0, np.int64)
        window_counts = np.zeros((n_locations, n_windows), np.int32)
        touched = np.empty(n_window_cases, np.int64)
        centres = np.empty(n_centres, np.int64)
        stamp = np.full(n_centres, -1, np.int64)
        count = np.zeros(n_centres, np.int64)
        start = np.zeros(n_centres, np.int64)
        entries = np.empty(nbr_index.shape[0], np.int64)
        entry_loc = np.empty(nbr_index.shape[0], np.int64)
        cum = np.zeros(n_windows, np.int64)
        for i in range(b, n_reps, n_blocks):
            out_max[i] = _stp_replicate_max(seed, rep_lo + i, case_location, window_day_totals, offsets, nbr_index,
                                            c_need, floor_need, least_need, c_min, floor_min, least_min, accept, ln_s,
                                            ln_rest_tab, ln_window, ln_total, total, xlx, loc_offsets, loc_centres,
                                            loc_pos, picked, seen, perm, window_counts, touched, centres, stamp, count,
                                            start, entries, entry_loc, cum)


# ------------------------------------------------------------------ expectation-based Poisson scan


@njit
def _ebp_score(xlx, c, b, ln_b):
    if c > b:
        return _x_log_x(xlx, c) - c * ln_b + b - c
    return 0.0


@pnjit
def ebp_zone_baselines(knn_index, base_cum, zone_b, zone_ln_b):
    """zone_b[i, k, w] = expected count of centre i's k+1 nearest over the last w+1 periods, and its log."""
    n_centres, n_k = knn_index.shape
    n_windows = base_cum.shape[1]
    for i in prange(n_centres):
        for w in range(n_windows):
            s = 0.0
            for k in range(n_k):
                s += base_cum[knn_index[i, k], w]
                zone_b[i, k, w] = s
                zone_ln_b[i, k, w] = math.log(s) if s > 0.0 else -np.inf


@njit
def _ebp_centre(i, knn_index, window_counts, zone_b, zone_ln_b, xlx, cum, scores):
    """Scores of centre i's zones (k+1 nearest, last w+1 periods) into scores[k, w] if given; returns the best."""
    n_k = knn_index.shape[1]
    n_windows = window_counts.shape[1]
    for w in range(n_windows):
        cum[w] = 0
    best = 0.0
    for k in range(n_k):
        loc = knn_index[i, k]
        for w in range(n_windows):
            cum[w] += window_counts[loc, w]
            sc = _ebp_score(xlx, cum[w], zone_b[i, k, w], zone_ln_b[i, k, w])
            if scores.shape[0] > 0:
                scores[k, w] = sc
            if sc > best:
                best = sc
    return best


@pnjit
def ebp_scan(knn_index, window_counts, zone_b, zone_ln_b, xlx, scores, zone_c):
    """scores[i, k, w] and the observed counts zone_c[i, k, w] of every zone and window."""
    n_centres, n_k = knn_index.shape
    n_windows = window_counts.shape[1]
    for i in prange(n_centres):
        cum = np.zeros(n_windows, np.int64)
        _ebp_centre(i, knn_index, window_counts, zone_b, zone_ln_b, xlx, cum, scores[i])
        for w in range(n_windows):
            c = 0
            for k in range(n_k):
                c += window_counts[knn_index[i, k], w]
                zone_c[i, k, w] = c


@njit
def ebp_replicate_counts(seed, replicate, baselines, out):
    """out[l, d] ~ Poisson(baselines[l, d]) for replication ``replicate`` (d = periods back from the last).

    Location l draws from stream (seed, replicate * n_locations + l).
    """
    n_locations, n_windows = baselines.shape
    for loc in range(n_locations):
        state = stream_start(seed, replicate * n_locations + loc)
        for d in range(n_windows):
            state, k = next_poisson(state, baselines[loc, d])
            out[loc, d] = k


@pnjit
def ebp_replicate_maxima(seed, rep_lo, rep_hi, baselines, knn_index, zone_b, zone_ln_b, xlx, out_max):
    """out_max[r - rep_lo] = the largest score of replication r (Poisson(baseline) counts)."""
    n_locations, n_windows = baselines.shape
    n_centres = knn_index.shape[0]
    window_counts = np.zeros((n_locations, n_windows), np.int64)
    centre_best = np.zeros(n_centres)
    cum = np.zeros((n_centres, n_windows), np.int64)
    no_scores = np.zeros((0, 0))
    for r in range(rep_lo, rep_hi):
        for loc in prange(n_locations):
            state = stream_start(seed, r * n_locations + loc)
            total = 0
            for d in range(n_windows):
                state, k = next_poisson(state, baselines[loc, d])
                total += k
                window_counts[loc, d] = total
        for i in prange(n_centres):
            centre_best[i] = _ebp_centre(i, knn_index, window_counts, zone_b, zone_ln_b, xlx, cum[i], no_scores)
        best = 0.0
        for i in range(n_centres):
            if centre_best[i] > best:
                best = centre_best[i]
        out_max[r - rep_lo] = best
