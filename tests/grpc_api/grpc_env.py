"""Helpers for the gRPC tests: an in-process server on port 0 over a data directory with three
published layer versions.

The server's intake runs on an injected clock (:data:`NOW`, standing still unless a test moves it),
so no test depends on the hour it runs at; reports are dated :data:`NOW` too.

The versions tile the same square of Longgang with boxes of different sizes, so a point's grid (row
and code) differs between versions, and every code carries its version (``G003004@v2``): an answer
is consistent when its grid is the one the engine gives for the version it reports. Grids nest in
communities (5 x 5 grids of v1) and streets (10 x 10).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import shapely

from citygrid.engine.times import Clock, ManualClock
from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.layers.registry import LayerRegistry
from citygrid.grpc_api.client import CityGridClient
from citygrid.grpc_api.config import ServerConfig
from citygrid.grpc_api.server import create_server

ADMIN_TOKEN = "test-admin-token-not-a-secret-0123456789"
LNG0, LAT0, SPAN = 114.20, 22.65, 0.10
#: Version id -> boxes per side.
VERSIONS = {"v1": 20, "v2": 16, "v3": 10}
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
#: The present time of the test servers' intake: a working Monday morning in Shenzhen (10:00 +08:00).
NOW = datetime(2026, 3, 9, 2, 0, tzinfo=timezone.utc)
#: A small limit so the RESOURCE_EXHAUSTED test sends little.
MAX_POINTS = 200_000


def box_layer(version_id: str, n: int) -> GridLayer:
    """``n`` x ``n`` boxes tiling the test square; community = 5 x 5 boxes of v1's size, street 10 x 10."""
    step = SPAN / n
    geoms, codes, communities, streets, types = [], [], [], [], []
    for i in range(n):
        for j in range(n):
            geoms.append(shapely.box(LNG0 + i * step, LAT0 + j * step, LNG0 + (i + 1) * step, LAT0 + (j + 1) * step))
            cx, cy = LNG0 + (i + 0.5) * step, LAT0 + (j + 0.5) * step
            ci, cj = int((cx - LNG0) / (SPAN / 4)), int((cy - LAT0) / (SPAN / 4))
            codes.append(f"G{i:03d}{j:03d}@{version_id}")
            communities.append(f"C{ci}{cj}")
            streets.append(f"S{ci // 2}{cj // 2}")
            types.append("residential" if (i + j) % 3 else "commercial")
    return GridLayer.from_geometries(
        geoms,
        {"grid_code": codes, "grid_type": types, "community_code": communities, "street_code": streets,
         "district_code": ["440307"] * len(codes)},
        version_id=version_id,
    )


@dataclass
class Env:
    server: object
    port: int
    data_dir: Path
    layers: dict[str, GridLayer]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, token: str | None = ADMIN_TOKEN, **kwargs) -> CityGridClient:
        return CityGridClient(self.target, token, **kwargs)

    @property
    def registry(self) -> LayerRegistry:
        return self.server.state.registry


def populate(data_dir: Path) -> dict[str, GridLayer]:
    """Register and publish the test versions (v1 from T0, v2 a day later, v3 two days); activate v1."""
    layers = {vid: box_layer(vid, n) for vid, n in VERSIONS.items()}
    registry = LayerRegistry(data_dir)
    try:
        for k, (vid, layer) in enumerate(layers.items()):
            registry.register(layer)
            registry.publish(vid, T0 + timedelta(days=k))
        registry.activate("v1")
    finally:
        registry.close()
    return layers




def start_server(data_dir: Path, *, clock: Clock | None = None, wait_for_houses: bool = True, **overrides) -> Env:
    """A started server over ``data_dir`` on a free port (metrics too), admin token :data:`ADMIN_TOKEN`,
    its intake's clock ``clock`` (default: a :class:`ManualClock` at :data:`NOW`); with ``wait_for_houses``
    returned once its house registry has opened (it opens in the background after the server listens)."""
    settings = dict(data_dir=data_dir, host="127.0.0.1", port=0, metrics_port=0, http_port=None, admin_token=ADMIN_TOKEN,
                    max_points_per_request=MAX_POINTS, max_workers=8, chunk_size=4096)
    settings.update(overrides)
    server, port = create_server(ServerConfig(**settings), clock=clock or ManualClock(NOW))
    server.start()
    if wait_for_houses and server.state.houses is not None:
        assert server.state.houses.registry.wait_open(120), "the house registry did not open within 2 minutes"
    return Env(server, port, data_dir, {})


def wait_until(predicate, timeout: float) -> bool:
    """Whether ``predicate()`` holds within ``timeout`` seconds (checked every 10 ms)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def random_points(rng, n: int, margin: float = 0.0):
    """Uniform points over the test square (grown by ``margin`` degrees on each side)."""
    lng = rng.uniform(LNG0 - margin, LNG0 + SPAN + margin, n)
    lat = rng.uniform(LAT0 - margin, LAT0 + SPAN + margin, n)
    return lng, lat


def start_serve(args: list[str], cwd, *, host: str | None = "127.0.0.1") -> tuple[subprocess.Popen, int, list[str]]:
    """Start ``citygrid serve`` (``--host host`` unless ``None``) and wait for its "listening on
    HOST:PORT" log line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "citygrid.cli.main", "serve", *(["--host", host] if host else []), "--port", "0",
         "--metrics-port", "-1", "--http-port", "-1", *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"listening on \S+:(\d+) ", line)
        if match:
            reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
            reader.start()
            proc.reader = reader
            return proc, int(match.group(1)), lines
    stop_serve(proc)
    pytest.fail("serve did not start:\n" + "".join(lines))


def wait_for_line(proc: subprocess.Popen, lines: list[str], pattern: str, timeout: float = 180) -> re.Match:
    """The first match of ``pattern`` in the output of a process from :func:`start_serve`, waiting for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(lines):
            if match := re.search(pattern, line):
                return match
        if proc.poll() is not None and not proc.reader.is_alive():
            break
        time.sleep(0.05)
    pytest.fail(f"no line matching {pattern!r} in the output of serve:\n" + "".join(lines))


def stop_serve(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(30)
    reader = getattr(proc, "reader", None)
    if reader is not None:
        reader.join(10)
    proc.stdout.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A module-scoped in-process server over a populated data directory (``env.layers``: its versions)."""
    data_dir = tmp_path_factory.mktemp("grpc-data")
    layers = populate(data_dir)
    env = start_server(data_dir)
    env.layers = layers
    yield env
    assert env.server.stop(1.0).wait(10)
