"""The event store: the tables that keep events, their audit trail and escalations durably.

What a report holds and what the service keeps are the model (:mod:`citygrid.engine.cases.model`);
this module declares the ``events`` table once (:data:`EVENT_TABLE`) and stores.

:class:`EventStore` is the storage interface (so a server database can follow);
:class:`SqliteEventStore` keeps it in the data directory's SQLite database (WAL, ``synchronous=FULL``:
durable when a transaction commits; :mod:`citygrid.engine.database`). The orchestration (locate,
deduplicate, dispatch, lifecycle) is :class:`citygrid.engine.cases.intake.Intake`; the store only stores,
inside the transactions the intake opens: a batch of reports and their audit rows share one commit.

The audit table doubles as the dispatch feed: a row that dispatches an event to a worker names them
in ``notify``, a row that takes an event away names the previous worker in ``revoked``. Its sequence
number is global and only grows, so a worker's feed resumes from the last number it saw. A report's
first row records the whole intake (placed, registered and dispatched in one instant): from nothing
to the state the intake left the event in.

Indexes are kept to what the engine looks events up by (id, worker, waiting for a worker, deadline),
so intake stays fast; listing by state, category or area walks the events in arrival order from the
page token and filters (fine for dashboards paging through recent events; an area index is the
first thing to add if lists over years of events get slow).

Times are UTC microseconds since the epoch in the database and aware datetimes in the API.
"""

from __future__ import annotations

import abc
import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple, Sequence

from citygrid.engine.database import connect, database_path, open_database, transaction
from citygrid.engine.errors import NotFound
from citygrid.engine.cases.lifecycle import LOADED_STATES, OPEN_STATES, State
from citygrid.engine.dispatch.workers import MIGRATIONS as WORKER_MIGRATIONS
from citygrid.engine.dispatch.workers import WorkerStore
from citygrid.engine.times import from_us, to_us

from citygrid.engine.cases.model import (
    CONTENT_COLUMNS, MAX_PAGE, AuditEntry, DispatchNotice, Event, EventFilter, OverdueNotice, Receipt,
)
from citygrid.engine.hierarchy import CODE_COLUMNS

STORE = "events"
#: SQLite page cache of the store's connection (KiB): the indexes of a year of events stay in memory.
CACHE_KIB = 128 * 1024


# ---------------------------------------------------------------------- rows to write


#: The ``events`` table, declared once, in column order: (column, SQL type, :class:`NewEvent` field,
#: its Python type). The table (:data:`MIGRATIONS`), the insert, the columns read back (all but the
#: ``intake_*`` record of what the intake first did) and :class:`NewEvent` derive from it. Times are
#: UTC microseconds (the fields ending in ``_us``).
EVENT_TABLE: tuple[tuple[str, str, str, object], ...] = (
    ("seq", "INTEGER PRIMARY KEY", "seq", int),
    ("event_id", "TEXT NOT NULL UNIQUE", "event_id", str),
    ("category_code", "TEXT NOT NULL", "category_code", str),
    ("occurred_at", "INTEGER NOT NULL", "occurred_us", int),
    ("received_at", "INTEGER NOT NULL", "received_us", int),
    ("source", "TEXT NOT NULL", "source", str),
    ("reporter", "TEXT NOT NULL", "reporter", str),
    ("description", "TEXT NOT NULL", "description", str),
    ("attachments", "TEXT NOT NULL", "attachments", str),  # a JSON list
    ("lng", "REAL", "lng", float | None),
    ("lat", "REAL", "lat", float | None),
    ("crs", "TEXT NOT NULL", "crs", str),
    ("building_code", "TEXT", "building_code", str | None),
    ("wgs_lng", "REAL", "wgs_lng", float | None),
    ("wgs_lat", "REAL", "wgs_lat", float | None),
    ("grid_code", "TEXT", "grid_code", str | None),
    ("community_code", "TEXT", "community_code", str | None),
    ("street_code", "TEXT", "street_code", str | None),
    ("district_code", "TEXT", "district_code", str | None),
    ("locate_status", "INTEGER NOT NULL", "locate_status", int),
    ("layer_version", "TEXT", "layer_version", str | None),
    ("state", "TEXT NOT NULL", "state", State),
    ("worker_id", "TEXT", "worker_id", str | None),
    ("duplicate_of", "TEXT", "duplicate_of", str | None),
    ("stage_started", "INTEGER", "stage_started_us", int | None),
    ("deadline", "INTEGER", "deadline_us", int | None),
    ("escalation", "INTEGER NOT NULL", "escalation", int),
    ("updated_at", "INTEGER NOT NULL", "updated_us", int),
    ("intake_state", "TEXT NOT NULL", "intake_state", State),
    ("intake_worker", "TEXT", "intake_worker", str | None),
)
#: The columns an :class:`Event` is read from (the table without the intake's own record).
READ_COLUMNS = tuple(column for column, *_ in EVENT_TABLE if not column.startswith("intake_"))
#: The columns a relocation rewrites, in the order of :attr:`EventChange.relocation`.
RELOCATION_COLUMNS = ("wgs_lng", "wgs_lat", "lng", "lat", "crs", "building_code", "grid_code", "community_code",
                      "street_code", "district_code", "locate_status", "layer_version")
#: The lifecycle columns every :class:`EventChange` writes, in the order of its fields.
LIFECYCLE_COLUMNS = ("state", "worker_id", "stage_started", "deadline", "escalation", "updated_at", "duplicate_of")

#: A row to insert, in the column order of the ``events`` table (:data:`EVENT_TABLE`): the intake
#: builds plain tuples in this layout on its hot path.
NewEvent = NamedTuple("NewEvent", [(name, kind) for _, _, name, kind in EVENT_TABLE])


class AuditRow(NamedTuple):
    """An audit row to append (``notify``/``revoked``: the worker whose dispatch feed it enters)."""

    event_seq: int
    at_us: int
    principal: str
    role: str
    action: str
    from_state: State | None
    to_state: State
    note: str = ""
    notify: str | None = None
    revoked: str | None = None


class InsertColumns(NamedTuple):
    """The columns of a committed insert that a follower keeps, as the intake has them at hand (one
    entry per event, in sequence order): numbers and indices into lists the intake keeps (the
    layer's chains, the taxonomy's category codes, the dispatcher's worker ids; none of them ever
    changed once made), so a follower turns an index into its own id once per list entry, not once
    per event. The insert wrote one audit row per event, its report, at ``received_us``, from no
    state to the event's state, none a rework."""

    occurred_us: Any  #: np.ndarray of int64
    deadline_us: Any  #: np.ndarray of int64 (-1: none)
    state: Any  #: np.ndarray of int8: the index of each event's :class:`State` in the enum's order
    category: Any  #: np.ndarray of int32: index into ``category_codes``
    category_codes: Sequence[str]
    source: Sequence[str]
    worker: Any  #: np.ndarray of int32: index into ``worker_ids`` (-1: none)
    worker_ids: Sequence[str]
    grid_rows: Any  #: np.ndarray of int32: row in ``chains`` (-1: placed in no grid)
    chains: Any  #: the :class:`~citygrid.engine.hierarchy.Chains`; a row's chain is the event's area codes
    received_us: int


class CommittedEvents(NamedTuple):
    """What one committed insert wrote, handed on by the intake after the commit (to derived state
    that would otherwise read it back): the events as inserted (tuples in the :class:`NewEvent`
    layout, in sequence order) and their audit rows (:class:`AuditRow` layout), the first of which
    has audit sequence number ``first_audit`` and the others the numbers after it; and the
    columns a follower keeps (:class:`InsertColumns`), so that it reads no tuple and looks up no
    string per event."""

    events: Sequence[tuple]
    audit: Sequence[tuple]
    first_audit: int
    columns: InsertColumns


@dataclass
class EventChange:
    """New values for an event's lifecycle columns."""

    seq: int
    state: State
    worker_id: str | None
    stage_started_us: int | None
    deadline_us: int | None
    escalation: int
    updated_us: int
    duplicate_of: str | None = None
    relocation: tuple | None = field(default=None)  #: (wgs_lng, wgs_lat, lng, lat, crs, building, chain, status, version)

    def lifecycle(self) -> tuple:
        """The values of :data:`LIFECYCLE_COLUMNS`."""
        return (self.state.value, self.worker_id, self.stage_started_us, self.deadline_us, self.escalation,
                self.updated_us, self.duplicate_of)


@dataclass
class EscalationRow:
    event_seq: int
    at_us: int
    level: int
    unit_code: str | None
    stage: str
    deadline_us: int
    overdue_minutes: float


# ---------------------------------------------------------------------- the interface


class EventStore(abc.ABC):
    """Durable storage of events, their audit trail, escalations and workers.

    Writes happen inside :meth:`transaction` (one durable commit when it exits); reads may happen
    anywhere. Implementations serialise writers themselves.
    """

    workers: WorkerStore

    @abc.abstractmethod
    def transaction(self): ...

    @abc.abstractmethod
    def next_seq(self) -> int:
        """The arrival number the next inserted event gets (inside a transaction)."""

    @abc.abstractmethod
    def receipts(self, event_ids: Sequence[str]) -> dict[str, tuple[tuple, Receipt]]:
        """The stored content (:meth:`EventReport.content`) and original receipt of those ids that exist."""

    @abc.abstractmethod
    def in_transaction(self) -> bool:
        """Whether the calling thread is inside :meth:`transaction` (so what it writes is not yet
        committed: an inner transaction joins the outer one)."""

    @abc.abstractmethod
    def insert_events(self, rows: Sequence[NewEvent], audit: Sequence[AuditRow]) -> int:
        """Insert new events and their audit rows (tuples in the :class:`NewEvent` and
        :class:`AuditRow` layouts are accepted as they are); returns the audit sequence number of
        the first audit row (the others follow it one by one)."""

    @abc.abstractmethod
    def update_events(self, changes: Sequence[EventChange], audit: Sequence[AuditRow]) -> None: ...

    @abc.abstractmethod
    def add_escalations(self, rows: Sequence[EscalationRow], levels: Sequence[tuple[int, int]]) -> None:
        """Append escalation rows and set events' escalation levels ((seq, level) pairs)."""

    @abc.abstractmethod
    def get(self, event_id: str) -> Event: ...

    @abc.abstractmethod
    def get_seqs(self, seqs: Sequence[int]) -> list[Event]: ...

    @abc.abstractmethod
    def list_events(self, where: EventFilter, *, scope: Sequence[str] = (), after: int = 0,
                    limit: int = 100) -> list[Event]:
        """Events matching ``where`` (and, when ``scope`` is given, whose grid, community, street or
        district code is in it), in arrival order after the sequence number ``after``."""

    @abc.abstractmethod
    def audit_trail(self, event_id: str) -> list[AuditEntry]: ...

    @abc.abstractmethod
    def dispatch_feed(self, worker_id: str, *, after: int, limit: int) -> list[DispatchNotice]:
        """A worker's notices after the audit sequence number ``after`` (reads the log forward from
        there: cheap for a watcher that keeps up; a cursor of 0 reads the whole log)."""

    @abc.abstractmethod
    def overdue_feed(self, *, after: int, limit: int, areas: Sequence[str] = ()) -> list[OverdueNotice]: ...

    @abc.abstractmethod
    def last_cursor(self) -> int:
        """The highest audit sequence number so far (0 when empty)."""

    @abc.abstractmethod
    def last_escalation(self) -> int: ...

    @abc.abstractmethod
    def assignments(self) -> list[tuple[int, str]]:
        """(seq, worker id) of every event that counts on a worker's load."""

    @abc.abstractmethod
    def open_categories(self) -> set[str]:
        """Category codes of the open events."""

    @abc.abstractmethod
    def open_primaries(self) -> list[tuple[int, str, str, float, float, int]]:
        """(seq, id, category, wgs lng, wgs lat, occurred µs) of open non-duplicate placed events."""

    @abc.abstractmethod
    def due(self, now_us: int, *, after: tuple[int, int] = (0, 0), limit: int = MAX_PAGE) -> list[Event]:
        """Events past their deadline not yet escalated to the street level, by (deadline, seq)
        after ``after``."""

    @abc.abstractmethod
    def in_states(self, states: Sequence[State], *, worker_id: str | None = None, unassigned: bool = False,
                  after: int = 0, limit: int = MAX_PAGE) -> list[Event]:
        """Events in some states (of one worker, or with no worker), in arrival order."""


# ---------------------------------------------------------------------- SQLite

MIGRATIONS = [
    [
        # The first layout had a digest of the content after the id (dropped by the second migration).
        "CREATE TABLE events (" + ", ".join(
            f"{column} {sql}" for column, sql, *_ in EVENT_TABLE[:2] + (("digest", "BLOB NOT NULL"),) + EVENT_TABLE[2:]
        ) + ")",
        # Only what the engine looks up by: the events waiting for a worker and deadlines
        # (escalation). Indexes keyed by worker would take a random page per event and double the
        # commit's writes; who holds what is kept in memory by the intake (rebuilt from the table
        # when it starts), and the dispatch feed reads the audit log forward from its cursor.
        "CREATE INDEX events_waiting ON events (seq) WHERE state = 'registered' AND worker_id IS NULL",
        "CREATE INDEX events_deadline ON events (deadline) WHERE deadline IS NOT NULL",
        """CREATE TABLE audit (
            seq INTEGER PRIMARY KEY,
            event_seq INTEGER NOT NULL,
            at INTEGER NOT NULL,
            principal TEXT NOT NULL,
            role TEXT NOT NULL,
            action TEXT NOT NULL,
            from_state TEXT,
            to_state TEXT NOT NULL,
            note TEXT NOT NULL,
            notify TEXT,
            revoked TEXT
        )""",
        "CREATE INDEX audit_event ON audit (event_seq)",
        """CREATE TABLE escalations (
            seq INTEGER PRIMARY KEY,
            event_seq INTEGER NOT NULL,
            at INTEGER NOT NULL,
            level INTEGER NOT NULL,
            unit_code TEXT,
            stage TEXT NOT NULL,
            deadline INTEGER NOT NULL,
            overdue_minutes REAL NOT NULL
        )""",
    ],
    # Replays compare the stored content itself, not a hash of it.
    ["ALTER TABLE events DROP COLUMN digest"],
]

_EVENT_COLUMNS = ", ".join(READ_COLUMNS)
_INSERT = f"INSERT INTO events ({', '.join(c for c, *_ in EVENT_TABLE)}) VALUES ({','.join('?' * len(EVENT_TABLE))})"
_UPDATE = f"UPDATE events SET {', '.join(f'{c}=?' for c in LIFECYCLE_COLUMNS)} WHERE seq=?"
_RELOCATE = (f"UPDATE events SET {', '.join(f'{c}=?' for c in LIFECYCLE_COLUMNS + RELOCATION_COLUMNS)} "
             "WHERE seq=?")
_INSERT_AUDIT = (
    "INSERT INTO audit (event_seq, at, principal, role, action, from_state, to_state, note, notify, revoked) "
    "VALUES (?,?,?,?,?,?,?,?,?,?)"
)
_OPEN = tuple(s.value for s in OPEN_STATES)


class SqliteEventStore(EventStore):
    """The event store in ``<data_dir>/citygrid.sqlite3`` (tables ``events``, ``audit``,
    ``escalations`` and ``workers``). Safe to share between threads: writes go through one
    connection, one transaction at a time; reads from other threads use a second connection and see
    the last commit (WAL readers do not wait for the writer); reads inside a transaction see its
    own changes."""

    def __init__(self, data_dir):
        open_database(data_dir, "workers", WORKER_MIGRATIONS).close()
        #: The database file (:func:`~citygrid.engine.database.database_path`).
        self.path = database_path(data_dir)
        self._conn = open_database(data_dir, STORE, MIGRATIONS)
        self._reader = connect(database_path(data_dir))
        for conn in (self._conn, self._reader):
            conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._lock = threading.RLock()
        self._reader_lock = threading.Lock()
        self._depth = 0
        self._owner: int | None = None
        self.workers = WorkerStore(self._conn, self._read)

    def close(self) -> None:
        with self._lock, self._reader_lock:
            self._conn.close()
            self._reader.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One durable transaction (nested calls join the outer one)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._depth, self._owner = 1, threading.get_ident()
            try:
                with transaction(self._conn):
                    yield
            finally:
                self._depth, self._owner = 0, None

    def in_transaction(self) -> bool:
        return self._depth > 0 and self._owner == threading.get_ident()

    def _read(self, sql: str, params: Sequence = ()) -> list[tuple]:
        if self._owner == threading.get_ident():
            return self._conn.execute(sql, params).fetchall()
        with self._reader_lock:
            return self._reader.execute(sql, params).fetchall()

    # ------------------------------------------------------------------ writes

    def next_seq(self) -> int:
        return self._read("SELECT coalesce(max(seq), 0) + 1 FROM events")[0][0]

    def insert_events(self, rows: Sequence[NewEvent], audit: Sequence[AuditRow]) -> int:
        self._conn.executemany(_INSERT, rows)
        self._conn.executemany(_INSERT_AUDIT, audit)
        # An INTEGER PRIMARY KEY given no value is one more than the largest in the table, and this
        # connection holds the write lock: the audit rows just written are numbered one by one.
        return self._conn.execute("SELECT last_insert_rowid()").fetchone()[0] - len(audit) + 1

    def update_events(self, changes: Sequence[EventChange], audit: Sequence[AuditRow]) -> None:
        self._conn.executemany(_UPDATE, [(*c.lifecycle(), c.seq) for c in changes if c.relocation is None])
        for c in changes:
            if c.relocation is not None:
                wgs_lng, wgs_lat, lng, lat, crs, building, chain, status, version = c.relocation
                self._conn.execute(_RELOCATE, (*c.lifecycle(), wgs_lng, wgs_lat, lng, lat, crs, building, *chain,
                                               status, version, c.seq))
        self._conn.executemany(_INSERT_AUDIT, audit)

    def add_escalations(self, rows: Sequence[EscalationRow], levels: Sequence[tuple[int, int]]) -> None:
        self._conn.executemany(
            "INSERT INTO escalations (event_seq, at, level, unit_code, stage, deadline, overdue_minutes) "
            "VALUES (?,?,?,?,?,?,?)",
            [(r.event_seq, r.at_us, r.level, r.unit_code, r.stage, r.deadline_us, r.overdue_minutes) for r in rows],
        )
        self._conn.executemany("UPDATE events SET escalation=? WHERE seq=?", [(lv, seq) for seq, lv in levels])

    # ------------------------------------------------------------------ reads

    def receipts(self, event_ids: Sequence[str]) -> dict[str, tuple[tuple, Receipt]]:
        rows = self._read(
            "SELECT event_id, intake_state, grid_code, locate_status, intake_worker, duplicate_of, received_at, "
            f"{', '.join(CONTENT_COLUMNS)} FROM events WHERE event_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(event_ids), ensure_ascii=False),),
        )
        return {
            event_id: (tuple(content), Receipt(event_id, False, State(state), grid, status, worker, dup, from_us(received)))
            for event_id, state, grid, status, worker, dup, received, *content in rows
        }

    def get(self, event_id: str) -> Event:
        rows = self._read(f"SELECT {_EVENT_COLUMNS} FROM events WHERE event_id = ?", (event_id,))
        if not rows:
            raise NotFound(f"no event {event_id!r}")
        return _event(rows[0])

    def get_seqs(self, seqs: Sequence[int]) -> list[Event]:
        out = []
        seqs = list(seqs)
        for lo in range(0, len(seqs), 900):
            chunk = seqs[lo : lo + 900]
            out += self._read(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq IN ({','.join('?' * len(chunk))}) ORDER BY seq", chunk
            )
        return sorted((_event(r) for r in out), key=lambda e: e.seq)

    def list_events(self, where: EventFilter, *, scope: Sequence[str] = (), after: int = 0,
                    limit: int = 100) -> list[Event]:
        clauses, params = ["seq > ?"], [after]
        if where.states:
            clauses.append(f"state IN ({','.join('?' * len(where.states))})")
            params += [s.value for s in where.states]
        if where.category_codes:
            clauses.append(f"category_code IN ({','.join('?' * len(where.category_codes))})")
            params += list(where.category_codes)
        for areas in (where.areas, scope):
            if areas:
                clause, values = _in_area(areas)
                clauses.append(clause)
                params += values
        if where.worker_id is not None:
            clauses.append("worker_id = ?")
            params.append(where.worker_id)
        if where.source is not None:
            clauses.append("source = ?")
            params.append(where.source)
        if where.occurred_from is not None:
            clauses.append("occurred_at >= ?")
            params.append(to_us(where.occurred_from))
        if where.occurred_to is not None:
            clauses.append("occurred_at < ?")
            params.append(to_us(where.occurred_to))
        if where.overdue_at is not None:
            clauses.append("deadline IS NOT NULL AND deadline < ?")
            params.append(to_us(where.overdue_at))
        if where.duplicate_of is not None:
            clauses.append("duplicate_of = ?")
            params.append(where.duplicate_of)
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ?"
        return [_event(r) for r in self._read(sql, [*params, limit])]

    def audit_trail(self, event_id: str) -> list[AuditEntry]:
        rows = self._read(
            "SELECT a.seq, e.event_id, a.at, a.principal, a.role, a.action, a.from_state, a.to_state, "
            "coalesce(a.notify, a.revoked), a.note FROM audit a JOIN events e ON e.seq = a.event_seq "
            "WHERE e.event_id = ? ORDER BY a.seq",
            (event_id,),
        )
        return [
            AuditEntry(seq, eid, from_us(at), principal, role, action, None if fs is None else State(fs),
                       State(ts), worker, note)
            for seq, eid, at, principal, role, action, fs, ts, worker, note in rows
        ]

    def dispatch_feed(self, worker_id: str, *, after: int, limit: int) -> list[DispatchNotice]:
        rows = self._read(
            "SELECT a.seq, e.event_id, a.notify, a.revoked, a.at, a.action, e.category_code, e.grid_code, "
            "e.wgs_lng, e.wgs_lat, e.deadline, e.description FROM audit a JOIN events e ON e.seq = a.event_seq "
            "WHERE a.seq > ? AND (a.notify = ? OR a.revoked = ?) ORDER BY a.seq LIMIT ?",
            (after, worker_id, worker_id, limit),
        )
        out = []
        for seq, eid, notify, revoked, at, action, cat, grid, x, y, deadline, desc in rows:
            kind = "dispatched" if notify == worker_id else "revoked"
            out.append(
                DispatchNotice(seq, eid, worker_id, kind, from_us(at), action, cat, grid,
                               None if x is None else (x, y), None if deadline is None else from_us(deadline), desc)
            )
        return out

    def overdue_feed(self, *, after: int, limit: int, areas: Sequence[str] = ()) -> list[OverdueNotice]:
        sql = (
            "SELECT x.seq, e.event_id, x.level, x.unit_code, x.at, e.state, x.stage, x.deadline, x.overdue_minutes, "
            "e.grid_code, e.worker_id FROM escalations x JOIN events e ON e.seq = x.event_seq WHERE x.seq > ?"
        )
        params: list = [after]
        if areas:
            clause, values = _in_area(areas, "e.")
            sql += " AND " + clause
            params += values
        rows = self._read(sql + " ORDER BY x.seq LIMIT ?", [*params, limit])
        return [
            OverdueNotice(seq, eid, level, unit, from_us(at), State(state), stage, from_us(deadline), minutes,
                          grid, worker)
            for seq, eid, level, unit, at, state, stage, deadline, minutes, grid, worker in rows
        ]

    def last_cursor(self) -> int:
        return self._read("SELECT coalesce(max(seq), 0) FROM audit")[0][0]

    def last_escalation(self) -> int:
        return self._read("SELECT coalesce(max(seq), 0) FROM escalations")[0][0]

    def assignments(self) -> list[tuple[int, str]]:
        states = [s.value for s in LOADED_STATES]
        return self._read(
            f"SELECT seq, worker_id FROM events WHERE worker_id IS NOT NULL AND state IN "
            f"({','.join('?' * len(states))}) ORDER BY seq",
            states,
        )

    def open_categories(self) -> set[str]:
        rows = self._read(f"SELECT DISTINCT category_code FROM events WHERE state IN ({','.join('?' * len(_OPEN))})", _OPEN)
        return {code for (code,) in rows}

    def open_primaries(self) -> list[tuple[int, str, str, float, float, int]]:
        open_states = [s for s in _OPEN if s != State.DUPLICATE.value]
        return self._read(
            "SELECT seq, event_id, category_code, wgs_lng, wgs_lat, occurred_at FROM events "
            f"WHERE state IN ({','.join('?' * len(open_states))}) AND wgs_lng IS NOT NULL ORDER BY seq",
            open_states,
        )

    def due(self, now_us: int, *, after: tuple[int, int] = (0, 0), limit: int = MAX_PAGE) -> list[Event]:
        rows = self._read(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE deadline IS NOT NULL AND deadline < ? AND escalation < 2 "
            "AND (deadline > ? OR (deadline = ? AND seq > ?)) ORDER BY deadline, seq LIMIT ?",
            (now_us, after[0], after[0], after[1], limit),
        )
        return [_event(r) for r in rows]

    def in_states(self, states: Sequence[State], *, worker_id: str | None = None, unassigned: bool = False,
                  after: int = 0, limit: int = MAX_PAGE) -> list[Event]:
        if list(states) == [State.REGISTERED] and unassigned:
            clauses, params = ["state = 'registered'", "worker_id IS NULL", "seq > ?"], [after]
        else:
            clauses = [f"state IN ({','.join('?' * len(states))})", "seq > ?"]
            params = [s.value for s in states] + [after]
            if worker_id is not None:
                clauses.append("worker_id = ?")
                params.append(worker_id)
            if unassigned:
                clauses.append("worker_id IS NULL")
        rows = self._read(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ?",
            [*params, limit],
        )
        return [_event(r) for r in rows]


def _in_area(areas: Sequence[str], prefix: str = "") -> tuple[str, list[str]]:
    marks = ",".join("?" * len(areas))
    clause = " OR ".join(f"{prefix}{c} IN ({marks})" for c in CODE_COLUMNS)
    return f"({clause})", list(areas) * 4


def _event(row: tuple) -> Event:
    """An :class:`Event` from a row of :data:`READ_COLUMNS`."""
    c = dict(zip(READ_COLUMNS, row))
    wgs_lng, stage_started, deadline = c["wgs_lng"], c["stage_started"], c["deadline"]
    return Event(
        event_id=c["event_id"], seq=c["seq"], category_code=c["category_code"], occurred_at=from_us(c["occurred_at"]),
        received_at=from_us(c["received_at"]), source=c["source"], reporter=c["reporter"],
        description=c["description"], attachments=tuple(json.loads(c["attachments"])), lng=c["lng"], lat=c["lat"],
        crs=c["crs"], building_code=c["building_code"],
        position=None if wgs_lng is None else (wgs_lng, c["wgs_lat"]), grid_code=c["grid_code"],
        community_code=c["community_code"], street_code=c["street_code"], district_code=c["district_code"],
        locate_status=c["locate_status"], layer_version=c["layer_version"], state=State(c["state"]),
        worker_id=c["worker_id"], duplicate_of=c["duplicate_of"],
        stage_started=None if stage_started is None else from_us(stage_started),
        deadline=None if deadline is None else from_us(deadline), escalation=c["escalation"],
        updated_at=from_us(c["updated_at"]),
    )
