"""The shapes of a layer version's areas, for maps: grids, communities, streets and the district as
WKB or GeoJSON, optionally simplified without opening gaps between neighbours.

A community (street, district) is the union of its grids, following the hierarchy columns of the
layer (:mod:`citygrid.engine.hierarchy`); since the grids cover the district with no overlap, each
level's areas are a coverage too, and the union is GEOS's coverage union (edges shared by grids of
one area dissolve exactly).

Simplification is GEOS's coverage simplification (``shapely.coverage_simplify``, GEOS >= 3.12):
each level's areas are simplified together, so an edge shared by two neighbours is simplified once
and both keep the same vertices: no gap and no overlap opens between them, whatever the tolerance.
The tolerance is in degrees (the layer is WGS84 lng/lat; 0.0001° is about 10 m in Shenzhen).
Plain ``shapely.simplify`` per polygon would simplify each side of a shared edge on its own and open
slivers; the tests compare both against GEOS's own area and overlap measures.

Coordinates in GeoJSON are rounded to :data:`GEOJSON_DECIMALS` decimals (about 0.1 m): the same
rounding of the same double gives the same number, so shared vertices stay shared.

What is computed is cached per layer object (a version is immutable) and tolerance, in
:class:`LayerShapes`; :class:`ShapeCache` keeps one per loaded version and drops it with the version.

>>> import shapely
>>> from citygrid.engine.layers.layer import GridLayer
>>> layer = GridLayer.from_geometries(
...     [shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), shapely.box(0, 1, 2, 2)],
...     {"grid_code": ["G1", "G2", "G3"], "community_code": ["C1", "C1", "C2"],
...      "community_name": ["一社区", "一社区", "二社区"]})
>>> shapes = LayerShapes(layer)
>>> areas = shapes.areas("community")
>>> areas.codes, areas.names, [round(g.area, 6) for g in areas.geometries]
(['C1', 'C2'], ['一社区', '二社区'], [2.0, 2.0])
>>> shapes.geojson("community")["features"][0]["properties"]
{'code': 'C1', 'name': '一社区', 'level': 'community'}
>>> shapes.areas("street")
Traceback (most recent call last):
...
citygrid.engine.errors.NotFound: the layer has no street codes (its street_code column is empty), so it has no streets to draw
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from typing import Mapping, Sequence

import numpy as np
import shapely

from citygrid.engine.errors import InvalidInput, NotFound
from citygrid.engine.hierarchy import LEVELS, Chains, code_column
from citygrid.engine.layers.layer import GridLayer

#: Decimals of a GeoJSON coordinate (1e-6° is about 0.1 m).
GEOJSON_DECIMALS = 6
#: The largest simplification tolerance, in degrees (about 1 km: beyond it grids collapse to points).
MAX_TOLERANCE = 0.01
#: Levels and tolerances whose areas' GeoJSON geometries one layer's shapes keep, one by one.
GEOJSON_KEPT = 4
#: Simplified coverages kept per layer version (levels x tolerances; the tolerance is a caller's
#: parameter), least recently asked dropped first.
SIMPLIFIED_KEPT = 8
#: The formats :meth:`LayerShapes.encode` writes.
FORMATS = ("wkb", "geojson")


def check_tolerance(tolerance: float) -> float:
    """``tolerance`` as a float, or :class:`InvalidInput` saying what is allowed."""
    try:
        value = float(tolerance)
    except (TypeError, ValueError):
        raise InvalidInput(f"tolerance must be a number of degrees, got {tolerance!r}") from None
    if not (0.0 <= value <= MAX_TOLERANCE):
        raise InvalidInput(
            f"tolerance must be between 0 and {MAX_TOLERANCE} degrees (0: not simplified; 0.0001 is about 10 m), "
            f"got {tolerance!r}"
        )
    return value


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise InvalidInput(f"unknown level {level!r}; levels are {', '.join(LEVELS)}")
    return level


@dataclass(frozen=True)
class Areas:
    """The areas of one level of a layer version: codes, names, shapes (a numpy array of shapely
    geometries, one per code) and, per grid row, the index of its area (-1: none)."""

    level: str
    codes: list[str]
    names: list[str | None]
    geometries: np.ndarray
    area_of_row: np.ndarray
    #: Per area, the codes of the area and its parents (the tail of its grids' chain from its level
    #: up), what jurisdiction is checked against.
    chains: list[tuple]

    def visible(self, principal) -> np.ndarray:
        """The indices of the areas inside ``principal``'s jurisdiction (anything with
        ``everywhere`` and ``covers(chain)``, :class:`citygrid.engine.access.principals.Principal`)."""
        if principal.everywhere:
            return np.arange(len(self.codes))
        return np.array([k for k, chain in enumerate(self.chains) if principal.covers(chain)], dtype=np.int64)

    def index(self, code: str) -> int:
        try:
            return self.codes.index(code)
        except ValueError:
            raise NotFound(f"no {self.level} with code {code!r} in this layer version") from None


class LayerShapes:
    """The shapes of one layer version's areas, each computed once (thread-safe)."""

    def __init__(self, layer: GridLayer):
        self.layer = layer
        self._lock = threading.Lock()
        self._areas: dict[str, Areas] = {}
        self._simplified: OrderedDict[tuple[str, float], np.ndarray] = OrderedDict()
        self._points: dict[str, np.ndarray] = {}
        self._geojson: dict[tuple[str, float], dict[int, dict]] = {}

    @cached_property
    def _grid_geometries(self) -> np.ndarray:
        return self.layer.geometries()

    def areas(self, level: str) -> Areas:
        """The areas of ``level`` (grid, community, street, district), unsimplified."""
        check_level(level)
        areas = self._areas.get(level)
        if areas is None:
            with self._lock:
                areas = self._areas.get(level)
                if areas is None:
                    areas = self._areas[level] = self._build(level)
        return areas

    def has_areas(self, level: str) -> bool:
        """Whether :meth:`areas` of ``level`` is built (answers without building or waiting)."""
        return level in self._areas

    def _build(self, level: str) -> Areas:
        layer = self.layer
        codes_column = np.asarray(layer.column(code_column(level)), dtype=object)
        names_column = np.asarray(layer.column(f"{level}_name"), dtype=object)
        k_level = LEVELS.index(level)
        chains = Chains.of_layer(layer, missing_as_none=True).chains
        if level == "grid":
            return Areas(level, codes_column.tolist(), names_column.tolist(), self._grid_geometries,
                         np.arange(layer.n_grids, dtype=np.int64), chains)
        present = np.array([c is not None for c in codes_column], dtype=bool)
        if not present.any():
            raise NotFound(f"the layer has no {level} codes (its {level}_code column is empty), "
                           f"so it has no {level}s to draw")
        codes, first, area_of_row = np.unique(codes_column[present].astype(str), return_index=True,
                                              return_inverse=True)
        rows = np.flatnonzero(present)
        full = np.full(layer.n_grids, -1, dtype=np.int64)
        full[rows] = area_of_row
        grids = self._grid_geometries
        geometries = np.empty(len(codes), dtype=object)
        for k in range(len(codes)):
            members = grids[rows[area_of_row == k]]
            geometries[k] = shapely.coverage_union_all(members)
        names = [names_column[rows[i]] for i in first]
        area_chains = [chains[rows[i]][k_level:] for i in first]
        return Areas(level, codes.tolist(), names, geometries, full, area_chains)

    def geometries(self, level: str, tolerance: float = 0.0) -> np.ndarray:
        """The shapes of ``level``'s areas (in the order of ``areas(level).codes``), simplified to
        ``tolerance`` degrees as one coverage (0: as they are)."""
        tolerance = check_tolerance(tolerance)
        areas = self.areas(level)
        if tolerance == 0.0:
            return areas.geometries
        key = (level, tolerance)
        with self._lock:
            shapes = self._simplified.get(key)
            if shapes is not None:
                self._simplified.move_to_end(key)
                return shapes
        shapes = simplify_coverage(areas.geometries, tolerance)
        with self._lock:
            self._simplified[key] = shapes
            while len(self._simplified) > SIMPLIFIED_KEPT:
                self._simplified.popitem(last=False)
        return shapes

    def encode(self, level: str, *, fmt: str = "wkb", tolerance: float = 0.0,
               indices: np.ndarray | None = None) -> list[bytes] | list[dict]:
        """The shapes of ``level``'s areas (those at ``indices``, default all) as WKB bytes or GeoJSON
        geometry objects."""
        if fmt not in FORMATS:
            raise InvalidInput(f"unknown geometry format {fmt!r}; formats are {', '.join(FORMATS)}")
        shapes = self.geometries(level, tolerance)
        if indices is not None:
            shapes = shapes[np.asarray(indices, dtype=np.int64)]
        if fmt == "wkb":
            return list(shapely.to_wkb(shapes))
        return [json.loads(text) for text in shapely.to_geojson(rounded(shapes))]

    def geojson_geometry(self, level: str, index: int, tolerance: float = 0.0) -> dict:
        """One area's GeoJSON geometry, made once per level, tolerance and area (GEOS's GeoJSON
        writer took 0.2-0.8 ms a grid, on every GetGrid over HTTP); the caller must
        not change it. The areas of at most :data:`GEOJSON_KEPT` levels and tolerances are kept."""
        key = (level, check_tolerance(tolerance))
        kept = self._geojson.get(key)
        if kept is None:
            with self._lock:
                kept = self._geojson.setdefault(key, {})
                while len(self._geojson) > GEOJSON_KEPT:
                    self._geojson.pop(next(iter(self._geojson)))
        geometry = kept.get(index)
        if geometry is None:
            geometry = kept[index] = self.encode(level, fmt="geojson", tolerance=tolerance, indices=[index])[0]
        return geometry

    def has_geojson_geometry(self, level: str, index: int, tolerance: float = 0.0) -> bool:
        """Whether :meth:`geojson_geometry` of this area is made (answers without making it)."""
        kept = self._geojson.get((level, check_tolerance(tolerance)))
        return kept is not None and index in kept

    def geojson(self, level: str, *, tolerance: float = 0.0, indices: np.ndarray | None = None,
                extra: Mapping[str, Sequence] | None = None) -> dict:
        """A GeoJSON FeatureCollection of ``level``'s areas (those at ``indices``, default all), each
        with ``code``, ``name`` and ``level`` properties (and ``extra``'s: a value per area), and
        its index as the feature id."""
        areas = self.areas(level)
        if indices is None:
            indices = np.arange(len(areas.codes))
        indices = np.asarray(indices, dtype=np.int64)
        geometries = self.encode(level, fmt="geojson", tolerance=tolerance, indices=indices)
        return self._collection(areas, indices, geometries, extra)

    def properties(self, level: str, *, indices: np.ndarray | None = None,
                   extra: Mapping[str, Sequence] | None = None) -> dict:
        """:meth:`geojson` without the shapes: every feature's geometry is null (GeoJSON allows it),
        for a map that draws the shapes from tiles and needs the properties only."""
        areas = self.areas(level)
        indices = np.arange(len(areas.codes)) if indices is None else np.asarray(indices, dtype=np.int64)
        return self._collection(areas, indices, [None] * len(indices), extra)

    @staticmethod
    def _collection(areas: Areas, indices: np.ndarray, geometries: Sequence, extra) -> dict:
        level = areas.level
        extra = {name: list(values) for name, values in (extra or {}).items()}
        features = [
            {"type": "Feature", "id": int(i),
             "properties": {"code": areas.codes[i], "name": areas.names[i], "level": level,
                            **{name: values[i] for name, values in extra.items()}},
             "geometry": geometry}
            for i, geometry in zip(indices.tolist(), geometries)
        ]
        return {"type": "FeatureCollection", "features": features}

    def points(self, level: str) -> np.ndarray:
        """A point inside each area of ``level`` (GEOS's point on surface; where a label or a marker
        goes), as an ``(n, 2)`` array of lng, lat."""
        points = self._points.get(level)
        if points is None:
            points = shapely.get_coordinates(shapely.point_on_surface(self.areas(level).geometries))
            with self._lock:
                self._points[level] = points
        return points


def simplify_coverage(geometries: np.ndarray, tolerance: float, *, keep_outline: bool = False) -> np.ndarray:
    """``geometries`` (a coverage: no overlaps) simplified together, edges shared by neighbours
    simplified once (GEOS coverage simplification, Visvalingam-Whyatt with ``tolerance`` as the
    square root of the triangle area, in the geometries' units). With ``keep_outline`` the coverage's
    outer boundary is left as it is (only the edges between neighbours are simplified)."""
    if not hasattr(shapely, "coverage_simplify"):  # pragma: no cover - shapely < 2.1 or GEOS < 3.12
        raise RuntimeError("simplifying grids without gaps needs shapely >= 2.1 built with GEOS >= 3.12")
    return shapely.coverage_simplify(np.asarray(geometries, dtype=object), tolerance,
                                     simplify_boundary=not keep_outline)


def rounded(geometries: np.ndarray, decimals: int = GEOJSON_DECIMALS) -> np.ndarray:
    """``geometries`` with every coordinate rounded to ``decimals`` (shared vertices stay shared)."""
    return shapely.transform(geometries, lambda coords: np.round(coords, decimals))


class ShapeCache:
    """One :class:`LayerShapes` per layer object, dropped when the layer is."""

    def __init__(self):
        self._lock = threading.Lock()
        self._shapes: weakref.WeakKeyDictionary[GridLayer, LayerShapes] = weakref.WeakKeyDictionary()

    def __call__(self, layer: GridLayer) -> LayerShapes:
        shapes = self._shapes.get(layer)
        if shapes is None:
            with self._lock:
                shapes = self._shapes.get(layer)
                if shapes is None:
                    shapes = self._shapes[layer] = LayerShapes(layer)
        return shapes
