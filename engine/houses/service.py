"""The houses service's engine API: every call names its caller (a
:class:`~citygrid.engine.access.principals.Principal`), is bounded by the caller's role and jurisdiction,
and audits each read of personal data (:mod:`.privacy`). A gRPC ``HouseService`` servicer is a
translation of these methods, one RPC each, their dataclasses to messages and the errors of
:mod:`citygrid.engine.errors` to status codes:

=================================== ===========================================================
RPC                                 method
=================================== ===========================================================
GetBuilding                         :meth:`HouseService.get_building`
FindBuildings (near / grid / text)  :meth:`find_near`, :meth:`find_in`, :meth:`find_by_address`
GetUnit, ListUnits                  :meth:`get_unit`, :meth:`list_units`
ResolveCode (QR)                    :meth:`resolve_code`
MoveIn, MoveOut                     :meth:`move_in`, :meth:`move_out`
Declare, ReviewDeclaration          :meth:`declare`, :meth:`review_declaration`
ListDeclarations (pending, a grid)  :meth:`pending_declarations`
ListResidents (restricted)          :meth:`list_residents`, :meth:`resident_history`
ExportResidents (masked)            :meth:`export_residents`
CheckIn                             :meth:`check_in`
PopulationStats                     :meth:`population_stats`, :meth:`rental_stats`,
                                    :meth:`group_renting`
=================================== ===========================================================

Buildings and units are not personal data, but reads of them are still bounded by jurisdiction
(the building's current chain); counts are cut to the areas the caller's jurisdiction covers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from citygrid.engine.errors import Forbidden, InvalidInput, NotFound, PreconditionFailed
from citygrid.engine.houses import privacy
from citygrid.engine.houses.census import AGE_BANDS, AreaCounts, age_band
from citygrid.engine.houses.checkins import CheckIn, CheckInRules, distance_m, speed_mps
from citygrid.engine.houses.codes import QrKeyring, UnitCode, parse_unit_code
from citygrid.engine.houses.records import Building, Residence, Resident, Unit
from citygrid.engine.houses.dates import local_date
from citygrid.engine.houses.registry import HouseRegistry
from citygrid.engine.houses.store import transaction
from citygrid.engine.access.principals import Principal, Role

log = logging.getLogger("citygrid.houses")

#: Kinds of declaration: moving in or moving out.
DECLARATION_KINDS = ("move_in", "move_out")


@dataclass(frozen=True)
class Declaration:
    """A self-declaration (实有信息自主申报) and its check (核验)."""

    declaration_id: int
    kind: str
    unit_code: str
    grid_code: str | None
    resident_id: str
    name: str | None
    birth_year: int | None
    registered: bool | None
    moved_on: str
    declared_by: str
    declared_at: str
    status: str
    reviewed_by: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class MaskedResident:
    """A resident as an export shows them: masked name, age band, registration, home."""

    resident_id: str
    name: str
    age_band: str
    registered: bool
    unit_code: str | None


#: Most residents one page of an export holds (:meth:`HouseService.export_residents`).
EXPORT_PAGE = 10_000


def export_cursor(row: MaskedResident) -> str:
    """Where an export page ended: ``after`` for the next page (unit code, ``/``, resident id)."""
    return f"{row.unit_code}/{row.resident_id}"


def _export_position(after: str) -> tuple[str, str] | None:
    if not after:
        return None
    unit_code, slash, resident_id = str(after).partition("/")
    if not slash or not unit_code.isdigit() or not resident_id:
        raise InvalidInput(f"an export cursor is a unit code, '/', and a resident id (the last row's), not {after!r}")
    return unit_code, resident_id


class HouseService:
    """The houses wing's API over a :class:`HouseRegistry` (see the module docstring)."""

    def __init__(self, registry: HouseRegistry, keyring: QrKeyring, *, checkin_rules: CheckInRules | None = None):
        self.registry = registry
        self.keyring = keyring
        self.checkin_rules = checkin_rules or CheckInRules()
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        self._listeners_lock = threading.Lock()

    @property
    def clock(self):
        return self.registry.clock

    def _now(self) -> datetime:
        return self.registry.clock()

    # ------------------------------------------------------------------ buildings and units

    def _seen(self, principal: Principal, building: Building) -> Building:
        principal.require_covers([c for c in building.chain if c is not None], what=f"building {building.code}")
        return building

    def get_building(self, principal: Principal, code: str) -> Building:
        return self._seen(principal, self.registry.building(code))

    def find_near(self, principal: Principal, lng: float, lat: float, *, radius_m: float = 100.0,
                  crs: str = "wgs84") -> tuple[Building, float] | None:
        found = self.registry.nearest(lng, lat, radius_m=radius_m, crs=crs)
        if found is not None:
            self._seen(principal, found[0])
        return found

    def find_in(self, principal: Principal, level: str, code: str, *, limit: int = 10_000) -> list[Building]:
        principal.require_covers(self.registry.area_chain(level, code), what=f"{level} {code}")
        return [b for b in self.registry.buildings_in(level, code, limit=limit)
                if principal.covers([c for c in b.chain if c is not None])]

    def find_by_address(self, principal: Principal, text: str, *, limit: int = 10) -> list[tuple[Building | Unit, float]]:
        out = []
        for record, score in self.registry.search_address(text, limit):
            building = record if isinstance(record, Building) else self.registry.building(record.building_code)
            if principal.covers([c for c in building.chain if c is not None]):
                out.append((record, score))
        return out

    def get_unit(self, principal: Principal, code: str) -> Unit:
        unit = self.registry.unit(code)
        self._seen(principal, self.registry.building(unit.building_code))
        return unit

    def list_units(self, principal: Principal, building_code: str) -> list[Unit]:
        self.get_building(principal, building_code)
        return self.registry.units_of(building_code)

    def resolve_code(self, principal: Principal, payload: str) -> Building | Unit:
        """The building or unit a door plate's QR payload names (refused when tampered:
        :class:`~citygrid.engine.errors.Unauthorized`; :class:`NotFound` when not in the registry)."""
        code = self.keyring.resolve(payload).code
        return self.get_unit(principal, code.code) if isinstance(code, UnitCode) else \
            self.get_building(principal, code.code)

    # ------------------------------------------------------------------ residence records

    def _unit_chain(self, unit_code: str):
        return self.registry.building(parse_unit_code(unit_code).building_code).chain

    def move_in(self, principal: Principal, resident_id: str, unit_code: str, on=None, **person) -> Residence:
        privacy.require_writer(principal, self._unit_chain(unit_code), what=f"unit {unit_code}")
        chain = self.registry.resident_chain(resident_id)
        if chain is not None:  # moving someone out of a unit needs that unit's jurisdiction too
            privacy.require_writer(principal, chain, what=f"resident {resident_id}'s present home")
        return self.registry.move_in(resident_id, unit_code, on, recorded_by=principal.name, **person)

    def move_out(self, principal: Principal, resident_id: str, on=None) -> Residence:
        chain = self.registry.resident_chain(resident_id)
        if chain is None:
            self.registry.move_out(resident_id, on, recorded_by=principal.name)  # raises the precise error
        privacy.require_writer(principal, chain, what=f"resident {resident_id}'s home")
        return self.registry.move_out(resident_id, on, recorded_by=principal.name)

    # ------------------------------------------------------------------ personal data (audited)

    def _area_chain(self, level: str, code: str):
        if level == "unit":
            return self._unit_chain(code)
        if level == "building":
            return self.registry.building(code).chain
        return self.registry.area_chain(level, code)

    def list_residents(self, principal: Principal, level: str, code: str, *, reason: str,
                       limit: int = 10_000) -> list[Resident]:
        """Residents living now in a unit, building, grid, community or street, with names and birth
        years: for :data:`~.privacy.PEOPLE_READERS` inside their jurisdiction; audited before return."""
        reason = privacy.check_reason(reason)
        privacy.require_reader(principal, self._area_chain(level, code), what=f"the residents of {level} {code}")
        people = self.registry.residents(level, code, limit=limit)
        self._audit(principal, f"list_residents {level} {code}", reason, [p.resident_id for p in people])
        return people

    def resident_history(self, principal: Principal, resident_id: str, *, reason: str) -> list[Residence]:
        reason = privacy.check_reason(reason)
        chain = self.registry.resident_chain(resident_id)
        if chain is None:
            if not principal.everywhere:  # no home to bound it by: only a district-wide reader
                raise Forbidden(f"resident {resident_id} lives in no unit now: their history is for district-wide "
                                f"readers")
            chain = ()
        privacy.require_reader(principal, chain, what=f"resident {resident_id}")
        history = self.registry.history(resident_id)
        self._audit(principal, f"resident_history {resident_id}", reason, [resident_id])
        return history

    def export_residents(self, principal: Principal, level: str, code: str, *, reason: str, after: str = "",
                         limit: int = EXPORT_PAGE) -> list[MaskedResident]:
        """One page of an export of the residents of an area: names masked (张*三) for every role, age
        bands instead of birth years; the same roles and jurisdiction as :meth:`list_residents`, and
        each page audited (its resident ids) before it returns. Pages follow (unit code, resident
        id) order: pass the last row's :func:`export_cursor` as ``after`` for the next page; at most
        ``limit`` (1 to :data:`EXPORT_PAGE`) rows a page."""
        reason = privacy.check_reason(reason)
        if not 1 <= int(limit) <= EXPORT_PAGE:
            raise InvalidInput(f"an export page holds 1 to {EXPORT_PAGE:,} residents, not {limit}")
        position = _export_position(after)
        privacy.require_reader(principal, self._area_chain(level, code), what=f"the residents of {level} {code}")
        people = self.registry.residents(level, code, limit=int(limit), after=position)
        year = int(local_date(self._now())[:4])
        bands = age_band([p.birth_year for p in people], year) if people else []
        out = [MaskedResident(p.resident_id, privacy.mask_name(p.name), AGE_BANDS[int(b)][0], p.registered, p.unit_code)
               for p, b in zip(people, bands)]
        self._audit(principal, f"export_residents {level} {code}" + (f" after {after}" if after else ""), reason,
                    [p.resident_id for p in people])
        return out

    def _audit(self, principal: Principal, action: str, reason: str, records) -> None:
        registry = self.registry
        with registry.lock, transaction(registry.connection):
            privacy.audit(registry.connection, principal, self._now(), action, reason, records)

    def audit_log(self, principal: Principal, *, limit: int = 100) -> list[dict]:
        """The latest audit rows (admins only)."""
        principal.require_role(Role.ADMIN, action="read the personal-data audit log")
        with self.registry.lock:
            rows = self.registry.connection.execute(
                "SELECT id, at, principal, role, action, reason, n_records, records FROM house_audit "
                "ORDER BY id DESC LIMIT ?", (int(limit),)).fetchall()
        keys = ("id", "at", "principal", "role", "action", "reason", "n_records", "records")
        return [dict(zip(keys, r)) for r in rows]

    # ------------------------------------------------------------------ self-declaration (自主申报)

    def declare(self, payload: str, declared_by: str, kind: str, unit_code: str, resident_id: str, *,
                moved_on=None, name: str | None = None, gender: str | None = None, birth_year: int | None = None,
                registered: bool | None = None) -> Declaration:
        """A resident or landlord, having scanned the building's (or unit's) door plate, declares a
        move in or out of one of its units. The signed payload is the credential; the declaration
        waits (``pending``) for the grid worker's check before it counts."""
        code = self.keyring.resolve(payload).code
        unit_code = parse_unit_code(unit_code).code
        plate = code.code
        if not unit_code.startswith(plate):
            raise InvalidInput(f"unit {unit_code} is not in {plate}, the building or unit whose plate was scanned")
        if kind not in DECLARATION_KINDS:
            raise InvalidInput(f"a declaration is one of {', '.join(DECLARATION_KINDS)}, not {kind!r}")
        if not str(declared_by).strip() or not str(resident_id).strip():
            raise InvalidInput("a declaration names who declares and the resident it is about")
        unit = self.registry.unit(unit_code)
        if unit.removed_on is not None:
            raise PreconditionFailed(f"unit {unit_code} was removed on {unit.removed_on}")
        building = self.registry.building(unit.building_code)
        moved_on = local_date(moved_on, "declared date") if moved_on is not None else self.registry.today()
        now = self._now().isoformat()
        with self.registry.lock, transaction(self.registry.connection) as conn:
            uid = conn.execute("SELECT id FROM house_units WHERE code = ?", (unit_code,)).fetchone()[0]
            cur = conn.execute(
                "INSERT INTO house_declarations (kind, unit_id, grid_code, resident_id, name, gender, birth_year, "
                "registered, moved_on, declared_by, declared_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (kind, uid, building.grid_code, str(resident_id).strip(), name, gender, birth_year,
                 None if registered is None else int(bool(registered)), moved_on, str(declared_by).strip(), now))
            did = cur.lastrowid
        self._wake(building.grid_code)
        return self._declaration(did)

    def on_declaration(self, callback: Callable[[], None], grid_code: str) -> Callable[[], None]:
        """Call ``callback()`` after each committed declaration in ``grid_code`` until the function
        returned is called: how a watch of :meth:`pending_declarations` waits without a thread
        (subscribe before the first read; the callback runs in the declaring thread and must return
        at once; an error in it is logged, not raised)."""
        with self._listeners_lock:
            self._listeners.setdefault(grid_code, []).append(callback)

        def stop() -> None:
            with self._listeners_lock:
                listeners = self._listeners.get(grid_code, [])
                if callback in listeners:
                    listeners.remove(callback)
                if not listeners:
                    self._listeners.pop(grid_code, None)

        return stop

    def _wake(self, grid_code: str | None) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners.get(grid_code, ()))
        for callback in listeners:
            try:
                callback()
            except Exception:  # noqa: BLE001 - a watcher's error is not the declarer's
                log.exception("a declaration listener of grid %s failed", grid_code)

    def _declaration(self, did: int) -> Declaration:
        with self.registry.lock:
            row = self.registry.connection.execute(
                "SELECT d.id, d.kind, u.code, d.grid_code, d.resident_id, d.name, d.birth_year, d.registered, "
                "d.moved_on, d.declared_by, d.declared_at, d.status, d.reviewed_by, d.note FROM house_declarations d "
                "JOIN house_units u ON u.id = d.unit_id WHERE d.id = ?", (int(did),)).fetchone()
        if row is None:
            raise NotFound(f"no declaration has the id {did}")
        row = list(row)
        row[7] = None if row[7] is None else bool(row[7])
        return Declaration(*row)

    def pending_declarations(self, principal: Principal, grid_code: str, *, reason: str, after: int = 0,
                             limit: int | None = None) -> list[Declaration]:
        """A grid's declarations waiting for the check, oldest first (they name people: readers only,
        audited), those after the declaration id ``after`` (a feed's cursor), at most ``limit``. A
        feed's read that finds nothing new (``after`` > 0) leaves no audit row: it read no one."""
        reason = privacy.check_reason(reason)
        privacy.require_reader(principal, self.registry.area_chain("grid", grid_code),
                               what=f"grid {grid_code}'s declarations")
        with self.registry.lock:
            ids = [r[0] for r in self.registry.connection.execute(
                "SELECT id FROM house_declarations WHERE grid_code = ? AND status = 'pending' AND id > ? ORDER BY id "
                "LIMIT ?", (str(grid_code).strip(), int(after), -1 if limit is None else int(limit))).fetchall()]
        out = [self._declaration(i) for i in ids]
        if after and not out:
            return out
        self._audit(principal, f"pending_declarations {grid_code}", reason, [d.resident_id for d in out])
        return out

    def review_declaration(self, principal: Principal, declaration_id: int, *, accept: bool,
                           note: str = "") -> Declaration:
        """The grid worker's check (核验): accepted, the move is registered (and counts); rejected, it
        is kept as rejected. Only a pending declaration can be checked."""
        d = self._declaration(declaration_id)
        privacy.require_writer(principal, self._unit_chain(d.unit_code), what=f"unit {d.unit_code}")
        if d.status != "pending":
            raise PreconditionFailed(f"declaration {declaration_id} is already {d.status}")
        if accept:
            who = f"{principal.name} (declaration {declaration_id})"
            if d.kind == "move_in":
                self.registry.move_in(d.resident_id, d.unit_code, d.moved_on, recorded_by=who, name=d.name,
                                      birth_year=d.birth_year, registered=d.registered)
            else:
                home = self.registry.resident_chain(d.resident_id)
                current = self.registry.residents("unit", d.unit_code)
                if home is None or d.resident_id not in {p.resident_id for p in current}:
                    raise PreconditionFailed(f"resident {d.resident_id} does not live in unit {d.unit_code}")
                self.registry.move_out(d.resident_id, d.moved_on, recorded_by=who)
        with self.registry.lock, transaction(self.registry.connection) as conn:
            conn.execute("UPDATE house_declarations SET status = ?, reviewed_by = ?, reviewed_at = ?, note = ? "
                         "WHERE id = ?", ("accepted" if accept else "rejected", principal.name,
                                          self._now().isoformat(), note, int(declaration_id)))
        return self._declaration(declaration_id)

    # ------------------------------------------------------------------ check-in (签到)

    def check_in(self, principal: Principal, building_code: str, lng: float, lat: float, *,
                 crs: str = "wgs84") -> CheckIn:
        """A grid worker checks in at a building from the terminal's position (see :mod:`.checkins`)."""
        from citygrid.engine.layers.coordinates import to_wgs84

        principal.require_role(Role.WORKER, action="check in at a building")
        building = self.get_building(principal, building_code)
        x, y = to_wgs84([lng], [lat], crs)
        if not (abs(x[0]) <= 180 and abs(y[0]) <= 90):
            raise InvalidInput(f"({lng}, {lat}) is not a valid {crs} longitude / latitude")
        x, y = float(x[0]), float(y[0])
        distance = distance_m(x, y, building.lng, building.lat)
        now = self._now()
        worker = principal.worker_id or principal.name
        rules = self.checkin_rules
        with self.registry.lock, transaction(self.registry.connection) as conn:
            last = conn.execute("SELECT at, lng, lat FROM house_checkins WHERE worker = ? ORDER BY id DESC LIMIT 1",
                                (worker,)).fetchone()
            speed = None
            if last is not None:
                seconds = (now - datetime.fromisoformat(last[0])).total_seconds()
                speed = speed_mps(distance_m(last[1], last[2], x, y), seconds, rules)
            flags = rules.flags(distance_m=distance, speed_mps=speed)
            bid = self.registry.building_id(building.code)
            conn.execute("INSERT INTO house_checkins (worker, building_id, at, lng, lat, distance_m, speed_mps, flags) "
                         "VALUES (?,?,?,?,?,?,?,?)", (worker, bid, now.isoformat(), x, y, distance,
                                                      None if speed is None or speed == float("inf") else speed,
                                                      ",".join(flags)))
        return CheckIn(worker, building.code, now.isoformat(), x, y, distance, speed, flags)

    # ------------------------------------------------------------------ counts (no person in them)

    def _covered(self, principal: Principal, counts: AreaCounts) -> AreaCounts:
        if principal.everywhere:
            return counts
        chains = self._chains()
        keep = [k for k, code in enumerate(counts.codes) if principal.covers(chains.get(code, (code,)))]
        return AreaCounts(counts.level, [counts.codes[k] for k in keep], counts.columns, counts.counts[keep])

    def _chains(self) -> dict[str, tuple]:
        """Each current area's parent chain (from the registry's buildings)."""
        with self.registry.lock:
            rows = self.registry.connection.execute(
                "SELECT DISTINCT grid_code, community_code, street_code, district_code FROM house_buildings").fetchall()
        chains = {}
        for row in rows:
            for level in range(4):
                if row[level] is not None:
                    chains[row[level]] = tuple(c for c in row[level:] if c is not None)
        return chains

    def population_stats(self, principal: Principal, level: str = "grid", *, year: int | None = None) -> AreaCounts:
        """Population per area (counts only), cut to the caller's jurisdiction."""
        return self._covered(principal, self.registry.population(level, year=year))

    def rental_stats(self, principal: Principal, level: str = "grid") -> AreaCounts:
        return self._covered(principal, self.registry.rentals(level))

    def group_renting(self, principal: Principal, grid_code: str) -> list[dict]:
        """Group-renting units of a grid (unit codes and counts, no person)."""
        principal.require_covers(self.registry.area_chain("grid", grid_code), what=f"grid {grid_code}")
        return self.registry.group_renting("grid", grid_code)
