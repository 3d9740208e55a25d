"""The registry's counts in memory: who lives in which unit, and population, rental and
group-renting counts per unit, building, grid, community, street and district.

Derived state: rebuilt from the database when the registry opens, and changed only after a commit
(load, move in, move out, re-grid). Arrays are indexed by the rows' database ids (:mod:`.store`).

**Population columns** (:data:`POPULATION_COLUMNS`): registered (户籍) and non-registered (流动)
residents, each by age band. Age is the calendar year of the reference date minus the birth year;
the bands (:data:`AGE_BANDS`) are the statistical convention's 0-14 (少儿), 15-59 (劳动年龄) and 60+
(老年). The per-building counts are kept for one reference year and rebuilt when asked for another.

Areas are counted by the building's **current** grid, community and street (the layer version the
registry was last re-gridded on), never by the grid in the building's code.

>>> census = Census()
>>> census.add_buildings(["G1", "G1", "G2"], ["C1", "C1", "C1"], ["S1"] * 3, ["D"] * 3)
>>> census.add_units([0, 1, 2], ["dwelling"] * 3, [60.0, 20.0, float("nan")], [-1, 1, -1], [-1, 0, -1])
>>> census.add_residents([0, 1, 1, 2], [1990, 2015, 1950, 1980], [True, False, False, False])
>>> population = census.population("grid", 2025)
>>> population.codes, population.counts.tolist()
(['G1', 'G2'], [[0, 1, 0, 1, 0, 1], [0, 0, 0, 0, 1, 0]])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from citygrid.engine.errors import InvalidInput
from citygrid.engine.houses.rentals import CONTROL_LEVELS, RENTAL_CLASSES, RESIDENTIAL_KINDS, UNIT_KINDS, GroupRentingRule

#: Age bands: (label, lowest age, highest age or None).
AGE_BANDS = (("0-14", 0, 14), ("15-59", 15, 59), ("60+", 60, None))
#: Population columns: registered then non-registered, each by age band.
POPULATION_COLUMNS = tuple(f"{kind}_{band}" for kind in ("registered", "non_registered") for band, _, _ in AGE_BANDS)
#: Area levels, smallest first.
LEVELS = ("grid", "community", "street", "district")
KIND_CODES = {kind: k for k, kind in enumerate(UNIT_KINDS)}
_RESIDENTIAL_CODES = np.array([KIND_CODES[k] for k in RESIDENTIAL_KINDS], dtype=np.int8)
_BANDS = len(AGE_BANDS)


def age_band(birth_year, year: int) -> np.ndarray:
    """The age band (index into :data:`AGE_BANDS`) of each birth year in ``year``; ages below 0 (born
    after ``year``) count in the first band."""
    age = year - np.asarray(birth_year, dtype=np.int32)
    return (age >= AGE_BANDS[1][1]).astype(np.int8) + (age >= AGE_BANDS[2][1]).astype(np.int8)


@dataclass(frozen=True)
class AreaCounts:
    """Counts per area of one level: ``codes[i]`` has ``counts[i]`` (one column per ``columns``)."""

    level: str
    codes: list[str]
    columns: tuple[str, ...]
    counts: np.ndarray

    def as_dict(self) -> dict[str, dict[str, int]]:
        """``{area code: {column: count}}``."""
        return {code: dict(zip(self.columns, map(int, row))) for code, row in zip(self.codes, self.counts)}

    def totals(self) -> dict[str, int]:
        return dict(zip(self.columns, map(int, self.counts.sum(axis=0))))


class _Grown:
    """A growable 1-D array (capacity doubles)."""

    def __init__(self, dtype, fill):
        self.fill = fill
        self.data = np.full(0, fill, dtype=dtype)
        self.n = 0

    def extend(self, values) -> None:
        values = np.asarray(values, dtype=self.data.dtype)
        need = self.n + len(values)
        if need > len(self.data):
            grown = np.full(max(need, 2 * len(self.data), 16), self.fill, dtype=self.data.dtype)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n:need] = values
        self.n = need

    @property
    def view(self) -> np.ndarray:
        return self.data[: self.n]


class _Codes:
    """Area codes of one level, numbered in the order first seen."""

    def __init__(self):
        self.codes: list[str] = []
        self.index: dict[str, int] = {}

    def of(self, codes) -> np.ndarray:
        out = np.empty(len(codes), dtype=np.int32)
        index = self.index
        for k, code in enumerate(codes):
            i = index.get(code)
            if i is None:
                i = index[code] = len(self.codes)
                self.codes.append(code)
            out[k] = i
        return out


class Census:
    """Units, residents and the counts over them (see the module docstring). Not thread-safe: the
    registry guards it with its lock."""

    def __init__(self):
        self._levels = {level: _Codes() for level in LEVELS}
        self._building_area = {level: _Grown(np.int32, -1) for level in LEVELS}
        self._building_active = _Grown(np.bool_, False)
        self._building_units = _Grown(np.int32, 0)
        self._unit_building = _Grown(np.int32, -1)
        self._unit_kind = _Grown(np.int8, -1)
        self._unit_area = _Grown(np.float32, np.nan)
        self._unit_class = _Grown(np.int8, -1)
        self._unit_control = _Grown(np.int8, -1)
        self._unit_active = _Grown(np.bool_, False)
        self._unit_residents = _Grown(np.int32, 0)
        self._resident_unit = _Grown(np.int32, -1)
        self._resident_birth = _Grown(np.int16, 0)
        self._resident_registered = _Grown(np.bool_, False)
        self._year: int | None = None
        self._building_counts: np.ndarray | None = None
        #: per level: standing buildings sorted by area, where each area's run starts, and its area index
        self._orders: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        #: per level, for the year of the building counts: the areas' codes, their population columns
        #: and each area index's row there (-1: no standing building); kept up to date by each move
        self._area_counts: dict[str, tuple[list[str], np.ndarray, np.ndarray]] = {}
        #: Changes so far (buildings, units or residents added, a move, a re-grid, a demolition): what
        #: a reader that caches counts compares to know they are stale.
        self.changes = 0

    # ------------------------------------------------------------------ sizes

    @property
    def n_buildings(self) -> int:
        return self._building_active.n

    @property
    def n_units(self) -> int:
        return self._unit_building.n

    @property
    def n_residents(self) -> int:
        return self._resident_unit.n

    # ------------------------------------------------------------------ adding rows (ids in order)

    def add_buildings(self, grid_codes, community_codes, street_codes, district_codes, active=None) -> None:
        self.changes += 1
        n = len(grid_codes)
        for level, codes in zip(LEVELS, (grid_codes, community_codes, street_codes, district_codes)):
            self._building_area[level].extend(self._levels[level].of(codes))
        self._building_active.extend(np.ones(n, bool) if active is None else active)
        self._building_units.extend(np.zeros(n, np.int32))
        self._building_counts = None
        self._orders = {}
        self._area_counts = {}

    def add_units(self, building_ids, kinds, area_m2, rental_class, control_level, active=None) -> None:
        """``kinds`` as names or codes; ``rental_class`` / ``control_level`` as indexes into
        :data:`RENTAL_CLASSES` / :data:`CONTROL_LEVELS` (-1: not let)."""
        self.changes += 1
        building_ids = np.asarray(building_ids, dtype=np.int32)
        if len(building_ids) and (building_ids.min() < 0 or building_ids.max() >= self.n_buildings):
            raise InvalidInput("a unit names a building row the census does not hold")
        kinds = np.asarray(kinds)
        if kinds.dtype.kind in "OUS":
            kinds = np.array([KIND_CODES[k] for k in kinds.tolist()], dtype=np.int8)
        self._unit_building.extend(building_ids)
        self._unit_kind.extend(kinds)
        self._unit_area.extend(area_m2)
        self._unit_class.extend(rental_class)
        self._unit_control.extend(control_level)
        self._unit_active.extend(np.ones(len(building_ids), bool) if active is None else active)
        self._unit_residents.extend(np.zeros(len(building_ids), np.int32))
        standing = building_ids if active is None else building_ids[np.asarray(active, dtype=bool)]
        self._building_units.data[: self.n_buildings] += np.bincount(standing, minlength=self.n_buildings).astype(np.int32)

    def add_residents(self, unit_ids, birth_years, registered) -> None:
        """Residents (ids in order) living in ``unit_ids`` (-1: living in no unit of the registry)."""
        self.changes += 1
        unit_ids = np.asarray(unit_ids, dtype=np.int32)
        self._resident_unit.extend(unit_ids)
        self._resident_birth.extend(birth_years)
        self._resident_registered.extend(registered)
        living = unit_ids[unit_ids >= 0]
        self._unit_residents.data[: self.n_units] += np.bincount(living, minlength=self.n_units).astype(np.int32)
        self._building_counts = None
        self._area_counts = {}

    # ------------------------------------------------------------------ changes

    def move(self, resident: int, unit: int) -> None:
        """Resident ``resident`` now lives in ``unit`` (-1: nowhere in the registry)."""
        self.changes += 1
        old = int(self._resident_unit.data[resident])
        if old >= 0:
            self._unit_residents.data[old] -= 1
            self._count_building(resident, old, -1)
        self._resident_unit.data[resident] = unit
        if unit >= 0:
            self._unit_residents.data[unit] += 1
            self._count_building(resident, unit, +1)

    def _count_building(self, resident: int, unit: int, step: int) -> None:
        if self._building_counts is not None:
            band = int(age_band([self._resident_birth.data[resident]], self._year)[0])
            column = (0 if self._resident_registered.data[resident] else _BANDS) + band
            building = self._unit_building.data[unit]
            self._building_counts[building, column] += step
            for level, (_, sums, row_of) in self._area_counts.items():
                row = row_of[self._building_area[level].data[building]]
                if row >= 0:  # always, for a standing building
                    sums[row, column] += step

    def set_areas(self, building_ids, grid_codes, community_codes, street_codes, district_codes) -> None:
        """New current areas of some buildings (after a re-grid)."""
        self.changes += 1
        rows = np.asarray(building_ids, dtype=np.int64)
        for level, codes in zip(LEVELS, (grid_codes, community_codes, street_codes, district_codes)):
            self._building_area[level].data[rows] = self._levels[level].of(codes)
        self._orders = {}
        self._area_counts = {}

    def demolish(self, building: int) -> None:
        self.changes += 1
        self._building_active.data[building] = False
        self._building_units.data[building] = 0
        self._unit_active.data[self._unit_building.view == building] = False
        self._orders = {}
        self._area_counts = {}

    # ------------------------------------------------------------------ reads

    def building_units(self, building: int) -> int:
        """Units of a building that are not removed."""
        return int(self._building_units.data[building])

    def unit_residents(self, unit: int) -> int:
        return int(self._unit_residents.data[unit])

    def resident_unit(self, resident: int) -> int:
        return int(self._resident_unit.data[resident])

    def building_counts(self, year: int) -> np.ndarray:
        """Population columns per building (int32, one row per building id) in ``year``."""
        if self._building_counts is None or self._year != year:
            units = self._resident_unit.view
            living = units >= 0
            building = self._unit_building.view[units[living]].astype(np.int64)
            column = np.where(self._resident_registered.view[living], 0, _BANDS) + age_band(
                self._resident_birth.view[living], year)
            flat = np.bincount(building * len(POPULATION_COLUMNS) + column,
                               minlength=self.n_buildings * len(POPULATION_COLUMNS))
            self._building_counts = flat.reshape(self.n_buildings, len(POPULATION_COLUMNS)).astype(np.int32)
            self._year = year
            self._area_counts = {}
        return self._building_counts

    def area_codes(self, level: str) -> list[str]:
        self._check_level(level)
        return self._levels[level].codes

    def building_area(self, level: str) -> np.ndarray:
        """The area index (into :meth:`area_codes`) of every building at ``level``."""
        self._check_level(level)
        return self._building_area[level].view

    @staticmethod
    def _check_level(level: str) -> None:
        if level not in LEVELS:
            raise InvalidInput(f"unknown area level {level!r}; levels are {', '.join(LEVELS)}")

    def _order(self, level: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Standing buildings sorted by the code of their area of ``level``, the start of each area's
        run, and the areas' codes (kept until buildings are added, re-gridded or demolished)."""
        order = self._orders.get(level)
        if order is None:
            area = self.building_area(level)
            codes = self._levels[level].codes
            rank = np.empty(len(codes), dtype=np.int64)  # each area index's place in code order
            rank[np.argsort(np.array(codes, dtype=object), kind="stable")] = np.arange(len(codes))
            standing = np.flatnonzero(self._building_active.view)
            rows = standing[np.argsort(rank[area[standing]], kind="stable")]
            keys = area[rows]
            starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(rows) else np.empty(0, np.int64)
            order = self._orders[level] = (rows, starts, keys[starts])
        return order

    def _sum(self, level: str, per_building: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Columns of ``per_building`` summed per area of ``level`` over standing buildings, in area
        code order; areas with no standing building left out."""
        rows, starts, areas = self._order(level)
        if not len(rows):
            return [], np.zeros((0, per_building.shape[1]), dtype=np.int64)
        codes = self._levels[level].codes
        return [codes[a] for a in areas.tolist()], np.add.reduceat(per_building[rows], starts, axis=0, dtype=np.int64)

    def population(self, level: str, year: int) -> AreaCounts:
        """Population columns per area of ``level`` in ``year``: summed from the per-building counts
        once, then kept per area and moved by each move in or out (a read copies them)."""
        counts = self.building_counts(year)
        cached = self._area_counts.get(level)
        if cached is None:
            codes, sums = self._sum(level, counts)
            row_of = np.full(len(self._levels[level].codes) + 1, -1, dtype=np.int64)
            row_of[self._order(level)[2]] = np.arange(len(codes))
            cached = self._area_counts[level] = (codes, sums, row_of)
        codes, sums, _ = cached
        return AreaCounts(level, list(codes), POPULATION_COLUMNS, sums.copy())

    def building_population(self, building: int, year: int) -> dict[str, int]:
        return dict(zip(POPULATION_COLUMNS, map(int, self.building_counts(year)[building])))

    def rentals(self, level: str) -> AreaCounts:
        """Let units per area of ``level``: per rental class, per control level, and in all."""
        units = self._unit_active.view & (self._unit_class.view >= 0)
        building = self._unit_building.view[units]
        n_b = self.n_buildings
        columns = [f"class_{c}" for c in RENTAL_CLASSES] + [f"level_{c}" for c in CONTROL_LEVELS] + ["rental_units"]
        per_building = np.zeros((n_b, len(columns)), dtype=np.int64)
        for k in range(len(RENTAL_CLASSES)):
            per_building[:, k] = np.bincount(building[self._unit_class.view[units] == k], minlength=n_b)
        for k in range(len(CONTROL_LEVELS)):
            per_building[:, len(RENTAL_CLASSES) + k] = np.bincount(
                building[self._unit_control.view[units] == k], minlength=n_b)
        per_building[:, -1] = np.bincount(building, minlength=n_b)
        codes, counts = self._sum(level, per_building)
        return AreaCounts(level, codes, tuple(columns), counts)

    def group_renting(self, rule: GroupRentingRule) -> np.ndarray:
        """Unit ids the rule flags (residential, active units), ascending."""
        residential = self._unit_active.view & np.isin(self._unit_kind.view, _RESIDENTIAL_CODES)
        flags = rule.flags(self._unit_residents.view, self._unit_area.view.astype(np.float64)) & residential
        return np.flatnonzero(flags)

    def unit_building(self, units) -> np.ndarray:
        return self._unit_building.view[np.asarray(units, dtype=np.int64)]

    def units_in_areas(self, level: str, area_indexes) -> np.ndarray:
        """Whether each unit's building lies in one of ``area_indexes`` of ``level`` (bool per unit)."""
        inside = np.zeros(len(self.area_codes(level)) + 1, dtype=bool)
        inside[np.asarray(list(area_indexes), dtype=np.int64)] = True
        return inside[self.building_area(level)[self._unit_building.view]]
