"""The HTTP/JSON gateway and the map's figures (issue 15), beside peers measured in the same run:

- the layer GeoJSON of the demo district's 3,823 grids, gzipped, at the map's tolerance (0.0001°)
  and unsimplified (the peer);
- p50 / p99 latency of gateway endpoints at 20 concurrent clients (from a client process,
  bench/http_load.py; paced, then closed loop; each run's first request timed apart, before the
  clients start), beside the same queries over gRPC at the same load
  (AssignPoint, GetGrid, and AnalyticsService's Heatmap, TopAreas, Kpis, Trend), and the engine call
  itself from one caller in this process.

The server is the demo district served in-process with its events (tests/browser/served_demo.py).
The machine is shared: compare figures of one run. Run::

    pytest bench/test_http.py -s -p no:cacheprovider
"""

from __future__ import annotations

import gzip
import json
import pickle
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browser"))

from served_demo import LOADER, serve_demo  # noqa: E402

from citygrid.engine.demo import generate_demo  # noqa: E402
from citygrid.grpc_api._pb import analytics_pb2, grid_pb2  # noqa: E402

CLIENTS = 20
SECONDS = 8.0
#: Each paced client's requests per second (a big screen refreshing a panel every 200 ms, and 20 of them).
PACED_RATE = 5.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    source = tmp_path_factory.mktemp("demo-source")
    generate_demo(source, seed=20261130, n_events=20_000)
    served = serve_demo(tmp_path_factory.mktemp("bench-http"), source)
    yield served
    served.server.stop(1.0).wait(20)


def load(demo, kind: str, work, *, pace: float | None = None) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".pickle") as spec:
        Path(spec.name).write_bytes(pickle.dumps(dict(
            kind=kind, port=demo.http_port if kind == "http" else demo.grpc_port, token=demo.admin_token,
            work=work, clients=CLIENTS, seconds=SECONDS, pace=pace)))
        out = subprocess.run([sys.executable, str(Path(__file__).with_name("http_load.py")), spec.name],
                             check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def engine_latency(fn, seconds: float = 3.0) -> dict:
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    return {"calls": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def test_layer_geojson_size(demo):
    sizes = {}
    for tolerance in (0.0001, 0.0):
        request = urllib.request.Request(
            f"http://127.0.0.1:{demo.http_port}/api/v1/layer/geometry?level=grid&tolerance={tolerance}",
            headers={"Authorization": f"Bearer {demo.admin_token}", "Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=120) as response:
            body = response.read()
        features = json.loads(gzip.decompress(body))["features"]
        assert len(features) == 3823
        sizes[tolerance] = (len(body), len(gzip.decompress(body)))
    print(f"\nlayer GeoJSON, 3,823 grids: tolerance 0.0001°: {sizes[0.0001][0] / 1e6:.3f} MB gzipped "
          f"({sizes[0.0001][1] / 1e6:.2f} MB raw); unsimplified (peer): {sizes[0.0][0] / 1e6:.3f} MB gzipped "
          f"({sizes[0.0][1] / 1e6:.2f} MB raw); ratio {sizes[0.0001][0] / sizes[0.0][0]:.2f}")


def test_endpoints_at_20_clients(demo):
    layer = demo.server.state.registry.snapshot().layer
    rng = np.random.default_rng(7)
    x0, y0, x1, y1 = layer.bounds
    points = list(zip(rng.uniform(x0, x1, 200), rng.uniform(y0, y1, 200)))
    codes = [str(c) for c in rng.choice(layer.codes, 200)]
    now = demo.clock()
    today = now.astimezone(demo.server.gateway.parts.timezone).replace(hour=0, minute=0, second=0, microsecond=0)
    week, month = today - timedelta(days=6), today - timedelta(days=29)
    end = today + timedelta(days=1)
    iso = lambda t: t.isoformat().replace("+", "%2B")
    street = sorted(set(layer.column("street_code")))[0]
    analytics = demo.server.gateway.parts.analytics()
    a = analytics_pb2
    street_filter = [a.Filter(dimension="street", codes=[street])]
    dashboard = {  # name: (HTTP path, gRPC call, the engine call)
        "grid counts today": (f"/api/v1/heatmap?start={iso(today)}&end={iso(end)}",
                              ("Heatmap", a.HeatmapRequest(window=window(today, end))),
                              lambda: analytics.heatmap(LOADER, start=today, end=end)),
        "top 20 grids, 7 days": (f"/api/v1/top-areas?level=grid&n=20&start={iso(week)}&end={iso(end)}",
                                 ("TopAreas", a.TopAreasRequest(window=window(week, end), level="grid", n=20)),
                                 lambda: analytics.top_areas(LOADER, level="grid", start=week, end=end, n=20)),
        "KPIs by street, 30 days": (f"/api/v1/kpis?unit=street&start={iso(month)}&end={iso(end)}",
                                    ("Kpis", a.KpisRequest(window=window(month, end), unit="street")),
                                    lambda: analytics.kpis(LOADER, unit="street", start=month, end=end)),
        "H3 res 9, a day": (f"/api/v1/heatmap?resolution=9&start={iso(today)}&end={iso(end)}",
                            ("Heatmap", a.HeatmapRequest(window=window(today, end), h3_resolution=9)),
                            lambda: analytics.heatmap(LOADER, start=today, end=end, h3_resolution=9)),
        "a street's trend": (f"/api/v1/trend?start={iso(month)}&end={iso(end)}&filter=street:{street}",
                             ("Trend", a.TrendRequest(window=window(month, end), filters=street_filter)),
                             lambda: analytics.trend(LOADER, start=month, end=end, filters={"street": [street]})),
    }
    http_point_paths = [f"/api/v1/grids/at?lng={float(x)!r}&lat={float(y)!r}" for x, y in points]
    grpc_point_calls = [grpc_call("grids", "AssignPoint", grid_pb2.AssignPointRequest(lng=x, lat=y))
                        for x, y in points]
    http_grid_paths = [f"/api/v1/grids/{c}" for c in codes]
    grpc_grid_calls = [grpc_call("grids", "GetGrid", grid_pb2.GetGridRequest(code=c, geojson=True)) for c in codes]
    for pace, title in ((1 / PACED_RATE, f"paced: {PACED_RATE:g} requests/s per client"),
                        (None, "closed loop: each client sends its next request when the answer arrives")):
        rows = [("point -> grid", load(demo, "http", http_point_paths, pace=pace), "gRPC AssignPoint",
                 load(demo, "grpc", grpc_point_calls, pace=pace)),
                ("grid + GeoJSON", load(demo, "http", http_grid_paths, pace=pace), "gRPC GetGrid(geojson)",
                 load(demo, "grpc", grpc_grid_calls, pace=pace))]
        for name, (path, (method, request), engine_call) in dashboard.items():
            rows.append((name, load(demo, "http", [path], pace=pace), f"gRPC {method}",
                         load(demo, "grpc", [grpc_call("analytics", method, request)], pace=pace)))
            rows.append(("", None, "engine, 1 caller", engine_latency(engine_call)))
        print(f"\n{CLIENTS} concurrent clients, {SECONDS:g} s, {title} (shared 2-core machine)")
        print("(first: one request from one client before the clients start, timed apart; HTTP's run goes first, "
              "so its first ask of a question is the engine's)")
        print(f"{'query':24} {'HTTP p50':>9} {'p99':>8} {'calls/s':>8} {'first':>8} | {'peer':22} {'p50':>8} "
              f"{'p99':>8} {'calls/s':>8} {'first':>8}")
        for name, http, peer_name, peer in rows:
            assert (http is None or http["errors"] == 0) and peer.get("errors", 0) == 0
            rate = f"{peer['rate']:8.0f} {peer['first_ms']:6.2f}ms" if "rate" in peer else f"{'':8}"
            head = (f"{name:24} {http['p50_ms']:7.2f}ms {http['p99_ms']:6.2f}ms {http['rate']:8.0f} "
                    f"{http['first_ms']:6.2f}ms" if http else f"{'':24} {'':9} {'':8} {'':8} {'':8}")
            print(f"{head} | {peer_name:22} {peer['p50_ms']:6.2f}ms {peer['p99_ms']:6.2f}ms {rate}")
        shared = demo.server.gateway.reads
        print(f"gateway computations {shared.computed}, requests that shared one {shared.shared} (all runs so far)")


def window(start, end):
    w = analytics_pb2.Window()
    w.start.FromDatetime(start.astimezone(timezone.utc))
    w.end.FromDatetime(end.astimezone(timezone.utc))
    return w


def grpc_call(service: str, method: str, request) -> tuple[str, str, str, bytes]:
    return service, method, type(request).__name__, request.SerializeToString()
