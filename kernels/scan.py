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
A replication draws every location-period count from Poisson(baseline) and scores only the zones
that hold a count (a zone with ``C = 0`` scores 0).

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
from citygrid.kernels.streams import (next_below, next_poisson, next_uniform, poisson_of_uniform, poisson_zero_below,
                                      stream_start)

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
    stp_position_least). Ties keep the first cylinder met: fewer locations, then the shorter
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
def stp_position_least(thresholds, n_windows, least):
    """least[pos] = the smallest of thresholds[pos*W .. pos*W + W-1], as a byte capped at 255 (a cap
    only makes the check that skips positions skip fewer), so that it stays in cache."""
    for pos in prange(least.shape[0]):
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


# A replication compares every window's count with its threshold at once: the counts of the W
# windows sit in lanes of ``bits`` bits (16, or 32 when the window holds 2**15 cases or more), L =
# 64 // bits lanes to a 64-bit word, and so do the thresholds (capped at 2**(bits-1) - 1, the
# lanes past the last window at the cap). With c and n below 2**(bits-1) in every lane,
# ``((c | H) - n) & H`` (H: each lane's top bit) has a lane's top bit set exactly when c >= n, and no
# lane borrows from the next. A set bit is then checked window by window against the exact
# thresholds (a capped threshold only lets more through).
#
# A position that does not close a circle (the next location is at the same distance) is scored
# as the circle that closes its run of equal distances (close_at): its count is at most that
# circle's, so its score is too (the LLR grows with the count), and the largest score is the same.
# Between two positions where window cases enter, the counts stay put and, at a fixed count, the
# LLR falls as the circle grows (mu grows with S and the thresholds do not fall), so a replication
# need score only the positions where cases enter.


@pnjit
def stp_pack_thresholds(thresholds, close_at, n_windows, bits, packed):
    """packed[pos, g]: lane l holds min(thresholds[q*W + g*L + l], 2**(bits-1) - 1), q = close_at[pos]."""
    n_lanes = 64 // bits
    cap = (1 << (bits - 1)) - 1
    for pos in prange(packed.shape[0]):
        q = close_at[pos]
        for g in range(packed.shape[1]):
            word = np.uint64(0)
            for lane in range(n_lanes):
                w = g * n_lanes + lane
                t = min(thresholds[q * n_windows + w], cap) if w < n_windows else cap
                word |= np.uint64(t) << np.uint64(lane * bits)
            packed[pos, g] = word


@pnjit
def stp_segment_floors(packed, offsets, segment_end, bits, floors):
    """floors[ci, s, g]: lane by lane, the smallest of packed[pos, g] over the positions of segment s
    of centre ci's list (segment_end[ci, s-1] <= pos < segment_end[ci, s]; the cap where it has
    none). A circle in segment s whose centre's count up to the segment's end reaches no lane of its
    floor scores 0."""
    n_lanes = 64 // bits
    mask = (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
    cap = (np.uint64(1) << np.uint64(bits - 1)) - np.uint64(1)
    for ci in prange(offsets.shape[0] - 1):
        lo = offsets[ci]
        for s in range(segment_end.shape[1]):
            hi = segment_end[ci, s]
            for g in range(packed.shape[1]):
                word = np.uint64(0)
                for lane in range(n_lanes):
                    shift = np.uint64(lane * bits)
                    m = cap
                    for pos in range(lo, hi):
                        m = min(m, (packed[pos, g] >> shift) & mask)
                    word |= m << shift
                floors[ci, s, g] = word
            lo = hi


@njit
def _lane_high_bits(bits):
    high = np.uint64(0)
    for lane in range(64 // bits):
        high |= np.uint64(1) << np.uint64(lane * bits + bits - 1)
    return high


@njit
def _stp_day_adds(n_windows, bits, n_words):
    """adds[d, g]: what one case of the d-th last day adds to word g of its location's packed counts
    (1 in the lane of every window w >= d)."""
    n_lanes = 64 // bits
    adds = np.zeros((n_windows, n_words), np.uint64)
    for d in range(n_windows):
        for w in range(d, n_windows):
            adds[d, w // n_lanes] += np.uint64(1) << np.uint64((w % n_lanes) * bits)
    return adds


@njit
def _stp_packed_best(cum, pos, close_at, thresholds, n_windows, bits, ln_s, ln_rest_tab, ln_window, ln_total, total,
                     xlx):
    """The largest LLR of the cylinders of the circle closed at close_at[pos] whose count (window
    w's in lane w of cum) reaches its threshold."""
    n_lanes = 64 // bits
    mask = (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
    q = close_at[pos]
    best = 0.0
    for w in range(n_windows):
        c = np.int64((cum[w // n_lanes] >> np.uint64((w % n_lanes) * bits)) & mask)
        i = q * n_windows + w
        if c >= thresholds[i]:
            llr = _stp_llr(xlx, c, total, ln_s[q], ln_window[w], ln_total, ln_rest_tab[i])
            if llr > best:
                best = llr
    return best


@njit
def _stp_entries_centre(entries, entry_loc, lo, hi, close_at, packed_counts, packed, high, thresholds, n_windows, bits,
                        ln_s, ln_rest_tab, ln_window, ln_total, total, xlx, cum):
    """The largest LLR of one centre's cylinders, visiting the positions entries[lo:hi] (sorted;
    entry_loc their locations): all of its list's, or only those where a window case enters."""
    n_words = cum.shape[0]
    for g in range(n_words):
        cum[g] = 0
    best = 0.0
    for k in range(lo, hi):
        loc = entry_loc[k]
        pos = entries[k]
        hit = np.uint64(0)
        for g in range(n_words):
            c = cum[g] + packed_counts[loc, g]
            cum[g] = c
            hit |= ((c | high) - packed[pos, g]) & high
        if hit != 0:
            llr = _stp_packed_best(cum, pos, close_at, thresholds, n_windows, bits, ln_s, ln_rest_tab, ln_window,
                                   ln_total, total, xlx)
            if llr > best:
                best = llr
    return best


#: A replication visits only the entries of its window cases when they are fewer than this share of
#: the positions; else it walks every list (cheaper than finding and sorting the entries).
SPARSE_SHARE = 0.25


@njit
def _stp_replicate_max(seed, r, case_location, window_day_totals, offsets, nbr_index, close_at, c_need, packed_need,
                       floors_need, c_min, packed_min, floors_min, segment_end, accept, bits, sparse_share, ln_s,
                       ln_rest_tab, ln_window, ln_total, total, xlx, loc_offsets, loc_centres, loc_pos, positions,
                       day_adds, picked, seen, perm, packed_counts, touched, centres, kept_centres, stamp, segment_cum,
                       count, start, entries, entry_loc, cum):
    """The largest LLR of replication r (see stp_replicate_maxima); the scratch arrays come back clean."""
    n_cases = case_location.shape[0]
    n_windows = window_day_totals.shape[0]
    n_window_cases = picked.shape[0]
    n_lanes = 64 // bits
    n_words = packed_counts.shape[1]
    n_segments = segment_end.shape[1]
    stp_replicate_cases(seed, r, n_cases, n_window_cases, picked, seen, perm)
    # the window's cases at their locations (one of the d-th last day counts in windows d .. W-1);
    # the distinct locations they touch, and how many list entries those have
    last_word = (n_windows - 1) // n_lanes  # every case counts in the last window's lane
    n_touched = 0
    n_entries = 0
    j = 0
    for d in range(n_windows):
        for _ in range(window_day_totals[d]):
            loc = case_location[picked[j]]
            if packed_counts[loc, last_word] == 0:
                touched[n_touched] = loc
                n_touched += 1
                n_entries += loc_offsets[loc + 1] - loc_offsets[loc]
            for g in range(d // n_lanes, n_words):
                packed_counts[loc, g] += day_adds[d, g]
            j += 1
    high = _lane_high_bits(bits)
    sparse = n_entries < sparse_share * nbr_index.shape[0]
    n_centres = 0
    if sparse:
        # the centres whose lists hold a touched location, with the counts of each segment of their lists
        for k in range(n_touched):
            loc = touched[k]
            for m in range(loc_offsets[loc], loc_offsets[loc + 1]):
                ci = loc_centres[m]
                if stamp[ci] != r:
                    stamp[ci] = r
                    centres[n_centres] = ci
                    n_centres += 1
                    for s in range(n_segments):
                        for g in range(n_words):
                            segment_cum[ci, s, g] = 0
                s = 0
                while loc_pos[m] >= segment_end[ci, s]:
                    s += 1
                for g in range(n_words):
                    segment_cum[ci, s, g] += packed_counts[loc, g]
    best = 0.0
    for attempt in range(2):
        thresholds = c_need if attempt == 0 else c_min
        packed = packed_need if attempt == 0 else packed_min
        floors = floors_need if attempt == 0 else floors_min
        best = 0.0
        if not sparse:
            for ci in range(offsets.shape[0] - 1):  # every position of every list
                llr = _stp_entries_centre(positions, nbr_index, offsets[ci], offsets[ci + 1], close_at, packed_counts,
                                          packed, high, thresholds, n_windows, bits, ln_s, ln_rest_tab, ln_window,
                                          ln_total, total, xlx, cum)
                if llr > best:
                    best = llr
        else:
            # only centres where the count up to a segment's end reaches, in some window, the least
            # threshold of that segment can score (marked -2 - r); their entries, in position order
            kept = -2 - r
            n_kept = 0
            for k in range(n_centres):
                ci = centres[k]
                hit = np.uint64(0)
                for g in range(n_words):
                    cum[g] = 0
                for s in range(n_segments):
                    for g in range(n_words):
                        cum[g] += segment_cum[ci, s, g]
                        hit |= ((cum[g] | high) - floors[ci, s, g]) & high
                if hit != 0:
                    stamp[ci] = kept
                    kept_centres[n_kept] = ci
                    n_kept += 1
                    count[ci] = 0
            for k in range(n_touched):
                loc = touched[k]
                for m in range(loc_offsets[loc], loc_offsets[loc + 1]):
                    if stamp[loc_centres[m]] == kept:
                        count[loc_centres[m]] += 1
            run = 0
            for k in range(n_kept):
                ci = kept_centres[k]
                start[ci] = run
                run += count[ci]
                count[ci] = start[ci]  # fill pointer
            for k in range(n_touched):
                loc = touched[k]
                for m in range(loc_offsets[loc], loc_offsets[loc + 1]):
                    ci = loc_centres[m]
                    if stamp[ci] == kept:
                        entries[count[ci]] = loc_pos[m]
                        entry_loc[count[ci]] = loc
                        count[ci] += 1
            for k in range(n_kept):
                ci = kept_centres[k]
                stamp[ci] = r
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
                llr = _stp_entries_centre(entries, entry_loc, start[ci], count[ci], close_at, packed_counts, packed,
                                          high, thresholds, n_windows, bits, ln_s, ln_rest_tab, ln_window, ln_total,
                                          total, xlx, cum)
                if llr > best:
                    best = llr
        if best >= accept:
            break
    for k in range(n_touched):
        for g in range(n_words):
            packed_counts[touched[k], g] = 0
    return best


@pnjit
def stp_replicate_maxima(seed, rep_lo, rep_hi, case_location, window_day_totals, offsets, nbr_index, close_at, c_min,
                         packed_min, floors_min, c_need, packed_need, floors_need, segment_end, accept, bits,
                         sparse_share, ln_s, ln_rest_tab, ln_window, ln_total, total, xlx, n_locations, loc_offsets,
                         loc_centres, loc_pos, n_blocks, out_max):
    """out_max[r - rep_lo] = the largest LLR of replication r, for r in rep_lo .. rep_hi-1.

    case_location[i] is the location of case i (one entry per case); window_day_totals[d] the
    cases of the d-th last day (d = 0 .. W-1); close_at[pos] the position that closes the circle
    holding pos (the last one at its distance); loc_offsets / loc_centres / loc_pos list, for each
    location, the centres whose neighbour lists hold it and where. A replication whose window cases
    have fewer list entries than ``sparse_share`` of all positions visits only the centres around
    them where a segment's count reaches its floor (segment_end, stp_segment_floors), and only
    those entries; else it
    walks every list. Each replication is first scanned against c_need (the counts that reach LLR
    ``accept``, see stp_thresholds); when its largest LLR falls short of ``accept`` it is scanned
    again against c_min, so the maximum is exact either way. packed_* come from
    stp_pack_thresholds with ``bits`` bits a lane (every window's count must stay below
    2**(bits-1)), floors_* from stp_segment_floors. Replications run in parallel, ``n_blocks`` blocks
    of them (each block strides through the range with its own scratch); a replication's answer
    depends on (seed, r) alone.
    """
    n_cases = case_location.shape[0]
    n_windows = window_day_totals.shape[0]
    n_window_cases = 0
    for d in range(n_windows):
        n_window_cases += window_day_totals[d]
    n_centres = offsets.shape[0] - 1
    n_reps = rep_hi - rep_lo
    n_words = packed_min.shape[1]
    day_adds = _stp_day_adds(n_windows, bits, n_words)
    positions = np.arange(nbr_index.shape[0])
    for b in prange(n_blocks):
        picked = np.empty(n_window_cases, np.int64)
        seen = np.zeros(n_cases, np.bool_)
        perm = np.empty(n_cases if 2 * n_window_cases > n_cases else 0, np.int64)
        packed_counts = np.zeros((n_locations, n_words), np.uint64)
        touched = np.empty(n_window_cases, np.int64)
        centres = np.empty(n_centres, np.int64)
        kept_centres = np.empty(n_centres, np.int64)
        stamp = np.full(n_centres, -1, np.int64)
        segment_cum = np.zeros((n_centres, segment_end.shape[1], n_words), np.uint64)
        count = np.zeros(n_centres, np.int64)
        start = np.zeros(n_centres, np.int64)
        entries = np.empty(nbr_index.shape[0], np.int64)
        entry_loc = np.empty(nbr_index.shape[0], np.int64)
        cum = np.zeros(n_words, np.uint64)
        for i in range(b, n_reps, n_blocks):
            out_max[i] = _stp_replicate_max(seed, rep_lo + i, case_location, window_day_totals, offsets, nbr_index,
                                            close_at, c_need, packed_need, floors_need, c_min, packed_min, floors_min,
                                            segment_end, accept, bits, sparse_share, ln_s, ln_rest_tab, ln_window,
                                            ln_total, total, xlx, loc_offsets, loc_centres, loc_pos, positions,
                                            day_adds, picked, seen, perm, packed_counts, touched, centres,
                                            kept_centres, stamp, segment_cum, count, start, entries, entry_loc, cum)


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
def ebp_zero_below(baselines, out):
    """out[l, d] = the uniforms below which a replication's count of baseline[l, d] is 0 (exp(-B))."""
    n_locations, n_windows = baselines.shape
    for loc in prange(n_locations):
        for d in range(n_windows):
            out[loc, d] = poisson_zero_below(baselines[loc, d])


@njit
def ebp_centres_of_locations(knn_index, loc_offsets, loc_centres, loc_rank):
    """CSR from each location to the centres whose k nearest hold it (in centre order), and its
    place among each one's nearest (0 for the centre itself)."""
    n_centres, n_k = knn_index.shape
    fill = loc_offsets[:-1].copy()
    for i in range(n_centres):
        for k in range(n_k):
            loc = knn_index[i, k]
            loc_centres[fill[loc]] = i
            loc_rank[fill[loc]] = k
            fill[loc] += 1


@njit
def _ebp_draw(seed, r, baselines, zero_below, window_counts, touched):
    """Replication r's counts (the draws of ebp_replicate_counts), summed over the last 1 .. W
    periods into window_counts; the locations with a count are listed in touched (their number returned)."""
    n_locations, n_windows = baselines.shape
    n_touched = 0
    for loc in range(n_locations):
        state = stream_start(seed, r * n_locations + loc)
        total = 0
        for d in range(n_windows):
            mu = baselines[loc, d]
            if mu > 0.0:  # next_poisson draws no uniform otherwise
                state, u = next_uniform(state)
                if u >= zero_below[loc, d]:
                    total += poisson_of_uniform(u, mu)
            window_counts[loc, d] = total
        if total > 0:
            touched[n_touched] = loc
            n_touched += 1
    return n_touched


#: Margin by which a centre's bound must beat the best score so far for its zones to be scored, far
#: above the rounding error of a score (about 1e-13 for counts in the thousands).
EBP_BOUND_SLACK = 1e-6


@njit
def _ebp_centre_max(i, first, knn_index, window_counts, zone_b, zone_ln_b, xlx, cum):
    """The best score of centre i's zones (as _ebp_centre) from its ``first``-th nearest on, the
    first that holds a count (the smaller zones have C = 0 and score 0)."""
    n_k = knn_index.shape[1]
    n_windows = window_counts.shape[1]
    for w in range(n_windows):
        cum[w] = 0
    best = 0.0
    for k in range(first, n_k):
        loc = knn_index[i, k]
        if window_counts[loc, n_windows - 1] != 0:
            for w in range(n_windows):
                cum[w] += window_counts[loc, w]
        for w in range(n_windows):
            sc = _ebp_score(xlx, cum[w], zone_b[i, k, w], zone_ln_b[i, k, w])
            if sc > best:
                best = sc
    return best


@njit
def _ebp_replicate_max(seed, r, baselines, zero_below, knn_index, loc_offsets, loc_centres, loc_rank, zone_b,
                       zone_ln_b, xlx, window_counts, touched, stamp, centres, total, first, bound, cum):
    """The largest score of replication r. Only centres whose nearest hold a count can score; a
    centre's zones hold at most its total count T (the longest window, all k nearest) over at least
    the baseline B0 of its smallest zone with a count (the shortest window), and the score grows
    with C and falls with B, so no zone of it beats score(T, B0): centres are scored only while
    that bound beats the best so far (the one with the highest bound first)."""
    n_touched = _ebp_draw(seed, r, baselines, zero_below, window_counts, touched)
    last = window_counts.shape[1] - 1
    n_centres = 0
    for t in range(n_touched):
        loc = touched[t]
        c = window_counts[loc, last]
        for m in range(loc_offsets[loc], loc_offsets[loc + 1]):
            ci = loc_centres[m]
            if stamp[ci] != r:
                stamp[ci] = r
                centres[n_centres] = ci
                n_centres += 1
                total[ci] = 0
                first[ci] = loc_rank[m]
            total[ci] += c
            first[ci] = min(first[ci], loc_rank[m])
    top = -1
    top_bound = -1.0
    for t in range(n_centres):
        ci = centres[t]
        k = first[ci]
        bound[t] = _ebp_score(xlx, total[ci], zone_b[ci, k, 0], zone_ln_b[ci, k, 0])
        if bound[t] > top_bound:
            top_bound = bound[t]
            top = t
    best = 0.0
    if top >= 0:
        ci = centres[top]
        best = _ebp_centre_max(ci, first[ci], knn_index, window_counts, zone_b, zone_ln_b, xlx, cum)
    for t in range(n_centres):
        if t != top and bound[t] + EBP_BOUND_SLACK > best:
            ci = centres[t]
            sc = _ebp_centre_max(ci, first[ci], knn_index, window_counts, zone_b, zone_ln_b, xlx, cum)
            if sc > best:
                best = sc
    return best


@pnjit
def ebp_replicate_maxima(seed, rep_lo, rep_hi, baselines, zero_below, knn_index, loc_offsets, loc_centres, loc_rank,
                         zone_b, zone_ln_b, xlx, n_blocks, out_max):
    """out_max[r - rep_lo] = the largest score of replication r (Poisson(baseline) counts).

    baselines[l, d]: location l's baseline d periods back; zero_below from ebp_zero_below;
    loc_offsets / loc_centres / loc_rank from ebp_centres_of_locations. A replication draws every
    location's counts from its stream (as ebp_replicate_counts) and scores only the centres whose k
    nearest hold a location with a count (every other zone has C = 0 and scores 0), each from its
    first such location on, and only while a bound on its scores beats the best so far
    (_ebp_replicate_max). Replications run in parallel, ``n_blocks`` blocks of them (each strides
    through the range with its own scratch); a replication's maximum depends on (seed, r) alone.
    """
    n_locations, n_windows = baselines.shape
    n_centres = knn_index.shape[0]
    n_reps = rep_hi - rep_lo
    for b in prange(n_blocks):
        window_counts = np.zeros((n_locations, n_windows), np.int64)
        touched = np.empty(n_locations, np.int64)
        stamp = np.full(n_centres, -1, np.int64)
        centres = np.empty(n_centres, np.int64)
        total = np.zeros(n_centres, np.int64)
        first = np.zeros(n_centres, np.int64)
        bound = np.zeros(n_centres)
        cum = np.zeros(n_windows, np.int64)
        for i in range(b, n_reps, n_blocks):
            out_max[i] = _ebp_replicate_max(seed, rep_lo + i, baselines, zero_below, knn_index, loc_offsets,
                                            loc_centres, loc_rank, zone_b, zone_ln_b, xlx, window_counts, touched,
                                            stamp, centres, total, first, bound, cum)
