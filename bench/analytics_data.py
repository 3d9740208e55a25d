"""The events of the analytics benchmark: the demo generator's events scaled to N by repeating
them (jittered up to half an hour and a few metres) up to 2 M a year, then a year further back, given a
realistic lifecycle, and written three ways:

- into a real event store (the ``events``, ``audit`` and ``escalations`` tables the intake writes,
  in bulk) for the engine's mirror to rebuild from;
- as one flat Parquet file per event (codes, class, state, worker, lifecycle flags, working
  minutes, H3 res-9 cell) for the DuckDB peer;
- as the same flat table in SQLite (with an index on the report time) for the SQL GROUP BY peer.

Lifecycle shares (of the non-duplicate events): 86 % closed (6 % of them after a rework), 2 %
rejected, 12 % still open across the stages; 5 % of all reports are duplicates; 9 % of the events
were escalated (督办) in some stage.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

US_PER_MINUTE = 60_000_000
YEAR_US = 365 * 86_400 * 1_000_000
#: Most events the scaled data puts in one year (a busy district).
PER_YEAR = 2_000_000
STAGES = ("register", "dispatch", "handle", "verify")


def scaled_events(demo_dir, n: int, rng: np.random.Generator, taxonomy, layer) -> dict:
    """Columns of ``n`` events (numpy arrays; codes as object arrays)."""
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
    chain = {code: (c, s, d) for code, c, s, d in zip(*(layer.column(x).tolist() for x in
                                                        ("grid_code", "community_code", "street_code", "district_code")))}
    grid_index = {g: k for k, g in enumerate(chain)}
    gi = np.array([grid_index[g] for g in out["grid"].tolist()])
    chains = np.array(list(chain.values()), dtype=object)
    out["community"], out["street"], out["district"] = chains[gi, 0], chains[gi, 1], chains[gi, 2]
    classes = {c.code: c.class_code for c in taxonomy.categories}
    out["class"] = np.array([classes[c] for c in out["category"].tolist()], dtype=object)
    out["worker"] = np.array([f"W{g}" for g in gi.tolist()], dtype=object)  # one worker per grid
    # Lifecycle.
    u = rng.random(n)
    state = np.full(n, "closed", dtype=object)
    state[u < 0.05] = "duplicate"
    rest = u >= 0.05
    v = rng.random(n)
    state[rest & (v < 0.02)] = "rejected"
    open_states = np.array(["reported", "registered", "dispatched", "handling", "fed_back", "verified"], dtype=object)
    opened = rest & (v >= 0.02) & (v < 0.14)
    state[opened] = open_states[rng.integers(0, len(open_states), opened.sum())]
    out["state"] = state
    out["reworked"] = (state == "closed") & (rng.random(n) < 0.06)
    out["escalated_stage"] = np.where(rng.random(n) < 0.09, rng.integers(0, 4, n), -1)
    # Working minutes in each stage (lognormal around a few hours), receipt to closure their sum.
    minutes = np.rint(rng.lognormal(np.log([30, 20, 240, 90])[:, None], 0.8, (4, n))).astype(np.int64)
    out["stage_minutes"] = minutes
    return out


def _reached(state: np.ndarray) -> dict:
    """Which stages each event went through, from its present state."""
    order = {"reported": 0, "registered": 1, "dispatched": 2, "handling": 2, "fed_back": 3, "verified": 3,
             "closed": 4, "rejected": -1, "duplicate": -1}
    return np.array([order[s] for s in state.tolist()])


def write_store(events: dict, conn: sqlite3.Connection) -> None:
    """Insert the events, their audit rows (one per step, at step boundaries in working-time
    minutes counted as wall-clock here) and escalations into a store's database."""
    n = len(events["occurred"])
    reached = _reached(events["state"])
    minutes = events["stage_minutes"]
    seq = np.arange(1, n + 1)
    chunk = 200_000
    audit_seq = 0
    conn.execute("BEGIN")
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        rows, audit, escal = [], [], []
        for k in range(lo, hi):
            s = events["state"][k]
            t = int(events["occurred"][k])
            r = int(reached[k])
            worker = events["worker"][k] if r >= 2 else None
            rows.append((int(seq[k]), f"B{k:09d}", events["category"][k], t, t, events["source"][k], "", "", "[]",
                         float(events["lng"][k]), float(events["lat"][k]), "wgs84", None, float(events["lng"][k]),
                         float(events["lat"][k]), events["grid"][k], events["community"][k], events["street"][k],
                         events["district"][k], 0, "bench", s, worker, "B0" if s == "duplicate" else None,
                         t if r in (0, 1, 2, 3) else None, t + 7 * 86_400_000_000 if r in (0, 1, 2, 3) else None,
                         0, t, "dispatched", worker))
            first = "reported" if s in ("reported", "rejected") else ("duplicate" if s == "duplicate" else
                                                                     "registered" if r == 1 else "dispatched")
            audit.append((int(seq[k]), t, "bench", "intake", "report", None, first))
            if s == "rejected":
                audit.append((int(seq[k]), t + 60 * US_PER_MINUTE, "b", "dispatcher", "reject", "reported", "rejected"))
            at = t
            if r >= 3:
                at += int(minutes[2, k]) * US_PER_MINUTE
                audit.append((int(seq[k]), at, "w", "worker", "feedback", "dispatched", "fed_back"))
                if events["reworked"][k]:
                    at += int(minutes[3, k]) * US_PER_MINUTE
                    audit.append((int(seq[k]), at, "v", "verifier", "rework", "fed_back", "dispatched"))
                    at += int(minutes[2, k]) * US_PER_MINUTE
                    audit.append((int(seq[k]), at, "w", "worker", "feedback", "dispatched", "fed_back"))
            if r >= 4:
                at += int(minutes[3, k]) * US_PER_MINUTE
                audit.append((int(seq[k]), at, "v", "verifier", "verify", "fed_back", "verified"))
                audit.append((int(seq[k]), at, "d", "dispatcher", "close", "verified", "closed"))
            e = int(events["escalated_stage"][k])
            if e >= 0 and r >= 0:
                escal.append((int(seq[k]), t, 1, None, STAGES[e], t, 1.0))
        conn.executemany(
            "INSERT INTO events (seq, event_id, category_code, occurred_at, received_at, source, reporter, description, "
            "attachments, lng, lat, crs, building_code, wgs_lng, wgs_lat, grid_code, community_code, street_code, "
            "district_code, locate_status, layer_version, state, worker_id, duplicate_of, stage_started, deadline, "
            "escalation, updated_at, intake_state, intake_worker) VALUES (" + ",".join("?" * 30) + ")", rows)
        conn.executemany("INSERT INTO audit (event_seq, at, principal, role, action, from_state, to_state, note) "
                         "VALUES (?,?,?,?,?,?,?,'')", audit)
        conn.executemany("INSERT INTO escalations (event_seq, at, level, unit_code, stage, deadline, overdue_minutes) "
                         "VALUES (?,?,?,?,?,?,?)", escal)
        audit_seq += len(audit)
    conn.execute("COMMIT")


def flat_table(events: dict, h3_9: np.ndarray) -> pa.Table:
    """One row per event with what the dashboard queries need (the peers' input)."""
    state = events["state"]
    reached = _reached(state)
    esc = events["escalated_stage"]
    minutes = events["stage_minutes"]
    handle = np.where(reached >= 3, minutes[2] * (1 + events["reworked"]), 0)
    return pa.table({
        "occurred_at": pa.array(events["occurred"], pa.timestamp("us", tz="UTC")),
        "grid_code": events["grid"], "community_code": events["community"], "street_code": events["street"],
        "district_code": events["district"], "category_code": events["category"], "class_code": events["class"],
        "source": events["source"], "state": state, "worker_id": np.where(reached >= 2, events["worker"], None),
        "registered": reached >= 1, "dispatched": reached >= 2, "closed": state == "closed",
        "closed_on_time": (state == "closed") & (esc < 0), "handled": reached >= 3,
        "handled_on_time": (reached >= 3) & (esc != 2), "dispatched_on_time": (reached >= 2) & (esc != 0) & (esc != 1),
        "reworked": events["reworked"], "handle_minutes": handle.astype(np.float64),
        "h3_9": h3_9,
    })
