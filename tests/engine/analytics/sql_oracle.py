"""The independent expectation of the analytics queries: plain SQL GROUP BY over the store's own
tables (events, audit, escalations), with the taxonomy's and the layer's lookups as temporary
tables and the work schedule's ``worked_until`` as a SQL function. Nothing here uses the mirror or
the kernels."""

from __future__ import annotations

import math
import sqlite3
from datetime import date

from citygrid.engine.database import database_path
from citygrid.engine.times import to_us

LOCAL = "'+8 hours'"
_T = f"occurred_at / 1000000, 'unixepoch', {LOCAL}"
DIMENSION_SQL = {
    "grid": "grid_code", "community": "community_code", "street": "street_code", "district": "district_code",
    "category": "category_code", "source": "source", "state": "state", "worker": "worker_id",
    "class": "(SELECT class_code FROM temp.cats c WHERE c.code = category_code)",
    "department": "(SELECT department FROM temp.cats c WHERE c.code = category_code)",
    "grid_type": "(SELECT grid_type FROM temp.grids g WHERE g.code = grid_code)",
    "stage": ("CASE state WHEN 'reported' THEN 'register' WHEN 'registered' THEN 'dispatch' WHEN 'dispatched' "
              "THEN 'handle' WHEN 'handling' THEN 'handle' WHEN 'fed_back' THEN 'verify' WHEN 'verified' "
              "THEN 'verify' ELSE state END"),
    "hour": f"strftime('%Y-%m-%dT%H:00', {_T})",
    "day": f"date({_T})",
    "week": f"iso_week(date({_T}))",
    "month": f"strftime('%Y-%m', {_T})",
    "hour_of_day": f"CAST(strftime('%H', {_T}) AS INTEGER)",
    "weekday": f"(CAST(strftime('%w', {_T}) AS INTEGER) + 6) % 7",
}
STAGE_STATES = {"register": "('reported')", "dispatch": "('registered')", "handle": "('dispatched', 'handling')",
                "verify": "('fed_back', 'verified')"}

PER_EVENT = f"""
WITH a AS (
    SELECT event_seq, seq, at, to_state, action,
           LAG(at) OVER w AS prev_at, LAG(to_state) OVER w AS prev_state
    FROM audit WINDOW w AS (PARTITION BY event_seq ORDER BY seq)
)
SELECT e.*,
    EXISTS (SELECT 1 FROM audit x WHERE x.event_seq = e.seq AND x.to_state NOT IN ('reported', 'rejected', 'duplicate')) AS registered,
    EXISTS (SELECT 1 FROM audit x WHERE x.event_seq = e.seq AND x.to_state = 'dispatched') AS dispatched,
    EXISTS (SELECT 1 FROM audit x WHERE x.event_seq = e.seq AND x.action = 'rework') AS reworked,
    EXISTS (SELECT 1 FROM escalations s WHERE s.event_seq = e.seq) AS escalated,
    EXISTS (SELECT 1 FROM escalations s WHERE s.event_seq = e.seq AND s.stage IN ('register', 'dispatch')) AS late_dispatch,
    EXISTS (SELECT 1 FROM escalations s WHERE s.event_seq = e.seq AND s.stage = 'handle') AS late_handle,
    (SELECT worked(max(x.at)) FROM audit x WHERE x.event_seq = e.seq AND x.to_state = 'closed')
      - (SELECT worked(min(x.at)) FROM audit x WHERE x.event_seq = e.seq) AS close_us,
    {", ".join(f"(SELECT sum(worked(a.at) - worked(a.prev_at)) FROM a WHERE a.event_seq = e.seq AND a.prev_state IN {states}) AS {stage}_us"
               for stage, states in STAGE_STATES.items())}
FROM events e
"""


def _iso_week(day: str) -> str:
    year, week, _ = date.fromisoformat(day).isocalendar()
    return f"{year}-W{week:02d}"


class Oracle:
    def __init__(self, data_dir, taxonomy, schedule):
        # Autocommit: every query reads the last commit (no transaction left open by the set-up).
        self.conn = sqlite3.connect(str(database_path(data_dir)), isolation_level=None)
        self.conn.create_function("worked", 1, lambda us: None if us is None else int(schedule.worked_until(us)))
        self.conn.create_function("iso_week", 1, _iso_week)
        self.conn.execute("CREATE TEMP TABLE cats (code TEXT PRIMARY KEY, class_code TEXT, department TEXT)")
        self.conn.executemany("INSERT INTO temp.cats VALUES (?,?,?)",
                              [(c.code, c.class_code, c.department) for c in taxonomy.categories])
        self.conn.execute("CREATE TEMP TABLE grids (code TEXT PRIMARY KEY, grid_type TEXT)")

    def use_layer(self, layer) -> None:
        self.conn.execute("DELETE FROM temp.grids")
        if "grid_type" in layer.attributes.column_names:
            self.conn.executemany("INSERT INTO temp.grids VALUES (?,?)",
                                  zip(layer.column("grid_code").tolist(), layer.column("grid_type").tolist()))

    def _where(self, start, end, scope, filters):
        clauses = ["occurred_at >= ?", "occurred_at < ?"]
        params = [int(to_us(start)), int(to_us(end))]
        if scope is not None:
            marks = ",".join("?" * len(scope))
            clauses.append("(" + " OR ".join(f"{c} IN ({marks})" for c in
                                               ("grid_code", "community_code", "street_code", "district_code")) + ")")
            params += list(scope) * 4
        for dim, keep in (filters or {}).items():
            clauses.append(f"{DIMENSION_SQL[dim]} IN ({','.join('?' * len(keep))})")
            params += list(keep)
        return " AND ".join(clauses), params

    def aggregate(self, start, end, dims, now, scope=None, filters=None) -> dict:
        """{dims tuple: {measure: value}} with the count measures, duration sums and counts."""
        where, params = self._where(start, end, scope, filters)
        keys = [DIMENSION_SQL[d] for d in dims]
        open_states = "('reported','registered','dispatched','handling','fed_back','verified')"
        select = ", ".join(keys + [
            "count(*)", "sum(registered)", "sum(dispatched)", "sum(state = 'closed')",
            "sum(state = 'closed' AND NOT escalated)",
            f"sum(state IN {open_states} AND deadline IS NOT NULL AND deadline < {int(to_us(now))})",
            "sum(reworked)", "sum(state = 'duplicate')", "sum(escalated)",
            "sum(handle_us IS NOT NULL)", "sum(handle_us IS NOT NULL AND NOT late_handle)",
            "sum(dispatched AND NOT late_dispatch)",
            "total(CASE WHEN state = 'closed' THEN close_us END)",
        ] + [f"total({s}_us), count({s}_us)" for s in STAGE_STATES])
        group = f" GROUP BY {', '.join(keys)}" if keys else ""
        sql = f"SELECT {select} FROM ({PER_EVENT}) WHERE {where}{group}"
        names = ["reported", "registered", "dispatched", "closed", "closed_on_time", "overdue_now", "reworked",
                 "duplicates", "escalated", "handled", "handled_on_time", "dispatched_on_time", "close_us"]
        names += [x for s in STAGE_STATES for x in (f"{s}_us", f"{s}_n")]
        out = {}
        for row in self.conn.execute(sql, params):
            values = dict(zip(names, row[len(keys):]))
            if values["reported"]:
                out[tuple(row[: len(keys)])] = {k: int(v) for k, v in values.items()}
        return out

    def durations(self, start, end, dims, which, scope=None) -> dict:
        """{dims tuple: sorted working µs} of one duration (a stage name or ``close``)."""
        where, params = self._where(start, end, scope, None)
        keys = [DIMENSION_SQL[d] for d in dims]
        value = "close_us" if which == "close" else f"{which}_us"
        extra = " AND state = 'closed'" if which == "close" else f" AND {value} IS NOT NULL"
        sql = (f"SELECT {', '.join(keys + [value])} FROM ({PER_EVENT}) WHERE {where}{extra} "
               f"ORDER BY {', '.join(keys + [value])}")
        out: dict = {}
        for row in self.conn.execute(sql, params):
            out.setdefault(tuple(row[:-1]), []).append(int(row[-1]))
        return out

    def positions(self, start, end, scope=None):
        where, params = self._where(start, end, scope, None)
        return self.conn.execute(f"SELECT wgs_lng, wgs_lat FROM events WHERE {where} AND wgs_lng IS NOT NULL",
                                 params).fetchall()


def nearest_rank(values: list[int], tenths: int) -> int:
    """The ceil(tenths / 10 * n)-th smallest value (integer arithmetic)."""
    rank = max(1, -(-tenths * len(values) // 10))
    return values[rank - 1]


def close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b
