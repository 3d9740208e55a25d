"""The output columns of a re-indexing job: each row's grid code, status, parent chain and, with a
previous version, its previous grid code."""

from __future__ import annotations

from dataclasses import dataclass


import numpy as np
import pyarrow as pa

from citygrid.engine.layers.assignment import Status
from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.hierarchy import CODE_COLUMNS


#: Columns every output row gains (``previous_grid_code`` too when a previous version is given).
STATUS_COLUMN = "status"
PREVIOUS_COLUMN = "previous_grid_code"
#: Status names by code, the values of the ``status`` column (as ``citygrid assign`` writes them).
STATUS_NAMES = tuple(s.name.lower() for s in Status)
#: Prefix given to an input column whose name an output column takes (``grid_code`` -> ``input_grid_code``).
RENAMED_PREFIX = "input_"


@dataclass(frozen=True)
class _CodeColumn:
    """A code column of a layer by grid row: its distinct values (sorted, then ``None`` last) and
    ``of_row[g + 1]``, the position of grid row ``g``'s value (``of_row[0]``, for row -1, is ``None``'s)."""

    values: tuple
    of_row: np.ndarray

    @property
    def none(self) -> int:
        return len(self.values) - 1


def _code_column(layer: GridLayer, column: str) -> _CodeColumn:
    raw = layer.attributes.column(column).to_pylist()
    values = sorted({v for v in raw if v is not None})
    position = {v: i for i, v in enumerate(values)}
    none = len(values)
    of_row = np.array([none] + [position[v] if v is not None else none for v in raw], dtype=np.int32)
    return _CodeColumn(tuple(values) + (None,), of_row)


def _result_columns(layer: GridLayer, grid_rows: np.ndarray, status: np.ndarray, previous: GridLayer | None,
                    previous_rows: np.ndarray | None) -> dict[str, pa.Array]:
    """The columns a row gains, by name: the code columns (the partition column too: a reader takes
    it from the file, as text, see :mod:`citygrid.cluster.outputs`), the status and the previous grid
    code, as dictionary arrays (dictionaries of the values present only)."""
    codes = _GridCodes(layer, grid_rows)
    columns = {name: codes.column(name) for name in CODE_COLUMNS}
    columns[STATUS_COLUMN] = pa.DictionaryArray.from_arrays(
        pa.array(status.astype(np.int8)), pa.array(STATUS_NAMES, pa.string()))
    if previous is not None:
        columns[PREVIOUS_COLUMN] = _GridCodes(previous, previous_rows).column("grid_code")
    return columns


class _GridCodes:
    """Attribute columns of the grids of some rows, built with one pass over the rows per column: the
    grids present are numbered once (``local``), each column maps those few numbers to its values."""

    def __init__(self, layer: GridLayer, grid_rows: np.ndarray):
        self.layer = layer
        self.used = np.flatnonzero(np.bincount(grid_rows + 1, minlength=layer.n_grids + 1)[1:])
        number = np.full(layer.n_grids + 1, -1, dtype=np.int32)
        number[self.used + 1] = np.arange(len(self.used), dtype=np.int32)
        self.local = number[grid_rows + 1]  # -1: no grid

    def column(self, name: str) -> pa.DictionaryArray:
        """Column ``name`` per row (null: no grid, or a grid without that value)."""
        values = self.layer.attributes.column(name).combine_chunks().take(pa.array(self.used)).to_pylist()
        dictionary = sorted({v for v in values if v is not None})
        position = {v: i for i, v in enumerate(dictionary)}
        # One entry per grid present, then -1 for the rows without a grid (local number -1).
        lookup = np.array([position.get(v, -1) if v is not None else -1 for v in values] + [-1], dtype=np.int32)
        indices = lookup[self.local]
        missing = indices < 0
        array = pa.array(indices, mask=missing) if missing.any() else pa.array(indices)
        return pa.DictionaryArray.from_arrays(array, pa.array(dictionary, pa.string()))
