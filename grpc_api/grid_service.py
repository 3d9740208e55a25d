"""``citygrid.v1.GridService``: point assignment and grid queries over the layer registry.

Every call takes one :class:`~citygrid.engine.layers.registry.LayerSnapshot` (the version valid at the
request's time, or the active one) and works on it to the end, so an activation during the call
changes nothing for it. A point that is not a valid lng, lat (NaN, infinite, out of range) gets
``POINT_STATUS_INVALID`` and no grid in every method, as a bad point inside a batch does.
``AssignStream`` is async (it waits for the client's next point on the event loop) and assigns each
point in a handler thread; the other methods are plain unary methods, run in handler threads, but for
``AssignPoint``, which runs on the event loop when it is an in-memory read (no ``event_time``, the
catalogue built): a point takes less time than a thread hop would. Batches go to the engine in chunks of ``chunk_size`` points; the engine checks
the call's deadline (``context.time_remaining()``) and cancellation (``context.add_callback``) between
chunks and stops with DEADLINE_EXCEEDED, leaving no work running.

Jurisdiction: a point whose grid lies outside the caller's jurisdiction gets
``POINT_STATUS_OUT_OF_JURISDICTION`` and no grid; grid queries outside it are PERMISSION_DENIED, and
lists leave such grids out.

Geometry (issue 12's map part): ``GetGrid`` sends the grid's shape as WKB (and GeoJSON on request);
``GetLayerGeometry`` streams a layer's grids, communities, streets or district, optionally simplified
without gaps (:mod:`citygrid.engine.layers.geometry`, cached per version in the server's
:class:`~citygrid.engine.layers.geometry.ShapeCache`, the one the HTTP gateway shares), the areas
inside the caller's jurisdiction only.
"""

from __future__ import annotations

import base64
import json
import threading
import time

import grpc
import numpy as np

from citygrid.engine.errors import InvalidInput, NotFound, Overloaded, PreconditionFailed
from citygrid.engine.layers.geometry import ShapeCache, check_level, check_tolerance
from citygrid.engine.layers.registry import LayerRegistry, LayerSnapshot
from citygrid.grpc_api import convert
from citygrid.grpc_api._pb import grid_pb2, grid_pb2_grpc
from citygrid.grpc_api.config import ServerConfig
from citygrid.grpc_api.convert import GridCatalogs, crs_of, from_timestamp
from citygrid.grpc_api.interceptors import Authenticator
from citygrid.grpc_api.threads import Blocking, on_loop

SERVICE_NAME = grid_pb2.DESCRIPTOR.services_by_name["GridService"].full_name
#: ListGrids page size when the request gives none, and the most it may ask for.
MAX_PAGE_SIZE = 1000
#: Areas per GetLayerGeometry message when the request gives none, and the most it may ask for (500
#: grids are about 1.5 MB of WKB unsimplified, well under the message limit).
MAX_GEOMETRY_PAGE = 500
_GEOMETRY_FORMATS = {grid_pb2.GEOMETRY_FORMAT_UNSPECIFIED: "wkb", grid_pb2.GEOMETRY_FORMAT_WKB: "wkb",
                     grid_pb2.GEOMETRY_FORMAT_GEOJSON: "geojson"}

_INSIDE_STATUSES = frozenset(
    {grid_pb2.POINT_STATUS_INSIDE, grid_pb2.POINT_STATUS_SHARED_BOUNDARY, grid_pb2.POINT_STATUS_FALLBACK}
)


class GridServicer(grid_pb2_grpc.GridServiceServicer):
    def __init__(self, registry: LayerRegistry, auth: Authenticator, config: ServerConfig, blocking: Blocking,
                 shapes: ShapeCache | None = None):
        self._registry = registry
        self._shapes = shapes or ShapeCache()
        self._auth = auth
        self._blocking = blocking
        self._max_points = config.max_points_per_request
        self._chunk_size = config.chunk_size
        self._catalogs = GridCatalogs()

    # ------------------------------------------------------------------ assignment

    def _quick(self, request) -> bool:
        """Whether ``AssignPoint`` may run on the event loop: no time to look a version up for, and the
        active version's catalogue is built (a point then takes microseconds, all in memory)."""
        if request.HasField("event_time"):
            return False
        try:
            return self._catalogs.built(self._registry.snapshot())
        except PreconditionFailed:
            return False

    @on_loop(when=_quick)
    def AssignPoint(self, request, context):
        principal = self._auth.principal()
        snapshot = self._snapshot(request, "event_time")
        return self._assign_one(snapshot, principal, request)

    async def AssignStream(self, request_iterator, context):
        principal = self._auth.principal()
        async for request in request_iterator:
            yield await self._blocking(self._assign_request, principal, request)

    def AssignPoints(self, request, context):
        principal = self._auth.principal()
        lng = _float64s(request.lng, "lng")
        lat = _float64s(request.lat, "lat")
        if len(lng) != len(lat):
            raise InvalidInput(f"lng has {len(lng)} values and lat {len(lat)}; give one of each per point")
        if len(lng) == 0:
            raise InvalidInput("the batch is empty; send at least one point")
        if len(lng) > self._max_points:
            raise Overloaded(
                f"{len(lng):,} points exceed the limit of {self._max_points:,} per request; split the batch"
            )
        snapshot = self._snapshot(request, "event_time")
        catalog = self._catalogs(snapshot)
        result = snapshot.assigner.assign(
            lng,
            lat,
            crs=crs_of(request.crs),
            fallback_m=request.fallback_m,
            chunk_size=self._chunk_size,
            **_deadline_and_cancel(context),
        )
        rows = result.grid_rows
        statuses = convert.point_statuses(result.status)
        allowed = catalog.allowed(principal)
        if allowed is not None:
            hidden = rows >= 0
            hidden[hidden] = ~allowed[rows[hidden]]
            if hidden.any():
                rows = np.where(hidden, np.int32(-1), rows)
                statuses[hidden] = convert.OUT_OF_JURISDICTION
        present = ()
        if not request.rows_only:
            present = np.flatnonzero(np.bincount(rows + 1, minlength=catalog.n_grids + 1)[1:]).tolist()
        response = catalog.points_response(present)
        response.grid_rows = rows.astype("<i4", copy=False).tobytes()
        response.statuses = statuses.tobytes()
        response.layer_version = snapshot.version_id
        return response

    def _assign_request(self, principal, request) -> grid_pb2.AssignPointResponse:
        return self._assign_one(self._snapshot(request, "event_time"), principal, request)

    def _assign_one(self, snapshot: LayerSnapshot, principal, request) -> grid_pb2.AssignPointResponse:
        row, engine_status = snapshot.assigner.assign_one(
            request.lng, request.lat, crs=crs_of(request.crs), fallback_m=request.fallback_m
        )
        status = convert.point_status(engine_status)
        response = grid_pb2.AssignPointResponse(
            status=status, layer_version=snapshot.version_id, request_id=request.request_id
        )
        if status in _INSIDE_STATUSES:
            catalog = self._catalogs(snapshot)
            allowed = catalog.allowed(principal)
            if allowed is None or allowed[row]:
                response.grid.CopyFrom(catalog.grid(row))
            else:
                response.status = grid_pb2.POINT_STATUS_OUT_OF_JURISDICTION
        return response

    # ------------------------------------------------------------------ grids

    def GetGrid(self, request, context):
        snapshot = self._snapshot(request, "at")
        catalog = self._catalogs(snapshot)
        row = self._visible_row(snapshot, catalog, request.code)
        grid = grid_pb2.Grid()
        grid.CopyFrom(catalog.grid(row))
        shapes = self._shapes(snapshot.layer)
        grid.wkb = shapes.encode("grid", indices=[row])[0]
        if request.geojson:
            grid.geojson = json.dumps(shapes.encode("grid", fmt="geojson", indices=[row])[0])
        return grid

    async def GetLayerGeometry(self, request, context):
        principal = self._auth.principal()
        if request.page_size < 0:
            raise InvalidInput(f"page_size must not be negative, got {request.page_size}")
        page_size = min(request.page_size or MAX_GEOMETRY_PAGE, MAX_GEOMETRY_PAGE)
        fmt = _GEOMETRY_FORMATS.get(request.format)
        if fmt is None:
            raise InvalidInput(f"unknown geometry format {request.format}; formats are WKB and GEOJSON")
        level = check_level(request.level or "grid")
        tolerance = check_tolerance(request.tolerance)
        if request.layer_version:
            snapshot = await self._blocking(self._registry.get, request.layer_version)
        else:
            snapshot = self._snapshot(request, "at")
        shapes = self._shapes(snapshot.layer)
        areas = await self._blocking(shapes.areas, level)
        visible = areas.visible(principal)
        for start in range(0, len(visible), page_size):
            page = visible[start:start + page_size]
            encoded = await self._blocking(shapes.encode, level, fmt=fmt, tolerance=tolerance, indices=page)
            response = grid_pb2.GetLayerGeometryResponse(layer_version=snapshot.version_id)
            for k, shape in zip(page.tolist(), encoded):
                area = response.areas.add(code=areas.codes[k], name=areas.names[k] or "", level=level)
                if fmt == "wkb":
                    area.wkb = shape
                else:
                    area.geojson = json.dumps(shape, ensure_ascii=False)
            yield response

    def ListGrids(self, request, context):
        principal = self._auth.principal()
        if request.page_size < 0:
            raise InvalidInput(f"page_size must not be negative, got {request.page_size}")
        page_size = min(request.page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
        if request.page_token:
            version_id, offset = _parse_page_token(request.page_token)
            snapshot = self._registry.get(version_id)
        else:
            snapshot, offset = self._snapshot(request, "at"), 0
        catalog = self._catalogs(snapshot)
        mask = catalog.filter(
            community_code=request.community_code, street_code=request.street_code, grid_type=request.grid_type
        )
        allowed = catalog.allowed(principal)
        if allowed is not None:
            mask &= allowed
        rows = np.flatnonzero(mask)
        rows = rows[rows >= offset]
        response = grid_pb2.ListGridsResponse(layer_version=snapshot.version_id)
        response.grids.extend(catalog.grid(row) for row in rows[:page_size].tolist())
        if len(rows) > page_size:
            response.next_page_token = _page_token(snapshot.version_id, int(rows[page_size]))
        return response

    def GetGridCells(self, request, context):
        snapshot = self._snapshot(request, "at")
        catalog = self._catalogs(snapshot)
        row = self._visible_row(snapshot, catalog, request.code)
        cell_ids, interior = snapshot.assigner.cells_of_grid(row)
        response = grid_pb2.GetGridCellsResponse(layer_version=snapshot.version_id)
        response.grid.CopyFrom(catalog.grid(row))
        response.cell_ids.extend(np.asarray(cell_ids, dtype=np.uint64).tolist())
        response.interior.extend(np.asarray(interior, dtype=bool).tolist())
        return response

    def LocateCell(self, request, context):
        principal = self._auth.principal()
        snapshot = self._snapshot(request, "at")
        catalog = self._catalogs(snapshot)
        rows = np.asarray(snapshot.assigner.grids_of_cell(request.cell_id), dtype=np.int64)
        if len(rows) == 0:
            raise NotFound(
                f"H3 cell {request.cell_id:x} touches no grid of layer {snapshot.version_id} (or is not a cell "
                "of the cover's resolution)"
            )
        allowed = catalog.allowed(principal)
        response = grid_pb2.LocateCellResponse(layer_version=snapshot.version_id)
        response.grids.extend(catalog.grid(row) for row in rows.tolist() if allowed is None or allowed[row])
        return response

    # ------------------------------------------------------------------ helpers

    def _snapshot(self, request, time_field: str) -> LayerSnapshot:
        when = from_timestamp(request, time_field)
        return self._registry.snapshot() if when is None else self._registry.at(when)

    def _visible_row(self, snapshot: LayerSnapshot, catalog, code: str) -> int:
        if not code:
            raise InvalidInput("give a grid code")
        row = snapshot.layer.row_of(code)
        self._auth.principal().require_covers(catalog.chain(row), what=f"grid {code}")
        return row


def _float64s(data: bytes, name: str) -> np.ndarray:
    if len(data) % 8:
        raise InvalidInput(f"{name} has {len(data)} bytes, not a whole number of little-endian float64 values")
    return np.frombuffer(data, dtype="<f8")


def _deadline_and_cancel(context: grpc.ServicerContext) -> dict:
    """The engine's ``deadline`` (absolute, ``time.monotonic()``) and ``cancel`` event for this call."""
    cancel = threading.Event()
    if not context.add_callback(cancel.set):
        cancel.set()  # the call has already ended
    remaining = context.time_remaining()
    deadline = None if remaining is None else time.monotonic() + remaining
    return {"deadline": deadline, "cancel": cancel}


def _page_token(version_id: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{version_id}\n{offset}".encode()).decode()


def _parse_page_token(token: str) -> tuple[str, int]:
    try:
        version_id, offset = base64.urlsafe_b64decode(token.encode()).decode().split("\n")
        return version_id, int(offset)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("page_token is not one this server gave out; start again without it") from None


def add_to_server(server: grpc.Server, servicer: GridServicer) -> str:
    """Register ``servicer`` on ``server``; return the service's full name."""
    grid_pb2_grpc.add_GridServiceServicer_to_server(servicer, server)
    return SERVICE_NAME
