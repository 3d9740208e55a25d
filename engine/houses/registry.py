"""The building and unit registry (一楼一码、一房一码) and the people in it (以房管人).

:class:`HouseRegistry` keeps buildings, units, residents, their residence history and businesses in
the data directory's database (:mod:`.store`), with the counts over them in memory (:mod:`.census`,
rebuilt from the database when the registry opens, changed only after a commit). It holds no
notion of who asks: roles, jurisdiction and the audit of personal data are
:class:`~citygrid.engine.houses.service.HouseService`'s.

- **Places**: buildings are placed on a grid layer version (an ``Assigner``): their current grid,
  community, street and district are where their position falls. :meth:`regrid` re-places them on a
  newly activated version: codes never change, only the current areas, and the report lists the
  buildings that moved.
- **Lookups**: :meth:`building` and :meth:`unit` by code; :meth:`nearest` (nearest building within
  a radius, points in WGS84 / GCJ-02 / BD-09, :mod:`.spatial`); :meth:`buildings_in` (a grid,
  community or street); :meth:`search_address` (:mod:`.address`).
- **People**: :meth:`move_in` (入住登记) and :meth:`move_out` (迁出) with dates; a resident lives in
  one unit at a time (moving in elsewhere closes the previous stay on the same day).
- **Counts**: :meth:`population` per area level by registered / non-registered and age band;
  :meth:`rentals` by class and control level; :meth:`group_renting` (the rule of :mod:`.rentals`).

Dates are local (Asia/Shanghai) calendar dates as ISO text; "today" is the injected clock's.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from citygrid.engine.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from citygrid.engine.houses import loading as L
from citygrid.engine.houses.address import AddressIndex
from citygrid.engine.houses.census import LEVELS, AreaCounts, Census
from citygrid.engine.houses.codes import GRID_DIGITS, parse_building_code, parse_unit_code
from citygrid.engine.houses.records import Building, Business, Moved, RegridReport, Residence, Resident, Unit
from citygrid.engine.houses.rentals import CONTROL_LEVELS, RENTAL_CLASSES, RESIDENTIAL_KINDS, GroupRentingRule
from citygrid.engine.houses.spatial import BuildingIndex
from citygrid.engine.houses.store import bulk_indexes, next_id, open_store, transaction

#: Local time of the district (dates of moves are local dates).
LOCAL = timezone(timedelta(hours=8))
#: A load of at least this many rows checkpoints the WAL into the database file when it commits.
CHECKPOINT_ROWS = 1_000_000
#: Rows written per ``executemany`` batch in a load (all in one transaction).
BATCH = 100_000
_BUILDING_COLUMNS = ("code, kind, floors, address, lng, lat, issuing_grid, grid_code, community_code, "
                     "street_code, district_code, demolished_on")
_UNIT_COLUMNS = ("u.code, b.code, u.kind, u.entrance, u.floor, u.number, u.area_m2, u.rental, u.rental_class, "
                 "u.control_level, u.address, u.removed_on, u.id")
_AREA_COLUMNS = {"grid": "grid_code", "community": "community_code", "street": "street_code",
                 "district": "district_code"}


def local_date(value, what: str = "date") -> str:
    """A date (``date``, aware ``datetime`` or ISO text) as local ISO ``YYYY-MM-DD``."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidInput(f"the {what} {value.isoformat()} has no time zone")
        return value.astimezone(LOCAL).date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise InvalidInput(f"the {what} must be a date (YYYY-MM-DD), not {value!r}")


class HouseRegistry:
    """Buildings, units, residents and businesses of one data directory (see the module docstring).

    ``assigner`` places buildings on the layer version it was built for (an
    :class:`~citygrid.engine.layers.assignment.Assigner`: anything with ``assign(lng, lat)`` returning grid
    rows, ``column_of(column, rows)`` and ``layer.version_id``). ``clock`` is the injected time.
    Thread-safe: one lock guards the connection and the counts.
    """

    def __init__(self, data_dir: str | os.PathLike, assigner, clock, *, rule: GroupRentingRule | None = None):
        self._conn = open_store(data_dir)
        self._lock = threading.RLock()
        self.assigner = assigner
        self.clock = clock
        self.rule = rule or GroupRentingRule()
        self._census = Census()
        self._building_ids: dict[str, int] = {}
        self._building_lnglat = np.empty((0, 2))
        self._nearest: tuple[BuildingIndex, np.ndarray] | None = None
        self._address: tuple[AddressIndex, np.ndarray, np.ndarray] | None = None
        self._rebuild()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @property
    def connection(self):
        """The store's connection (guard it with :attr:`lock`); for the wing's other modules."""
        return self._conn

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @property
    def version_id(self) -> str | None:
        """The layer version the current areas were computed on."""
        row = self._conn.execute("SELECT value FROM house_meta WHERE key = 'version_id'").fetchone()
        return row[0] if row else None

    def today(self) -> str:
        return local_date(self.clock(), "clock time")

    # ------------------------------------------------------------------ derived state

    def _rebuild(self) -> None:
        """The counts and code maps from the database (at open)."""
        conn, census = self._conn, Census()
        rows = conn.execute("SELECT code, lng, lat, grid_code, community_code, street_code, district_code, "
                            "demolished_on IS NULL FROM house_buildings ORDER BY id").fetchall()
        codes = [r[0] for r in rows]
        census.add_buildings([r[3] for r in rows], [r[4] for r in rows], [r[5] for r in rows],
                             [r[6] for r in rows], np.array([bool(r[7]) for r in rows], dtype=bool))
        self._building_ids = {code: k for k, code in enumerate(codes)}
        self._building_lnglat = np.array([(r[1], r[2]) for r in rows], dtype=np.float64).reshape(-1, 2)
        kinds = {k: i for i, k in enumerate(L.UNIT_KINDS)}
        classes = {c: i for i, c in enumerate(RENTAL_CLASSES)}
        levels = {c: i for i, c in enumerate(CONTROL_LEVELS)}
        cursor = conn.execute("SELECT building_id, kind, area_m2, rental_class, control_level, removed_on IS NULL "
                              "FROM house_units ORDER BY id")
        while chunk := cursor.fetchmany(1 << 20):
            census.add_units([r[0] for r in chunk], np.array([kinds[r[1]] for r in chunk], dtype=np.int8),
                             np.array([np.nan if r[2] is None else r[2] for r in chunk], dtype=np.float32),
                             np.array([classes.get(r[3], -1) for r in chunk], dtype=np.int8),
                             np.array([levels.get(r[4], -1) for r in chunk], dtype=np.int8),
                             np.array([bool(r[5]) for r in chunk], dtype=bool))
        cursor = conn.execute("SELECT coalesce(h.unit_id, -1), r.birth_year, r.registered FROM house_residents r "
                              "LEFT JOIN house_residence h ON h.resident = r.id AND h.moved_out IS NULL ORDER BY r.id")
        while chunk := cursor.fetchmany(1 << 20):
            array = np.array(chunk, dtype=np.int32).reshape(-1, 3)
            census.add_residents(array[:, 0], array[:, 1], array[:, 2].astype(bool))
        self._census = census
        self._nearest = self._address = None

    # ------------------------------------------------------------------ bulk load

    def load(self, buildings=None, units=None, residents=None, businesses=None, *, strict: bool = False,
             moved_in=None, recorded_by: str = "bulk load") -> L.LoadReport:
        """Load tables (Parquet paths or Arrow tables; any may be None) after checking every row
        (:mod:`.loading`), in one transaction. Residents move in on ``moved_in`` (default: the
        table's ``moved_in`` column, else today). Returns the report; with ``strict`` any refused row
        refuses the whole load (:class:`~citygrid.engine.houses.loading.LoadRefused`)."""
        tables = {name: L.read_table(src, name) for name, src in
                  (("buildings", buildings), ("units", units), ("residents", residents), ("businesses", businesses))
                  if src is not None}
        default_date = local_date(moved_in, "moved_in date") if moved_in is not None else self.today()
        report = L.LoadReport()
        with self._lock:
            b_first, u_first, r_first, z_first = (next_id(self._conn, t) for t in (
                "house_buildings", "house_units", "house_residents", "house_businesses"))
            plan, self._pending = {}, {}
            b_lookup = self._checked_buildings(tables.get("buildings"), report, plan, b_first)
            u_lookup = self._checked_units(tables.get("units"), report, plan, u_first, b_lookup)
            self._checked_residents(tables.get("residents"), report, plan, r_first, u_lookup, default_date,
                                    recorded_by)
            self._checked_businesses(tables.get("businesses"), report, plan, z_first, b_lookup, u_lookup)
            if strict and report.n_refused:
                raise L.LoadRefused(report)
            # the rows' references were checked above, so the foreign-key checks are left off for the
            # load (a pragma that cannot change inside a transaction), and a larger page cache is used
            self._conn.execute("PRAGMA foreign_keys=OFF")
            self._conn.execute("PRAGMA cache_size=-262144")
            try:
                with transaction(self._conn):
                    for name, (sql, rows) in plan.items():
                        table = f"house_{name}"
                        rebuilt = bulk_indexes(table) if next_id(self._conn, table) == 0 and len(rows) else {}
                        for index in rebuilt:
                            self._conn.execute(f"DROP INDEX {index}")
                        for start in range(0, len(rows), BATCH):
                            self._conn.executemany(sql, rows.batch(start, start + BATCH))
                        for statement in rebuilt.values():
                            self._conn.execute(statement)
                        report.loaded[name] = len(rows)
            finally:
                self._conn.execute("PRAGMA foreign_keys=ON")
                self._conn.execute("PRAGMA cache_size=-2000")
            report.committed = True
            if sum(report.loaded.values()) >= CHECKPOINT_ROWS:  # fold the big WAL into the database file
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            pending, self._pending = self._pending, {}
            if "buildings" in pending:
                codes, lnglat, areas = pending["buildings"]
                self._census.add_buildings(*areas)
                self._building_ids.update((c, first) for first, c in enumerate(codes, start=b_first))
                self._building_lnglat = np.concatenate([self._building_lnglat, lnglat])
            if "units" in pending:
                self._census.add_units(*pending["units"])
            if "residents" in pending:
                self._census.add_residents(*pending["residents"])
            self._nearest = self._address = None
        return report

    def load_directory(self, directory, **options) -> L.LoadReport:
        """Load the ``buildings``, ``units``, ``residents`` and ``businesses`` Parquet files of a
        directory (the demo's output, for ``serve --demo``); files that are absent are skipped."""
        from pathlib import Path

        paths = {name: Path(directory) / f"{name}.parquet" for name in L.REQUIRED}
        return self.load(**{name: p for name, p in paths.items() if p.is_file()}, **options)

    def _known(self, table: str, column: str, values: np.ndarray, id_column: str = "id") -> L.Lookup:
        """The ids of those of ``values`` (an ``S`` array) the database already holds in ``table``."""
        if not len(values) or next_id(self._conn, table) == 0:
            return L.Lookup(np.empty(0, dtype=values.dtype), np.empty(0, dtype=np.int64))
        self._conn.execute("CREATE TEMP TABLE IF NOT EXISTS house_probe (value TEXT PRIMARY KEY)")
        self._conn.execute("DELETE FROM house_probe")
        self._conn.executemany("INSERT OR IGNORE INTO house_probe VALUES (?)",
                               ((v.decode("ascii", "replace"),) for v in values))
        found = self._conn.execute(f"SELECT t.{column}, t.{id_column} FROM house_probe p JOIN {table} t "
                                   f"ON t.{column} = p.value").fetchall()
        self._conn.execute("DELETE FROM house_probe")
        codes = np.array([f[0].encode() for f in found], dtype=values.dtype)
        return L.Lookup(codes, np.array([f[1] for f in found], dtype=np.int64))

    def _checked_buildings(self, data, report, plan, first: int) -> L.Lookup:
        """Checks the buildings table; returns the lookup of every building code the load may name
        (accepted rows and the registry's own, including demolished ones, id -2 for refused rows)."""
        if data is None:
            return _Held(self._building_ids)
        n = data.num_rows
        checks = L.Checks("buildings", n)
        code = L.text(L.column(data, "building_code"))
        kind = L.column(data, "kind") if "kind" in data.column_names else L.column(data, "building_type")
        floors, address = L.column(data, "floors"), L.column(data, "address")
        lng = L.column(data, "lng").to_numpy(zero_copy_only=False).astype(np.float64)
        lat = L.column(data, "lat").to_numpy(zero_copy_only=False).astype(np.float64)
        checks.mark(L.missing(code, kind, floors, address), "missing field")
        rows, codes = L.code_checks(checks, code, "building")
        held = np.zeros(n, dtype=bool)
        held[rows] = np.array([c.decode() in self._building_ids for c in codes], dtype=bool)
        checks.mark(held, "code already issued")
        checks.mark(~((np.abs(lng) <= 180) & (np.abs(lat) <= 90)), "bad position")
        places = self.assigner.assign(np.nan_to_num(lng, nan=999.0), np.nan_to_num(lat, nan=999.0))
        grid_rows = places.grid_rows
        checks.mark(grid_rows < 0, "outside every grid")
        checks.report(report, code)
        ok = np.flatnonzero(checks.ok)
        areas = [self.assigner.column_of(c, grid_rows[ok]).tolist() for c in
                 ("grid_code", "community_code", "street_code", "district_code")]
        ids = first + np.arange(len(ok))
        code_list = code.take(pa.array(ok)).to_pylist()
        plan["buildings"] = (
            "INSERT INTO house_buildings (id, code, kind, floors, address, lng, lat, issuing_grid, grid_code, "
            "community_code, street_code, district_code) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            L.Rows((ids, code_list, kind.take(pa.array(ok)),
                     pc.cast(floors, pa.int64()).take(pa.array(ok)),
                     address.take(pa.array(ok)), lng[ok], lat[ok],
                     [c[:GRID_DIGITS] for c in code_list], *areas)))
        self._pending["buildings"] = (code_list, np.column_stack([lng[ok], lat[ok]]), areas)
        valid_rows = _refused(rows, checks)  # valid codes of refused rows: their units are refused too
        lookup_codes = np.concatenate([L.fixed(code, 19, ok), L.fixed(code, 19, valid_rows)])
        lookup_ids = np.concatenate([ids, np.full(len(valid_rows), -2)])
        return _Held(self._building_ids, L.Lookup(lookup_codes, lookup_ids))

    def _checked_units(self, data, report, plan, first: int, buildings: "_Held") -> L.Lookup | None:
        if data is None:
            return None
        n = data.num_rows
        checks = L.Checks("units", n)
        code, b_code = L.text(L.column(data, "unit_code")), L.text(L.column(data, "building_code"))
        kind, floor, number, address = (L.column(data, c) for c in ("kind", "floor", "number", "address"))
        checks.mark(L.missing(code, b_code, kind, floor, number, address), "missing field")
        valid = L.valid_unit_codes(code)
        checks.mark(~valid, "bad code")
        prefix = pc.fill_null(pc.equal(pc.utf8_slice_codeunits(code, 0, 19), b_code), False)
        checks.mark(~prefix.to_numpy(zero_copy_only=False), "not in its building")
        rows, codes = L.code_checks(checks, code, "unit")
        held = np.zeros(n, dtype=bool)
        held[rows] = self._known("house_units", "code", codes).find(codes) >= 0
        checks.mark(held, "code already issued")
        rental_class, control = L.column(data, "rental_class"), L.column(data, "control_level")
        kinds, classes, levels = L.check_kinds(checks, kind, rental_class, control)
        building = np.full(n, -1, dtype=np.int64)
        building[rows] = buildings.find(np.array([c[:19] for c in codes], dtype="S19"))
        checks.mark(building == -2, "building refused")
        checks.mark(building < 0, "unknown building")
        checks.report(report, code)
        ok = np.flatnonzero(checks.ok)
        take = pa.array(ok)
        area = L.column(data, "area_m2")
        area = pc.cast(area, pa.float64()).take(take).to_pylist() if area.null_count < n else [None] * len(ok)
        rental = pc.fill_null(pc.cast(L.column(data, "rental", False), pa.bool_()), False).take(take)
        entrance = L.column(data, "entrance").take(take).to_pylist()
        ids = first + np.arange(len(ok))
        plan["units"] = (
            "INSERT INTO house_units (id, code, building_id, kind, entrance, floor, number, area_m2, rental, "
            "rental_class, control_level, address) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            L.Rows((ids, code.take(take), building[ok], kind.take(take),
                     entrance, pc.cast(floor, pa.int64()).take(take), L.text(number).take(take),
                     area, rental.to_numpy(zero_copy_only=False).astype(np.int8), rental_class.take(take),
                     control.take(take), address.take(take))))
        area_values = np.array([np.nan if a is None else a for a in area], dtype=np.float32)
        self._pending["units"] = (building[ok], kinds[ok], area_values, classes[ok], levels[ok])
        valid_rows = _refused(rows, checks)
        return L.Lookup(np.concatenate([L.fixed(code, 23, ok), L.fixed(code, 23, valid_rows)]),
                        np.concatenate([ids, np.full(len(valid_rows), -2)])), kinds, ok

    def _unit_ids(self, codes: np.ndarray, units) -> tuple[np.ndarray, np.ndarray]:
        """Unit ids (-1 unknown, -2 refused in this load) and kinds (-1 unknown) of unit codes."""
        ids = np.full(len(codes), -1, dtype=np.int64)
        kinds = np.full(len(codes), -1, dtype=np.int8)
        if units is not None:
            lookup, load_kinds, ok = units
            ids = lookup.find(codes)
            loaded = ids >= 0
            first = int(lookup.ids[lookup.ids >= 0].min()) if (lookup.ids >= 0).any() else 0
            kinds[loaded] = load_kinds[ok][ids[loaded] - first]
        rest = np.flatnonzero(ids == -1)
        if rest.size:
            known = self._known("house_units", "code", codes[rest])
            found = known.find(codes[rest])
            ids[rest] = found
            hit = rest[found >= 0]
            if hit.size:
                unit_kinds = self._census._unit_kind.view
                kinds[hit] = unit_kinds[ids[hit]]
        return ids, kinds

    def _checked_residents(self, data, report, plan, first: int, units, default_date: str, recorded_by: str) -> None:
        if data is None:
            return
        n = data.num_rows
        checks = L.Checks("residents", n)
        rid, name, unit = L.text(L.column(data, "resident_id")), L.column(data, "name"), L.text(L.column(data, "unit_code"))
        birth, ptype = L.column(data, "birth_year"), L.column(data, "population_type")
        checks.mark(L.missing(rid, name, birth, ptype, unit), "missing field")
        id_bytes = L.keys(rid)
        checks.mark(L.duplicated(id_bytes), "duplicate in the file")
        checks.mark(self._known("house_residents", "resident_id", id_bytes).find(id_bytes) >= 0, "already registered")
        years = pc.cast(pc.fill_null(birth, 0), pa.int64()).to_numpy(zero_copy_only=False)
        checks.mark((years < L.BIRTH_YEARS[0]) | (years > min(L.BIRTH_YEARS[1], int(self.today()[:4]))),
                    "bad birth year")
        registered = pc.index_in(ptype, value_set=pa.array(list(L.POPULATION_TYPES))).to_numpy(zero_copy_only=False)
        registered = np.nan_to_num(registered.astype(np.float64), nan=-1)
        checks.mark(registered < 0, "bad population type")
        valid = L.valid_unit_codes(unit)
        checks.mark(~valid, "bad code")
        unit_ids = np.full(n, -1, dtype=np.int64)
        kinds = np.full(n, -1, dtype=np.int8)
        rows = np.flatnonzero(valid)
        unit_ids[rows], kinds[rows] = self._unit_ids(L.fixed(unit, 23, rows), units)
        checks.mark(unit_ids == -2, "unit refused")
        checks.mark(unit_ids < 0, "unknown unit")
        checks.mark(~np.isin(kinds, L.RESIDENTIAL_CODES), "not a residential unit")
        checks.report(report, rid)
        ok = np.flatnonzero(checks.ok)
        take = pa.array(ok)
        ids = np.arange(first, first + len(ok))
        gender = L.column(data, "gender").take(take)
        plan["residents"] = (
            "INSERT INTO house_residents (id, resident_id, name, gender, birth_year, registered) VALUES (?,?,?,?,?,?)",
            L.Rows((ids, rid.take(take), name.take(take), gender, years[ok],
                     (registered[ok] == 0).astype(int))))
        self._pending["residents"] = (unit_ids[ok], years[ok], registered[ok] == 0)
        dates = ([local_date(d, "moved_in date") if d is not None else default_date
                  for d in L.text(L.column(data, "moved_in")).take(take).to_pylist()]
                 if "moved_in" in data.column_names else [default_date] * len(ok))
        residence_first = next_id(self._conn, "house_residence")
        plan["residence"] = (
            "INSERT INTO house_residence (id, resident, unit_id, moved_in, recorded_by) VALUES (?,?,?,?,?)",
            L.Rows((range(residence_first, residence_first + len(ok)), ids, unit_ids[ok], dates,
                     [recorded_by] * len(ok))))

    def _checked_businesses(self, data, report, plan, first: int, buildings, units) -> None:
        if data is None:
            return
        n = data.num_rows
        checks = L.Checks("businesses", n)
        bid, name, b_code = L.text(L.column(data, "business_id")), L.column(data, "name"), L.text(L.column(data, "building_code"))
        unit = L.text(L.column(data, "unit_code"))
        checks.mark(L.missing(bid, name, b_code), "missing field")
        id_bytes = L.keys(bid)
        checks.mark(L.duplicated(id_bytes), "duplicate in the file")
        checks.mark(self._known("house_businesses", "business_id", id_bytes).find(id_bytes) >= 0, "already registered")
        has_unit = ~unit.is_null().to_numpy(zero_copy_only=False)
        valid_b = L.valid_building_codes(b_code)
        valid_u = L.valid_unit_codes(unit)
        checks.mark(~valid_b | (has_unit & ~valid_u), "bad code")
        building = np.full(n, -1, dtype=np.int64)
        rows = np.flatnonzero(valid_b)
        building[rows] = buildings.find(L.fixed(b_code, 19, rows))
        checks.mark(building == -2, "building refused")
        checks.mark(building < 0, "unknown building")
        unit_ids = np.full(n, -1, dtype=np.int64)
        rows = np.flatnonzero(has_unit & valid_u)
        unit_ids[rows] = self._unit_ids(L.fixed(unit, 23, rows), units)[0]
        checks.mark(has_unit & (unit_ids == -2), "unit refused")
        checks.mark(has_unit & (unit_ids < 0), "unknown unit")
        same = pc.fill_null(pc.equal(pc.utf8_slice_codeunits(unit, 0, 19), b_code), True).to_numpy(zero_copy_only=False)
        checks.mark(~same, "not in its building")
        checks.report(report, bid)
        ok = np.flatnonzero(checks.ok)
        take = pa.array(ok)
        plan["businesses"] = (
            "INSERT INTO house_businesses (id, business_id, name, industry, building_id, unit_id) VALUES (?,?,?,?,?,?)",
            L.Rows((range(first, first + len(ok)), bid.take(take), name.take(take),
                     L.column(data, "industry").take(take), building[ok],
                     [u if u >= 0 else None for u in unit_ids[ok].tolist()])))

    # ------------------------------------------------------------------ lookups

    def building(self, code: str) -> Building:
        """The building with ``code`` (demolished ones too); :class:`NotFound` when never issued."""
        code = parse_building_code(code).code
        with self._lock:
            row = self._conn.execute(f"SELECT id, {_BUILDING_COLUMNS} FROM house_buildings WHERE code = ?",
                                     (code,)).fetchone()
            if row is None:
                raise NotFound(f"no building has the code {code}")
            return self._building(row)

    def _building(self, row) -> Building:
        bid = row[0]
        n_units = self._census.building_units(bid)
        residents = int(self._census.building_counts(self._year())[bid].sum())
        return Building(*row[1:], n_units=n_units, residents=residents)

    def _year(self) -> int:
        return int(self.today()[:4])

    def building_id(self, code: str) -> int:
        try:
            return self._building_ids[parse_building_code(code).code]
        except KeyError:
            raise NotFound(f"no building has the code {code}") from None

    def unit(self, code: str) -> Unit:
        """The unit with ``code``; :class:`NotFound` when never issued."""
        code = parse_unit_code(code).code
        with self._lock:
            row = self._conn.execute(f"SELECT {_UNIT_COLUMNS} FROM house_units u JOIN house_buildings b "
                                     f"ON b.id = u.building_id WHERE u.code = ?", (code,)).fetchone()
            if row is None:
                raise NotFound(f"no unit has the code {code}")
            return self._unit(row)

    def _unit(self, row) -> Unit:
        *fields, uid = row
        fields[7] = bool(fields[7])
        return Unit(*fields, residents=self._census.unit_residents(uid))

    def units_of(self, building_code: str) -> list[Unit]:
        """The units of a building (removed ones too), in code order."""
        bid = self.building_id(building_code)
        with self._lock:
            rows = self._conn.execute(f"SELECT {_UNIT_COLUMNS} FROM house_units u JOIN house_buildings b "
                                      f"ON b.id = u.building_id WHERE u.building_id = ? ORDER BY u.code",
                                      (bid,)).fetchall()
            return [self._unit(r) for r in rows]

    def buildings_in(self, level: str, code: str, *, limit: int = 10_000) -> list[Building]:
        """The standing buildings whose current area of ``level`` is ``code``, in code order."""
        column = _AREA_COLUMNS.get(level)
        if column is None:
            raise InvalidInput(f"unknown area level {level!r}; levels are {', '.join(LEVELS)}")
        with self._lock:
            rows = self._conn.execute(
                f"SELECT id, {_BUILDING_COLUMNS} FROM house_buildings WHERE {column} = ? AND demolished_on IS NULL "
                f"ORDER BY code LIMIT ?", (str(code).strip(), int(limit))).fetchall()
            return [self._building(r) for r in rows]

    def nearest(self, lng: float, lat: float, *, radius_m: float = 100.0, crs: str = "wgs84"
                ) -> tuple[Building, float] | None:
        """The nearest standing building within ``radius_m`` of the point and its distance in metres,
        or None. Points in GCJ-02 / BD-09 (phones) are converted to WGS84 as assignment does."""
        with self._lock:
            if self._nearest is None:
                active = np.flatnonzero(self._census._building_active.view)
                if not active.size:
                    return None
                xy = self._building_lnglat[active]
                self._nearest = (BuildingIndex(xy[:, 0], xy[:, 1]), active)
            index, ids = self._nearest
        found = index.nearest([lng], [lat], radius_m=radius_m, crs=crs)
        row = int(found.rows[0])
        if row < 0:
            if np.isnan(found.distance_m[0]):
                raise InvalidInput(f"({lng}, {lat}) is not a valid {crs} longitude / latitude")
            return None
        with self._lock:
            record = self._conn.execute(f"SELECT id, {_BUILDING_COLUMNS} FROM house_buildings WHERE id = ?",
                                        (int(ids[row]),)).fetchone()
            return self._building(record), float(found.distance_m[0])

    def search_address(self, text: str, limit: int = 10) -> list[tuple[Building | Unit, float]]:
        """Buildings and units whose address matches ``text`` best (:mod:`.address`), with scores."""
        with self._lock:
            if self._address is None:
                self._address = self._address_index()
            index, building_ids, unit_ids = self._address
        matches = index.search(text, limit)
        out = []
        with self._lock:
            for m in matches:
                if m.unit_row >= 0:
                    row = self._conn.execute(f"SELECT {_UNIT_COLUMNS} FROM house_units u JOIN house_buildings b "
                                             f"ON b.id = u.building_id WHERE u.id = ?",
                                             (int(unit_ids[m.unit_row]),)).fetchone()
                    out.append((self._unit(row), m.score))
                else:
                    row = self._conn.execute(f"SELECT id, {_BUILDING_COLUMNS} FROM house_buildings WHERE id = ?",
                                             (int(building_ids[m.building_row]),)).fetchone()
                    out.append((self._building(row), m.score))
        return out

    def _address_index(self):
        buildings = self._conn.execute("SELECT id, address FROM house_buildings WHERE demolished_on IS NULL "
                                       "ORDER BY id").fetchall()
        if not buildings:
            raise NotFound("the registry holds no building to search")
        building_ids = np.array([b[0] for b in buildings], dtype=np.int64)
        row_of = np.full(self._census.n_buildings, -1, dtype=np.int64)
        row_of[building_ids] = np.arange(len(building_ids))
        units = self._conn.execute("SELECT u.id, u.building_id, coalesce(u.entrance, 0), u.number, u.address "
                                   "FROM house_units u JOIN house_buildings b ON b.id = u.building_id "
                                   "WHERE u.removed_on IS NULL AND b.demolished_on IS NULL "
                                   "ORDER BY u.building_id, u.id").fetchall()
        numbers = [int(u[3]) if u[3].isdigit() else -1 for u in units]
        index = AddressIndex([b[1] for b in buildings], unit_building=row_of[[u[1] for u in units]],
                             unit_entrance=[u[2] for u in units], unit_number=numbers,
                             unit_address=pa.array([u[4] for u in units], type=pa.string()))
        return index, building_ids, np.array([u[0] for u in units], dtype=np.int64)

    def positions(self) -> Mapping[str, tuple[float, float]]:
        """Standing buildings' WGS84 positions by code: what the intake places a report given by
        building code at (a live view of the registry)."""
        return _Positions(self)

    # ------------------------------------------------------------------ re-grid and demolition

    def regrid(self, assigner) -> RegridReport:
        """Re-place every building on ``assigner``'s layer version (called when it is activated): codes
        and issuing grids stay; the current grid, community, street and district are recomputed and
        written in one transaction; the report lists the buildings whose grid changed."""
        with self._lock:
            ids = np.arange(self._census.n_buildings)
            xy = self._building_lnglat
            grid_rows = assigner.assign(xy[:, 0], xy[:, 1]).grid_rows if len(ids) else np.empty(0, np.int32)
            new = [assigner.column_of(c, grid_rows) for c in ("grid_code", "community_code", "street_code",
                                                                "district_code")]
            old = self._conn.execute("SELECT grid_code, community_code, street_code, district_code FROM "
                                     "house_buildings ORDER BY id").fetchall()
            codes = list(self._building_ids)  # insertion order is id order
            changed = [k for k in range(len(ids)) if old[k] != (new[0][k], new[1][k], new[2][k], new[3][k])]
            previous = self.version_id
            with transaction(self._conn):
                self._conn.executemany(
                    "UPDATE house_buildings SET grid_code = ?, community_code = ?, street_code = ?, district_code = ? "
                    "WHERE id = ?", [(new[0][k], new[1][k], new[2][k], new[3][k], k) for k in changed])
                self._conn.execute("INSERT INTO house_meta (key, value) VALUES ('version_id', ?) "
                                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                                   (assigner.layer.version_id,))
            self._census.set_areas(changed, *[[n[k] for k in changed] for n in new])
            self.assigner = assigner
            moved = tuple(Moved(codes[k], old[k][0], new[0][k]) for k in changed if old[k][0] != new[0][k])
            outside = tuple(codes[k] for k in np.flatnonzero(grid_rows < 0).tolist())
            return RegridReport(assigner.layer.version_id, previous, len(ids), moved, outside)

    def demolish(self, code: str, on=None) -> Building:
        """Mark a building demolished (with its units, whose residents move out that day). Its code
        and its units' codes stay issued: never reused."""
        bid = self.building_id(code)
        on = local_date(on, "demolition date") if on is not None else self.today()
        with self._lock:
            living = self._conn.execute(
                "SELECT h.resident FROM house_residence h JOIN house_units u ON u.id = h.unit_id "
                "WHERE u.building_id = ? AND h.moved_out IS NULL", (bid,)).fetchall()
            with transaction(self._conn):
                changed = self._conn.execute("UPDATE house_buildings SET demolished_on = ? WHERE id = ? AND "
                                             "demolished_on IS NULL", (on, bid)).rowcount
                if not changed:
                    raise PreconditionFailed(f"building {code} is already demolished")
                self._conn.execute("UPDATE house_units SET removed_on = ? WHERE building_id = ? AND removed_on IS NULL",
                                   (on, bid))
                self._conn.execute("UPDATE house_residence SET moved_out = ? WHERE moved_out IS NULL AND unit_id IN "
                                   "(SELECT id FROM house_units WHERE building_id = ?)", (on, bid))
            for (resident,) in living:
                self._census.move(resident, -1)
            self._census.demolish(bid)
            self._nearest = self._address = None
        return self.building(code)

    # ------------------------------------------------------------------ people

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

    def residents(self, level: str, code: str, *, limit: int = 10_000) -> list[Resident]:
        """The residents living now in a unit, building, grid, community, street or district
        (personal data: read it through the service, which checks and audits)."""
        where = {"unit": "u.code = ?", "building": "b.code = ?"}.get(level)
        if where is None:
            column = _AREA_COLUMNS.get(level)
            if column is None:
                raise InvalidInput(f"unknown level {level!r}; levels are unit, building, {', '.join(LEVELS)}")
            where = f"b.{column} = ?"
        with self._lock:
            rows = self._conn.execute(
                "SELECT r.resident_id, r.name, r.gender, r.birth_year, r.registered, u.code, b.code, b.grid_code, "
                "h.moved_in FROM house_residence h JOIN house_residents r ON r.id = h.resident "
                "JOIN house_units u ON u.id = h.unit_id JOIN house_buildings b ON b.id = u.building_id "
                f"WHERE h.moved_out IS NULL AND {where} ORDER BY u.code, r.resident_id LIMIT ?",
                (str(code).strip(), int(limit))).fetchall()
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
        column = _AREA_COLUMNS.get(level)
        if column is None:
            raise InvalidInput(f"unknown area level {level!r}; levels are {', '.join(LEVELS)}")
        columns = list(_AREA_COLUMNS.values())
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

    # ------------------------------------------------------------------ counts

    def population(self, level: str = "grid", *, year: int | None = None) -> AreaCounts:
        """Residents per area of ``level`` (grid, community, street, district) by registered /
        non-registered and age band (:data:`~citygrid.engine.houses.census.POPULATION_COLUMNS`) in
        ``year`` (default: the clock's). The population provider of the dashboards."""
        with self._lock:
            return self._census.population(level, year or self._year())

    def building_population(self, code: str, *, year: int | None = None) -> dict[str, int]:
        bid = self.building_id(code)
        with self._lock:
            return self._census.building_population(bid, year or self._year())

    def unit_population(self, code: str, *, year: int | None = None) -> dict[str, int]:
        """The population columns of one unit (counted from its residents' rows)."""
        from citygrid.engine.houses.census import AGE_BANDS, POPULATION_COLUMNS, age_band

        year = year or self._year()
        with self._lock:
            rows = self._conn.execute(
                "SELECT r.registered, r.birth_year FROM house_residence h JOIN house_residents r ON r.id = h.resident "
                "JOIN house_units u ON u.id = h.unit_id WHERE u.code = ? AND h.moved_out IS NULL",
                (parse_unit_code(code).code,)).fetchall()
        out = dict.fromkeys(POPULATION_COLUMNS, 0)
        for registered, birth in rows:
            band = int(age_band([birth], year)[0])
            out[POPULATION_COLUMNS[(0 if registered else len(AGE_BANDS)) + band]] += 1
        return out

    def rentals(self, level: str = "grid") -> AreaCounts:
        """Let units (出租屋) per area of ``level`` by class (分类) and control level (分级)."""
        with self._lock:
            return self._census.rentals(level)

    def group_renting(self, level: str | None = None, code: str | None = None) -> list[dict]:
        """Units the group-renting rule flags (群租), optionally only those in one area; each with its
        code, building, current grid, residents, area and reason (``residents`` or ``area``)."""
        with self._lock:
            units = self._census.group_renting(self.rule)
            if level is not None:
                codes = self._census.area_codes(level)
                wanted = [k for k, c in enumerate(codes) if c == code]
                units = units[self._census.units_in_areas(level, wanted)[units]] if wanted else units[:0]
            out = []
            for uid in units.tolist():
                u_code, b_code, grid, area = self._conn.execute(
                    "SELECT u.code, b.code, b.grid_code, u.area_m2 FROM house_units u JOIN house_buildings b "
                    "ON b.id = u.building_id WHERE u.id = ?", (uid,)).fetchone()
                n = self._census.unit_residents(uid)
                reason = "residents" if bool(self.rule.too_many([n])[0]) else "area"
                out.append({"unit_code": u_code, "building_code": b_code, "grid_code": grid, "residents": n,
                            "area_m2": area, "reason": reason})
            return out


def _refused(rows: np.ndarray, checks: L.Checks) -> np.ndarray:
    """Those of ``rows`` that the checks refused."""
    return rows[~checks.ok[rows]]


class _Held:
    """Building codes a load may name: those of the load (a :class:`~.loading.Lookup`) and the
    registry's own (a dict)."""

    def __init__(self, held: dict[str, int], loaded: L.Lookup | None = None):
        self.held, self.loaded = held, loaded

    def find(self, codes: np.ndarray) -> np.ndarray:
        ids = self.loaded.find(codes) if self.loaded is not None else np.full(len(codes), -1, dtype=np.int64)
        for k in np.flatnonzero(ids == -1).tolist():
            ids[k] = self.held.get(codes[k].decode(), -1)
        return ids


class _Positions(Mapping):
    def __init__(self, registry: HouseRegistry):
        self._registry = registry

    def __getitem__(self, code: str) -> tuple[float, float]:
        registry = self._registry
        bid = registry._building_ids.get(code)
        if bid is None or not registry._census._building_active.data[bid]:
            raise KeyError(code)
        lng, lat = registry._building_lnglat[bid]
        return float(lng), float(lat)

    def __iter__(self):
        active = self._registry._census._building_active.data
        return (c for c, k in self._registry._building_ids.items() if active[k])

    def __len__(self) -> int:
        return int(self._registry._census._building_active.view.sum())
