"""The events of the analytics benchmark: the demo generator's events scaled to N by repeating
them (jittered up to half an hour and a few metres) up to 2 M a year, then a year further back, given
the lifecycle of the engine's history writer (:mod:`citygrid.engine.demo.history`, the one
``serve --demo --events`` uses) up to an hour after the last report, and written three ways:

- into a real event store (the ``events``, ``audit`` and ``escalations`` tables the intake writes,
  in bulk, by :func:`citygrid.engine.demo.history.write`) for the engine's mirror to rebuild from;
- as one flat Parquet file per event (codes, class, state, worker, lifecycle flags, working
  minutes, H3 res-9 cell) for the DuckDB peer;
- as the same flat table in SQLite (with an index on the report time) for the SQL GROUP BY peer.

Low memory at any N (:func:`write_data`): only the numbers of every event are made at once (report
time, which demo event it copies, position: 28 bytes an event, 280 MB at 10 M), sorted by report
time; the codes, the lifecycle and the rows to write are made :data:`CHUNK` events at a time, in
report-time order, each chunk written to the three places (the store in its own transaction with
``seq`` continuing, a row group of the Parquet file, an insert into the flat SQLite) before the next
is made. A chunk's lifecycle is planned with the chunk's own generator, so duplicates (a repeat of
the same category in the same grid less than a day before) are found within a chunk only and the
pace of streets and workers is drawn again per chunk (a chunk is about three months of a busy
district at 2 M a year). The whole is written under a temporary name and renamed when complete,
with ``meta.json`` (size, generator version, the present time, the streets), so a later run with
the same size and :data:`GENERATOR_VERSION` reads the meta and writes nothing.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path

import h3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from citygrid.engine.cases.store import SqliteEventStore
from citygrid.engine.database import database_path
from citygrid.engine.demo import history as demo_history
from citygrid.engine.dispatch.worktime import WorkSchedule

US_PER_MINUTE = 60_000_000
YEAR_US = 365 * 86_400 * 1_000_000
#: Most events the scaled data puts in one year (a busy district).
PER_YEAR = 2_000_000
#: Events made, planned and written at a time.
CHUNK = 500_000
#: Bump when the data a size gives changes (the cache of older data is then not used).
GENERATOR_VERSION = 2
DEMO_SEED, SCALE_SEED = 20261130, 20261206


def scaled_numbers(base: pa.Table, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Report time (UTC µs), the demo event each copies (``pick``) and position of ``n`` events,
    sorted by report time: no Python object per event."""
    m = base.num_rows
    pick = np.arange(n, dtype=np.int64) % m
    rounds = np.arange(n, dtype=np.int64) // m
    # At most PER_YEAR events a year: copies of the demo's year fill it, then earlier years.
    years = max(1, -(-n // PER_YEAR))
    occurred = base.column("occurred_at").cast(pa.int64()).to_numpy() * 1000  # ms -> µs
    copy = rounds > 0
    out = {
        "occurred": occurred[pick] - (rounds % years) * YEAR_US + rng.integers(-30, 30, n) * US_PER_MINUTE * copy,
        "pick": pick.astype(np.int32),
        "lng": base.column("lng").to_numpy()[pick] + rng.normal(0, 2e-5, n) * copy,
        "lat": base.column("lat").to_numpy()[pick] + rng.normal(0, 2e-5, n) * copy,
    }
    del pick, rounds, copy
    order = np.argsort(out["occurred"], kind="stable")
    return {k: v[order] for k, v in out.items()}


def write_data(root: Path, n: int) -> dict:
    """Generate the demo and ``n`` scaled events into ``root`` (made anew under a temporary name,
    renamed when complete) and return its meta; when ``root`` is complete already, only its meta."""
    meta_path = root / "meta.json"
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    from citygrid.engine.cases.taxonomy import load_taxonomy
    from citygrid.engine.demo import generate_demo
    from citygrid.engine.layers.sources import read_layer

    t_start = time.perf_counter()
    work = root.with_name(root.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    demo = work / "demo"
    generate_demo(demo, seed=DEMO_SEED, n_events=100_000, overwrite=True)
    layer = read_layer(demo / "grids.parquet", version_id="bench-demo")
    taxonomy = load_taxonomy()
    rng = np.random.default_rng(SCALE_SEED)
    base = pq.read_table(demo / "events.parquet",
                         columns=["category_code", "occurred_at", "source", "grid_code", "lng", "lat"])
    numbers = scaled_numbers(base, n, rng)
    now_us = int(numbers["occurred"].max()) + 3600 * 1_000_000
    now = datetime.fromtimestamp(now_us / 1e6, tz=timezone.utc)
    chain_of = {code: (code, c, s, d) for code, c, s, d in zip(*(layer.column(x).tolist() for x in (
        "grid_code", "community_code", "street_code", "district_code")))}
    base_codes = {
        "category": base.column("category_code").to_numpy(zero_copy_only=False),
        "source": base.column("source").to_numpy(zero_copy_only=False),
        "chain": np.array([chain_of[g] for g in base.column("grid_code").to_pylist()], dtype=object).reshape(-1, 4),
    }
    workers = pq.read_table(demo / "workers.parquet", columns=["worker_id", "role", "department", "grid_code"])
    store_dir = work / "store"
    SqliteEventStore(store_dir).close()
    conn = sqlite3.connect(str(database_path(store_dir)), isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    lite = sqlite3.connect(str(work / "flat.sqlite3"), isolation_level=None)
    lite.execute("PRAGMA synchronous=OFF")
    parquet = None
    streets: set[str] = set()
    counts = {"audit": 0, "escalations": 0}
    for lo in range(0, n, CHUNK):
        hi = min(lo + CHUNK, n)
        pick = numbers["pick"][lo:hi]
        columns = {
            "occurred": numbers["occurred"][lo:hi], "lng": numbers["lng"][lo:hi], "lat": numbers["lat"][lo:hi],
            "category": base_codes["category"][pick], "source": base_codes["source"][pick],
            "chain": base_codes["chain"][pick], "event_id": np.array([f"B{k:09d}" for k in range(lo, hi)], dtype=object),
        }
        events = demo_history.plan(columns, now, taxonomy=taxonomy, schedule=WorkSchedule(), workers=workers,
                                   rng=np.random.default_rng([SCALE_SEED, lo]))
        demo_history.write(conn, events, layer_version="bench-demo", first_seq=lo + 1)
        streets.update(events.chain[:, 2].tolist())
        counts["escalations"] += len(events.escalations)
        h3_9 = np.array([h3.latlng_to_cell(y, x, 9) for x, y in zip(events.lng.tolist(), events.lat.tolist())],
                        dtype=object)
        flat = flat_table(events, h3_9, taxonomy)
        if parquet is None:
            parquet = pq.ParquetWriter(work / "events.parquet", flat.schema)
            lite.execute(f"CREATE TABLE flat ({', '.join(flat.column_names)})")
        parquet.write_table(flat)
        as_py = [flat.column(c).to_numpy(zero_copy_only=False) for c in flat.column_names]
        as_py[0] = events.occurred
        lite.execute("BEGIN")
        lite.executemany(f"INSERT INTO flat VALUES ({','.join('?' * len(as_py))})", zip(*(a.tolist() for a in as_py)))
        lite.execute("COMMIT")
        del events, flat, as_py, columns, h3_9
        print(f"[analytics data] {hi:,} of {n:,} events written ({time.perf_counter() - t_start:.0f} s)", flush=True)
    parquet.close()
    counts["audit"] = conn.execute("SELECT count(*) FROM audit").fetchone()[0]
    conn.close()
    lite.execute("CREATE INDEX flat_time ON flat (occurred_at)")
    lite.close()
    meta = {"events": n, "generator_version": GENERATOR_VERSION, "now_us": now_us, "streets": sorted(streets),
            "audit_rows": counts["audit"], "escalations": counts["escalations"],
            "seconds": time.perf_counter() - t_start}
    (work / "meta.json").write_text(json.dumps(meta))
    shutil.rmtree(root, ignore_errors=True)
    work.rename(root)
    print(f"[analytics data] {n:,} events written in {meta['seconds']:.0f} s", flush=True)
    return meta


def flat_table(events: demo_history.History, h3_9: np.ndarray, taxonomy) -> pa.Table:
    """One row per event with what the dashboard queries need (the peers' input), by the mirror's
    definitions: on time = not escalated (督办) in the stages the measure covers."""
    state = events.state
    steps = events.steps
    live = ~np.isin(state, ["duplicate", "rejected", "reported"])
    dispatched = live & (steps[:, 1] >= 0)
    handled = live & (steps[:, 3] >= 0)
    closed = state == "closed"
    esc = [events.escalated_in(s) for s in range(4)]
    any_esc = esc[0] | esc[1] | esc[2] | esc[3]
    chain = events.chain
    classes = {c.code: c.class_code for c in taxonomy.categories}
    return pa.table({
        "occurred_at": pa.array(events.occurred, pa.timestamp("us", tz="UTC")),
        "grid_code": chain[:, 0], "community_code": chain[:, 1], "street_code": chain[:, 2],
        "district_code": chain[:, 3], "category_code": events.category,
        "class_code": np.array([classes[c] for c in events.category.tolist()], dtype=object),
        "source": events.source, "state": state, "worker_id": pa.array(events.worker, pa.string()),
        "registered": live, "dispatched": dispatched, "closed": closed,
        "closed_on_time": closed & ~any_esc, "handled": handled,
        "handled_on_time": handled & ~esc[2], "dispatched_on_time": dispatched & ~esc[0] & ~esc[1],
        "reworked": events.reworked, "handle_minutes": np.where(handled, events.stage_minutes[2], 0.0),
        "h3_9": h3_9,
    })
