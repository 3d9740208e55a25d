"""Who lives and works in which unit: residents in dwellings and dormitory rooms, businesses in shops,
workshops and offices, and a few group-rented (群租) units planted on purpose.

Residents keep the building :func:`~.population.settle_residents` gave them. Within a building they
move in as households (1-5 people) into units drawn at random, never beyond what the default
group-renting rule allows (:class:`~citygrid.engine.houses.rentals.GroupRentingRule`: at most 8
residents and, where the area is known, at least 6 m² each), so the only group-rented units are the
planted ones:

- **crowded**: :data:`CROWDED` flats (in 住宅, 商住楼 or 城中村自建房 buildings with enough residents)
  get 10-15 residents, with room enough per person, so only the head count is over;
- **cramped**: :data:`CRAMPED` urban-village rooms of known area get 2-8 residents, one or two more
  than the area allows at 6 m² each.

The planted units are let (合租 or 城中村出租房). Businesses take a unit of the kind their building
offers them (see :data:`~.units.BUSINESS_UNIT`), one each while the building has free ones; a
business in a school, hospital, public facility or dormitory has no unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from citygrid.engine.houses.rentals import CONTROL_LEVELS, RENTAL_CLASSES, RESIDENTIAL_KINDS, GroupRentingRule

from .population import Buildings, Businesses, Residents
from .units import BUSINESS_UNIT, KINDS, Units

CROWDED = 8
CRAMPED = 6
HOUSEHOLD_SIZES = (1, 2, 3, 4, 5)
HOUSEHOLD_WEIGHTS = (0.3, 0.27, 0.2, 0.15, 0.08)


@dataclass(frozen=True)
class Occupancy:
    """The unit row of every resident, of every business (-1: none), and the planted units
    (``(unit row, reason)`` with reason ``residents`` or ``area``)."""

    resident_unit: np.ndarray
    business_unit: np.ndarray
    planted: list[tuple[int, str]]


def occupy(buildings: Buildings, units: Units, residents: Residents, businesses: Businesses, rule: GroupRentingRule,
           rng: np.random.Generator) -> Occupancy:
    """Place residents and businesses in units (see the module docstring); marks planted units as let."""
    n_buildings = len(buildings)
    homes = np.flatnonzero(np.isin(units.kind, [KINDS.index(k) for k in RESIDENTIAL_KINDS]))
    home_offsets = np.searchsorted(units.building[homes], np.arange(n_buildings + 1))
    people_offsets = np.searchsorted(residents.building, np.arange(n_buildings + 1))
    area = units.area_m2[homes]
    with np.errstate(invalid="ignore"):
        by_area = np.where(np.isnan(area), rule.max_residents, np.floor(area / rule.min_area_per_person_m2))
    room = np.minimum(rule.max_residents, by_area).astype(np.int64)  # free places per home (local rows)

    resident_unit = np.full(len(residents.resident_id), -1, dtype=np.int64)
    planted: list[tuple[int, str]] = []
    people = np.diff(people_offsets)
    kind = buildings.kind

    def plant(candidates: np.ndarray, count: int, pick_home, reason: str) -> None:
        done = 0
        for b in rng.permutation(candidates):
            if done == count:
                return
            lo, hi = home_offsets[b], home_offsets[b + 1]
            free = people_offsets[b] + np.flatnonzero(resident_unit[people_offsets[b]:people_offsets[b + 1]] < 0)
            choice = pick_home(np.arange(lo, hi), free.size)
            if choice is None:
                continue
            home, n = choice
            resident_unit[free[:n]] = homes[home]
            room[home] = 0
            planted.append((int(homes[home]), reason))
            done += 1

    def crowded_home(local: np.ndarray, available: int):
        n = int(rng.integers(rule.max_residents + 2, rule.max_residents + 8))
        fits = local[(area[local] >= n * rule.min_area_per_person_m2) & (room[local] > 0)]
        if available < n or fits.size == 0:
            return None
        return int(rng.choice(fits)), n

    def cramped_home(local: np.ndarray, available: int):
        known = local[~np.isnan(area[local]) & (room[local] > 0)]
        if known.size == 0:
            return None
        home = int(rng.choice(known))
        n = int(np.floor(area[home] / rule.min_area_per_person_m2)) + int(rng.integers(1, 3))
        if n > rule.max_residents or n > available or n < 2:
            return None
        return home, n

    villages_and_flats = np.flatnonzero(np.isin(kind, ["住宅", "商住楼", "城中村自建房"]) & (people > rule.max_residents + 1))
    plant(villages_and_flats, CROWDED, crowded_home, "residents")
    village_houses = np.flatnonzero((kind == "城中村自建房") & (people >= 3))
    plant(village_houses, CRAMPED, cramped_home, "area")

    sizes = rng.choice(np.array(HOUSEHOLD_SIZES), size=len(resident_unit) + 1,
                       p=np.array(HOUSEHOLD_WEIGHTS) / sum(HOUSEHOLD_WEIGHTS)).tolist()
    shuffled = np.lexsort((rng.random(homes.size), units.building[homes]))  # homes in random order per building
    next_size = 0
    for b in np.flatnonzero(people > 0):
        lo, hi = home_offsets[b], home_offsets[b + 1]
        waiting = people_offsets[b] + np.flatnonzero(resident_unit[people_offsets[b]:people_offsets[b + 1]] < 0)
        if waiting.size == 0:
            continue
        order = shuffled[lo:hi]
        at = 0
        k = 0
        while at < waiting.size:
            household = min(sizes[next_size], waiting.size - at)
            next_size = (next_size + 1) % len(sizes)
            while household > 0:
                if k >= order.size:  # every home visited once: fill the ones with room left
                    if room[order].sum() == 0:  # over the rule, never silently
                        raise ValueError(f"building {buildings.code[b]} has more residents than its units may hold")
                    k = 0
                home = order[k]
                take = min(household, int(room[home]))
                if take == 0:
                    k += 1
                    continue
                resident_unit[waiting[at:at + take]] = homes[home]
                room[home] -= take
                at += take
                household -= take
                k += 1  # the next household moves in next door
    for unit, _ in planted:
        units.rental[unit] = True
        village = kind[units.building[unit]] == "城中村自建房"
        units.rental_class[unit] = RENTAL_CLASSES.index("城中村出租房" if village else "合租")
        if units.control_level[unit] < 0:
            units.control_level[unit] = CONTROL_LEVELS.index("黄色")
    return Occupancy(resident_unit, _place_businesses(units, businesses, kind, n_buildings, rng), planted)


def _place_businesses(units: Units, businesses: Businesses, kind: np.ndarray, n_buildings: int,
                      rng: np.random.Generator) -> np.ndarray:
    """One unit of the fitting kind per business while the building has free ones, else a shared one."""
    out = np.full(len(businesses.business_id), -1, dtype=np.int64)
    needs = np.array([BUSINESS_UNIT.get(k) for k in kind[businesses.building]], dtype=object)
    offsets = np.searchsorted(businesses.building, np.arange(n_buildings + 1))
    unit_offsets = np.searchsorted(units.building, np.arange(n_buildings + 1))
    for b in np.flatnonzero(np.diff(offsets) > 0):
        lo, hi = offsets[b], offsets[b + 1]
        need = needs[lo]
        if need is None:
            continue
        fitting = unit_offsets[b] + np.flatnonzero(units.kind[unit_offsets[b]:unit_offsets[b + 1]] == KINDS.index(need))
        if fitting.size == 0:
            continue
        chosen = rng.permutation(fitting)
        out[lo:hi] = chosen[np.arange(hi - lo) % chosen.size]
    return out
