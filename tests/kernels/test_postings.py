"""The candidate kernel of the address search (``citygrid.kernels.postings``) against a plain numpy
count of the same rule: weights summed over every posting, the k best kept (ties: lowest rows)."""

from __future__ import annotations

import numpy as np
import pytest

from citygrid.kernels.postings import score_postings


def _index(rng, n_docs: int, n_terms: int):
    postings = [np.sort(rng.choice(n_docs, rng.integers(1, n_docs // 2), replace=False)) for _ in range(n_terms)]
    offsets = np.r_[0, np.cumsum([len(p) for p in postings])].astype(np.int64)
    return offsets, np.concatenate(postings).astype(np.int32), postings


def _expected(postings, at, weights, budget, k, removed):
    """Every document's weight from the terms read within the budget (rarest first), the k best of
    them, then the other terms' weights added: written plainly, term by term."""
    sizes = np.array([len(postings[a]) for a in at])
    order = np.argsort(sizes, kind="stable")
    n_used = max(1, int(np.searchsorted(np.cumsum(sizes[order]), budget, side="right")))
    used = order[:n_used]
    score: dict[int, float] = {}
    for u in used:
        for r in postings[at[u]].tolist():
            if not removed[r]:
                score[r] = score.get(r, 0.0) + weights[u]
    kept = sorted(score, key=lambda r: (-score[r], r))[:k]
    out = {r: score[r] for r in kept}
    for u in range(len(at)):
        if u not in set(used.tolist()):
            for r in kept:
                if r in set(postings[at[u]].tolist()):
                    out[r] += weights[u]
    return out


@pytest.mark.parametrize("seed", range(12))
def test_candidates_and_scores_match_a_plain_count(seed):
    rng = np.random.default_rng(seed)
    n_docs, n_terms = 300, 40
    offsets, rows, postings = _index(rng, n_docs, n_terms)
    at = rng.choice(n_terms, rng.integers(1, 12), replace=False).astype(np.int64)
    weights = rng.choice([0.5, 1.0, 1.5, 2.25], len(at))  # few values: many ties at the cut
    removed = rng.random(n_docs) < 0.1
    budget, k = int(rng.integers(50, 400)), 20
    scratch, touched = np.zeros(n_docs), np.empty(n_docs, dtype=np.int32)
    out_rows, out_scores = np.empty(k, dtype=np.int64), np.empty(k)
    n = score_postings(offsets, rows, at, weights, budget, k, removed, scratch, touched, out_rows, out_scores)
    assert dict(zip(out_rows[:n].tolist(), out_scores[:n].tolist())) == _expected(postings, at, weights, budget, k,
                                                                                 removed)
    assert not scratch.any()  # the work buffer is left as it was given
    assert score_postings(offsets, rows, at[:0], weights[:0], budget, k, removed, scratch, touched, out_rows,
                          out_scores) == 0
