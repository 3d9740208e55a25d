"""Coverage validation, the publish gate of a grid layer: full coverage, no overlap (全覆盖、无交叉).

:func:`validate_layer` checks one :class:`~citygrid.engine.layers.layer.GridLayer` and returns a
:class:`ValidationReport`. It finds

- invalid geometries (with the GEOS reason and where), empty geometries, duplicate and missing codes;
- overlaps between grids: each pair, its area and a representative point;
- gaps: holes in the union of the grids and, given a ``boundary``, the parts of the boundary no grid
  covers (other than those holes); the share of the boundary covered; grids reaching outside it;
- nesting, given a ``parents`` layer: every grid inside exactly one parent (the parent holding at
  least ``min_parent_share`` of its area) and, given ``parent_code_field``, that the grid's column
  names that same parent;
- slivers: overlaps, gaps and outside parts smaller than ``sliver_m2``, listed apart; they do not make
  the layer invalid.

How it works. Topology is decided in lon/lat, as the point-in-grid assignment sees it (edges are
straight in lon/lat): overlaps come from one ``STRtree`` query of every grid against every other
(predicate ``intersects``) and one vectorised ``shapely.intersection`` over the pair arrays; gaps are
the interior rings of ``shapely.union_all``. Each piece found is then measured in square metres in a
Lambert azimuthal equal-area projection centred on the layer's bounds (its edges split every
:data:`SEGMENT_DEG` first, so a long boundary edge keeps its lon/lat shape). Projecting the inputs
instead would bend long edges differently from the grids' short ones and invent gaps along a
boundary. Invalid geometries are reported, then repaired with ``shapely.make_valid(method=
"structure")`` for the overlay stages, so they never crash them. Should GEOS raise a topology error
on a chunk of pairs, that chunk is redone on a :data:`SNAP_GRID_DEG` grid and ``notes`` says so.
Points are ``[lng, lat]``.

JSON schema (``report.to_dict()`` / ``report.to_json()``; ``"schema": "citygrid.validation/1"``)::

    {
      "schema": "citygrid.validation/1",
      "valid": false,
      "layer": {"version_id": str, "source": str, "n_grids": int, "content_hash": str},
      "settings": {"sliver_m2": float, "min_parent_share": float, "projection": str (PROJ string)},
      "summary": {
        "n_invalid_geometries": int, "n_empty_geometries": int, "n_duplicate_codes": int,
        "n_missing_codes": int, "n_overlaps": int, "overlap_area_m2": float, "n_gaps": int,
        "gap_area_m2": float, "n_outside_boundary": int, "outside_area_m2": float,
        "n_nesting_errors": int, "n_slivers": int, "union_area_m2": float
      },
      "invalid_geometries": [{"row": int, "code": str|null, "reason": str, "point": [lng, lat]|null}],
      "empty_geometries":   [{"row": int, "code": str|null}],
      "duplicate_codes":    [{"code": str, "rows": [int, ...]}],
      "missing_codes":      [{"row": int, "code": str|null}],
      "overlaps":           [{"rows": [int, int], "codes": [str|null, str|null], "area_m2": float,
                              "point": [lng, lat]}],
      "gaps":               [{"kind": "hole"|"uncovered", "area_m2": float, "point": [lng, lat],
                              "codes": [str, ...] (grids along it)}],
      "outside_boundary":   [{"row": int, "code": str|null, "area_m2": float, "point": [lng, lat]}],
      "nesting_errors":     [{"row": int, "code": str|null,
                              "kind": "outside_parents"|"straddles"|"code_mismatch",
                              "parents": [{"code": str|null, "share": float}, ...],
                              "declared_parent": str|null, "geometric_parent": str|null}],
      "slivers": {"overlaps": [overlap, ...], "gaps": [gap, ...], "outside_boundary": [outside, ...]},
      "boundary": null | {"area_m2": float, "covered_m2": float, "coverage_pct": float},
      "nesting": null | {"parent_version_id": str, "n_parents": int, "parent_code_field": str|null,
                         "n_nested": int, "n_code_agrees": int|null},
      "notes": [str, ...],
      "timings_s": {stage: float, ...}
    }

Lists are sorted: rows ascending, areas descending. Areas are rounded to 6 significant digits and
points to 7 decimals (about 1 cm).

>>> import shapely
>>> from citygrid.engine.layers.layer import GridLayer
>>> layer = GridLayer.from_geometries(
...     [shapely.box(114.0, 22.0, 114.01, 22.01), shapely.box(114.009, 22.0, 114.02, 22.01)],
...     {"grid_code": ["A", "B"]})
>>> report = validate_layer(layer)
>>> report.valid, [o.codes for o in report.overlaps]
(False, [('A', 'B')])
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import shapely
from pyproj import CRS, Transformer

from citygrid.engine.errors import InvalidInput
from citygrid.engine.layers.layer import GridLayer
# The report's records are named here too (they were declared in this module).
from citygrid.engine.layers.problems import (  # noqa: F401
    BoundaryCoverage, DuplicateCode, Gap, GridRef, InvalidGeometry, NestingError, NestingSummary, OutsideBoundary,
    Overlap, ParentShare, _jsonable, _Record,
)

SCHEMA = "citygrid.validation/1"

#: Default tolerance: overlaps, gaps and outside parts smaller than this (m²) are slivers.
DEFAULT_SLIVER_M2 = 1.0
#: Default share of a grid's area its parent must hold for the grid to nest in it.
DEFAULT_MIN_PARENT_SHARE = 0.999
#: Grid size (degrees, about 1 mm) of the snapped overlay used only when GEOS fails on the exact one.
SNAP_GRID_DEG = 1e-8
#: How close (degrees, about 1 cm) a grid must come to a gap to be listed along it.
NEIGHBOUR_DISTANCE_DEG = 1e-7
#: Edges longer than this (degrees, about 100 m) are split before an area is projected.
SEGMENT_DEG = 1e-3
#: Pairs per vectorised overlay call (the unit of progress reports).
PAIRS_PER_CHUNK = 10_000

Progress = Callable[[str, int, int], None]
LngLat = tuple[float, float]

_REASON_POINT = re.compile(r"\[\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)\s*\]")


# ---------------------------------------------------------------------- the report


@dataclass
class ValidationReport:
    """What :func:`validate_layer` found. ``valid`` is the publish gate."""

    version_id: str
    source: str
    n_grids: int
    content_hash: str
    sliver_m2: float
    min_parent_share: float
    projection: str
    union_area_m2: float = 0.0
    invalid_geometries: list[InvalidGeometry] = field(default_factory=list)
    empty_geometries: list[GridRef] = field(default_factory=list)
    duplicate_codes: list[DuplicateCode] = field(default_factory=list)
    missing_codes: list[GridRef] = field(default_factory=list)
    overlaps: list[Overlap] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    outside_boundary: list[OutsideBoundary] = field(default_factory=list)
    nesting_errors: list[NestingError] = field(default_factory=list)
    sliver_overlaps: list[Overlap] = field(default_factory=list)
    sliver_gaps: list[Gap] = field(default_factory=list)
    sliver_outside: list[OutsideBoundary] = field(default_factory=list)
    boundary: BoundaryCoverage | None = None
    nesting: NestingSummary | None = None
    notes: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        """No invalid or empty geometry, no duplicate or missing code, no overlap, gap or outside
        part at or above the sliver tolerance, and every grid nests (when parents were given)."""
        return not (
            self.invalid_geometries
            or self.empty_geometries
            or self.duplicate_codes
            or self.missing_codes
            or self.overlaps
            or self.gaps
            or self.outside_boundary
            or self.nesting_errors
        )

    @property
    def n_slivers(self) -> int:
        return len(self.sliver_overlaps) + len(self.sliver_gaps) + len(self.sliver_outside)

    def summary(self) -> dict:
        return {
            "n_invalid_geometries": len(self.invalid_geometries),
            "n_empty_geometries": len(self.empty_geometries),
            "n_duplicate_codes": len(self.duplicate_codes),
            "n_missing_codes": len(self.missing_codes),
            "n_overlaps": len(self.overlaps),
            "overlap_area_m2": _area(sum(o.area_m2 for o in self.overlaps)),
            "n_gaps": len(self.gaps),
            "gap_area_m2": _area(sum(g.area_m2 for g in self.gaps)),
            "n_outside_boundary": len(self.outside_boundary),
            "outside_area_m2": _area(sum(o.area_m2 for o in self.outside_boundary)),
            "n_nesting_errors": len(self.nesting_errors),
            "n_slivers": self.n_slivers,
            "union_area_m2": _area(self.union_area_m2),
        }

    def to_dict(self) -> dict:
        """The report in the documented JSON schema (see the module docstring)."""

        def records(items):
            return [item.to_dict() for item in items]

        return {
            "schema": SCHEMA,
            "valid": self.valid,
            "layer": {
                "version_id": self.version_id,
                "source": self.source,
                "n_grids": self.n_grids,
                "content_hash": self.content_hash,
            },
            "settings": {
                "sliver_m2": self.sliver_m2,
                "min_parent_share": self.min_parent_share,
                "projection": self.projection,
            },
            "summary": self.summary(),
            "invalid_geometries": records(self.invalid_geometries),
            "empty_geometries": records(self.empty_geometries),
            "duplicate_codes": records(self.duplicate_codes),
            "missing_codes": records(self.missing_codes),
            "overlaps": records(self.overlaps),
            "gaps": records(self.gaps),
            "outside_boundary": records(self.outside_boundary),
            "nesting_errors": records(self.nesting_errors),
            "slivers": {
                "overlaps": records(self.sliver_overlaps),
                "gaps": records(self.sliver_gaps),
                "outside_boundary": records(self.sliver_outside),
            },
            "boundary": None if self.boundary is None else self.boundary.to_dict(),
            "nesting": None if self.nesting is None else self.nesting.to_dict(),
            "notes": list(self.notes),
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def lines(self, examples: int = 5) -> list[str]:
        """A human summary: one line per check, then up to ``examples`` problems under each."""
        verdict = "VALID" if self.valid else "INVALID"
        out = [f"layer {self.version_id} ({self.n_grids:,} grids, {self.source or 'in memory'}): {verdict}"]

        def section(title: str, items: Sequence, describe: Callable) -> None:
            out.append(f"  {title}: {len(items):,}")
            for item in items[:examples]:
                out.append(f"      {describe(item)}")
            if len(items) > examples:
                out.append(f"      … and {len(items) - examples:,} more")

        section("invalid geometries", self.invalid_geometries,
                lambda p: f"{_name(p.code, p.row)}: {p.reason}")
        section("empty geometries", self.empty_geometries, lambda p: _name(p.code, p.row))
        section("duplicate codes", self.duplicate_codes,
                lambda p: f"{p.code} on rows {', '.join(map(str, p.rows))}")
        section("missing codes", self.missing_codes, lambda p: f"row {p.row}")
        s = self.summary()
        section(f"overlapping pairs (≥ {self.sliver_m2:g} m², {s['overlap_area_m2']:,.1f} m² in total)",
                self.overlaps,
                lambda p: f"{_name(p.codes[0], p.rows[0])} / {_name(p.codes[1], p.rows[1])}: "
                          f"{p.area_m2:,.1f} m² at {_fmt(p.point)}")
        section(f"gaps (≥ {self.sliver_m2:g} m², {s['gap_area_m2']:,.1f} m² in total)", self.gaps,
                lambda p: f"{p.kind} of {p.area_m2:,.1f} m² at {_fmt(p.point)}"
                + (f" along {', '.join(str(c) for c in p.codes[:6])}" if p.codes else ""))
        if self.boundary is not None:
            out.append(
                f"  boundary: {self.boundary.coverage_pct:.4f} % of {self.boundary.area_m2 / 1e6:,.3f} km² covered"
            )
            section(f"grids reaching outside the boundary ({s['outside_area_m2']:,.1f} m² outside)",
                    self.outside_boundary,
                    lambda p: f"{_name(p.code, p.row)}: {p.area_m2:,.1f} m² outside at {_fmt(p.point)}")
        if self.nesting is not None:
            n = self.nesting
            agree = "" if n.n_code_agrees is None else f", {n.n_code_agrees:,} with the right {n.parent_code_field}"
            out.append(f"  nesting in {n.parent_version_id} ({n.n_parents:,} parents): "
                       f"{n.n_nested:,} of {self.n_grids:,} grids in exactly one parent{agree}")
            section("nesting errors", self.nesting_errors, _describe_nesting)
        sliver_area = sum(p.area_m2 for p in (*self.sliver_overlaps, *self.sliver_gaps, *self.sliver_outside))
        out.append(
            f"  slivers below {self.sliver_m2:g} m² (tolerated): {len(self.sliver_overlaps):,} overlaps, "
            f"{len(self.sliver_gaps):,} gaps, {len(self.sliver_outside):,} outside parts "
            f"({sliver_area:.3f} m² in total)"
        )
        out.append(f"  union of the grids: {self.union_area_m2 / 1e6:,.3f} km²")
        out.extend(f"  note: {note}" for note in self.notes)
        return out


# ---------------------------------------------------------------------- the validator


def validate_layer(
    layer: GridLayer,
    *,
    boundary: shapely.Geometry | None = None,
    parents: GridLayer | None = None,
    parent_code_field: str | None = None,
    sliver_m2: float = DEFAULT_SLIVER_M2,
    min_parent_share: float = DEFAULT_MIN_PARENT_SHARE,
    progress: Progress | None = None,
) -> ValidationReport:
    """Check that ``layer`` is a clean tessellation (of ``boundary``, nested in ``parents``).

    ``boundary`` is a lon/lat polygon (for example :func:`citygrid.engine.layers.sources.read_boundary`);
    ``parent_code_field`` names the column of ``layer`` holding each grid's parent code (it needs
    ``parents``). ``progress(stage, done, total)`` is called as the stages advance.
    """
    if not sliver_m2 >= 0:
        raise InvalidInput(f"sliver_m2 must be a non-negative area in m², got {sliver_m2!r}")
    if not 0.5 < min_parent_share <= 1:
        raise InvalidInput(f"min_parent_share must be in (0.5, 1], got {min_parent_share!r}")
    if parent_code_field is not None and parents is None:
        raise InvalidInput("a parent code field needs a parent layer to check it against")
    if boundary is not None and (not isinstance(boundary, shapely.Geometry) or shapely.get_dimensions(boundary) != 2):
        raise InvalidInput("the boundary must be a polygon or multipolygon")
    declared = layer.column(parent_code_field) if parent_code_field is not None else None

    run = _Run(layer, boundary, sliver_m2, progress)
    report = ValidationReport(
        version_id=layer.version_id,
        source=layer.source,
        n_grids=layer.n_grids,
        content_hash=layer.content_hash,
        sliver_m2=float(sliver_m2),
        min_parent_share=float(min_parent_share),
        projection=run.projection,
    )
    run.stage(report, "codes", run.check_codes)
    run.stage(report, "geometry", run.check_geometries)
    run.stage(report, "overlaps", run.find_overlaps)
    run.stage(report, "gaps", run.find_gaps)
    if boundary is not None:
        run.stage(report, "boundary", lambda r: run.check_boundary(r, boundary))
    if parents is not None:
        run.stage(report, "nesting",
                  lambda r: run.check_nesting(r, parents, declared, parent_code_field, min_parent_share))
    return report


class _Run:
    """The state of one validation: the repaired lon/lat grids, their index and their union."""

    def __init__(self, layer: GridLayer, boundary, sliver_m2: float, progress: Progress | None):
        self.codes = layer.codes
        self.sliver_m2 = float(sliver_m2)
        self.progress = progress or (lambda stage, done, total: None)
        self.source = layer.geometries()
        bounds = layer.bounds if len(layer.x) else (
            shapely.bounds(boundary) if boundary is not None and not boundary.is_empty else (0.0, 0.0, 0.0, 0.0)
        )
        self.projection, self.forward = _equal_area(bounds)
        self.grids: np.ndarray = self.source  # repaired by check_geometries
        self.tree: shapely.STRtree | None = None
        self.union: shapely.Geometry | None = None

    def stage(self, report: ValidationReport, name: str, step: Callable[[ValidationReport], None]) -> None:
        started = time.perf_counter()
        step(report)
        report.timings_s[name] = time.perf_counter() - started

    def area_m2(self, geoms) -> np.ndarray:
        """Areas in m²: long edges split (so they stay straight in lon/lat), then projected."""
        return shapely.area(shapely.transform(shapely.segmentize(geoms, SEGMENT_DEG), self.forward))

    # ------------------------------------------------------------ codes and geometries

    def check_codes(self, report: ValidationReport) -> None:
        rows_by_code: dict[str, list[int]] = {}
        for row, code in enumerate(self.codes):
            if code is None or not str(code).strip():
                report.missing_codes.append(GridRef(row, code))
            else:
                rows_by_code.setdefault(code, []).append(row)
        report.duplicate_codes = [
            DuplicateCode(code, tuple(rows)) for code, rows in rows_by_code.items() if len(rows) > 1
        ]
        self.progress("codes", 1, 1)

    def check_geometries(self, report: ValidationReport) -> None:
        n = len(self.source)
        self.progress("geometry", 0, n)
        empty = shapely.is_empty(self.source)
        report.empty_geometries = [GridRef(int(r), self.codes[r]) for r in np.flatnonzero(empty)]
        rows = np.flatnonzero(~shapely.is_valid(self.source) & ~empty)
        for row, reason in zip(rows, shapely.is_valid_reason(self.source[rows])):
            report.invalid_geometries.append(InvalidGeometry(int(row), self.codes[row], reason, _reason_point(reason)))
        if len(rows):
            self.grids = self.source.copy()
            self.grids[rows] = _repair(self.source[rows])
        self.tree = shapely.STRtree(self.grids)
        self.progress("geometry", n, n)

    # ------------------------------------------------------------ overlaps

    def find_overlaps(self, report: ValidationReport) -> None:
        left, right = self.tree.query(self.grids, predicate="intersects")
        keep = left < right
        left, right = left[keep], right[keep]
        shared = self.overlay_pairs(report, "overlaps", shapely.intersection, self.grids[left], self.grids[right])
        hit = np.flatnonzero(shapely.area(shared) > 0)
        shared, areas = shared[hit], self.area_m2(shared[hit])
        points = _points(shapely.point_on_surface(shared))
        for k, (i, j) in enumerate(zip(left[hit], right[hit])):
            big = areas[k] >= self.sliver_m2
            overlap = Overlap((int(i), int(j)), (self.codes[i], self.codes[j]), _area(areas[k]), points[k],
                              shared[k] if big else None)
            (report.overlaps if big else report.sliver_overlaps).append(overlap)
        report.overlaps.sort(key=lambda o: -o.area_m2)
        report.sliver_overlaps.sort(key=lambda o: -o.area_m2)

    def overlay_pairs(self, report, stage: str, op, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``op(a, b)`` over aligned arrays, in chunks (progress), redoing a chunk on the
        :data:`SNAP_GRID_DEG` grid only when GEOS fails on it."""
        total = len(a)
        out = np.empty(total, dtype=object)
        snapped = 0
        self.progress(stage, 0, total)
        for start in range(0, total, PAIRS_PER_CHUNK):
            stop = min(start + PAIRS_PER_CHUNK, total)
            try:
                out[start:stop] = op(a[start:stop], b[start:stop])
            except shapely.errors.GEOSException:
                out[start:stop] = op(a[start:stop], b[start:stop], grid_size=SNAP_GRID_DEG)
                snapped += stop - start
            self.progress(stage, stop, total)
        if snapped:
            report.notes.append(
                f"{stage}: GEOS failed on an exact overlay; {snapped} pair(s) were overlaid on a {SNAP_GRID_DEG:g}° grid"
            )
        return out

    # ------------------------------------------------------------ gaps

    def find_gaps(self, report: ValidationReport) -> None:
        self.progress("gaps", 0, 2)
        try:
            self.union = shapely.union_all(self.grids)
        except shapely.errors.GEOSException:
            self.union = shapely.union_all(self.grids, grid_size=SNAP_GRID_DEG)
            report.notes.append(f"gaps: GEOS failed on the exact union; it was taken on a {SNAP_GRID_DEG:g}° grid")
        report.union_area_m2 = float(self.area_m2(self.union))
        self.progress("gaps", 1, 2)
        parts = _polygon_parts(self.union)
        rings, owner = shapely.get_rings(parts, return_index=True)
        exterior = np.r_[True, owner[1:] != owner[:-1]] if len(owner) else np.zeros(0, bool)
        holes = shapely.polygons(rings[~exterior])
        if len(holes):
            # a hole may hold islands of grids: the gap is the hole without them
            hole_idx, part_idx = shapely.STRtree(parts).query(holes, predicate="contains")
            for h in np.unique(hole_idx):
                holes[h] = shapely.difference(holes[h], shapely.union_all(parts[part_idx[hole_idx == h]]))
        self.add_gaps(report, "hole", holes)
        self.progress("gaps", 2, 2)

    def add_gaps(self, report: ValidationReport, kind: str, gaps: np.ndarray) -> None:
        gaps = gaps[~shapely.is_empty(gaps)]
        if not len(gaps):
            return
        areas = self.area_m2(gaps)
        points = _points(shapely.point_on_surface(gaps))
        gap_idx, grid_idx = self.tree.query(gaps, predicate="dwithin", distance=NEIGHBOUR_DISTANCE_DEG)
        neighbours = np.split(grid_idx, np.searchsorted(gap_idx, np.arange(1, len(gaps))))
        for k in range(len(gaps)):
            big = areas[k] >= self.sliver_m2
            codes = tuple(self.codes[r] for r in np.sort(neighbours[k]))
            gap = Gap(kind, _area(areas[k]), points[k], codes, gaps[k] if big else None)
            (report.gaps if big else report.sliver_gaps).append(gap)
        report.gaps.sort(key=lambda g: (g.kind, -g.area_m2))
        report.sliver_gaps.sort(key=lambda g: (g.kind, -g.area_m2))

    # ------------------------------------------------------------ boundary

    def check_boundary(self, report: ValidationReport, boundary: shapely.Geometry) -> None:
        n = len(self.grids)
        area = _repair(boundary)
        area_m2 = float(self.area_m2(area))
        if area_m2 == 0:
            raise InvalidInput("the boundary has no area")
        covered_m2 = float(self.area_m2(shapely.intersection(area, self.union)))
        report.boundary = BoundaryCoverage(
            area_m2=_area(area_m2), covered_m2=_area(covered_m2), coverage_pct=round(100.0 * covered_m2 / area_m2, 6)
        )
        # what the grids leave uncovered, apart from the holes already reported
        filled = shapely.polygons(shapely.get_exterior_ring(_polygon_parts(self.union)))
        self.add_gaps(report, "uncovered", _polygon_parts(shapely.difference(area, shapely.union_all(filled))))
        shapely.prepare(area)
        rows = np.flatnonzero(~shapely.covers(area, self.grids) & ~shapely.is_empty(self.grids))
        outside = self.overlay_pairs(report, "boundary", shapely.difference, self.grids[rows],
                                     np.full(len(rows), area, dtype=object))
        hit = np.flatnonzero(shapely.area(outside) > 0)
        rows, outside = rows[hit], outside[hit]
        areas = self.area_m2(outside)
        points = _points(shapely.point_on_surface(outside))
        for k, row in enumerate(rows):
            big = areas[k] >= self.sliver_m2
            part = OutsideBoundary(int(row), self.codes[row], _area(areas[k]), points[k], outside[k] if big else None)
            (report.outside_boundary if big else report.sliver_outside).append(part)
        report.outside_boundary.sort(key=lambda o: -o.area_m2)
        report.sliver_outside.sort(key=lambda o: -o.area_m2)
        self.progress("boundary", n, n)

    # ------------------------------------------------------------ nesting

    def check_nesting(self, report, parents: GridLayer, declared, field_name, min_share: float) -> None:
        if parents.n_grids == 0:
            raise InvalidInput(f"the parent layer {parents.version_id} has no grids")
        parent_geoms = parents.geometries()
        bad = np.flatnonzero(~shapely.is_valid(parent_geoms))
        if len(bad):
            parent_geoms[bad] = _repair(parent_geoms[bad])
            report.notes.append(f"nesting: {len(bad)} invalid parent geometr{'y was' if len(bad) == 1 else 'ies were'} "
                                "repaired for the area shares")
        parent_codes = parents.codes
        grid_idx, parent_idx = shapely.STRtree(parent_geoms).query(self.grids, predicate="intersects")
        shared = shapely.area(self.overlay_pairs(
            report, "nesting", shapely.intersection, self.grids[grid_idx], parent_geoms[parent_idx]))
        # shares are ratios of lon/lat areas: within one grid the scale of lon/lat is all but constant
        grid_area = shapely.area(self.grids)
        share = np.divide(shared, grid_area[grid_idx], out=np.zeros(len(shared)), where=grid_area[grid_idx] > 0)
        # pairs by grid, largest share first: each grid's slice starts with its best parent
        order = np.lexsort((-share, grid_idx))
        grid_idx, parent_idx, share = grid_idx[order], parent_idx[order], share[order]
        n = len(self.grids)
        starts = np.searchsorted(grid_idx, np.arange(n), side="left")
        stops = np.searchsorted(grid_idx, np.arange(n), side="right")
        has_pair = stops > starts
        best = np.where(has_pair, np.append(parent_idx, -1)[starts], -1)
        best_share = np.where(has_pair, np.append(share, 0.0)[starts], 0.0)
        total_share = np.bincount(grid_idx, weights=share, minlength=n)
        nested = (grid_area > 0) & (best_share >= min_share)
        geometric = np.where(nested, parent_codes[np.maximum(best, 0)], None)
        ok = nested if declared is None else nested & (declared == geometric)
        for row in np.flatnonzero((grid_area > 0) & ~ok):
            mine = slice(starts[row], stops[row])
            shares = tuple(
                ParentShare(parent_codes[p], round(float(s), 6))
                for p, s in zip(parent_idx[mine], share[mine]) if s > 0
            )
            if nested[row]:
                kind = "code_mismatch"
            elif total_share[row] < min_share:
                kind = "outside_parents"
            else:
                kind = "straddles"
            report.nesting_errors.append(NestingError(
                row=int(row),
                code=self.codes[row],
                kind=kind,
                parents=shares,
                declared_parent=None if declared is None else declared[row],
                geometric_parent=geometric[row],
            ))
        report.nesting = NestingSummary(
            parent_version_id=parents.version_id,
            n_parents=parents.n_grids,
            parent_code_field=field_name,
            n_nested=int(nested.sum()),
            n_code_agrees=None if declared is None else int(ok.sum()),
        )


# ---------------------------------------------------------------------- helpers


def _equal_area(bounds) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """An equal-area projection centred on ``bounds``: its PROJ string and the lon/lat -> metres map."""
    lng0, lat0, lng1, lat1 = bounds
    proj = f"+proj=laea +lat_0={(lat0 + lat1) / 2:.6f} +lon_0={(lng0 + lng1) / 2:.6f} +datum=WGS84 +units=m +no_defs"
    to_metres = Transformer.from_crs("OGC:CRS84", CRS.from_proj4(proj), always_xy=True)

    def forward(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(to_metres.transform(xy[:, 0], xy[:, 1]))

    return proj, forward


def _points(points: np.ndarray) -> list[LngLat]:
    """Shapely points as rounded (lng, lat) tuples."""
    return [(round(float(x), 7), round(float(y), 7)) for x, y in shapely.get_coordinates(points)]


def _polygon_parts(geom: shapely.Geometry) -> np.ndarray:
    """The Polygons of a (multi)polygon or collection, as an array."""
    parts = shapely.get_parts(shapely.get_parts(geom))
    return parts[shapely.get_type_id(parts) == shapely.GeometryType.POLYGON]


def _repair(geoms):
    """Valid polygonal geometry covering what the rings enclose ("structure": a self-intersecting
    ring keeps both lobes, overlapping parts are merged; collapsed parts are dropped)."""
    return shapely.make_valid(geoms, method="structure", keep_collapsed=False)


def _reason_point(reason: str) -> LngLat | None:
    match = _REASON_POINT.search(reason)
    return (round(float(match[1]), 7), round(float(match[2]), 7)) if match else None


def _area(value: float) -> float:
    return float(f"{float(value):.6g}")


def _fmt(point: LngLat | None) -> str:
    return "?" if point is None else f"{point[0]:.6f}, {point[1]:.6f}"


def _describe_nesting(p: NestingError) -> str:
    shares = ", ".join(f"{s.code} {100 * s.share:.2f} %" for s in p.parents[:4]) or "no parent"
    if p.kind == "code_mismatch":
        return f"{_name(p.code, p.row)} lies in {p.geometric_parent} but says {p.declared_parent}"
    return f"{_name(p.code, p.row)} {p.kind.replace('_', ' ')}: {shares}"


def _name(code: str | None, row: int) -> str:
    return f"{code} (row {row})" if code else f"row {row} (no code)"
