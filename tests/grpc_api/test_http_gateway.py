"""The HTTP/JSON gateway (citygrid.grpc_api.web) in the gRPC server's process: the same engine
objects (an event submitted over gRPC is counted by the next HTTP request and pushed on the SSE
stream), the same tokens and jurisdiction, the one error table as RFC 9457 problems, gzip, limits,
CORS, the OpenAPI document. Expectations come from gRPC answers and GEOS, not from the gateway."""

from __future__ import annotations

import gzip
import http.client
import dataclasses
import json
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta

import grpc
import numpy as np
import pytest
import shapely
from grpc_env import ADMIN_TOKEN, LAT0, LNG0, NOW, SPAN, populate, start_server

from citygrid.engine import errors as engine_errors
from citygrid.grpc_api._pb import intake_pb2
from citygrid.grpc_api.config import ServerConfig
from citygrid.grpc_api.errors import ERRORS, http_status_of

STEP = SPAN / 20  # v1's boxes


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("http-data")
    layers = populate(data_dir)
    env = start_server(data_dir, http_port=0, http_cors_origins=("https://screen.example",))
    env.layers = layers
    yield env
    assert env.server.stop(1.0).wait(10)


def get(env, path: str, token: str | None = ADMIN_TOKEN, headers: dict | None = None, method: str = "GET"):
    """(status, headers, body as bytes) of a request to the gateway."""
    connection = http.client.HTTPConnection("127.0.0.1", env.server.http_port, timeout=30)
    try:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        connection.request(method, path, headers=all_headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def get_json(env, path: str, token: str | None = ADMIN_TOKEN):
    status, headers, body = get(env, path, token)
    return status, headers, json.loads(body)


def report(event_id: str, i: int, j: int, category: str = "0101") -> intake_pb2.EventReport:
    message = intake_pb2.EventReport(event_id=event_id, category_code=category, source="hotline_12345",
                                     lng=LNG0 + (i + 0.5) * STEP, lat=LAT0 + (j + 0.5) * STEP)
    message.occurred_at.FromDatetime(NOW)
    return message


@pytest.fixture(scope="module")
def street_token(web):
    with web.client() as admin:
        return admin.issue_token("S00 大屏", "dashboard", ["S00"]).token


# ---------------------------------------------------------------------- grids and geometry


def test_point_lookup_agrees_with_grpc(web, admin_of):
    rng = np.random.default_rng(5)
    for lng, lat in zip(rng.uniform(LNG0, LNG0 + SPAN, 20), rng.uniform(LAT0, LAT0 + SPAN, 20)):
        expected = admin_of.assign_point(lng, lat)
        status, _, answer = get_json(web, f"/api/v1/grids/at?lng={float(lng)!r}&lat={float(lat)!r}")
        assert status == 200
        assert answer["grid"]["code"] == expected.grid.code
        assert answer["grid"]["community_code"] == expected.grid.community_code
        assert answer["layer_version"] == expected.layer_version


def test_layer_geometry_is_gzipped_and_has_no_gaps(web):
    status, headers, body = get(web, "/api/v1/layer/geometry?level=grid&tolerance=0.001",
                                headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert headers["Content-Type"].startswith("application/geo+json")
    collection = json.loads(gzip.decompress(body))
    layer = web.layers["v1"]
    assert [f["properties"]["code"] for f in collection["features"]] == list(layer.codes)
    shapes = np.array([shapely.from_geojson(json.dumps(f["geometry"])) for f in collection["features"]])
    union = shapely.union_all(shapes)
    assert shapely.area(shapes).sum() == pytest.approx(union.area, rel=1e-9)
    assert shapely.get_num_interior_rings(union) == 0
    plain_status, plain_headers, plain = get(web, "/api/v1/layer/geometry?level=grid&tolerance=0.001")
    assert plain_status == 200 and "Content-Encoding" not in plain_headers and json.loads(plain) == collection


def tile_codes(web, path: str, token: str = ADMIN_TOKEN) -> dict[str, set[str]]:
    """The codes per MVT layer of a tile from the gateway (read by Google's protobuf runtime)."""
    from mvt_reader import compile_schema, read

    status, headers, body = get(web, path, token, headers={"Accept-Encoding": "gzip"})
    assert status == 200, body
    assert headers["Content-Type"] == "application/vnd.mapbox-vector-tile"
    if headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return {name: set(layer["features"]) for name, layer in read(compile_schema(web.data_dir / "mvt-pb"), body).items()}


def tile_of(lng: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    return int((lng + 180) / 360 * n), int((1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2 * n)


def test_map_tiles_hold_the_areas_the_caller_sees(web, street_token):
    layer = web.layers["v1"]
    streets = np.asarray(layer.column("street_code"))
    communities = np.asarray(layer.column("community_code"))
    west, south, east, north = shapely.total_bounds(layer.geometries())
    z = 6
    assert tile_of(west, south, z) == tile_of(east, north, z), "the test square is in one zoom-6 tile"
    x, y = tile_of(west, south, z)
    (web.data_dir / "mvt-pb").mkdir(exist_ok=True)
    admin = tile_codes(web, f"/api/v1/layer/tiles/{z}/{x}/{y}")
    assert admin == {"grid": set(layer.codes), "community": set(communities), "street": set(streets)}
    street = tile_codes(web, f"/api/v1/layer/tiles/{z}/{x}/{y}", street_token)
    assert street == {"grid": set(layer.codes[streets == "S00"]), "community": set(communities[streets == "S00"]),
                      "street": {"S00"}}
    far = tile_codes(web, f"/api/v1/layer/tiles/{z}/{(x + 3) % 64}/{y}")
    assert far == {}
    status, _, problem = get_json(web, f"/api/v1/layer/tiles/17/{x}/{y}")
    assert status == 400 and "zoom must be between 0 and 16" in problem["detail"]
    status, _, problem = get_json(web, f"/api/v1/layer/tiles/{z}/{x}/{y}?layer_version=v9")
    assert status == 404 and "no layer version 'v9'" in problem["detail"]


def test_the_active_versions_tiles_are_cut_when_it_becomes_active(web):
    from citygrid.grpc_api.web.gateway import WARM_MAX_ZOOM, tiles_over

    gateway = web.server.gateway
    deadline = time.monotonic() + 30
    while gateway.warmed_version != web.server.state.registry.active_version_id and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gateway.warmed_version == web.server.state.registry.active_version_id
    west, south, east, north = shapely.total_bounds(web.layers["v1"].geometries())
    expected = set()
    for z in range(WARM_MAX_ZOOM + 1):  # the tiles of the corners, and every tile between them
        (x0, y0), (x1, y1) = tile_of(west, north, z), tile_of(east, south, z)
        expected |= {(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)}
    assert set(tiles_over((west, south, east, north), WARM_MAX_ZOOM)) == expected
    assert gateway.warm() == len(expected)  # already cut: served from the cache, as many as expected
    from citygrid.grpc_api.web.endpoints import tile_tolerance

    kept = {(zxy, key[1]) for key, zxy in gateway._tiles._tiles}  # each zoom cut at its own tolerance
    assert {(zxy, tile_tolerance(zxy[0])) for zxy in expected} <= kept


def test_low_zoom_tiles_are_simplified_under_a_pixel_of_their_zoom(web):
    from citygrid.engine.access.principals import Principal, Role
    from citygrid.grpc_api.web import endpoints as E

    parts = web.server.gateway.parts
    admin = Principal("tiles", Role.ADMIN)

    def tolerance(z: int, **query: str) -> float:
        _, tolerance, zxy = E.layer_tile(parts, admin, E.Params(query, {"z": str(z), "x": "0", "y": "0"},
                                                                 tz=parts.timezone))
        assert zxy == (z, 0, 0)
        return tolerance

    assert [tolerance(z) for z in range(E.LOW_ZOOM + 1)] == [E.LOW_ZOOM_TOLERANCE] * (E.LOW_ZOOM + 1)
    assert [tolerance(z) for z in range(E.LOW_ZOOM + 1, 17)] == [E.MAP_TOLERANCE] * (16 - E.LOW_ZOOM)
    assert tolerance(8, tolerance="0.002") == 0.002 and tolerance(14, tolerance="0") == 0.0
    # under a pixel of a 512-pixel tile, in longitude and in latitude at the demo district's 22.7 N
    # (Web Mercator: a pixel spans cos(latitude) times as many degrees of latitude as of longitude)
    for z in range(E.LOW_ZOOM + 1):
        pixel = 360 / (512 * 2 ** z)
        assert E.LOW_ZOOM_TOLERANCE < pixel * np.cos(np.radians(22.7)) < pixel
    assert E.MAP_TOLERANCE < E.LOW_ZOOM_TOLERANCE


def test_the_areas_without_shapes_and_where_the_map_starts(web, street_token):
    layer = web.layers["v1"]
    streets = np.asarray(layer.column("street_code"))
    _, _, full = get_json(web, "/api/v1/layer/geometry?level=grid")
    status, _, bare = get_json(web, "/api/v1/layer/geometry?level=grid&shapes=false")
    assert status == 200 and all(f["geometry"] is None for f in bare["features"])
    assert [f["properties"] for f in bare["features"]] == [f["properties"] for f in full["features"]]
    status, _, problem = get_json(web, "/api/v1/layer/geometry?shapes=maybe")
    assert status == 400 and "shapes must be true or false" in problem["detail"]
    _, _, me = get_json(web, "/api/v1/whoami")
    assert me["bounds"] == pytest.approx(list(shapely.total_bounds(layer.geometries())), abs=1e-6)
    _, _, street = get_json(web, "/api/v1/whoami", street_token)
    assert street["bounds"] == pytest.approx(
        list(shapely.total_bounds(layer.geometries()[streets == "S00"])), abs=1e-6)


def test_an_answer_is_gzipped_when_accepted_and_large(web):
    path = "/api/v1/categories"  # the taxonomy: a few KB
    status, headers, packed = get(web, path, headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in headers["Vary"] and "Authorization" in headers["Vary"]
    _, plain_headers, plain = get(web, path)
    assert "Content-Encoding" not in plain_headers and len(plain) > len(packed)
    assert json.loads(gzip.decompress(packed)) == json.loads(plain)
    _, small_headers, _ = get(web, "/api/v1/whoami", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in small_headers  # a few hundred bytes go as they are


def test_grid_feature_matches_the_layer(web):
    layer = web.layers["v1"]
    code = layer.codes[42]
    from citygrid.grpc_api.web import endpoints as E

    parts = web.server.gateway.parts
    quick = [E.grid_is_quick(parts, E.Params({}, {"code": c}, tz=parts.timezone)) for c in (code, "no-such-grid")]
    assert quick == [False, False]  # not made yet; an unknown code goes to a thread, which says why
    for _ in range(2):  # the second on the event loop: the grid's GeoJSON geometry is made
        status, _, feature = get_json(web, f"/api/v1/grids/{code}")
        assert status == 200 and feature["properties"]["code"] == code
        assert shapely.equals_exact(shapely.from_geojson(json.dumps(feature["geometry"])), layer.geometries()[42],
                                    tolerance=6e-7)
        assert E.grid_is_quick(parts, E.Params({}, {"code": code}, tz=parts.timezone))
    # The Feature is kept encoded, plain and (past GZIP_MIN_BYTES) gzipped: each says the same.
    _, headers, body = get(web, f"/api/v1/grids/{code}", headers={"Accept-Encoding": "gzip"})
    assert json.loads(gzip.decompress(body) if headers.get("Content-Encoding") == "gzip" else body) == feature
    from citygrid.grpc_api.web.encoding import Prepared, encode

    big = {"features": [feature] * 20}
    prepared = Prepared.of(big)
    packed, plain = encode(prepared, accept_gzip=True), encode(prepared, accept_gzip=False)
    assert packed.gzipped and not plain.gzipped
    assert json.loads(gzip.decompress(packed.body)) == json.loads(plain.body) == big


def test_the_maps_bounds_are_kept_per_version_and_jurisdiction(web, monkeypatch):
    """whoami's bounds are worked out once per layer version and jurisdiction, at most BOUNDS_KEPT
    of them (least recently asked dropped first), each the GEOS bounds of the grids it sees."""
    from citygrid.engine.access.principals import Principal, Role
    from citygrid.grpc_api.web import endpoints as E

    monkeypatch.setattr(E, "BOUNDS_KEPT", 2)
    parts = web.server.gateway.parts
    layer = web.layers["v1"]
    streets = np.asarray(layer.column("street_code"))
    snapshot = parts.registry.snapshot()
    for street in ("S00", "S11", "S00", "S01", "S10"):
        principal = Principal(f"{street} screen", Role.DASHBOARD, jurisdiction=(street,))
        bounds = E.whoami(parts, principal, E.Params({}, tz=parts.timezone))["bounds"]
        assert bounds == pytest.approx(list(shapely.total_bounds(layer.geometries()[streets == street])), abs=1e-6)
        assert len(parts.bounds_kept) <= 2 and (snapshot.version_id, (street,)) in parts.bounds_kept


# ---------------------------------------------------------------------- live counts, one state


def test_an_event_submitted_over_grpc_is_counted_by_the_next_request(web, admin_of):
    grid = admin_of.assign_point(LNG0 + 3.5 * STEP, LAT0 + 7.5 * STEP).grid.code
    before = get_json(web, "/api/v1/heatmap")[2]["grids"].get(grid, 0)
    admin_of.submit_events([report("http-count-1", 3, 7), report("http-count-2", 3, 7, "0201")])
    status, _, answer = get_json(web, "/api/v1/heatmap")
    assert status == 200 and answer["grids"][grid] == before + 2
    status, _, table = get_json(web, f"/api/v1/aggregate?dimensions=grid,category&filter=grid:{grid}")
    rows = dict(zip(zip(table["columns"]["grid"], table["columns"]["category"]), table["columns"]["reported"]))
    assert rows[(grid, "0101")] >= 1 and rows[(grid, "0201")] >= 1


def test_a_remembered_answer_is_served_on_the_loop_only_while_it_holds(web, admin_of, street_token):
    """A dashboard question asked again with nothing committed is answered on the event loop from
    the engine's remembered encoding (same bytes); after an event submitted over gRPC, after a
    local midnight (the default window is another day) and for another jurisdiction it is counted
    afresh (the expectations: gRPC's count, the layer's street, the clock's day)."""
    gateway = web.server.gateway
    grid = admin_of.assign_point(LNG0 + 5.5 * STEP, LAT0 + 2.5 * STEP).grid.code
    path = "/api/v1/heatmap"
    first = get(web, path, headers={"Accept-Encoding": "gzip"})
    recalled = gateway.recalled
    again = get(web, path, headers={"Accept-Encoding": "gzip"})
    assert gateway.recalled == recalled + 1 and again[2] == first[2]
    before = json.loads(first[2])["grids"].get(grid, 0)
    admin_of.submit_events([report("http-recall-1", 5, 2)])
    status, _, answer = get_json(web, path)
    assert status == 200 and answer["grids"][grid] == before + 1
    layer = web.layers["v1"]
    own = set(layer.codes[np.asarray(layer.column("street_code")) == "S00"])
    for _ in range(2):
        _, _, street = get_json(web, path, street_token)
        assert set(street["grids"]) <= own
    clock = gateway.parts.intake.intake().clock  # the server's ManualClock
    now = clock()
    try:
        today = json.loads(get(web, path)[2])["start"]
        clock.advance(days=1)
        tomorrow = get_json(web, path)[2]["start"]
        local = (now + timedelta(days=1)).astimezone(gateway.parts.timezone).date().isoformat()
        assert tomorrow != today and tomorrow.startswith(local)
    finally:
        clock.set(now)


def test_the_h3_heat_map_is_grpcs_cells_with_h3s_boundaries(web, admin_of):
    import h3

    admin_of.submit_events([report(f"http-h3-{k}", k, 2 * k) for k in range(6)])
    path = "/api/v1/heatmap?resolution=8&start=" + NOW.astimezone(web.server.gateway.parts.timezone).date().isoformat()
    answer, again = get_json(web, path)[2], get_json(web, path)[2]
    local = NOW.astimezone(web.server.gateway.parts.timezone).date()
    day = datetime(local.year, local.month, local.day, tzinfo=web.server.gateway.parts.timezone)
    table = admin_of.heatmap(day, day + timedelta(days=1), h3_resolution=8)
    expected = dict(zip(table.column("h3_cell").to_pylist(), table.column("reported").to_pylist()))
    assert len(expected) >= 2
    for collection in (answer, again):  # the second from remembered boundaries
        assert {f["properties"]["h3_cell"]: f["properties"]["reported"] for f in collection["features"]} == expected
        for feature in collection["features"]:
            ring = feature["geometry"]["coordinates"][0]
            assert ring[0] == ring[-1]
            boundary = shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(feature["properties"]["h3_cell"])])
            assert shapely.Polygon(ring).symmetric_difference(boundary).area < 1e-3 * boundary.area


def test_the_stream_pushes_changed_tallies_within_seconds(web, admin_of):
    grid = admin_of.assign_point(LNG0 + 11.5 * STEP, LAT0 + 2.5 * STEP).grid.code
    events: list[dict] = []
    opened = threading.Event()

    def listen():
        connection = http.client.HTTPConnection("127.0.0.1", web.server.http_port, timeout=30)
        connection.request("GET", "/api/v1/stream?interval=0.5", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        response = connection.getresponse()
        assert response.getheader("Content-Type").startswith("text/event-stream")
        opened.set()
        name = None
        while len([e for e in events if e["event"] == "tallies"]) < 2:
            line = response.fp.readline().decode().rstrip("\n")
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                events.append({"event": name, "data": json.loads(line[5:])})
        connection.close()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert opened.wait(10)
    deadline = time.monotonic() + 10
    while not events and time.monotonic() < deadline:
        time.sleep(0.05)
    first = events[0]["data"]["day"].get(grid, 0)
    submitted = time.monotonic()
    admin_of.submit_events([report("http-stream-1", 11, 2)])
    listener.join(10)
    assert not listener.is_alive(), events
    assert time.monotonic() - submitted < 5
    assert events[1]["data"]["day"][grid] == first + 1


class Stream:
    """An open /api/v1/stream, read event by event."""

    def __init__(self, env, token: str, interval: float):
        self.connection = http.client.HTTPConnection("127.0.0.1", env.server.http_port, timeout=30)
        self.connection.request("GET", f"/api/v1/stream?interval={interval}",
                                headers={"Authorization": f"Bearer {token}"})
        self.response = self.connection.getresponse()
        assert self.response.status == 200

    def next(self, kind: str) -> dict:
        name = None
        while True:
            line = self.response.fp.readline().decode().rstrip("\n")
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:") and name == kind:
                return json.loads(line[5:])

    def close(self) -> None:
        self.connection.close()


def test_streams_of_one_jurisdiction_read_one_ticker(web, street_token):
    gateway = web.server.gateway
    calls = []
    original = gateway._tallies
    gateway._tallies = lambda principal, params: calls.append(principal.jurisdiction) or original(principal, params)
    streams = []
    try:
        streams = [Stream(web, ADMIN_TOKEN, 0.5), Stream(web, ADMIN_TOKEN, 0.5), Stream(web, street_token, 0.5)]
        first = [s.next("tallies") for s in streams]
        assert first[0] == first[1]  # the same answer, the same computation
        assert set(first[2]["day"]) <= set(first[0]["day"])
        time.sleep(1.5)  # a few ticks
        tickers = gateway.tickers.running()
        assert sorted(t.readers for t in tickers) == [1, 2]  # two keys: the admin's (two streams), the street's
        # every computation was a ticker's: the two admin streams did not compute one each
        assert sum(t.computed for t in tickers) <= len(calls) <= sum(t.computed for t in tickers) + len(tickers)
        admin, street = calls.count(("*",)), len(calls) - calls.count(("*",))
        assert admin <= street + 2  # as often as the street's one stream (two streams computing: twice as often)
    finally:
        for s in streams:
            s.close()
        gateway._tallies = original
    deadline = time.monotonic() + 10
    while len(gateway.tickers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(gateway.tickers) == 0  # the last stream of a key stops its ticker


# ---------------------------------------------------------------------- jurisdiction


def test_a_street_token_sees_its_street_only(web, street_token):
    layer = web.layers["v1"]
    streets = np.asarray(layer.column("street_code"))
    status, _, collection = get_json(web, "/api/v1/layer/geometry?level=grid", street_token)
    assert status == 200
    assert sorted(f["properties"]["code"] for f in collection["features"]) == sorted(layer.codes[streets == "S00"])
    _, _, communities = get_json(web, "/api/v1/layer/geometry?level=community", street_token)
    assert {f["properties"]["code"] for f in communities["features"]} == set(
        np.asarray(layer.column("community_code"))[streets == "S00"])
    foreign = layer.codes[np.flatnonzero(streets == "S11")[0]]
    assert get_json(web, f"/api/v1/grids/{foreign}")[0] == 200  # its Feature is now kept encoded
    status, headers, problem = get_json(web, f"/api/v1/grids/{foreign}", street_token)
    assert status == 403 and headers["Content-Type"] == "application/problem+json"
    assert problem["status"] == 403 and problem["type"] == "/problems/permission-denied"
    _, _, heat = get_json(web, "/api/v1/heatmap", street_token)
    own = set(layer.codes[streets == "S00"])
    assert set(heat["grids"]) <= own


# ---------------------------------------------------------------------- errors and limits


def test_every_row_of_the_error_table_has_an_http_status():
    assert set(ERRORS) == {engine_errors.InvalidInput, engine_errors.NotFound, engine_errors.Conflict,
                           engine_errors.PreconditionFailed, engine_errors.Overloaded, engine_errors.Unauthorized,
                           engine_errors.Forbidden, engine_errors.DeadlineExceeded, engine_errors.Unavailable}
    assert [http_status_of(cls("x")) for cls in ERRORS] == [400, 404, 409, 400, 429, 401, 403, 504, 503]
    assert http_status_of(ValueError("not ours")) == 500


@pytest.mark.parametrize("path, token, status, kind, words", [
    ("/api/v1/grids/at?lng=abc&lat=22.7", ADMIN_TOKEN, 400, "invalid-argument", "lng must be a number"),
    ("/api/v1/layer/geometry?tolerance=1", ADMIN_TOKEN, 400, "invalid-argument", "tolerance must be between"),
    ("/api/v1/aggregate?start=2026-03-09&end=2026-03-01", ADMIN_TOKEN, 400, "invalid-argument", "must be after"),
    ("/api/v1/heatmap?resolution=3", ADMIN_TOKEN, 400, "invalid-argument", "H3 resolution 3"),
    ("/api/v1/whoami", None, 401, "unauthenticated", "no token"),
    ("/api/v1/whoami", "wrong-token-wrong-token-0000", 401, "unauthenticated", ""),
    ("/api/v1/grids/NOPE", ADMIN_TOKEN, 404, "not-found", "NOPE"),
    ("/api/v1/alerts?limit=0", ADMIN_TOKEN, 400, "invalid-argument", "limit must be 1..500"),
    ("/api/v1/layer/geometry?layer_version=v9", ADMIN_TOKEN, 404, "not-found", "no layer version 'v9'"),
])
def test_problems_carry_the_tables_status(web, path, token, status, kind, words):
    got, headers, problem = get_json(web, path, token)
    assert got == status, problem
    assert headers["Content-Type"] == "application/problem+json"
    assert problem["status"] == status and problem["type"] == f"/problems/{kind}"
    assert words in problem["detail"] and problem["instance"] == path.split("?")[0]


def test_alerts_are_listed_from_the_alert_host(web, admin_of):
    host = web.server.state.alerts
    from citygrid.engine.access.principals import Principal, Role

    expected = [a.id for a in host.list(Principal("check", Role.ADMIN), limit=100)]
    status, _, answer = get_json(web, "/api/v1/alerts?limit=100")
    assert status == 200 and [a["id"] for a in answer["alerts"]] == expected


def test_an_alert_is_named_for_the_page_as_a_class_or_a_category(web):
    import datetime as dt

    from citygrid.engine.alerts.store import Alert
    from citygrid.grpc_api.web import endpoints

    parts = web.server.gateway.parts
    taxonomy = parts.intake.intake().taxonomy
    cls = taxonomy.classes[0]
    day, at = dt.date(2026, 12, 1), dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    alert = Alert(1, "detector", "ears C2", cls.code, "street", "S1", 114.2, 22.7, None, (), (None,) * 4, day, day,
                  9.0, 2.0, 5.0, 5.0, None, "new", at, at, 0, 1, 1, None, None)
    for code, kind, name in ((cls.code, "class", cls.name), (cls.categories[0].code, "category", cls.categories[0].name)):
        data = endpoints.alert_json(parts, dataclasses.replace(alert, category_code=code))
        assert (data["category_kind"], data["category_name"]) == (kind, name)
    assert "category_name" not in endpoints.alert_json(parts, dataclasses.replace(alert, category_code="zz"))


def test_a_part_the_server_does_not_run_has_no_endpoints(tmp_path):
    from citygrid.engine.times import ManualClock
    from citygrid.grpc_api.server import create_server

    populate(tmp_path)
    config = ServerConfig(data_dir=tmp_path, host="127.0.0.1", port=0, metrics_port=None, http_port=0,
                          admin_token=ADMIN_TOKEN)
    server, port = create_server(config, clock=ManualClock(NOW), service_modules=(
        "grid_service", "token_service", "intake_service", "analytics_service"))
    server.start()
    try:
        env = type("Env", (), {"server": server})()
        status, headers, problem = get_json(env, "/api/v1/population")
        assert status == 404 and headers["Content-Type"] == "application/problem+json"
        assert "runs no alerts, houses" in problem["detail"]
        assert get_json(env, "/api/v1/alerts")[0] == 404
        _, _, doc = get_json(env, "/openapi.json", None)
        assert "/api/v1/population" not in doc["paths"] and "/api/v1/aggregate" in doc["paths"]
    finally:
        server.stop(1.0).wait(10)


def test_writes_are_refused(web):
    status, headers, body = get(web, "/api/v1/whoami", method="POST")
    assert status == 405 and json.loads(body)["status"] == 405


def test_a_request_over_its_time_gets_504(tmp_path):
    populate(tmp_path)
    env = start_server(tmp_path, http_port=0, http_timeout_seconds=1e-6)
    try:
        status, _, problem = get_json(env, "/api/v1/kpis")
        assert status == 504 and problem["type"] == "/problems/deadline-exceeded"
    finally:
        env.server.stop(1.0).wait(10)


def test_cors_only_for_configured_origins(web):
    _, allowed, _ = get(web, "/api/v1/whoami", headers={"Origin": "https://screen.example"})
    assert allowed.get("access-control-allow-origin") == "https://screen.example"
    _, other, _ = get(web, "/api/v1/whoami", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in {k.lower() for k in other}


def test_openapi_lists_what_is_served(web):
    status, _, doc = get_json(web, "/openapi.json", None)
    assert status == 200 and doc["openapi"].startswith("3.1")
    for path in ("/api/v1/grids/at", "/api/v1/layer/geometry", "/api/v1/aggregate", "/api/v1/kpis", "/api/v1/stream"):
        assert path in doc["paths"]
    assert {"/api/v1/alerts", "/api/v1/population", "/api/v1/buildings/near"} <= set(doc["paths"])
    for path in doc["paths"]:
        if "{" not in path and path != "/api/v1/stream":
            assert get(web, path)[0] in (200, 400), path


def test_the_page_and_its_vendored_map_library_are_served(web):
    status, headers, page = get(web, "/", None)
    assert status == 200 and b"/static/app.js" in page
    for path in ("/static/app.js", "/static/vendor/maplibre-gl/maplibre-gl.mjs",
                 "/static/vendor/maplibre-gl/maplibre-gl-worker.mjs", "/static/vendor/maplibre-gl/LICENSE.txt"):
        assert get(web, path, None)[0] == 200, path
    assert b"https://" not in get(web, "/static/app.js", None)[2]  # nothing fetched from elsewhere


def test_http_can_be_turned_off_and_configured(env):
    assert env.server.http_port is None and env.server.gateway is None
    config = ServerConfig.from_toml('[server]\nhttp_port = -1\nhttp_cors_origins = ["*"]')
    assert config.http_port is None and config.http_cors_origins == ("*",)
    assert ServerConfig().http_port == 8080
    with pytest.raises(engine_errors.InvalidInput, match="http_max_concurrent must be at least 1"):
        ServerConfig(http_max_concurrent=0)


@pytest.fixture(scope="module")
def admin_of(web):
    with web.client() as client:
        yield client
