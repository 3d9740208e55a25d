"""The units of the demo's buildings (一房一码): dwellings, dormitory rooms, shops, workshops, offices.

Each building's units are laid out floor by floor:

- residential kinds (住宅, 商住楼, 城中村自建房, 员工宿舍) hold their ``dwellings`` as dwellings
  (dormitory rooms in 员工宿舍) on the floors above any shops, the same number on every floor but the
  top one; low-rise 住宅 (9 floors or fewer) are cut into entrances (单元) of two flats a floor, other
  buildings have one entrance (``entrance`` null);
- shops (商铺): floors 1-2 of every 商住楼, every floor of a 商业 building, and the ground floor of
  a 住宅 or 城中村自建房 that hosts a business (and of some that do not);
- workshops: every floor of a 厂房; offices: every floor of a 办公楼;
- schools, hospitals and public facilities have no units (their businesses sit in the building).

A building has at least as many units of the kind its businesses need as it has businesses. Room
numbers are floor x 100 + door (``1203``: floor 12, door 03). Units are coded building code + a
4-digit sequence in (entrance, floor, room) order (see :mod:`citygrid.engine.houses.codes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from citygrid.engine.houses.codes import MAX_SEQUENCE, UNIT_PART_DIGITS
from citygrid.engine.houses.rentals import CONTROL_LEVELS, RENTAL_CLASSES, UNIT_KINDS

from .population import BUILDING_KINDS, Buildings, Businesses

#: The kind of unit a business takes, by the kind of its building (others: none, it sits in the building).
BUSINESS_UNIT = {"厂房": "workshop", "办公楼": "office", "商业": "shop", "商住楼": "shop", "住宅": "shop",
                 "城中村自建房": "shop"}
_RESIDENTIAL = {"住宅": "dwelling", "商住楼": "dwelling", "城中村自建房": "dwelling", "员工宿舍": "dormitory"}
#: Low-rise flats (at most this many floors) are cut into entrances of two flats a floor.
LOW_RISE_FLOORS = 9

#: Area in m² per unit kind (and building kind for dwellings): lognormal median, sigma, clip range.
_AREA = {
    ("dwelling", "住宅"): (86.0, 0.3, (45.0, 180.0)),
    ("dwelling", "商住楼"): (52.0, 0.35, (28.0, 120.0)),
    ("dwelling", "城中村自建房"): (26.0, 0.4, (12.0, 65.0)),
    ("dormitory", "员工宿舍"): (26.0, 0.2, (16.0, 42.0)),
    ("shop", None): (40.0, 0.6, (10.0, 300.0)),
    ("workshop", None): (800.0, 0.6, (150.0, 4000.0)),
    ("office", None): (150.0, 0.6, (30.0, 1000.0)),
}
#: Share of units whose area is unknown (not yet measured), by unit kind and building kind.
_UNKNOWN_AREA = {("dwelling", "城中村自建房"): 0.25, ("shop", None): 0.1}
#: Share of units let, and the rental class mix, by unit kind and building kind.
_RENTAL = {
    ("dwelling", "住宅"): (0.45, {"整租": 0.72, "合租": 0.28}),
    ("dwelling", "商住楼"): (0.6, {"整租": 0.6, "合租": 0.4}),
    ("dwelling", "城中村自建房"): (0.92, {"城中村出租房": 1.0}),
    ("dormitory", "员工宿舍"): (0.8, {"集体宿舍": 1.0}),
    ("shop", None): (0.75, {"商铺出租": 1.0}),
    ("workshop", None): (0.8, {"厂房出租": 1.0}),
    ("office", None): (0.6, {"办公出租": 1.0}),
}
#: Control level mix (绿色, 黄色, 红色) per rental class.
_LEVELS = {
    "整租": (0.9, 0.09, 0.01), "合租": (0.6, 0.35, 0.05), "城中村出租房": (0.7, 0.25, 0.05),
    "集体宿舍": (0.7, 0.25, 0.05), "商铺出租": (0.85, 0.13, 0.02), "厂房出租": (0.8, 0.17, 0.03),
    "办公出租": (0.9, 0.09, 0.01),
}
_BUILDING_KIND_CODE = {k.name: i for i, k in enumerate(BUILDING_KINDS)}


#: Unit kinds in the order of their small-integer codes in :class:`Units`.
KINDS = tuple(UNIT_KINDS)
_KIND_CODE = {k: i for i, k in enumerate(KINDS)}
_CLASS_CODE = {c: i for i, c in enumerate(RENTAL_CLASSES)}


@dataclass(frozen=True)
class Units:
    """Units sorted by code (building row, then sequence), as arrays of numbers:

    ``kind`` indexes :data:`KINDS`; ``entrance`` 0 means none; ``number`` is the room number (floor x
    100 + door); ``area_m2`` NaN means unknown; ``rental_class`` indexes
    :data:`~citygrid.engine.houses.rentals.RENTAL_CLASSES` and ``control_level``
    :data:`~citygrid.engine.houses.rentals.CONTROL_LEVELS` (-1: not let). ``code`` is an Arrow string array.
    """

    building: np.ndarray
    sequence: np.ndarray
    code: pa.Array
    kind: np.ndarray
    entrance: np.ndarray
    floor: np.ndarray
    number: np.ndarray
    area_m2: np.ndarray
    rental: np.ndarray
    rental_class: np.ndarray
    control_level: np.ndarray

    def __len__(self) -> int:
        return len(self.building)

    def names(self, column: str) -> pa.Array:
        """``kind``, ``rental_class`` or ``control_level`` as an Arrow string array (null for -1)."""
        names = {"kind": KINDS, "rental_class": RENTAL_CLASSES, "control_level": CONTROL_LEVELS}[column]
        codes = getattr(self, column).astype(np.int32)
        return pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), pa.array(names)).cast(pa.string())


def _rooms(buildings: np.ndarray, per_floor: np.ndarray, first_floor: np.ndarray, entrances: np.ndarray,
           total: np.ndarray) -> tuple[np.ndarray, ...]:
    """``total[k]`` rooms of building ``buildings[k]`` filled floor by floor from ``first_floor[k]``,
    ``per_floor[k]`` a floor split evenly over ``entrances[k]`` entrances: (building, entrance, floor, door)."""
    keep = total > 0
    buildings, per_floor, first_floor, entrances, total = (a[keep] for a in (buildings, per_floor, first_floor,
                                                                              entrances, total))
    starts = np.cumsum(total) - total
    k = np.arange(int(total.sum())) - np.repeat(starts, total)
    p = np.repeat(per_floor, total)
    e = np.repeat(entrances, total)
    q = p // e
    within = k % p
    entrance = np.where(e > 1, within // q + 1, 0)
    return np.repeat(buildings, total), entrance, np.repeat(first_floor, total) + k // p, within % q + 1


def lay_out_units(buildings: Buildings, businesses: Businesses, rng: np.random.Generator) -> Units:
    """The units of every building (see the module docstring), with areas and rental attributes."""
    n = len(buildings)
    kind = buildings.kind
    floors = buildings.floors.astype(np.int64)
    needs = np.array([BUSINESS_UNIT.get(k) for k in kind[businesses.building]], dtype=object)
    wanted = {unit_kind: np.bincount(businesses.building[needs == unit_kind], minlength=n)
              for unit_kind in ("shop", "workshop", "office")}

    # shops: how many floors (from the ground) and how many a floor
    shop_floors = np.zeros(n, dtype=np.int64)
    shops_per_floor = np.zeros(n, dtype=np.int64)
    draw_shops = rng.integers(1, 17, size=n)
    chance = rng.random(n)
    for building_kind, floors_of, low, high, share in (("商住楼", 2, 2, 8, 1.0), ("住宅", 1, 2, 6, 0.15),
                                                        ("城中村自建房", 1, 1, 3, 0.3), ("商业", 0, 4, 16, 1.0)):
        rows = np.flatnonzero((kind == building_kind) & ((wanted["shop"] > 0) | (chance < share)))
        shop_floors[rows] = floors[rows] if floors_of == 0 else floors_of
        drawn = low + draw_shops[rows] % (high - low + 1)
        shops_per_floor[rows] = np.maximum(drawn, -(-wanted["shop"][rows] // shop_floors[rows]))
    # workshops and offices: every floor of their buildings
    per_floor_draw = rng.integers(0, 1 << 30, size=n)
    work_per_floor = np.zeros(n, dtype=np.int64)
    for building_kind, unit_kind, low, high in (("厂房", "workshop", 1, 3), ("办公楼", "office", 2, 10)):
        rows = np.flatnonzero(kind == building_kind)
        drawn = low + per_floor_draw[rows] % (high - low + 1)
        work_per_floor[rows] = np.maximum(drawn, -(-wanted[unit_kind][rows] // floors[rows]))
    # dwellings above the shops
    residential = np.array([k in _RESIDENTIAL for k in kind])
    dwellings = np.where(residential, buildings.dwellings, 0).astype(np.int64)
    first_home = shop_floors + 1
    home_floors = np.maximum(floors - shop_floors, 1)
    per_floor = np.maximum(-(-dwellings // home_floors), 1)
    entrances = np.where((kind == "住宅") & (floors <= LOW_RISE_FLOORS), -(-per_floor // 2), 1)
    per_floor = entrances * -(-per_floor // entrances)

    rows = np.arange(n)
    ones = np.ones(n, dtype=np.int64)
    home_kind = np.array([_KIND_CODE[_RESIDENTIAL.get(k, "dwelling")] for k in kind], dtype=np.int8)
    work_kind = np.where(kind == "厂房", _KIND_CODE["workshop"], _KIND_CODE["office"]).astype(np.int8)
    has_work = np.isin(kind, ["厂房", "办公楼"])
    parts = []
    for (b, e, f, d), of_kind in (
        (_rooms(rows, per_floor, first_home, entrances, dwellings), home_kind),
        (_rooms(rows, np.maximum(shops_per_floor, 1), ones, ones, shop_floors * shops_per_floor),
         np.full(n, _KIND_CODE["shop"], dtype=np.int8)),
        (_rooms(rows, np.maximum(work_per_floor, 1), ones, ones, np.where(has_work, floors, 0) * work_per_floor),
         work_kind),
    ):
        parts.append((b, e, f, d, of_kind[b]))
    building, entrance, floor, door, unit_kind = (np.concatenate(column) for column in zip(*parts))
    if door.size and door.max() > 99:
        raise ValueError("a floor holds more than 99 rooms: room numbers have two digits for the door")

    order = np.lexsort((door, floor, entrance, building))
    building, entrance, floor, door, unit_kind = (a[order] for a in (building, entrance, floor, door, unit_kind))
    sequence = np.arange(len(building)) - np.searchsorted(building, building) + 1
    if sequence.size and sequence.max() > MAX_SEQUENCE:
        raise ValueError(f"a building has more than {MAX_SEQUENCE} units: unit parts have {UNIT_PART_DIGITS} digits")
    code = pc.binary_join_element_wise(
        pa.array(buildings.code, type=pa.string()).take(pa.array(building)),
        pc.utf8_lpad(pc.cast(pa.array(sequence), pa.string()), UNIT_PART_DIGITS, "0"), "")
    building_kind = np.array([_BUILDING_KIND_CODE[k] for k in kind], dtype=np.int8)[building]
    area, rental, rental_class, level = _attributes(unit_kind, building_kind, rng)
    return Units(building, sequence, code, unit_kind, entrance.astype(np.int32), floor.astype(np.int32),
                 (floor * 100 + door).astype(np.int32), area, rental, rental_class, level)


def _attributes(unit_kind: np.ndarray, building_kind: np.ndarray, rng: np.random.Generator):
    """Area (NaN: unknown), rental flag, rental class and control level codes of each unit."""
    n = len(unit_kind)
    area = np.full(n, np.nan)
    rental = np.zeros(n, dtype=bool)
    rental_class = np.full(n, -1, dtype=np.int8)
    level = np.full(n, -1, dtype=np.int8)
    normal = rng.standard_normal(n)
    uniform = rng.random(n)
    unknown = rng.random(n)
    pick = rng.random(n)
    level_draw = rng.random(n)
    for (k, b), (median, sigma, (low, high)) in _AREA.items():
        mine = unit_kind == _KIND_CODE[k]
        if b is not None:
            mine &= building_kind == _BUILDING_KIND_CODE[b]
        rows = np.flatnonzero(mine)
        area[rows] = np.round(np.clip(median * np.exp(sigma * normal[rows]), low, high), 2)
        area[rows[unknown[rows] < _UNKNOWN_AREA.get((k, b), 0.0)]] = np.nan
        share, classes = _RENTAL[(k, b)]
        let = rows[uniform[rows] < share]
        rental[let] = True
        codes = np.array([_CLASS_CODE[c] for c in classes], dtype=np.int8)
        cumulative = np.cumsum(list(classes.values()))
        rental_class[let] = codes[np.minimum(np.searchsorted(cumulative, pick[let] * cumulative[-1], side="right"),
                                             len(codes) - 1)]
    for name, mix in _LEVELS.items():
        rows = np.flatnonzero(rental_class == _CLASS_CODE[name])
        cumulative = np.cumsum(mix)
        level[rows] = np.minimum(np.searchsorted(cumulative, level_draw[rows], side="right"), 2)
    return area, rental, rental_class, level
