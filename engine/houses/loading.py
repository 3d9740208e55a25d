"""Bulk load from Parquet: buildings, units, residents and businesses checked row by row, with a
report of the rows refused and why.

Every check is vectorised over the whole table; a row gets the first reason that applies, in the
order below, and rows that depend on a refused row are refused too (a unit of a refused building, a
resident of a refused unit):

============== ============================================================================
table          reasons (:data:`REASONS`)
============== ============================================================================
buildings      ``missing field``, ``bad code``, ``duplicate in the file``, ``code already
               issued`` (held or demolished: a code is never reused), ``bad position``,
               ``outside every grid`` (of the layer the registry places buildings on)
units          ``missing field``, ``bad code``, ``not in its building`` (the unit code does not
               start with its building code), ``duplicate in the file``, ``code already
               issued``, ``bad kind``, ``bad rental class``, ``bad control level``, ``building
               refused``, ``unknown building``
residents      ``missing field``, ``duplicate in the file``, ``already registered``, ``bad birth
               year``, ``bad population type``, ``bad code``, ``unit refused``, ``unknown
               unit``, ``not a residential unit``
businesses     ``missing field``, ``duplicate in the file``, ``already registered``, ``bad code``,
               ``building refused``, ``unknown building``, ``unit refused``, ``unknown unit``,
               ``not in its building``
============== ============================================================================

The accepted rows are then written in **one** transaction (:meth:`HouseRegistry.load
<citygrid.engine.houses.registry.HouseRegistry.load>`): a failure part-way rolls all of it back, so
nothing is ever half-loaded. With ``strict=True`` any refused row refuses the whole load
(:class:`LoadRefused`, an :class:`~citygrid.engine.errors.InvalidInput` carrying the report).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from citygrid.engine.errors import InvalidInput
from citygrid.engine.houses.codes import BUILDING_DIGITS, UNIT_DIGITS, valid_building_codes, valid_unit_codes
from citygrid.engine.houses.rentals import CONTROL_LEVELS, RENTAL_CLASSES, RESIDENTIAL_KINDS, UNIT_KINDS

#: Population types of the residents table and whether each is registered (户籍).
POPULATION_TYPES = {"户籍人口": True, "流动人口": False}
#: Birth years accepted.
BIRTH_YEARS = (1900, 2100)
#: Columns each table must have (a table may carry more); the building kind may be ``kind`` or
#: ``building_type`` (the demo's name).
REQUIRED = {
    "buildings": ("building_code", "floors", "address", "lng", "lat"),
    "units": ("unit_code", "building_code", "kind", "floor", "number", "address"),
    "residents": ("resident_id", "name", "birth_year", "population_type", "unit_code"),
    "businesses": ("business_id", "name", "building_code"),
}
REASONS = ("missing field", "bad code", "not in its building", "duplicate in the file", "code already issued",
           "already registered", "bad position", "outside every grid", "bad kind", "bad rental class",
           "bad control level", "bad birth year", "bad population type", "building refused",
           "unknown building", "unit refused", "unknown unit", "not a residential unit")
#: Refused rows a report keeps one by one (the counts are always complete).
MAX_LISTED = 10_000


@dataclass(frozen=True)
class Refused:
    """A refused row: its table, its row number in the file (from 0), its key (code or id) and why."""

    table: str
    row: int
    key: str | None
    reason: str


@dataclass
class LoadReport:
    """What a load did: rows written per table, rows refused per table and reason, and the first
    :data:`MAX_LISTED` refused rows one by one."""

    loaded: dict[str, int] = field(default_factory=dict)
    refused_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    refused: list[Refused] = field(default_factory=list)
    committed: bool = False

    @property
    def n_refused(self) -> int:
        return sum(sum(c.values()) for c in self.refused_counts.values())

    def summary(self) -> str:
        parts = [f"{t}: {n:,} loaded" for t, n in self.loaded.items()]
        for table, counts in self.refused_counts.items():
            parts += [f"{table}: {n:,} refused ({reason})" for reason, n in counts.items()]
        return "; ".join(parts) or "nothing to load"


class LoadRefused(InvalidInput):
    """A strict load refused because some rows were refused; ``report`` says which."""

    def __init__(self, report: LoadReport):
        super().__init__(f"the load is refused and nothing was written: {report.n_refused:,} rows are "
                         f"refused ({report.summary()})")
        self.report = report


def read_table(source, table: str) -> pa.Table:
    """A table from a Parquet path or an Arrow table, with its required columns checked."""
    if isinstance(source, pa.Table):
        data = source
    else:
        try:
            data = pq.read_table(os.fspath(source))
        except (OSError, pa.ArrowException, TypeError) as exc:
            raise InvalidInput(f"cannot read the {table} table from {source}: {exc}") from None
    names = set(data.column_names)
    missing = [c for c in REQUIRED[table] if c not in names]
    if table == "buildings" and not names & {"kind", "building_type"}:
        missing.append("kind (or building_type)")
    if missing:
        raise InvalidInput(f"the {table} table lacks the columns {', '.join(missing)}")
    return data


class Checks:
    """The reason of each row of one table (the first that applies), filled check by check."""

    def __init__(self, table: str, n: int):
        self.table = table
        self.reason = np.full(n, -1, dtype=np.int16)

    def mark(self, bad, reason: str) -> None:
        bad = np.asarray(bad, dtype=bool)
        self.reason[bad & (self.reason < 0)] = REASONS.index(reason)

    @property
    def ok(self) -> np.ndarray:
        return self.reason < 0

    def report(self, into: LoadReport, keys) -> None:
        bad = np.flatnonzero(~self.ok)
        if not bad.size:
            return
        counts = np.bincount(self.reason[bad], minlength=len(REASONS))
        into.refused_counts[self.table] = {REASONS[r]: int(c) for r, c in enumerate(counts) if c}
        room = MAX_LISTED - len(into.refused)
        for row in bad[: max(room, 0)].tolist():
            key = keys[row].as_py() if isinstance(keys, (pa.Array, pa.ChunkedArray)) else keys[row]
            into.refused.append(Refused(self.table, row, key, REASONS[self.reason[row]]))


def column(data: pa.Table, name: str, default=None) -> pa.Array:
    """A column as one array (``default`` values when the table lacks it)."""
    if name not in data.column_names:
        return pa.nulls(data.num_rows) if default is None else pa.array([default] * data.num_rows)
    col = data.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def missing(*arrays) -> np.ndarray:
    """Rows where any of ``arrays`` is null (or blank text)."""
    out = np.zeros(len(arrays[0]), dtype=bool)
    for array in arrays:
        out |= array.is_null().to_numpy(zero_copy_only=False)
        if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
            out |= pc.fill_null(pc.equal(pc.utf8_trim_whitespace(array), ""), False).to_numpy(zero_copy_only=False)
    return out


def text(array: pa.Array) -> pa.Array:
    """A column as strings (numbers a loader may have written as integers become their digits)."""
    return array if pa.types.is_string(array.type) else pc.cast(array, pa.string())


def fixed(array: pa.Array, width: int, rows=None) -> np.ndarray:
    """Strings of exactly ``width`` ASCII characters as a numpy ``S<width>`` array (the rows given;
    the caller has checked their length), for sorting and binary search over millions of codes."""
    if rows is not None:
        array = array.take(pa.array(rows, type=pa.int64()))
    array = pa.concat_arrays([array]) if array.offset else array
    if len(array) == 0:
        return np.empty(0, dtype=f"S{width}")
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[: len(array) + 1]
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8)[offsets[0]: offsets[0] + width * len(array)]
    return data.view(f"S{width}").copy()


def keys(array: pa.Array) -> np.ndarray:
    """Ids (text) as a fixed-width ``S`` array of their UTF-8 bytes, for sorting and search (null: empty)."""
    array = pc.fill_null(text(array), "")
    if len(array) == 0:
        return np.empty(0, dtype="S1")
    width = max(1, int(pc.max(pc.binary_length(array)).as_py()))
    padded = pc.utf8_rpad(array, width=width, padding="\x00")  # numpy drops trailing NULs
    if pc.all(pc.equal(pc.binary_length(padded), width)).as_py():  # ASCII: one byte a character
        return fixed(padded, width)
    return np.array([v.encode() for v in array.to_pylist()], dtype=f"S{width}")


def duplicated(values: np.ndarray) -> np.ndarray:
    """Rows whose value occurred in an earlier row."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    later = np.zeros(len(values), dtype=bool)
    if len(values) > 1:
        later[order[1:]] = ordered[1:] == ordered[:-1]
    return later


class Lookup:
    """Sorted codes (``S`` array) and their ids, for finding many codes at once."""

    def __init__(self, codes: np.ndarray, ids: np.ndarray):
        order = np.argsort(codes, kind="stable")
        self.codes = codes[order]
        self.ids = np.asarray(ids, dtype=np.int64)[order]

    def find(self, codes: np.ndarray) -> np.ndarray:
        """The id of each code (-1: not held)."""
        if not len(self.codes):
            return np.full(len(codes), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.codes, codes), len(self.codes) - 1)
        return np.where(self.codes[at] == codes, self.ids[at], -1)


def code_checks(checks: Checks, codes: pa.Array, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Marks bad and duplicate codes; returns the valid rows and their codes as an ``S`` array."""
    valid = valid_building_codes(codes) if kind == "building" else valid_unit_codes(codes)
    checks.mark(~valid, "bad code")
    rows = np.flatnonzero(valid)
    width = BUILDING_DIGITS if kind == "building" else UNIT_DIGITS
    values = fixed(codes, width, rows)
    dup = np.zeros(len(codes), dtype=bool)
    dup[rows] = duplicated(values)
    checks.mark(dup, "duplicate in the file")
    return rows, values


def check_kinds(checks: Checks, kinds: pa.Array, rental_class: pa.Array, control: pa.Array):
    """Unit kinds and rental classes / control levels as small codes (-1 for none), marking bad ones."""
    kind = pc.index_in(kinds, value_set=pa.array(list(UNIT_KINDS))).to_numpy(zero_copy_only=False)
    kind = np.nan_to_num(kind.astype(np.float64), nan=-1).astype(np.int8)
    checks.mark(kind < 0, "bad kind")
    cls = pc.index_in(rental_class, value_set=pa.array(list(RENTAL_CLASSES))).to_numpy(zero_copy_only=False)
    cls = np.nan_to_num(cls.astype(np.float64), nan=-1).astype(np.int8)
    checks.mark((cls < 0) & ~rental_class.is_null().to_numpy(zero_copy_only=False), "bad rental class")
    level = pc.index_in(control, value_set=pa.array(list(CONTROL_LEVELS))).to_numpy(zero_copy_only=False)
    level = np.nan_to_num(level.astype(np.float64), nan=-1).astype(np.int8)
    checks.mark((level < 0) & ~control.is_null().to_numpy(zero_copy_only=False), "bad control level")
    return kind, cls, level


RESIDENTIAL_CODES = np.array([list(UNIT_KINDS).index(k) for k in RESIDENTIAL_KINDS], dtype=np.int8)
