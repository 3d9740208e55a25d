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

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping

import numpy as np

from citygrid.engine.errors import InvalidInput, NotFound, PreconditionFailed
from citygrid.engine.houses import loading as L
from citygrid.engine.houses.address_book import AddressBook
from citygrid.engine.houses.bulk_load import BulkLoad
from citygrid.engine.houses.census import LEVELS, AreaCounts, Census
from citygrid.engine.houses.codes import BUILDING_DIGITS, UNIT_DIGITS, parse_building_code, parse_unit_code
from citygrid.engine.houses.dates import local_date
from citygrid.engine.houses.records import Building, Moved, RegridReport, Unit
from citygrid.engine.houses.rentals import CONTROL_LEVELS, RENTAL_CLASSES, GroupRentingRule
from citygrid.engine.houses.residence import Residences
from citygrid.engine.houses.spatial import BuildingIndex
from citygrid.engine.houses.store import AREA_COLUMNS, open_store, transaction

log = logging.getLogger("citygrid.houses")

_BUILDING_COLUMNS = ("code, kind, floors, address, lng, lat, issuing_grid, grid_code, community_code, "
                     "street_code, district_code, demolished_on")
_UNIT_COLUMNS = ("u.code, b.code, u.kind, u.entrance, u.floor, u.number, u.area_m2, u.rental, u.rental_class, "
                 "u.control_level, u.address, u.removed_on, u.id")


class HouseRegistry(BulkLoad, Residences):
    """Buildings, units, residents and businesses of one data directory (see the module docstring).

    ``assigner`` places buildings on the layer version it was built for (an
    :class:`~citygrid.engine.layers.assignment.Assigner`: anything with ``assign(lng, lat)`` returning grid
    rows, ``column_of(column, rows)`` and ``layer.version_id``). ``clock`` is the injected time.
    Thread-safe: one lock guards the connection and the counts.
    """

    def __init__(self, data_dir: str | os.PathLike, assigner, clock, *, rule: GroupRentingRule | None = None,
                 background: bool = False, then: Callable[[HouseRegistry], object] | None = None):
        """Open the registry: its tables, then its counts and code maps read from the database
        (seconds for millions of rows). With ``background`` the reading runs in a thread that holds
        the registry's lock meanwhile, so every call waits for it instead of seeing empty counts;
        :attr:`opening` says whether it is still running (a server answers "loading" then). ``then``
        runs after the reading, under the same lock (placing the registry on the active layer)."""
        self._conn = open_store(data_dir)
        self._lock = threading.RLock()
        self.assigner = assigner
        self.clock = clock
        self.rule = rule or GroupRentingRule()
        self._census = Census()
        self._building_ids: dict[str, int] = {}
        self._building_lnglat = np.empty((0, 2))
        self._nearest: tuple[BuildingIndex, np.ndarray] | None = None
        #: The address index: built in its own thread at open and after loads, outside the lock.
        self._addresses = AddressBook(data_dir, self._lock, lambda: self._census._building_active.view)
        self._opened = threading.Event()
        self._opener: int | None = None  # the thread reading the counts (its own calls never wait)
        #: Why the background open failed (None while it runs or when it succeeded).
        self.open_error: BaseException | None = None
        if not background:
            self._open(then)
            return
        held = threading.Event()

        def open_in_background() -> None:
            with self._lock:
                self._opener = threading.get_ident()
                held.set()
                try:
                    self._open(then)
                except BaseException as exc:  # noqa: BLE001 - kept and reported by the calls that follow
                    self.open_error = exc
                    log.exception("houses: the registry failed to open")
                finally:
                    self._opened.set()

        threading.Thread(target=open_in_background, name="citygrid-houses-open", daemon=True).start()
        held.wait()  # the thread holds the lock before any call can take it

    def _open(self, then) -> None:
        started = time.perf_counter()
        with self._lock:
            self._rebuild()
            if then is not None:
                then(self)
        self._opened.set()
        self._addresses.start()  # its thread swaps the index in under the lock, after this open
        log.info("houses: registry opened in %.1f s (%d buildings)", time.perf_counter() - started,
                 len(self._building_ids))

    @property
    def opening(self) -> bool:
        """Whether the registry is still reading its counts (a background open)."""
        return not self._opened.is_set()

    def wait_open(self, timeout: float | None = None) -> bool:
        """Wait for a background open to finish; whether it did within ``timeout`` (at once in the
        opening thread itself: ``then`` reads the registry it places)."""
        return threading.get_ident() == self._opener or self._opened.wait(timeout)

    def close(self) -> None:
        self._addresses.close()  # before the lock: the address thread may wait for it to swap in
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

    @property
    def n_buildings(self) -> int:
        """Buildings ever registered (demolished ones too)."""
        self.wait_open()
        return len(self._building_ids)

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
        n_units = conn.execute("SELECT count(*) FROM house_units").fetchone()[0]
        if len(rows) >= 1 << 21 or n_units >= (1 << 24) - 1:  # the bits of the packed columns below
            raise PreconditionFailed(f"{len(rows):,} buildings / {n_units:,} units exceed what a registry opens "
                                     f"(2,097,151 / 16,777,214)")
        # units and residents come as packed integers, one comma-separated text per column built in
        # SQLite (group_concat) and parsed by numpy: millions of rows without a Python object each
        kind = _case("kind", L.UNIT_KINDS, -1)
        klass, level = _case("rental_class", RENTAL_CLASSES, -1), _case("control_level", CONTROL_LEVELS, -1)
        units = _packed(conn, "house_units", f"(id << 33) | (building_id << 12) | (({kind}) << 8) | "
                                             f"((({klass}) + 1) << 4) | ((({level}) + 1) << 1) | (removed_on IS NULL)", 33)
        areas = _packed(conn, "house_units", "(id << 31) | coalesce(CAST(round(area_m2 * 100) AS INTEGER) + 1, 0)", 31)
        area = (areas & ((1 << 31) - 1)).astype(np.float64)
        area = np.where(area == 0, np.nan, (area - 1) / 100)
        census.add_units((units >> 12) & ((1 << 21) - 1), ((units >> 8) & 15).astype(np.int8), area.astype(np.float32),
                         (((units >> 4) & 15) - 1).astype(np.int8), (((units >> 1) & 7) - 1).astype(np.int8),
                         (units & 1).astype(bool))
        people = _packed(conn, "house_residents r LEFT JOIN house_residence h ON h.resident = r.id AND h.moved_out IS NULL",
                         "(r.id << 36) | ((coalesce(h.unit_id, -1) + 1) << 12) | (r.birth_year << 1) | r.registered",
                         36, order="r.id")
        census.add_residents(((people >> 12) & ((1 << 24) - 1)) - 1, (people >> 1) & 2047, (people & 1).astype(bool))
        census.changes += self._census.changes + 1  # a reopened registry's counts are new counts
        self._census = census
        self._nearest = None

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
        self.wait_open()
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

    def unit_exists(self, code: str) -> bool:
        """Whether a unit with ``code`` is in the registry and not removed."""
        with self._lock:
            return self._conn.execute("SELECT 1 FROM house_units WHERE code = ? AND removed_on IS NULL",
                                      (code,)).fetchone() is not None

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
        column = AREA_COLUMNS.get(level)
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
        """Buildings and units whose address matches ``text`` best (:mod:`.address`), with scores. The
        index is built at open and after loads in a thread of its own (:mod:`.address_book`); a search
        waits for the index of the last load, not for the registry's lock, and searches outside it."""
        self.wait_open()
        built = self._addresses.current()
        matches = built.index.search(text, limit)
        out = []
        with self._lock:
            for m in matches:
                if m.unit_row >= 0:
                    row = self._conn.execute(f"SELECT {_UNIT_COLUMNS} FROM house_units u JOIN house_buildings b "
                                             f"ON b.id = u.building_id WHERE u.id = ?",
                                             (int(built.unit_ids[m.unit_row]),)).fetchone()
                    out.append((self._unit(row), m.score))
                else:
                    row = self._conn.execute(f"SELECT id, {_BUILDING_COLUMNS} FROM house_buildings WHERE id = ?",
                                             (int(built.building_ids[m.building_row]),)).fetchone()
                    out.append((self._building(row), m.score))
        return out

    @property
    def addresses(self) -> AddressBook:
        """The address index's state (:mod:`.address_book`): its build, its errors."""
        return self._addresses

    def positions(self) -> Mapping[str, tuple[float, float]]:
        """Standing buildings' WGS84 positions by code: what the intake places a report given by
        building code at (a live view of the registry). A unit code (not iterated) gives its
        building's position when the unit is in the registry and not removed."""
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
            self._addresses.demolished(bid)
            self._nearest = None
        return self.building(code)

    # ------------------------------------------------------------------ counts

    @property
    def population_generation(self) -> int:
        """Grows with every change of the counts (a load, a move, a re-grid, a demolition): a reader that
        caches them compares it to know they are stale. Read without the lock (one attribute of the
        current counts, written under it), so a dashboard's event loop may ask it during a load."""
        return self._census.changes

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




def _case(column: str, names, other: int) -> str:
    """SQL giving the index of ``column``'s value in ``names`` (``other`` for any other value or null)."""
    cases = " ".join(f"WHEN '{name}' THEN {k}" for k, name in enumerate(names))
    return f"CASE {column} {cases} ELSE {other} END"


def _packed(conn, source: str, expression: str, id_shift: int, *, order: str = "id") -> np.ndarray:
    """``expression`` (an integer holding the row id in its bits from ``id_shift`` up) for every row of
    ``source`` in id order: one text of SQLite's ``group_concat`` parsed by numpy. The ids must be the
    rows 0..n-1 (the store numbers rows so); they are sorted if SQLite concatenated in another order."""
    text = conn.execute(f"SELECT group_concat(v) FROM (SELECT {expression} AS v FROM {source} ORDER BY {order})"
                        ).fetchone()[0]
    values = np.fromstring(text, dtype=np.int64, sep=",") if text else np.empty(0, dtype=np.int64)
    ids = values >> id_shift
    if not np.array_equal(ids, np.arange(len(values))):
        values = values[np.argsort(ids, kind="stable")]
        if not np.array_equal(values >> id_shift, np.arange(len(values))):
            raise RuntimeError(f"the rows of {source} are not numbered 0..{len(values) - 1}")
    return values


class _Positions(Mapping):
    def __init__(self, registry: HouseRegistry):
        self._registry = registry

    def __getitem__(self, code: str) -> tuple[float, float]:
        """The position of a building code, or of a unit code's building (a report placed by unit)."""
        registry = self._registry
        registry.wait_open()
        if isinstance(code, str) and len(code) == UNIT_DIGITS and code.isdigit():
            if not registry.unit_exists(code):
                raise KeyError(code)
            code = code[:BUILDING_DIGITS]
        bid = registry._building_ids.get(code)
        if bid is None or not registry._census._building_active.data[bid]:
            raise KeyError(code)
        lng, lat = registry._building_lnglat[bid]
        return float(lng), float(lat)

    def __iter__(self):
        self._registry.wait_open()
        active = self._registry._census._building_active.data
        return (c for c, k in self._registry._building_ids.items() if active[k])

    def __len__(self) -> int:
        self._registry.wait_open()
        return int(self._registry._census._building_active.view.sum())

