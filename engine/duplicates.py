"""Duplicate reports: the same matter reported again is linked to its first report, not dispatched twice.

A report is a duplicate when an *open* earlier report (a primary: not itself a duplicate, not closed
or rejected) has the same category, lies within ``distance_m`` metres (great-circle, WGS84) and
happened within ``window`` of it. It is linked to the earliest-received such report. Once a primary
is closed or rejected, a new report of the matter starts a new case.

The index is a hash of cells per category, in degrees, sized so that any point within ``distance_m``
lies in the same or an adjacent cell up to latitude ±75° (beyond it reports are not linked: no grid
layer reaches there), with the exact distance checked on the candidates.

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
#: Reports beyond this latitude are never linked (the cell width assumes cos(lat) >= cos(75°)).
MAX_ABS_LAT = 75.0
_M_PER_DEG_LAT_MIN = 110_000.0
_M_PER_DEG_LNG_MIN = 111_320.0 * math.cos(math.radians(MAX_ABS_LAT)) * 0.995
# A cell's key: category number, then column, then row (cell indices stay far below 2**40 for any
# distance over a millimetre, so the fields never overlap).
_COLUMN_SHIFT = 42
_CATEGORY_SHIFT = 86


@dataclass(frozen=True)
class DuplicatePolicy:
    """Same category, within ``distance_m`` metres and ``window_minutes`` (either direction) of an
    open report. ``distance_m = 0`` turns linking off."""

    distance_m: float = 50.0
    window_minutes: float = 24 * 60

    def __post_init__(self) -> None:
        if not (self.distance_m >= 0 and self.window_minutes >= 0):
            raise InvalidInput("duplicate distance and window must be >= 0")

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
        d = max(policy.distance_m, 1e-9)
        self._cell_lat = d / _M_PER_DEG_LAT_MIN
        self._cell_lng = d / _M_PER_DEG_LNG_MIN
        self._window_us = int(policy.window_minutes * 60_000_000)
        # Per (category, cell), packed in one integer: the reports' times, sorted, and the reports
        # in the same order.
        self._cells: dict[int, tuple[list[int], list[tuple[int, str, float, float, int]]]] = {}
        self._where: dict[str, int] = {}
        self._categories: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._where)

    def _key(self, category: str, lng: float, lat: float) -> tuple[int, int, int]:
        """The category's number and the cell of a point."""
        number = self._categories.get(category)
        if number is None:
            number = self._categories[category] = len(self._categories)
        return number, math.floor(lng / self._cell_lng), math.floor(lat / self._cell_lat)

    def find(self, category: str, lng: float, lat: float, t_us: int) -> str | None:
        """The id of the earliest-received open report this one repeats, or ``None``."""
        if not self.policy.enabled or not _usable(lng, lat):
            return None
        return self._find(self._key(category, lng, lat), lng, lat, t_us)

    def _find(self, key: tuple[int, int, int], lng: float, lat: float, t_us: int) -> str | None:
        number, cx, cy = key
        base = number << _CATEGORY_SHIFT
        best_seq, best = -1, None
        lo_t, hi_t = t_us - self._window_us, t_us + self._window_us
        cells = self._cells
        for dx in (-1, 0, 1):
            column = base + ((cx + dx) << _COLUMN_SHIFT)
            for dy in (-1, 0, 1):
                cell = cells.get(column + cy + dy)
                if cell is None:
                    continue
                times, entries = cell
                for k in range(bisect_left(times, lo_t), bisect_right(times, hi_t)):
                    seq, event_id, elng, elat, _ = entries[k]
                    if best is not None and seq >= best_seq:
                        continue
                    if distance_m(lng, lat, elng, elat) <= self.policy.distance_m:
                        best_seq, best = seq, event_id
        return best

    def find_or_add(self, seq: int, event_id: str, category: str, lng: float, lat: float, t_us: int) -> str | None:
        """:meth:`find`, and when the report repeats nothing, :meth:`add` it (one lookup, for intake)."""
        if not self.policy.enabled or not _usable(lng, lat):
            return None
        key = self._key(category, lng, lat)
        primary = self._find(key, lng, lat, t_us)
        if primary is None:
            self._add(key, seq, event_id, lng, lat, t_us)
        return primary

    def add(self, seq: int, event_id: str, category: str, lng: float, lat: float, t_us: int) -> None:
        """Remember an open primary report (received ``seq``-th)."""
        if not self.policy.enabled or not _usable(lng, lat):
            return
        self._add(self._key(category, lng, lat), seq, event_id, lng, lat, t_us)

    def _add(self, key, seq: int, event_id: str, lng: float, lat: float, t_us: int) -> None:
        if event_id in self._where:
            return
        number, cx, cy = key
        packed = (number << _CATEGORY_SHIFT) + (cx << _COLUMN_SHIFT) + cy
        times, entries = self._cells.setdefault(packed, ([], []))
        k = bisect_right(times, t_us)
        times.insert(k, t_us)
        entries.insert(k, (seq, event_id, lng, lat, t_us))
        self._where[event_id] = packed

    def remove(self, event_id: str) -> None:
        """Forget a report that is no longer open (closed, rejected)."""
        packed = self._where.pop(event_id, None)
        if packed is None:
            return
        times, entries = self._cells[packed]
        k = next(k for k, e in enumerate(entries) if e[1] == event_id)
        del times[k], entries[k]
        if not entries:
            del self._cells[packed]


def _usable(lng: float | None, lat: float | None) -> bool:
    return (
        lng is not None and lat is not None and math.isfinite(lng) and math.isfinite(lat)
        and abs(lat) <= MAX_ABS_LAT
    )
