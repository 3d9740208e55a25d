"""Space-time scans: the prospective space-time permutation scan and the expectation-based Poisson scan.

Both take a (location x period) matrix of counts whose last period is "now", the locations'
longitudes and latitudes, and options; both answer a ranked list of :class:`Cluster` with Monte
Carlo p-values. The arithmetic lives in :mod:`citygrid.kernels.scan` (see its docstring for the
statistics); this module validates, builds cylinders and zones, runs the replications in chunks
(deadline and cancel are checked between them) and applies the reporting rules.

**Space-time permutation** (Kulldorff, Heffernan, Hartman, Assuncao and Mostashari 2005; SaTScan's
space-time permutation model, prospective): every location is a centre; cylinders are the
locations within ``max_radius_km`` of it (while they hold at most ``max_share`` of all cases) times
the last 1 .. ``max_days`` days; expected counts from the space and time margins; the LLR for high
rates with at least ``min_cases`` observed. The p-value of a cluster is ``rank / (reps + 1)``, its
rank being 1 + the number of replications whose largest LLR is at least its own; the recurrence
interval ``1 / p`` days (one analysis a day). Reporting as SaTScan does: each centre's most likely
cylinder is a candidate (ties go to fewer locations, then the shorter window); candidates in
decreasing LLR (then fewer locations, shorter window, lower centre) are reported when they share no
location with a cluster reported before them, and, except the first, when their rank is within
the replications (``rank <= reps``, i.e. ``p < 1``).

**Expectation-based Poisson** (Neill, Moore, Sabhnani and Daniel 2005): zones are each location's
1 .. ``knn`` nearest locations (duplicates removed, the first centre keeps a zone), windows the last
1 .. ``max_duration`` periods, expected counts the summed baselines, score ``C ln(C/B) + B - C`` when
``C > B``; each zone's best window is a candidate and the ``top`` highest-scoring ones that share no
location with a higher one are reported, with p-values against replications drawn from
Poisson(baseline) (rank among the replications' maxima as above).

**Deciding only "p < decide_p"** (``decide_p``, both scans; sequential Monte Carlo, Besag and Clifford
1991): a caller that keeps only clusters with ``p < decide_p`` (a detection run) needs the
replications only while that can still happen. After each chunk the replications whose maximum
reaches the most likely cluster's statistic are counted (k of them so far); once
``(1 + k) / (reps + 1) >= decide_p``, the full run's p of that cluster, and of every other (their
statistics are lower), would be at least ``decide_p`` too, so the run stops there and reports its
clusters against the replications made (``extra["reps_done"]``; their p, ``(1 + k) / (done + 1)``, are
above ``decide_p`` as well). A run that does not stop makes every replication, so a cluster reported
with ``p < decide_p`` has the exact p of the full run. With no cluster to report, no replication is made.

Distances are the chord on a sphere of 6,367 km, as SaTScan computes them for latitude / longitude;
``radius_m`` is the distance from the centre to the farthest location of the cluster.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass, field

import numpy as np

from citygrid.engine.alerts.budget import Budget
from citygrid.engine.errors import InvalidInput
from citygrid.engine.layers.coordinates import lnglat_valid
from citygrid.kernels import scan as ks

#: Replications per kernel call (deadline and cancel are checked between calls).
CHUNK_REPS = 50
#: Replications of the pilot run that scans every cylinder (see space_time_permutation).
PILOT_REPS = 20
#: The level past the pilot: this share of the pilot's smallest maximum (about its 5th percentile),
#: so few replications fall short of it and are scanned again.
ACCEPT_SHARE = 0.9
#: Margin below the acceptance level when deriving the count thresholds, far above the rounding
#: error of an LLR (about 1e-9 for a million cases), so no cylinder at the level is skipped.
LLR_SLACK = 1e-6
#: Neighbour structures kept (per set of locations and radius, or k nearest).
NEIGHBOUR_CACHE_SIZE = 4
_NEIGHBOUR_CACHE: dict = {}
_NEIGHBOUR_LOCK = threading.Lock()
#: A replication visits only the list entries of its window's cases when they are fewer than this
#: share of all the lists' positions, else it walks every list (see the kernels).
SPARSE_SHARE = ks.SPARSE_SHARE
#: Segments of a centre's list whose counts bound a sparse replication's circles (see the kernels).
SEGMENTS = 4
#: Largest number of replications accepted.
MAX_REPS = 99_999


@dataclass(frozen=True)
class StpOptions:
    max_radius_km: float = 1.0
    max_share: float = 0.5
    max_days: int = 7
    min_cases: int = 2
    reps: int = 999
    seed: int = 0


@dataclass(frozen=True)
class EbpOptions:
    knn: int = 15
    max_duration: int = 4
    top: int = 5
    reps: int = 999
    seed: int = 0


@dataclass
class Cluster:
    """A reported cluster. Periods are 0-based indices into the scanned matrix's columns."""

    rank: int
    center: int
    locations: np.ndarray
    radius_m: float
    start: int
    end: int
    observed: int
    expected: float
    #: The LLR (space-time permutation) or the score (expectation-based Poisson).
    llr: float
    p: float | None
    recurrence_days: float | None

    @property
    def ratio(self) -> float:
        return self.observed / self.expected if self.expected > 0 else math.inf

    @property
    def duration(self) -> int:
        return self.end - self.start + 1


@dataclass
class ScanResult:
    method: str
    options: object
    clusters: list[Cluster]
    #: Largest statistic of each replication (empty with reps = 0).
    replicate_maxima: np.ndarray
    #: Cases in the study (space-time permutation) or counted in the scanned windows (expectation-based).
    total: int
    n_periods: int
    extra: dict = field(default_factory=dict)


# ------------------------------------------------------------------ space-time permutation


def space_time_permutation(counts, lng, lat, options: StpOptions | None = None, *,
                           deadline: float | None = None, cancel: threading.Event | None = None,
                           decide_p: float | None = None) -> ScanResult:
    """Prospective space-time permutation scan of ``counts`` (locations x days; the last day is now).

    ``decide_p``: stop the replications once no cluster can have ``p < decide_p`` (module docstring)."""
    o = options or StpOptions()
    decide_p = _decision_level(decide_p)
    y = _count_matrix(counts, "counts")
    n_locations, n_days = y.shape
    xyz = _cartesian(lng, lat, n_locations)
    radius = _positive(o.max_radius_km, "max_radius_km")
    share = _positive(o.max_share, "max_share")
    if share > 1:
        raise InvalidInput(f"max_share is a share of all cases, at most 1; got {o.max_share!r}")
    max_days = _whole(o.max_days, "max_days", 1)
    min_cases = _whole(o.min_cases, "min_cases", 1)
    reps = _whole(o.reps, "reps", 0, MAX_REPS)
    seed = _whole(o.seed, "seed", 0, 2**63 - 1)
    budget = Budget(deadline, cancel)
    n_windows = min(max_days, n_days)
    total = int(y.sum())
    if total == 0:
        return ScanResult("stp", o, [], np.zeros(0), 0, n_days)
    location_totals = y.sum(axis=1)
    day_totals = y.sum(axis=0)
    window_day_totals = np.ascontiguousarray(day_totals[::-1][:n_windows])
    window_totals = np.cumsum(window_day_totals)
    if window_totals[-1] >= 2**31:
        raise InvalidInput(f"the last {n_windows} days hold {int(window_totals[-1]):,} cases; "
                           "the scan takes fewer than 2**31")
    window_counts = np.ascontiguousarray(np.cumsum(y[:, ::-1][:, :n_windows], axis=1), dtype=np.int32)

    offsets, nbr_index, nbr_km, row, run_end = _neighbours(xyz, radius)
    # Circles change only where a location with cases enters them: the kernels scan lists of those
    # locations alone, and a circle found there ends, in the full list, with the last location at
    # its radius (the circles between add no case and score the same, so fewer locations win).
    lists = _case_lists(offsets, nbr_index, nbr_km, row, run_end, location_totals)
    nnz = len(lists.index)
    c_min = np.empty(nnz * n_windows, dtype=np.int32)
    ln_s = np.empty(nnz)
    ln_rest = np.empty(nnz * n_windows)
    ks.stp_cylinders(lists.offsets, lists.index, lists.km, location_totals, window_totals, total, share * total,
                     min_cases, c_min, ln_s, ln_rest)
    # libm's log, as the kernels take it; a window without cases has no cylinder to score
    ln_window = np.array([math.log(t) if t > 0 else -math.inf for t in window_totals])
    ln_total = math.log(total)
    xlx = ks.x_log_x_table(total + 1)
    least_min = _least(c_min, n_windows)
    best_llr = np.empty(n_locations)
    best_entry = np.empty(n_locations, dtype=np.int64)
    best_w = np.empty(n_locations, dtype=np.int64)
    best_c = np.empty(n_locations, dtype=np.int64)
    ks.stp_scan(lists.offsets, lists.index, c_min, least_min, ln_s, ln_rest, ln_window, ln_total, window_counts,
                total, xlx, best_llr, best_entry, best_w, best_c)
    best_pos = np.where(best_entry >= 0, lists.full_end[np.maximum(best_entry, 0)], -1)

    maxima = np.empty(reps)
    case_location = np.repeat(np.arange(n_locations, dtype=np.int64), location_totals)
    loc_offsets, loc_centres, loc_pos = lists.centres_of_locations(n_locations)
    # every window's count of a replication in one lane of a few 64-bit words (see the kernels)
    bits = _lane_bits(int(window_totals[-1]))
    packed_min, floors_min = _packed(c_min, lists, n_windows, bits)
    # A pilot run scans every cylinder; the rest first compare counts with the least count that
    # reaches ACCEPT_SHARE of the pilot's smallest maximum (and rescan fully any replication that
    # falls short).
    c_need, packed_need, floors_need, accept = c_min, packed_min, floors_min, 0.0
    pilot = min(reps, PILOT_REPS)
    top = float(best_llr.max())
    done = reps if decide_p is None or top > 0 else 0  # deciding with no cluster: nothing to replicate
    for lo, hi in budget.chunks(done, CHUNK_REPS, "replications", first=pilot):
        if lo == pilot and pilot > 0 and maxima[:pilot].min() > 0:
            accept = ACCEPT_SHARE * float(maxima[:pilot].min())
            c_need = np.empty_like(c_min)
            ks.stp_thresholds(c_min, ln_s, ln_rest, ln_window, ln_total, total, int(window_totals[-1]), xlx,
                              accept - LLR_SLACK, c_need)
            packed_need, floors_need = _packed(c_need, lists, n_windows, bits)
        ks.stp_replicate_maxima(seed, lo, hi, case_location, window_day_totals, lists.offsets, lists.index,
                                lists.close_at, c_min, packed_min, floors_min, c_need, packed_need, floors_need,
                                lists.segment_end, accept, bits, SPARSE_SHARE, ln_s, ln_rest, ln_window, ln_total,
                                total, xlx, n_locations, loc_offsets, loc_centres, loc_pos,
                                ks.replication_blocks(hi - lo), maxima[lo:hi])
        if _decided(decide_p, maxima[:hi], top, reps):
            done = hi
            break
    maxima, reps = maxima[:done], done

    candidates = []
    for ci in np.flatnonzero(best_pos >= 0):
        pos = int(best_pos[ci])
        size = pos - int(offsets[ci]) + 1
        w = int(best_w[ci])
        candidates.append((-best_llr[ci], size, w, int(ci), pos))
    candidates.sort()
    clusters = []
    taken = np.zeros(n_locations, dtype=bool)
    sorted_maxima = np.sort(maxima)
    for neg_llr, size, w, ci, pos in candidates:
        llr = -neg_llr
        if clusters and reps > 0 and llr <= sorted_maxima[0]:
            break  # every replication reaches it (rank > reps), and the rest, in decreasing LLR
        locations = nbr_index[offsets[ci]:pos + 1]
        if taken[locations].any():
            continue
        rank_mc = 1 + reps - int(np.searchsorted(sorted_maxima, llr, side="left"))  # 1 + #(maxima >= llr)
        if clusters and reps > 0 and rank_mc > reps:
            continue
        taken[locations] = True
        p = rank_mc / (reps + 1) if reps > 0 else None
        clusters.append(Cluster(
            rank=len(clusters) + 1, center=ci, locations=locations.copy(), radius_m=float(nbr_km[pos]) * 1000.0,
            start=n_days - 1 - w, end=n_days - 1, observed=int(best_c[ci]),
            expected=float(location_totals[nbr_index[offsets[ci]:pos + 1]].sum()) * float(window_totals[w]) / total,
            llr=float(llr), p=p,
            recurrence_days=(1.0 / p) if p is not None else None))
    sizes = np.where(best_pos >= 0, best_pos - offsets[:-1] + 1, 0)
    return ScanResult("stp", o, clusters, maxima, total, n_days,
                      {"candidates": len(candidates), "windows": n_windows, "reps_done": done,
                       # each centre's most likely cylinder (LLR 0, size 0 when it has none)
                       "centre_llr": best_llr, "centre_size": sizes, "centre_days": np.where(best_pos >= 0, best_w + 1, 0)})


def _cached_neighbours(key, build):
    """The neighbour structure of ``key`` (locations' hash, radius or k), built once: the last few
    are kept, as a centre scans the same locations category after category."""
    with _NEIGHBOUR_LOCK:
        cached = _NEIGHBOUR_CACHE.get(key)
    if cached is not None:
        return cached
    built = build()
    for array in built:
        array.flags.writeable = False
    with _NEIGHBOUR_LOCK:
        while len(_NEIGHBOUR_CACHE) >= NEIGHBOUR_CACHE_SIZE:
            _NEIGHBOUR_CACHE.pop(next(iter(_NEIGHBOUR_CACHE)))
        _NEIGHBOUR_CACHE[key] = built
    return built


def _nearest(xyz: np.ndarray, knn: int):
    """Each location's ``knn`` nearest (itself first), by (distance, index), their distances, which
    zones are distinct (:func:`_distinct_zones`) and, as CSR, the centres whose nearest hold each
    location: built once per set of locations and k (see _cached_neighbours)."""
    def build():
        n = len(xyz)
        knn_index = np.empty((n, knn), dtype=np.int64)
        knn_km = np.empty((n, knn))
        ks.nearest_k(xyz, knn, knn_index, knn_km)
        loc_offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(knn_index.ravel(), minlength=n), out=loc_offsets[1:])
        loc_centres = np.empty(n * knn, dtype=np.int64)
        loc_rank = np.empty(n * knn, dtype=np.int64)
        ks.ebp_centres_of_locations(knn_index, loc_offsets, loc_centres, loc_rank)
        return knn_index, knn_km, _distinct_zones(knn_index), loc_offsets, loc_centres, loc_rank

    return _cached_neighbours((hashlib.sha1(xyz.tobytes()).hexdigest(), "knn", knn), build)


def _neighbours_within(xyz: np.ndarray, radius_km: float):
    """CSR lists of each location's neighbours within the radius (cached, see _cached_neighbours)."""
    return _neighbours(xyz, radius_km)[:3]


def _neighbours(xyz: np.ndarray, radius_km: float):
    """The CSR lists, each position's row (centre) and the last position of its run of equal
    distances, built once per set of locations and radius."""
    return _cached_neighbours((hashlib.sha1(xyz.tobytes()).hexdigest(), radius_km), lambda: _within(xyz, radius_km))


def _within(xyz: np.ndarray, radius_km: float):
    n = len(xyz)
    counts = np.empty(n, dtype=np.int64)
    ks.count_within(xyz, radius_km, counts)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    nbr_index = np.empty(offsets[-1], dtype=np.int64)
    nbr_km = np.empty(offsets[-1])
    ks.fill_within(xyz, radius_km, offsets, nbr_index, nbr_km)
    row = np.repeat(np.arange(n, dtype=np.int64), counts)
    last = np.ones(len(nbr_index), dtype=bool)
    last[:-1] = (nbr_km[1:] != nbr_km[:-1]) | (row[1:] != row[:-1])
    return offsets, nbr_index, nbr_km, row, _next_true(last)


def _next_true(flags: np.ndarray) -> np.ndarray:
    """For each i, the least j >= i with flags[j] (flags[-1] must be True): one pass, no search."""
    at = np.where(flags, np.arange(len(flags), dtype=np.int64), np.int64(len(flags)))
    return np.ascontiguousarray(np.minimum.accumulate(at[::-1])[::-1])


@dataclass
class _CaseLists:
    """Each centre's neighbours within the radius that hold cases (CSR, in distance order), with
    ``full_end[j]``: the position in the full lists of the last location at entry j's distance."""

    offsets: np.ndarray
    index: np.ndarray
    km: np.ndarray
    full_end: np.ndarray
    #: close_at[j]: the entry that closes the circle holding entry j (the last one at its distance).
    close_at: np.ndarray
    #: segment_end[centre, s]: where segment s of its list ends (SEGMENTS about equal ones, see the kernels).
    segment_end: np.ndarray

    def centres_of_locations(self, n_locations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR from each location to the centres whose lists hold it, and the positions there."""
        centre = np.repeat(np.arange(len(self.offsets) - 1, dtype=np.int64), np.diff(self.offsets))
        # a stable sort of small integers is a radix sort in numpy: one pass, not a merge sort
        small = n_locations < 2**15 and len(self.index) > 0
        order = np.argsort(self.index.astype(np.int16) if small else self.index, kind="stable")
        loc_offsets = np.zeros(n_locations + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.index, minlength=n_locations), out=loc_offsets[1:])
        return loc_offsets, np.ascontiguousarray(centre[order]), order.astype(np.int64)


def _lane_bits(window_cases: int) -> int:
    """Bits of a count's lane in the replications: every window's count must stay below 2**(bits-1)."""
    return 16 if window_cases < 2**15 else 32


def _least(thresholds: np.ndarray, n_windows: int) -> np.ndarray:
    least = np.empty(len(thresholds) // n_windows, dtype=np.uint8)
    ks.stp_position_least(thresholds, n_windows, least)
    return least


def _packed(thresholds: np.ndarray, lists: "_CaseLists", n_windows: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The thresholds packed for the replications, and each centre's floor (see the kernels)."""
    words = -(-n_windows // (64 // bits))
    packed = np.empty((len(thresholds) // n_windows, words), dtype=np.uint64)
    ks.stp_pack_thresholds(thresholds, lists.close_at, n_windows, bits, packed)
    floors = np.empty((*lists.segment_end.shape, words), dtype=np.uint64)
    ks.stp_segment_floors(packed, lists.offsets, lists.segment_end, bits, floors)
    return packed, floors


def _case_lists(offsets: np.ndarray, nbr_index: np.ndarray, nbr_km: np.ndarray, row: np.ndarray, run_end: np.ndarray,
                location_totals) -> _CaseLists:
    """``row``: each position's centre; ``run_end``: the last position of its run of equal distances."""
    n = len(offsets) - 1
    keep = np.flatnonzero(np.asarray(location_totals)[nbr_index] > 0)
    new_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(row[keep], minlength=n), out=new_offsets[1:])
    km = np.ascontiguousarray(nbr_km[keep])
    kept_row = row[keep]
    closes = np.ones(len(keep), dtype=bool)
    closes[:-1] = (km[1:] != km[:-1]) | (kept_row[1:] != kept_row[:-1])
    size = np.diff(new_offsets)[:, None]
    segment_end = new_offsets[:-1, None] + -(-size * np.arange(1, SEGMENTS + 1) // SEGMENTS)
    return _CaseLists(new_offsets, np.ascontiguousarray(nbr_index[keep]), km, run_end[keep], _next_true(closes),
                      np.ascontiguousarray(segment_end))


# ------------------------------------------------------------------ expectation-based Poisson


def expectation_based_poisson(counts, baselines, lng, lat, options: EbpOptions | None = None, *,
                              deadline: float | None = None, cancel: threading.Event | None = None,
                              decide_p: float | None = None) -> ScanResult:
    """Expectation-based Poisson scan of ``counts`` against ``baselines`` (locations x periods; the last is now).

    ``decide_p``: stop the replications once no cluster can have ``p < decide_p`` (module docstring)."""
    o = options or EbpOptions()
    decide_p = _decision_level(decide_p)
    y = _count_matrix(counts, "counts")
    n_locations, n_periods = y.shape
    base = np.array(baselines, dtype=np.float64, order="C", ndmin=2)
    if base.shape != y.shape:
        raise InvalidInput(f"baselines have shape {base.shape}; the counts have {y.shape}")
    xyz = _cartesian(lng, lat, n_locations)
    knn = _whole(o.knn, "knn", 1)
    knn = min(knn, n_locations)
    max_duration = _whole(o.max_duration, "max_duration", 1)
    top = _whole(o.top, "top", 1)
    reps = _whole(o.reps, "reps", 0, MAX_REPS)
    seed = _whole(o.seed, "seed", 0, 2**63 - 1)
    budget = Budget(deadline, cancel)
    n_windows = min(max_duration, n_periods)
    recent = np.ascontiguousarray(base[:, ::-1][:, :n_windows])
    bad = ~(np.isfinite(recent) & (recent > 0))
    if bad.any():
        loc, back = np.argwhere(bad)[0]
        raise InvalidInput(f"baselines of the scanned periods must be positive numbers; location {loc}, "
                           f"period {n_periods - 1 - back} holds {float(recent[loc, back])!r}")
    window_counts = np.ascontiguousarray(np.cumsum(y[:, ::-1][:, :n_windows], axis=1))
    base_cum = np.empty_like(recent)
    for w in range(n_windows):
        base_cum[:, w] = recent[:, w] if w == 0 else base_cum[:, w - 1] + recent[:, w]

    knn_index, knn_km, keep, loc_offsets, loc_centres, loc_rank = _nearest(xyz, knn)
    zone_b = np.empty((n_locations, knn, n_windows))
    zone_ln_b = np.empty_like(zone_b)
    ks.ebp_zone_baselines(knn_index, base_cum, zone_b, zone_ln_b)
    observed_max = int(window_counts[:, -1].sum())
    xlx = ks.x_log_x_table(max(observed_max, int(4 * zone_b.max()) + 64) + 1)
    scores = np.empty((n_locations, knn, n_windows))
    zone_c = np.empty((n_locations, knn, n_windows), dtype=np.int64)
    ks.ebp_scan(knn_index, window_counts, zone_b, zone_ln_b, xlx, scores, zone_c)

    maxima = np.empty(reps)
    best = float(scores.max())
    done = reps if decide_p is None or best > 0 else 0  # deciding with no cluster: nothing to replicate
    if done:
        zero_below = np.empty_like(recent)
        ks.ebp_zero_below(recent, zero_below)
    for lo, hi in budget.chunks(done, CHUNK_REPS, "replications", first=min(done, PILOT_REPS)):
        ks.ebp_replicate_maxima(seed, lo, hi, recent, zero_below, knn_index, loc_offsets, loc_centres, loc_rank,
                                zone_b, zone_ln_b, xlx, ks.replication_blocks(hi - lo), maxima[lo:hi])
        if _decided(decide_p, maxima[:hi], best, reps):
            done = hi
            break
    maxima, reps = maxima[:done], done

    # each distinct zone's best window (duplicates: the first centre, in (centre, size) order, keeps
    # it), the first maximum: the shortest window among ties; candidates by decreasing score, then
    # fewer locations, the shorter window, the lower centre
    best_w = scores.argmax(axis=2)
    best_score = np.take_along_axis(scores, best_w[:, :, None], axis=2)[:, :, 0]
    cand_i, cand_k = np.nonzero(keep & (best_score > 0))
    cand_score, cand_w = best_score[cand_i, cand_k], best_w[cand_i, cand_k]
    order = np.lexsort((cand_i, cand_w, cand_k, -cand_score))
    clusters = []
    taken = np.zeros(n_locations, dtype=bool)
    for j in order.tolist():
        if len(clusters) == top:
            break
        i, k, w = int(cand_i[j]), int(cand_k[j]), int(cand_w[j])
        locations = knn_index[i, :k + 1]
        if taken[locations].any():
            continue
        taken[locations] = True
        score = float(cand_score[j])
        rank_mc = 1 + int((maxima >= score).sum())
        p = rank_mc / (reps + 1) if reps > 0 else None
        clusters.append(Cluster(
            rank=len(clusters) + 1, center=i, locations=locations.copy(), radius_m=float(knn_km[i, k]) * 1000.0,
            start=n_periods - 1 - w, end=n_periods - 1, observed=int(zone_c[i, k, w]),
            expected=float(zone_b[i, k, w]), llr=score, p=p,
            recurrence_days=(1.0 / p) if p is not None else None))
    return ScanResult("ebp", o, clusters, maxima, int(window_counts[:, -1].sum()), n_periods,
                      {"zones": int(keep.sum()), "windows": n_windows, "reps_done": done})


def _distinct_zones(knn_index: np.ndarray) -> np.ndarray:
    """keep[i, k]: zone (centre i, k+1 nearest) is the first occurrence, in centre order, of its set of
    locations (two zones can be equal only at the same size: each sorted row is compared whole)."""
    n, k = knn_index.shape
    keep = np.zeros((n, k), dtype=bool)
    for j in range(k):
        members = np.sort(knn_index[:, :j + 1], axis=1)
        # return_index gives each distinct row's first occurrence (numpy sorts stably for it)
        _, first = np.unique(members, axis=0, return_index=True)
        keep[first, j] = True
    return keep


# ------------------------------------------------------------------ helpers


def _decision_level(decide_p) -> float | None:
    if decide_p is None:
        return None
    if isinstance(decide_p, bool) or not isinstance(decide_p, (int, float)) or not 0 < decide_p <= 1:
        raise InvalidInput(f"decide_p must be a number in (0, 1], got {decide_p!r}")
    return float(decide_p)


def _decided(decide_p: float | None, maxima: np.ndarray, top: float, reps: int) -> bool:
    """Whether the replications so far already put the most likely cluster's p (over all ``reps``)
    at ``decide_p`` or above: the p of the full run, ``(1 + #maxima >= top) / (reps + 1)``, can only grow."""
    return decide_p is not None and (1 + int((maxima >= top).sum())) / (reps + 1) >= decide_p


def _count_matrix(counts, name: str) -> np.ndarray:
    if isinstance(counts, np.ndarray) and counts.ndim == 2 and counts.size and (
            counts.dtype.kind == "i" or (counts.dtype.kind == "u" and counts.dtype.itemsize < 8)):
        negative = counts < 0  # whole and finite already: only the sign to check
        if negative.any():
            loc, t = np.argwhere(negative)[0]
            raise InvalidInput(f"{name} must be whole numbers >= 0; location {loc}, period {t} holds "
                               f"{float(counts[loc, t])!r}")
        return np.ascontiguousarray(counts, dtype=np.int64)
    try:
        y = np.array(counts, dtype=np.float64, ndmin=2)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be numbers") from None
    if y.ndim != 2 or y.shape[0] == 0 or y.shape[1] == 0:
        raise InvalidInput(f"{name} must be a non-empty location x period matrix, got shape {y.shape}")
    bad = ~np.isfinite(y) | (y < 0) | (y != np.floor(y))
    if bad.any():
        loc, t = np.argwhere(bad)[0]
        raise InvalidInput(f"{name} must be whole numbers >= 0; location {loc}, period {t} holds {float(y[loc, t])!r}")
    return np.ascontiguousarray(y.astype(np.int64))


def _cartesian(lng, lat, n: int) -> np.ndarray:
    lng = np.asarray(lng, dtype=np.float64).ravel()
    lat = np.asarray(lat, dtype=np.float64).ravel()
    if lng.shape != (n,) or lat.shape != (n,):
        raise InvalidInput(f"{n} locations need {n} longitudes and latitudes, got {lng.size} and {lat.size}")
    bad = ~lnglat_valid(lng, lat)  # NaN fails too
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInput(f"location {i} has longitude {float(lng[i])!r}, latitude {float(lat[i])!r}: "
                           "need -180..180 and -90..90 degrees")
    xyz = np.empty((n, 3))
    ks.to_cartesian(np.ascontiguousarray(lng), np.ascontiguousarray(lat), xyz)
    return xyz


def _positive(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise InvalidInput(f"{name} must be a positive number, got {value!r}")
    return v


def _whole(value, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidInput(f"{name} must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        span = f"at least {low}" if high is None else f"between {low} and {high:,}"
        raise InvalidInput(f"{name} must be {span}, got {value!r}")
    return int(value)
