"""Duplicate reports: the same matter reported again is linked to its first report, not dispatched twice.

A report is a duplicate when an *open* earlier report (a primary: not itself a duplicate, not closed
or rejected) has the same category, lies within ``distance_m`` metres (great-circle, WGS84) and
happened within ``window`` of it. It is linked to the earliest-received such report. Once a primary
is closed or rejected, a new report of the matter starts a new case.

The index is a hash of cells per category: rows of latitude twice ``distance_m`` high, each row cut
into cells of longitude twice ``distance_m`` wide at the row's edge nearest a pole, so the points
within ``distance_m`` of a report lie in at most 2 x 2 cells; on those candidates an equirectangular
estimate rejects the far ones and the great-circle distance decides. A cell's key is one integer
(category, row, column). Distances run from 1 m to 10 km (``0`` turns linking off); reports beyond
latitude ±85° are not linked (no grid layer reaches there).

>>> index = DuplicateIndex(DuplicatePolicy(distance_m=50, window_minutes=120))
>>> index.add(1, "A", "0101", 114.2500, 22.7200, 0)
>>> index.find("0101", 114.2503, 22.7201, 30 * 60_000_000)   # ~33 m away, 30 minutes later
'A'
>>> index.find("0101", 114.2520, 22.7200, 0) is None            # ~205 m away
True
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from citygrid.engine.errors import InvalidInput

#: Mean Earth radius (m), for great-circle distances.
EARTH_RADIUS_M = 6371008.8
#: Reports beyond this latitude are never linked (cells there would span most of a circle of latitude).
MAX_ABS_LAT = 85.0
#: Linking distances allowed (m).
MIN_DISTANCE_M, MAX_DISTANCE_M = 1.0, 10_000.0
#: Fewest metres a degree of latitude spans anywhere (a bound, not a model of the Earth).
_M_PER_DEG_MIN = 110_000.0
# A cell's key: category number (< 2**14), row (< 2**24) and column (< 2**26), rows and columns
# offset to be positive (at one metre, a row spans 1.8e-5° and a column as little).
_COLUMN_BITS, _ROW_BITS = 26, 24
_ROW_SHIFT = _COLUMN_BITS
_CATEGORY_SHIFT = _COLUMN_BITS + _ROW_BITS
_ROW_OFFSET, _COLUMN_OFFSET = 1 << (_ROW_BITS - 1), 1 << (_COLUMN_BITS - 1)
_MAX_CATEGORIES = 1 << 14


@dataclass(frozen=True)
class DuplicatePolicy:
    """Same category, within ``distance_m`` metres and ``window_minutes`` (either direction) of an
    open report. ``distance_m = 0`` turns linking off."""

    distance_m: float = 50.0
    window_minutes: float = 24 * 60

    def __post_init__(self) -> None:
        if not (self.distance_m == 0 or MIN_DISTANCE_M <= self.distance_m <= MAX_DISTANCE_M):
            raise InvalidInput(
                f"duplicate distance must be 0 (off) or {MIN_DISTANCE_M:g}-{MAX_DISTANCE_M:,.0f} m, got {self.distance_m}"
            )
        if not 0 <= self.window_minutes < 1e8:
            raise InvalidInput(f"duplicate window must be 0-100,000,000 minutes, got {self.window_minutes}")

    @property
    def enabled(self) -> bool:
        return self.distance_m > 0


def distance_m(lng1: float, lat1: float, lng2: float, lat2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


class DuplicateIndex:
    """Open primary reports by category and cell. Not thread-safe: its owner serialises calls."""

    def __init__(self, policy: DuplicatePolicy):
        self.policy = policy
        self._enabled = policy.enabled
        self._distance = d = max(policy.distance_m, MIN_DISTANCE_M)
        self._half_lat = d / _M_PER_DEG_MIN  # degrees of latitude that hold every point within d
        self._per_row = 1.0 / (2.0 * self._half_lat)
        self._columns: dict[int, tuple[float, float]] = {}  # row -> (half width, columns per degree)
        # Equirectangular distances within 5 % of d (a bound on their error here) go on to the great-circle test.
        self._rough_rad2 = (1.05 * d / EARTH_RADIUS_M) ** 2
        self._window_us = int(policy.window_minutes * 60_000_000)
        # Per cell key: the reports' times, sorted, and the reports (seq, id, lng, lat) in that order.
        self._cells: dict[int, tuple[list[int], list[tuple[int, str, float, float]]]] = {}
        self._where: dict[str, int] = {}
        self._categories: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._where)

    def _category(self, category: str) -> int:
        number = self._categories.get(category)
        if number is None:
            if len(self._categories) >= _MAX_CATEGORIES:
                raise InvalidInput(f"more than {_MAX_CATEGORIES} categories in the duplicate index")
            number = self._categories[category] = len(self._categories)
        return number << _CATEGORY_SHIFT

    def _row_columns(self, row: int) -> tuple[float, float]:
        """(degrees of longitude that hold every point within d of a report in or next to ``row``,
        cells per degree in that row)."""
        columns = self._columns.get(row)
        if columns is None:
            pole_side = (max(abs(row - _ROW_OFFSET), abs(row - _ROW_OFFSET + 1)) + 0.5) / self._per_row
            half = self._distance / (_M_PER_DEG_MIN * math.cos(math.radians(min(pole_side, 89.0))))
            columns = self._columns[row] = (half, 1.0 / (2.0 * half))
        return columns

    def find(self, category: str, lng: float, lat: float, t_us: int) -> str | None:
        """The id of the earliest-received open report this one repeats, or ``None``."""
        if not self._enabled or not _usable(lng, lat):
            return None
        return self._find(self._category(category), lng, lat, t_us)

    def _find(self, base: int, lng: float, lat: float, t_us: int) -> str | None:
        per_row, half_lat = self._per_row, self._half_lat
        y0 = math.floor((lat - half_lat) * per_row) + _ROW_OFFSET
        y1 = math.floor((lat + half_lat) * per_row) + _ROW_OFFSET
        cells = self._cells
        lo_t, hi_t = t_us - self._window_us, t_us + self._window_us
        lat_rad = math.radians(lat)
        cos_lat = math.cos(lat_rad)
        rough, distance = self._rough_rad2, self._distance
        best_seq, best = -1, None
        for y in (y0, y1) if y1 != y0 else (y0,):
            half, per_column = self._row_columns(y)
            x0 = math.floor((lng - half) * per_column) + _COLUMN_OFFSET
            x1 = math.floor((lng + half) * per_column) + _COLUMN_OFFSET
            row = base + (y << _ROW_SHIFT)
            for x in (x0, x1) if x1 != x0 else (x0,):
                cell = cells.get(row + x)
                if cell is None:
                    continue
                times, entries = cell
                for k in range(bisect_left(times, lo_t), bisect_right(times, hi_t)):
                    seq, event_id, elng, elat = entries[k]
                    if best is not None and seq > best_seq:
                        continue
                    dy = math.radians(elat) - lat_rad
                    dx = math.radians(elng - lng) * cos_lat
                    if dx * dx + dy * dy <= rough and distance_m(lng, lat, elng, elat) <= distance:
                        best_seq, best = seq, event_id
        return best

    def find_or_add(self, seq: int, event_id: str, category: str, lng: float, lat: float, t_us: int) -> str | None:
        """:meth:`find`, and when the report repeats nothing, :meth:`add` it (one lookup, for intake)."""
        if not self._enabled or not _usable(lng, lat):
            return None
        base = self._category(category)
        primary = self._find(base, lng, lat, t_us)
        if primary is None:
            self._add(base, seq, event_id, lng, lat, t_us)
        return primary

    def add(self, seq: int, event_id: str, category: str, lng: float, lat: float, t_us: int) -> None:
        """Remember an open primary report (received ``seq``-th)."""
        if not self._enabled or not _usable(lng, lat):
            return
        self._add(self._category(category), seq, event_id, lng, lat, t_us)

    def _add(self, base: int, seq: int, event_id: str, lng: float, lat: float, t_us: int) -> None:
        if event_id in self._where:
            return
        y = math.floor(lat * self._per_row) + _ROW_OFFSET
        x = math.floor(lng * self._row_columns(y)[1]) + _COLUMN_OFFSET
        key = base + (y << _ROW_SHIFT) + x
        cell = self._cells.get(key)
        if cell is None:
            self._cells[key] = ([t_us], [(seq, event_id, lng, lat)])
        else:
            times, entries = cell
            k = bisect_right(times, t_us)
            times.insert(k, t_us)
            entries.insert(k, (seq, event_id, lng, lat))
        self._where[event_id] = key

    def remove(self, event_id: str) -> None:
        """Forget a report that is no longer open (closed, rejected)."""
        key = self._where.pop(event_id, None)
        if key is None:
            return
        times, entries = self._cells[key]
        k = next(k for k, e in enumerate(entries) if e[1] == event_id)
        del times[k], entries[k]
        if not entries:
            del self._cells[key]


def _usable(lng: float | None, lat: float | None) -> bool:
    return (
        lng is not None and lat is not None and math.isfinite(lng) and math.isfinite(lat)
        and abs(lat) <= MAX_ABS_LAT
    )
