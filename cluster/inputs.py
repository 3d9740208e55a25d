"""The input of a batch job: a Parquet file or a directory of them, read in slices of row groups.

Every row has an id: the value of the caller's id column when the input has one, else its position in
the dataset (files in path order, rows in file order, from 0). A slice is a run of whole row groups of
one file with the id of its first row, so any task on any node can read its own rows from a path the
nodes share (a network file system or a mounted bucket) and number them without asking anyone.

The job records the files' sizes and modification times (:meth:`InputDataset.fingerprint`): a job
resumed after the input changed would mix two inputs, so resuming then is refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from citygrid.engine.errors import InvalidInput, NotFound, PreconditionFailed


@dataclass(frozen=True)
class InputFile:
    path: str
    size: int
    mtime_ns: int
    row_group_rows: tuple[int, ...]

    @property
    def rows(self) -> int:
        return sum(self.row_group_rows)


@dataclass(frozen=True)
class InputSlice:
    """Whole row groups of one file, and the position id of its first row."""

    path: str
    row_groups: tuple[int, ...]
    first_row: int
    rows: int


@dataclass(frozen=True)
class InputDataset:
    root: str
    files: tuple[InputFile, ...]
    schema: pa.Schema

    @property
    def n_rows(self) -> int:
        return sum(f.rows for f in self.files)

    def slices(self, target_rows: int) -> list[InputSlice]:
        """Runs of consecutive row groups of about ``target_rows`` rows (never splitting a row group
        nor crossing a file), in id order."""
        out, first = [], 0
        for f in self.files:
            groups: list[int] = []
            rows = 0
            for g, n in enumerate(f.row_group_rows):
                if groups and rows + n > target_rows:
                    out.append(InputSlice(f.path, tuple(groups), first, rows))
                    first += rows
                    groups, rows = [], 0
                groups.append(g)
                rows += n
            if groups:
                out.append(InputSlice(f.path, tuple(groups), first, rows))
                first += rows
        return out

    def fingerprint(self) -> list[list]:
        """``[relative path, size, mtime_ns, rows]`` per file: what a resumed job checks."""
        root = Path(self.root)
        base = root if root.is_dir() else root.parent
        return [[os.path.relpath(f.path, base), f.size, f.mtime_ns, f.rows] for f in self.files]

    def check_unchanged(self, fingerprint: list[list]) -> None:
        if self.fingerprint() != [list(x) for x in fingerprint]:
            raise PreconditionFailed(
                f"the input {self.root} changed since the job started (files, sizes or times differ); "
                "start a new job instead of resuming this one"
            )


def open_input(path: str | os.PathLike, *, columns: tuple[str, ...] = ()) -> InputDataset:
    """Find the Parquet files at ``path`` (a file, or every ``*.parquet`` under a directory except
    hidden ``.`` and ``_`` ones) and check they share one schema holding ``columns``."""
    root = Path(path)
    if not root.exists():
        raise NotFound(f"no input at {root}")
    if root.is_dir():
        paths = sorted(
            p for p in root.rglob("*.parquet")
            if not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
        )
        if not paths:
            raise InvalidInput(f"{root} holds no .parquet files")
    else:
        paths = [root]
    files, schema = [], None
    for p in paths:
        try:
            meta = pq.ParquetFile(p)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(f"{p}: cannot read it as Parquet ({exc})") from None
        file_schema = meta.schema_arrow
        if schema is None:
            schema = file_schema
        elif not file_schema.equals(schema, check_metadata=False):
            raise InvalidInput(
                f"{p} has another schema than {paths[0]}: every file of an input must have the same columns"
            )
        st = p.stat()
        groups = tuple(meta.metadata.row_group(i).num_rows for i in range(meta.metadata.num_row_groups))
        files.append(InputFile(str(p.resolve()), st.st_size, st.st_mtime_ns, groups))
    for name in columns:
        if name not in schema.names:
            raise InvalidInput(f"the input has no column {name!r}; it has {schema.names}")
    return InputDataset(str(root.resolve()), tuple(files), schema)


def read_slice(piece: InputSlice, columns: list[str] | None = None) -> pa.Table:
    """The rows of a slice (all columns, or ``columns``)."""
    with pq.ParquetFile(piece.path) as f:
        return f.read_row_groups(list(piece.row_groups), columns=columns, use_threads=False)


def coordinates(table: pa.Table, lng_col: str, lat_col: str) -> tuple[np.ndarray, np.ndarray]:
    """The lng and lat columns as float64 arrays (nulls become NaN, so they are counted invalid)."""
    return float_column(table, lng_col), float_column(table, lat_col)


def row_ids(table: pa.Table, piece: InputSlice, row_id_col: str) -> np.ndarray:
    """The caller's ids (int64) when the table has ``row_id_col``, else the rows' positions."""
    if row_id_col in table.column_names:
        column = table.column(row_id_col)
        if column.null_count:
            raise InvalidInput(f"the id column {row_id_col!r} has nulls in {piece.path}; every row needs an id")
        try:
            return column.cast(pa.int64()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InvalidInput(f"the id column {row_id_col!r} is not integral ({column.type})") from None
    return np.arange(piece.first_row, piece.first_row + table.num_rows, dtype=np.int64)


def with_columns(table: pa.Table, columns: dict[str, np.ndarray]) -> pa.Table:
    """``table`` with the named float64 columns replaced by the same values as one chunk each (a
    column of another type, or with nulls, is left as it is: its values would change)."""
    for name, values in columns.items():
        i = table.schema.get_field_index(name)
        if table.schema.field(i).type == pa.float64() and table.column(i).null_count == 0:
            table = table.set_column(i, name, pa.array(values))
    return table


def float_column(table: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64 (nulls become NaN)."""
    column = table.column(name)
    if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        raise InvalidInput(f"coordinate column {name!r} holds {column.type}, not numbers")
    column = column.cast(pa.float64())
    if column.null_count:
        column = column.fill_null(float("nan"))
    return column.to_numpy()
