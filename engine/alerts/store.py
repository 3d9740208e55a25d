"""The alert store: alerts, their audit trail (which doubles as the alert feed) and the detection
runs, in the data directory's embedded database (store ``alerts``; WAL, ``synchronous=FULL``:
durable when a transaction commits, before any caller hears of it; :mod:`citygrid.engine.database`).

An alert says that a detector (``kind`` ``detector``) or a space-time scan (``scan``) found more
events of one category than expected in an area over a window of local days:

- the area is a unit of the hierarchy (``level`` grid, community, street or district, ``unit_code``)
  or a disc (``level`` ``disc``: centre ``lng``/``lat`` and ``radius_m``, the grids it holds in
  ``grids``); ``grid_code`` ... ``district_code`` are the area's parent chain (a disc's: its centre
  grid's), which bounds who sees and acts on it (:meth:`Principal.covers`);
- ``first_day`` .. ``last_day`` (ISO local dates, inclusive), ``observed`` / ``expected`` events in
  it, the method's ``score`` (its statistic at the peak) and ``p`` when the method gives one.

States and the only transitions (:data:`TRANSITIONS`; anything else is refused with
:class:`~citygrid.engine.errors.PreconditionFailed` saying the alert's state and who put it there)::

    new --acknowledge--> acknowledged
    new | acknowledged --dismiss (a reason)--> dismissed
    new | acknowledged --to_event (through the intake)--> event

Deduplication (:meth:`AlertStore.record`): a finding updates an open alert (new or acknowledged) of
the same kind, method, category and area (a disc: sharing a grid) whose window touches its own
(with at most :data:`MERGE_GAP_DAYS` quiet days between), instead of adding one: the window
grows to hold both, the figures become the latest run's and the peak score is kept. A finding
whose days all lie inside a closed (dismissed or converted) alert's window was already dealt with
and is dropped; one that reaches past it raises a new alert. An area finding also matches the
alerts of the methods it names in ``joins``: the hourly and the daily detector of one grid x
category describe the same rise, so whichever sees it first raises the alert and the other
updates it (the figures stay a daily finding's for a day both judged; the audit names the method). Every insert, update and transition
writes an ``alert_audit`` row; its sequence number only grows, so a watcher resumes from the last
one it saw (:meth:`AlertStore.feed`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from citygrid.engine.access.principals import EVERYWHERE, Principal
from citygrid.engine.database import open_database, transaction
from citygrid.engine.errors import InvalidInput, NotFound, PreconditionFailed
from citygrid.engine.times import from_us, to_us

STORE = "alerts"
KINDS = ("detector", "scan")
LEVELS = ("grid", "community", "street", "district", "disc")
STATES = ("new", "acknowledged", "dismissed", "event")
OPEN_STATES = ("new", "acknowledged")
#: action -> (states it may start from, state it leads to)
TRANSITIONS = {
    "acknowledge": (("new",), "acknowledged"),
    "dismiss": (("new", "acknowledged"), "dismissed"),
    "to_event": (("new", "acknowledged"), "event"),
}
#: A finding merges into an open alert whose window ends with at most this many quiet days before
#: it starts (1: alarms on Monday and Wednesday are one alert; on Monday and Thursday, two).
MERGE_GAP_DAYS = 1


def alarm_runs(alarm) -> list[tuple[int, int, int]]:
    """(row, first column, last column) of each run of a (series x day) alarm matrix's alarm days,
    days at most MERGE_GAP_DAYS quiet days apart joined."""
    rows, cols = np.nonzero(alarm)
    if not len(rows):
        return []
    new = np.r_[True, (rows[1:] != rows[:-1]) | (cols[1:] - cols[:-1] > MERGE_GAP_DAYS + 1)]
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(rows)] - 1
    return [(int(rows[a]), int(cols[a]), int(cols[b])) for a, b in zip(starts.tolist(), ends.tolist())]


_DONE = {"acknowledge": "acknowledged", "dismiss": "dismissed", "to_event": "turned into an event"}
MAX_PAGE = 1000
MAX_REASON = 1000

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            method TEXT NOT NULL,
            category_code TEXT NOT NULL,
            level TEXT NOT NULL,
            unit_code TEXT NOT NULL,
            lng REAL,
            lat REAL,
            radius_m REAL,
            grids TEXT NOT NULL,
            grid_code TEXT,
            community_code TEXT,
            street_code TEXT,
            district_code TEXT,
            first_day TEXT NOT NULL,
            last_day TEXT NOT NULL,
            observed REAL NOT NULL,
            expected REAL NOT NULL,
            score REAL NOT NULL,
            peak_score REAL NOT NULL,
            p REAL,
            state TEXT NOT NULL,
            raised_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            updates INTEGER NOT NULL DEFAULT 0,
            first_run INTEGER NOT NULL,
            last_run INTEGER NOT NULL,
            event_id TEXT,
            reason TEXT
        )""",
        "CREATE INDEX alerts_key ON alerts (kind, method, category_code, level, unit_code, last_day)",
        "CREATE INDEX alerts_state ON alerts (state, id)",
        """CREATE TABLE alert_audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id INTEGER NOT NULL REFERENCES alerts (id),
            at INTEGER NOT NULL,
            principal TEXT NOT NULL,
            role TEXT NOT NULL,
            action TEXT NOT NULL,
            from_state TEXT,
            to_state TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX alert_audit_alert ON alert_audit (alert_id, seq)",
        """CREATE TABLE alert_runs (
            id INTEGER PRIMARY KEY,
            started_at INTEGER NOT NULL,
            finished_at INTEGER NOT NULL,
            trigger TEXT NOT NULL,
            principal TEXT NOT NULL,
            first_day TEXT NOT NULL,
            last_day TEXT NOT NULL,
            series INTEGER NOT NULL,
            events INTEGER NOT NULL,
            findings INTEGER NOT NULL,
            raised INTEGER NOT NULL,
            updated INTEGER NOT NULL,
            seconds REAL NOT NULL
        )""",
    ],
]


@dataclass(frozen=True)
class Finding:
    """What one detection run found in one area, before deduplication."""

    kind: str
    method: str
    category_code: str
    level: str
    unit_code: str
    chain: tuple[str | None, str | None, str | None, str | None]  #: grid, community, street, district
    first_day: dt.date
    last_day: dt.date
    observed: float
    expected: float
    score: float
    p: float | None = None
    grids: tuple[str, ...] = ()
    lng: float | None = None
    lat: float | None = None
    radius_m: float | None = None
    #: Other methods whose open alerts of the same kind, category and area this finding updates
    #: (area findings only; see the module docstring).
    joins: tuple[str, ...] = ()
    #: ``day`` or ``hour``: the period of the series the finding was judged on.
    period: str = "day"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InvalidInput(f"alert kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.level not in LEVELS:
            raise InvalidInput(f"alert level must be one of {', '.join(LEVELS)}, got {self.level!r}")
        if self.last_day < self.first_day:
            raise InvalidInput(f"the window {self.first_day} .. {self.last_day} ends before it starts")
        if self.level == "disc" and (self.lng is None or self.lat is None or self.radius_m is None
                                     or not self.radius_m >= 0 or not self.grids):
            raise InvalidInput("a disc alert needs its centre, radius and grids")
        if self.period not in ("day", "hour"):
            raise InvalidInput(f"a finding's period must be day or hour, got {self.period!r}")


@dataclass(frozen=True)
class Alert:
    id: int
    kind: str
    method: str
    category_code: str
    level: str
    unit_code: str
    lng: float | None
    lat: float | None
    radius_m: float | None
    grids: tuple[str, ...]
    chain: tuple[str | None, str | None, str | None, str | None]
    first_day: dt.date
    last_day: dt.date
    observed: float
    expected: float
    score: float
    peak_score: float
    p: float | None
    state: str
    raised_at: dt.datetime
    updated_at: dt.datetime
    updates: int
    first_run: int
    last_run: int
    event_id: str | None
    reason: str | None


@dataclass(frozen=True)
class AlertChange:
    """An entry of the alert feed (an audit row): what happened to which alert, at which cursor."""

    cursor: int
    at: dt.datetime
    principal: str
    role: str
    action: str
    from_state: str | None
    to_state: str
    note: str
    alert: Alert


@dataclass(frozen=True)
class RunRecord:
    id: int
    started_at: dt.datetime
    finished_at: dt.datetime
    trigger: str
    principal: str
    first_day: dt.date
    last_day: dt.date
    series: int
    events: int
    findings: int
    raised: int
    updated: int
    seconds: float


@dataclass
class RunTally:
    """What :meth:`AlertStore.record` did with a run's findings."""

    raised: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    dropped: int = 0


@dataclass(frozen=True)
class AlertFilter:
    states: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    category_codes: tuple[str, ...] = ()
    #: Grid, community, street or district codes (any level of the alert's chain matches).
    areas: tuple[str, ...] = ()
    #: Only alerts whose window ends on or after / starts on or before these days.
    since: dt.date | None = None
    until: dt.date | None = None


_COLUMNS = ("id, kind, method, category_code, level, unit_code, lng, lat, radius_m, grids, grid_code, community_code, "
            "street_code, district_code, first_day, last_day, observed, expected, score, peak_score, p, state, "
            "raised_at, updated_at, updates, first_run, last_run, event_id, reason")


def _alert(row) -> Alert:
    (id_, kind, method, cat, level, unit, lng, lat, radius, grids, g, c, s, d, first, last, observed, expected, score,
     peak, p, state, raised, updated, updates, first_run, last_run, event_id, reason) = row
    return Alert(id_, kind, method, cat, level, unit, lng, lat, radius, tuple(json.loads(grids)), (g, c, s, d),
                 dt.date.fromisoformat(first), dt.date.fromisoformat(last), observed, expected, score, peak, p, state,
                 from_us(raised), from_us(updated), updates, first_run, last_run, event_id, reason)


def _scope_sql(scope: Sequence[str]) -> tuple[str, list]:
    if not scope or EVERYWHERE in scope:
        return "", []
    marks = ",".join("?" * len(scope))
    return (f" AND (grid_code IN ({marks}) OR community_code IN ({marks}) OR street_code IN ({marks}) "
            f"OR district_code IN ({marks}))", list(scope) * 4)


class AlertStore:
    """The alerts of one data directory. Thread-safe: writes are serialised by a lock and each is
    one durable transaction; reads share the connection under the same lock."""

    def __init__(self, data_dir: str | os.PathLike):
        self._conn: sqlite3.Connection = open_database(data_dir, STORE, MIGRATIONS)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ------------------------------------------------------------------ runs

    def record(self, findings: Sequence[Finding], *, run: dict, at: dt.datetime, principal: Principal) -> tuple[RunRecord, RunTally]:
        """Store a run's findings (deduplicated against the alerts already stored) and the run
        itself in one transaction; durable when this returns."""
        at_us = to_us(at)
        tally = RunTally()
        with self._lock, transaction(self._conn) as conn:
            run_id = int(conn.execute("SELECT coalesce(max(id), 0) + 1 FROM alert_runs").fetchone()[0])
            for f in sorted(findings, key=lambda f: (f.first_day, f.last_day)):
                self._merge(conn, f, run_id, at_us, principal, tally)
            conn.execute(
                "INSERT INTO alert_runs (id, started_at, finished_at, trigger, principal, first_day, last_day, series, "
                "events, findings, raised, updated, seconds) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, to_us(run["started_at"]), at_us, run["trigger"], principal.name, run["first_day"].isoformat(),
                 run["last_day"].isoformat(), run["series"], run["events"], len(findings), len(tally.raised),
                 len(set(tally.updated)), run["seconds"]))
        return self.run(run_id), tally

    def _merge(self, conn, f: Finding, run_id: int, at_us: int, principal: Principal, tally: RunTally) -> None:
        reach = (f.first_day - dt.timedelta(days=MERGE_GAP_DAYS + 1)).isoformat()
        if f.level == "disc":
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM alerts WHERE kind = ? AND method = ? AND category_code = ? AND level = 'disc' "
                "AND last_day >= ? AND first_day <= ? ORDER BY id DESC", (f.kind, f.method, f.category_code, reach,
                                                                          f.last_day.isoformat())).fetchall()
            candidates = [a for a in map(_alert, rows) if set(a.grids) & set(f.grids)]
        else:
            methods = (f.method, *f.joins)
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM alerts WHERE kind = ? AND method IN ({','.join('?' * len(methods))}) "
                "AND category_code = ? AND level = ? AND unit_code = ? AND last_day >= ? ORDER BY id DESC LIMIT 4",
                (f.kind, *methods, f.category_code, f.level, f.unit_code, reach)).fetchall()
            candidates = [_alert(r) for r in rows]
        for a in candidates:
            if a.state in OPEN_STATES:
                self._update(conn, a, f, run_id, at_us, principal)
                tally.updated.append(a.id)
                return
        for a in candidates:
            if a.first_day <= f.first_day and f.last_day <= a.last_day:
                tally.dropped += 1  # already seen and dealt with (dismissed or turned into an event)
                return
        tally.raised.append(self._insert(conn, f, run_id, at_us, principal))

    def _insert(self, conn, f: Finding, run_id: int, at_us: int, principal: Principal) -> int:
        cur = conn.execute(
            "INSERT INTO alerts (kind, method, category_code, level, unit_code, lng, lat, radius_m, grids, grid_code, "
            "community_code, street_code, district_code, first_day, last_day, observed, expected, score, peak_score, p, "
            "state, raised_at, updated_at, first_run, last_run) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (f.kind, f.method, f.category_code, f.level, f.unit_code, f.lng, f.lat, f.radius_m, json.dumps(list(f.grids)),
             *f.chain, f.first_day.isoformat(), f.last_day.isoformat(), f.observed, f.expected, f.score, f.score, f.p,
             "new", at_us, at_us, run_id, run_id))
        alert_id = int(cur.lastrowid)
        self._audit(conn, alert_id, at_us, principal, "raise", None, "new", _figures(f))
        return alert_id

    def _update(self, conn, a: Alert, f: Finding, run_id: int, at_us: int, principal: Principal) -> None:
        first, last = min(a.first_day, f.first_day), max(a.last_day, f.last_day)
        grids = sorted(set(a.grids) | set(f.grids))
        # the latest figures, but for the same last day a daily finding's over another method's hours
        latest = f.last_day > a.last_day or (f.last_day == a.last_day and (f.method == a.method or f.period == "day"))
        conn.execute(
            "UPDATE alerts SET method = ?, first_day = ?, last_day = ?, grids = ?, observed = ?, expected = ?, "
            "score = ?, peak_score = ?, p = ?, lng = ?, lat = ?, radius_m = ?, updated_at = ?, updates = updates + 1, "
            "last_run = ? WHERE id = ?",
            (f.method if latest else a.method, first.isoformat(), last.isoformat(), json.dumps(grids),
             f.observed if latest else a.observed, f.expected if latest else a.expected,
             f.score if latest else a.score, max(a.peak_score, f.score), f.p if latest else a.p,
             f.lng if latest and f.lng is not None else a.lng, f.lat if latest and f.lat is not None else a.lat,
             max(a.radius_m or 0, f.radius_m or 0) or None, at_us, run_id, a.id))
        self._audit(conn, a.id, at_us, principal, "update", a.state, a.state,
                    _figures(f) if f.method == a.method else f"{f.method} {_figures(f)}")

    def _audit(self, conn, alert_id: int, at_us: int, principal: Principal, action: str, from_state, to_state,
               note: str = "") -> None:
        conn.execute("INSERT INTO alert_audit (alert_id, at, principal, role, action, from_state, to_state, note) "
                     "VALUES (?,?,?,?,?,?,?,?)", (alert_id, at_us, principal.name, principal.role.value, action,
                                                  from_state, to_state, note))

    def run(self, run_id: int) -> RunRecord:
        with self._lock:
            row = self._conn.execute("SELECT * FROM alert_runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFound(f"no detection run {run_id}")
        return _run(row)

    def last_run(self) -> RunRecord | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM alert_runs ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else _run(row)

    # ------------------------------------------------------------------ transitions

    def transition(self, alert_id: int, action: str, principal: Principal, *, at: dt.datetime, note: str = "",
                   event_id: str | None = None) -> Alert:
        """Move an alert along :data:`TRANSITIONS` (audited; durable when this returns).
        ``dismiss`` needs a reason (``note``); ``to_event`` the id of the event it became."""
        if action not in TRANSITIONS:
            raise InvalidInput(f"unknown alert action {action!r}; actions are {', '.join(TRANSITIONS)}")
        note = (note or "").strip()
        if action == "dismiss" and not note:
            raise InvalidInput(f"dismissing alert {alert_id} needs a reason (why it is not a real anomaly)")
        if len(note) > MAX_REASON:
            raise InvalidInput(f"the note is {len(note)} characters; at most {MAX_REASON}")
        if action == "to_event" and not event_id:
            raise InvalidInput("turning an alert into an event needs the event's id")
        target = TRANSITIONS[action][1]
        with self._lock, transaction(self._conn) as conn:
            alert = self._get(conn, alert_id)
            principal.require_covers(alert.chain, what=f"alert {alert_id}")
            self.require_state(alert, action, conn)
            at_us = to_us(at)
            conn.execute("UPDATE alerts SET state = ?, updated_at = ?, reason = coalesce(?, reason), "
                         "event_id = coalesce(?, event_id) WHERE id = ?",
                         (target, at_us, note if action == "dismiss" else None, event_id, alert_id))
            self._audit(conn, alert_id, at_us, principal, action, alert.state, target,
                        note if action != "to_event" else f"event {event_id}" + (f": {note}" if note else ""))
            return self._get(conn, alert_id)

    def require_state(self, alert: Alert, action: str, conn=None) -> None:
        """Raise :class:`PreconditionFailed` unless ``action`` may start from the alert's state,
        naming who put it in that state, when and why."""
        sources, _ = TRANSITIONS[action]
        if alert.state in sources:
            return
        with self._lock:
            last = (conn or self._conn).execute(
                "SELECT principal, at, note FROM alert_audit WHERE alert_id = ? AND to_state = ? "
                "ORDER BY seq DESC LIMIT 1", (alert.id, alert.state)).fetchone()
        by = f" by {last[0]} at {from_us(last[1]).isoformat()}" + (f" ({last[2]})" if last[2] else "") if last else ""
        raise PreconditionFailed(f"alert {alert.id} is {alert.state}{by}; only {' or '.join(sources)} alerts can be "
                                 f"{_DONE[action]}")

    # ------------------------------------------------------------------ reads

    def _get(self, conn, alert_id: int) -> Alert:
        row = conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE id = ?", (int(alert_id),)).fetchone()
        if row is None:
            raise NotFound(f"no alert {alert_id}")
        return _alert(row)

    def get(self, alert_id: int, principal: Principal) -> Alert:
        with self._lock:
            alert = self._get(self._conn, alert_id)
        principal.require_covers(alert.chain, what=f"alert {alert_id}")
        return alert

    def list(self, principal: Principal, where: AlertFilter = AlertFilter(), *, before: int | None = None,
             limit: int = 100) -> list[Alert]:
        """Alerts inside the principal's jurisdiction matching ``where``, newest first, with ids
        below ``before`` (a page token)."""
        if not 0 < limit <= MAX_PAGE:
            raise InvalidInput(f"page size must be 1..{MAX_PAGE}, got {limit}")
        sql, params = f"SELECT {_COLUMNS} FROM alerts WHERE 1 = 1", []
        for column, values, known in (("state", where.states, STATES), ("kind", where.kinds, KINDS),
                                      ("category_code", where.category_codes, None)):
            if values:
                if known is not None:
                    bad = [v for v in values if v not in known]
                    if bad:
                        raise InvalidInput(f"unknown {column} {bad[0]!r}; choose among {', '.join(known)}")
                sql += f" AND {column} IN ({','.join('?' * len(values))})"
                params += list(values)
        if where.areas:
            extra, more = _scope_sql(where.areas)
            sql, params = sql + extra, params + more
        if where.since is not None:
            sql, params = sql + " AND last_day >= ?", params + [where.since.isoformat()]
        if where.until is not None:
            sql, params = sql + " AND first_day <= ?", params + [where.until.isoformat()]
        if before is not None:
            sql, params = sql + " AND id < ?", params + [int(before)]
        extra, more = _scope_sql(principal.jurisdiction)
        sql, params = sql + extra + " ORDER BY id DESC LIMIT ?", params + more + [limit]
        with self._lock:
            return [_alert(r) for r in self._conn.execute(sql, params).fetchall()]

    def visible(self, ids, principal: Principal) -> set[int]:
        """Those of ``ids`` inside the principal's jurisdiction."""
        extra, more = _scope_sql(principal.jurisdiction)
        with self._lock:
            rows = self._conn.execute(f"SELECT id FROM alerts WHERE id IN (SELECT value FROM json_each(?)){extra}",
                                      [json.dumps(sorted(int(i) for i in ids))] + more).fetchall()
        return {r[0] for r in rows}

    def audit_trail(self, alert_id: int, principal: Principal) -> list[AlertChange]:
        alert = self.get(alert_id, principal)
        with self._lock:
            rows = self._conn.execute("SELECT seq, at, principal, role, action, from_state, to_state, note "
                                      "FROM alert_audit WHERE alert_id = ? ORDER BY seq", (alert_id,)).fetchall()
        return [AlertChange(seq, from_us(at), who, role, action, f, t, note, alert)
                for seq, at, who, role, action, f, t, note in rows]

    def feed(self, principal: Principal, *, after: int = 0, limit: int = 100) -> list[AlertChange]:
        """The changes after cursor ``after`` to alerts inside the principal's jurisdiction, oldest
        first, each with the alert as it is now."""
        if after < 0:
            raise InvalidInput(f"the cursor must be >= 0, got {after}")
        extra, more = _scope_sql(principal.jurisdiction)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT a.seq, a.at, a.principal, a.role, a.action, a.from_state, a.to_state, a.note, "
                f"{', '.join('x.' + c.strip() for c in _COLUMNS.split(','))} FROM alert_audit a "
                f"JOIN alerts x ON x.id = a.alert_id WHERE a.seq > ?"
                + extra.replace("grid_code", "x.grid_code").replace("community_code", "x.community_code")
                .replace("street_code", "x.street_code").replace("district_code", "x.district_code")
                + " ORDER BY a.seq LIMIT ?", [after] + more + [limit]).fetchall()
        return [AlertChange(r[0], from_us(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], _alert(r[8:])) for r in rows]

    def last_cursor(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT coalesce(max(seq), 0) FROM alert_audit").fetchone()[0])


def _figures(f: Finding) -> str:
    return (f"{f.first_day}..{f.last_day}: {f.observed:g} observed, {f.expected:.2f} expected, score {f.score:.2f}"
            + (f", p {f.p:.3g}" if f.p is not None else ""))


def _run(row) -> RunRecord:
    (id_, started, finished, trigger, principal, first, last, series, events, findings, raised, updated, seconds) = row
    return RunRecord(id_, from_us(started), from_us(finished), trigger, principal, dt.date.fromisoformat(first),
                     dt.date.fromisoformat(last), series, events, findings, raised, updated, seconds)
