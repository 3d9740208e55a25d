"""``citygrid detect METHOD SERIES.csv``: run a detector over count series from a CSV file.

SERIES.csv has ``period,count`` or ``series_id,period,count`` (periods: whole numbers or
``YYYY-MM-DD`` dates, evenly spaced; absent periods count 0). Prints the alarms, or with ``--json``
one record per judged period: ``series_id`` (when the file has one), ``period``, ``count``,
``expected``, ``upperbound``, ``alarm`` and the method's statistic (``c`` for EARS, ``cusum``,
``glr``, ``p_value`` for Bayes, ``score`` plus ``p_value``, ``phi`` and ``trend`` for Farrington).

    citygrid detect ears daily.csv --type C2 --min-sigma 0.5 --json
    citygrid detect glr weekly.csv --train 104 --threshold 5
    citygrid detect farrington weekly.csv --b 5 --w 3 --json

Methods and sources (checked against R ``surveillance`` 1.20; see ``engine/alerts/detectors.py``):
ears: EARS C1/C2/C3 (Hutwagner et al. 2003; Fricker et al. 2008); cusum: Poisson CUSUM (Lucas 1985);
glr: Poisson GLR-CUSUM (Hoehle and Paul 2008); bayes: the Bayes predictive method of ``algo.bayes``;
farrington: Farrington et al. 1996 with Noufaily et al. 2013's improvements.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from citygrid.cli.common import DefaultsHelpFormatter
from citygrid.engine.alerts import detectors as D
from citygrid.engine.alerts.series import read_series
from citygrid.engine.errors import InvalidInput

HELP = {
    "ears": "EARS C1, C2 or C3 (CDC): baseline mean and standard deviation of the last days",
    "cusum": "Poisson CUSUM for a rise of known size over a fitted in-control mean",
    "glr": "Poisson GLR-CUSUM for a rise of unknown size (Hoehle and Paul 2008)",
    "bayes": "Bayes predictive upper bound (negative binomial) from reference periods",
    "farrington": "Farrington flexible with Noufaily et al.'s improvements (needs >= 3 years)",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("detect", help="run an outbreak detector over count series",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    methods = parser.add_subparsers(dest="method", metavar="METHOD", required=True)
    for name in D.METHODS:
        sub = methods.add_parser(name, help=HELP[name], description=HELP[name] + ".",
                                 formatter_class=DefaultsHelpFormatter)
        sub.add_argument("series", type=Path, help="CSV file: period,count or series_id,period,count")
        sub.add_argument("--freq", type=int, default=None,
                         help="periods in a year (default: 52 for weekly dates and numbers, 365 for daily dates)")
        sub.add_argument("--start", type=int, default=None,
                         help="first period to judge, as a 0-based index (default: the first the method can)")
        sub.add_argument("--json", action="store_true", help="print one JSON record per judged period")
        _METHOD_ARGUMENTS[name](sub)
        sub.set_defaults(func=run)


def _ears_arguments(p):
    o = D.EarsOptions()
    p.add_argument("--type", default=o.method, choices=("C1", "C2", "C3"), help="which EARS statistic")
    p.add_argument("--baseline", type=int, default=o.baseline, help="baseline periods (at least 3)")
    p.add_argument("--alpha", type=float, default=None, help="one-sided level (default 0.001 for C1/C2, 0.025 for C3)")
    p.add_argument("--min-sigma", type=float, default=o.min_sigma,
                   help="floor of the baseline standard deviation (0.5 or 1 for sparse counts)")


def _in_control_arguments(p):
    p.add_argument("--train", type=int, default=None,
                   help="leading periods the in-control Poisson GLM is fitted on (default: half the series)")
    p.add_argument("--harmonics", type=int, default=1, help="sine/cosine pairs of the in-control GLM")
    p.add_argument("--period", type=float, default=None, help="seasonal period of the harmonics (default: --freq)")
    p.add_argument("--trend", action="store_true", help="add a linear trend to the in-control GLM")
    p.add_argument("--min-events-per-coefficient", type=float, default=D.InControl().min_events_per_coefficient,
                   help="series with fewer training events per GLM coefficient get a constant mean pooled over "
                        "the file's sparse series (empirical Bayes); 0 fits the GLM to every series, as R's "
                        "glrpois does")


def _cusum_arguments(p):
    o = D.CusumOptions()
    p.add_argument("--kappa", type=float, default=o.kappa, help="log rate ratio of the rise to detect (log 2: doubling)")
    p.add_argument("--threshold", type=float, default=o.threshold, help="alarm when the CUSUM exceeds it")
    _in_control_arguments(p)


def _glr_arguments(p):
    o = D.GlrOptions()
    p.add_argument("--threshold", type=float, default=o.threshold, help="alarm when the GLR statistic reaches it")
    _in_control_arguments(p)


def _bayes_arguments(p):
    o = D.BayesOptions()
    p.add_argument("--b", type=int, default=o.b, help="years back for reference periods")
    p.add_argument("--w", type=int, default=o.w, help="half window of reference periods")
    p.add_argument("--no-act-y", dest="act_y", action="store_false", help="leave out the w periods just before")
    p.add_argument("--alpha", type=float, default=o.alpha, help="one-sided level of the predictive bound")


def _farrington_arguments(p):
    o = D.FarringtonOptions()
    p.add_argument("--b", type=int, default=o.b, help="years back")
    p.add_argument("--w", type=int, default=o.w, help="half window around the same period of past years")
    p.add_argument("--periods", type=int, default=o.periods, help="levels of the seasonal factor (1: original)")
    p.add_argument("--past-excluded", type=int, default=o.past_excluded, help="recent periods left out of the fit")
    p.add_argument("--no-reweight", dest="reweight", action="store_false", help="do not down-weight past outbreaks")
    p.add_argument("--weights-threshold", type=float, default=o.weights_threshold,
                   help="Anscombe residual above which a period is down-weighted")
    p.add_argument("--no-trend", dest="trend", action="store_false", help="never fit a trend")
    p.add_argument("--p-trend", type=float, default=o.p_trend, help="keep the trend when its p-value is below this")
    p.add_argument("--threshold", default=o.threshold, choices=("nbplugin", "muan", "delta"),
                   help="threshold method")
    p.add_argument("--power", default=o.power, choices=("none", "1/2", "2/3"), help="power transform of delta")
    p.add_argument("--alpha", type=float, default=o.alpha, help="one-sided level of the bound")
    p.add_argument("--limit", type=int, nargs=2, default=[o.limit_cases, o.limit_periods], metavar=("CASES", "PERIODS"),
                   help="no alarm unless CASES were counted in the last PERIODS periods")


_METHOD_ARGUMENTS = {"ears": _ears_arguments, "cusum": _cusum_arguments, "glr": _glr_arguments,
                     "bayes": _bayes_arguments, "farrington": _farrington_arguments}


def options_of(args: argparse.Namespace):
    """The detector options the command line asks for."""
    m = args.method
    if m == "ears":
        return D.EarsOptions(method=args.type, baseline=args.baseline, alpha=args.alpha, min_sigma=args.min_sigma)
    if m in ("cusum", "glr"):
        ic = D.InControl(train=args.train, period=args.period, harmonics=args.harmonics, trend=args.trend,
                         min_events_per_coefficient=args.min_events_per_coefficient)
        if m == "cusum":
            return D.CusumOptions(kappa=args.kappa, threshold=args.threshold, in_control=ic)
        return D.GlrOptions(threshold=args.threshold, in_control=ic)
    if m == "bayes":
        return D.BayesOptions(b=args.b, w=args.w, act_y=args.act_y, alpha=args.alpha)
    return D.FarringtonOptions(b=args.b, w=args.w, periods=args.periods, past_excluded=args.past_excluded,
                               reweight=args.reweight, weights_threshold=args.weights_threshold, trend=args.trend,
                               p_trend=args.p_trend, threshold=args.threshold, power=args.power, alpha=args.alpha,
                               limit_cases=args.limit[0], limit_periods=args.limit[1])


def run(args: argparse.Namespace) -> int:
    table = read_series(args.series)
    freq = args.freq or table.periods.periods_per_year() or 52
    if freq < 1:
        raise InvalidInput(f"--freq must be at least 1, got {freq}")
    result = D.detect(args.method, table.counts, options_of(args), freq=freq, start=args.start)
    records = records_of(result, table)
    if args.json:
        print(json.dumps(records, ensure_ascii=False, allow_nan=False))
        return 0
    alarms = [r for r in records if r["alarm"]]
    print(f"{args.method}: {len(table.series_ids)} series x {table.periods.n} periods, judged from period "
          f"{table.periods.label(result.start)}; {len(alarms)} alarms")
    for r in alarms:
        who = f"{r['series_id']} " if "series_id" in r else ""
        print(f"  {who}{r['period']}: count {r['count']:g} > upper bound {_fmt(r['upperbound'])} "
              f"(expected {_fmt(r['expected'])})")
    return 0


def records_of(result: D.Detection, table) -> list[dict]:
    """One JSON-ready record per series and judged period."""
    stat = result.statistic_name
    extra = {name: result.extra[name] for name in ("p_value", "phi", "trend") if name in result.extra}
    named = len(table.series_ids) > 1 or table.series_ids[0] != ""
    out = []
    for s, sid in enumerate(table.series_ids):
        for t in range(result.start, table.periods.n):
            r = {"series_id": sid} if named else {}
            r.update(period=table.periods.label(t), count=_num(table.counts[s, t]),
                     expected=_num(result.expected[s, t]), upperbound=_num(result.upperbound[s, t]),
                     alarm=bool(result.alarm[s, t]))
            r[stat] = _num(result.statistic[s, t])
            for name, values in extra.items():
                r[name] = bool(values[s, t]) if values.dtype == bool else _num(values[s, t])
            out.append(r)
    return out


def _num(x):
    """A JSON number (ints stay ints), null for NaN and infinities."""
    x = float(x)
    if not math.isfinite(x):
        return None
    return int(x) if x == int(x) and abs(x) < 2**53 else x


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.4g}"

