"""The HTTP/JSON gateway: an ASGI app served by uvicorn in a thread of the gRPC server's process.

Why Starlette (with uvicorn) and not FastAPI: the gateway is a thin translation of query strings
into engine calls that already check their input and raise the precise errors of
:mod:`citygrid.engine.errors`. FastAPI would add pydantic models and its own request validation,
whose 422 answers are a second error mapping beside the one table
(:mod:`citygrid.grpc_api.errors`), and a second dependency tree to keep; what it gives in return, an
OpenAPI document, is written here from the same table of endpoints that routes the requests
(:mod:`.openapi`). Starlette is what FastAPI is built on: the routing, streaming responses (SSE),
gzip, CORS and static files, no more. uvicorn runs it with httptools (the C HTTP parser; its
pure-Python h11 took about half of the loop's time per request in a profile, and requests that
arrive together wait for each other's parsing on the one loop).

Same process, same state: the endpoints call the engine objects of the server's
:class:`~citygrid.grpc_api.server.ServerState` (registry, shapes, intake, analytics, alerts, houses)
directly, never over gRPC, so an event committed through gRPC is counted by the next HTTP request.
uvicorn runs its own event loop in its own thread (not the gRPC loop); engine work runs in the
gateway's worker threads (:mod:`.reads`: identical reads waiting together are computed once), at
most ``http_max_concurrent`` computations at once (beyond: 429, the table's row for
:class:`Overloaded`), each request given ``http_timeout_seconds`` (beyond: 504; the thread finishes
its engine call, whose answer is dropped). The worker thread also encodes the answer's JSON and
gzips it (:mod:`.encoding`), so the loop only moves bytes. A quick in-memory read (a point's grid
on the active version, a grid's feature whose GeoJSON is made) runs on the loop itself, as gRPC's
AssignPoint does: a thread costs it more than the read. The analytics endpoints' encoded answers are
remembered by the engine beside its own (:meth:`Analytics.remembered`, keyed by the parameters, the
encoding, the caller and the local day), and one that holds is handed back on the loop
(:meth:`Analytics.at_hand`: no waiting, nothing committed since); the others go to a thread.

Auth: the same bearer tokens as gRPC (``Authorization: Bearer <token>``, resolved by the server's
:class:`~citygrid.grpc_api.interceptors.Authenticator`); roles and jurisdiction are the engine's.
The page and ``/openapi.json`` need no token; every ``/api/`` path does. No endpoint writes.

Errors: RFC 9457 ``application/problem+json`` bodies (``type``, ``title``, ``status``, ``detail``,
``instance``) with the HTTP status from the one table; anything else is 500 with a reference id,
its traceback logged under that id, never sent. A part the server does not run (no analytics,
alerts or houses) has no endpoints: 404 with a problem body that says so.

Map tiles: ``/api/v1/layer/tiles/{z}/{x}/{y}`` answers the layer's grids, communities and streets
as Mapbox Vector Tiles (:mod:`citygrid.engine.layers.tiles`), cut once per version, tolerance,
jurisdiction and tile and kept (:class:`TileCache`); when a layer version becomes active a thread
cuts the district-wide tiles down to :data:`WARM_MAX_ZOOM` and encodes the areas' properties, so
the first page after a start or an activation does not wait for them.

Live updates: ``/api/v1/stream`` is a Server-Sent Events stream (``text/event-stream``) of
``tallies`` (the day's and the week's events per grid, sent when they change) and ``alert``
(each new change to an alert in the caller's jurisdiction) events; at most ``http_max_streams``
are open at once. A stream is a coroutine on uvicorn's loop that holds no thread while it waits;
the tallies are computed every ``interval`` seconds once for all the streams of the same
jurisdiction, filters and interval (:mod:`.ticker`), the alert feed is read per stream (from its
own cursor).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import gzip
import json
import logging
import secrets
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Mapping

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.errors import CityGridError, InvalidInput, NotFound, Overloaded
from citygrid.engine.layers.tiles import TileSet, tile_at
from citygrid.grpc_api.errors import details_of, http_status_of, problem_type_of
from citygrid.grpc_api.web import endpoints as E
from citygrid.grpc_api.web.encoding import GZIP_LEVEL, GZIP_MIN_BYTES, Encoded, accepts_gzip, encode, json_bytes
from citygrid.grpc_api.web.openapi import openapi_document
from citygrid.grpc_api.web.reads import SharedReads
from citygrid.grpc_api.web.ticker import Tickers

log = logging.getLogger("citygrid.grpc_api.web")

#: Where the page and its vendored scripts are (package data).
PAGE = Path(str(resources.files("citygrid.grpc_api.web") / "page"))
#: The stream's tick bounds (seconds) and its keep-alive comment interval.
MIN_INTERVAL, MAX_INTERVAL, KEEPALIVE_SECONDS = 0.5, 60.0, 15.0
#: Layer GeoJSON answers kept (per version, level, tolerance, jurisdiction), gzipped.
GEOMETRY_CACHE_SIZE = 64
#: A vector tile's media type.
MVT_TYPE = "application/vnd.mapbox-vector-tile"
#: Tile sets (a version's shapes projected and indexed, per tolerance and jurisdiction) and tiles kept.
TILE_SETS, TILES = 8, 4096
#: The deepest zoom whose tiles are cut when a layer version becomes active (a district fills a
#: screen at about zoom 11; deeper tiles are cut when asked for), and how often the warm-up looks.
WARM_MAX_ZOOM, WARM_POLL_SECONDS = 12, 0.5
#: The gateway's worker threads. The analytics serialise their queries on one lock and their
#: kernels hand the GIL back and forth, so more threads add switching, not answers; a few let a
#: slow query (a year of KPIs) not hold up the quick ones.
THREADS = 6


@dataclass(frozen=True)
class Limits:
    max_concurrent: int = 64
    timeout_seconds: float = 10.0
    max_streams: int = 200
    cors_origins: tuple[str, ...] = ()


class TileCache:
    """Tile sets and their tiles (raw MVT bytes, and gzipped when that is smaller), least recently
    used dropped first."""

    def __init__(self, max_sets: int = TILE_SETS, max_tiles: int = TILES):
        self._lock = threading.Lock()
        self._building = threading.Lock()
        self._sets: OrderedDict[tuple, TileSet] = OrderedDict()
        self._tiles: OrderedDict[tuple, tuple[bytes, bytes | None]] = OrderedDict()
        self._max_sets, self._max_tiles = max_sets, max_tiles

    def tile(self, key: tuple, zxy: tuple[int, int, int], make_set: Callable[[], TileSet]) -> tuple[bytes, bytes | None]:
        with self._lock:
            tile = self._tiles.get((key, zxy))
            if tile is not None:
                self._tiles.move_to_end((key, zxy))
                return tile
        raw = self.tile_set(key, make_set).tile(*zxy)
        packed = gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0) if len(raw) >= GZIP_MIN_BYTES else None
        with self._lock:
            self._tiles[(key, zxy)] = (raw, packed)
            while len(self._tiles) > self._max_tiles:
                self._tiles.popitem(last=False)
        return raw, packed

    def tile_set(self, key: tuple, make_set: Callable[[], TileSet]) -> TileSet:
        with self._lock:
            tiles = self._sets.get(key)
        if tiles is None:
            with self._building:  # one build of a set at a time: the tiles asked for together wait for it
                tiles = self._sets.get(key)
                if tiles is None:
                    tiles = make_set()
                    with self._lock:
                        self._sets[key] = tiles
                        while len(self._sets) > self._max_sets:
                            self._sets.popitem(last=False)
        return tiles


def tiles_over(bounds: tuple[float, float, float, float], max_zoom: int):
    """The ``(z, x, y)`` of the tiles of zooms 0 to ``max_zoom`` over ``bounds`` (degrees)."""
    west, south, east, north = bounds
    for z in range(max_zoom + 1):
        x0, y0 = tile_at(west, north, z)
        x1, y1 = tile_at(east, south, z)
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                yield z, x, y


def problem(status: int, kind: str, detail: str, instance: str) -> JSONResponse:
    """An RFC 9457 problem body."""
    title = kind.replace("-", " ").capitalize()
    body = {"type": f"/problems/{kind}", "title": title, "status": status, "detail": detail, "instance": instance}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def problem_of(exc: BaseException, instance: str) -> JSONResponse:
    if isinstance(exc, CityGridError):
        return problem(http_status_of(exc), problem_type_of(exc), details_of(exc), instance)
    reference = secrets.token_hex(6)
    log.error("HTTP %s failed (reference %s)", instance, reference, exc_info=exc)
    return problem(500, "internal", f"internal error (reference {reference}); the server's log has the details",
                   instance)


class Gateway:
    """The app over ``parts`` and the uvicorn server that serves it on ``host:port`` (0: any free
    port; the socket is bound here, so :attr:`port` is known before :meth:`start`)."""

    def __init__(self, parts: E.Parts, authenticate: Callable, host: str, port: int, limits: Limits = Limits(),
                 *, cached_token: Callable | None = None):
        self.parts = parts
        self.limits = limits
        self._authenticate = authenticate
        self._cached_token = cached_token
        self.tickers = Tickers()
        self.reads = SharedReads(min(THREADS, limits.max_concurrent), limits.max_concurrent, limits.timeout_seconds)
        self._streams = 0
        self._geometry: dict[tuple, tuple[bytes, bytes]] = {}
        self._geometry_lock = threading.Lock()
        self._tiles = TileCache()
        self.app = self._build_app()
        self._socket = _bind(host, port)
        self.port = self._socket.getsockname()[1]
        self._server = None
        self._thread: threading.Thread | None = None
        self._stop_warming = threading.Event()
        self._warming: threading.Thread | None = None
        #: Analytics answers served on the loop from the engine's remembered encodings.
        self.recalled = 0
        #: The layer version whose map is warm (None: none yet).
        self.warmed_version: str | None = None

    # ------------------------------------------------------------------ serving

    def start(self) -> None:
        import uvicorn

        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2, ws="none", http="httptools")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="citygrid-http", daemon=True)
        self._thread.start()
        self._warming = threading.Thread(target=self._warm_maps, name="citygrid-http-maps", daemon=True)
        self._warming.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop_warming.set()
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(5)
        if self._warming is not None:
            self._warming.join(5)
        self.reads.shutdown()
        self._socket.close()

    # ------------------------------------------------------------------ the app

    def _build_app(self) -> Starlette:
        running = {"intake": self.parts.intake, "analytics": self.parts.analytics, "alerts": self.parts.alerts,
                   "houses": self.parts.houses}
        served = [e for e in E.ENDPOINTS if e.part is None or running[e.part] is not None]
        routes = [Route(e.path, self._endpoint(e), methods=["GET"]) for e in served
                  if e.handler not in (E.layer_geometry, E.layer_tile)]
        routes += [
            Route("/api/v1/layer/geometry", self._layer_geometry, methods=["GET"]),
            Route("/api/v1/layer/tiles/{z}/{x}/{y}", self._layer_tile, methods=["GET"]),
            Route("/api/v1/stream", self._stream, methods=["GET"]),
            Route("/openapi.json", lambda request: Response(document, media_type="application/json"), methods=["GET"]),
            Route("/", lambda request: FileResponse(PAGE / "index.html"), methods=["GET"]),
            # the page's scripts (MapLibre is 1 MB) gzipped here; the API's answers are in their threads
            Mount("/static", GZipMiddleware(StaticFiles(directory=PAGE), minimum_size=GZIP_MIN_BYTES,
                                            compresslevel=GZIP_LEVEL), name="static"),
        ]
        missing = sorted(name for name, part in running.items() if part is None)
        document = json.dumps(openapi_document(served), ensure_ascii=False).encode()
        middleware = []
        if self.limits.cors_origins:
            middleware.append(Middleware(CORSMiddleware, allow_origins=list(self.limits.cors_origins),
                                         allow_methods=["GET"], allow_headers=["Authorization"]))

        async def not_found(request: Request, exc) -> Response:
            detail = f"no endpoint {request.url.path}"
            if request.url.path.startswith("/api/"):
                detail += (f"; this server runs no {', '.join(missing)}, whose endpoints are absent" if missing else "")
                detail += "; /openapi.json lists the endpoints"
            return problem(404, "not-found", detail, request.url.path)

        async def not_allowed(request: Request, exc) -> Response:
            return problem(405, "method-not-allowed", "the gateway only reads: use GET (writes are on gRPC)",
                           request.url.path)

        return Starlette(routes=routes, middleware=middleware,
                         exception_handlers={404: not_found, 405: not_allowed})

    async def _principal(self, request: Request):
        header = request.headers.get("authorization")
        metadata = [("authorization", header)] if header is not None else []
        if self._cached_token is not None:
            info = self._cached_token(metadata)
            if info is not None:
                return info.principal
        info = await self._call(self._authenticate, metadata)
        return info.principal

    async def _call(self, fn: Callable, *args):
        """``fn(*args)`` in a worker thread, within the concurrency limit and the timeout (never shared)."""
        return await self.reads.run(None, lambda: fn(*args))

    def _endpoint(self, endpoint: E.Endpoint):
        async def serve(request: Request) -> Response:
            try:
                principal = await self._principal(request)
                params = E.Params(request.query_params, request.path_params, tz=self.parts.timezone)
                gzip_ok = accepts_gzip(request.headers.get("accept-encoding"))

                def answer() -> Encoded:
                    return encode(endpoint.handler(self.parts, principal, params), accept_gzip=gzip_ok)

                query = tuple(sorted(request.query_params.multi_items()))
                if endpoint.quick is not None and endpoint.quick(self.parts, params):
                    encoded = answer()
                elif endpoint.part == "analytics":
                    encoded = self._recall(endpoint, query, request.path_params, principal, gzip_ok)
                    if encoded is None:
                        key = (endpoint.path, query, tuple(sorted(request.path_params.items())), principal, gzip_ok)
                        encoded = await self.reads.run(key, lambda: self._remembered(
                            endpoint, query, request.path_params, principal, params, gzip_ok))
                else:
                    key = (endpoint.path, query, tuple(sorted(request.path_params.items())), principal, gzip_ok)
                    encoded = await self.reads.run(key, answer)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a problem body
                return problem_of(exc, request.url.path)
            headers = {"Vary": "Authorization, Accept-Encoding"}
            if encoded.gzipped:
                headers["Content-Encoding"] = "gzip"
            return Response(encoded.body, media_type="application/json", headers=headers)

        serve.__name__ = endpoint.handler.__name__
        return serve

    def _question(self, endpoint: E.Endpoint, query: tuple, path: Mapping[str, str], gzip_ok: bool,
                  now: dt.datetime) -> tuple:
        """What an analytics endpoint's encoded answer depends on besides what the engine's
        remembered answers track (the store, the layer, the residents, the clock's overdue
        deadlines, the caller): its parameters, the encoding, and the local day of ``now`` (a
        window left out is today's)."""
        return ("http", endpoint.path, query, tuple(sorted(path.items())), gzip_ok,
                now.astimezone(self.parts.timezone).date())

    def _recall(self, endpoint: E.Endpoint, query: tuple, path: Mapping[str, str], principal,
                gzip_ok: bool) -> Encoded | None:
        """On the loop: the encoded answer the engine remembers for this request if it holds now
        and can be told without waiting (:meth:`Analytics.at_hand`), else None (a worker thread
        then asks :meth:`_remembered`)."""
        at_hand = self.parts.analytics_at_hand
        analytics = at_hand() if at_hand is not None else None
        if analytics is None:
            return None
        # the analytics' clock is the intake's (parts.clock asks the intake host, which may lock)
        question = self._question(endpoint, query, path, gzip_ok, analytics.clock())
        hit = analytics.at_hand(question, principal)
        if not isinstance(hit, Encoded):
            return None
        self.recalled += 1
        return hit

    def _remembered(self, endpoint: E.Endpoint, query: tuple, path: Mapping[str, str], principal,
                    params: E.Params, gzip_ok: bool) -> Encoded:
        """In a worker thread: the endpoint's encoded (and gzipped) answer, remembered by the engine
        beside its own answers for as long as they hold, as the gRPC servicer remembers its
        messages: 20 screens asking the same panel are answered from one encoding."""
        now = self.parts.clock()
        parts = dataclasses.replace(self.parts, clock=lambda: now)  # the answer's "today" is the key's
        return self.parts.analytics().remembered(
            self._question(endpoint, query, path, gzip_ok, now), principal,
            lambda: encode(endpoint.handler(parts, principal, params), accept_gzip=gzip_ok))

    async def _layer_geometry(self, request: Request) -> Response:
        """The layer's GeoJSON, encoded and gzipped once per version, level, tolerance and
        jurisdiction (the map's largest answer: about 0.5 MB gzipped for 3,823 grids)."""
        try:
            principal = await self._principal(request)
            params = E.Params(request.query_params, tz=self.parts.timezone)
            snapshot, level, tolerance, shapes_too = await self._call(E.layer_geometry, self.parts, principal, params)
            key = (snapshot.version_id, level, tolerance, shapes_too, principal.jurisdiction)
            cached = self._geometry.get(key)
            if cached is None:
                cached = await self._call(self._encode_geometry, principal, snapshot, level, tolerance, shapes_too)
                with self._geometry_lock:
                    if len(self._geometry) >= GEOMETRY_CACHE_SIZE:
                        self._geometry.pop(next(iter(self._geometry)))
                    self._geometry[key] = cached
        except Exception as exc:  # noqa: BLE001
            return problem_of(exc, request.url.path)
        raw, packed = cached
        headers = {"Cache-Control": "private, max-age=60", "Vary": "Authorization, Accept-Encoding",
                   "X-Layer-Version": snapshot.version_id}
        if accepts_gzip(request.headers.get("accept-encoding")):
            return Response(packed, media_type="application/geo+json",
                            headers={**headers, "Content-Encoding": "gzip"})
        return Response(raw, media_type="application/geo+json", headers=headers)

    def _encode_geometry(self, principal, snapshot, level: str, tolerance: float,
                         shapes_too: bool) -> tuple[bytes, bytes]:
        collection = E.layer_geojson(self.parts, principal, snapshot, level, tolerance, shapes_too)
        raw = json_bytes(collection)
        return raw, gzip.compress(raw, compresslevel=GZIP_LEVEL)

    async def _layer_tile(self, request: Request) -> Response:
        """A map tile (MVT) of the layer's areas, cut and gzipped once per version, tolerance,
        jurisdiction and tile (the tiles of a version do not change; a map asks for the same few)."""
        try:
            principal = await self._principal(request)
            params = E.Params(request.query_params, request.path_params, tz=self.parts.timezone)
            key = ("tile", tuple(sorted(request.query_params.multi_items())),
                   tuple(sorted(request.path_params.items())), principal)
            snapshot, raw, packed = await self.reads.run(key, lambda: self._tile(principal, params))
        except Exception as exc:  # noqa: BLE001
            return problem_of(exc, request.url.path)
        headers = {"Cache-Control": "private, max-age=60", "Vary": "Authorization, Accept-Encoding",
                   "X-Layer-Version": snapshot.version_id}
        if packed is not None and accepts_gzip(request.headers.get("accept-encoding")):
            return Response(packed, media_type=MVT_TYPE, headers={**headers, "Content-Encoding": "gzip"})
        return Response(raw, media_type=MVT_TYPE, headers=headers)

    def _tile(self, principal, params: E.Params) -> tuple[object, bytes, bytes | None]:
        snapshot, tolerance, zxy = E.layer_tile(self.parts, principal, params)
        key = (snapshot.version_id, tolerance, principal.jurisdiction)
        raw, packed = self._tiles.tile(key, zxy, lambda: E.layer_tiles(self.parts, principal, snapshot, tolerance))
        return snapshot, raw, packed

    # ------------------------------------------------------------------ warming the map

    def _warm_maps(self) -> None:
        """Whenever another layer version is active, cut what the page's first picture asks for
        (the district-wide tiles down to :data:`WARM_MAX_ZOOM` and the areas' properties), so the
        first page after a start or an activation does not wait for the shapes to be simplified,
        projected and cut (about 3 s of CPU for the demo's 3,823 grids)."""
        warmed = None
        while not self._stop_warming.is_set():
            version = self.parts.registry.active_version_id
            if version is not None and version != warmed:
                try:
                    self.warm()
                except Exception:  # noqa: BLE001 - a warm-up that fails leaves the work to the requests
                    log.warning("could not warm the map of layer version %s", version, exc_info=True)
                warmed = self.warmed_version = version
            self._stop_warming.wait(WARM_POLL_SECONDS)

    def warm(self, max_zoom: int = WARM_MAX_ZOOM) -> int:
        """Cut the active version's district-wide tiles down to ``max_zoom`` (each zoom at its own
        default tolerance, :func:`~.endpoints.tile_tolerance`) and encode its areas' properties into
        the caches; the number of tiles cut."""
        snapshot = self.parts.registry.snapshot()
        everyone = Principal("map warm-up", Role.ADMIN)
        tolerance = E.MAP_TOLERANCE
        for level in E.TILE_LEVELS:
            key = (snapshot.version_id, level, tolerance, False, everyone.jurisdiction)
            if key not in self._geometry and not self._stop_warming.is_set():
                try:
                    encoded = self._encode_geometry(everyone, snapshot, level, tolerance, False)
                except NotFound:  # a level the layer has no codes for
                    continue
                with self._geometry_lock:
                    self._geometry[key] = encoded

        def tiles_at(tolerance: float) -> tuple[tuple, Callable[[], TileSet]]:
            return ((snapshot.version_id, tolerance, everyone.jurisdiction),
                    lambda: E.layer_tiles(self.parts, everyone, snapshot, tolerance))

        n = 0
        for zxy in tiles_over(self._tiles.tile_set(*tiles_at(tolerance)).bounds(), max_zoom):
            if self._stop_warming.is_set():
                break
            key, make_set = tiles_at(E.tile_tolerance(zxy[0]))  # coarser at low zooms
            self._tiles.tile(key, zxy, make_set)
            n += 1
        return n

    # ------------------------------------------------------------------ the live stream

    async def _stream(self, request: Request) -> Response:
        try:
            principal = await self._principal(request)
            params = E.Params(request.query_params, tz=self.parts.timezone)
            interval = params.float("interval", 2.0)
            if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
                raise InvalidInput(f"interval must be {MIN_INTERVAL}-{MAX_INTERVAL} seconds, got {interval:g}")
            if self.parts.analytics is None and self.parts.alerts is None:
                raise NotFound("this server runs neither analytics nor alerts, so there is nothing to stream")
            if self._streams >= self.limits.max_streams:
                raise Overloaded(f"{self.limits.max_streams} streams are open (http_max_streams); retry later")
            key = self._ticker_key(principal, params, interval)
            cursor = await self._call(self._alert_cursor, principal)
        except Exception as exc:  # noqa: BLE001
            return problem_of(exc, request.url.path)
        self._streams += 1
        return StreamingResponse(self._events(request, principal, params, interval, cursor, key),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def _alert_cursor(self, principal) -> int:
        """The alert feed's present end (a stream sends what changes after it)."""
        alerts = self.parts.alerts
        if alerts is None:
            return 0
        cursor = 0
        while True:
            changes = alerts.feed(principal, after=cursor, limit=500)
            if not changes:
                return cursor
            cursor = changes[-1].cursor

    def _tallies(self, principal, params) -> dict:
        analytics = self.parts.analytics()
        now = self.parts.clock()
        today = now.astimezone(self.parts.timezone).replace(hour=0, minute=0, second=0, microsecond=0)
        week = today - dt.timedelta(days=today.weekday())
        end = today + dt.timedelta(days=1)
        filters = params.filters()
        out = {"now": now.isoformat()}
        for name, start in (("day", today), ("week", week)):
            table = analytics.heatmap(principal, start=start, end=end, filters=filters)
            out[name] = dict(zip(table.columns["grid"], E._clean(table.columns["reported"])))
        return out

    def _alert_changes(self, principal, cursor: int) -> tuple[list[dict], int]:
        changes = self.parts.alerts.feed(principal, after=cursor, limit=100)
        out = []
        for change in changes:
            out.append({"cursor": change.cursor, "action": change.action, "to_state": change.to_state,
                        "alert": E.alert_json(self.parts, change.alert)})
        return out, (changes[-1].cursor if changes else cursor)

    def _ticker_key(self, principal, params, interval: float) -> tuple:
        """What a stream's tallies depend on: the streams with the same key read one ticker."""
        filters = tuple(sorted((name, tuple(codes)) for name, codes in params.filters().items()))
        return principal.jurisdiction, principal.role, principal.worker_id, filters, interval

    async def _events(self, request: Request, principal, params, interval: float, cursor: int, key: tuple):
        ticker = None
        if self.parts.analytics is not None:
            ticker = self.tickers.join(key, lambda: self._call(self._tallies, principal, params), interval,
                                       lambda tallies: (tallies["day"], tallies["week"]))
        try:
            seen, last_sent = 0, time.monotonic()
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                if ticker is not None and ticker.version > seen:
                    seen = ticker.version
                    kind, value = ticker.latest
                    yield _sse("tallies", value) if kind == "tallies" else _problem_event(value)
                    last_sent = time.monotonic()
                if self.parts.alerts is not None:
                    try:
                        changes, cursor = await self._call(self._alert_changes, principal, cursor)
                    except CityGridError as exc:
                        changes = ()
                        yield _problem_event(exc)
                    for change in changes:
                        yield _sse("alert", change, event_id=change["cursor"])
                        last_sent = time.monotonic()
                if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
                    yield ": keep-alive\n\n"
                    last_sent = time.monotonic()
                if ticker is not None:
                    await ticker.wait(seen, interval)  # a new answer wakes the stream at once
                else:
                    await asyncio.sleep(interval)
        finally:
            self._streams -= 1
            if ticker is not None:
                self.tickers.leave(key, ticker)


def _problem_event(exc: CityGridError) -> str:
    return _sse("problem", {"status": http_status_of(exc), "detail": details_of(exc)})


def _sse(event: str, data, *, event_id: int | None = None) -> str:
    text = json_bytes(data).decode()
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {text}\n\n"


def _bind(host: str, port: int) -> socket.socket:
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it a keep-alive connection's second answer waits 40 ms for a delayed ACK (Nagle)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"cannot serve HTTP on {host}:{port}: {exc}; is another server using the port? "
                           "(http_port in [server], or --http-port; -1: off)") from None
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def gateway_for(state, host: str, port: int) -> Gateway:
    """The gateway over a server's state (:class:`~citygrid.grpc_api.server.ServerState`): the same
    registry, shapes, intake, analytics, alerts and houses its servicers use."""
    from zoneinfo import ZoneInfo

    config = state.config
    intake = state.intake
    parts = E.Parts(
        registry=state.registry, shapes=state.shapes, timezone=ZoneInfo(config.intake.timezone), intake=intake,
        analytics=_analytics_of(state), alerts=state.alerts, houses=getattr(state, "houses", None),
        analytics_at_hand=None if state.analytics is None else state.analytics.at_hand,
    )
    if intake is not None:
        parts.clock = lambda: intake.intake().clock()
    limits = Limits(config.http_max_concurrent, config.http_timeout_seconds, config.http_max_streams,
                    tuple(config.http_cors_origins))
    return Gateway(parts, state.auth.authenticate, host, port, limits, cached_token=state.auth.cached)


def _analytics_of(state) -> Callable[[], object] | None:
    """A callable giving the server's :class:`~citygrid.engine.analytics.queries.Analytics` (the
    state's ``AnalyticsHost`` builds it on first use), None when the server runs no analytics."""
    host = state.analytics
    return None if host is None else host.analytics
