"""Nearest building to points (by point lookups, check-ins): an index built once over the buildings'
positions, queried by a Numba kernel (:mod:`citygrid.kernels.nearest`).

Distances are great-circle metres on the mean Earth sphere; a point gets the nearest building within
``radius_m`` (closed), the lowest row among buildings at the same distance, or ``-1`` (distance
``-1.0``) when none is that close; a point that is not a valid longitude / latitude gets ``-1`` and
distance NaN. Points from phones in GCJ-02 or BD-09 are converted to WGS84 first, as point
assignment does (:mod:`citygrid.engine.layers.coordinates`).

The cell grid is sized for about :data:`BUILDINGS_PER_CELL` buildings a cell on average over the
buildings' bounding box (square cells in metres at its middle latitude), so dense quarters hold a few
more and the hills none; a query reads its own cell and one or two rings around it.

>>> index = BuildingIndex([114.0, 114.001, 114.01], [22.6, 22.6, 22.6])
>>> found = index.nearest([114.0004, 114.2, float("nan")], [22.6, 22.6, 22.6], radius_m=100)
>>> found.rows.tolist(), [round(d, 1) for d in found.distance_m.tolist()]
([0, -1, -1], [41.1, -1.0, nan])
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from citygrid.engine.layers.assignment import SERIAL_BELOW, _coordinates, _frozen, wgs84_chunks
from citygrid.engine.errors import InvalidInput
from citygrid.engine.layers.coordinates import lnglat_valid
from citygrid.kernels import nearest as kernels

#: Mean buildings per cell over the bounding box.
BUILDINGS_PER_CELL = 1.0
#: Largest search radius accepted (metres): beyond it "nearest building" means nothing and costs much.
MAX_RADIUS_M = 10_000.0
#: Metres per degree of latitude on the sphere of the kernel.
METRES_PER_DEGREE = kernels.EARTH_RADIUS_M * math.pi / 180.0


@dataclass(frozen=True)
class Nearest:
    """Per point: the nearest building's row (int64, -1: none) and its distance in metres (float64;
    -1.0 when none is within the radius, NaN for an invalid point)."""

    rows: np.ndarray
    distance_m: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


class BuildingIndex:
    """Buildings' positions (WGS84 ``lng``, ``lat``, one row each) indexed for nearest-building queries.

    Built once; thread-safe (queries keep no state and the kernel runs without the GIL).
    """

    def __init__(self, lng, lat, *, buildings_per_cell: float = BUILDINGS_PER_CELL):
        lng, lat = _coordinates(lng, lat)
        if len(lng) == 0:
            raise InvalidInput("a building index needs at least one building")
        bad = np.flatnonzero(~lnglat_valid(lng, lat))
        if bad.size:
            raise InvalidInput(f"building row {bad[0]} has no valid position ({lng[bad[0]]}, {lat[bad[0]]}); "
                               f"{bad.size} rows are invalid")
        if not (math.isfinite(buildings_per_cell) and buildings_per_cell > 0):
            raise InvalidInput(f"buildings_per_cell must be a positive number, not {buildings_per_cell!r}")
        self.n_buildings = len(lng)
        x0, y0, x1, y1 = lng.min(), lat.min(), lng.max(), lat.max()
        mid = math.cos(math.radians((y0 + y1) / 2.0))
        width_m = max((x1 - x0) * METRES_PER_DEGREE * mid, 1.0)
        height_m = max((y1 - y0) * METRES_PER_DEGREE, 1.0)
        cell_m = max(math.sqrt(width_m * height_m * buildings_per_cell / len(lng)), 1.0)
        nx = max(1, min(int(math.ceil(width_m / cell_m)), 1 << 14))
        ny = max(1, min(int(math.ceil(height_m / cell_m)), 1 << 14))
        cell_w = max(x1 - x0, 1e-9) / nx
        cell_h = max(y1 - y0, 1e-9) / ny
        cos_max = math.cos(math.radians(min(max(abs(y0), abs(y1)), 90.0)))
        self.cell_box = np.array([x0, y0, 1.0 / cell_w, 1.0 / cell_h, cos_max, math.radians(cell_w),
                                  math.radians(cell_h)])
        self.nx, self.ny = nx, ny
        # the cells the kernel computes for a point at the same position (the same float operations)
        i = np.clip(((lng - x0) * self.cell_box[2]).astype(np.int64), 0, nx - 1)
        j = np.clip(((lat - y0) * self.cell_box[3]).astype(np.int64), 0, ny - 1)
        cell = j * nx + i
        order = np.argsort(cell, kind="stable")
        self.cell_offsets = np.searchsorted(cell[order], np.arange(nx * ny + 1)).astype(np.int64)
        self.rows = order.astype(np.int64)
        self.xyz = np.empty((len(lng), 3))
        kernels.unit_vectors(lng[order], lat[order], self.xyz)
        self._args = tuple(_frozen(a) if isinstance(a, np.ndarray) else a for a in (
            self.cell_box, self.nx, self.ny, self.cell_offsets, self.xyz, self.rows))

    def __repr__(self) -> str:
        return f"BuildingIndex(n_buildings={self.n_buildings}, cells={self.nx}x{self.ny})"

    def nearest(
        self,
        lng,
        lat,
        *,
        radius_m: float = 100.0,
        crs: str = "wgs84",
        deadline: float | None = None,
        cancel: threading.Event | None = None,
        chunk_size: int = 1 << 20,
    ) -> Nearest:
        """The nearest building within ``radius_m`` metres of every point (``lng``, ``lat`` in ``crs``).

        Work goes in chunks of ``chunk_size`` points; ``deadline`` (absolute ``time.monotonic()``) and
        ``cancel`` are checked before each, and :class:`~citygrid.engine.errors.DeadlineExceeded` is
        raised when either stops the work.
        """
        n, chunks = wgs84_chunks(lng, lat, crs, chunk_size, deadline, cancel)
        radius_m = float(radius_m)
        if not (math.isfinite(radius_m) and 0.0 < radius_m <= MAX_RADIUS_M):
            raise InvalidInput(f"radius_m must be more than 0 and at most {MAX_RADIUS_M:,.0f} metres, not {radius_m}")
        rows = np.empty(n, dtype=np.int64)
        distance = np.empty(n, dtype=np.float64)
        for start, stop, x, y in chunks:
            kernel = kernels.nearest_buildings_serial if stop - start < SERIAL_BELOW else kernels.nearest_buildings
            kernel(x, y, radius_m, *self._args, rows[start:stop], distance[start:stop])
        return Nearest(rows, distance)
