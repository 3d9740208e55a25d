"""Reading count series, cases, counts, baselines and locations from CSV files into arrays.

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
