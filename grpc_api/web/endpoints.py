"""The gateway's read endpoints: each one call (or a few) into the engine objects the gRPC
servicers use, with the caller's principal, so jurisdiction and roles are the engine's own.

An endpoint is a plain function ``(parts, principal, params) -> JSON-able`` run in a worker thread
(:mod:`.gateway` does auth, limits, timeouts and errors); :data:`ENDPOINTS` lists them with their
parameters, which is also what :mod:`.openapi` documents. Times are ISO 8601 (a time without an
offset is local time, ``[intake] timezone``); a window is ``[start, end)`` and defaults to today
(local). Parameters are checked here or by the engine, and bad ones raise :class:`InvalidInput`
with what to send instead.

The mirror of the RPCs: ``grids/at`` = AssignPoint, ``grids/{code}`` = GetGrid, ``layer/geometry`` =
GetLayerGeometry, ``aggregate`` / ``trend`` / ``top-areas`` / ``heatmap`` / ``kpis`` =
AnalyticsService, ``alerts`` = AlertService's list, ``buildings/near`` and ``population`` =
HouseService's FindBuildings (near) and PopulationStats. ``grids/{code}/card`` gathers what the
page's grid card shows in one request (several of the above for one grid).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Mapping
from zoneinfo import ZoneInfo

import numpy as np
import shapely

from citygrid.engine.cases.lifecycle import OPEN_STATES
from citygrid.engine.cases.model import EventFilter
from citygrid.engine.errors import InvalidInput, NotFound, PreconditionFailed
from citygrid.engine.layers.assignment import Status
from citygrid.engine.layers.coordinates import CoordinateSystem
from citygrid.engine.layers.geometry import ShapeCache, check_level, check_tolerance
from citygrid.engine.layers.registry import LayerRegistry
from citygrid.engine.layers.tiles import TileSet, check_tile
from citygrid.grpc_api.web.encoding import Prepared

#: The map's default simplification (degrees; about 10 m): 3,823 grids in about 0.5 MB gzipped.
MAP_TOLERANCE = 0.0001
#: Map tiles of zoom :data:`LOW_ZOOM` and less are simplified at :data:`LOW_ZOOM_TOLERANCE` degrees
#: (about 30 m), under a pixel of their own zoom's 512-pixel tiles (at zoom 11 a pixel is 3.4e-4
#: degrees of longitude and, at the demo district's 22.7° N, 3.2e-4 of latitude), as MapLibre
#: simplifies the GeoJSON it tiles itself. A district fills a screen at about zoom 11, so the map's
#: first view has about a third fewer vertices for the browser to triangulate and draw; deeper tiles
#: keep :data:`MAP_TOLERANCE`.
LOW_ZOOM, LOW_ZOOM_TOLERANCE = 11, 0.0003
#: Most alerts one request lists.
MAX_ALERTS = 500
#: Most open cases a grid card counts (it says "at least" beyond).
MAX_OPEN_CASES = 1000
#: Days of the grid card's small trend.
CARD_TREND_DAYS = 14
#: H3 cell boundaries remembered (a district at resolution 10 has tens of thousands of cells).
H3_RINGS = 200_000
#: Days of the grid card's KPI grade.
CARD_KPI_DAYS = 30
#: Map bounds kept (per layer version and jurisdiction).
BOUNDS_KEPT = 256
#: A grid's GeoJSON Feature, encoded, kept per (layer version, grid, tolerance): the district's 3,823
#: grids at two tolerances, a few kB each.
FEATURES_KEPT = 8192


@dataclass
class Parts:
    """The engine objects the gateway reads, the same the servicers hold (``None``: not running)."""

    registry: LayerRegistry
    shapes: ShapeCache
    timezone: ZoneInfo
    #: The intake host (events, workers, the clock) or None.
    intake: object | None = None
    #: Returns the :class:`~citygrid.engine.analytics.queries.Analytics` (None: no analytics).
    analytics: Callable[[], object] | None = None
    #: The analytics when they are at hand without waiting (``AnalyticsHost.at_hand``; for the event
    #: loop; None: never on the loop).
    analytics_at_hand: Callable[[], object | None] | None = None
    #: The alert host of engine/alerts (``list``, ``feed``) or None.
    alerts: object | None = None
    #: The house service (``find_near``, ``population_stats``) or None.
    houses: object | None = None
    #: The present time (the intake's clock when there is one).
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.timezone.utc))
    #: (layer version, jurisdiction) -> the map's starting bounds (:func:`_bounds`).
    bounds_kept: OrderedDict = field(default_factory=OrderedDict)
    #: (layer version, grid row, tolerance) -> the grid's encoded Feature (:func:`grid`).
    features_kept: OrderedDict = field(default_factory=OrderedDict)


class Params:
    """A request's query parameters, read with precise errors."""

    def __init__(self, values: Mapping[str, str], path: Mapping[str, str] | None = None, *, tz: ZoneInfo):
        self.values = dict(values)
        self.path = dict(path or {})
        self.tz = tz

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self.values.get(name, self.path.get(name))
        return default if value in (None, "") else value

    def required(self, name: str) -> str:
        value = self.str(name)
        if value is None:
            raise InvalidInput(f"give the parameter {name}")
        return value

    def float(self, name: str, default: float | None = None) -> float:
        text = self.str(name)
        if text is None:
            if default is None:
                raise InvalidInput(f"give the parameter {name} (a number)")
            return default
        try:
            value = float(text)
        except ValueError:
            raise InvalidInput(f"{name} must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise InvalidInput(f"{name} must be a finite number, got {text!r}")
        return value

    def int(self, name: str, default: int | None = None) -> int | None:
        text = self.str(name)
        if text is None:
            return default
        try:
            return int(text)
        except ValueError:
            raise InvalidInput(f"{name} must be a whole number, got {text!r}") from None

    def bool(self, name: str, default: bool) -> bool:
        text = self.str(name)
        if text is None:
            return default
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise InvalidInput(f"{name} must be true or false, got {text!r}")

    def list(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        text = self.str(name)
        return default if text is None else tuple(v.strip() for v in text.split(",") if v.strip())

    def time(self, name: str) -> dt.datetime | None:
        text = self.str(name)
        if text is None:
            return None
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput(f"{name} must be an ISO 8601 time like 2026-12-06T00:00:00+08:00, got {text!r}") from None
        return value if value.tzinfo is not None else value.replace(tzinfo=self.tz)

    def window(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """``start``/``end`` (default: today, local)."""
        today = now.astimezone(self.tz).replace(hour=0, minute=0, second=0, microsecond=0)
        start = self.time("start") or today
        end = self.time("end") or (start + dt.timedelta(days=1) if self.time("start") else today + dt.timedelta(days=1))
        if end <= start:
            raise InvalidInput(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
        return start, end

    def filters(self) -> dict[str, list[str]]:
        """``filter=category:0101,0102;street:440307001`` -> ``{"category": [...], "street": [...]}``."""
        text = self.str("filter")
        out: dict[str, list[str]] = {}
        for part in (text or "").split(";"):
            if not part.strip():
                continue
            name, sep, codes = part.partition(":")
            if not sep or not codes.strip():
                raise InvalidInput(f"a filter is dimension:code,code (e.g. class:01), got {part!r}")
            out.setdefault(name.strip(), []).extend(c.strip() for c in codes.split(",") if c.strip())
        return out


def _need(part, name: str):
    if part is None:
        raise PreconditionFailed(f"this server runs no {name}")
    return part


def _clean(value):
    """JSON-able: numpy scalars and arrays to Python, NaN to None, dates to ISO text."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return _clean(value.item())
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def _table(table) -> dict:
    return {"columns": {name: _clean(values) for name, values in table.columns.items()}, "rows": len(table)}


# ---------------------------------------------------------------------- who and what


def whoami(parts: Parts, principal, q: Params) -> dict:
    now = parts.clock()
    try:
        snapshot = parts.registry.snapshot()
    except PreconditionFailed:
        snapshot = None
    return {"name": principal.name, "role": principal.role.value, "jurisdiction": list(principal.jurisdiction),
            "worker_id": principal.worker_id, "now": now.isoformat(), "timezone": parts.timezone.key,
            "layer_version": snapshot and snapshot.version_id,
            "bounds": snapshot and _bounds(parts, principal, snapshot),
            "parts": {"intake": parts.intake is not None, "analytics": parts.analytics is not None,
                      "alerts": parts.alerts is not None, "houses": parts.houses is not None}}


_kept_lock = threading.Lock()


def _bounds(parts: Parts, principal, snapshot) -> list[float] | None:
    """West, south, east, north (degrees) of the grids the caller sees: where a map starts. Worked
    out once per layer version and jurisdiction (it took 1-2 ms, on every ``whoami``), as the
    tiles are; :data:`BOUNDS_KEPT` kept, least recently asked dropped first."""

    def bounds():
        shapes = parts.shapes(snapshot.layer)
        visible = shapes.areas("grid").visible(principal)
        return ([round(float(v), 6) for v in shapely.total_bounds(shapes.geometries("grid")[visible])]
                if len(visible) else None)

    return _kept(parts.bounds_kept, BOUNDS_KEPT, (snapshot.version_id, principal.jurisdiction), bounds)


def _kept(kept: OrderedDict, most: int, key, make: Callable):
    """``kept[key]``, made by ``make()`` when missing; at most ``most`` kept, least recently asked
    dropped first."""
    with _kept_lock:
        if key in kept:
            kept.move_to_end(key)
            return kept[key]
    value = make()
    with _kept_lock:
        kept[key] = value
        while len(kept) > most:
            kept.popitem(last=False)
    return value


def categories(parts: Parts, principal, q: Params) -> dict:
    taxonomy = _need(parts.intake, "intake").intake().taxonomy
    return {"classes": [{"code": c.code, "name": c.name} for c in taxonomy.classes],
            "categories": [{"code": c.code, "name": c.name, "class_code": c.class_code}
                           for c in taxonomy.categories]}


# ---------------------------------------------------------------------- grids and geometry


def _record(snapshot, row: int) -> dict:
    record = snapshot.layer.record(row)
    return {"code": record["grid_code"], "name": record.get("grid_name"), "type": record.get("grid_type"),
            **{k: record.get(k) for k in ("community_code", "community_name", "street_code", "street_name",
                                          "district_code", "district_name")},
            "row": row, "layer_version": snapshot.version_id}


def _chain(parts: Parts, snapshot, row: int) -> tuple:
    """The grid's chain (its code, community, street, district), from the version's cached areas."""
    return parts.shapes(snapshot.layer).areas("grid").chains[row]


def _visible_row(parts: Parts, principal, code: str, at: dt.datetime | None = None):
    snapshot = parts.registry.snapshot() if at is None else parts.registry.at(at)
    row = snapshot.layer.row_of(code)
    principal.require_covers(_chain(parts, snapshot, row), what=f"grid {code}")
    return snapshot, row


def grid_at(parts: Parts, principal, q: Params) -> dict:
    lng, lat = q.float("lng"), q.float("lat")
    system = CoordinateSystem.of(q.str("crs", "wgs84"))
    at = q.time("at")
    snapshot = parts.registry.snapshot() if at is None else parts.registry.at(at)
    row, status = snapshot.assigner.assign_one(lng, lat, crs=system, fallback_m=q.float("fallback_m", 0.0))
    answer = {"status": Status(status).name.lower(), "grid": None, "layer_version": snapshot.version_id}
    if row >= 0:
        if principal.covers(_chain(parts, snapshot, row)):
            answer["grid"] = _record(snapshot, row)
        else:
            answer["status"] = "out_of_jurisdiction"
    return answer


def grid_at_is_quick(parts: Parts, q: Params) -> bool:
    """Whether :func:`grid_at` may run on the event loop: on the active version (no ``at`` to look a
    version up for) whose grid areas are built, a point is an in-memory look-up of microseconds."""
    if q.str("at") is not None:
        return False
    try:
        return parts.shapes(parts.registry.snapshot().layer).has_areas("grid")
    except PreconditionFailed:
        return False


def grid_is_quick(parts: Parts, q: Params) -> bool:
    """Whether :func:`grid` may run on the event loop: on the active version (no ``at``), with the
    grid areas built and this grid's GeoJSON geometry at this tolerance already made, it is a few
    look-ups and a small JSON (an unknown code or a bad tolerance: the worker thread says why)."""
    if q.str("at") is not None:
        return False
    try:
        snapshot = parts.registry.snapshot()
        shapes = parts.shapes(snapshot.layer)
        if not shapes.has_areas("grid"):
            return False
        row = snapshot.layer.row_of(q.required("code"))
        return shapes.has_geojson_geometry("grid", row, check_tolerance(q.float("tolerance", 0.0)))
    except (InvalidInput, NotFound, PreconditionFailed):
        return False


def grid(parts: Parts, principal, q: Params) -> Prepared:
    """The grid's Feature, encoded once per layer version and tolerance (it is the same for every
    caller who may see the grid; who may is asked on every call). Encoding and compressing it took
    most of a request, on the event loop."""
    snapshot, row = _visible_row(parts, principal, q.required("code"), q.time("at"))
    tolerance = check_tolerance(q.float("tolerance", 0.0))

    def feature() -> Prepared:
        geometry = parts.shapes(snapshot.layer).geojson_geometry("grid", row, tolerance)
        return Prepared.of({"type": "Feature", "id": row, "properties": _record(snapshot, row), "geometry": geometry})

    return _kept(parts.features_kept, FEATURES_KEPT, (snapshot.version_id, row, tolerance), feature)


def layer_geometry(parts: Parts, principal, q: Params) -> tuple[object, str, float, bool]:
    """The layer's areas of a level in the caller's jurisdiction: (snapshot, level, tolerance, with
    shapes or not) for the gateway, which caches the encoded answer per version, level, tolerance,
    shapes and jurisdiction."""
    level = check_level(q.str("level", "grid"))
    tolerance = check_tolerance(q.float("tolerance", MAP_TOLERANCE))
    return _snapshot(parts, q), level, tolerance, q.bool("shapes", True)


def _snapshot(parts: Parts, q: Params):
    version = q.str("layer_version")
    return parts.registry.get(version) if version else parts.registry.snapshot()


def layer_geojson(parts: Parts, principal, snapshot, level: str, tolerance: float, shapes_too: bool = True) -> dict:
    """The FeatureCollection of ``level``'s areas the caller may see; without ``shapes_too`` every
    feature's geometry is null (a map drawing the areas from tiles needs only their properties)."""
    shapes = parts.shapes(snapshot.layer)
    areas = shapes.areas(level)
    visible = areas.visible(principal)
    extra = {"label": np.round(shapes.points(level), 6).tolist()}  # where the page puts a label or tests click
    if level == "grid":
        layer = snapshot.layer
        extra.update({name: layer.column(name) for name in ("grid_type", "community_code", "community_name",
                                                             "street_code", "street_name")})
    if shapes_too:
        collection = shapes.geojson(level, tolerance=tolerance, indices=visible, extra=extra)
    else:
        collection = shapes.properties(level, indices=visible, extra=extra)
    collection["layer_version"] = snapshot.version_id
    return collection


#: The levels a map tile holds (each an MVT layer of that name), finest first.
TILE_LEVELS = ("grid", "community", "street")


def layer_tile(parts: Parts, principal, q: Params) -> tuple[object, float, tuple[int, int, int]]:
    """A map tile of the layer's areas: (snapshot, tolerance, (z, x, y)) for the gateway, which
    caches the tiles per version, tolerance and jurisdiction (:func:`layer_tiles` cuts them)."""
    z, x, y = check_tile(q.int("z"), q.int("x"), q.int("y"))
    tolerance = check_tolerance(q.float("tolerance", tile_tolerance(z)))
    return _snapshot(parts, q), tolerance, (z, x, y)


def tile_tolerance(z: int) -> float:
    """The default simplification of zoom ``z``'s map tiles (degrees)."""
    return LOW_ZOOM_TOLERANCE if z <= LOW_ZOOM else MAP_TOLERANCE


def layer_tiles(parts: Parts, principal, snapshot, tolerance: float) -> TileSet:
    """The tiles of ``snapshot``'s grids, communities and streets the caller may see (a level the
    layer has no codes for is left out), simplified together as :func:`layer_geojson`'s."""
    shapes = parts.shapes(snapshot.layer)
    levels = {}
    for level in TILE_LEVELS:
        try:
            areas = shapes.areas(level)
        except NotFound:  # e.g. a layer without street codes: no street outlines to draw
            continue
        visible = areas.visible(principal)
        levels[level] = ([areas.codes[i] for i in visible.tolist()], visible,
                         shapes.geometries(level, tolerance)[visible])
    return TileSet(levels)


def card(parts: Parts, principal, q: Params) -> dict:
    """The page's grid card: the grid, its workers, its open cases, its daily counts of the last
    days, and its KPI grade of the last 30 days."""
    snapshot, row = _visible_row(parts, principal, q.required("code"))
    record = _record(snapshot, row)
    code = record["code"]
    now = parts.clock()
    answer = {**record, "workers": [], "open_cases": None, "trend": None, "kpi": None}
    if parts.intake is not None:
        intake = parts.intake.intake()
        answer["workers"] = [{"worker_id": w.worker_id, "name": w.name, "department": w.department}
                             for w in intake.store.workers.all() if w.grid_code == code]
        page = intake.list(principal, EventFilter(states=tuple(OPEN_STATES), areas=(code,)), page_size=MAX_OPEN_CASES)
        answer["open_cases"] = len(page.events)
        answer["open_cases_more"] = bool(page.next_page_token)
    if parts.analytics is not None:
        analytics = parts.analytics()
        today = now.astimezone(parts.timezone).replace(hour=0, minute=0, second=0, microsecond=0)
        start, end = today - dt.timedelta(days=CARD_TREND_DAYS - 1), today + dt.timedelta(days=1)
        table = analytics.aggregate(principal, start=start, end=end, dimensions=("day",), measures=("reported",),
                                    filters={"grid": [code]})
        by_day = dict(zip([str(d) for d in table.columns.get("day", [])], _clean(table.columns.get("reported", []))))
        days = [(start + dt.timedelta(days=k)).date().isoformat() for k in range(CARD_TREND_DAYS)]
        answer["trend"] = {"days": days, "reported": [int(by_day.get(d, 0)) for d in days]}
        kpis = analytics.kpis(principal, unit="grid", start=today - dt.timedelta(days=CARD_KPI_DAYS), end=end,
                              filters={"grid": [code]})
        rows = [r for r in _table_rows(kpis) if r.get("grid") == code]
        answer["kpi"] = rows[0] if rows else None
    return answer


def _table_rows(table) -> list[dict]:
    return [_clean(r) for r in table.rows()]


# ---------------------------------------------------------------------- analytics


def aggregate(parts: Parts, principal, q: Params) -> dict:
    analytics = _need(parts.analytics, "analytics")()
    start, end = q.window(parts.clock())
    table = analytics.aggregate(principal, start=start, end=end, dimensions=q.list("dimensions"),
                                measures=q.list("measures", ("reported",)), filters=q.filters())
    return {"start": start.isoformat(), "end": end.isoformat(), **_table(table)}


def trend(parts: Parts, principal, q: Params) -> dict:
    analytics = _need(parts.analytics, "analytics")()
    start, end = q.window(parts.clock())
    result = analytics.trend(principal, start=start, end=end, measure=q.str("measure", "reported"),
                             filters=q.filters())
    return {"start": start.isoformat(), "end": end.isoformat(), **_clean(dataclasses.asdict(result)),
            "vs_previous": _clean(result.vs_previous), "vs_year_before": _clean(result.vs_year_before)}


def top_areas(parts: Parts, principal, q: Params) -> dict:
    analytics = _need(parts.analytics, "analytics")()
    start, end = q.window(parts.clock())
    ranks = analytics.top_areas(principal, level=q.str("level", "grid"), start=start, end=end, by=q.str("by", "count"),
                                n=q.int("n", 20), measure=q.str("measure", "reported"), filters=q.filters())
    return {"start": start.isoformat(), "end": end.isoformat(),
            "areas": [_clean(dataclasses.asdict(r)) for r in ranks]}


def heatmap(parts: Parts, principal, q: Params) -> dict:
    """Counts per grid (``{"grids": {code: n}}``), or with ``resolution`` a GeoJSON
    FeatureCollection of H3 cells with their counts."""
    analytics = _need(parts.analytics, "analytics")()
    start, end = q.window(parts.clock())
    resolution = q.int("resolution")
    table = analytics.heatmap(principal, start=start, end=end, h3_resolution=resolution, filters=q.filters())
    if resolution is None:
        return {"start": start.isoformat(), "end": end.isoformat(),
                "grids": dict(zip(table.columns["grid"], _clean(table.columns["reported"])))}
    features = [{"type": "Feature", "properties": {"h3_cell": cell, "reported": count},
                 "geometry": {"type": "Polygon", "coordinates": [h3_ring(cell)]}}
                for cell, count in zip(table.columns["h3_cell"], _clean(table.columns["reported"]))]
    return {"type": "FeatureCollection", "features": features, "resolution": resolution,
            "start": start.isoformat(), "end": end.isoformat()}


@functools.lru_cache(maxsize=H3_RINGS)
def h3_ring(cell: str) -> tuple[tuple[float, float], ...]:
    """An H3 cell's boundary as a closed GeoJSON ring (lng, lat; 6 decimals), remembered: a cell's
    boundary never changes, and working it out again took 0.05-0.1 ms a cell, 50-100 ms for the
    thousand cells of a district's heat map at resolution 9 on every request."""
    import h3

    ring = tuple((round(lng, 6), round(lat, 6)) for lat, lng in h3.cell_to_boundary(cell))
    return ring + ring[:1]


def kpis(parts: Parts, principal, q: Params) -> dict:
    analytics = _need(parts.analytics, "analytics")()
    start, end = q.window(parts.clock())
    table = analytics.kpis(principal, unit=q.str("unit", "street"), start=start, end=end, filters=q.filters())
    return {"start": start.isoformat(), "end": end.isoformat(), "rows": _table_rows(table)}


# ---------------------------------------------------------------------- alerts and houses


def alert_json(parts: Parts, alert) -> dict:
    """An alert as the page draws it: where (a point, and a disc's radius) and what (with its
    category's or category class's name, ``category_kind`` saying which, when the server has a
    taxonomy)."""
    data = _clean(dataclasses.asdict(alert))
    named = parts.intake.intake().taxonomy.name_of(alert.category_code) if parts.intake is not None else None
    if named is not None:
        data["category_kind"], data["category_name"] = named
    if data.get("lng") is None:
        point = _area_point(parts, alert.level, alert.unit_code)
        if point is not None:
            data["lng"], data["lat"] = point
    return data


def _area_point(parts: Parts, level: str, code: str) -> tuple[float, float] | None:
    try:
        shapes = parts.shapes(parts.registry.snapshot().layer)
        areas = shapes.areas(level)
        point = shapes.points(level)[areas.index(code)]
    except (InvalidInput, NotFound, PreconditionFailed):
        return None
    return round(point[0], 6), round(point[1], 6)


def alerts(parts: Parts, principal, q: Params) -> dict:
    host = _need(parts.alerts, "alert service")
    limit = q.int("limit", 100)
    if not 0 < limit <= MAX_ALERTS:
        raise InvalidInput(f"limit must be 1..{MAX_ALERTS}, got {limit}")
    where = _alert_filter(q)
    listed = host.list(principal, where, before=q.int("before"), limit=limit)
    return {"alerts": [alert_json(parts, a) for a in listed],
            "next_before": listed[-1].id if len(listed) == limit else None}


def _alert_filter(q: Params):
    from citygrid.engine.alerts.store import AlertFilter

    return AlertFilter(states=q.list("state"), kinds=q.list("kind"), category_codes=q.list("category"),
                       areas=q.list("area"))


def buildings_near(parts: Parts, principal, q: Params) -> dict:
    houses = _need(parts.houses, "house registry")
    found = houses.find_near(principal, q.float("lng"), q.float("lat"), radius_m=q.float("radius_m", 100.0),
                             crs=q.str("crs", "wgs84"))
    if found is None:
        return {"building": None}
    building, distance = found
    return {"building": _clean(dataclasses.asdict(building)), "distance_m": _clean(distance)}


def population(parts: Parts, principal, q: Params) -> dict:
    houses = _need(parts.houses, "house registry")
    counts = houses.population_stats(principal, q.str("level", "grid"), year=q.int("year"))
    return {"level": counts.level, "columns": list(counts.columns), "areas": counts.as_dict(),
            "totals": counts.totals()}


@dataclass(frozen=True)
class Endpoint:
    path: str
    summary: str
    handler: Callable
    #: (name, where, type, description); where is "query" or "path".
    params: tuple[tuple[str, str, str, str], ...] = ()
    #: The part that must run for the endpoint to exist ("analytics", "alerts", "houses", "intake").
    part: str | None = None
    #: ``quick(parts, params)``: whether this request may run on the event loop (an in-memory read
    #: of microseconds, no lock a writer holds); None: always in a worker thread.
    quick: Callable[[Parts, Params], bool] | None = None


_WINDOW = (("start", "query", "string", "ISO 8601 start of the window (default: today, local)"),
           ("end", "query", "string", "ISO 8601 end of the window, exclusive (default: start + 1 day)"),
           ("filter", "query", "string", "dimension:code,code;... (e.g. class:01;street:440307001)"))

ENDPOINTS = (
    Endpoint("/api/v1/whoami", "The caller, its jurisdiction, the server's time and the parts it runs", whoami),
    Endpoint("/api/v1/categories", "The event taxonomy's classes and categories", categories, part="intake"),
    Endpoint("/api/v1/grids/at", "The grid of a point, and its chain (AssignPoint)", grid_at,
             (("lng", "query", "number", "longitude"), ("lat", "query", "number", "latitude"),
              ("crs", "query", "string", "wgs84 (default), cgcs2000, gcj02 or bd09"),
              ("fallback_m", "query", "number", "nearest grid within this many metres of a point outside"),
              ("at", "query", "string", "answer from the layer version valid at this time")), quick=grid_at_is_quick),
    Endpoint("/api/v1/grids/{code}", "A grid as a GeoJSON Feature (GetGrid)", grid,
             (("code", "path", "string", "grid code"), ("at", "query", "string", "layer version valid at"),
              ("tolerance", "query", "number", "simplify to this many degrees (default 0)")), quick=grid_is_quick),
    Endpoint("/api/v1/grids/{code}/card", "What the map's grid card shows: grid, workers, open cases, trend, KPI",
             card, (("code", "path", "string", "grid code"),)),
    Endpoint("/api/v1/layer/geometry", "A level's areas as a GeoJSON FeatureCollection, simplified without gaps "
             "(GetLayerGeometry); gzip when accepted", layer_geometry,
             (("level", "query", "string", "grid (default), community, street or district"),
              ("tolerance", "query", "number", f"degrees (default {MAP_TOLERANCE}; 0: exact; at most 0.01)"),
              ("layer_version", "query", "string", "a version id (default: the active one)"),
              ("shapes", "query", "boolean", "false: the areas' properties only, each geometry null"))),
    Endpoint("/api/v1/layer/tiles/{z}/{x}/{y}", "The grids, communities and streets of a map tile as a Mapbox "
             "Vector Tile (layers grid, community, street; each feature's property code), cut once per version; "
             "gzip when accepted", layer_tile,
             (("z", "path", "integer", "zoom 0-16"), ("x", "path", "integer", "tile column"),
              ("y", "path", "integer", "tile row (from the north)"),
              ("tolerance", "query", "number", f"degrees (default {LOW_ZOOM_TOLERANCE} to zoom {LOW_ZOOM}, "
               f"{MAP_TOLERANCE} deeper; 0: exact; at most 0.01)"),
              ("layer_version", "query", "string", "a version id (default: the active one)"))),
    Endpoint("/api/v1/aggregate", "Measures by dimensions over a window (Aggregate)", aggregate,
             (("dimensions", "query", "string", "comma-separated: grid, community, street, category, class, day, ..."),
              ("measures", "query", "string", "comma-separated: reported (default), closed, overdue_now, ..."),
              *_WINDOW), part="analytics"),
    Endpoint("/api/v1/trend", "A window against the previous one and a year before (Trend)", trend,
             (("measure", "query", "string", "a count (default reported)"), *_WINDOW), part="analytics"),
    Endpoint("/api/v1/top-areas", "The first N areas (TopAreas)", top_areas,
             (("level", "query", "string", "grid (default), community, street, district"),
              ("by", "query", "string", "count (default), rate or growth"), ("n", "query", "integer", "1-1000"),
              ("measure", "query", "string", "a count (default reported)"), *_WINDOW), part="analytics"),
    Endpoint("/api/v1/heatmap", "Counts per grid, or per H3 cell as GeoJSON (Heatmap)", heatmap,
             (("resolution", "query", "integer", "H3 resolution 7-10 (default: per grid)"), *_WINDOW),
             part="analytics"),
    Endpoint("/api/v1/kpis", "考核 per unit with score and grade (Kpis)", kpis,
             (("unit", "query", "string", "worker, department, grid, community, street (default)"), *_WINDOW),
             part="analytics"),
    Endpoint("/api/v1/alerts", "Alerts in the caller's jurisdiction, newest first", alerts,
             (("state", "query", "string", "comma-separated states"), ("kind", "query", "string", "kinds"),
              ("category", "query", "string", "category codes"), ("area", "query", "string", "area codes"),
              ("limit", "query", "integer", f"1-{MAX_ALERTS} (default 100)"),
              ("before", "query", "integer", "the previous page's next_before")), part="alerts"),
    Endpoint("/api/v1/buildings/near", "The nearest building to a point (FindBuildings near)", buildings_near,
             (("lng", "query", "number", "longitude"), ("lat", "query", "number", "latitude"),
              ("radius_m", "query", "number", "search radius (default 100)")), part="houses"),
    Endpoint("/api/v1/population", "Population counts per area (PopulationStats)", population,
             (("level", "query", "string", "grid (default), community, street, district"),
              ("year", "query", "integer", "as of the end of this year")), part="houses"),
)
