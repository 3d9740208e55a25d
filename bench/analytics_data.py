"""The events of the analytics benchmark: the demo generator's events scaled to N by repeating
them (jittered up to half an hour and a few metres) up to 2 M a year, then a year further back, given
the lifecycle of the engine's history writer (:mod:`citygrid.engine.demo.history`, the one
``serve --demo --events`` uses) up to an hour after the last report, and written three ways:

- into a real event store (the ``events``, ``audit`` and ``escalations`` tables the intake writes,
  in bulk, by :func:`citygrid.engine.demo.history.write`) for the engine's mirror to rebuild from;
- as one flat Parquet file per event (codes, class, state, worker, lifecycle flags, working
  minutes, H3 res-9 cell) for the DuckDB peer;
- as the same flat table in SQLite (with an index on the report time) for the SQL GROUP BY peer.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from citygrid.engine.demo import history as demo_history
from citygrid.engine.dispatch.worktime import WorkSchedule

US_PER_MINUTE = 60_000_000
YEAR_US = 365 * 86_400 * 1_000_000
#: Most events the scaled data puts in one year (a busy district).
PER_YEAR = 2_000_000


def scaled_events(demo_dir, n: int, rng: np.random.Generator, taxonomy, layer) -> demo_history.History:
    """``n`` events with their lifecycle up to an hour after the last one."""
    base = pq.read_table(demo_dir / "events.parquet",
                         columns=["category_code", "occurred_at", "source", "grid_code", "lng", "lat"])
    m = base.num_rows
    pick = np.arange(n) % m
    rounds = np.arange(n) // m
    # At most PER_YEAR events a year: copies of the demo's year fill it, then earlier years.
    years = max(1, -(-n // PER_YEAR))
    occurred = base.column("occurred_at").cast(pa.int64()).to_numpy() * 1000  # ms -> µs
    jitter = rng.integers(-30, 30, n) * US_PER_MINUTE * (rounds > 0)
    out = {
        "occurred": occurred[pick] - (rounds % years) * YEAR_US + jitter,
        "category": base.column("category_code").to_numpy(zero_copy_only=False)[pick],
        "source": base.column("source").to_numpy(zero_copy_only=False)[pick],
        "grid": base.column("grid_code").to_numpy(zero_copy_only=False)[pick],
        "lng": base.column("lng").to_numpy()[pick] + rng.normal(0, 2e-5, n) * (rounds > 0),
        "lat": base.column("lat").to_numpy()[pick] + rng.normal(0, 2e-5, n) * (rounds > 0),
    }
    order = np.argsort(out["occurred"], kind="stable")
    out = {k: v[order] for k, v in out.items()}
    chain = {code: (code, c, s, d) for code, c, s, d in zip(*(layer.column(x).tolist() for x in
                                                             ("grid_code", "community_code", "street_code",
                                                              "district_code")))}
    out["chain"] = np.array([chain[g] for g in out.pop("grid").tolist()], dtype=object).reshape(-1, 4)
    out["event_id"] = np.array([f"B{k:09d}" for k in range(n)], dtype=object)
    now = datetime.fromtimestamp(int(out["occurred"].max()) / 1e6 + 3600, tz=timezone.utc)
    workers = pq.read_table(demo_dir / "workers.parquet", columns=["worker_id", "role", "department", "grid_code"])
    return demo_history.plan(out, now, taxonomy=taxonomy, schedule=WorkSchedule(), workers=workers, rng=rng)


def write_store(events: demo_history.History, conn) -> None:
    """Insert the events, their audit rows and escalations into a store's database."""
    demo_history.write(conn, events, layer_version="bench-demo", first_seq=1)


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
        "district_code": chain[:, 3], "category_code": events.category, "class_code": np.array([classes[c] for c in events.category.tolist()], dtype=object),
        "source": events.source, "state": state, "worker_id": events.worker,
        "registered": live, "dispatched": dispatched, "closed": closed,
        "closed_on_time": closed & ~any_esc, "handled": handled,
        "handled_on_time": handled & ~esc[2], "dispatched_on_time": dispatched & ~esc[0] & ~esc[1],
        "reworked": events.reworked, "handle_minutes": np.where(handled, events.stage_minutes[2], 0.0),
        "h3_9": h3_9,
    })
