"""Point-in-grid assignment: which grid of a layer version holds each point.

The rule (closed semantics, one grid per point), the same in every code path:

- a point covered by exactly one grid (its interior or its boundary, the district's outer edge
  included) gets that grid: status ``INSIDE``;
- a point covered by two or more grids (a shared edge or vertex, or a sliver overlap) gets the
  **lowest grid row** among them: status ``SHARED_BOUNDARY``;
- a point covered by none gets ``-1``: status ``OUTSIDE``; or, when ``fallback_m > 0``, the grid whose
  boundary is nearest within that many metres (属地兜底): status ``FALLBACK``;
- a NaN, infinite or out-of-range longitude / latitude gets ``-1``: status ``INVALID``; counted,
  never an error.

"Covered" is decided exactly on the input doubles (see :mod:`citygrid.kernels.locate`), so the answer
agrees with GEOS ``covers``: the grid when shapely says exactly one grid covers the point, one of them
(the lowest row) when it says several, ``-1`` when it says none.

>>> import shapely
>>> from citygrid.engine.layers.layer import GridLayer
>>> layer = GridLayer.from_geometries([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)], {"grid_code": ["A", "B"]})
>>> result = Assigner(layer).assign([0.5, 1.0, 1.5, 3.0, float("nan")], [0.5, 0.5, 0.5, 0.5, 0.5])
>>> result.grid_rows.tolist(), [Status(s).name for s in result.status]
([0, 0, 1, -1, -1], ['INSIDE', 'SHARED_BOUNDARY', 'INSIDE', 'OUTSIDE', 'INVALID'])
>>> result.counts()["shared_boundary"]
1
"""

from __future__ import annotations

import enum
import math
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator

import numpy as np

from citygrid.engine.layers import coordinates
from citygrid.engine.errors import DeadlineExceeded, InvalidInput, NotFound
from citygrid.engine.layers.index import MANIFEST, GridIndex, build_index, index_dir, load_index, save_index
from citygrid.engine.layers.layer import GridLayer
from citygrid.kernels import locate as kernels
from citygrid.engine.hierarchy import PARENTS

#: Largest fallback distance accepted (metres): beyond a few kilometres "nearest grid" means nothing.
MAX_FALLBACK_M = 10_000.0
#: Batches smaller than this run on the calling thread alone (no thread-pool launch).
SERIAL_BELOW = 8192


class Status(enum.IntEnum):
    """Per-point outcome (stored as uint8)."""

    INSIDE = kernels.INSIDE
    SHARED_BOUNDARY = kernels.SHARED_BOUNDARY
    FALLBACK = kernels.FALLBACK
    OUTSIDE = kernels.OUTSIDE
    INVALID = kernels.INVALID


@dataclass
class Assignment:
    """The grid row (int32, ``-1`` for none) and :class:`Status` (uint8) of every point, in order."""

    grid_rows: np.ndarray
    status: np.ndarray

    def __len__(self) -> int:
        return len(self.grid_rows)

    def counts(self) -> dict[str, int]:
        """How many points got each status, by lower-case status name (every status present)."""
        tally = np.bincount(self.status, minlength=len(Status))
        return {s.name.lower(): int(tally[s]) for s in Status}


class Assigner:
    """Assigns points to the grids of one layer version.

    Built once per layer version (it holds the layer and its index); thread-safe and cheap to share:
    :meth:`assign` keeps no state, and the kernels run without the GIL.
    """

    def __init__(self, layer: GridLayer, index: GridIndex | None = None):
        if index is None:
            index = build_index(layer)
        elif index.content_hash != layer.content_hash:
            raise InvalidInput(
                f"the index was built for other content than layer {layer.version_id}; build it for this layer"
            )
        self.layer = layer
        self.index = index
        self._locate_args = index.locate_args()

    @classmethod
    def for_layer(cls, layer: GridLayer) -> "Assigner":
        """The assigner of ``layer``: its saved index memory-mapped when the layer is a saved version
        that has one, else a new index (saved into the version directory when it is writable)."""
        path = layer.extra.get("path") if layer.extra else None
        if path is None:
            return cls(layer)
        if (index_dir(path) / MANIFEST).is_file():
            return cls(layer, load_index(path, layer))
        index = build_index(layer)
        try:
            save_index(index, path)
        except OSError:
            pass  # a read-only version directory: use the index from memory
        return cls(layer, index)

    def __repr__(self) -> str:
        return f"Assigner(layer={self.layer.version_id!r}, n_grids={self.layer.n_grids})"

    # ------------------------------------------------------------------ points

    def assign(
        self,
        lng,
        lat,
        *,
        crs: str = "wgs84",
        fallback_m: float = 0.0,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
        chunk_size: int = 1 << 20,
    ) -> Assignment:
        """Assign every point (``lng``, ``lat`` arrays in ``crs``) to one grid; see the module docstring.

        Work goes in chunks of ``chunk_size`` points. ``deadline`` (an absolute ``time.monotonic()``
        value) and ``cancel`` are checked before each chunk; when the deadline has passed or ``cancel``
        is set, :class:`DeadlineExceeded` is raised and nothing is returned.
        """
        n, chunks = wgs84_chunks(lng, lat, crs, chunk_size, deadline, cancel)
        fallback_m = _check_fallback(fallback_m)
        rows = np.empty(n, dtype=np.int32)
        status = np.empty(n, dtype=np.uint8)
        for start, stop, x, y in chunks:
            self._locate(x, y, rows[start:stop], status[start:stop], fallback_m)
        return Assignment(rows, status)

    def assign_one(self, lng: float, lat: float, *, crs: str = "wgs84", fallback_m: float = 0.0) -> tuple[int, int]:
        """One point: ``(grid row, status)``, what :meth:`assign` gives for a batch of that one point
        (the same checks and kernels), without a batch's set-up: a quarter of its time for one point
        (the unary gRPC path)."""
        wgs84 = coordinates.is_wgs84(crs)
        fallback_m = _check_fallback(fallback_m)
        try:
            x = np.array((lng,), dtype=np.float64)
            y = np.array((lat,), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"lng and lat must be numbers (use NaN for a missing value): {exc}") from None
        if not wgs84:
            x, y = coordinates.to_wgs84(x, y, crs)
        rows = np.empty(1, dtype=np.int32)
        status = np.empty(1, dtype=np.uint8)
        self._locate(_frozen(x), _frozen(y), rows, status, fallback_m)
        return int(rows[0]), int(status[0])

    def _locate(self, x, y, rows, status, fallback_m: float) -> None:
        if len(x) < SERIAL_BELOW:
            kernels.locate_points_serial(x, y, *self._locate_args, rows, status)
        else:
            kernels.locate_points(x, y, *self._locate_args, rows, status)
        if fallback_m > 0 and (status == Status.OUTSIDE).any():
            kernels.assign_fallback(x, y, fallback_m, *self._locate_args, rows, status)

    # ------------------------------------------------------------------ grids

    def grid_chain(self, row: int) -> dict:
        """A grid and its parents: ``{"row", "code", "name", "type", "community": {"code", "name"},
        "street": {...}, "district": {...}}`` (values may be ``None``)."""
        row = self._check_row(row)
        columns = self._columns
        chain = {
            "row": row,
            "code": columns["grid_code"][row],
            "name": columns["grid_name"][row],
            "type": columns["grid_type"][row],
        }
        for key, code_column, name_column in PARENTS:
            chain[key] = {"code": columns[code_column][row], "name": columns[name_column][row]}
        return chain

    def codes_of(self, grid_rows) -> np.ndarray:
        """Grid codes of ``grid_rows`` (object array; ``None`` where the row is -1)."""
        return self.column_of("grid_code", grid_rows)

    def column_of(self, column: str, grid_rows) -> np.ndarray:
        """An attribute column's values for ``grid_rows`` (object array; ``None`` where the row is -1)."""
        values = self._columns.get(column)
        if values is None:
            values = self.layer.column(column)
        grid_rows = np.asarray(grid_rows, dtype=np.int64)
        out = np.full(len(grid_rows), None, dtype=object)
        found = grid_rows >= 0
        out[found] = values[grid_rows[found]]
        return out

    @cached_property
    def _columns(self) -> dict[str, np.ndarray]:
        names = ["grid_code", "grid_name", "grid_type"] + [c for _, code, name in PARENTS for c in (code, name)]
        return {name: self.layer.column(name) for name in names}

    # ------------------------------------------------------------------ H3 cover

    @property
    def h3_resolution(self) -> int:
        return self.index.h3_resolution

    def cells_of_grid(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """The H3 cells (uint64, ascending) that overlap grid ``row``, and whether each lies wholly
        inside it (bool)."""
        row = self._check_row(row)
        lo, hi = self.index.cover_offsets[row], self.index.cover_offsets[row + 1]
        return self.index.cover_cells[lo:hi], self.index.cover_interior[lo:hi]

    def grids_of_cell(self, cell_id: int) -> np.ndarray:
        """Rows (int32, ascending) of the grids an H3 cell of the cover's resolution overlaps; empty for
        any other cell."""
        cells = self.index.cell_ids
        cell = np.uint64(int(cell_id) & 0xFFFFFFFFFFFFFFFF)
        k = int(np.searchsorted(cells, cell))
        if k == len(cells) or cells[k] != cell:
            return np.empty(0, dtype=np.int32)
        return self.index.cell_rows[self.index.cell_offsets[k]:self.index.cell_offsets[k + 1]]

    def _check_row(self, row) -> int:
        row = int(row)
        if not 0 <= row < self.layer.n_grids:
            raise NotFound(f"layer {self.layer.version_id} has no grid row {row} (it has {self.layer.n_grids})")
        return row


def assign_points(layer: GridLayer, lng, lat, **kwargs) -> Assignment:
    """``Assigner.for_layer(layer).assign(lng, lat, **kwargs)``, for one-off use."""
    return Assigner.for_layer(layer).assign(lng, lat, **kwargs)


def reference_assignment(layer: GridLayer, lng, lat) -> Assignment:
    """The same rule (without fallback) computed with GEOS: ``shapely.covers`` through an STRtree.

    Slow (about a microsecond or more per point); for cross-checks: the tests' oracle, the benchmarks'
    peer, spot checks of a new layer version.
    """
    import shapely

    lng, lat = _coordinates(lng, lat)
    valid = coordinates.lnglat_valid(lng, lat)
    rows = np.full(len(lng), -1, dtype=np.int32)
    status = np.where(valid, Status.OUTSIDE, Status.INVALID).astype(np.uint8)
    at = np.flatnonzero(valid)
    points, grids = shapely.STRtree(layer.geometries()).query(
        shapely.points(lng[at], lat[at]), predicate="covered_by")
    if len(points):
        order = np.lexsort((grids, points))
        points, grids = points[order], grids[order]
        first = np.r_[True, points[1:] != points[:-1]]
        coverers = np.bincount(points, minlength=len(at))
        rows[at[points[first]]] = grids[first]
        status[at[points[first]]] = np.where(coverers[points[first]] > 1, Status.SHARED_BOUNDARY, Status.INSIDE)
    return Assignment(rows, status)


def _coordinates(lng, lat) -> tuple[np.ndarray, np.ndarray]:
    """``lng``, ``lat`` as one-dimensional float64 arrays of equal length, or :class:`InvalidInput`."""
    try:
        lng = np.atleast_1d(np.asarray(lng, dtype=np.float64))
        lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"lng and lat must be numbers (use NaN for a missing value): {exc}") from None
    if lng.ndim != 1 or lat.ndim != 1 or lng.shape != lat.shape:
        raise InvalidInput(
            f"lng and lat must be one-dimensional and of equal length (got shapes {lng.shape} and {lat.shape})"
        )
    return lng, lat


def _check_fallback(fallback_m) -> float:
    try:
        value = float(fallback_m)
    except (TypeError, ValueError):
        raise InvalidInput(f"fallback_m must be a number of metres, got {fallback_m!r}") from None
    if not (math.isfinite(value) and 0.0 <= value <= MAX_FALLBACK_M):
        raise InvalidInput(f"fallback_m must be between 0 and {MAX_FALLBACK_M:g} metres, got {fallback_m!r}")
    return value


def wgs84_chunks(lng, lat, crs: str, chunk_size: int, deadline: float | None = None,
                 cancel: threading.Event | None = None) -> tuple[int, Iterator[tuple[int, int, np.ndarray, np.ndarray]]]:
    """Points checked at once (:class:`InvalidInput`), then handed out in chunks for a kernel.

    Returns the point count and an iterator of ``(start, stop, x, y)``: ``x``, ``y`` the chunk's
    points as read-only contiguous WGS84 float64 arrays (converted from ``crs``). ``deadline`` and
    ``cancel`` are checked before each chunk (:class:`DeadlineExceeded`)."""
    lng, lat = _coordinates(lng, lat)
    wgs84 = coordinates.is_wgs84(crs)
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise InvalidInput(f"chunk_size must be at least 1, got {chunk_size}")
    n = len(lng)

    def chunks() -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        for start in range(0, n, chunk_size):
            _check_deadline(deadline, cancel, start, n)
            stop = min(n, start + chunk_size)
            x = np.ascontiguousarray(lng[start:stop])
            y = np.ascontiguousarray(lat[start:stop])
            if not wgs84:
                x, y = coordinates.to_wgs84(x, y, crs)
            yield start, stop, _frozen(x), _frozen(y)

    return n, chunks()


def _check_deadline(deadline: float | None, cancel: threading.Event | None, done: int, total: int) -> None:
    if cancel is not None and cancel.is_set():
        raise DeadlineExceeded(f"cancelled after {done:,} of {total:,} points")
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExceeded(f"the deadline passed after {done:,} of {total:,} points; retry with more time")


def _frozen(array: np.ndarray) -> np.ndarray:
    """A read-only view (the kernels are compiled for read-only inputs once, whatever the caller has)."""
    view = array.view()
    view.flags.writeable = False
    return view
