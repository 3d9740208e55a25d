"""``citygrid report``: a self-contained HTML report of a window's events from a running server.

    citygrid report --server localhost:50051 --token $T --from 2026-11-01T00:00+08:00 \\
        --to 2026-12-01T00:00+08:00 -o report/

Writes ``report/report.html`` (one file: the figures are inlined as base64 PNG) and each figure as a
PNG beside it: the summary with its trend, the grids coloured by events (or ``--colour rate``: per
1,000 residents) under the streets' outlines, an H3 heatmap, this period against the same period a
year before, the hour x weekday matrix, the top communities and grids, and the KPI table (考核) of
the streets with their grades. Everything is counted by the server inside the token's
jurisdiction: a street's token gets its street's report.

The areas' shapes come from the server's ``GridService.GetLayerGeometry`` when it offers it, else
from ``--grids`` (a layer file, e.g. the demo's ``grids.parquet``); without either the maps are left
out and the report says so. Chinese labels need a CJK font (:mod:`citygrid.cli.charts`).
"""

from __future__ import annotations

import argparse
import base64
import html
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import numpy as np

from citygrid.cli import charts
from citygrid.cli.charts import text
from citygrid.cli.remote import connection_options, parse_time, remote
from citygrid.engine.errors import InvalidInput

#: Local time of the report's dates and buckets.
TIMEZONE = ZoneInfo("Asia/Shanghai")
#: Windows up to this long are drawn day by day against the year before; longer ones month by month.
DAILY_UP_TO = timedelta(days=62)
TOP_N = 15
#: Communities of the lowest scores listed under the streets' KPIs.
WEAKEST = 10
#: Simplification of the areas' shapes asked from the server (degrees; about 20 m).
TOLERANCE = 0.0002
GRADE_COLOURS = {"A": "#1e8449", "B": "#52be80", "C": "#f4d03f", "D": "#e67e22", "E": "#c0392b", "": "#bbbbbb"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="a self-contained HTML report of a window's events from a server",
                              parents=[connection_options(defaults=True)])
    p.add_argument("--from", dest="start", type=parse_time, required=True, help="start (ISO time with zone)")
    p.add_argument("--to", dest="end", type=parse_time, required=True, help="end, excluded (ISO time with zone)")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder for report.html and the PNGs")
    p.add_argument("--colour", choices=("count", "rate"), default="count",
                   help="colour the grids by events (count) or events per 1,000 residents (rate)")
    p.add_argument("--h3-resolution", type=int, default=8, help="H3 resolution of the heatmap, 7-10 (default 8)")
    p.add_argument("--grids", type=Path, help="a layer file for the maps when the server offers no layer geometry")
    p.set_defaults(func=remote(build))


def build(client, args) -> int:
    start, end = args.start, args.end
    if not start < end:
        raise InvalidInput("--to must be after --from")
    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    me = client.whoami()
    names = _names(client)
    figures: dict[str, bytes] = {}
    notes: list[str] = []
    if charts.cjk_font() is None:
        notes.append("No CJK font is installed (apt-get install fonts-noto-cjk): the figures use English and codes.")

    summary = client.aggregate(start, end, measures=["reported", "closed", "closed_on_time", "overdue_now",
                                                      "escalated", "duplicates", "close_minutes_mean"]).to_pylist()
    summary = summary[0] if summary else {}
    trend = client.trend(start, end)

    grids = client.aggregate(start, end, dimensions=["grid"], measures=["reported", "reported_per_1000_residents"])
    per_grid = dict(zip(grids.column("grid").to_pylist(), grids.column(
        "reported" if args.colour == "count" else "reported_per_1000_residents").to_pylist()))
    shapes = _shapes(client, args.grids, set(names["grid"]), notes)
    if shapes is not None:
        grid_shapes, street_shapes = shapes
        codes = sorted(grid_shapes)
        street_codes = sorted(street_shapes)
        figures["grids"] = charts.choropleth(
            [grid_shapes[c] for c in codes], [_value(per_grid.get(c, 0.0)) for c in codes],
            title=text("各网格事件" + ("数" if args.colour == "count" else "（每千居民）"),
                       "Events per grid" + ("" if args.colour == "count" else " per 1,000 residents")),
            legend=text("事件数（分级）" if args.colour == "count" else "每千居民事件数（分级）",
                        "events (classes)" if args.colour == "count" else "events per 1,000 residents (classes)"),
            outlines=[street_shapes[c] for c in street_codes],
            outline_labels=[_short(names["street"].get(c, c)) for c in street_codes])
        cells = client.heatmap(start, end, h3_resolution=args.h3_resolution)
        figures["h3"] = charts.h3_map(
            cells.column("h3_cell").to_pylist(), cells.column("reported").to_pylist(),
            title=text(f"事件热力图（H3 {args.h3_resolution} 级）", f"Event heatmap (H3 resolution {args.h3_resolution})"),
            legend=text("事件数（对数刻度）", "events (log scale)"), outlines=[street_shapes[c] for c in street_codes])

    labels, now_series, before_series = _year_on_year(client, start, end)
    figures["year_on_year"] = charts.year_on_year(
        labels, now_series, before_series, title=text("本期与去年同期", "This period against a year before"),
        names=(text("本期", "this period"), text("去年同期", "a year before")), ylabel=text("事件数", "events"),
        no_before=text("去年同期无事件记录", "no events recorded a year before"))

    hours = client.aggregate(start, end, dimensions=["weekday", "hour_of_day"])
    matrix = np.zeros((7, 24), np.int64)
    for w, h, n in zip(*(hours.column(c).to_pylist() for c in ("weekday", "hour_of_day", "reported"))):
        matrix[int(w), int(h)] = n
    figures["hour_weekday"] = charts.hour_weekday(matrix, title=text("时段 × 星期分布", "Hour of day x weekday"),
                                                  legend=text("事件数", "events"))

    tops = {}
    for level in ("community", "grid"):
        ranks = client.top_areas(start, end, level=level, n=TOP_N)
        tops[level] = ranks
        figures[f"top_{level}"] = charts.top_bars(
            [_label(names[level], r.code) for r in ranks], [r.count for r in ranks], [r.previous for r in ranks],
            title=text(f"事件最多的{'社区' if level == 'community' else '网格'}（前 {TOP_N}）",
                       f"Top {TOP_N} {level}s by events"),
            names_of=(text("本期", "this period"), text("上一期", "previous period")))

    kpis = client.kpis(start, end, unit="street").to_pylist()
    kpis.sort(key=lambda r: (-(r["score"] if not _nan(r["score"]) else -1), r["street"] or ""))
    for name, png in figures.items():
        (out / f"{name}.png").write_bytes(png)
    communities = [r for r in client.kpis(start, end, unit="community").to_pylist() if not _nan(r["score"])]
    weak = sorted(communities, key=lambda r: (r["score"], r["community"] or ""))[:WEAKEST]
    page = _html(me, start, end, summary, trend, figures, tops, kpis, weak, names, notes, args)
    (out / "report.html").write_text(page, encoding="utf-8")
    print(out / "report.html")
    return 0


# ---------------------------------------------------------------------- data


def _names(client) -> dict[str, dict[str, str]]:
    """Names of the grids, communities and streets the token sees."""
    names: dict[str, dict[str, str]] = {"grid": {}, "community": {}, "street": {}}
    for g in client.list_grids():
        names["grid"][g.code] = g.name
        names["community"][g.community_code] = g.community_name
        names["street"][g.street_code] = g.street_name
    return names


def _shapes(client, grids_file: Path | None, visible: set[str], notes: list[str]):
    """(grid code -> shape, street code -> shape) from the server's layer geometry, else from
    ``grids_file`` (its grids the token sees, ``visible``); None (and a note) when neither is there."""
    import shapely

    try:
        levels = [{a.code: shapely.from_wkb(a.wkb) for a in client.get_layer_geometry(level, tolerance=TOLERANCE)}
                  for level in ("grid", "street")]
        return levels[0], levels[1]
    except grpc.RpcError as exc:
        if exc.code() is not grpc.StatusCode.UNIMPLEMENTED:  # a server older than GetLayerGeometry: --grids
            raise
    if grids_file is None:
        notes.append("The server offers no layer geometry and no --grids file was given: the maps are left out.")
        return None
    from citygrid.engine.layers.sources import read_layer

    layer = read_layer(grids_file)
    grid_shapes, streets = {}, {}
    for code, street, shape in zip(layer.column("grid_code").tolist(), layer.column("street_code").tolist(),
                                   layer.geometries()):
        if code in visible:
            grid_shapes[code] = shape
            streets.setdefault(street, []).append(shape)
    street_shapes = {s: shapely.coverage_union_all(parts) for s, parts in streets.items()}
    return grid_shapes, street_shapes


def _year_on_year(client, start: datetime, end: datetime) -> tuple[list[str], list[int], list[int]]:
    """Bucket labels and the counts of this period and of the same dates a year before."""
    bucket = "day" if end - start <= DAILY_UP_TO else "month"
    keys = _buckets(bucket, start, end)
    ago = (_year_before(start), _year_before(end))
    before_keys = _buckets(bucket, *ago)
    series = []
    for window, wanted in (((start, end), keys), (ago, before_keys)):
        table = client.aggregate(*window, bucket=bucket)
        got = dict(zip(table.column(bucket).to_pylist(), table.column("reported").to_pylist())) if len(table) else {}
        series.append([got.get(k, 0) for k in wanted])
    n = min(len(keys), len(before_keys))
    return keys[:n], series[0][:n], series[1][:n]


def _buckets(bucket: str, start: datetime, end: datetime) -> list[str]:
    first, last = start.astimezone(TIMEZONE), (end - timedelta(microseconds=1)).astimezone(TIMEZONE)
    if bucket == "day":
        days = (last.date() - first.date()).days
        return [(first.date() + timedelta(days=k)).isoformat() for k in range(days + 1)]
    months = (last.year - first.year) * 12 + last.month - first.month
    return [f"{(first.month - 1 + k) // 12 + first.year:04d}-{(first.month - 1 + k) % 12 + 1:02d}"
            for k in range(months + 1)]


def _year_before(t: datetime) -> datetime:
    try:
        return t.replace(year=t.year - 1)
    except ValueError:
        return t.replace(year=t.year - 1, day=28)


def _value(v) -> float:
    return math.nan if v is None else float(v)


def _nan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _minutes(v) -> str:
    return "—" if _nan(v) else f"{v:,.0f}"


def _short(name: str) -> str:
    return name.removesuffix("街道") if charts.cjk_font() else name


def _label(names: dict[str, str], code: str) -> str:
    name = names.get(code)
    return f"{name}" if name and charts.cjk_font() else code


# ---------------------------------------------------------------------- the page


def _html(me, start, end, summary, trend, figures, tops, kpis, weak, names, notes, args) -> str:
    def img(name: str, alt: str) -> str:
        if name not in figures:
            return ""
        data = base64.b64encode(figures[name]).decode()
        return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'

    def pct(v) -> str:
        return "—" if _nan(v) else f"{v * 100:.1f}%"

    def change(v) -> str:
        if _nan(v):
            return "—"
        arrow = "▲" if v > 0 else "▼" if v < 0 else "■"
        return f"{arrow} {abs(v) * 100:.1f}%"

    reported = summary.get("reported", 0)
    closed = summary.get("closed", 0)
    cards = [
        ("上报事件", f"{reported:,}", f"较上期 {change(trend.vs_previous)} · 较去年同期 {change(trend.vs_year_before)}"),
        ("已结案", f"{closed:,}", f"结案率 {pct(closed / reported if reported else math.nan)}"),
        ("按时结案", f"{summary.get('closed_on_time', 0):,}",
         f"占结案 {pct(summary.get('closed_on_time', 0) / closed if closed else math.nan)}"),
        ("当前超期", f"{summary.get('overdue_now', 0):,}", f"督办 {summary.get('escalated', 0):,} 件"),
        ("重复上报", f"{summary.get('duplicates', 0):,}",
         f"平均结案 {_minutes(summary.get('close_minutes_mean'))} 工作分钟"),
    ]
    card_html = "".join(f'<div class="card"><div class="k">{k}</div><div class="v">{v}</div><div class="s">{s}</div></div>'
                        for k, v, s in cards)
    def kpi_row(r, level):
        grade = r.get("grade") or ""
        return (
            "<tr>" + f"<td>{html.escape(names[level].get(r[level], r[level] or '（无）'))}</td>"
            + "".join(f'<td class="n">{r[c]:,}</td>' for c in ("registered", "closed", "overdue_now"))
            + "".join(f'<td class="n">{pct(r[c])}</td>' for c in ("closure_rate", "on_time_disposal_rate",
                                                                   "timely_dispatch_rate", "rework_rate"))
            + f'<td class="n">{_minutes(r["handle_minutes_mean"])}</td>'
            + f'<td class="n">{"—" if _nan(r["score"]) else round(r["score"], 1)}</td>'
            + f'<td><span class="grade" style="background:{GRADE_COLOURS.get(grade, "#bbb")}">{grade or "—"}</span></td></tr>')

    rows = [kpi_row(r, "street") for r in kpis]
    weak_rows = [kpi_row(r, "community") for r in weak]
    top_rows = "".join(
        f"<tr><td>{k + 1}</td><td>{html.escape(names['grid'].get(r.code, r.code))}</td><td>{r.code}</td>"
        f'<td class="n">{r.count:,}</td><td class="n">{r.previous:,}</td><td class="n">{change(r.growth)}</td></tr>'
        for k, r in enumerate(tops.get("grid", [])))
    scope = "全区" if not me.jurisdiction or "*" in me.jurisdiction else "、".join(names["street"].get(c) or names["community"].get(c) or c
                                                       for c in me.jurisdiction)
    local = lambda t: t.astimezone(TIMEZONE).strftime("%Y-%m-%d %H:%M")  # noqa: E731
    note_html = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    generated = datetime.now(timezone.utc).astimezone(TIMEZONE).strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>网格事件分析报告 {local(start)} 至 {local(end)}</title>
<style>
body {{ font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC", sans-serif;
       margin: 2em auto; max-width: 1000px; color: #222; }}
h1 {{ font-size: 1.6em; margin-bottom: 0.2em; }} h2 {{ border-left: 4px solid #c0392b; padding-left: 0.5em; margin-top: 1.8em; }}
.meta {{ color: #666; }} .note {{ background: #fff4e5; padding: 0.5em 1em; border-radius: 4px; }}
.cards {{ display: flex; gap: 0.8em; flex-wrap: wrap; }}
.card {{ flex: 1 1 150px; border: 1px solid #ddd; border-radius: 6px; padding: 0.7em 0.9em; }}
.card .k {{ color: #666; font-size: 0.9em; }} .card .v {{ font-size: 1.7em; font-weight: bold; }}
.card .s {{ color: #666; font-size: 0.82em; }}
figure {{ margin: 0.5em 0; }} img {{ max-width: 100%; }}
table {{ border-collapse: collapse; width: 100%; font-size: 0.9em; }}
th, td {{ border-bottom: 1px solid #e5e5e5; padding: 0.35em 0.5em; text-align: left; }}
th {{ background: #f6f6f6; }} td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
.grade {{ color: white; font-weight: bold; padding: 0.1em 0.6em; border-radius: 3px; }}
</style></head><body>
<h1>网格事件分析报告</h1>
<p class="meta">统计范围：{html.escape(scope)} · 时段：{local(start)} 至 {local(end)}（北京时间，按上报时间计）·
生成：{generated} · 数据：{html.escape(args.server)} · 身份：{html.escape(me.principal)}</p>
{note_html}
<h2>概况</h2><div class="cards">{card_html}</div>
<h2>网格分布</h2>{img("grids", "各网格事件数")}
<h2>热力图</h2>{img("h3", "H3 热力图")}
<h2>本期与去年同期</h2>{img("year_on_year", "本期与去年同期")}
<h2>时段 × 星期</h2>{img("hour_weekday", "时段星期分布")}
<h2>高发区域</h2>{img("top_community", "事件最多的社区")}{img("top_grid", "事件最多的网格")}
<table><tr><th>#</th><th>网格</th><th>编码</th><th>本期</th><th>上一期</th><th>环比</th></tr>{top_rows}</table>
<h2>街道考核</h2>
<p class="meta">得分为按期处置率、结案率、返工率（取 1 − 返工率）、及时派遣率的加权平均（权重与等级线见服务端 [analytics] 配置）；
平均处置时长为工作分钟。</p>
<table><tr><th>街道</th><th>立案</th><th>结案</th><th>当前超期</th><th>结案率</th><th>按期处置率</th><th>及时派遣率</th>
<th>返工率</th><th>平均处置（工作分钟）</th><th>得分</th><th>等级</th></tr>{"".join(rows)}</table>
<h2>需关注的社区（得分最低 {len(weak)} 个）</h2>
<table><tr><th>社区</th><th>立案</th><th>结案</th><th>当前超期</th><th>结案率</th><th>按期处置率</th><th>及时派遣率</th>
<th>返工率</th><th>平均处置（工作分钟）</th><th>得分</th><th>等级</th></tr>{"".join(weak_rows)}</table>
</body></html>
"""
