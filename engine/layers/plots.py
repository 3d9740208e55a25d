"""Pictures of validation results: the grids with every problem a report found marked on them.

Matplotlib is imported only when a picture is drawn, and always through its Agg canvas (no pyplot,
no global backend switch), so importing this module costs nothing and drawing works without a display.

Each problem is drawn twice: its shape (filled, when it has one) and a marker at its representative
point, so a 2 m² gap in a 700 km² city still shows. Slivers get small grey dots.
"""

from __future__ import annotations

import math
import os

import numpy as np
import shapely

from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.layers.validation import ValidationReport

#: Colour and marker of each kind of problem (colour-blind-safe Okabe–Ito palette).
STYLES = {
    "invalid": dict(color="#CC79A7", marker="^", label="invalid geometry"),
    "overlap": dict(color="#D55E00", marker="X", label="overlap"),
    "gap": dict(color="#0072B2", marker="o", label="gap"),
    "outside": dict(color="#E69F00", marker="s", label="outside the boundary"),
    "nesting": dict(color="#009E73", marker="D", label="nesting error"),
    "sliver": dict(color="#555555", marker=".", label="sliver"),
}


def plot_validation(
    layer: GridLayer,
    report: ValidationReport,
    path: str | os.PathLike,
    boundary: shapely.Geometry | None = None,
    *,
    dpi: int = 150,
) -> None:
    """Draw ``layer`` with the problems of ``report`` marked and write a PNG to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import PathPatch

    fig = Figure(figsize=(10, 10), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    ring_offsets = layer.ring_offsets
    rings = [np.column_stack([layer.x[a:b], layer.y[a:b]]) for a, b in zip(ring_offsets[:-1], ring_offsets[1:])]
    ax.add_collection(LineCollection(rings, colors="#9a9a9a", linewidths=0.3, zorder=1))
    if boundary is not None:
        ax.add_collection(LineCollection(_rings(boundary), colors="black", linewidths=1.2, zorder=2))

    grids = layer.geometries()
    shapes = {
        "nesting": [grids[e.row] for e in report.nesting_errors],
        "outside": [o.geometry for o in report.outside_boundary],
        "gap": [g.geometry for g in report.gaps],
        "overlap": [o.geometry for o in report.overlaps],
        "invalid": [grids[i.row] for i in report.invalid_geometries],
    }
    for kind, geoms in shapes.items():
        patches = [PathPatch(_path(g)) for g in geoms if g is not None and not g.is_empty]
        if patches:
            color = STYLES[kind]["color"]
            filled = kind != "invalid"  # an invalid grid is outlined: its fill would hide its neighbours
            ax.add_collection(PatchCollection(
                patches, facecolors=color if filled else "none", edgecolors=color,
                alpha=0.55 if filled else 1.0, linewidths=0.8 if filled else 1.5, zorder=3,
            ))

    points = {
        "sliver": [p.point for p in (*report.sliver_overlaps, *report.sliver_gaps, *report.sliver_outside)],
        "nesting": [_centre(grids[e.row]) for e in report.nesting_errors],
        "outside": [o.point for o in report.outside_boundary],
        "gap": [g.point for g in report.gaps],
        "overlap": [o.point for o in report.overlaps],
        "invalid": [i.point or _centre(grids[i.row]) for i in report.invalid_geometries],
    }
    handles = []
    for kind, pts in points.items():
        style = STYLES[kind]
        size = 3 if kind == "sliver" else 7
        if pts:
            xy = np.asarray(pts, dtype=float)
            ax.plot(xy[:, 0], xy[:, 1], linestyle="none", marker=style["marker"], markersize=size,
                    markerfacecolor=style["color"], markeredgecolor="white" if kind != "sliver" else style["color"],
                    markeredgewidth=0.5, zorder=5 if kind != "sliver" else 4)
        handles.append(Line2D([], [], linestyle="none", marker=style["marker"], markersize=size + 1,
                              markerfacecolor=style["color"], markeredgecolor=style["color"],
                              label=f"{style['label']} ({len(pts):,})"))

    lng0, lat0, lng1, lat1 = _extent(layer, boundary)
    pad_lng, pad_lat = (lng1 - lng0) * 0.02 or 0.001, (lat1 - lat0) * 0.02 or 0.001
    ax.set_xlim(lng0 - pad_lng, lng1 + pad_lng)
    ax.set_ylim(lat0 - pad_lat, lat1 + pad_lat)
    ax.set_aspect(1 / math.cos(math.radians((lat0 + lat1) / 2)))
    ax.ticklabel_format(useOffset=False)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.legend(handles=handles[::-1], loc="best", fontsize=9, framealpha=0.9)
    ax.set_title(_title(report), fontsize=10)
    fig.savefig(os.fspath(path), dpi=dpi, format="png")


def _title(report: ValidationReport) -> str:
    verdict = "VALID" if report.valid else "INVALID"
    counts = [
        f"{len(report.invalid_geometries):,} invalid",
        f"{len(report.overlaps):,} overlaps",
        f"{len(report.gaps):,} gaps",
    ]
    if report.boundary is not None:
        counts.append(f"{len(report.outside_boundary):,} outside, {report.boundary.coverage_pct:.3f} % covered")
    if report.nesting is not None:
        counts.append(f"{len(report.nesting_errors):,} nesting errors")
    counts.append(f"{report.n_slivers:,} slivers < {report.sliver_m2:g} m²")
    return f"{report.version_id} ({report.n_grids:,} grids): {verdict}\n" + ", ".join(counts)


def _path(geom: shapely.Geometry):
    """A matplotlib Path of every polygon ring of ``geom`` (holes stay holes)."""
    from matplotlib.path import Path

    verts, codes = [], []
    for ring in _rings(geom):
        ring_codes = np.full(len(ring), Path.LINETO, dtype=np.uint8)
        ring_codes[0], ring_codes[-1] = Path.MOVETO, Path.CLOSEPOLY
        verts.append(ring)
        codes.append(ring_codes)
    return Path(np.concatenate(verts), np.concatenate(codes))


def _rings(geom: shapely.Geometry) -> list[np.ndarray]:
    parts = shapely.get_parts(shapely.get_parts(geom))
    polygons = parts[shapely.get_type_id(parts) == shapely.GeometryType.POLYGON]
    return [shapely.get_coordinates(ring) for ring in shapely.get_rings(polygons)]


def _centre(geom: shapely.Geometry) -> tuple[float, float]:
    point = shapely.point_on_surface(geom)
    return (point.x, point.y)


def _extent(layer: GridLayer, boundary) -> tuple[float, float, float, float]:
    boxes = [layer.bounds] if len(layer.x) else []
    if boundary is not None and not boundary.is_empty:
        boxes.append(tuple(shapely.bounds(boundary)))
    if not boxes:
        return (0.0, 0.0, 1.0, 1.0)
    b = np.asarray(boxes)
    return (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())
