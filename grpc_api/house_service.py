"""``citygrid.v1.HouseService``: the building and unit registry over the engine's
:class:`~citygrid.engine.houses.service.HouseService`, one RPC per engine method (the table in that
module's docstring).

The servicer converts messages to engine calls and back; the rules (roles, jurisdiction, the privacy
of residents, the audit written before personal data returns, codes and QR signatures) are the
engine's, and its errors map to status codes through :mod:`citygrid.grpc_api.errors`.

``WatchDeclarations`` is a grid's pending declarations as a resumable feed in ``WatchDispatches``'
way: async, it reads the feed after its cursor in a handler thread, and when there is nothing new
waits on the event loop (holding no thread) for the engine's news of a declaration in that grid
(:meth:`~citygrid.engine.houses.service.HouseService.on_declaration`).
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime

import grpc

from citygrid.engine.errors import InvalidInput, Unavailable
from citygrid.engine.houses.records import Building, Residence, Resident, Unit
from citygrid.engine.houses.service import EXPORT_PAGE, Declaration, HouseService, MaskedResident, export_cursor
from citygrid.grpc_api._pb import house_pb2, house_pb2_grpc
from citygrid.grpc_api.convert import crs_of, to_timestamp
from citygrid.grpc_api.interceptors import Authenticator
from citygrid.grpc_api.threads import Blocking

SERVICE_NAME = house_pb2.DESCRIPTOR.services_by_name["HouseService"].full_name
#: Declarations a watch reads at a time.
WATCH_PAGE = 100
#: Radius of a FindBuildings near a point that gives none.
DEFAULT_RADIUS_M = 100.0
#: Residents per ExportResidents page when the request names none (at most the engine's EXPORT_PAGE).
EXPORT_PAGE_DEFAULT = 1_000


class HouseServicer(house_pb2_grpc.HouseServiceServicer):
    def __init__(self, houses: HouseService, auth: Authenticator, blocking: Blocking):
        self._houses = houses
        self._auth = auth
        self._blocking = blocking

    def _caller(self):
        principal = self._auth.principal()
        registry = self._houses.registry
        if registry.opening:
            raise Unavailable("the house registry is loading (it opens after the server starts listening); "
                              "try again in a few seconds (gRPC health reports citygrid.v1.HouseService "
                              "SERVING once it is open)")
        if registry.open_error is not None:
            raise Unavailable(f"the house registry failed to open ({registry.open_error}); the server's log says "
                              "why, and a restart opens it again")
        return principal, self._houses

    # ------------------------------------------------------------------ buildings and units

    def GetBuilding(self, request, context):
        principal, houses = self._caller()
        return building_message(houses.get_building(principal, request.code))

    def FindBuildings(self, request, context):
        principal, houses = self._caller()
        where = request.WhichOneof("where")
        response = house_pb2.FindBuildingsResponse()
        if where == "near":
            near = request.near
            if near.radius_m < 0 or not math.isfinite(near.radius_m):
                raise InvalidInput(f"radius_m must be a positive number of metres, not {near.radius_m}")
            found = houses.find_near(principal, near.lng, near.lat, radius_m=near.radius_m or DEFAULT_RADIUS_M,
                                     crs=crs_of(near.crs).stored_name)
            if found is not None:
                response.found.add(building=building_message(found[0]), distance_m=found[1])
        elif where == "area":
            for b in houses.find_in(principal, request.area.level, request.area.code, limit=_limit(request.limit, 10_000)):
                response.found.add(building=building_message(b))
        elif where == "address":
            for record, score in houses.find_by_address(principal, request.address, limit=_limit(request.limit, 10)):
                if isinstance(record, Unit):
                    building = houses.registry.building(record.building_code)
                    response.found.add(building=building_message(building), unit=unit_message(record), score=score)
                else:
                    response.found.add(building=building_message(record), score=score)
        else:
            raise InvalidInput("say where to find buildings: near a point, in an area, or by address")
        return response

    def GetUnit(self, request, context):
        principal, houses = self._caller()
        return unit_message(houses.get_unit(principal, request.code))

    def ListUnits(self, request, context):
        principal, houses = self._caller()
        return house_pb2.ListUnitsResponse(units=[unit_message(u) for u in houses.list_units(principal, request.building_code)])

    def ResolveCode(self, request, context):
        principal, houses = self._caller()
        record = houses.resolve_code(principal, request.payload)
        if isinstance(record, Unit):
            return house_pb2.ResolveCodeResponse(unit=unit_message(record))
        return house_pb2.ResolveCodeResponse(building=building_message(record))

    # ------------------------------------------------------------------ residence

    def MoveIn(self, request, context):
        principal, houses = self._caller()
        person = {"name": request.name or None, "gender": request.gender or None,
                  "birth_year": _optional(request, "birth_year"), "registered": _optional(request, "registered")}
        return residence_message(houses.move_in(principal, request.resident_id, request.unit_code, request.on or None,
                                                **person))

    def MoveOut(self, request, context):
        principal, houses = self._caller()
        return residence_message(houses.move_out(principal, request.resident_id, request.on or None))

    def Declare(self, request, context):
        self._caller()  # any token; the plate's signed payload is the credential
        declaration = self._houses.declare(
            request.payload, request.declared_by, request.kind, request.unit_code, request.resident_id,
            moved_on=request.moved_on or None, name=request.name or None, gender=request.gender or None,
            birth_year=_optional(request, "birth_year"), registered=_optional(request, "registered"))
        return declaration_message(declaration, personal=False)

    def ReviewDeclaration(self, request, context):
        principal, houses = self._caller()
        return declaration_message(houses.review_declaration(principal, request.declaration_id, accept=request.accept,
                                                             note=request.note))

    async def WatchDeclarations(self, request, context):
        principal, houses = self._caller()
        grid, reason = request.grid_code.strip(), request.reason
        loop = asyncio.get_running_loop()
        news = asyncio.Event()
        stop = houses.on_declaration(lambda: loop.call_soon_threadsafe(news.set), grid)
        try:
            cursor = request.after
            while True:
                news.clear()  # before the read: a declaration committed after this wakes the wait
                page = await self._blocking(houses.pending_declarations, principal, grid, reason=reason,
                                            after=cursor, limit=WATCH_PAGE)
                for declaration in page:
                    yield declaration_message(declaration)
                    cursor = declaration.declaration_id
                if len(page) < WATCH_PAGE:
                    await news.wait()
        finally:
            stop()

    def ListResidents(self, request, context):
        principal, houses = self._caller()
        people = houses.list_residents(principal, request.level, request.code, reason=request.reason,
                                       limit=_limit(request.limit, 10_000))
        return house_pb2.ListResidentsResponse(residents=[resident_message(p) for p in people])

    def ResidentHistory(self, request, context):
        principal, houses = self._caller()
        stays = houses.resident_history(principal, request.resident_id, reason=request.reason)
        return house_pb2.ResidentHistoryResponse(stays=[residence_message(r) for r in stays])

    async def ExportResidents(self, request, context):
        """Pages of at most ``page_size`` masked residents, each read (and audited) in a handler thread
        just before it is sent, until the area's residents or ``limit`` run out."""
        principal, houses = self._caller()
        page_size = _limit(request.page_size, EXPORT_PAGE_DEFAULT)
        if page_size > EXPORT_PAGE:
            raise InvalidInput(f"page_size is at most {EXPORT_PAGE:,} residents, not {page_size:,}")
        left = _limit(request.limit, 0) or None  # None: every resident of the area
        after = request.after
        while left is None or left > 0:
            n = page_size if left is None else min(page_size, left)
            page = await self._blocking(houses.export_residents, principal, request.level, request.code,
                                        reason=request.reason, after=after, limit=n)
            if page:
                after = export_cursor(page[-1])
                yield house_pb2.ExportResidentsPage(residents=[masked_message(r) for r in page], after=after)
            if len(page) < n:
                return
            if left is not None:
                left -= len(page)

    def CheckIn(self, request, context):
        principal, houses = self._caller()
        c = houses.check_in(principal, request.building_code, request.lng, request.lat, crs=crs_of(request.crs).stored_name)
        speed = None if c.speed_mps is None else (c.speed_mps * 3.6 if math.isfinite(c.speed_mps) else math.inf)
        return house_pb2.CheckInResponse(worker=c.worker, building_code=c.building_code,
                                         at=to_timestamp(datetime.fromisoformat(c.at)), lng=c.lng, lat=c.lat,
                                         distance_m=c.distance_m, speed_kmh=speed, flags=list(c.flags),
                                         accepted=c.accepted)

    # ------------------------------------------------------------------ counts

    def PopulationStats(self, request, context):
        principal, houses = self._caller()
        return counts_message(houses.population_stats(principal, request.level or "grid", year=request.year or None))

    def RentalStats(self, request, context):
        principal, houses = self._caller()
        return counts_message(houses.rental_stats(principal, request.level or "grid"))

    def GroupRenting(self, request, context):
        principal, houses = self._caller()
        units = houses.group_renting(principal, request.grid_code)
        return house_pb2.GroupRentingResponse(units=[house_pb2.GroupRentingUnit(**u) for u in units])


# ---------------------------------------------------------------------- conversions


def _limit(value: int, default: int) -> int:
    if value < 0:
        raise InvalidInput(f"limit must be positive (0: {default:,}), not {value}")
    return value or default


def _optional(message, name: str):
    return getattr(message, name) if message.HasField(name) else None


def building_message(b: Building) -> house_pb2.Building:
    return house_pb2.Building(
        code=b.code, kind=b.kind, floors=b.floors, address=b.address, lng=b.lng, lat=b.lat, issuing_grid=b.issuing_grid,
        grid_code=b.grid_code or "", community_code=b.community_code or "", street_code=b.street_code or "",
        district_code=b.district_code or "", demolished_on=b.demolished_on or "", n_units=b.n_units,
        residents=b.residents)


def unit_message(u: Unit) -> house_pb2.Unit:
    return house_pb2.Unit(
        code=u.code, building_code=u.building_code, kind=u.kind, entrance=u.entrance, floor=u.floor, number=u.number,
        area_m2=u.area_m2, rental=u.rental, rental_class=u.rental_class or "", control_level=u.control_level or "",
        address=u.address, removed_on=u.removed_on or "", residents=u.residents)


def masked_message(r: MaskedResident) -> house_pb2.MaskedResident:
    return house_pb2.MaskedResident(resident_id=r.resident_id, name=r.name, age_band=r.age_band,
                                    registered=r.registered, unit_code=r.unit_code or "")


def residence_message(r: Residence) -> house_pb2.Residence:
    return house_pb2.Residence(resident_id=r.resident_id, unit_code=r.unit_code, moved_in=r.moved_in,
                               moved_out=r.moved_out or "", recorded_by=r.recorded_by)


def resident_message(r: Resident) -> house_pb2.Resident:
    return house_pb2.Resident(resident_id=r.resident_id, name=r.name, gender=r.gender or "", birth_year=r.birth_year,
                              registered=r.registered, unit_code=r.unit_code or "", building_code=r.building_code or "",
                              grid_code=r.grid_code or "", moved_in=r.moved_in or "")


def declaration_message(d: Declaration, *, personal: bool = True) -> house_pb2.Declaration:
    """A declaration; without ``personal`` (Declare's answer, to any token) its name and birth year are left out."""
    return house_pb2.Declaration(
        declaration_id=d.declaration_id, kind=d.kind, unit_code=d.unit_code, grid_code=d.grid_code or "",
        resident_id=d.resident_id, name=(d.name or "") if personal else "",
        birth_year=d.birth_year if personal else None, registered=d.registered, moved_on=d.moved_on,
        declared_by=d.declared_by, declared_at=d.declared_at, status=d.status, reviewed_by=d.reviewed_by or "",
        note=d.note or "")


def counts_message(counts) -> house_pb2.HouseCounts:
    return house_pb2.HouseCounts(level=counts.level, columns=list(counts.columns),
                                areas=[house_pb2.HouseCount(code=code, counts=[int(v) for v in row])
                                       for code, row in zip(counts.codes, counts.counts)])


def add_to_server(server: grpc.Server, servicer: HouseServicer) -> str:
    """Register ``servicer`` on ``server``; return the service's full name."""
    house_pb2_grpc.add_HouseServiceServicer_to_server(servicer, server)
    return SERVICE_NAME
