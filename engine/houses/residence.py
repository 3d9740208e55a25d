"""Residence: who lives in which unit (以房管人). Moves in (入住登记) and out (退租 / 迁出) with dates
and history, a resident in one unit at a time, the residents of a unit, building or area, and
businesses (法人) of a building.

:class:`Residences` is a part of :class:`~citygrid.engine.houses.registry.HouseRegistry`; it
works on the registry's connection, lock and counts (changed only after a commit). It reads personal
data without checking who asks: the service (:mod:`.service`) checks roles and audits.
"""

from __future__ import annotations

import numpy as np

from citygrid.engine.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from citygrid.engine.houses import loading as L
from citygrid.engine.houses.census import LEVELS
from citygrid.engine.houses.codes import parse_unit_code
from citygrid.engine.houses.dates import local_date
from citygrid.engine.houses.records import Business, Residence, Resident
from citygrid.engine.houses.rentals import RESIDENTIAL_KINDS
from citygrid.engine.houses.store import AREA_COLUMNS, next_id, transaction


class Residences:
    """Moves and residents (mixed into :class:`~citygrid.engine.houses.registry.HouseRegistry`)."""

    def _resident_row(self, resident_id: str):
        return self._conn.execute("SELECT id, registered, birth_year FROM house_residents WHERE resident_id = ?",
                                  (str(resident_id).strip(),)).fetchone()

    def move_in(self, resident_id: str, unit_code: str, on=None, *, recorded_by: str, name: str | None = None,
                gender: str | None = None, birth_year: int | None = None, registered: bool | None = None
                ) -> Residence:
        """Register ``resident_id`` as living in ``unit_code`` from ``on`` (入住登记; default today). A
        resident new to the registry needs ``name``, ``birth_year`` and ``registered``. A resident
        living elsewhere moves out of that unit the same day (one unit at a time)."""
        on = local_date(on, "move-in date") if on is not None else self.today()
        if on > self.today():
            raise InvalidInput(f"the move-in date {on} is in the future (today is {self.today()})")
        unit_code = parse_unit_code(unit_code).code
        resident_id = str(resident_id).strip()
        if not resident_id:
            raise InvalidInput("a resident id is needed")
        with self._lock:
            unit = self._conn.execute("SELECT id, kind, removed_on FROM house_units WHERE code = ?",
                                      (unit_code,)).fetchone()
            if unit is None:
                raise NotFound(f"no unit has the code {unit_code}")
            if unit[2] is not None:
                raise PreconditionFailed(f"unit {unit_code} was removed on {unit[2]}: nobody can move in")
            if unit[1] not in RESIDENTIAL_KINDS:
                raise PreconditionFailed(f"unit {unit_code} is a {unit[1]}: people are registered only in "
                                         f"{' or '.join(RESIDENTIAL_KINDS)} units")
            person = self._resident_row(resident_id)
            if person is None:
                if name is None or birth_year is None or registered is None:
                    raise InvalidInput(f"resident {resident_id} is new to the registry: give name, birth_year and "
                                       f"registered (户籍 or not)")
                if not str(name).strip():
                    raise InvalidInput("a resident's name may not be blank")
                if isinstance(birth_year, bool) or not isinstance(birth_year, (int, np.integer)) or \
                        not L.BIRTH_YEARS[0] <= birth_year <= int(on[:4]):
                    raise InvalidInput(f"birth_year must be a year from {L.BIRTH_YEARS[0]} to {on[:4]}, not {birth_year!r}")
            current = None if person is None else self._conn.execute(
                "SELECT id, unit_id, moved_in FROM house_residence WHERE resident = ? AND moved_out IS NULL",
                (person[0],)).fetchone()
            if current is not None:
                if current[1] == unit[0]:
                    raise Conflict(f"resident {resident_id} already lives in unit {unit_code} (since {current[2]})")
                if on < current[2]:
                    raise InvalidInput(f"resident {resident_id} moved into their present unit on {current[2]}: "
                                       f"a move on {on} cannot come before it")
            with transaction(self._conn):
                if person is None:
                    rid = next_id(self._conn, "house_residents")
                    self._conn.execute("INSERT INTO house_residents (id, resident_id, name, gender, birth_year, "
                                       "registered) VALUES (?,?,?,?,?,?)",
                                       (rid, resident_id, str(name).strip(), gender, int(birth_year), int(bool(registered))))
                else:
                    rid = person[0]
                if current is not None:
                    self._conn.execute("UPDATE house_residence SET moved_out = ? WHERE id = ?", (on, current[0]))
                self._conn.execute("INSERT INTO house_residence (id, resident, unit_id, moved_in, recorded_by) "
                                   "VALUES (?,?,?,?,?)", (next_id(self._conn, "house_residence"), rid, unit[0], on,
                                                          recorded_by))
            if person is None:
                self._census.add_residents([-1], [int(birth_year)], [bool(registered)])
            self._census.move(rid, unit[0])
            return Residence(resident_id, unit_code, on, None, recorded_by)

    def move_out(self, resident_id: str, on=None, *, recorded_by: str) -> Residence:
        """End ``resident_id``'s present stay on ``on`` (退租 / 迁出; default today)."""
        on = local_date(on, "move-out date") if on is not None else self.today()
        if on > self.today():
            raise InvalidInput(f"the move-out date {on} is in the future (today is {self.today()})")
        with self._lock:
            person = self._resident_row(resident_id)
            if person is None:
                raise NotFound(f"no resident has the id {resident_id!r}")
            current = self._conn.execute(
                "SELECT h.id, u.code, h.moved_in, h.recorded_by FROM house_residence h JOIN house_units u "
                "ON u.id = h.unit_id WHERE h.resident = ? AND h.moved_out IS NULL", (person[0],)).fetchone()
            if current is None:
                raise PreconditionFailed(f"resident {resident_id} lives in no unit of the registry now")
            if on < current[2]:
                raise InvalidInput(f"resident {resident_id} moved in on {current[2]}: they cannot move out on {on}")
            with transaction(self._conn):
                self._conn.execute("UPDATE house_residence SET moved_out = ? WHERE id = ?", (on, current[0]))
            self._census.move(person[0], -1)
            return Residence(str(resident_id).strip(), current[1], current[2], on, current[3])

    def history(self, resident_id: str) -> list[Residence]:
        """Every stay of a resident, oldest first (personal data: the service audits the read)."""
        with self._lock:
            person = self._resident_row(resident_id)
            if person is None:
                raise NotFound(f"no resident has the id {resident_id!r}")
            rows = self._conn.execute(
                "SELECT u.code, h.moved_in, h.moved_out, h.recorded_by FROM house_residence h JOIN house_units u "
                "ON u.id = h.unit_id WHERE h.resident = ? ORDER BY h.moved_in, h.id", (person[0],)).fetchall()
            return [Residence(str(resident_id).strip(), *r) for r in rows]

    def residents(self, level: str, code: str, *, limit: int = 10_000,
                  after: tuple[str, str] | None = None) -> list[Resident]:
        """The residents living now in a unit, building, grid, community, street or district, in
        (unit code, resident id) order; with ``after`` (a unit code and resident id), those after it
        (personal data: read it through the service, which checks and audits)."""
        where = {"unit": "u.code = ?", "building": "b.code = ?"}.get(level)
        if where is None:
            column = AREA_COLUMNS.get(level)
            if column is None:
                raise InvalidInput(f"unknown level {level!r}; levels are unit, building, {', '.join(LEVELS)}")
            where = f"b.{column} = ?"
        with self._lock:
            rows = self._conn.execute(
                "SELECT r.resident_id, r.name, r.gender, r.birth_year, r.registered, u.code, b.code, b.grid_code, "
                "h.moved_in FROM house_residence h JOIN house_residents r ON r.id = h.resident "
                "JOIN house_units u ON u.id = h.unit_id JOIN house_buildings b ON b.id = u.building_id "
                f"WHERE h.moved_out IS NULL AND {where} {'AND (u.code, r.resident_id) > (?, ?)' if after else ''} "
                "ORDER BY u.code, r.resident_id LIMIT ?",
                (str(code).strip(), *(after or ()), int(limit))).fetchall()
        return [Resident(r[0], r[1], r[2], r[3], bool(r[4]), *r[5:]) for r in rows]

    def resident_chain(self, resident_id: str) -> tuple[str | None, ...] | None:
        """The current areas (grid, community, street, district) of a resident's home; None when they
        live in no unit now."""
        with self._lock:
            return self._conn.execute(
                "SELECT b.grid_code, b.community_code, b.street_code, b.district_code FROM house_residents r "
                "JOIN house_residence h ON h.resident = r.id AND h.moved_out IS NULL JOIN house_units u "
                "ON u.id = h.unit_id JOIN house_buildings b ON b.id = u.building_id WHERE r.resident_id = ?",
                (str(resident_id).strip(),)).fetchone()

    def area_chain(self, level: str, code: str) -> tuple[str, ...]:
        """The parent chain (smallest first) of a current grid, community, street or district, as the
        registry's buildings give it; just ``(code,)`` when no building stands in it."""
        column = AREA_COLUMNS.get(level)
        if column is None:
            raise InvalidInput(f"unknown area level {level!r}; levels are {', '.join(LEVELS)}")
        columns = list(AREA_COLUMNS.values())
        with self._lock:
            row = self._conn.execute(f"SELECT {', '.join(columns[LEVELS.index(level):])} FROM house_buildings "
                                     f"WHERE {column} = ? LIMIT 1", (str(code).strip(),)).fetchone()
        return tuple(c for c in row if c is not None) if row else (str(code).strip(),)

    def businesses_of(self, building_code: str) -> list[Business]:
        bid = self.building_id(building_code)
        with self._lock:
            rows = self._conn.execute(
                "SELECT z.business_id, z.name, z.industry, b.code, u.code FROM house_businesses z JOIN house_buildings b "
                "ON b.id = z.building_id LEFT JOIN house_units u ON u.id = z.unit_id WHERE z.building_id = ? "
                "ORDER BY z.business_id", (bid,)).fetchall()
        return [Business(*r) for r in rows]

