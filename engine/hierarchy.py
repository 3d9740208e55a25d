"""The area hierarchy, declared once: grid ⊂ community ⊂ street ⊂ district.

A grid layer carries, per grid row, the codes (and names) of the grid and of its parents in the
columns :data:`CODE_COLUMNS` (and :data:`NAME_COLUMNS`). Everything that follows an area's parents
(placing an event, jurisdiction, routing, escalation, the store's area filters, the API's grid
messages, re-indexing's output columns, the dashboards' aggregates per level) reads them from here.

:class:`Chains` holds them for one layer version: the chain of each row, the row of each grid code,
and dense integer ids per level (the codes of one level numbered 0..n-1 in the order they first
occur), the keys of per-area counts.

>>> class Layer:  # anything with ``column(name)`` and ``n_grids``
...     n_grids = 3
...     def column(self, name):
...         return {"grid_code": ["G1", "G2", "G3"], "community_code": ["C1", "C1", "C2"],
...                 "street_code": ["S1", "S1", "S1"], "district_code": ["D", "D", "D"]}[name]
>>> chains = Chains.of_layer(Layer())
>>> chains.chain_of_code("G3")
('G3', 'C2', 'S1', 'D')
>>> chains.chain_of_code("nowhere")
('nowhere', None, None, None)
>>> ids, codes = chains.level_ids("community")
>>> ids.tolist(), codes
([0, 0, 1], ['C1', 'C2'])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The levels, the smallest area first.
LEVELS = ("grid", "community", "street", "district")
#: The layer columns of an area's parent chain, the smallest area first.
CODE_COLUMNS = tuple(f"{level}_code" for level in LEVELS)
#: The layer columns of the areas' names, in the same order.
NAME_COLUMNS = tuple(f"{level}_name" for level in LEVELS)
#: The parents of a grid: (level, code column, name column), the nearest first.
PARENTS = tuple(zip(LEVELS[1:], CODE_COLUMNS[1:], NAME_COLUMNS[1:]))
#: The chain of a point placed in no grid.
NO_CHAIN: tuple[None, None, None, None] = (None, None, None, None)


def code_column(level: str) -> str:
    """The code column of ``level`` (one of :data:`LEVELS`)."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; levels are {', '.join(LEVELS)}")
    return f"{level}_code"


class Chains:
    """The parent chain of every grid row of one layer version, and the row of every grid code."""

    def __init__(self, columns: Sequence[Sequence[str | None]]):
        #: Per grid row, (grid, community, street, district) codes: one tuple shared by its events.
        self.chains: list[tuple] = list(zip(*columns))
        self.row_by_code: dict[str, int] = {chain[0]: row for row, chain in enumerate(self.chains)}

    @classmethod
    def of_layer(cls, layer, *, missing_as_none: bool = False) -> "Chains":
        """The chains of a layer (anything with ``column(name)`` and ``n_grids``); with
        ``missing_as_none`` a parent column the layer lacks reads as None (otherwise the layer's
        error for an unknown column)."""
        names = getattr(getattr(layer, "attributes", None), "column_names", None)
        columns = []
        for name in CODE_COLUMNS:
            if missing_as_none and names is not None and name not in names:
                columns.append([None] * layer.n_grids)
            else:
                values = layer.column(name)
                columns.append(values.tolist() if hasattr(values, "tolist") else list(values))
        return cls(columns)

    def __len__(self) -> int:
        return len(self.chains)

    def row_of(self, grid_code: str | None) -> int:
        """The row of a grid code, -1 for an unknown one."""
        return self.row_by_code.get(grid_code, -1)

    def chains_of(self, rows: np.ndarray) -> list[tuple]:
        """The chain of each row (:data:`NO_CHAIN` where the row is -1)."""
        chains = self.chains
        return [NO_CHAIN if r < 0 else chains[r] for r in np.asarray(rows).tolist()]

    def chain_of_code(self, grid_code: str | None) -> tuple:
        """The chain of a grid code; an unknown one is its own chain, without parents."""
        row = self.row_by_code.get(grid_code, -1)
        return self.chains[row] if row >= 0 else (grid_code, None, None, None)

    def level_ids(self, level: str) -> tuple[np.ndarray, list]:
        """Dense ids of ``level`` per grid row (int32, -1 where the row has no such area) and the
        code of each id (ids in the order codes first occur)."""
        k = LEVELS.index(code_column(level)[: -len("_code")])
        ids = np.full(len(self.chains), -1, dtype=np.int32)
        numbered: dict[str, int] = {}
        for row, chain in enumerate(self.chains):
            code = chain[k]
            if code is not None:
                ids[row] = numbered.setdefault(code, len(numbered))
        return ids, list(numbered)
