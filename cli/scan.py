"""``citygrid scan stp|ebp``: space-time cluster scans of cases or counts from CSV files.

    citygrid scan stp --cases CASES.csv --locations LOCS.csv --study-start 2025-01-01 --study-end 2025-12-31 \\
        --max-radius-km 1 --max-share 0.5 --max-days 7 --min-cases 2 --reps 999 --seed 1 --json
    citygrid scan ebp --counts COUNTS.csv --baselines BASELINES.csv --locations LOCS.csv --knn 15 \\
        --max-duration 4 --top 5 --reps 999 --seed 1 --json

LOCS.csv: ``location_id,lat,lng``. CASES.csv: ``location_id,date[,count]``. COUNTS.csv and
BASELINES.csv: ``location_id,period,count`` / ``location_id,period,baseline`` (period a whole
number or a date; the scan ends at the last period of either file).

``stp`` is the prospective space-time permutation scan (Kulldorff et al. 2005, SaTScan's model):
cylinders of the locations within a radius of each location times the last 1..max-days days of
the study, expected counts from the space and time margins, the log-likelihood ratio, p-values
from permuting dates among cases, SaTScan's rules for secondary clusters, recurrence interval
1/p days. ``ebp`` is the expectation-based Poisson scan (Neill et al. 2005): zones of each
location's 1..knn nearest, windows of the last 1..max-duration periods, score C ln(C/B) + B - C,
p-values from Poisson(baseline) replications. Both are deterministic for a seed.

Prints the clusters, or with ``--json`` a list of them with ``rank, center, locations, radius_m,
start, end, duration, observed, expected, ratio, llr`` (``score`` for ebp) ``, p, recurrence_days``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math

from citygrid.cli.common import DefaultsHelpFormatter
from citygrid.engine.alerts import scan as S
from citygrid.engine.alerts.series import read_cases, read_location_periods, read_locations, span
from citygrid.engine.errors import InvalidInput


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("scan", help="space-time cluster scans (permutation, expectation-based Poisson)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    o = S.StpOptions()
    stp = kinds.add_parser("stp", help="prospective space-time permutation scan of cases",
                           formatter_class=DefaultsHelpFormatter,
                           description="Prospective space-time permutation scan (Kulldorff et al. 2005).")
    stp.add_argument("--cases", required=True, help="CSV: location_id,date[,count]")
    stp.add_argument("--locations", required=True, help="CSV: location_id,lat,lng")
    stp.add_argument("--study-start", required=True, type=_date, help="first day of the study (YYYY-MM-DD)")
    stp.add_argument("--study-end", required=True, type=_date, help="last day of the study, 'now' (YYYY-MM-DD)")
    stp.add_argument("--max-radius-km", type=float, default=o.max_radius_km, help="largest circle radius")
    stp.add_argument("--max-share", type=float, default=o.max_share,
                     help="largest share of all cases a circle may hold")
    stp.add_argument("--max-days", type=int, default=o.max_days, help="longest window, in days, ending on the last day")
    stp.add_argument("--min-cases", type=int, default=o.min_cases, help="fewest cases of a cluster")
    _common(stp, o)
    stp.set_defaults(func=run_stp)

    e = S.EbpOptions()
    ebp = kinds.add_parser("ebp", help="expectation-based Poisson scan of counts against baselines",
                           formatter_class=DefaultsHelpFormatter,
                           description="Expectation-based Poisson scan (Neill et al. 2005).")
    ebp.add_argument("--counts", required=True, help="CSV: location_id,period,count")
    ebp.add_argument("--baselines", required=True, help="CSV: location_id,period,baseline")
    ebp.add_argument("--locations", required=True, help="CSV: location_id,lat,lng")
    ebp.add_argument("--knn", type=int, default=e.knn, help="largest zone: a location and its knn-1 nearest")
    ebp.add_argument("--max-duration", type=int, default=e.max_duration, help="longest window, in periods")
    ebp.add_argument("--top", type=int, default=e.top, help="clusters to report (no shared locations)")
    _common(ebp, e)
    ebp.set_defaults(func=run_ebp)


def _common(parser, o):
    parser.add_argument("--reps", type=int, default=o.reps, help="Monte Carlo replications (0: no p-values)")
    parser.add_argument("--seed", type=int, default=o.seed, help="random seed (same seed, same answer)")
    parser.add_argument("--json", action="store_true", help="print the clusters as JSON")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def run_stp(args: argparse.Namespace) -> int:
    locations = read_locations(args.locations)
    counts = read_cases(args.cases, locations, args.study_start, args.study_end)
    options = S.StpOptions(max_radius_km=args.max_radius_km, max_share=args.max_share, max_days=args.max_days,
                           min_cases=args.min_cases, reps=args.reps, seed=args.seed)
    result = S.space_time_permutation(counts, locations.lng, locations.lat, options)

    def day(index: int) -> str:
        return (args.study_start + dt.timedelta(days=index)).isoformat()

    return _print(args, result, locations, day, "llr")


def run_ebp(args: argparse.Namespace) -> int:
    locations = read_locations(args.locations)
    count_periods, counts = read_location_periods(args.counts, locations, "count")
    base_periods, baselines = read_location_periods(args.baselines, locations, "baseline")
    periods = span(count_periods, base_periods)
    _, counts = read_location_periods(args.counts, locations, "count", periods)
    _, baselines = read_location_periods(args.baselines, locations, "baseline", periods)
    window = min(args.max_duration, periods.n) if args.max_duration >= 1 else 1
    recent = baselines[:, periods.n - window:]
    if (recent <= 0).any():
        loc, t = map(int, next(zip(*(recent <= 0).nonzero())))
        raise InvalidInput(f"{args.baselines}: no baseline for location {locations.ids[loc]!r}, period "
                           f"{periods.label(periods.n - window + t)} (every location needs one for the scanned periods)")
    options = S.EbpOptions(knn=args.knn, max_duration=args.max_duration, top=args.top, reps=args.reps, seed=args.seed)
    result = S.expectation_based_poisson(counts, baselines, locations.lng, locations.lat, options)
    return _print(args, result, locations, periods.label, "score")


def _print(args, result: S.ScanResult, locations, label, stat: str) -> int:
    records = [record_of(c, locations, label, stat) for c in result.clusters]
    if args.json:
        print(json.dumps(records, ensure_ascii=False, allow_nan=False))
        return 0
    what = "cases" if result.method == "stp" else "counted in the scanned windows"
    print(f"{result.method}: {len(locations.ids)} locations, {result.n_periods} periods, {result.total:,} {what}, "
          f"{len(result.replicate_maxima)} replications; {len(records)} clusters")
    for r in records:
        p = "-" if r["p"] is None else f"{r['p']:.4g}"
        print(f"  #{r['rank']} centre {r['center']} ({len(r['locations'])} locations, {r['radius_m']:.0f} m) "
              f"{r['start']}..{r['end']}: observed {r['observed']}, expected {r['expected']:.2f}, "
              f"{stat} {r[stat]:.3f}, p {p}")
    return 0


def record_of(c: S.Cluster, locations, label, stat: str) -> dict:
    return {
        "rank": c.rank,
        "center": locations.ids[c.center],
        "locations": [locations.ids[i] for i in c.locations],
        "radius_m": c.radius_m,
        "start": label(c.start),
        "end": label(c.end),
        "duration": c.duration,
        "observed": c.observed,
        "expected": c.expected,
        "ratio": c.ratio if math.isfinite(c.ratio) else None,
        stat: c.llr,
        "p": c.p,
        "recurrence_days": c.recurrence_days,
    }
