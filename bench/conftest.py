"""Fixtures of the point-location benchmarks (``bench/test_locate.py``).

Sizes and inputs come from the environment, so one command runs a quick or a full comparison:

- ``CITYGRID_BENCH_POINTS``: comma-separated point counts (default ``100000,1000000``, a run of
  about two minutes; the full comparison is ``100000,1000000,10000000``);
- ``CITYGRID_BENCH_LAYER``: ``demo`` (the generated Longgang district, default) or ``tracts`` (the
  NYC 2020 census tracts from ``../shared/data``);
- ``CITYGRID_BENCH_PEER_MAX``: time the slow peers (shapely, geopandas, h3-py, PostGIS) on at most
  this many of the points (default: all of them); their rate is points per second either way;
- ``CITYGRID_BENCH_PG_DSN``: a libpq connection string for the PostGIS peer (skipped without it).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CITYGRID_SHARED_DATA", REPO.parent / "shared" / "data"))
SEED = 20261130


@pytest.fixture(scope="session")
def locate_layer(tmp_path_factory):
    """The layer the point-location benchmarks run on (see the module docstring)."""
    which = os.environ.get("CITYGRID_BENCH_LAYER", "demo")
    if which == "tracts":
        from citygrid.engine.layers.layer import FieldMap
        from citygrid.engine.layers.sources import read_layer

        path = SHARED_DATA / "nyc" / "nyct2020.shp"
        if not path.exists():
            pytest.skip(f"the NYC tracts are not at {path}")
        return read_layer(path, FieldMap(grid_code="GEOID"), version_id="bench-tracts")
    from citygrid.engine.demo import generate_demo
    from citygrid.engine.layers.sources import read_layer

    root = tmp_path_factory.mktemp("bench-locate-demo")
    generate_demo(root, seed=SEED, n_events=1_000)
    return read_layer(root / "grids.parquet", version_id="bench-demo")


@pytest.fixture(scope="session")
def locate_assigner(locate_layer):
    """The engine's assigner, index built and every kernel compiled (JIT warm-up) before timing."""
    from citygrid.engine.layers.assignment import SERIAL_BELOW, Assigner

    assigner = Assigner(locate_layer)
    x0, y0, x1, y1 = locate_layer.bounds
    rng = np.random.default_rng(SEED)
    for n in (10, SERIAL_BELOW * 2):  # the serial and the parallel kernel
        assigner.assign(rng.uniform(x0, x1, n), rng.uniform(y0, y1, n))
    return assigner


@pytest.fixture(scope="session")
def locate_points(locate_layer):
    """``points(n, order)``: ``n`` uniform points in the layer's bounding box (seeded), as given
    (``random``) or sorted along a Z-order curve of a 65,536 x 65,536 grid (``sorted``, as a pipeline
    that buckets events by cell would hand them over). Cached per size and order."""
    cache: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}
    x0, y0, x1, y1 = locate_layer.bounds

    def points(n: int, order: str) -> tuple[np.ndarray, np.ndarray]:
        key = (n, order)
        if key not in cache:
            rng = np.random.default_rng([SEED, n])
            lng, lat = rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)
            if order == "sorted":
                z = z_order(lng, lat, (x0, y0, x1, y1))
                keep = np.argsort(z, kind="stable")
                lng, lat = lng[keep], lat[keep]
            cache[key] = (np.ascontiguousarray(lng), np.ascontiguousarray(lat))
        return cache[key]

    return points


def z_order(lng: np.ndarray, lat: np.ndarray, bounds) -> np.ndarray:
    """Morton keys of the points on a 65,536 x 65,536 grid over ``bounds``."""
    x0, y0, x1, y1 = bounds

    def spread(v: np.ndarray) -> np.ndarray:
        v = v.astype(np.uint64) & np.uint64(0xFFFF)
        for shift, mask in ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333), (1, 0x55555555)):
            v = (v | (v << np.uint64(shift))) & np.uint64(mask)
        return v

    qx = np.clip((lng - x0) / (x1 - x0) * 65535, 0, 65535)
    qy = np.clip((lat - y0) / (y1 - y0) * 65535, 0, 65535)
    return spread(qx) | (spread(qy) << np.uint64(1))
