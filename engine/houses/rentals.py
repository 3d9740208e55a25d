"""Units and rental houses (出租屋): unit kinds, rental classes (分类), control levels (分级) and the
group-renting (群租) rule.

**Unit kinds** (``kind``): ``dwelling`` (住房: a flat, or a room or small flat of an urban-village
house), ``dormitory`` (宿舍: a room of a staff dormitory), ``shop`` (商铺), ``workshop`` (厂房: a
factory floor or part of one), ``office`` (办公用房).

**Rental classes** (``rental_class``, 分类: how a let unit is let), for units with ``rental`` true:

========================= ==============================================================
class                     meaning
========================= ==============================================================
``整租``                  a whole flat let to one household
``合租``                  a flat let room by room to separate tenants
``城中村出租房``          a room or small flat of an urban-village self-built house (城中村自建房)
``集体宿舍``              a dormitory room let to an employer for its staff
``商铺出租``              a shop let to a business
``厂房出租``              a workshop let to a business
``办公出租``              an office let to a business
========================= ==============================================================

**Control levels** (``control_level``, 分级, the red-yellow-green scheme districts use for rental
houses): ``绿色`` (放心: no risk found; routine check each quarter), ``黄色`` (关注: risk factors such
as shared letting, many tenants or an old village house; checked monthly), ``红色`` (严管: group
renting or a hazard found; checked weekly until put right).

**Group renting** (群租, :class:`GroupRentingRule`): a residential unit with more residents than
``max_residents`` (default 8), or whose known living area per resident is below
``min_area_per_person_m2`` (default 6 m²). The defaults follow the usual municipal rules for rented
housing (at most two people per room, at least 5-6 m² of living area each) read for a whole unit; the
registry's configuration may change them.

>>> rule = GroupRentingRule()
>>> rule.flags([3, 9, 5, 5], [80.0, 200.0, 20.0, float("nan")]).tolist()
[False, True, True, False]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from citygrid.engine.errors import InvalidInput

#: Unit kinds and their Chinese names.
UNIT_KINDS = {"dwelling": "住房", "dormitory": "宿舍", "shop": "商铺", "workshop": "厂房", "office": "办公用房"}
#: The kinds people live in (residents are registered only in these).
RESIDENTIAL_KINDS = ("dwelling", "dormitory")
RENTAL_CLASSES = ("整租", "合租", "城中村出租房", "集体宿舍", "商铺出租", "厂房出租", "办公出租")
#: Control levels from the lightest to the strictest.
CONTROL_LEVELS = ("绿色", "黄色", "红色")


@dataclass(frozen=True)
class GroupRentingRule:
    """When a residential unit counts as group-rented (群租); see the module docstring."""

    max_residents: int = 8
    min_area_per_person_m2: float = 6.0

    def __post_init__(self):
        if isinstance(self.max_residents, bool) or not isinstance(self.max_residents, int) or self.max_residents < 1:
            raise InvalidInput(f"max_residents must be a whole number >= 1, not {self.max_residents!r}")
        if not np.isfinite(self.min_area_per_person_m2) or self.min_area_per_person_m2 <= 0:
            raise InvalidInput(f"min_area_per_person_m2 must be a positive number, not {self.min_area_per_person_m2!r}")

    def too_many(self, residents) -> np.ndarray:
        """Units with more residents than :attr:`max_residents` (bool array)."""
        return np.asarray(residents) > self.max_residents

    def too_cramped(self, residents, area_m2) -> np.ndarray:
        """Occupied units whose known area per resident is below the minimum (bool array; an unknown
        area, NaN, is never cramped)."""
        residents = np.asarray(residents, dtype=np.float64)
        area = np.asarray(area_m2, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (residents > 0) & (area < self.min_area_per_person_m2 * residents)

    def flags(self, residents, area_m2) -> np.ndarray:
        """Units that count as group-rented by either test (bool array)."""
        return self.too_many(residents) | self.too_cramped(residents, area_m2)
