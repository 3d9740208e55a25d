"""Bulk loads into the registry: Parquet tables of buildings, units, residents and businesses checked
row by row (:mod:`.loading`'s vectorised checks) and written in one transaction.

:class:`BulkLoad` is a part of :class:`~citygrid.engine.houses.registry.HouseRegistry` (its
``load`` and ``load_directory``); it works on the registry's connection, lock and counts. Every refused
row is in the report with its reason; nothing is half-loaded: the counts in memory change only after
the commit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from citygrid.engine.errors import PreconditionFailed
from citygrid.engine.houses import loading as L
from citygrid.engine.houses.codes import GRID_DIGITS
from citygrid.engine.houses.columnar import Constant, Ints, Table
from citygrid.engine.houses.dates import local_date
from citygrid.engine.houses.store import bulk_indexes, next_id, transaction

#: A load of at least this many rows checkpoints the WAL into the database file when it commits.
CHECKPOINT_ROWS = 1_000_000
#: SQLite's page cache during a load (KiB): the pages a big transaction changes stay in memory
#: instead of spilling to the WAL before the commit.
LOAD_CACHE_KIB = 1_048_576


class BulkLoad:
    """The registry's bulk load (mixed into :class:`~citygrid.engine.houses.registry.HouseRegistry`)."""

    def load(self, buildings=None, units=None, residents=None, businesses=None, *, strict: bool = False,
             moved_in=None, recorded_by: str = "bulk load") -> L.LoadReport:
        """Load tables (Parquet paths or Arrow tables; any may be None) after checking every row
        (:mod:`.loading`), in one transaction. Residents move in on ``moved_in`` (default: the
        table's ``moved_in`` column, else today). Returns the report; with ``strict`` any refused row
        refuses the whole load (:class:`~citygrid.engine.houses.loading.LoadRefused`)."""
        tables = {name: L.read_table(src, name) for name, src in
                  (("buildings", buildings), ("units", units), ("residents", residents), ("businesses", businesses))
                  if src is not None}
        if self.assigner is None and buildings is not None:
            raise PreconditionFailed("no layer version is active: buildings are placed on the active version's grids; "
                                     "activate one first")
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
            self._conn.execute(f"PRAGMA cache_size=-{LOAD_CACHE_KIB}")
            try:
                with transaction(self._conn):
                    for name, rows in plan.items():
                        table = f"house_{name}"
                        rebuilt = bulk_indexes(table) if next_id(self._conn, table) == 0 and len(rows) else {}
                        for index in rebuilt:
                            self._conn.execute(f"DROP INDEX {index}")
                        rows.insert(self._conn)
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
            self._nearest = None
            if report.loaded.get("buildings") or report.loaded.get("units"):
                self._addresses.changed()  # built again in its thread; searches wait for it
        return report

    def load_directory(self, directory, **options) -> L.LoadReport:
        """Load the ``buildings``, ``units``, ``residents`` and ``businesses`` Parquet files of a
        directory (the demo's output, for ``serve --demo``); files that are absent are skipped."""
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
        ok = _in_key_order(np.flatnonzero(checks.ok), L.fixed(code, 19, np.flatnonzero(checks.ok)))
        areas = [self.assigner.column_of(c, grid_rows[ok]).tolist() for c in
                 ("grid_code", "community_code", "street_code", "district_code")]
        ids = first + np.arange(len(ok))
        code_list = code.take(pa.array(ok)).to_pylist()
        plan["buildings"] = Table("house_buildings", dict(
            id=ids, code=code_list, kind=kind.take(pa.array(ok)), floors=pc.cast(floors, pa.int64()).take(pa.array(ok)),
            address=address.take(pa.array(ok)), lng=lng[ok], lat=lat[ok], issuing_grid=[c[:GRID_DIGITS] for c in code_list],
            **dict(zip(("grid_code", "community_code", "street_code", "district_code"), areas))))
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
        ok = _in_key_order(np.flatnonzero(checks.ok), L.fixed(code, 23, np.flatnonzero(checks.ok)))
        take = pa.array(ok)
        area = L.column(data, "area_m2")
        area = pc.cast(area, pa.float64()).take(take).to_pylist() if area.null_count < n else [None] * len(ok)
        rental = pc.fill_null(pc.cast(L.column(data, "rental", False), pa.bool_()), False).take(take)
        entrance = L.column(data, "entrance").take(take)
        ids = first + np.arange(len(ok))
        plan["units"] = Table("house_units", dict(
            id=ids, code=code.take(take), building_id=building[ok], kind=kind.take(take), entrance=entrance,
            floor=pc.cast(floor, pa.int64()).take(take), number=L.text(number).take(take), area_m2=area,
            rental=rental.to_numpy(zero_copy_only=False).astype(np.int8), rental_class=rental_class.take(take),
            control_level=control.take(take), address=address.take(take)))
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
        ok = _in_key_order(np.flatnonzero(checks.ok), id_bytes[checks.ok])
        take = pa.array(ok)
        ids = np.arange(first, first + len(ok))
        gender = L.column(data, "gender").take(take)
        plan["residents"] = Table("house_residents", dict(
            id=ids, resident_id=rid.take(take), name=name.take(take), gender=gender, birth_year=years[ok],
            registered=(registered[ok] == 0).astype(np.int64)))
        self._pending["residents"] = (unit_ids[ok], years[ok], registered[ok] == 0)
        dates = ([local_date(d, "moved_in date") if d is not None else default_date
                  for d in L.text(L.column(data, "moved_in")).take(take).to_pylist()]
                 if "moved_in" in data.column_names else [default_date] * len(ok))
        residence_first = next_id(self._conn, "house_residence")
        plan["residence"] = Table("house_residence", dict(
            id=range(residence_first, residence_first + len(ok)), resident=ids, unit_id=unit_ids[ok], moved_in=dates,
            recorded_by=Constant(recorded_by)))

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
        plan["businesses"] = Table("house_businesses", dict(
            id=range(first, first + len(ok)), business_id=bid.take(take), name=name.take(take),
            industry=L.column(data, "industry").take(take), building_id=building[ok],
            unit_id=Ints(unit_ids[ok], unit_ids[ok] >= 0)))



def _in_key_order(rows: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``rows`` ordered by their ``keys`` (codes or ids, one per row): the accepted rows take their
    ids in that order, so the rows and each table's ``UNIQUE`` index on the key are both written as
    appends (in file order, the key index of millions of rows takes a random page per insert)."""
    return rows[np.argsort(keys, kind="stable")]


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

