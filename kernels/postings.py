"""Candidates of a free-text query from an inverted index's postings (the address search's first step).

The index (built by :class:`citygrid.engine.houses.address.AddressIndex`): the postings of term ``t``
are ``rows[offsets[t]:offsets[t + 1]]``, the documents (building rows) holding it, ascending.

:func:`score_postings` takes the query's terms ``at`` (indexes into ``offsets``) and their weights
(all > 0) and:

1. reads the postings of the rarest terms first (shortest postings; ties keep the query's order),
   as many as fit in ``budget`` postings (at least one term), adding each term's weight to every
   document in its postings (documents with ``removed[row]`` set are skipped);
2. keeps the ``k`` documents with the most weight (ties at the cut: the lowest rows);
3. adds to each kept document the weight of every term not read in step 1 whose postings hold it
   (a binary search per term and document), terms in ascending order of ``at``'s position.

The sums are made in that order (step 1 term by term in rarity order, then step 3), so a score is
the same float whatever the number of threads. ``scratch`` (float64, zeros, one per document) and
``touched`` (int32, one per document) are the caller's work buffers: ``scratch`` is zeros again when
the kernel returns. Writes the kept rows and their scores to ``out_rows`` / ``out_scores`` (length
``>= k``) and returns how many it kept. Never raises.
"""

from __future__ import annotations

import numpy as np

from citygrid.kernels._jit import njit


@njit
def score_postings(offsets, rows, at, weights, budget, k, removed, scratch, touched, out_rows, out_scores):
    m = at.size
    if m == 0:
        return 0
    sizes = np.empty(m, dtype=np.int64)
    for i in range(m):
        sizes[i] = offsets[at[i] + 1] - offsets[at[i]]
    order = np.argsort(sizes, kind="mergesort")
    n_used = 0
    read = 0
    for i in range(m):
        read += sizes[order[i]]
        if read > budget:
            break
        n_used += 1
    if n_used == 0:
        n_used = 1
    used = np.zeros(m, dtype=np.bool_)
    nt = 0
    for j in range(n_used):
        u = order[j]
        used[u] = True
        w = weights[u]
        for p in range(offsets[at[u]], offsets[at[u] + 1]):
            r = rows[p]
            if removed[r]:
                continue
            if scratch[r] == 0.0:
                touched[nt] = r
                nt += 1
            scratch[r] += w
    n_out = 0
    if nt <= k:
        for i in range(nt):
            out_rows[i] = touched[i]
        n_out = nt
    else:
        values = np.empty(nt, dtype=np.float64)
        for i in range(nt):
            values[i] = scratch[touched[i]]
        kth = np.partition(values, nt - k)[nt - k]
        tied = np.empty(nt, dtype=np.int64)
        n_tied = 0
        for i in range(nt):
            r = touched[i]
            if scratch[r] > kth:
                out_rows[n_out] = r
                n_out += 1
            elif scratch[r] == kth:
                tied[n_tied] = r
                n_tied += 1
        tied = np.sort(tied[:n_tied])
        for i in range(min(k - n_out, n_tied)):
            out_rows[n_out] = tied[i]
            n_out += 1
    for i in range(n_out):
        out_scores[i] = scratch[out_rows[i]]
    for i in range(nt):
        scratch[touched[i]] = 0.0
    for u in range(m):  # the commoner terms: looked up for the kept documents only
        if used[u]:
            continue
        lo = offsets[at[u]]
        hi = offsets[at[u] + 1]
        for i in range(n_out):
            r = out_rows[i]
            place = lo + np.searchsorted(rows[lo:hi], r)
            if place < hi and rows[place] == r:
                out_scores[i] += weights[u]
    return n_out
