"""Grid layers: an immutable set of grids held as flat Arrow-style buffers.

A layer version is what every other part of CityGrid reads: the validator checks it, the index is
built from it, the server assigns points against it. Its polygons live in GeoArrow-style separated
buffers (``x``, ``y`` and three offset arrays) that Numba kernels take as they are, and its attributes
in an Arrow table. Geometry is always WGS84 longitude / latitude.

Buffers, for ``n`` grids (every grid is a MultiPolygon of one or more parts):

- ``x``, ``y`` (float64): every ring's vertices, rings closed (last vertex repeats the first);
- ``ring_offsets`` (int64, ``n_rings + 1``): ring ``r`` is ``x[ring_offsets[r]:ring_offsets[r+1]]``;
- ``part_offsets`` (int64, ``n_parts + 1``): part ``p`` has rings ``part_offsets[p]:part_offsets[p+1]``,
  the first one the shell, the others holes;
- ``grid_offsets`` (int64, ``n + 1``): grid ``g`` has parts ``grid_offsets[g]:grid_offsets[g+1]``
  (none for an empty geometry).

>>> import shapely
>>> layer = GridLayer.from_geometries(
...     [shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)], {"grid_code": ["A", "B"]})
>>> layer.n_grids, layer.row_of("B"), layer.ring_offsets.tolist()
(2, 1, [0, 5, 10])
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import shapely

from citygrid.engine.errors import InvalidInput, NotFound

#: The attribute columns every layer has, in this order (values may be null except ``grid_code``).
GRID_COLUMNS = (
    "grid_code",
    "grid_name",
    "grid_type",
    "community_code",
    "community_name",
    "street_code",
    "street_name",
    "district_code",
    "district_name",
)

#: The names of the geometry buffers, in the order they are hashed and saved.
BUFFER_NAMES = ("x", "y", "ring_offsets", "part_offsets", "grid_offsets")


@dataclass(frozen=True)
class FieldMap:
    """Which source column holds each grid attribute.

    Defaults are the column names of the demo district's ``grids.parquet``. A field set to ``None``
    (or absent from the source, for every field but the code) becomes a null column.
    """

    grid_code: str = "grid_code"
    grid_name: str | None = "grid_name"
    grid_type: str | None = "grid_type"
    community_code: str | None = "community_code"
    community_name: str | None = "community_name"
    street_code: str | None = "street_code"
    street_name: str | None = "street_name"
    district_code: str | None = "district_code"
    district_name: str | None = "district_name"

    def source_of(self, column: str) -> str | None:
        return getattr(self, column)


@dataclass(frozen=True, eq=False)
class GridLayer:
    """One immutable layer version. Build it with :meth:`from_geometries` or read it from a file
    (:func:`citygrid.engine.layers.sources.read_layer`) or a saved version (:mod:`citygrid.engine.layers.snapshots`)."""

    x: np.ndarray
    y: np.ndarray
    ring_offsets: np.ndarray
    part_offsets: np.ndarray
    grid_offsets: np.ndarray
    attributes: pa.Table
    version_id: str = ""
    source: str = ""
    content_hash: str = ""
    extra: Mapping[str, object] = field(default_factory=dict)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_geometries(
        cls,
        geometries: Sequence | np.ndarray,
        attributes: pa.Table | Mapping[str, Iterable] | None = None,
        *,
        version_id: str | None = None,
        source: str = "",
    ) -> "GridLayer":
        """Build a layer from shapely Polygons / MultiPolygons (``None`` or empty: an empty grid).

        ``attributes`` holds at least ``grid_code``; the other :data:`GRID_COLUMNS` become null
        columns when missing, and further columns are kept after them. Codes are strings.
        """
        geoms = np.asarray(geometries, dtype=object)
        if geoms.ndim != 1:
            raise InvalidInput("geometries must be a flat sequence")
        geoms = _as_multipolygons(geoms)
        table = _normalise_attributes(attributes, len(geoms))
        if len(geoms):
            _, coords, (ring_offsets, part_offsets, grid_offsets) = shapely.to_ragged_array(
                geoms, include_z=False
            )
        else:
            coords = np.empty((0, 2))
            ring_offsets = part_offsets = grid_offsets = np.zeros(1, dtype=np.int64)
        buffers = dict(
            x=np.ascontiguousarray(coords[:, 0], dtype=np.float64),
            y=np.ascontiguousarray(coords[:, 1], dtype=np.float64),
            ring_offsets=np.asarray(ring_offsets, dtype=np.int64),
            part_offsets=np.asarray(part_offsets, dtype=np.int64),
            grid_offsets=np.asarray(grid_offsets, dtype=np.int64),
        )
        digest = content_hash(buffers, table)
        return cls(
            **buffers,
            attributes=table,
            version_id=version_id or default_version_id(digest),
            source=source,
            content_hash=digest,
        )

    # ------------------------------------------------------------------ reading

    @property
    def n_grids(self) -> int:
        return len(self.grid_offsets) - 1

    def __len__(self) -> int:
        return self.n_grids

    def __repr__(self) -> str:
        return (
            f"GridLayer(version_id={self.version_id!r}, n_grids={self.n_grids}, "
            f"n_vertices={len(self.x)}, source={self.source!r})"
        )

    def buffers(self) -> dict[str, np.ndarray]:
        """The geometry buffers by name (see the module docstring), zero-copy."""
        return {name: getattr(self, name) for name in BUFFER_NAMES}

    def column(self, name: str) -> np.ndarray:
        """An attribute column as a numpy object array (strings and ``None``)."""
        if name not in self.attributes.column_names:
            raise NotFound(
                f"layer {self.version_id} has no column {name!r}; it has {self.attributes.column_names}"
            )
        return np.asarray(self.attributes.column(name).to_pylist(), dtype=object)

    @cached_property
    def codes(self) -> np.ndarray:
        """Grid codes by row (object array of str)."""
        return self.column("grid_code")

    @cached_property
    def _row_by_code(self) -> dict[str, int]:
        return {code: row for row, code in enumerate(self.codes) if code is not None}

    def row_of(self, code: str) -> int:
        """The row of the grid with this code; :class:`NotFound` if there is none."""
        try:
            return self._row_by_code[code]
        except KeyError:
            raise NotFound(f"no grid with code {code!r} in layer {self.version_id}") from None

    def record(self, row: int) -> dict[str, object]:
        """The attributes of one grid as a dict (the :data:`GRID_COLUMNS` and any extra columns)."""
        if not 0 <= row < self.n_grids:
            raise NotFound(f"layer {self.version_id} has no grid row {row} (it has {self.n_grids})")
        return {name: values[row] for name, values in self._column_lists.items()}

    @cached_property
    def _column_lists(self) -> dict[str, list]:
        """Every attribute column as a Python list, made once: a grid's record from Arrow scalars
        took 0.15-0.8 ms (a scalar per column; more on a loaded machine), on every point look-up and GetGrid."""
        return {name: self.attributes.column(name).to_pylist() for name in self.attributes.column_names}

    def geometries(self) -> np.ndarray:
        """The grids as shapely MultiPolygons (a new array each call; empty grids are empty)."""
        if self.n_grids == 0:
            return np.empty(0, dtype=object)
        coords = np.column_stack([self.x, self.y])
        return shapely.from_ragged_array(
            shapely.GeometryType.MULTIPOLYGON,
            coords,
            (self.ring_offsets, self.part_offsets, self.grid_offsets),
        )

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(min lng, min lat, max lng, max lat) of every vertex."""
        if len(self.x) == 0:
            return (np.nan, np.nan, np.nan, np.nan)
        return (float(self.x.min()), float(self.y.min()), float(self.x.max()), float(self.y.max()))


def content_hash(buffers: Mapping[str, np.ndarray], attributes: pa.Table) -> str:
    """SHA-256 over the geometry buffers (little-endian) and the attribute values, in a fixed order.

    It names the content, not the encoding, so the same grids hash the same whichever file they came
    from and however Arrow lays them out.
    """
    h = hashlib.sha256()
    for name in BUFFER_NAMES:
        arr = np.ascontiguousarray(buffers[name])
        h.update(name.encode())
        h.update(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
    for name in attributes.column_names:
        h.update(name.encode())
        h.update(
            json.dumps(attributes.column(name).to_pylist(), ensure_ascii=False, default=str).encode()
        )
    return h.hexdigest()


def default_version_id(digest: str) -> str:
    """The version id given to a layer that was not named: ``v`` + 12 hex digits of its hash."""
    return "v" + digest[:12]


def _as_multipolygons(geoms: np.ndarray) -> np.ndarray:
    """Polygons become one-part MultiPolygons, ``None`` an empty one; other types are refused."""
    out = np.empty(len(geoms), dtype=object)
    empty = shapely.from_wkt("MULTIPOLYGON EMPTY")
    for i, geom in enumerate(geoms):
        if geom is None or geom.is_empty:
            out[i] = empty
        elif geom.geom_type == "Polygon":
            out[i] = shapely.MultiPolygon([geom])
        elif geom.geom_type == "MultiPolygon":
            out[i] = geom
        elif geom.geom_type == "GeometryCollection":
            polys = [g for g in shapely.get_parts(shapely.get_parts(geom)) if g.geom_type == "Polygon"]
            if not polys:
                raise InvalidInput(f"feature {i}: a grid must be polygonal, got {geom.geom_type} without polygons")
            out[i] = shapely.MultiPolygon(polys)
        else:
            raise InvalidInput(f"feature {i}: a grid must be a Polygon or MultiPolygon, got {geom.geom_type}")
    if shapely.has_z(out).any():
        out = shapely.force_2d(out)
    return out


def _normalise_attributes(attributes, n: int) -> pa.Table:
    if attributes is None:
        raise InvalidInput("a layer needs grid codes: pass attributes with a 'grid_code' column")
    table = attributes if isinstance(attributes, pa.Table) else pa.table(dict(attributes))
    if table.num_rows != n:
        raise InvalidInput(f"{table.num_rows} attribute rows for {n} geometries")
    if "grid_code" not in table.column_names:
        raise InvalidInput(f"attributes have no 'grid_code' column (columns: {table.column_names})")
    columns, names = [], []
    for name in GRID_COLUMNS:
        if name in table.column_names:
            col = table.column(name)
            if name.endswith("_code") and not pa.types.is_string(col.type):
                col = pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())
            elif not pa.types.is_string(col.type):
                col = col.cast(pa.string())
        else:
            col = pa.nulls(n, pa.string())
        columns.append(pa.chunked_array([col]) if isinstance(col, pa.Array) else col)
        names.append(name)
    for name in table.column_names:
        if name not in GRID_COLUMNS:
            columns.append(table.column(name))
            names.append(name)
    return pa.Table.from_arrays([c.combine_chunks() for c in columns], names=names)
