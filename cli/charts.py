"""The figures of ``citygrid report`` (matplotlib, Agg backend), each returned as PNG bytes.

Chinese labels need a CJK font: :func:`cjk_font` picks the first installed of :data:`CJK_FONTS`
(Debian: ``apt-get install fonts-noto-cjk``; ``fonts-droid-fallback`` also works). Without one the
figures label areas by code and use English titles, and the report says so.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache

import numpy as np

#: CJK fonts in order of preference (family names as fontconfig knows them).
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
             "Droid Sans Fallback", "AR PL UMing CN")
WEEKDAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: Sequential colours for counts (light = few), and the grade colours of the KPI table.
COUNT_MAP = "YlOrRd"
DPI = 110


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The family of an installed CJK font, or None."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    font = cjk_font()
    plt.rcParams["font.family"] = [font, "DejaVu Sans"] if font else ["DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False
    plt.rcParams["axes.formatter.use_mathtext"] = False
    return plt


def _plain_ticks(bar) -> None:
    """Colour-bar ticks as plain numbers (1, 2, 5, 10, ...), not 10^k in mathtext (which a CJK
    font may lack the glyphs of)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if bar.norm.__class__.__name__ == "LogNorm":
        bar.ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        bar.ax.yaxis.set_minor_formatter(NullFormatter())
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 or v == int(v) else f"{v:g}"))


def text(zh: str, en: str) -> str:
    """The Chinese label when a CJK font is installed, else the English one."""
    return zh if cjk_font() else en


def _png(fig) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI, bbox_inches="tight")
    _plt().close(fig)
    return out.getvalue()


def _draw_shapes(ax, shapes, values, norm, cmap, *, edge="white", width=0.15):
    """Fill each shapely (multi)polygon with its value's colour (NaN: light grey)."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Polygon

    patches, colours = [], []
    for shape, value in zip(shapes, values):
        for poly in getattr(shape, "geoms", [shape]):
            if poly.is_empty:
                continue
            patches.append(Polygon(np.asarray(poly.exterior.coords), closed=True))
            colours.append((0.92, 0.92, 0.92, 1.0) if value is None or math.isnan(value) else cmap(norm(value)))
    ax.add_collection(PatchCollection(patches, facecolors=colours, edgecolors=edge, linewidths=width))


def _outline(ax, shapes, labels=None, colour="#333333"):
    for k, shape in enumerate(shapes):
        for poly in getattr(shape, "geoms", [shape]):
            x, y = poly.exterior.xy
            ax.plot(x, y, color=colour, linewidth=1.3)
        if labels:
            p = shape.representative_point()
            ax.text(p.x, p.y, labels[k], ha="center", va="center", fontsize=10, color="#111111",
                    bbox=dict(boxstyle="round,pad=0.25", fc="white", ec="#555555", lw=0.5, alpha=0.9))


def _map_axes(plt, shapes, title):
    fig, ax = plt.subplots(figsize=(9, 7.2))
    xs = [s.bounds for s in shapes if not s.is_empty]
    ax.set_xlim(min(b[0] for b in xs), max(b[2] for b in xs))
    ax.set_ylim(min(b[1] for b in xs), max(b[3] for b in xs))
    ax.set_aspect(1 / math.cos(math.radians((ax.get_ylim()[0] + ax.get_ylim()[1]) / 2)))
    ax.set_axis_off()
    ax.set_title(title, fontsize=13)
    return fig, ax


def class_bounds(values: list[float], classes: int = 6) -> list[float]:
    """Class boundaries of a classed map: 0, then rounded quantiles of the positive values, up to
    the largest (each class holds about as many areas; boundaries are whole where the values are)."""
    positive = np.array([v for v in values if v is not None and not math.isnan(v) and v > 0])
    if not len(positive):
        return [0.0, 1.0]
    qs = np.quantile(positive, np.linspace(0, 1, classes)[1:-1])
    whole = bool(np.all(positive == np.round(positive)))
    qs = np.ceil(qs) if whole else np.round(qs, 2)
    bounds = sorted({0.0, *qs.tolist(), float(positive.max())})
    return bounds if len(bounds) > 1 else [0.0, float(positive.max())]


def choropleth(grid_shapes: list, values: list[float], *, title: str, legend: str, outlines=(),
               outline_labels=None) -> bytes:
    """Grids in classes of a count or rate (about as many grids each; grey: no value), with a legend
    of the classes' ranges, and outlines (streets) with their names over them."""
    plt = _plt()
    from matplotlib import colors

    fig, ax = _map_axes(plt, grid_shapes, title)
    bounds = class_bounds(values)
    cmap = plt.get_cmap(COUNT_MAP, len(bounds) - 1)
    norm = colors.BoundaryNorm(bounds, cmap.N)
    _draw_shapes(ax, grid_shapes, values, norm, cmap, edge=(1, 1, 1, 0.5), width=0.1)
    _outline(ax, list(outlines), outline_labels)
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.7, pad=0.01,
                       ticks=bounds, spacing="uniform")
    bar.ax.set_yticklabels([f"{b:,.0f}" if b == int(b) else f"{b:,.2f}" for b in bounds])
    bar.set_label(legend)
    return _png(fig)


def h3_map(cells: list[str], counts: list[int], *, title: str, legend: str, outlines=()) -> bytes:
    """H3 cells coloured by count over the district's outline."""
    import h3
    import shapely

    plt = _plt()
    from matplotlib import colors

    shapes = [shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in cells]
    fig, ax = _map_axes(plt, list(outlines) or shapes, title)
    cmap = plt.get_cmap("magma_r")
    norm = colors.LogNorm(vmin=1, vmax=max(max(counts, default=1), 2))
    _draw_shapes(ax, shapes, counts, norm, cmap, edge="none", width=0)
    _outline(ax, list(outlines), colour="#2c3e50")
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.7, pad=0.01)
    _plain_ticks(bar)
    bar.set_label(legend)
    return _png(fig)


def year_on_year(labels: list[str], now: list[int], before: list[int], *, title: str, names: tuple[str, str],
                 ylabel: str, no_before: str = "") -> bytes:
    """This period against the same period a year before, bucket by bucket (without a single event a
    year before, that line is left out and ``no_before`` says why)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.8))
    x = np.arange(len(labels))
    ax.plot(x, now, color="#c0392b", linewidth=2, marker="o", markersize=3, label=names[0])
    if any(before):
        ax.plot(x, before, color="#7f8c8d", linewidth=1.5, linestyle="--", marker="o", markersize=2.5, label=names[1])
    elif no_before:
        ax.text(0.5, 0.06, no_before, transform=ax.transAxes, ha="center", color="#7f8c8d", fontsize=9)
    step = max(1, len(labels) // 12)
    ax.set_xticks(x[::step], [labels[k] for k in range(0, len(labels), step)], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=13)
    ax.grid(axis="y", alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _png(fig)


def hour_weekday(matrix: np.ndarray, *, title: str, legend: str) -> bytes:
    """Counts by weekday (rows, Monday first) and hour of day (columns), with the numbers."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 3.6))
    image = ax.imshow(matrix, cmap="YlGnBu", aspect="auto")
    ax.set_xticks(range(24), [f"{h:02d}" for h in range(24)], fontsize=8)
    ax.set_yticks(range(7), WEEKDAYS_ZH if cjk_font() else WEEKDAYS_EN)
    ax.set_xlabel(text("时段（本地时间）", "hour of day (local time)"))
    top = matrix.max() if matrix.size else 0
    for (r, c), v in np.ndenumerate(matrix):
        if v:
            ax.text(c, r, f"{int(v)}", ha="center", va="center", fontsize=6,
                    color="white" if v > 0.6 * top else "#333333")
    ax.set_title(title, fontsize=13)
    bar = fig.colorbar(image, ax=ax, pad=0.01)
    bar.set_label(legend)
    return _png(fig)


def top_bars(names: list[str], counts: list[int], previous: list[int], *, title: str, names_of: tuple[str, str]) -> bytes:
    """Horizontal bars of the top areas (first at the top), with the previous window beside."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 0.34 * len(names) + 1.2))
    y = np.arange(len(names))[::-1]
    ax.barh(y + 0.2, counts, height=0.4, color="#c0392b", label=names_of[0])
    ax.barh(y - 0.2, previous, height=0.4, color="#bdc3c7", label=names_of[1])
    for yy, c in zip(y, counts):
        ax.text(c, yy + 0.2, f" {c:,}", va="center", fontsize=8)
    ax.set_yticks(y, names, fontsize=9)
    ax.set_title(title, fontsize=13)
    ax.legend(frameon=False, loc="lower right")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _png(fig)
