"""Live aggregates (:mod:`citygrid.engine.analytics`) against DuckDB over Parquet and SQL GROUP BY
over SQLite, on the same events in the same run.

``CITYGRID_BENCH_ANALYTICS_EVENTS`` events (default 1,000,000; the issue's goal is 10,000,000) made
from the demo generator's year (``bench/analytics_data.py``, written by chunks at any size), kept
under ``CITYGRID_BENCH_CACHE`` (default ``~/.cache/citygrid-bench``) per size and generator version
and read from there by later runs. Measured:

- **rebuild**: the mirror from the store at start (seconds; goal < 30 s for 10 M) and its memory;
- **queries** (engine p50 / p99 over 40 runs; DuckDB median of 7; SQLite median of 3): district x
  class x day for 30 days; top 20 grids of the last 7 days; KPIs by worker for a month; H3 res-9
  heatmap of a day; a street's trend against last year. The engine counts every run afresh
  (``kept_answers=0``); beside it the p50 of the same question answered from memory (nothing
  committed since), and the p50 of the same engine counting over events with its day cube switched
  off (``Analytics.day_cube``: the count before the cube, same run, runs interleaved). Ratio: DuckDB
  median / engine median counted afresh (goal >= 20). The peers read
  one flat row per event with the lifecycle already folded in (and DuckDB a precomputed H3 cell),
  which favours them;
- **over gRPC**: the five queries through AnalyticsService, one caller and 20 concurrent callers
  (threads of the server's process, and a client process of their own, ``bench/load.py``), beside
  the engine called in-process in the same run (``test_dashboard_queries_over_grpc``; each caller
  asks each query ``CITYGRID_BENCH_ANALYTICS_GRPC_ROUNDS`` times, default 10);
- **intake**: durable intake rate of demo reports without analytics, with the mirror caught up every
  50 ms (what maintaining the aggregates costs), and with a dashboard query every 50 ms (which
  catches up first), alternated A-B-C-C-B-A (``CITYGRID_BENCH_ANALYTICS_INTAKE_ROUNDS`` blocks,
  default 1; each block's ratios printed too; goal: maintained >= 95 % of without), from two starts:
  a store already holding 40,000 earlier reports (a running server's state) and an empty one (every
  grid and worker new to the mirror's dictionaries). The same store (WAL, ``synchronous=FULL``) in
  every arm; the arms with analytics stop their clock only after a last catch-up, and check that
  the mirror then holds every stored event.

Run::

    pytest bench/test_analytics.py --benchmark-only -s
"""

from __future__ import annotations

import gc
import os
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from analytics_data import GENERATOR_VERSION, write_data

from citygrid.engine.analytics.population import ResidentsFile
from citygrid.engine.analytics.queries import Analytics
from citygrid.engine.cases.model import read_reports
from citygrid.engine.cases.store import SqliteEventStore
from citygrid.engine.cases.intake import Intake
from citygrid.engine.cases.locator import AssignerLocator, read_buildings
from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.cases.taxonomy import load_taxonomy
from citygrid.engine.database import database_path
from citygrid.engine.dispatch.workers import read_workers

N_EVENTS = int(float(os.environ.get("CITYGRID_BENCH_ANALYTICS_EVENTS", "1e6")))
CACHE = Path(os.environ.get("CITYGRID_BENCH_CACHE", Path.home() / ".cache" / "citygrid-bench"))
ADMIN = Principal("bench", Role.ADMIN)
HOTLINE = Principal("市民热线", Role.INTAKE)
CST = timezone(timedelta(hours=8))
RESULTS: dict[str, dict] = {}


@pytest.fixture(scope="module")
def world():
    """The bench's data (``analytics_data.write_data``), made once per size and generator version
    under ``CITYGRID_BENCH_CACHE`` (default ``~/.cache/citygrid-bench``) and read from there after."""
    import duckdb

    from citygrid.engine.layers.sources import read_layer

    root = CACHE / f"analytics-n{N_EVENTS}-v{GENERATOR_VERSION}"
    meta = write_data(root, N_EVENTS)
    demo = root / "demo"
    layer = read_layer(demo / "grids.parquet", version_id="bench-demo")
    lite = sqlite3.connect(str(root / "flat.sqlite3"), isolation_level=None)
    now = datetime.fromtimestamp(meta["now_us"] / 1e6, tz=timezone.utc).astimezone(CST)
    duck = duckdb.connect()
    duck.execute("SET threads TO 2")
    duck.execute(f"CREATE VIEW ev AS SELECT * FROM read_parquet('{root / 'events.parquet'}')")
    yield {"root": root, "demo": demo, "layer": layer, "taxonomy": load_taxonomy(), "store": root / "store",
           "now": now, "duck": duck, "lite": lite, "street": meta["streets"][2], "meta": meta}
    lite.close()
    duck.close()


def engine_queries(engine: Analytics, now: datetime, street: str) -> dict:
    """The five dashboard queries on an engine, by name, at the bench's present ``now``."""
    day0 = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month, week, day = day0 - timedelta(days=30), day0 - timedelta(days=7), day0 - timedelta(days=1)
    return {
        "district_class_day_30d": lambda: engine.aggregate(ADMIN, start=month, end=day0, dimensions=(
            "district", "class", "day"), measures=("reported", "closed")),
        "top20_grids_7d": lambda: engine.top_areas(ADMIN, level="grid", start=week, end=day0, n=20),
        "kpis_by_worker_month": lambda: engine.kpis(ADMIN, unit="worker", start=month, end=day0),
        "h3_res9_heatmap_day": lambda: engine.heatmap(ADMIN, start=day, end=day0, h3_resolution=9),
        "street_trend_vs_last_year": lambda: engine.trend(ADMIN, start=month, end=day0, filters={"street": [street]}),
    }


def _times(fn, runs: int) -> np.ndarray:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return np.array(out) * 1000


def test_dashboard_queries(benchmark, world):
    layer = world["layer"]
    t = time.perf_counter()
    analytics = Analytics(world["store"], layer=layer, taxonomy=world["taxonomy"],
                          population=ResidentsFile(world["demo"] / "residents.parquet", layer.codes.tolist()),
                          clock=lambda: world["now"], kept_answers=0)
    rebuild = time.perf_counter() - t
    remembering = Analytics(world["store"], layer=layer, taxonomy=world["taxonomy"],
                            population=ResidentsFile(world["demo"] / "residents.parquet", layer.codes.tolist()),
                            clock=lambda: world["now"])
    now = world["now"]
    day0 = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month, week, day = day0 - timedelta(days=30), day0 - timedelta(days=7), day0 - timedelta(days=1)
    street = world["street"]
    us = lambda d: int(d.timestamp() * 1e6)  # noqa: E731

    def window(a, b, col="occurred_at"):
        return f"{col} >= {us(a)} AND {col} < {us(b)}"

    def dwindow(a, b):
        return f"occurred_at >= make_timestamp({us(a)}) AND occurred_at < make_timestamp({us(b)})"

    year = lambda d: d.replace(year=d.year - 1)  # noqa: E731
    kpi_sql = ("SELECT worker_id, count(*), sum(registered::INT), sum(dispatched::INT), sum(closed::INT), "
               "sum(handled::INT), sum(handled_on_time::INT), sum(dispatched_on_time::INT), sum(reworked::INT), "
               "avg(CASE WHEN handled THEN handle_minutes END) FROM ev WHERE {w} GROUP BY worker_id")
    queries = {
        "district_class_day_30d": (
            lambda: analytics.aggregate(ADMIN, start=month, end=day0, dimensions=("district", "class", "day"),
                                        measures=("reported", "closed")),
            "SELECT district_code, class_code, CAST(occurred_at + INTERVAL 8 HOUR AS DATE) AS d, count(*), "
            "sum(closed::INT) FROM ev WHERE {w} GROUP BY ALL",
            "SELECT district_code, class_code, date(occurred_at / 1000000, 'unixepoch', '+8 hours'), count(*), "
            "sum(closed) FROM flat WHERE {w} GROUP BY 1, 2, 3", (month, day0)),
        "top20_grids_7d": (
            lambda: analytics.top_areas(ADMIN, level="grid", start=week, end=day0, n=20),
            "SELECT grid_code, count(*) AS c FROM ev WHERE {w} GROUP BY 1 ORDER BY c DESC, grid_code LIMIT 20",
            "SELECT grid_code, count(*) AS c FROM flat WHERE {w} GROUP BY 1 ORDER BY c DESC, grid_code LIMIT 20",
            (week, day0)),
        "kpis_by_worker_month": (
            lambda: analytics.kpis(ADMIN, unit="worker", start=month, end=day0),
            kpi_sql, kpi_sql.replace("::INT", "").replace("FROM ev", "FROM flat"), (month, day0)),
        "h3_res9_heatmap_day": (
            lambda: analytics.heatmap(ADMIN, start=day, end=day0, h3_resolution=9),
            "SELECT h3_9, count(*) FROM ev WHERE {w} GROUP BY 1",
            "SELECT h3_9, count(*) FROM flat WHERE {w} GROUP BY 1", (day, day0)),
        "street_trend_vs_last_year": (
            lambda: analytics.trend(ADMIN, start=month, end=day0, filters={"street": [street]}),
            None, None, (month, day0)),
    }
    remembered = engine_queries(remembering, now, street)
    a, b = month, day0
    trend_windows = [(a, b), (a - (b - a), a), (year(a), year(b))]
    duck_trend = ("SELECT " + ", ".join(f"sum(({dwindow(x, y)})::INT)" for x, y in trend_windows)
                  + f" FROM ev WHERE street_code = '{street}' AND (" + " OR ".join(dwindow(x, y) for x, y in trend_windows) + ")")
    lite_trend = ("SELECT " + ", ".join(f"sum({window(x, y)})" for x, y in trend_windows)
                  + f" FROM flat WHERE street_code = '{street}' AND (" + " OR ".join(window(x, y) for x, y in trend_windows) + ")")
    rows = {}
    for name, (engine_q, duck_q, lite_q, (x, y)) in queries.items():
        duck_sql = duck_trend if duck_q is None else duck_q.format(w=dwindow(x, y))
        lite_sql = lite_trend if lite_q is None else lite_q.format(w=window(x, y))
        engine_q()  # JIT warm-up
        world["duck"].execute(duck_sql).fetchall()
        engine = _times(engine_q, 40)
        analytics.day_cube = False
        engine_q()
        events = _times(engine_q, 20)
        analytics.day_cube = True
        engine = np.concatenate([engine, _times(engine_q, 20)])
        remembered[name]()
        kept = _times(remembered[name], 40)
        duck = _times(lambda: world["duck"].execute(duck_sql).fetchall(), 7)
        lite = _times(lambda: world["lite"].execute(lite_sql).fetchall(), 3)
        rows[name] = {"engine_p50_ms": float(np.median(engine)), "engine_p99_ms": float(np.percentile(engine, 99)),
                      "remembered_p50_ms": float(np.median(kept)),
                      "events_p50_ms": float(np.median(events)), "events_p99_ms": float(np.percentile(events, 99)),
                      "duckdb_median_ms": float(np.median(duck)), "sqlite_median_ms": float(np.median(lite))}
        rows[name]["vs_duckdb"] = rows[name]["duckdb_median_ms"] / rows[name]["engine_p50_ms"]
        rows[name]["vs_sqlite"] = rows[name]["sqlite_median_ms"] / rows[name]["engine_p50_ms"]
        rows[name]["events_vs_duckdb"] = rows[name]["duckdb_median_ms"] / rows[name]["events_p50_ms"]
    benchmark.pedantic(queries["district_class_day_30d"][0], rounds=20, iterations=1)
    cube = analytics.mirror.cube
    summary = {"events": N_EVENTS, "rebuild_s": rebuild, "mirror_mib": analytics.mirror.nbytes / 2**20,
               "cube_mib": cube.nbytes / 2**20, "cube_slots": cube.n}
    # Live, the next new event and its new slot grow the columns and the cube (room_for, as a catch-up
    # grows them): their memory with that room, the figure a running server holds.
    from citygrid.engine.analytics.cube import BLOCK as CUBE_BLOCK, room_for
    analytics.mirror._grow(analytics.mirror.n + 1)
    cube._allocate(room_for(cube.n + 1, cube.capacity, 16 * CUBE_BLOCK))
    summary["live_mib"] = analytics.mirror.nbytes / 2**20
    print(f"\n[analytics bench] {N_EVENTS:,} events: rebuild {rebuild:.1f} s, mirror {summary['mirror_mib']:.0f} MiB "
          f"(of it the day cube {summary['cube_mib']:.0f} MiB, {cube.n:,} slots; {summary['live_mib']:.0f} MiB with "
          f"the room the next event grows; machine shared, 2 cores)")
    print(f"{'query':28s} {'engine p50':>11s} {'p99':>8s} {'duckdb':>9s} {'sqlite':>9s} {'x duckdb':>9s} {'x sqlite':>9s}"
          f" {'remembered p50':>15s} {'events p50':>11s} {'p99':>8s} {'x duckdb':>9s}")
    for name, r in rows.items():
        print(f"{name:28s} {r['engine_p50_ms']:9.2f}ms {r['engine_p99_ms']:6.2f}ms {r['duckdb_median_ms']:7.1f}ms "
              f"{r['sqlite_median_ms']:7.0f}ms {r['vs_duckdb']:9.1f} {r['vs_sqlite']:9.0f} "
              f"{r['remembered_p50_ms']:13.3f}ms {r['events_p50_ms']:9.2f}ms {r['events_p99_ms']:6.2f}ms "
              f"{r['events_vs_duckdb']:9.1f}")
    RESULTS["queries"] = {**summary, **{k: v for k, v in rows.items()}}
    benchmark.extra_info.update(RESULTS["queries"])
    analytics.close()
    remembering.close()


# ---------------------------------------------------------------------- intake cost

#: A-B-C-C-B-A blocks of the intake bench (each arm runs twice a block).
INTAKE_ROUNDS = int(os.environ.get("CITYGRID_BENCH_ANALYTICS_INTAKE_ROUNDS", "1"))
#: Reports each intake arm takes in (and the history the first start's store holds before).
INTAKE_EVENTS = 40_000


def test_intake_with_live_aggregates(benchmark, world, tmp_path, request):
    """Two starts, each its A-B-C-C-B-A blocks: a store that already holds the demo's first 40,000
    reports (a server's usual state: its mirror rebuilt from the store at start, every grid and
    worker already in its dictionaries) taking the next 40,000; and an empty store taking the first
    40,000 (every code new to the mirror: a new district's first hour)."""
    import shutil

    layer = world["layer"]
    demo = world["demo"]
    locator = AssignerLocator.for_layer(layer)
    workers = read_workers(demo / "workers.parquet")
    buildings = read_buildings(demo / "buildings.parquet")
    everything = read_reports(demo / "events.parquet", limit=2 * INTAKE_EVENTS)
    batch = 1000
    starts = {"history": (everything[:INTAKE_EVENTS], everything[INTAKE_EVENTS:]),
              "empty": ([], everything[:INTAKE_EVENTS])}

    def take_in(intake, reports, clock_now) -> None:
        for lo in range(0, len(reports), batch):
            chunk = reports[lo : lo + batch]
            clock_now[0] = max(r.occurred_at for r in chunk)
            intake.submit(chunk, HOTLINE)

    def store_with(history) -> Path:
        """A data directory holding ``history`` (made once, copied for each run)."""
        made = tmp_path / f"history-{len(history)}"
        if not made.exists():
            clock_now = [everything[0].occurred_at]
            intake = Intake(SqliteEventStore(made), locator, buildings=buildings, clock=lambda: clock_now[0])
            intake.put_workers(workers, ADMIN)
            take_in(intake, history, clock_now)
            intake.close()
        return made

    def run(k: int, mode: str, start: str, n: int | None = None) -> float:
        history, reports = starts[start]
        reports = reports[:n]
        data = tmp_path / f"run{k}-{start}"
        shutil.copytree(store_with(history), data)
        clock_now = [reports[0].occurred_at]
        intake = Intake(SqliteEventStore(data), locator, buildings=buildings, clock=lambda: clock_now[0])
        intake.put_workers(workers, ADMIN)
        stop = threading.Event()
        queries = [0]
        thread = None
        if mode != "without":
            analytics = Analytics.for_intake(intake, data)  # rebuilt from the history, outside the clock

            def dashboard():
                while not stop.wait(0.05):
                    if mode == "maintained":
                        analytics.refresh()
                    else:
                        end = clock_now[0] + timedelta(hours=1)
                        analytics.aggregate(ADMIN, start=end - timedelta(days=30), end=end,
                                            dimensions=("street", "day"), measures=("reported", "closed", "overdue_now"))
                    queries[0] += 1

            thread = threading.Thread(target=dashboard, daemon=True)
            thread.start()
        runtime.settle()  # the collector as `citygrid serve` runs it (start-up frozen, fewer collections)
        t = time.perf_counter()
        take_in(intake, reports, clock_now)
        stop.set()
        if thread is not None:
            # The aggregates are maintained only once the mirror holds every commit: the last
            # catch-up is part of the time.
            thread.join()
            analytics.refresh()
        rate = len(reports) / (time.perf_counter() - t)
        if thread is not None:
            conn = sqlite3.connect(str(database_path(data)))
            stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            conn.close()
            assert analytics.mirror.n == stored and not analytics.refresh(), "the mirror did not catch up"
            analytics.close()
        intake.close()
        shutil.rmtree(data)
        return rate, queries[0]

    from citygrid.engine import runtime

    thresholds = gc.get_threshold()
    request.addfinalizer(lambda: (gc.unfreeze(), gc.set_threshold(*thresholds)))
    modes = ["without", "maintained", "dashboard"]
    for k, mode in enumerate(modes):  # warm-up: the kernels loaded (the first arm with analytics paid it)
        run(-1 - k, mode, "empty", 5 * batch)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    for start in starts:
        results = {mode: [] for mode in modes}
        for k, mode in enumerate((modes + modes[::-1]) * INTAKE_ROUNDS):
            rate, _ = run(k, mode, start)
            results[mode].append(rate)
        rates = {mode: float(np.mean(v)) for mode, v in results.items()}
        # Each A-B-C-C-B-A block's own ratios (its two runs of each arm), so one noisy stretch shows.
        blocks = {mode: np.array(v).reshape(-1, 2).mean(axis=1) / np.array(results["without"]).reshape(-1, 2).mean(axis=1)
                  for mode, v in results.items()}
        history = len(starts[start][0])
        print(f"\n[analytics bench] durable intake of {INTAKE_EVENTS:,} demo reports in batches of {batch} onto a store "
              f"holding {history:,} earlier ones (A-B-C-C-B-A x {INTAKE_ROUNDS}, machine shared): "
              f"{rates['without']:,.0f}/s without analytics; "
              f"{rates['maintained']:,.0f}/s with the mirror caught up every 50 ms "
              f"({rates['maintained'] / rates['without']:.1%}); {rates['dashboard']:,.0f}/s with a dashboard query "
              f"(30 days, street x day) every 50 ms ({rates['dashboard'] / rates['without']:.1%})")
        for mode in ("maintained", "dashboard"):
            print(f"[analytics bench]   {mode}/without per block: "
                  f"{', '.join(f'{r:.1%}' for r in blocks[mode])} (median {np.median(blocks[mode]):.1%})")
        benchmark.extra_info.update({f"{start}_{mode}": rate for mode, rate in rates.items()})
        benchmark.extra_info.update({f"{start}_{mode}_per_block": blocks[mode].tolist() for mode in ("maintained", "dashboard")})


# ---------------------------------------------------------------------- over gRPC, 20 callers

GRPC_CALLERS = 20
GRPC_ROUNDS = int(os.environ.get("CITYGRID_BENCH_ANALYTICS_GRPC_ROUNDS", "10"))  # per caller and query


def test_dashboard_queries_over_grpc(benchmark, world):
    """The five dashboard queries through AnalyticsService on a server over the same store, p50/p99
    with one caller and with :data:`GRPC_CALLERS` concurrent callers (each its own channel, each
    running every query :data:`GRPC_ROUNDS` times, queries interleaved), beside the engine's p50/p99
    called in-process in the same run (the server's engine, which remembers answers). The callers run
    two ways: as threads of the server's process (their client work then shares the server's GIL)
    and from a client process of their own (``load.callers_figures``: grpc.aio, a channel each),
    which competes with the server for the 2 cores only. The peer of the latter: the same callers from
    the same client process against a bare ``grpc.aio`` server whose one method answers empty bytes
    (``bench/test_grpc.py``'s), the floor of grpc.aio on this machine in the same run."""
    from load import callers_figures
    from test_grpc import BARE_AIO_SERVER, ECHO, _bare
    from concurrent.futures import ThreadPoolExecutor

    from citygrid.engine import runtime
    from citygrid.engine.cases.settings import IntakeSettings
    from citygrid.engine.layers.registry import LayerRegistry
    from citygrid.engine.times import ManualClock
    from citygrid.grpc_api.client import CityGridClient
    from citygrid.grpc_api.config import ServerConfig
    from citygrid.grpc_api.server import create_server

    layer, store, now = world["layer"], world["store"], world["now"]
    registry = LayerRegistry(store)
    try:
        record = registry.register(layer)
        if not record.published:
            registry.publish(record.version_id, now - timedelta(days=3 * 365))
        if registry.active_version_id != record.version_id:
            registry.activate(record.version_id)
    finally:
        registry.close()
    token = "bench-analytics-grpc-admin-token-0123456789"
    # No HTTP gateway: this measures gRPC (bench/test_http.py measures the gateway), and the gateway's
    # warm-up cuts the map's tiles (seconds of CPU in the server's process) while the callers run,
    # and its fixed port would clash with any other server on the machine.
    server, port = create_server(
        ServerConfig(data_dir=store, host="127.0.0.1", port=0, metrics_port=None, http_port=None,
                     admin_token=token, intake=IntakeSettings(clock_interval=86_400.0)),
        clock=ManualClock(now))
    thresholds = gc.get_threshold()
    server.start()
    try:
        engine = server.state.analytics.analytics()
        runtime.settle()  # as `citygrid serve` does once it is ready (start-up state frozen, fewer collections)
        day0 = now.replace(hour=0, minute=0, second=0, microsecond=0)
        month, week, day = day0 - timedelta(days=30), day0 - timedelta(days=7), day0 - timedelta(days=1)
        street = world["street"]
        engine_q = engine_queries(engine, now, street)

        def grpc_q(c):
            return {
                "district_class_day_30d": lambda: c.aggregate(month, day0, dimensions=["district", "class", "day"],
                                                              measures=["reported", "closed"]),
                "top20_grids_7d": lambda: c.top_areas(week, day0, level="grid", n=20),
                "kpis_by_worker_month": lambda: c.kpis(month, day0, unit="worker"),
                "h3_res9_heatmap_day": lambda: c.heatmap(day, day0, h3_resolution=9),
                "street_trend_vs_last_year": lambda: c.trend(month, day0, filters={"street": [street]}),
            }

        clients = [CityGridClient(f"127.0.0.1:{port}", token) for _ in range(GRPC_CALLERS)]
        for fn in engine_q.values():
            fn()
        single_q = grpc_q(clients[0])
        for fn in single_q.values():
            fn()
        rows = {name: {"engine": _times(fn, 40)} for name, fn in engine_q.items()}
        for name, fn in single_q.items():
            rows[name]["grpc_1"] = _times(fn, 40)

        def caller(k):
            mine = grpc_q(clients[k])
            names = list(mine)
            out = {n: [] for n in names}
            for r in range(GRPC_ROUNDS):
                for j in range(len(names)):
                    name = names[(j + k + r) % len(names)]
                    t = time.perf_counter()
                    mine[name]()
                    out[name].append((time.perf_counter() - t) * 1000)
            return out

        t = time.perf_counter()
        with ThreadPoolExecutor(GRPC_CALLERS) as pool:
            results = list(pool.map(caller, range(GRPC_CALLERS)))
        wall = time.perf_counter() - t
        for name in rows:
            rows[name]["grpc_20"] = np.array([x for res in results for x in res[name]])
        from citygrid.grpc_api._pb import analytics_pb2
        from citygrid.grpc_api.client import _window

        service = "/citygrid.v1.AnalyticsService/"
        wire = {
            "district_class_day_30d": ("Aggregate", analytics_pb2.AggregateRequest(
                window=_window(month, day0), dimensions=["district", "class", "day"], measures=["reported", "closed"])),
            "top20_grids_7d": ("TopAreas", analytics_pb2.TopAreasRequest(window=_window(week, day0), level="grid",
                                                                          n=20)),
            "kpis_by_worker_month": ("Kpis", analytics_pb2.KpisRequest(window=_window(month, day0), unit="worker")),
            "h3_res9_heatmap_day": ("Heatmap", analytics_pb2.HeatmapRequest(window=_window(day, day0),
                                                                             h3_resolution=9)),
            "street_trend_vs_last_year": ("Trend", analytics_pb2.TrendRequest(
                window=_window(month, day0), filters=[analytics_pb2.Filter(dimension="street", codes=[street])])),
        }
        process = callers_figures(f"127.0.0.1:{port}", {name: (service + method, request.SerializeToString())
                                                         for name, (method, request) in wire.items()}, token,
                                  callers=GRPC_CALLERS, rounds=GRPC_ROUNDS)
        process_wall = process.pop("wall_s")[0]
        for name in rows:
            rows[name]["grpc_20p"] = np.array(process[name])
        bare = _bare(BARE_AIO_SERVER)
        try:
            floor = callers_figures(next(bare), {name: (ECHO, b"") for name in rows}, None, callers=GRPC_CALLERS,
                                    rounds=GRPC_ROUNDS)
        finally:
            next(bare, None)
        floor_wall = floor.pop("wall_s")[0]
        floor_all = np.concatenate([floor[name] for name in rows])
        for c in clients:
            c.close()
    finally:
        server.stop(0).wait(30)
        gc.unfreeze()  # the rest of the session collects as before (Hypothesis's plugin checks referrers)
        gc.set_threshold(*thresholds)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    n_calls = GRPC_CALLERS * GRPC_ROUNDS * len(rows)
    print(f"\n[analytics bench] {N_EVENTS:,} events; AnalyticsService with {GRPC_CALLERS} concurrent callers: "
          f"{n_calls:,} calls in {wall:.1f} s ({n_calls / wall:,.0f}/s) as threads of the server's process, "
          f"in {process_wall:.1f} s ({n_calls / process_wall:,.0f}/s) from a client process; machine shared, 2 cores")
    print(f"peer: the same {GRPC_CALLERS} callers from the client process against a bare grpc.aio server (empty "
          f"answers): {n_calls / floor_wall:,.0f} calls/s, p50 {np.percentile(floor_all, 50):.1f} ms, "
          f"p99 {np.percentile(floor_all, 99):.1f} ms")
    print(f"{'query':28s} {'engine p50':>11s} {'p99':>8s} {'gRPC x1 p50':>12s} {'p99':>8s} {'x20 threads p50':>16s} "
          f"{'p99':>9s} {'x20 process p50':>16s} {'p99':>9s}")
    summary = {}
    for name, r in rows.items():
        figures = {f"{k}_{q}_ms": float(np.percentile(v, 50 if q == "p50" else 99))
                   for k, v in r.items() for q in ("p50", "p99")}
        summary[name] = figures
        print(f"{name:28s} {figures['engine_p50_ms']:9.2f}ms {figures['engine_p99_ms']:6.2f}ms "
              f"{figures['grpc_1_p50_ms']:10.2f}ms {figures['grpc_1_p99_ms']:6.2f}ms "
              f"{figures['grpc_20_p50_ms']:14.1f}ms {figures['grpc_20_p99_ms']:7.1f}ms "
              f"{figures['grpc_20p_p50_ms']:14.1f}ms {figures['grpc_20p_p99_ms']:7.1f}ms")
    benchmark.extra_info.update({"calls_per_s": n_calls / wall, "calls_per_s_process": n_calls / process_wall,
                                 "bare_aio_calls_per_s": n_calls / floor_wall,
                                 "bare_aio_p50_ms": float(np.percentile(floor_all, 50)),
                                 "bare_aio_p99_ms": float(np.percentile(floor_all, 99)),
                                 **summary})
