"""Point-in-grid throughput: the engine against its peers, measured in the same run.

For every size N (``CITYGRID_BENCH_POINTS``, see ``bench/conftest.py``) and order (``random``:
uniform in the layer's bounding box; ``sorted``: the same points along a Z-order curve):

- ``engine``: :meth:`citygrid.engine.layers.assignment.Assigner.assign` with 1 and with 2 threads
  (``numba.set_num_threads``), the whole public call (validation, chunks, the exact kernel);
- ``shapely_strtree``: ``STRtree(grids).query(points, predicate="within")`` (tree and point objects
  built outside the timing);
- ``geopandas_sjoin``: ``geopandas.sjoin(points, grids, predicate="within")`` (frames built outside);
- ``h3_latlng_to_cell``: h3-py's ``latlng_to_cell`` at resolution 10 over the points (a Python loop:
  h3-py has no vectorised call), the cost of only finding a point's H3 cell;
- ``postgis_st_covers``: ``SELECT count(*) FROM points p JOIN grids g ON ST_Covers(g.geom, p.geom)``
  with a GiST index on the grids, when ``CITYGRID_BENCH_PG_DSN`` names a reachable PostgreSQL with
  PostGIS (the benchmark installs nothing; on Debian / Ubuntu: ``apt-get install postgresql
  postgresql-15-postgis-3``, then as the postgres user ``createdb bench && psql bench -c 'CREATE
  EXTENSION postgis'``, and ``export CITYGRID_BENCH_PG_DSN=postgresql:///bench``; ``psql`` must be on
  the PATH). Loading the points and building the index are outside the timing.

Each result carries ``extra_info`` (method, threads, n, order, points_per_s); ``python -m
bench.report`` runs this module and prints the ratio table, and draws points/s against N.

Run::

    python -m bench.report                                   # quick: 1e5 and 1e6 points
    CITYGRID_BENCH_POINTS=1e5,1e6,1e7 python -m bench.report  # the full comparison
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import numba
import numpy as np
import pytest

#: Point counts (``CITYGRID_BENCH_POINTS``, comma-separated; ``1e7`` is accepted).
SIZES = [int(float(v)) for v in os.environ.get("CITYGRID_BENCH_POINTS", "100000,1000000").split(",") if v]
ORDERS = ["random", "sorted"]


def peer_max() -> int | None:
    """``CITYGRID_BENCH_PEER_MAX``: time the slow peers on at most this many points."""
    value = os.environ.get("CITYGRID_BENCH_PEER_MAX")
    return int(float(value)) if value else None


def run(benchmark, fn, *, method: str, n: int, order: str, threads: int = 1, layer=None) -> float:
    rounds = 3 if n <= 1_000_000 else 1
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
    rate = n / benchmark.stats.stats.min
    benchmark.extra_info.update(
        method=method, threads=threads, n=n, order=order, points_per_s=rate,
        layer=getattr(layer, "version_id", None),
    )
    return rate


def peer_points(points, n: int, order: str):
    """The points a slow peer is timed on: all of them, or the first CITYGRID_BENCH_PEER_MAX."""
    lng, lat = points(n, order)
    cap = peer_max()
    return (lng[:cap], lat[:cap]) if cap else (lng, lat)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("threads", [1, 2])
def test_engine(benchmark, locate_assigner, locate_points, n, order, threads):
    lng, lat = locate_points(n, order)
    previous = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        run(benchmark, lambda: locate_assigner.assign(lng, lat), method="engine", n=n, order=order, threads=threads,
            layer=locate_assigner.layer)
    finally:
        numba.set_num_threads(previous)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("n", SIZES)
def test_shapely_strtree(benchmark, locate_layer, locate_points, n, order):
    import shapely

    lng, lat = peer_points(locate_points, n, order)
    tree = shapely.STRtree(locate_layer.geometries())
    points = shapely.points(lng, lat)
    run(benchmark, lambda: tree.query(points, predicate="within"), method="shapely_strtree", n=len(lng),
        order=order, layer=locate_layer)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("n", SIZES)
def test_geopandas_sjoin(benchmark, locate_layer, locate_points, n, order):
    import geopandas

    lng, lat = peer_points(locate_points, n, order)
    grids = geopandas.GeoDataFrame({"row": np.arange(locate_layer.n_grids)}, geometry=locate_layer.geometries(),
                                   crs="EPSG:4326")
    points = geopandas.GeoDataFrame(geometry=geopandas.points_from_xy(lng, lat), crs="EPSG:4326")
    grids.sindex  # noqa: B018 - build the spatial index outside the timing, as for the STRtree
    run(benchmark, lambda: geopandas.sjoin(points, grids, predicate="within"), method="geopandas_sjoin",
        n=len(lng), order=order, layer=locate_layer)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("n", SIZES)
def test_h3_latlng_to_cell(benchmark, locate_layer, locate_points, n, order):
    from h3.api import basic_int

    lng, lat = peer_points(locate_points, n, order)
    lat_list, lng_list = lat.tolist(), lng.tolist()
    to_cell = basic_int.latlng_to_cell

    def cells():
        return [to_cell(a, b, 10) for a, b in zip(lat_list, lng_list)]

    run(benchmark, cells, method="h3_latlng_to_cell", n=len(lng), order=order, layer=locate_layer)


# ---------------------------------------------------------------------- PostGIS (where installed)


def _psql(dsn: str, sql: str, stdin: str | None = None) -> str:
    done = subprocess.run(["psql", dsn, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql], input=stdin, text=True,
                          capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    return done.stdout.strip()


@pytest.fixture(scope="module")
def postgis(locate_layer):
    """A PostGIS database with the grids loaded and GiST-indexed, or a skip saying why not."""
    dsn = os.environ.get("CITYGRID_BENCH_PG_DSN")
    if not dsn:
        pytest.skip("PostGIS peer: set CITYGRID_BENCH_PG_DSN to a database with the postgis extension")
    if shutil.which("psql") is None:
        pytest.skip("PostGIS peer: psql is not on the PATH")
    try:
        _psql(dsn, "SELECT postgis_version()")
    except RuntimeError as exc:
        pytest.skip(f"PostGIS peer: not reachable or no postgis extension ({exc})")
    import shapely

    wkt = "\n".join(f"{row}\t{shapely.to_wkt(g, rounding_precision=-1)}"
                    for row, g in enumerate(locate_layer.geometries()) if not g.is_empty)
    _psql(dsn, "DROP TABLE IF EXISTS cg_bench_grids; CREATE TABLE cg_bench_grids (row int, wkt text)")
    _psql(dsn, "COPY cg_bench_grids FROM STDIN", stdin=wkt + "\n")
    _psql(dsn, "ALTER TABLE cg_bench_grids ADD COLUMN geom geometry; "
               "UPDATE cg_bench_grids SET geom = ST_GeomFromText(wkt, 4326); "
               "CREATE INDEX ON cg_bench_grids USING gist (geom); ANALYZE cg_bench_grids")
    yield dsn
    _psql(dsn, "DROP TABLE IF EXISTS cg_bench_grids; DROP TABLE IF EXISTS cg_bench_points")


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("n", SIZES)
def test_postgis_st_covers(benchmark, postgis, locate_layer, locate_points, n, order):
    lng, lat = peer_points(locate_points, n, order)
    with tempfile.NamedTemporaryFile("w", suffix=".tsv") as fh:
        np.savetxt(fh, np.column_stack([np.arange(len(lng)), lng, lat]), fmt=["%d", "%.17g", "%.17g"],
                   delimiter="\t")
        fh.flush()
        with open(fh.name) as data:
            _psql(postgis, "DROP TABLE IF EXISTS cg_bench_points; "
                           "CREATE TABLE cg_bench_points (id bigint, lng float8, lat float8)")
            _psql(postgis, "COPY cg_bench_points FROM STDIN", stdin=data.read())
    _psql(postgis, "ALTER TABLE cg_bench_points ADD COLUMN geom geometry; "
                   "UPDATE cg_bench_points SET geom = ST_SetSRID(ST_MakePoint(lng, lat), 4326); "
                   "ANALYZE cg_bench_points")
    query = "SELECT count(*) FROM cg_bench_points p JOIN cg_bench_grids g ON ST_Covers(g.geom, p.geom)"
    run(benchmark, lambda: _psql(postgis, query), method="postgis_st_covers", n=len(lng), order=order,
        layer=locate_layer)
    import shapely

    covering_pairs = shapely.STRtree(locate_layer.geometries()).query(shapely.points(lng, lat), predicate="covered_by")
    assert int(_psql(postgis, query)) == covering_pairs.shape[1]  # the peer answered the same question


def test_index_build(benchmark, locate_layer):
    """Building the layer's index (cells, edges, H3 cover) beside building shapely's STRtree over the
    same grids in the same run: the index answers exactly with no geometry left to test, the tree
    only narrows to candidates; the ratio says what that costs at build time (goal: the demo
    district's index under 10 s)."""
    import shapely

    from citygrid.engine.layers.index import build_index

    geoms = locate_layer.geometries()
    build_index(locate_layer)  # compile (or load) the kernels outside the timing
    started = time.perf_counter()
    shapely.STRtree(geoms)
    tree_s = time.perf_counter() - started
    index = benchmark.pedantic(lambda: build_index(locate_layer), rounds=3, iterations=1)
    build_s = benchmark.stats.stats.min
    figures = index.describe()
    benchmark.extra_info.update(method="build_index", grids=locate_layer.n_grids, build_s=build_s,
                                strtree_s=tree_s, nbytes=figures["nbytes"])
    print(f"\nindex of {locate_layer.n_grids:,} grids: {build_s:.2f} s, {figures['nbytes'] / 1e6:.1f} MB; "
          f"shapely STRtree over the same grids {tree_s * 1e3:.1f} ms ({build_s / tree_s:.0f} x)")
