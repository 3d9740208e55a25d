"""Kernels of the day cube's slots (numpy, numba, math only): an event's slot key, dense numbers of
keys kept sorted in tiers, and the most events a slot would hold. A catch-up of a thousand events
ran these as some twenty small numpy calls holding the GIL, a fifth of its time; here they run
without it.

A slot's key packs, high bits first: the local day plus :data:`DAY_BIAS`, category id + 1, worker
id + 1 and the place id of the event's area chain (:data:`DAY_BITS` … :data:`PLACE_BITS`, 64 in
all). The day in the high bits numbers new slots in order of day (the cube's zone map skips well).
An area chain (grid, community, street, district ids, each + 1) is packed into one int64:
``grid << 36 | community << 24 | street << 12 | district``.
"""

from __future__ import annotations

import numpy as np

from citygrid.kernels._jit import njit

US_PER_DAY = 86_400_000_000
DAY_BITS, CATEGORY_BITS, WORKER_BITS, PLACE_BITS = 16, 12, 18, 18
DAY_BIAS = 1 << (DAY_BITS - 1)
#: Key of a chain's grid id + 1 below this, and of each of its other ids + 1 below :data:`AREA_LIMIT`.
GRID_LIMIT, AREA_LIMIT = 1 << 24, 1 << 12
#: Returned by :func:`slot_keys` when an id outgrew its bits of the key.
OUTGROWN = -1


@njit
def _find(keys, numbers, key, lo):
    """``(number, at)``: the number of ``key`` in sorted ``keys`` (-1: absent) searched from ``lo`` on,
    and where it is or would go (a later, larger key is searched from there)."""
    hi = keys.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    if lo < keys.shape[0] and keys[lo] == key:
        return np.int64(numbers[lo]), lo
    return np.int64(-1), lo


@njit
def slot_keys(rows, occurred, codes, offset_us, place_keys, place_numbers, place_small_keys, place_small_numbers,
              keys, unnumbered):
    """Write the slot key of each event ``rows[i]`` into ``keys[i]``: its local day under
    ``offset_us``, category (``codes[0]``), worker (``codes[4]``) and the place id of its area
    chain (``codes[5:9]``), numbered in the two tiers ``place_keys`` / ``place_small_keys``
    (sorted packed chains) and their numbers. An event's chain is looked up once per grid unless it
    differs from the one last seen of its grid (nearly never: an event's chain is its grid's).

    Returns :data:`OUTGROWN` when an id outgrew its bits; else ``m``, 0 when every chain is
    numbered; else the chains not numbered yet are written to ``unnumbered[:m]`` (each at least
    once, repeated at most once per event) and the keys are not all written: number them, call
    again."""
    n = rows.shape[0]
    top = 0
    for i in range(n):
        top = max(top, np.int64(codes[5, rows[i]]) + 2)
    last_chain = np.full(top, -1, dtype=np.int64)
    last_place = np.zeros(top, dtype=np.int64)
    m = 0
    for i in range(n):
        r = rows[i]
        grid = np.int64(codes[5, r]) + 1
        community = np.int64(codes[6, r]) + 1
        street = np.int64(codes[7, r]) + 1
        district = np.int64(codes[8, r]) + 1
        if grid >= GRID_LIMIT or community >= AREA_LIMIT or street >= AREA_LIMIT or district >= AREA_LIMIT:
            return OUTGROWN
        category = np.int64(codes[0, r]) + 1
        worker = np.int64(codes[4, r]) + 1
        biased = (occurred[r] + offset_us) // US_PER_DAY + DAY_BIAS
        if category >= 1 << CATEGORY_BITS or worker >= 1 << WORKER_BITS or biased < 0 or biased >= 1 << DAY_BITS:
            return OUTGROWN
        chain = grid << 36 | community << 24 | street << 12 | district
        if last_chain[grid] == chain:
            place = last_place[grid]
        else:
            place = _find(place_keys, place_numbers, chain, 0)[0]
            if place < 0:
                place = _find(place_small_keys, place_small_numbers, chain, 0)[0]
            if place < 0:
                unnumbered[m] = chain  # once for a grid's run of events of it (a rebuild's first read: all)
                m += 1
            last_chain[grid], last_place[grid] = chain, place
        if place < 0:
            continue
        key = np.uint64(biased) << np.uint64(CATEGORY_BITS) | np.uint64(category)
        key = key << np.uint64(WORKER_BITS) | np.uint64(worker)
        keys[i] = key << np.uint64(PLACE_BITS) | np.uint64(place)
    return m


@njit
def number_keys(keys, large_keys, large_numbers, small_keys, small_numbers, count, make, out):
    """Write the number of each of ``keys`` (any order, repeats allowed) into ``out``: its number in
    the sorted tiers ``large_keys`` / ``small_keys``; a key in neither is numbered ``count``,
    ``count + 1``, … in key order when ``make`` (else -1). Returns the new keys (sorted) and, for
    each, the index in ``keys`` of one of its occurrences."""
    n = keys.shape[0]
    order = np.argsort(keys)
    fresh_keys = np.empty(n, dtype=keys.dtype)
    fresh_at = np.empty(n, dtype=np.int64)
    m = 0
    at_large = 0
    at_small = 0
    i = 0
    while i < n:
        key = keys[order[i]]
        number, at_large = _find(large_keys, large_numbers, key, at_large)
        if number < 0:
            number, at_small = _find(small_keys, small_numbers, key, at_small)
        if number < 0 and make:
            number = count + m
            fresh_keys[m] = key
            fresh_at[m] = order[i]
            m += 1
        while i < n and keys[order[i]] == key:
            out[order[i]] = number
            i += 1
    return fresh_keys[:m].copy(), fresh_at[:m].copy()


@njit
def merge_keys(keys, numbers, new_keys, new_numbers):
    """Sorted ``keys`` with sorted ``new_keys`` (none of them in ``keys``) merged in, and their
    numbers alongside (the dtype of ``numbers``)."""
    n, k = keys.shape[0], new_keys.shape[0]
    out_keys = np.empty(n + k, dtype=keys.dtype)
    out_numbers = np.empty(n + k, dtype=numbers.dtype)
    i = 0
    j = 0
    for o in range(n + k):
        if j == k or (i < n and keys[i] < new_keys[j]):
            out_keys[o], out_numbers[o] = keys[i], numbers[i]
            i += 1
        else:
            out_keys[o], out_numbers[o] = new_keys[j], new_numbers[j]
            j += 1
    return out_keys, out_numbers


@njit
def fill_slots(rows, keys, codes, kept_rows, first, offset_us, day_us, slot_codes):
    """Make slots ``first``, ``first + 1``, … of events ``rows`` (one a slot) and their keys: the
    first instant of the key's local day, and the event's code rows ``kept_rows``."""
    for i in range(rows.shape[0]):
        day = np.int64(keys[i] >> np.uint64(CATEGORY_BITS + WORKER_BITS + PLACE_BITS)) - DAY_BIAS
        day_us[first + i] = day * US_PER_DAY - offset_us
        for r in kept_rows:
            slot_codes[r, first + i] = codes[r, rows[i]]


@njit
def most_reported(slots, counts, column):
    """The largest ``counts[s, column]`` plus the times ``s`` is in ``slots``, over the slots in it
    (0: none). Counted in a table over the slots' span when it is dense (a rebuild's), else over
    ``slots`` sorted (a catch-up's few new and old slots)."""
    n = slots.shape[0]
    if n == 0:
        return np.int64(0)
    lo, hi = slots.min(), slots.max()
    most = np.int64(0)
    if hi - lo < 4 * n + 1024:
        times = np.zeros(hi - lo + 1, dtype=np.int64)
        for s in slots:
            times[s - lo] += 1
        for k in range(hi - lo + 1):
            if times[k]:
                most = max(most, np.int64(counts[lo + k, column]) + times[k])
        return most
    ordered = np.sort(slots)
    i = 0
    while i < n:
        j = i
        while j < n and ordered[j] == ordered[i]:
            j += 1
        most = max(most, np.int64(counts[ordered[i], column]) + (j - i))
        i = j
    return most
