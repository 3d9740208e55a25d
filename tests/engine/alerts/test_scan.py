"""The space-time scans against brute-force Python implementations on small inputs, and properties.

The brute force builds every cylinder (zone) from sorted distances, counts its cases cell by cell,
scans each replication's data rebuilt from the kernel's own random draws (the same permutations),
and applies the reporting rules itself. LLRs, scores, clusters, replication maxima and p-values
must be equal, bit for bit: both sides compute the statistic with the same formula (see
``citygrid.kernels.scan``), from the same libm logarithms.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from scipy import stats

from citygrid.engine.alerts import scan as S
from citygrid.engine.errors import DeadlineExceeded, InvalidInput
from citygrid.kernels import scan as ks

R_KM = 6367.0


# ------------------------------------------------------------------ brute force


def _xyz(lng, lat):
    out = []
    for lo, la in zip(lng, lat):
        a, b = math.radians(la), math.radians(lo)
        a = la * math.pi / 180.0
        b = lo * math.pi / 180.0
        out.append((R_KM * math.cos(a) * math.cos(b), R_KM * math.cos(a) * math.sin(b), R_KM * math.sin(a)))
    return out


def _dist(p, q):
    return math.sqrt((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 + (p[2] - q[2]) ** 2)


def _xlx(c):
    return c * math.log(c) if c > 0 else 0.0


def brute_stp_best(window, location_totals, day_back_totals, lng, lat, o: S.StpOptions):
    """Per centre: (llr, radius index into its sorted list, window, observed, locations) or None.

    window[l][d]: cases at l on the d-th last day (d < W) of the data being scanned.
    """
    n = len(lng)
    total = sum(location_totals)
    W = len(day_back_totals)
    pts = _xyz(lng, lat)
    out = []
    for i in range(n):
        order = sorted(range(n), key=lambda j: (_dist(pts[i], pts[j]), j))
        dists = [_dist(pts[i], pts[j]) for j in order]
        best = None
        for m in range(n):
            if dists[m] > o.max_radius_km:
                break
            if m + 1 < n and dists[m + 1] == dists[m]:
                continue  # a circle takes every location at its radius
            members = order[:m + 1]
            s = sum(location_totals[j] for j in members)
            if s > o.max_share * total:
                break
            for w in range(W):
                t = sum(day_back_totals[:w + 1])
                c = sum(window[j][d] for j in members for d in range(w + 1))
                if c < o.min_cases or not c * total > s * t:
                    continue
                mu = s * t / total
                llr = (_xlx(c) + _xlx(total - c) - c * (math.log(s) + math.log(t) - math.log(total))
                       - (total - c) * math.log(total - mu))
                if best is None or llr > best[0]:
                    best = (llr, m, w, c, members, dists[m], mu)
        out.append(best)
    return out


def brute_stp(counts, lng, lat, o: S.StpOptions):
    counts = [list(map(int, row)) for row in counts]
    n, n_days = len(counts), len(counts[0])
    W = min(o.max_days, n_days)
    location_totals = [sum(r) for r in counts]
    day_totals = [sum(counts[j][t] for j in range(n)) for t in range(n_days)]
    back = day_totals[::-1][:W]
    window = [[counts[j][n_days - 1 - d] for d in range(W)] for j in range(n)]
    observed = brute_stp_best(window, location_totals, back, lng, lat, o)
    # replications: the kernel's own draws of which cases take the window's dates
    case_location = [j for j in range(n) for _ in range(location_totals[j])]
    n_window = sum(back)
    maxima = []
    for r in range(o.reps):
        picked = np.empty(n_window, dtype=np.int64)
        ks.stp_replicate_cases(o.seed, r, len(case_location), n_window, picked,
                               np.zeros(len(case_location), dtype=np.bool_), np.empty(len(case_location), dtype=np.int64))
        rep = [[0] * W for _ in range(n)]
        slot = 0
        for d in range(W):
            for _ in range(back[d]):
                rep[case_location[picked[slot]]][d] += 1
                slot += 1
        bests = brute_stp_best(rep, location_totals, back, lng, lat, o)
        maxima.append(max([b[0] for b in bests if b is not None], default=0.0))
    candidates = sorted((-b[0], len(b[4]), b[2], i) for i, b in enumerate(observed) if b is not None)
    clusters, taken = [], set()
    for neg, size, w, i in candidates:
        b = observed[i]
        if taken & set(b[4]):
            continue
        rank = 1 + sum(m >= b[0] for m in maxima)
        if clusters and rank > o.reps:
            continue
        taken |= set(b[4])
        clusters.append(dict(center=i, locations=list(b[4]), llr=b[0], window=w, observed=b[3], expected=b[6],
                             radius_m=b[5] * 1000.0, p=rank / (o.reps + 1)))
    return clusters, maxima, observed


def brute_ebp(counts, baselines, lng, lat, o: S.EbpOptions):
    n, T = len(counts), len(counts[0])
    D = min(o.max_duration, T)
    recent = [[float(baselines[j][T - 1 - d]) for d in range(D)] for j in range(n)]
    pts = _xyz(lng, lat)
    knn = min(o.knn, n)
    zones = []
    for i in range(n):
        order = sorted(range(n), key=lambda j: (_dist(pts[i], pts[j]), j))[:knn]
        for k in range(knn):
            zones.append((i, k, order[:k + 1], _dist(pts[i], pts[order[k]])))

    def zone_b(members, w):
        b = 0.0
        for j in members:
            bj = recent[j][0]
            for d in range(1, w + 1):
                bj = bj + recent[j][d]
            b = b + bj
        return b

    def scores(window):
        table = {}
        for i, k, members, _ in zones:
            for w in range(D):
                c = sum(window[j][d] for j in members for d in range(w + 1))
                b = zone_b(members, w)
                table[(i, k, w)] = (_xlx(c) - c * math.log(b) + b - c) if c > b else 0.0, c, b
        return table

    observed = scores([[int(counts[j][T - 1 - d]) for d in range(D)] for j in range(n)])
    maxima = []
    for r in range(o.reps):
        rep = np.empty((n, D), dtype=np.int64)
        ks.ebp_replicate_counts(o.seed, r, np.array(recent), rep)
        maxima.append(max(v[0] for v in scores(rep.tolist()).values()))
    seen, candidates = set(), []
    for i, k, members, radius in zones:
        key = frozenset(members)
        if key in seen:
            continue
        seen.add(key)
        best_w = max(range(D), key=lambda w: (observed[(i, k, w)][0], -w))
        sc, c, b = observed[(i, k, best_w)]
        if sc > 0:
            candidates.append((-sc, k + 1, best_w, i, k, members, c, b, radius))
    candidates.sort(key=lambda t: t[:5])
    clusters, taken = [], set()
    for neg, size, w, i, k, members, c, b, radius in candidates:
        if len(clusters) == o.top:
            break
        if taken & set(members):
            continue
        taken |= set(members)
        clusters.append(dict(center=i, locations=list(members), llr=-neg, window=w, observed=c, expected=b,
                             radius_m=radius * 1000.0, p=(1 + sum(m >= -neg for m in maxima)) / (o.reps + 1)))
    return clusters, maxima


# ------------------------------------------------------------------ inputs


def _world(rng, n=24, days=12, rate=0.4, spread_km=2.0, grid=False):
    if grid:  # a lattice: many equal distances (ties)
        side = int(math.ceil(math.sqrt(n)))
        ii = np.arange(n)
        lng = 114.0 + (ii % side) * 0.004
        lat = 22.6 + (ii // side) * 0.004
    else:
        lng = 114.0 + rng.uniform(0, spread_km / 102.0, n)
        lat = 22.6 + rng.uniform(0, spread_km / 111.0, n)
    counts = rng.poisson(rate * rng.uniform(0.3, 1.7, (n, 1)), size=(n, days))
    # a few locations share a point (several ids at one address): exact ties in every distance
    lng[-3:], lat[-3:] = lng[:3], lat[:3]
    return counts, lng, lat


def _same_clusters(result, expected, n_days):
    assert len(result.clusters) == len(expected)
    for got, want in zip(result.clusters, expected):
        assert got.center == want["center"]
        assert got.locations.tolist() == want["locations"]
        assert got.llr == want["llr"]
        assert got.observed == want["observed"]
        assert got.expected == want["expected"]
        assert got.radius_m == want["radius_m"]
        assert got.p == want["p"]
        assert (got.start, got.end) == (n_days - 1 - want["window"], n_days - 1)


@pytest.mark.parametrize("case", range(6))
def test_stp_equals_brute_force(case):
    rng = np.random.default_rng(100 + case)
    counts, lng, lat = _world(rng, n=[18, 25, 30, 16, 25, 20][case], days=[10, 14, 9, 20, 12, 8][case],
                              grid=case in (1, 4))
    if case % 2 == 0:
        counts[:3, -2:] += 3  # a cluster in the last two days
    o = S.StpOptions(max_radius_km=[0.6, 0.9, 1.5, 3.0, 0.5, 1.0][case], max_share=[0.5, 0.5, 0.3, 0.5, 1.0, 0.5][case],
                     max_days=[3, 7, 5, 7, 4, 30][case], min_cases=[2, 2, 3, 1, 2, 2][case], reps=19, seed=7 + case)
    if case in (1, 3):
        counts[:, -2] = 0  # a day without cases: its window ties with the shorter one
    result = S.space_time_permutation(counts, lng, lat, o)
    clusters, maxima, centres = brute_stp(counts, lng, lat, o)
    # every centre's most likely cylinder (ties in distance enter together; ties in LLR go to fewer
    # locations, then the shorter window)
    assert result.extra["centre_llr"].tolist() == [b[0] if b else 0.0 for b in centres]
    assert result.extra["centre_size"].tolist() == [len(b[4]) if b else 0 for b in centres]
    assert result.extra["centre_days"].tolist() == [b[2] + 1 if b else 0 for b in centres]
    assert result.replicate_maxima.tolist() == maxima
    _same_clusters(result, clusters, counts.shape[1])
    assert result.clusters, "every case has a cluster to report"


@pytest.mark.parametrize("case", range(5))
def test_ebp_equals_brute_force(case):
    rng = np.random.default_rng(200 + case)
    counts, lng, lat = _world(rng, n=[20, 16, 25, 12, 18][case], days=[6, 9, 5, 8, 7][case], grid=case == 1)
    baselines = np.maximum(rng.gamma(2.0, 0.25, counts.shape), 0.01)
    if case % 2 == 0:
        counts[2:5, -1] += 4
    o = S.EbpOptions(knn=[5, 8, 6, 12, 4][case], max_duration=[3, 4, 2, 8, 1][case], top=[3, 5, 4, 2, 6][case],
                     reps=19, seed=11 + case)
    result = S.expectation_based_poisson(counts, baselines, lng, lat, o)
    clusters, maxima = brute_ebp(counts.tolist(), baselines.tolist(), lng, lat, o)
    assert result.replicate_maxima.tolist() == maxima
    _same_clusters(result, clusters, counts.shape[1])


def test_ebp_ties_go_to_fewer_locations_then_the_shorter_window():
    """Three zones score the same (a count of 4 over a baseline of 1.0): one location over its last
    day, one (with a lower index) over its last two, two locations over their last day; they are
    reported with fewer locations first, then the shorter window."""
    rng = np.random.default_rng(250)
    _, lng, lat = _world(rng, n=20, days=6)
    counts = np.zeros((20, 6), dtype=np.int64)
    baselines = np.full(counts.shape, 0.5)
    c = int(np.argsort(np.hypot(lng - lng[10], lat - lat[10]), kind="stable")[1])
    a = min(set(range(17)) - {10, c})
    e = max(set(range(17)) - {10, c, a})
    counts[a, -2:] = 2       # {a}, the last 2 days: C = 4, B = 1.0
    counts[e, -1] = 4        # {e}, the last day: C = 4, B = 1.0
    baselines[e, -1] = 1.0
    counts[[10, c], -1] = 2  # {10, c}, the last day: C = 4, B = 1.0
    o = S.EbpOptions(knn=4, max_duration=3, top=3, reps=9, seed=3)
    result = S.expectation_based_poisson(counts, baselines, lng, lat, o)
    clusters, maxima = brute_ebp(counts.tolist(), baselines.tolist(), lng, lat, o)
    assert result.replicate_maxima.tolist() == maxima
    _same_clusters(result, clusters, counts.shape[1])
    assert len({k.llr for k in result.clusters}) == 1
    assert [(k.locations.tolist(), k.duration) for k in result.clusters[:2]] == [([e], 1), ([a], 2)]
    assert sorted(result.clusters[2].locations.tolist()) == sorted([10, c]) and result.clusters[2].duration == 1


def test_stp_is_deterministic_for_a_seed_on_any_thread_count():
    rng = np.random.default_rng(3)
    counts, lng, lat = _world(rng, n=60, days=30, spread_km=4)
    o = S.StpOptions(max_radius_km=1.0, reps=60, seed=5)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = S.space_time_permutation(counts, lng, lat, o)
        numba.set_num_threads(before)
        many = S.space_time_permutation(counts, lng, lat, o)
    finally:
        numba.set_num_threads(before)
    assert one.replicate_maxima.tolist() == many.replicate_maxima.tolist()
    other = S.space_time_permutation(counts, lng, lat, S.StpOptions(max_radius_km=1.0, reps=60, seed=6))
    assert other.replicate_maxima.tolist() != one.replicate_maxima.tolist()


def test_the_fast_replications_equal_full_scans():
    """Past the pilot, replications compare counts with thresholds; their maxima equal full scans'."""
    rng = np.random.default_rng(8)
    counts, lng, lat = _world(rng, n=80, days=40, spread_km=3)
    o = S.StpOptions(max_radius_km=0.8, reps=S.PILOT_REPS + 40, seed=2)
    result = S.space_time_permutation(counts, lng, lat, o)
    # the same replications, each alone (so each is a pilot replication, scanned in full)
    for r in (S.PILOT_REPS, S.PILOT_REPS + 17, S.PILOT_REPS + 39):
        shifted = S.space_time_permutation(counts, lng, lat, S.StpOptions(max_radius_km=0.8, reps=r + 1, seed=2))
        assert shifted.replicate_maxima[r] == result.replicate_maxima[r]


@pytest.mark.parametrize("walk", ["every list", "entries only"])
@pytest.mark.parametrize("bits", [16, 32])
def test_both_replication_paths_equal_brute_force(monkeypatch, walk, bits):
    """A replication either walks every list or visits only the entries of its window cases, with
    window counts in 16- or 32-bit lanes; past a short pilot it compares counts with the thresholds
    of the acceptance level. Every way gives the brute force's maxima and clusters, on data with
    locations sharing a point (distance ties), a quiet day and a cluster."""
    monkeypatch.setattr(S, "SPARSE_SHARE", 0.0 if walk == "every list" else math.inf)
    monkeypatch.setattr(S, "_lane_bits", lambda window_cases: bits)
    monkeypatch.setattr(S, "PILOT_REPS", 3)
    for case in range(3):
        rng = np.random.default_rng(300 + case)
        counts, lng, lat = _world(rng, n=[22, 25, 18][case], days=[9, 12, 30][case], rate=[0.4, 1.5, 0.2][case],
                                  grid=case == 1)
        counts[:3, -2:] += 2 * case
        counts[:, -3] = 0
        o = S.StpOptions(max_radius_km=[0.8, 0.9, 1.5][case], max_days=[4, 7, 12][case], reps=30, seed=case)
        result = S.space_time_permutation(counts, lng, lat, o)
        clusters, maxima, _ = brute_stp(counts, lng, lat, o)
        assert result.replicate_maxima.tolist() == maxima
        _same_clusters(result, clusters, counts.shape[1])


def test_replications_permute_dates_among_cases():
    """A replication's window dates go to distinct cases, each case equally likely."""
    n_cases, n_window = 40, 10
    hits = np.zeros(n_cases)
    for r in range(4000):
        picked = np.empty(n_window, dtype=np.int64)
        ks.stp_replicate_cases(9, r, n_cases, n_window, picked, np.zeros(n_cases, dtype=np.bool_),
                               np.empty(n_cases, dtype=np.int64))
        assert len(set(picked.tolist())) == n_window
        hits[picked] += 1
    assert stats.chisquare(hits).pvalue > 1e-3
    # the full-shuffle branch (more than half the cases in the window) too
    picked = np.empty(30, dtype=np.int64)
    ks.stp_replicate_cases(9, 0, n_cases, 30, picked, np.zeros(n_cases, dtype=np.bool_), np.empty(n_cases, dtype=np.int64))
    assert sorted(set(picked.tolist())) == sorted(picked.tolist())


def test_poisson_draws_have_poisson_moments():
    baselines = np.array([[0.3, 4.0, 45.0, 900.0]])
    draws = np.empty((20000, 4))
    out = np.empty((1, 4), dtype=np.int64)
    for r in range(len(draws)):
        ks.ebp_replicate_counts(4, r, baselines, out)
        draws[r] = out[0]
    np.testing.assert_allclose(draws.mean(axis=0), baselines[0], rtol=0.03)
    np.testing.assert_allclose(draws.var(axis=0), baselines[0], rtol=0.06)


def test_a_planted_cluster_is_found():
    rng = np.random.default_rng(21)
    n = 300
    lng = 114.0 + rng.uniform(0, 0.08, n)
    lat = 22.6 + rng.uniform(0, 0.08, n)
    counts = rng.poisson(0.3, size=(n, 60))
    centre = (114.04, 22.64)
    near = np.hypot((lng - centre[0]) * 102.5, (lat - centre[1]) * 111.0) < 0.5
    assert near.sum() >= 4
    counts[near, -3:] += rng.poisson(2.0, size=(int(near.sum()), 3))
    result = S.space_time_permutation(counts, lng, lat, S.StpOptions(max_radius_km=1.0, reps=99, seed=1))
    top = result.clusters[0]
    assert set(np.flatnonzero(near)) <= set(top.locations.tolist())
    assert top.p == 0.01 and top.recurrence_days == 100.0
    assert top.end == 59 and top.start >= 56
    baselines = np.full(counts.shape, 0.3)
    ebp = S.expectation_based_poisson(counts, baselines, lng, lat, S.EbpOptions(knn=10, reps=99, seed=1))
    assert set(ebp.clusters[0].locations.tolist()) & set(np.flatnonzero(near))
    assert ebp.clusters[0].p == 0.01


@pytest.mark.slow
def test_p_values_are_roughly_uniform_under_the_null():
    rng = np.random.default_rng(77)
    p_values = []
    for k in range(80):
        counts, lng, lat = _world(rng, n=30, days=20, rate=0.5, spread_km=3)
        result = S.space_time_permutation(counts, lng, lat, S.StpOptions(max_radius_km=1.0, reps=99, seed=k))
        p_values.append(result.clusters[0].p if result.clusters else 1.0)
    assert stats.kstest(p_values, "uniform").pvalue > 0.001
    assert 0.02 < np.mean(np.array(p_values) <= 0.1) < 0.25


def test_null_p_values_are_not_all_small():
    rng = np.random.default_rng(78)
    p_values = []
    for k in range(20):
        counts, lng, lat = _world(rng, n=25, days=15, rate=0.5, spread_km=3)
        result = S.space_time_permutation(counts, lng, lat, S.StpOptions(max_radius_km=1.0, reps=49, seed=k))
        p_values.append(result.clusters[0].p if result.clusters else 1.0)
    assert np.median(p_values) > 0.2
    assert sum(p <= 0.05 for p in p_values) <= 4


def test_quiet_last_days_are_scanned(rng):
    """No case on the last days: those windows have nothing to score, the longer ones still do."""
    counts, lng, lat = _world(rng, n=20, days=15, spread_km=2)
    counts[:, -2:] = 0
    counts[:4, -4:-2] += 4
    result = S.space_time_permutation(counts, lng, lat, S.StpOptions(max_radius_km=1.0, max_days=5, reps=19, seed=1))
    clusters, maxima, _ = brute_stp(counts, lng, lat, S.StpOptions(max_radius_km=1.0, max_days=5, reps=19, seed=1))
    assert result.replicate_maxima.tolist() == maxima
    _same_clusters(result, clusters, counts.shape[1])
    assert result.clusters[0].start <= 12
    empty = S.space_time_permutation(np.zeros((5, 4)), lng[:5], lat[:5])
    assert empty.clusters == [] and empty.total == 0


def test_bad_inputs_are_named():
    counts, lng, lat = _world(np.random.default_rng(1), n=5, days=4)
    with pytest.raises(InvalidInput, match="latitude"):
        S.space_time_permutation(counts, lng, np.array([0, 0, 0, 0, 95.0]))
    with pytest.raises(InvalidInput, match="whole numbers"):
        S.space_time_permutation(counts + 0.5, lng, lat)
    negative = counts.astype(np.int32)
    negative[3, 2] = -1
    with pytest.raises(InvalidInput, match=r"whole numbers >= 0; location 3, period 2 holds -1\.0"):
        S.space_time_permutation(negative, lng, lat)
    with pytest.raises(InvalidInput, match="max_share"):
        S.space_time_permutation(counts, lng, lat, S.StpOptions(max_share=1.5))
    with pytest.raises(InvalidInput, match="baselines .* positive"):
        S.expectation_based_poisson(counts, np.zeros(counts.shape), lng, lat)
    with pytest.raises(InvalidInput, match="reps"):
        S.expectation_based_poisson(counts, np.ones(counts.shape), lng, lat, S.EbpOptions(reps=-1))


def test_a_passed_deadline_stops_between_chunks():
    counts, lng, lat = _world(np.random.default_rng(2), n=10, days=6)
    with pytest.raises(DeadlineExceeded):
        S.space_time_permutation(counts, lng, lat, S.StpOptions(reps=99), deadline=0.0)


def _first_decided(full_maxima, top, reps, decide_p, boundaries):
    """Where a run deciding ``p < decide_p`` must stop, worked out from the full run's maxima: the
    first chunk end b with (1 + #(maxima[:b] >= top)) / (reps + 1) >= decide_p, else reps."""
    for b in boundaries:
        if (1 + sum(m >= top for m in full_maxima[:b])) / (reps + 1) >= decide_p:
            return b
    return reps


def _chunk_ends(reps):
    return [b for b in [S.PILOT_REPS, *range(S.PILOT_REPS + S.CHUNK_REPS, reps, S.CHUNK_REPS)] if b < reps] + [reps]


@pytest.mark.parametrize("planted", [True, False])
@pytest.mark.parametrize("case", range(4))
def test_deciding_p_stops_early_and_keeps_the_significant_clusters_exact(case, planted):
    """With ``decide_p`` the replications stop at the first chunk after which the most likely
    cluster's p can no longer fall below it (checked against the full run's maxima); a run that
    does not stop is the full run, field for field; a stopped one reports no cluster below decide_p."""
    rng = np.random.default_rng(400 + case)
    counts, lng, lat = _world(rng, n=40, days=20, rate=0.5, spread_km=3)
    if planted:  # a burst at location 0 and its three nearest
        near = np.argsort(np.hypot(lng - lng[0], lat - lat[0]), kind="stable")[:4]
        counts[near, -2:] += 4
    reps, decide_p = 199, [0.05, 0.01, 0.2, 0.006][case]
    stp_o = S.StpOptions(max_radius_km=1.0, max_days=5, reps=reps, seed=30 + case)
    baselines = np.full(counts.shape, 0.5)
    ebp_o = S.EbpOptions(knn=6, max_duration=3, reps=reps, seed=30 + case)
    for full, decided in (
            (S.space_time_permutation(counts, lng, lat, stp_o),
             S.space_time_permutation(counts, lng, lat, stp_o, decide_p=decide_p)),
            (S.expectation_based_poisson(counts, baselines, lng, lat, ebp_o),
             S.expectation_based_poisson(counts, baselines, lng, lat, ebp_o, decide_p=decide_p))):
        top = full.clusters[0]
        stop = _first_decided(full.replicate_maxima.tolist(), top.llr, reps, decide_p, _chunk_ends(reps))
        assert decided.extra["reps_done"] == stop
        assert decided.replicate_maxima.tolist() == full.replicate_maxima[:stop].tolist()
        if top.p < decide_p:
            assert stop == reps
            assert [vars(c) | {"locations": c.locations.tolist()} for c in decided.clusters] == \
                   [vars(c) | {"locations": c.locations.tolist()} for c in full.clusters]
        else:
            assert all(c.p >= decide_p for c in decided.clusters)
            assert decided.clusters[0].llr == top.llr
            # p against the replications made
            made = full.replicate_maxima[:stop].tolist()
            assert [c.p for c in decided.clusters] == [(1 + sum(m >= c.llr for m in made)) / (stop + 1)
                                                       for c in decided.clusters]
        if planted:
            assert top.p < decide_p  # the planted burst is decided with every replication


def test_deciding_p_without_a_cluster_makes_no_replication():
    counts, lng, lat = _world(np.random.default_rng(5), n=12, days=8)
    counts[:, -3:] = 0  # nothing in any window
    result = S.space_time_permutation(counts, lng, lat, S.StpOptions(max_days=3, reps=99), decide_p=0.05)
    assert result.clusters == [] and result.extra["reps_done"] == 0 and len(result.replicate_maxima) == 0
    assert len(S.space_time_permutation(counts, lng, lat, S.StpOptions(max_days=3, reps=99)).replicate_maxima) == 99
    for bad in (0, 1.5, -0.1, True, "0.05"):
        with pytest.raises(InvalidInput, match="decide_p"):
            S.space_time_permutation(counts, lng, lat, decide_p=bad)
