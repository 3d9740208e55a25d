"""Rows written to SQLite from columns: a batch's values passed as a few blobs and cut into rows by
SQL, instead of a Python tuple and twelve bound values a row.

Why: in a bulk load of millions of rows, Python's ``executemany`` spends most of its time binding
values one by one (units, twelve columns: ~55k rows/s, where ``INSERT … SELECT`` of the same rows
inside SQLite runs at ~280k rows/s on the same machine). Here each column of a batch is one or two
``BLOB`` parameters, and one statement per batch::

    INSERT INTO t (a, b, …) SELECT <a of row i>, <b of row i>, … FROM temp.house_row_numbers WHERE i < :n

cuts row ``i`` out of them with ``substr`` (byte offsets into a blob: constant time a value):

- **integers**: fixed-width decimal text (spaces before), ``CAST(substr(…) AS INTEGER)``; a null is a
  value the column does not hold, turned back by ``nullif``;
- **reals**, exactly: ``x = m / 2^k`` with ``m`` a 53-bit integer (``numpy.frexp``, trailing zero bits
  dropped), as ``m * 1.0 / d`` with ``d = 2^k`` (``0 <= k <= 62``: longitudes, areas) or else
  ``m * 1.0 / 2^k1 / 2^k2 * 2^j`` (every factor a power of two: no rounding; SQLite's own
  text-to-real conversion is not correctly rounded); NaN or None is null;
- **texts**: the UTF-8 bytes of the batch in one blob, each value's start and length as integers (a
  null has length -1); ``CAST(substr(…) AS TEXT)``; a column of few distinct values (a kind, a
  class: :data:`FEW_WORDS`) as each row's number in their list, ``CASE n WHEN 0 THEN ?a …``;
- **ranges** (row ids): ``first + i``; **constants**: one parameter.

The values a column's SQL gives back are the values given, checked by the tests against ``executemany``.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from citygrid.engine.errors import InvalidInput

#: Rows a statement writes.
BATCH = 100_000
#: A text column of at least FEW_WORDS_FROM rows and at most FEW_WORDS distinct values is written as
#: each row's number in the list of its values (a ``CASE``), not as its bytes.
FEW_WORDS, FEW_WORDS_FROM = 16, 1_000


#: The connection's temporary table of the row numbers 0 .. batch - 1 a statement reads its rows from
#: (a recursive CTE makes them several times slower).
SEQUENCE = "house_row_numbers"


def _sequence(conn: sqlite3.Connection, n: int) -> None:
    """Make ``temp.SEQUENCE`` hold at least the numbers 0 .. n - 1 (once per connection)."""
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {SEQUENCE} (i INTEGER PRIMARY KEY)")
    have = conn.execute(f"SELECT count(*) FROM temp.{SEQUENCE}").fetchone()[0]
    if have < n:
        conn.execute(f"WITH RECURSIVE k(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ?2) "
                     f"INSERT INTO temp.{SEQUENCE} SELECT i FROM k", (have, n))


def _fixed_ints(values: np.ndarray) -> tuple[bytes, int]:
    """Integers as one blob of fixed-width decimal text (spaces before) and that width."""
    text = pc.cast(pa.array(values, type=pa.int64()), pa.string())
    width = max(1, int(pc.max(pc.utf8_length(text)).as_py())) if len(text) else 1
    padded = pc.utf8_lpad(text, width=width, padding=" ")
    offsets = np.frombuffer(padded.buffers()[1], dtype=np.int32)
    data = padded.buffers()[2]
    return data.to_pybytes()[offsets[padded.offset]: offsets[padded.offset + len(padded)]], width


class _Column:
    """A column's SQL for row ``i`` and its parameters for rows ``start:stop``."""

    def params(self, start: int, stop: int) -> list:
        raise NotImplementedError

    def sql(self, p: list[str]) -> str:
        raise NotImplementedError


class Ints(_Column):
    def __init__(self, values, valid=None):
        self.values = np.asarray(values, dtype=np.int64)
        self.valid = None if valid is None or np.all(valid) else np.asarray(valid, dtype=bool)
        self.null = None
        if self.valid is not None:
            held = self.values[self.valid]
            self.null = -1 if not (held == -1).any() else int(held.min()) - 1

    def params(self, start, stop):
        values = self.values[start:stop]
        if self.valid is not None:
            values = np.where(self.valid[start:stop], values, self.null)
        blob, width = _fixed_ints(values)
        return [blob, width] + ([self.null] if self.null is not None else [])

    def sql(self, p):
        value = f"CAST(substr({p[0]}, i * {p[1]} + 1, {p[1]}) AS INTEGER)"
        return value if self.valid is None else f"nullif({value}, {p[2]})"


class Reals(_Column):
    """float64 values (NaN: null), written exactly."""

    def __init__(self, values):
        self.values = np.asarray(values, dtype=np.float64)
        self.nullable = not np.isfinite(self.values).all()

    def params(self, start, stop):
        x = self.values[start:stop]
        null = ~np.isfinite(x)
        fraction, exponent = np.frexp(np.where(null, 0.0, x))
        mantissa = (fraction * 2.0 ** 53).astype(np.int64)  # exact: a double has 53 bits
        shift = 53 - exponent.astype(np.int64)
        zero = mantissa == 0
        trailing = np.zeros(len(x), dtype=np.int64)
        rest = np.abs(mantissa)
        for bit in (32, 16, 8, 4, 2, 1):  # the trailing zero bits of the mantissa (dropped while 2^k >= 1)
            drop = ~zero & ((rest & ((1 << bit) - 1)) == 0)
            rest = np.where(drop, rest >> bit, rest)
            trailing += np.where(drop, bit, 0)
        trailing = np.minimum(trailing, np.maximum(shift, 0))
        rest = np.abs(mantissa) >> trailing
        mantissa = np.where(zero, 0, np.where(mantissa < 0, -rest, rest))
        shift = np.where(zero, 0, shift - trailing)
        if ((shift > 124) | (shift < -62)).any():
            raise InvalidInput("a real value is out of the range a load writes (2^-71 .. 2^115)")
        m_blob, m_width = _fixed_ints(mantissa)
        if ((shift >= 0) & (shift <= 62)).all():  # the usual case: m / d, d = 2^k an integer (0: null)
            d_blob, d_width = _fixed_ints(np.where(null, 0, np.left_shift(1, np.clip(shift, 0, 62))))
            return [m_blob, m_width, d_blob, d_width, 1]
        shift = np.where(null, 999, shift)  # the null marker
        k_blob, k_width = _fixed_ints(shift)
        return [m_blob, m_width, k_blob, k_width, 0]

    def sql(self, p):
        m = f"CAST(substr({p[0]}, i * {p[1]} + 1, {p[1]}) AS INTEGER)"
        k = f"CAST(substr({p[2]}, i * {p[3]} + 1, {p[3]}) AS INTEGER)"
        # ?p[4] says which form the batch has: m / d (x / 0 is null in SQLite), or the general m / 2^k
        return (f"CASE WHEN {p[4]} THEN {m} * 1.0 / {k} WHEN {k} = 999 THEN NULL "
                f"ELSE {m} * 1.0 / (1 << max(min({k}, 62), 0)) / (1 << max({k} - 62, 0)) * (1 << max(-{k}, 0)) END")


class Texts(_Column):
    def __init__(self, values):
        array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(list(values), type=pa.string())
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        if not pa.types.is_string(array.type):
            array = pc.cast(array, pa.string())
        self.array = pa.concat_arrays([array]) if array.offset else array
        self.words: list[str] | None = None
        if len(array) >= FEW_WORDS_FROM:
            words = pc.unique(array.drop_null())
            if len(words) <= FEW_WORDS:  # a kind, a class: each row's word by its number
                self.words = words.to_pylist()
                index = pc.index_in(array, value_set=words)
                self.codes = Ints(pc.fill_null(index, 0).to_numpy(zero_copy_only=False),
                                  array.is_valid().to_numpy(zero_copy_only=False))

    def params(self, start, stop):
        if self.words is not None:
            return self.codes.params(start, stop) + self.words
        part = pa.concat_arrays([self.array.slice(start, stop - start)])  # offsets from the part's own start
        offsets = np.frombuffer(part.buffers()[1], dtype=np.int32)[: len(part) + 1].astype(np.int64)
        lengths = np.diff(offsets)
        valid = part.is_valid().to_numpy(zero_copy_only=False)
        data = part.buffers()[2]
        blob = data.to_pybytes()[offsets[0]: offsets[-1]] if data is not None else b""
        starts, s_width = _fixed_ints(offsets[:-1] - offsets[0])
        sizes, z_width = _fixed_ints(np.where(valid, lengths, -1))
        return [blob, starts, s_width, sizes, z_width]

    def sql(self, p):
        if self.words is not None:
            n_code = len(p) - len(self.words)
            cases = " ".join(f"WHEN {k} THEN {w}" for k, w in enumerate(p[n_code:])) or "WHEN -1 THEN NULL"  # all null
            return f"CASE {self.codes.sql(p[:n_code])} {cases} END"
        start = f"CAST(substr({p[1]}, i * {p[2]} + 1, {p[2]}) AS INTEGER)"
        size = f"CAST(substr({p[3]}, i * {p[4]} + 1, {p[4]}) AS INTEGER)"
        value = f"CAST(substr({p[0]}, {start} + 1, {size}) AS TEXT)"
        return value if not self.array.null_count else f"CASE WHEN {size} < 0 THEN NULL ELSE {value} END"


class Range(_Column):
    def __init__(self, first: int, n: int):
        self.first, self.n = int(first), int(n)

    def __len__(self) -> int:
        return self.n

    def params(self, start, stop):
        return [self.first + start]

    def sql(self, p):
        return f"{p[0]} + i"


class Constant(_Column):
    def __init__(self, value):
        self.value = value

    def params(self, start, stop):
        return [self.value]

    def sql(self, p):
        return p[0]


def column(values) -> _Column:
    """The column kind of ``values``: Arrow strings -> texts, Arrow / numpy integers or booleans ->
    integers (Arrow nulls kept), numpy floats -> reals, a range -> a range, a list -> by its values."""
    if isinstance(values, _Column):
        return values
    if isinstance(values, range):
        if values.step != 1:
            raise ValueError("a range column steps by 1")
        return Range(values.start, len(values))
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        kind = values.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
            return Texts(values)
        if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
            valid = values.is_valid().to_numpy(zero_copy_only=False)
            return Ints(pc.fill_null(pc.cast(values, pa.int64()), 0).to_numpy(zero_copy_only=False), valid)
        if pa.types.is_floating(kind):
            return Reals(pc.fill_null(pc.cast(values, pa.float64()), np.nan).to_numpy(zero_copy_only=False))
        raise TypeError(f"no column kind for Arrow type {kind}")
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "iub":
            return Ints(values)
        if values.dtype.kind == "f":
            return Reals(values)
        raise TypeError(f"no column kind for numpy dtype {values.dtype}")
    values = list(values)
    if all(v is None or isinstance(v, str) for v in values):
        return Texts(pa.array(values, type=pa.string()))
    if all(v is None or isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return Ints([0 if v is None else v for v in values], [v is not None for v in values])
    if all(v is None or isinstance(v, (float, int)) for v in values):
        return Reals([np.nan if v is None else v for v in values])
    raise TypeError("a column's values are all texts, all integers or all numbers (None for null)")


class Table:
    """Columns of one length to insert into a table (see the module docstring)."""

    def __init__(self, table: str, columns: dict[str, object]):
        self.table = table
        self.names = list(columns)
        self.columns = [column(v) for v in columns.values()]
        lengths = {len(v) for v in columns.values() if not isinstance(v, (Constant, _Column))}
        lengths |= {len(c.values) for c in self.columns if isinstance(c, (Ints, Reals))}
        lengths |= {len(c) for c in self.columns if isinstance(c, Range)}
        if len(lengths) != 1:
            raise ValueError(f"the columns of {table} differ in length: {sorted(lengths)}")
        self.n = lengths.pop()

    def __len__(self) -> int:
        return self.n

    def insert(self, conn: sqlite3.Connection, batch: int = BATCH) -> None:
        """Insert every row, ``batch`` rows a statement (inside the caller's transaction)."""
        _sequence(conn, batch)
        for start in range(0, self.n, batch):
            stop = min(start + batch, self.n)
            params, exprs = [stop - start], []
            for col in self.columns:
                values = col.params(start, stop)
                first = len(params) + 1
                params += values
                exprs.append(col.sql([f"?{first + j}" for j in range(len(values))]))
            conn.execute(f"INSERT INTO {self.table} ({', '.join(self.names)}) SELECT {', '.join(exprs)} "
                         f"FROM temp.{SEQUENCE} WHERE i < ?1", params)
