"""The cases' model: what a report holds (:class:`EventReport`), what the service keeps of it
(:class:`Event`), and what it answers (:class:`Receipt`, :class:`AuditEntry`, the feeds' notices, a
filtered :class:`Page`).

A client reports an event under an id of its own choosing, which is the idempotency key: sending the
same id with the same content again returns the original receipt and creates nothing; another content
under a known id is a :class:`Conflict`. What the service keeps adds where the event was placed (grid
and its parents, the layer version), its lifecycle state, worker, stage deadline and escalation, and
its audit trail. The store that keeps them is :mod:`citygrid.engine.cases.store`.

Times are aware datetimes here; the store keeps UTC microseconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Sequence

from citygrid.engine.layers.coordinates import CRS_CODES, CRS_NAMES, lnglat_valid
from citygrid.engine.errors import InvalidInput
from citygrid.engine.files import read_table
from citygrid.engine.cases.lifecycle import State

MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 4000
MAX_ATTACHMENTS = 32
#: Largest page of :meth:`EventStore.list_events` and of a feed read.
MAX_PAGE = 1000
#: The intake channels a report's ``source`` names by default (``[intake] sources``), with their
#: names: the demo district's five (:mod:`citygrid.engine.demo.rhythms` draws its reports from them).
CHANNELS = {
    "inspector_terminal": "网格员巡查终端",
    "hotline_12345": "12345政务服务热线",
    "video_analytics": "视频智能分析",
    "citizen_app": "市民随手拍（i深圳）",
    "iot_sensor": "物联感知设备",
    "early_warning": "异动预警",  # an alert turned into an event (citygrid.engine.alerts)
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
            if not lnglat_valid(lng, lat):  # NaN fails too
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


def read_reports(path, *, limit: int | None = None) -> list[EventReport]:
    """Reports from a Parquet table with the columns of the demo's ``events.parquet`` (``event_id``,
    ``category_code``, ``occurred_at``, ``source``, ``lng``, ``lat``, optional ``crs``,
    ``building_code``, ``reporter``, ``description``), in file order."""
    table = read_table(path, what="events")
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
