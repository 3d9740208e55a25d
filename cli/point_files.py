"""Files of points for ``citygrid assign``: which formats, reading them in batches (CSV columns typed
once for the whole file), and turning a coordinate column into doubles without failing on a bad cell.

A CSV file is read twice. The first pass types every column from all its values, so no type guessed
from the first block can fail on a later one: a column is ``int64`` when every value is an integer
(no leading zero, within 64 bits), ``float64`` when every value is a finite decimal number, text
otherwise (codes such as ``007`` keep their zeros; ``inf`` and ``nan`` are no numbers here). Cells reading ``NA``,
``NULL``, an empty string … (:data:`NULL_TEXT`) are null in a numeric column and left as written in
a text column. The second pass converts each batch with the same Arrow casts.

>>> column = pa.array(["114.05", " 22.5", "+114.1", "abc", None, "NaN"])
>>> coordinate_values(column).tolist()
[114.05, 22.5, 114.1, nan, nan, nan]
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.parquet as pq

from citygrid.engine.errors import InvalidInput

#: Output formats by file suffix; an input may also be a ``.txt`` CSV file.
OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
INPUT_FORMATS = {**OUTPUT_FORMATS, ".txt": "csv"}
#: Text that means "no value" in a CSV cell (in a coordinate column, an invalid point, not an error).
NULL_TEXT = ["", "NA", "N/A", "NaN", "nan", "NULL", "null", "None", "-"]
#: Rows per batch read, assigned and written.
BATCH_ROWS = 1 << 20
_CSV_BLOCK_BYTES = 64 << 20
#: Values of a column tried as numbers before all of them are.
_SAMPLE = 1000

#: What a coordinate cell may look like (around its spaces): more lenient than a numeric column.
_COORDINATE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def format_of(path: Path, role: str) -> str:
    """``parquet`` or ``csv`` by the suffix of an ``input`` or ``output`` file; :class:`InvalidInput`
    naming the accepted suffixes otherwise."""
    formats = OUTPUT_FORMATS if role == "output" else INPUT_FORMATS
    suffix = path.suffix.lower()
    if suffix not in formats:
        raise InvalidInput(f"{role} file {path}: the suffix {suffix or '(none)'!r} is not one this command "
                           f"reads or writes; use {', '.join(formats)}")
    return formats[suffix]


def column_names(path: Path, fmt: str) -> list[str]:
    """The columns of a point file, from its header or schema (its rows are not read)."""
    if fmt == "csv":
        return csv_header(path)
    try:
        return pq.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"{path}: cannot read it as Parquet ({exc})") from None


def read_points(path: Path, fmt: str) -> tuple[Iterator[pa.RecordBatch], pa.Schema, int | None]:
    """(batches, schema, number of rows or None) of a point file, streamed."""
    if fmt == "parquet":
        try:
            source = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(f"{path}: cannot read it as Parquet ({exc})") from None
        return source.iter_batches(batch_size=BATCH_ROWS), source.schema_arrow, source.metadata.num_rows
    header = csv_header(path)
    schema = pa.schema([(name, _csv_type(kind)) for name, kind in _csv_kinds(path, header).items()])
    return (_typed(batch, schema) for batch in _csv_text_batches(path, header)), schema, None


def csv_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = next(csv.reader(fh), None)
    if not header:
        raise InvalidInput(f"{path}: the CSV file is empty (no header row)")
    if len(set(header)) < len(header):
        repeated = sorted({name for name in header if header.count(name) > 1})
        raise InvalidInput(f"{path}: the header names column(s) {', '.join(repeated)} more than once")
    return header


def coordinate_values(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A coordinate column as float64: numbers as they are, text parsed, anything else (a null, an
    unparsable cell) NaN, which makes the point invalid."""
    kind = column.type
    if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_null(kind):
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise InvalidInput(f"coordinate column of type {kind} is neither numeric nor text")
    text = pc.utf8_trim_whitespace(column)
    parsable = pc.match_substring_regex(text, _COORDINATE)
    text = pc.replace_substring_regex(pc.if_else(parsable, text, None), r"^\+", "")
    return pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)


# ---------------------------------------------------------------------- CSV


def _csv_text_batches(path: Path, header: list[str]) -> Iterator[pa.RecordBatch]:
    """The file's batches, every column as text exactly as written."""
    try:
        reader = pv.open_csv(
            path,
            read_options=pv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
            convert_options=pv.ConvertOptions(column_types={name: pa.string() for name in header},
                                              strings_can_be_null=False),
        )
    except pa.ArrowInvalid as exc:
        raise InvalidInput(f"{path}: cannot read it as CSV ({exc})") from None
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:
            raise InvalidInput(f"{path}: cannot read it as CSV ({exc})") from None


def _csv_kinds(path: Path, header: list[str]) -> dict[str, str]:
    """The first pass: ``int``, ``float`` or ``text`` for each column, from all its values."""
    kinds = dict.fromkeys(header, "int")
    seen = dict.fromkeys(header, False)
    for batch in _csv_text_batches(path, header):
        for name in header:
            if kinds[name] == "text":
                continue
            values = pc.drop_null(_nulled(batch.column(name)))
            if len(values) == 0:
                continue
            seen[name] = True
            kinds[name] = _narrowest(values, kinds[name])
    return {name: kind if seen[name] else "text" for name, kind in kinds.items()}


def _narrowest(values: pa.Array, kind: str) -> str:
    """The narrowest kind at least as wide as ``kind`` that holds every value (none null).

    A cast that fails is slow in Arrow (seconds a million values), so it is tried only where it is
    likely to pass: integers after a check of their characters, doubles on a sample first."""
    if _leading_zero(values).as_py():
        return "text"  # a code such as 007 (or 0x1F, which Arrow would read as hex)
    if kind == "int" and pc.all(pc.utf8_is_digit(pc.utf8_ltrim(values, "-"))).as_py():
        try:
            pc.cast(values, pa.int64())
            return "int"
        except (pa.ArrowInvalid, OverflowError):
            return "text"  # digits beyond 64 bits: an id, kept exactly
    try:
        pc.cast(values.slice(0, _SAMPLE), pa.float64())
        parsed = pc.cast(values, pa.float64())
    except pa.ArrowInvalid:
        return "text"
    # Arrow also reads "inf", "nan" and "1e999" as doubles: such a column is text.
    return "float" if pc.all(pc.is_finite(parsed)).as_py() else "text"


def _leading_zero(values: pa.Array) -> pa.BooleanScalar:
    """Whether a value starts with a zero followed by anything but a decimal point (``-`` aside)."""
    unsigned = pc.utf8_ltrim(values, "-")
    return pc.any(pc.and_(pc.starts_with(unsigned, "0"),
                          pc.and_(pc.greater(pc.utf8_length(unsigned), 1), pc.invert(pc.starts_with(unsigned, "0.")))))


def _csv_type(kind: str) -> pa.DataType:
    return {"int": pa.int64(), "float": pa.float64(), "text": pa.string()}[kind]


def _nulled(column: pa.Array) -> pa.Array:
    return pc.if_else(pc.is_in(column, pa.array(NULL_TEXT)), None, column)


def _typed(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    columns = [batch.column(f.name) if pa.types.is_string(f.type) else pc.cast(_nulled(batch.column(f.name)), f.type)
               for f in schema]
    return pa.RecordBatch.from_arrays(columns, schema=schema)
