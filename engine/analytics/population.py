"""Residents per grid, for rates per 1,000 residents.

A :class:`PopulationProvider` answers ``residents_by_grid()``; the demo's residents give it now
(:class:`ResidentsFile`), the house registry will later. Areas above the grid sum their grids
(over the active layer version's hierarchy)."""

from __future__ import annotations

from typing import Mapping, Protocol

from citygrid.engine.errors import InvalidInput

#: Digits of a grid code at the start of a building code (SCHEMA.md: building = grid + 4 digits).
GRID_CODE_LENGTH = 15


class PopulationProvider(Protocol):
    """Residents per grid. A provider whose counts change while the server runs (the house registry's)
    also offers ``generation() -> int``, which changes when they do; the analytics ask for the counts
    again then, and keep them otherwise."""

    def residents_by_grid(self) -> Mapping[str, int]:
        """Residents of each grid code (grids not named: unknown)."""


class StaticPopulation:
    """Residents per grid given as a mapping."""

    def __init__(self, residents: Mapping[str, int]):
        self._residents = dict(residents)

    def residents_by_grid(self) -> Mapping[str, int]:
        return self._residents


class ResidentsFile:
    """Residents per grid counted from a Parquet table of residents with a ``building_code`` (the
    demo's ``residents.parquet``: a building code starts with its grid's code). Every grid of
    ``grid_codes`` without residents counts 0 (known to be empty)."""

    def __init__(self, path, grid_codes=()):
        self.path = path
        self.grid_codes = list(grid_codes)

    def residents_by_grid(self) -> Mapping[str, int]:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        try:
            buildings = pq.read_table(self.path, columns=["building_code"]).column("building_code")
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidInput(f"cannot read residents from {self.path}: {exc}") from None
        grids = pc.utf8_slice_codeunits(buildings, 0, GRID_CODE_LENGTH)
        counts = pc.value_counts(grids)
        out = {code: 0 for code in self.grid_codes}
        out.update(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()))
        return out
