"""A day-by-day prospective replay of the demo year's space-time scans (``bench/test_scan_replay.py``).

Each judged day ``e`` is scanned as a centre would scan it that morning, with the study ending on
``e`` and nothing after it:

- ``stp``: every category on its own, exactly as a scheduled detection run does
  (:func:`citygrid.engine.alerts.discs.scan_findings` with the setting's radius, longest window,
  replications and ``scan_p``; study ``scan_study_days`` = 365 days, i.e. the year so far);
- ``stp-all``: all events together in one space-time permutation scan (same options);
- ``ebp``: every category on its own, the expectation-based Poisson scan of the last
  ``max_duration`` days against per-grid baselines from the 8 weeks before them (below).

A day's clusters with ``p < decide_p`` are kept (the replications stop once that is decided: a kept
cluster has the p of every replication), as :class:`~citygrid.engine.alerts.store.Finding` fields,
and cached per setting and day under ``CITYGRID_REPLAY_CACHE`` (default ``~/.cache/citygrid-scan-replay``)
so that a run can be resumed and the sweep's thresholds read from one replay.

EBP baselines (the issue leaves them open): for grid ``g`` and scanned day ``t``,
``B = (n_g + a mu) / (T + a) * f_t`` with ``n_g`` the category's events in ``g`` over the ``T`` = 56 days
before the scanned window, ``mu`` their mean per grid and day, ``a`` = 28 prior days (a Gamma-Poisson
shrinkage towards the district's mean, so a grid with no event yet has a small positive baseline
and the district's total is kept), and ``f_t`` the weekday's share of the category's 8 weeks (its
count on that weekday over 8 weeks, relative to the mean). Days with fewer than 28 days of history
before the window, and categories without an event in it, are not scanned.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

#: Bump when the replay's logic changes (cached days of an older logic are not read).
LOGIC = 1
DEMO_SEED = 20261130
YEAR_START = dt.date(2025, 1, 1)
#: First day judged: a week of history before it (the labelled anomalies start on day 7 or later).
FIRST_JUDGED = 7
EBP_HISTORY_DAYS = 56
EBP_PRIOR_DAYS = 28
EBP_MIN_HISTORY = 28


@dataclass(frozen=True)
class Setting:
    method: str                 # stp, stp-all or ebp
    reps: int = 999
    decide_p: float = 0.005     # clusters with p below it are kept
    radius_km: float = 1.0      # stp
    max_days: int = 7           # stp: longest window; ebp: max_duration
    knn: int = 15               # ebp

    @property
    def key(self) -> str:
        extra = f"-k{self.knn}" if self.method == "ebp" else ""
        return f"{self.method}-r{self.radius_km:g}-d{self.max_days}{extra}-reps{self.reps}-p{self.decide_p:g}-v{LOGIC}"


def cache_root() -> Path:
    return Path(os.environ.get("CITYGRID_REPLAY_CACHE", Path.home() / ".cache" / "citygrid-scan-replay"))


def demo_root() -> Path:
    """The demo (default seed) to replay: ``CITYGRID_DEMO_DIR`` or one generated once into the cache."""
    given = os.environ.get("CITYGRID_DEMO_DIR")
    if given:
        return Path(given)
    root = cache_root() / f"demo-{DEMO_SEED}"
    if not (root / "anomalies.parquet").is_file():
        from citygrid.engine.demo import generate_demo

        generate_demo(root, seed=DEMO_SEED)
    return root


class Year:
    """The demo year's events, coded as the analytics mirror codes them, and its layer."""

    def __init__(self, root: Path):
        import pyarrow.parquet as pq

        from citygrid.engine.alerts import discs
        from citygrid.engine.hierarchy import Chains
        from citygrid.engine.layers.sources import read_layer

        self.layer = read_layer(root / "grids.parquet", version_id="bench-scan-replay")
        self.points = discs.grid_points(self.layer)
        self.chains = Chains.of_layer(self.layer)
        events = pq.read_table(root / "events.parquet", columns=["grid_code", "category_code", "occurred_at"])
        ms = events.column("occurred_at").cast("int64").to_numpy()
        origin = int(dt.datetime(2025, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp() * 1000)
        self.day = (ms - origin) // 86_400_000  # local day (Asia/Shanghai has no daylight saving)
        grid = events.column("grid_code").combine_chunks().dictionary_encode()
        category = events.column("category_code").combine_chunks().dictionary_encode()
        self.coded = (grid.indices.to_numpy(), grid.dictionary.to_pylist(), category.indices.to_numpy(),
                      category.dictionary.to_pylist())
        self.rows = discs.layer_rows(self.layer.codes, self.coded[1])[self.coded[0]]
        names, of = np.unique(np.asarray(self.coded[3], dtype=str), return_inverse=True)
        self.categories = names
        self.category = of.reshape(-1)[self.coded[2]]
        self.n_days = int(self.day.max()) + 1


_YEAR: Year | None = None


def _year() -> Year:
    global _YEAR
    if _YEAR is None:
        _YEAR = Year(demo_root())
    return _YEAR


def _finding_fields(f) -> dict:
    d = asdict(f)
    d["first_day"], d["last_day"] = f.first_day.isoformat(), f.last_day.isoformat()
    return d


def day_findings(setting: Setting, e: int) -> list[dict]:
    """The findings (as dicts) of judged day ``e`` (index from 1 January), computed or read from the cache."""
    return _day(setting, e)["findings"]


def day_cpu(setting: Setting, e: int) -> float:
    """CPU seconds the day's scans took (one Numba thread), as cached."""
    return _day(setting, e)["cpu_s"]


def _day(setting: Setting, e: int) -> dict:
    import time

    path = cache_root() / "days" / setting.key / f"{e:03d}.json"
    if path.is_file():
        return json.loads(path.read_text())
    started = time.process_time()
    y = _year()
    started_scans = time.process_time()
    if setting.method == "stp":
        findings = _stp_categories(y, setting, e)
    elif setting.method == "stp-all":
        findings = _stp_all(y, setting, e)
    elif setting.method == "ebp":
        findings = _ebp_categories(y, setting, e)
    else:
        raise ValueError(f"unknown replay method {setting.method!r}")
    out = {"findings": [_finding_fields(f) for f in findings], "cpu_s": time.process_time() - started_scans,
           "load_s": started_scans - started}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(out))
    tmp.replace(path)
    return out


def _stp_categories(y: Year, s: Setting, e: int):
    from citygrid.engine.alerts import discs
    from citygrid.engine.alerts.settings import AlertSettings

    settings = AlertSettings(scan_radius_km=s.radius_km, scan_max_days=s.max_days, scan_reps=s.reps, scan_p=s.decide_p)
    keep = y.day <= e  # what the centre has that morning
    grid, grid_codes, category, category_codes = y.coded
    return discs.scan_findings(settings, y.layer, y.points, grid[keep], grid_codes, category[keep], category_codes,
                               y.day[keep], YEAR_START, [e])


def _cluster_finding(y: Year, method: str, category: str, c, lo: int, e: int):
    from citygrid.engine.alerts import store as S

    codes = y.layer.codes
    centre = str(codes[c.center])
    lng, lat = y.points
    return S.Finding("scan", method, category, "disc", centre, y.chains.chain_of_code(centre),
                     YEAR_START + dt.timedelta(days=lo + c.start), YEAR_START + dt.timedelta(days=lo + c.end),
                     float(c.observed), float(c.expected), float(c.llr), float(c.p),
                     grids=tuple(str(codes[k]) for k in c.locations.tolist()),
                     lng=float(lng[c.center]), lat=float(lat[c.center]), radius_m=float(c.radius_m))


def _stp_all(y: Year, s: Setting, e: int):
    from citygrid.engine.alerts import discs
    from citygrid.engine.alerts.scan import StpOptions, space_time_permutation

    keep = (y.day <= e) & (y.rows >= 0)
    n_grids = len(y.layer.codes)
    counts = np.bincount(y.rows[keep] * (e + 1) + y.day[keep], minlength=n_grids * (e + 1)).reshape(n_grids, e + 1)
    options = StpOptions(max_radius_km=s.radius_km, max_share=0.5, max_days=s.max_days, min_cases=2, reps=s.reps,
                         seed=discs.SEED)
    result = space_time_permutation(counts, *y.points, options, decide_p=s.decide_p)
    return [_cluster_finding(y, "stp", "all", c, 0, e) for c in result.clusters if c.p is not None and c.p < s.decide_p]


def ebp_baselines(history: np.ndarray, history_weekday: np.ndarray, window_weekday: np.ndarray) -> np.ndarray | None:
    """(grids x scanned days) baselines from a (grids x T days) history (see the module docstring);
    None when the history holds no event."""
    T = history.shape[1]
    total = history.sum()
    if total == 0:
        return None
    n_g = history.sum(axis=1).astype(np.float64)
    mu = total / (history.shape[0] * T)
    per_day = (n_g + EBP_PRIOR_DAYS * mu) / (T + EBP_PRIOR_DAYS)
    by_weekday = np.bincount(history_weekday, weights=history.sum(axis=0), minlength=7)
    days_of = np.bincount(history_weekday, minlength=7)
    mean = total / T
    factor = np.where(days_of > 0, by_weekday / np.maximum(days_of, 1) / mean, 1.0)
    factor = np.maximum(factor, 0.05)  # a weekday without events in 8 weeks still gets a positive baseline
    return per_day[:, None] * factor[window_weekday][None, :]


def _ebp_categories(y: Year, s: Setting, e: int):
    from citygrid.engine.alerts import discs
    from citygrid.engine.alerts.scan import EbpOptions, expectation_based_poisson

    D = s.max_days
    h_hi = e - D + 1  # the history ends before the scanned window
    h_lo = max(0, h_hi - EBP_HISTORY_DAYS)
    if h_hi - h_lo < EBP_MIN_HISTORY:
        return []
    n_grids = len(y.layer.codes)
    weekday = (np.arange(y.n_days) + YEAR_START.weekday()) % 7
    options = EbpOptions(knn=s.knn, max_duration=D, top=5, reps=s.reps, seed=discs.SEED)
    keep = (y.day >= h_lo) & (y.day <= e) & (y.rows >= 0)
    rows, day, cats = y.rows[keep], y.day[keep], y.category[keep]
    findings = []
    span = e - h_lo + 1
    for k in np.unique(cats[day > h_hi - 1]).tolist():
        mine = cats == k
        counts = np.bincount(rows[mine] * span + (day[mine] - h_lo), minlength=n_grids * span).reshape(n_grids, span)
        base = ebp_baselines(counts[:, :h_hi - h_lo], weekday[h_lo:h_hi], weekday[h_hi:e + 1])
        if base is None:
            continue
        result = expectation_based_poisson(counts[:, h_hi - h_lo:], base, *y.points, options, decide_p=s.decide_p)
        findings += [_cluster_finding(y, "ebp", str(y.categories[k]), c, h_hi, e) for c in result.clusters
                     if c.p is not None and c.p < s.decide_p]
    return findings


def _work(args):
    setting, e = args
    out = _day(setting, e)
    return e, len(out["findings"]), out["cpu_s"]


def replay(setting: Setting, days, workers: int = 2, progress=None) -> dict[int, list[dict]]:
    """Every judged day's findings; missing days computed in ``workers`` processes (one Numba thread each)."""
    days = list(days)
    missing = [e for e in days if not (cache_root() / "days" / setting.key / f"{e:03d}.json").is_file()]
    if missing:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        old = os.environ.get("NUMBA_NUM_THREADS")
        os.environ["NUMBA_NUM_THREADS"] = "1"
        try:
            with ctx.Pool(workers) as pool:
                for e, n, cpu in pool.imap_unordered(_work, [(setting, e) for e in missing]):
                    if progress:
                        progress(setting, e, n, cpu)
        finally:
            if old is None:
                os.environ.pop("NUMBA_NUM_THREADS", None)
            else:
                os.environ["NUMBA_NUM_THREADS"] = old
    return {e: day_findings(setting, e) for e in days}


# ------------------------------------------------------------------ scoring


def alerts_of(findings: list[dict]):
    """Findings (as cached) as :class:`~citygrid.engine.alerts.scoring.Alerts`, days counted from 1 January."""
    from citygrid.engine.alerts import scoring as SC

    def day(text):
        return (dt.date.fromisoformat(text) - YEAR_START).days

    return SC.Alerts(categories=[f["category_code"] for f in findings], grids=[frozenset(f["grids"]) for f in findings],
                     first_day=np.array([day(f["first_day"]) for f in findings], dtype=np.int64),
                     last_day=np.array([day(f["last_day"]) for f in findings], dtype=np.int64))


def deduplicated(by_day: dict[int, list[dict]]) -> list[dict]:
    """The findings of each day, in day order, through the service's AlertStore (open alerts updated
    by what they touch), as the alerts it holds at the end."""
    import tempfile
    from zoneinfo import ZoneInfo

    from citygrid.engine.access.principals import Principal, Role
    from citygrid.engine.alerts import store as S

    cst = ZoneInfo("Asia/Shanghai")
    admin = Principal("replay", Role.ADMIN)
    with tempfile.TemporaryDirectory() as tmp:
        store = S.AlertStore(tmp)
        try:
            for e in sorted(by_day):
                findings = [S.Finding(**{**f, "chain": tuple(f["chain"]), "grids": tuple(f["grids"]),
                                         "first_day": dt.date.fromisoformat(f["first_day"]),
                                         "last_day": dt.date.fromisoformat(f["last_day"])}) for f in by_day[e]]
                today = YEAR_START + dt.timedelta(days=e)
                at = dt.datetime.combine(today, dt.time(8), cst)
                store.record(findings, run={"started_at": at, "trigger": "replay", "first_day": today, "last_day": today,
                                            "series": 0, "events": 0, "seconds": 0.0}, at=at, principal=admin)
            alerts, before = [], None
            while True:
                page = store.list(admin, before=before, limit=S.MAX_PAGE)
                alerts += page
                if len(page) < S.MAX_PAGE:
                    break
                before = page[-1].id
        finally:
            store.close()
    return [{"category_code": a.category_code, "grids": list(a.grids), "first_day": a.first_day.isoformat(),
             "last_day": a.last_day.isoformat()} for a in alerts]


def score_replay(setting: Setting, by_day: dict[int, list[dict]], labelled, thresholds) -> list[dict]:
    """Recall and false alerts at each of ``thresholds`` the setting's replay decides (at most its
    ``decide_p``, above its smallest p ``1 / (reps + 1)``), scored on the anomalies whose whole window
    lies in the judged days; the all-events scan (category ``all``) covers an anomaly of any category."""
    import math

    from citygrid.engine.alerts import scoring as SC

    lo, hi = min(by_day), max(by_day)
    # the anomalies whose whole window lies in the judged days (all 40 when the year is judged)
    judged = [i for i in range(len(labelled.ids)) if lo <= labelled.first_day[i] and labelled.last_day[i] <= hi]
    labelled = SC.Labelled([labelled.ids[i] for i in judged], [labelled.kinds[i] for i in judged],
                           [labelled.categories[i] for i in judged], [labelled.grids[i] for i in judged],
                           labelled.first_day[judged], labelled.last_day[judged])
    if setting.method == "stp-all":  # any category: the anomalies' categories are not the scan's
        labelled = SC.Labelled(labelled.ids, labelled.kinds, ["all"] * len(labelled.ids), labelled.grids,
                               labelled.first_day, labelled.last_day)
    n_days = len(by_day)
    rows = []
    for threshold in thresholds:
        if threshold > setting.decide_p or threshold <= 1 / (setting.reps + 1):
            continue  # not decided by this replay, or below the smallest p of its replications
        kept = {e: [f for f in fs if f["p"] < threshold] for e, fs in by_day.items()}
        clusters = [f for e in sorted(kept) for f in kept[e]]
        raw = SC.score(alerts_of(clusters), labelled, n_days)
        merged = SC.score(alerts_of(deduplicated(kept)), labelled, n_days)
        rows.append({"threshold": threshold, "spike": merged.recall.get("spike", math.nan),
                     "cluster": merged.recall.get("cluster", math.nan),
                     "clusters": raw.n_alerts, "false_clusters": raw.false_alerts,
                     "false_clusters_per_day": raw.false_per_day, "alerts": merged.n_alerts,
                     "false_alerts": merged.false_alerts, "false_per_day": merged.false_per_day,
                     "precision": merged.precision, "found": merged.found,
                     "raw_recall": raw.recall})
    return rows
