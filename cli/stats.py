"""``citygrid stats``: the dashboards' numbers from a running server's AnalyticsService.

    citygrid stats aggregate --from 2026-12-01T00:00+08:00 --to 2026-12-08T00:00+08:00 --by street,class \\
        --bucket day --measure reported,closed,overdue_now --filter source=hotline_12345
    citygrid stats top --level grid --rank-by rate -n 20
    citygrid stats trend --measure closed --filter street=440307003
    citygrid stats kpi --unit worker --csv > kpis.csv

The window is ``[--from, --to)``; by default the seven days up to now (``--to`` now, ``--from`` a week
before it). Answers print as a table for people, ``--json`` (one JSON object a line, NaN as null) or
``--csv`` (a header, then rows) for scripts. The token decides what is counted: a street's token
counts its street only. A failed call prints ``STATUS: message`` on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import unicodedata
from datetime import datetime, timedelta, timezone

from citygrid.cli.remote import Leaves, connection_options, parse_time, remote

#: The window when --from is not given: this long before --to.
DEFAULT_SPAN = timedelta(days=7)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("stats", help="aggregates, top areas, trends and KPIs from a running server",
                                   parents=[connection_options(defaults=True)])
    after = connection_options(defaults=False)
    sub = Leaves(parser.add_subparsers(dest="stats_command", metavar="STATS_COMMAND", required=True), after)

    p = sub.add_parser("aggregate", help="measures by dimensions and a time bucket")
    _window(p)
    p.add_argument("--by", type=_names, default=[], help="dimensions, comma-separated (street,category,...)")
    p.add_argument("--bucket", default="", help="a time bucket: hour, day, week, month, hour_of_day, weekday")
    p.add_argument("--measure", type=_names, default=["reported"], help="measures, comma-separated (default reported)")
    p.set_defaults(func=remote(_aggregate))

    p = sub.add_parser("top", help="the first areas of a level by count, rate or growth")
    _window(p)
    p.add_argument("--level", default="grid", help="grid, community, street or district (default grid)")
    p.add_argument("--rank-by", dest="rank_by", default="count", help="count, rate or growth (default count)")
    p.add_argument("-n", type=int, default=20, help="how many (default 20)")
    p.add_argument("--measure", default="reported", help="the count ranked (default reported)")
    p.set_defaults(func=remote(_top))

    p = sub.add_parser("trend", help="a count against the previous window and the same window a year before")
    _window(p)
    p.add_argument("--measure", default="reported", help="the count (default reported)")
    p.set_defaults(func=remote(_trend))

    p = sub.add_parser("kpi", help="考核: rates, minutes per stage, score and grade per unit")
    _window(p)
    p.add_argument("--unit", default="worker", help="worker, department, grid, community or street (default worker)")
    p.set_defaults(func=remote(_kpi))


def _window(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="start", type=parse_time, help="start (ISO time with zone; default: --to - 7 days)")
    p.add_argument("--to", dest="end", type=parse_time, help="end, excluded (default: now)")
    p.add_argument("--filter", dest="filters", action="append", type=_filter, default=[], metavar="DIM=CODE[,CODE]",
                   help="keep only these codes of a dimension (repeatable)")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", dest="form", action="store_const", const="json", help="one JSON object a line")
    form.add_argument("--csv", dest="form", action="store_const", const="csv", help="CSV with a header")


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _filter(text: str) -> tuple[str, list[str]]:
    dimension, sep, codes = text.partition("=")
    if not sep or not dimension.strip() or not _names(codes):
        raise argparse.ArgumentTypeError(f"{text!r}: give DIMENSION=CODE[,CODE...], e.g. street=440307003")
    return dimension.strip(), _names(codes)


def _span(args) -> tuple[datetime, datetime]:
    end = args.end or datetime.now(timezone.utc)
    return args.start or end - DEFAULT_SPAN, end


def _filters(args) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for dimension, codes in args.filters:
        out.setdefault(dimension, []).extend(codes)
    return out


def _aggregate(client, args) -> None:
    table = client.aggregate(*_span(args), dimensions=args.by, measures=args.measure, filters=_filters(args),
                             bucket=args.bucket)
    _print(table.column_names, [list(r.values()) for r in table.to_pylist()], args.form)


def _top(client, args) -> None:
    ranks = client.top_areas(*_span(args), level=args.level, by=args.rank_by, n=args.n, measure=args.measure,
                             filters=_filters(args))
    _print([args.level, args.measure, "previous", "per_1000_residents", "growth"],
           [[r.code, r.count, r.previous, r.per_1000_residents, r.growth] for r in ranks], args.form)


def _trend(client, args) -> None:
    t = client.trend(*_span(args), measure=args.measure, filters=_filters(args))
    _print(["measure", "current", "previous", "year_before", "vs_previous", "vs_year_before"],
           [[t.measure, t.current, t.previous, t.year_before, t.vs_previous, t.vs_year_before]], args.form)


def _kpi(client, args) -> None:
    table = client.kpis(*_span(args), unit=args.unit, filters=_filters(args))
    rows = sorted(table.to_pylist(), key=lambda r: (-_number(r.get("score")), str(r.get(args.unit))))
    _print(table.column_names, [list(r.values()) for r in rows], args.form)


def _number(value) -> float:
    return -math.inf if value is None or (isinstance(value, float) and math.isnan(value)) else value


# ---------------------------------------------------------------------- output


def _print(header: list[str], rows: list[list], form: str | None) -> None:
    if form == "json":
        for row in rows:
            print(json.dumps({k: _plain(v) for k, v in zip(header, row)}, ensure_ascii=False))
    elif form == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([["" if _plain(v) is None else _plain(v) for v in row] for row in rows])
    else:
        print(render_table(header, rows))


def _plain(value):
    """A JSON/CSV value: NaN and None as None (null, empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def render_table(header: list[str], rows: list[list]) -> str:
    """Rows as an aligned text table (CJK characters count two columns; numbers right-aligned;
    rates (``*_rate``, ``vs_*``, ``growth``) as percentages, other fractions with two decimals)."""
    cells = [[_cell(name, v) for name, v in zip(header, row)] for row in rows]
    widths = [max([_width(h)] + [_width(r[k]) for r in cells]) for k, h in enumerate(header)]
    numeric = [all(isinstance(row[k], (int, float)) or row[k] is None for row in rows) and bool(rows)
               for k in range(len(header))]

    def line(values):
        return "  ".join(_pad(v, w, right) for v, w, right in zip(values, widths, numeric)).rstrip()

    out = [line(header), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in cells)
    if not rows:
        out.append("(no events in the window)")
    return "\n".join(out)


def _cell(name: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        if name.endswith("_rate") or name.startswith("vs_") or name == "growth":
            return f"{value * 100:.1f}%"
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, right: bool) -> str:
    space = " " * (width - _width(text))
    return space + text if right else text + space
