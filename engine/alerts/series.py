"""Count series: events counted per grid x category and period, rolled up; and the analysts'
CSV files (series, cases, counts, baselines, locations) read into arrays.

Events (:func:`count_events`) are counted per grid x category and day, or hour for the fast-moving
categories (:func:`fast_moving`: those the taxonomy wants handled within two working hours), and
rolled up (:func:`roll_up`) to community, street, district and category class.

Formats (a header row, UTF-8, extra columns ignored):

- ``SERIES.csv``: ``period,count`` (one series) or ``series_id,period,count``;
- ``LOCS.csv``: ``location_id,lat,lng`` (WGS84 degrees);
- ``CASES.csv``: ``location_id,date[,count]`` (``YYYY-MM-DD``; a row without count is one case);
- ``COUNTS.csv`` / ``BASELINES.csv``: ``location_id,period,count`` / ``location_id,period,baseline``.

A period is a whole number or a ``YYYY-MM-DD`` date (one kind per file). Periods run from the
first to the last one present in steps of the smallest gap between them (1 for numbers; 1 day, 7
days ... for dates) and every period must fall on that grid; periods absent from a file count 0
(not for baselines: a missing baseline is an error). Every error is an
:class:`~citygrid.engine.errors.InvalidInput` naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix

from citygrid.engine.errors import InvalidInput, NotFound


@dataclass
class Periods:
    """An evenly spaced run of periods: whole numbers, or dates ``step`` days apart."""

    first: int | dt.date
    step: int
    n: int

    @property
    def dated(self) -> bool:
        return isinstance(self.first, dt.date)

    def label(self, index: int):
        """The period at ``index``: an int, or an ISO date string."""
        if self.dated:
            return (self.first + dt.timedelta(days=self.step * int(index))).isoformat()
        return int(self.first) + self.step * int(index)

    def periods_per_year(self) -> int | None:
        """52 for weekly dates, 365 for daily ones, None when it cannot be told."""
        if not self.dated:
            return None
        return {1: 365, 7: 52}.get(self.step)


@dataclass
class SeriesTable:
    series_ids: list[str]
    periods: Periods
    counts: np.ndarray  # series x periods, float64


@dataclass
class Locations:
    ids: list[str]
    lng: np.ndarray
    lat: np.ndarray

    def index(self) -> dict[str, int]:
        return {loc: i for i, loc in enumerate(self.ids)}


def read_series(path: str | os.PathLike) -> SeriesTable:
    """``period,count`` or ``series_id,period,count`` into a (series x periods) matrix."""
    path, rows = _rows(path, required=("period", "count"))
    has_id = "series_id" in rows.fieldnames
    ids: dict[str, int] = {}
    keys, values, series = [], [], []
    seen = set()
    for line, row in rows:
        sid = _text(path, line, row, "series_id") if has_id else ""
        period = _period(path, line, row["period"])
        count = _count(path, line, row, "count")
        if (sid, period) in seen:
            raise InvalidInput(f"{path}, line {line}: period {row['period']!r} of series {sid or '(the only one)'!r} "
                               "appears twice")
        seen.add((sid, period))
        series.append(ids.setdefault(sid, len(ids)))
        keys.append(period)
        values.append(count)
    if not keys:
        raise InvalidInput(f"{path}: no rows")
    periods, index = _grid(path, keys)
    counts = np.zeros((len(ids), periods.n))
    counts[np.array(series), index] = values
    return SeriesTable(list(ids), periods, counts)


def read_locations(path: str | os.PathLike) -> Locations:
    path, rows = _rows(path, required=("location_id", "lat", "lng"))
    ids, lng, lat = [], [], []
    seen: dict[str, int] = {}
    for line, row in rows:
        loc = _text(path, line, row, "location_id")
        if loc in seen:
            raise InvalidInput(f"{path}, line {line}: location_id {loc!r} was already given on line {seen[loc]}")
        seen[loc] = line
        la = _number(path, line, row, "lat")
        lo = _number(path, line, row, "lng")
        if not (-90 <= la <= 90):
            raise InvalidInput(f"{path}, line {line}, column lat: {la!r} is not a latitude (-90..90)")
        if not (-180 <= lo <= 180):
            raise InvalidInput(f"{path}, line {line}, column lng: {lo!r} is not a longitude (-180..180)")
        ids.append(loc)
        lng.append(lo)
        lat.append(la)
    if not ids:
        raise InvalidInput(f"{path}: no locations")
    return Locations(ids, np.array(lng), np.array(lat))


def read_cases(path: str | os.PathLike, locations: Locations, study_start: dt.date,
               study_end: dt.date) -> np.ndarray:
    """``location_id,date[,count]`` into a (location x day) count matrix over the study period."""
    if study_end < study_start:
        raise InvalidInput(f"the study ends ({study_end}) before it starts ({study_start})")
    n_days = (study_end - study_start).days + 1
    path, rows = _rows(path, required=("location_id", "date"))
    index = locations.index()
    has_count = "count" in rows.fieldnames
    counts = np.zeros((len(index), n_days), dtype=np.int64)
    for line, row in rows:
        loc = _location(path, line, row, index)
        day = _date(path, line, row["date"], "date")
        if not (study_start <= day <= study_end):
            raise InvalidInput(f"{path}, line {line}, column date: {day} is outside the study period "
                               f"{study_start} .. {study_end}")
        counts[loc, (day - study_start).days] += int(_count(path, line, row, "count")) if has_count else 1
    return counts


def read_location_periods(path: str | os.PathLike, locations: Locations, value: str, periods: Periods | None = None,
                          *, missing: str = "zero") -> tuple[Periods, np.ndarray]:
    """``location_id,period,<value>`` into a (location x period) matrix.

    Periods come from the file unless ``periods`` is given (then every row must fall on it).
    ``missing="zero"`` fills absent cells with 0, ``"error"`` names the first absent one.
    """
    path, rows = _rows(path, required=("location_id", "period", value))
    index = locations.index()
    locs, keys, values = [], [], []
    seen = set()
    for line, row in rows:
        loc = _location(path, line, row, index)
        period = _period(path, line, row["period"])
        v = _count(path, line, row, value) if value == "count" else _number(path, line, row, value)
        if value != "count" and not (v > 0):
            raise InvalidInput(f"{path}, line {line}, column {value}: {row[value]!r} must be a positive number")
        if (loc, period) in seen:
            raise InvalidInput(f"{path}, line {line}: location {row['location_id']!r} period {row['period']!r} "
                               "appears twice")
        seen.add((loc, period))
        locs.append(loc)
        keys.append(period)
        values.append(v)
    if periods is None:
        if not keys:
            raise InvalidInput(f"{path}: no rows")
        periods, cols = _grid(path, keys)
    else:
        cols = np.array([_on_grid(path, periods, k) for k in keys], dtype=np.int64)
    matrix = np.zeros((len(index), periods.n))
    filled = np.zeros(matrix.shape, dtype=bool)
    if locs:
        matrix[np.array(locs), cols] = values
        filled[np.array(locs), cols] = True
    if missing == "error" and not filled.all():
        loc, t = np.argwhere(~filled)[0]
        raise InvalidInput(f"{path}: no {value} for location {locations.ids[loc]!r}, period {periods.label(t)}")
    return periods, matrix


def span(a: Periods, b: Periods) -> Periods:
    """The smallest run of periods holding both (same kind and step)."""
    if a.dated != b.dated:
        raise InvalidInput("one file has dates for periods and the other numbers: use one kind")
    step = math.gcd(a.step, b.step)
    first = min(a.first, b.first)
    last = max(_last(a), _last(b))
    return Periods(first, step, _distance(first, last) // step + 1)


# ------------------------------------------------------------------ helpers


class _Rows:
    def __init__(self, reader):
        self.reader = reader
        self.fieldnames = reader.fieldnames

    def __iter__(self):
        for row in self.reader:
            yield self.reader.line_num, row


def _rows(path, required):
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"no such file: {path}")
    fh = open(path, newline="", encoding="utf-8-sig")
    reader = csv.DictReader(fh)
    if reader.fieldnames is None:
        fh.close()
        raise InvalidInput(f"{path}: the file is empty (no header row)")
    reader.fieldnames = [name.strip() for name in reader.fieldnames]
    absent = [name for name in required if name not in reader.fieldnames]
    if absent:
        fh.close()
        raise InvalidInput(f"{path}: no column {', '.join(absent)}; the header has {', '.join(reader.fieldnames)}")

    class _Closing(_Rows):
        def __iter__(self):
            try:
                yield from super().__iter__()
            except csv.Error as exc:
                raise InvalidInput(f"{path}, line {reader.line_num}: {exc}") from None
            finally:
                fh.close()

    return path, _Closing(reader)


def _text(path, line, row, column) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise InvalidInput(f"{path}, line {line}, column {column}: empty")
    return value


def _number(path, line, row, column) -> float:
    text = _text(path, line, row, column)
    try:
        v = float(text)
    except ValueError:
        raise InvalidInput(f"{path}, line {line}, column {column}: {text!r} is not a number") from None
    if not math.isfinite(v):
        raise InvalidInput(f"{path}, line {line}, column {column}: {text!r} is not a finite number")
    return v


def _count(path, line, row, column) -> float:
    v = _number(path, line, row, column)
    if v < 0 or v != math.floor(v):
        raise InvalidInput(f"{path}, line {line}, column {column}: {row[column]!r} is not a whole number >= 0")
    return v


def _location(path, line, row, index) -> int:
    loc = _text(path, line, row, "location_id")
    if loc not in index:
        raise InvalidInput(f"{path}, line {line}, column location_id: {loc!r} is not in the locations file")
    return index[loc]


def _date(path, line, text, column) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{path}, line {line}, column {column}: {text!r} is not a date (YYYY-MM-DD)") from None


def _period(path, line, text):
    text = (text or "").strip()
    if not text:
        raise InvalidInput(f"{path}, line {line}, column period: empty")
    try:
        return int(text)
    except ValueError:
        pass
    return _date(path, line, text, "period")


def _distance(a, b) -> int:
    return (b - a).days if isinstance(a, dt.date) else b - a


def _last(p: Periods):
    return p.first + (dt.timedelta(days=p.step * (p.n - 1)) if p.dated else p.step * (p.n - 1))


def _grid(path, keys) -> tuple[Periods, np.ndarray]:
    kinds = {isinstance(k, dt.date) for k in keys}
    if len(kinds) > 1:
        raise InvalidInput(f"{path}: periods mix numbers and dates; use one kind")
    distinct = sorted(set(keys))
    first = distinct[0]
    gaps = [_distance(a, b) for a, b in zip(distinct[:-1], distinct[1:])]
    step = 1 if not isinstance(first, dt.date) else (min(gaps) if gaps else 1)
    periods = Periods(first, step, _distance(first, distinct[-1]) // step + 1)
    return periods, np.array([_on_grid(path, periods, k) for k in keys], dtype=np.int64)


def _on_grid(path, periods: Periods, key) -> int:
    if isinstance(key, dt.date) != periods.dated:
        raise InvalidInput(f"{path}: period {key} is not of the same kind (number or date) as the others")
    d = _distance(periods.first, key)
    if d % periods.step or not (0 <= d // periods.step < periods.n):
        raise InvalidInput(f"{path}: period {key} is not on the run of periods from {periods.label(0)} "
                           f"every {periods.step} {'days' if periods.dated else ''}".rstrip())
    return d // periods.step


# ------------------------------------------------------------------ counting events into series

#: Period lengths of the event series, in milliseconds.
STEPS_MS = {"day": 86_400_000, "hour": 3_600_000}
#: Categories whose matters must be handled within this many working minutes move fast enough
#: to be watched hour by hour (the default taxonomy: 道路积水, 树木倒伏, 火情, street order, 噪音扰民 ...).
FAST_HANDLE_MINUTES = 120


@dataclass
class EventSeries:
    """Event counts per (unit, category) series and period.

    Row ``r`` counts the events of category ``categories[r]`` in unit ``units[r]`` (a grid, or the
    community, street, district it rolls up to; a category or its class); period ``i`` is
    ``[start_ms + i * step_ms, start_ms + (i + 1) * step_ms)`` (UTC milliseconds; a day starts at
    local midnight when ``start_ms`` does). Rows run category by category, units in the order given.
    """

    level: str
    units: np.ndarray
    categories: np.ndarray
    start_ms: int
    step_ms: int
    counts: np.ndarray  # rows x periods, float64 (what the detectors take)

    def row(self, unit: str, category: str) -> int:
        hits = np.flatnonzero((self.units == unit) & (self.categories == category))
        if not len(hits):
            raise NotFound(f"no {self.level} series for unit {unit!r} and category {category!r}")
        return int(hits[0])

    def matrix(self, category: str) -> np.ndarray:
        """The (units x periods) block of one category (a view)."""
        hits = np.flatnonzero(self.categories == category)
        if not len(hits):
            raise NotFound(f"no {self.level} series of category {category!r}")
        return self.counts[hits[0]:hits[-1] + 1]


def count_events(grid_codes, category_codes, occurred_ms, *, start: dt.datetime, end: dt.datetime,
                 step: str = "day", grids=None, categories=None, only_seen: bool = False) -> EventSeries:
    """Events counted per grid x category and period (day or hour) over ``[start, end)``.

    ``start`` / ``end`` are timezone-aware (a local midnight starts local days); ``end - start``
    must be a whole number of periods. ``grids``: every grid to give a row (default: those in the
    data, sorted); an event in another grid is an error. ``categories``: the categories to count
    (default: those in the data, sorted); events of others are left out, as are events outside the
    span. ``only_seen``: rows only for the (grid, category) pairs with an event in the span, in the
    same order (a district's grid x category cube is mostly empty series, which no detector alarms on).
    """
    if step not in STEPS_MS:
        raise InvalidInput(f"step must be one of {', '.join(STEPS_MS)}, got {step!r}")
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise InvalidInput(f"{name} must be a timezone-aware datetime, got {value!r}")
    step_ms = STEPS_MS[step]
    start_ms = round(start.timestamp() * 1000)
    span_ms = round(end.timestamp() * 1000) - start_ms
    if span_ms <= 0 or span_ms % step_ms:
        raise InvalidInput(f"the span {start.isoformat()} .. {end.isoformat()} is not a positive whole number "
                           f"of {step}s")
    grid_codes = np.asarray(grid_codes, dtype=object)
    category_codes = np.asarray(category_codes, dtype=object)
    occurred_ms = np.asarray(occurred_ms, dtype=np.int64)
    if not (len(grid_codes) == len(category_codes) == len(occurred_ms)):
        raise InvalidInput(f"grid codes ({len(grid_codes)}), category codes ({len(category_codes)}) and times "
                           f"({len(occurred_ms)}) must be as many")
    units = np.array(sorted(set(grid_codes)) if grids is None else list(grids), dtype=object)
    cats = np.array(sorted(set(category_codes)) if categories is None else list(categories), dtype=object)
    for name, values in (("grid", units), ("category", cats)):
        if len(set(values)) != len(values):
            raise InvalidInput(f"the {name} list names a {name} twice")
    n_periods = span_ms // step_ms
    unit_of = _positions(units, grid_codes)
    cat_of = _positions(cats, category_codes)
    if (unit_of < 0).any():
        raise InvalidInput(f"event {int(np.argmax(unit_of < 0))} is in grid {grid_codes[unit_of < 0][0]!r}, "
                           "which is not in the grid list")
    period = np.floor_divide(occurred_ms - start_ms, step_ms)
    keep = (cat_of >= 0) & (period >= 0) & (period < n_periods)
    pair = cat_of[keep] * len(units) + unit_of[keep]
    if only_seen:
        seen, row = np.unique(pair, return_inverse=True)
        counts = _tally(row * n_periods + period[keep], len(seen) * n_periods)
        return EventSeries("grid", units[seen % len(units)], cats[seen // len(units)], start_ms, step_ms,
                           counts.reshape(len(seen), n_periods))
    cell = pair * n_periods + period[keep]
    counts = _tally(cell, len(cats) * len(units) * n_periods)
    return EventSeries("grid", np.tile(units, len(cats)), np.repeat(cats, len(units)), start_ms, step_ms,
                       counts.reshape(len(cats) * len(units), n_periods))


def _tally(cells: np.ndarray, n_cells: int) -> np.ndarray:
    """How many times each of ``n_cells`` cells occurs, as float64: counted with weights of 1.0
    (sums of ones are exact), straight into a float64 array the allocator zeroed, where an integer
    count converted to float64 wrote a second array of all the cells."""
    return np.bincount(cells, weights=np.ones(len(cells)), minlength=n_cells)


def roll_up(series: EventSeries, level: str, *, unit_parent=None, category_parent=None) -> EventSeries:
    """Series summed over the units (``unit_parent``: unit -> community, street, district ...) and/or
    the categories (``category_parent``: category -> class) they belong to.

    The result has one row per (parent unit, parent category), parents sorted; a unit or category
    the mapping does not name is an error.
    """
    units = _parents(series.units, unit_parent, "unit")
    cats = _parents(series.categories, category_parent, "category")
    unit_list = np.array(sorted(set(units)), dtype=object)
    cat_list = np.array(sorted(set(cats)), dtype=object)
    group = _positions(cat_list, cats) * len(unit_list) + _positions(unit_list, units)
    # one sparse (groups x rows) matrix of ones times the counts: no sorted copy of the rows (counts are
    # whole numbers, so any order of adding is exact)
    adder = csr_matrix((np.ones(len(group)), (group, np.arange(len(group)))),
                       shape=(len(cat_list) * len(unit_list), len(group)))
    counts = np.asarray(adder @ series.counts)
    return EventSeries(level, np.tile(unit_list, len(cat_list)), np.repeat(cat_list, len(unit_list)),
                       series.start_ms, series.step_ms, counts)


def fast_moving(taxonomy, max_handle_minutes: int = FAST_HANDLE_MINUTES) -> list[str]:
    """Codes of the categories to watch hour by hour: those handled within ``max_handle_minutes``."""
    return [c.code for c in taxonomy.categories if c.limits.handle <= max_handle_minutes]


def category_classes(taxonomy) -> dict[str, str]:
    """category code -> class code (the mapping ``roll_up`` takes to count by class)."""
    return {c.code: c.class_code for c in taxonomy.categories}


def _positions(sorted_or_listed: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of each value in the list (-1 when absent)."""
    index = {v: i for i, v in enumerate(sorted_or_listed.tolist())}
    return np.fromiter((index.get(v, -1) for v in values.tolist()), dtype=np.int64, count=len(values))


def _parents(values: np.ndarray, parent, what: str) -> np.ndarray:
    if parent is None:
        return values
    distinct = set(values.tolist())
    absent = sorted(distinct - set(parent))
    if absent:
        raise InvalidInput(f"the {what} mapping does not name {what} {absent[0]!r}"
                           + (f" (nor {len(absent) - 1} more)" if len(absent) > 1 else ""))
    lookup = {v: parent[v] for v in distinct}
    return np.array([lookup[v] for v in values.tolist()], dtype=object)
