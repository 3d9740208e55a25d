"""The problems a coverage validation (:mod:`citygrid.engine.layers.validation`) records: one
small frozen record per kind, each turning into the JSON of the report."""

from __future__ import annotations

import numpy as np

from dataclasses import dataclass, field, fields

import shapely


LngLat = tuple[float, float]


# ---------------------------------------------------------------------- problem records


def _no_json():
    return field(default=None, repr=False, compare=False, metadata={"json": False})


@dataclass(frozen=True)
class _Record:
    def to_dict(self) -> dict:
        out = {}
        for f in fields(self):
            if f.metadata.get("json", True):
                out[f.name] = _jsonable(getattr(self, f.name))
        return out


@dataclass(frozen=True)
class GridRef(_Record):
    """One grid by row and code (for empty geometries and missing codes)."""

    row: int
    code: str | None


@dataclass(frozen=True)
class InvalidGeometry(_Record):
    """A geometry GEOS calls invalid; ``point`` is where, when GEOS says."""

    row: int
    code: str | None
    reason: str
    point: LngLat | None


@dataclass(frozen=True)
class DuplicateCode(_Record):
    code: str
    rows: tuple[int, ...]


@dataclass(frozen=True)
class Overlap(_Record):
    """Two grids sharing area; ``geometry`` (lon/lat, not in the JSON) is the shared part."""

    rows: tuple[int, int]
    codes: tuple[str | None, str | None]
    area_m2: float
    point: LngLat
    geometry: shapely.Geometry | None = _no_json()


@dataclass(frozen=True)
class Gap(_Record):
    """Area no grid covers: a ``hole`` in the union of the grids, or an ``uncovered`` part of the
    boundary; ``codes`` are the grids along it."""

    kind: str
    area_m2: float
    point: LngLat
    codes: tuple[str | None, ...]
    geometry: shapely.Geometry | None = _no_json()


@dataclass(frozen=True)
class OutsideBoundary(_Record):
    """The part of one grid that lies outside the boundary."""

    row: int
    code: str | None
    area_m2: float
    point: LngLat
    geometry: shapely.Geometry | None = _no_json()


@dataclass(frozen=True)
class ParentShare(_Record):
    code: str | None
    share: float


@dataclass(frozen=True)
class NestingError(_Record):
    """A grid that does not nest: ``outside_parents`` (the parents together hold less than the
    required share of it), ``straddles`` (no single parent holds it) or ``code_mismatch`` (it nests
    geometrically, but its parent-code column names another parent or none)."""

    row: int
    code: str | None
    kind: str
    parents: tuple[ParentShare, ...]
    declared_parent: str | None
    geometric_parent: str | None


@dataclass(frozen=True)
class BoundaryCoverage(_Record):
    area_m2: float
    covered_m2: float
    coverage_pct: float


@dataclass(frozen=True)
class NestingSummary(_Record):
    parent_version_id: str
    n_parents: int
    parent_code_field: str | None
    n_nested: int
    n_code_agrees: int | None


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, np.generic):
        return value.item()
    return value
