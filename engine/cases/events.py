"""Events: what a report holds, what the service keeps of it, and the store that keeps it durably.

A client reports an event (:class:`EventReport`) under an id of its own choosing, which is the
idempotency key: sending the same id with the same content again returns the original receipt and
creates nothing; another content under a known id is a :class:`Conflict`. What the service keeps
(:class:`Event`) adds where the event was placed (grid and its parents, the layer version), its
lifecycle state, worker, stage deadline and escalation, and its audit trail (:class:`AuditEntry`).

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
from datetime import datetime
from typing import Iterator, NamedTuple, Sequence

from citygrid.engine.layers.coordinates import CRS_CODES, CRS_NAMES
from citygrid.engine.database import connect, database_path, open_database, transaction
from citygrid.engine.errors import InvalidInput, NotFound
from citygrid.engine.cases.lifecycle import LOADED_STATES, OPEN_STATES, State
from citygrid.engine.dispatch.workers import MIGRATIONS as WORKER_MIGRATIONS
from citygrid.engine.dispatch.workers import WorkerStore
from citygrid.engine.dispatch.worktime import from_us, to_us

STORE = "events"
MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 4000
MAX_ATTACHMENTS = 32
#: Largest page of :meth:`EventStore.list_events` and of a feed read.
MAX_PAGE = 1000
#: SQLite page cache of the store's connection (KiB): the indexes of a year of events stay in memory.
CACHE_KIB = 128 * 1024
#: The intake channels a report's ``source`` names by default (``[intake] sources``), with their
#: names: the demo district's five (:mod:`citygrid.engine.demo.rhythms` draws its reports from them).
CHANNELS = {
    "inspector_terminal": "网格员巡查终端",
    "hotline_12345": "12345政务服务热线",
    "video_analytics": "视频智能分析",
    "citizen_app": "市民随手拍（i深圳）",
    "iot_sensor": "物联感知设备",
}


# ---------------------------------------------------------------------- the model


class EventReport(NamedTuple):
    """One report as a client sends it. ``event_id`` is the client's idempotency key; the place is
    ``lng``/``lat`` in ``crs`` or a ``building_code`` (or both: the coordinates win). A named tuple:
    the intake makes one per report it receives, and this is the cheapest immutable record."""

    event_id: str
    category_code: str
    occurred_at: datetime
    source: str
    lng: float | None = None
    lat: float | None = None
    crs: str = "wgs84"
    building_code: str | None = None
    reporter: str = ""
    description: str = ""
    attachments: tuple[str, ...] = ()

    def check(self) -> None:
        """Raise :class:`InvalidInput` naming what is wrong with this report."""
        event_id = self.event_id
        if type(event_id) is not str or not 0 < len(event_id) <= MAX_ID_LENGTH or not event_id.isprintable():
            raise InvalidInput(f"event id {event_id!r}: give 1-{MAX_ID_LENGTH} printable characters")
        if type(self.category_code) is not str or not self.category_code:
            self._bad("a category code is required")
        if type(self.source) is not str or not 0 < len(self.source) <= 64:
            self._bad("a source (hotline, inspector, video, …) of 1-64 characters is required")
        if not isinstance(self.occurred_at, datetime) or self.occurred_at.tzinfo is None:
            self._bad("occurred_at must be a time with a time zone")
        if type(self.crs) is not str or self.crs.strip().lower() not in CRS_CODES:
            self._bad(f"coordinate system {self.crs!r} is not one of {', '.join(CRS_NAMES)}")
        lng, lat = self.lng, self.lat
        if lng is not None or lat is not None:
            if lng is None or lat is None:
                self._bad("give both lng and lat, or neither")
            if not (-180.0 <= lng <= 180.0 and -90.0 <= lat <= 90.0):  # NaN fails too
                self._bad(f"coordinates ({lng}, {lat}) are not a lng/lat position")
        elif not self.building_code:
            self._bad("give a location (lng, lat) or a building code")
        if len(self.reporter) > MAX_TEXT_LENGTH or len(self.description) > MAX_TEXT_LENGTH:
            self._bad(f"reporter and description are limited to {MAX_TEXT_LENGTH} characters")
        if len(self.attachments) > MAX_ATTACHMENTS:
            self._bad(f"more than {MAX_ATTACHMENTS} attachments")

    def _bad(self, reason: str):
        raise InvalidInput(f"event {self.event_id}: {reason}")

    def content(self, occurred_us: int) -> tuple:
        """What the idempotency check compares: the report's fields as the store keeps them
        (exact: floats and strings compare as stored), in :data:`CONTENT_COLUMNS` order."""
        return (self.category_code, occurred_us, self.source, self.reporter, self.description,
                attachments_json(self.attachments), self.lng, self.lat, self.crs, self.building_code)


#: The columns of ``events`` that hold a report's content (see :meth:`EventReport.content`).
CONTENT_COLUMNS = ("category_code", "occurred_at", "source", "reporter", "description", "attachments", "lng",
                   "lat", "crs", "building_code")


def attachments_json(values: Sequence[str]) -> str:
    """Attachment references as the store keeps them (a JSON list)."""
    return json.dumps(list(values), ensure_ascii=False) if values else "[]"


class Receipt(NamedTuple):
    """The answer to one submitted report. ``created`` is False for a replay (the original answer
    is returned); ``error`` is set instead when this report was refused (the rest of its batch
    is not affected)."""

    event_id: str
    created: bool = False
    state: State | None = None
    grid_code: str | None = None
    locate_status: int | None = None
    worker_id: str | None = None
    duplicate_of: str | None = None
    received_at: datetime | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Event:
    """An event as the service keeps it."""

    event_id: str
    seq: int
    category_code: str
    occurred_at: datetime
    received_at: datetime
    source: str
    reporter: str
    description: str
    attachments: tuple[str, ...]
    lng: float | None
    lat: float | None
    crs: str
    building_code: str | None
    #: Where the event was placed, in WGS84 (None when it could not be placed).
    position: tuple[float, float] | None
    grid_code: str | None
    community_code: str | None
    street_code: str | None
    district_code: str | None
    locate_status: int
    layer_version: str | None
    state: State
    worker_id: str | None
    duplicate_of: str | None
    stage_started: datetime | None
    deadline: datetime | None
    escalation: int
    updated_at: datetime

    @property
    def chain(self) -> tuple[str | None, ...]:
        """Grid, community, street and district codes (what jurisdiction is checked against)."""
        return (self.grid_code, self.community_code, self.street_code, self.district_code)


@dataclass(frozen=True)
class AuditEntry:
    """One change of an event: who, when, from which state to which, and why."""

    seq: int
    event_id: str
    at: datetime
    principal: str
    role: str
    action: str
    from_state: State | None
    to_state: State
    worker_id: str | None
    note: str


@dataclass(frozen=True)
class DispatchNotice:
    """An entry of a worker's dispatch feed; ``cursor`` resumes the feed after it."""

    cursor: int
    event_id: str
    worker_id: str
    kind: str  #: "dispatched" (new for this worker, or sent back for rework) or "revoked"
    at: datetime
    action: str
    category_code: str
    grid_code: str | None
    position: tuple[float, float] | None
    deadline: datetime | None
    description: str


@dataclass(frozen=True)
class OverdueNotice:
    """An escalation (督办) of an overdue event; ``cursor`` resumes the overdue feed after it."""

    cursor: int
    event_id: str
    level: int  #: 1 community, 2 street
    unit_code: str | None  #: the community or street the escalation goes to
    at: datetime
    state: State
    stage: str
    deadline: datetime
    overdue_minutes: float
    grid_code: str | None
    worker_id: str | None


@dataclass(frozen=True)
class EventFilter:
    """What :meth:`EventStore.list_events` returns; every field set narrows it."""

    states: tuple[State, ...] = ()
    category_codes: tuple[str, ...] = ()
    #: Grid, community, street or district codes (any level matches).
    areas: tuple[str, ...] = ()
    worker_id: str | None = None
    source: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    #: Only events whose deadline has passed at this time.
    overdue_at: datetime | None = None
    duplicate_of: str | None = None


@dataclass(frozen=True)
class Page:
    events: list[Event]
    #: Pass as ``page_token`` to get the next page; empty on the last page.
    next_page_token: str = ""


class NewEvent(NamedTuple):
    """A row to insert, in the column order of the ``events`` table (times in UTC µs)."""

    seq: int
    event_id: str
    category_code: str
    occurred_us: int
    received_us: int
    source: str
    reporter: str
    description: str
    attachments: str  #: JSON list
    lng: float | None
    lat: float | None
    crs: str
    building_code: str | None
    wgs_lng: float | None
    wgs_lat: float | None
    grid_code: str | None
    community_code: str | None
    street_code: str | None
    district_code: str | None
    locate_status: int
    layer_version: str | None
    state: State
    worker_id: str | None
    duplicate_of: str | None
    stage_started_us: int | None
    deadline_us: int | None
    escalation: int
    updated_us: int
    intake_state: State
    intake_worker: str | None


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


@dataclass
class EscalationRow:
    event_seq: int
    at_us: int
    level: int
    unit_code: str | None
    stage: str
    deadline_us: int
    overdue_minutes: float


def read_reports(path, *, limit: int | None = None) -> list[EventReport]:
    """Reports from a Parquet table with the columns of the demo's ``events.parquet`` (``event_id``,
    ``category_code``, ``occurred_at``, ``source``, ``lng``, ``lat``, optional ``crs``,
    ``building_code``, ``reporter``, ``description``), in file order."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read events from {path}: {exc}") from None
    if limit is not None:
        table = table.slice(0, limit)
    columns = set(table.column_names)
    return [
        EventReport(
            event_id=r["event_id"], category_code=r["category_code"], occurred_at=r["occurred_at"],
            source=r["source"], lng=r.get("lng"), lat=r.get("lat"), crs=r.get("crs") or "wgs84",
            building_code=r.get("building_code"), reporter=r.get("reporter") or "",
            description=r.get("description") or "",
        )
        for r in table.select([c for c in _REPORT_COLUMNS if c in columns]).to_pylist()
    ]


_REPORT_COLUMNS = ("event_id", "category_code", "occurred_at", "source", "lng", "lat", "crs", "building_code",
                   "reporter", "description")


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
    def insert_events(self, rows: Sequence[NewEvent], audit: Sequence[AuditRow]) -> None:
        """Insert new events and their audit rows (tuples in the :class:`NewEvent` and
        :class:`AuditRow` layouts are accepted as they are)."""

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
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            digest BLOB NOT NULL,
            category_code TEXT NOT NULL,
            occurred_at INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            source TEXT NOT NULL,
            reporter TEXT NOT NULL,
            description TEXT NOT NULL,
            attachments TEXT NOT NULL,
            lng REAL,
            lat REAL,
            crs TEXT NOT NULL,
            building_code TEXT,
            wgs_lng REAL,
            wgs_lat REAL,
            grid_code TEXT,
            community_code TEXT,
            street_code TEXT,
            district_code TEXT,
            locate_status INTEGER NOT NULL,
            layer_version TEXT,
            state TEXT NOT NULL,
            worker_id TEXT,
            duplicate_of TEXT,
            stage_started INTEGER,
            deadline INTEGER,
            escalation INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            intake_state TEXT NOT NULL,
            intake_worker TEXT
        )""",
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

_EVENT_COLUMNS = (
    "seq, event_id, category_code, occurred_at, received_at, source, reporter, description, attachments, "
    "lng, lat, crs, building_code, wgs_lng, wgs_lat, grid_code, community_code, street_code, district_code, "
    "locate_status, layer_version, state, worker_id, duplicate_of, stage_started, deadline, escalation, updated_at"
)
_PREFIXED_COLUMNS = ", ".join(f"e.{c.strip()}" for c in _EVENT_COLUMNS.split(","))
_INSERT = (
    "INSERT INTO events (seq, event_id, category_code, occurred_at, received_at, source, reporter, "
    "description, attachments, lng, lat, crs, building_code, wgs_lng, wgs_lat, grid_code, community_code, "
    "street_code, district_code, locate_status, layer_version, state, worker_id, duplicate_of, stage_started, "
    "deadline, escalation, updated_at, intake_state, intake_worker) "
    "VALUES (" + ",".join("?" * 30) + ")"
)
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

    def _read(self, sql: str, params: Sequence = ()) -> list[tuple]:
        if self._owner == threading.get_ident():
            return self._conn.execute(sql, params).fetchall()
        with self._reader_lock:
            return self._reader.execute(sql, params).fetchall()

    # ------------------------------------------------------------------ writes

    def next_seq(self) -> int:
        return self._read("SELECT coalesce(max(seq), 0) + 1 FROM events")[0][0]

    def insert_events(self, rows: Sequence[NewEvent], audit: Sequence[AuditRow]) -> None:
        self._conn.executemany(_INSERT, rows)
        self._conn.executemany(_INSERT_AUDIT, audit)

    def update_events(self, changes: Sequence[EventChange], audit: Sequence[AuditRow]) -> None:
        plain = [c for c in changes if c.relocation is None]
        self._conn.executemany(
            "UPDATE events SET state=?, worker_id=?, stage_started=?, deadline=?, escalation=?, "
            "updated_at=?, duplicate_of=? WHERE seq=?",
            [
                (c.state.value, c.worker_id, c.stage_started_us, c.deadline_us, c.escalation, c.updated_us,
                 c.duplicate_of, c.seq)
                for c in plain
            ],
        )
        for c in changes:
            if c.relocation is None:
                continue
            wgs_lng, wgs_lat, lng, lat, crs, building, chain, status, version = c.relocation
            self._conn.execute(
                "UPDATE events SET state=?, worker_id=?, stage_started=?, deadline=?, escalation=?, "
                "updated_at=?, duplicate_of=?, wgs_lng=?, wgs_lat=?, lng=?, lat=?, crs=?, building_code=?, "
                "grid_code=?, community_code=?, street_code=?, district_code=?, locate_status=?, "
                "layer_version=? WHERE seq=?",
                (c.state.value, c.worker_id, c.stage_started_us, c.deadline_us, c.escalation, c.updated_us,
                 c.duplicate_of, wgs_lng, wgs_lat, lng, lat, crs, building, *chain, status, version, c.seq),
            )
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
    clause = " OR ".join(f"{prefix}{c} IN ({marks})" for c in ("grid_code", "community_code", "street_code", "district_code"))
    return f"({clause})", list(areas) * 4


def _event(row: tuple) -> Event:
    (seq, event_id, category, occurred, received, source, reporter, description, attachments, lng, lat, crs,
     building, wgs_lng, wgs_lat, grid, community, street, district, status, version, state, worker, dup,
     stage_started, deadline, escalation, updated) = row
    return Event(
        event_id=event_id, seq=seq, category_code=category, occurred_at=from_us(occurred),
        received_at=from_us(received), source=source, reporter=reporter, description=description,
        attachments=tuple(json.loads(attachments)), lng=lng, lat=lat, crs=crs, building_code=building,
        position=None if wgs_lng is None else (wgs_lng, wgs_lat), grid_code=grid, community_code=community,
        street_code=street, district_code=district, locate_status=status, layer_version=version,
        state=State(state), worker_id=worker, duplicate_of=dup,
        stage_started=None if stage_started is None else from_us(stage_started),
        deadline=None if deadline is None else from_us(deadline), escalation=escalation,
        updated_at=from_us(updated),
    )
