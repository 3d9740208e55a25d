import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from citygrid.grpc_api._pb import grid_pb2 as _grid_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventReport(_message.Message):
    __slots__ = ("event_id", "category_code", "occurred_at", "source", "lng", "lat", "crs", "building_code", "reporter", "description", "attachments")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_CODE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LNG_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    CRS_FIELD_NUMBER: _ClassVar[int]
    BUILDING_CODE_FIELD_NUMBER: _ClassVar[int]
    REPORTER_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    category_code: str
    occurred_at: _timestamp_pb2.Timestamp
    source: str
    lng: float
    lat: float
    crs: _grid_pb2.CoordinateSystem
    building_code: str
    reporter: str
    description: str
    attachments: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, event_id: _Optional[str] = ..., category_code: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ..., lng: _Optional[float] = ..., lat: _Optional[float] = ..., crs: _Optional[_Union[_grid_pb2.CoordinateSystem, str]] = ..., building_code: _Optional[str] = ..., reporter: _Optional[str] = ..., description: _Optional[str] = ..., attachments: _Optional[_Iterable[str]] = ...) -> None: ...

class ReportError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("event_id", "created", "state", "grid_code", "locate_status", "worker_id", "duplicate_of", "received_at", "error")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    GRID_CODE_FIELD_NUMBER: _ClassVar[int]
    LOCATE_STATUS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_OF_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    created: bool
    state: str
    grid_code: str
    locate_status: _grid_pb2.PointStatus
    worker_id: str
    duplicate_of: str
    received_at: _timestamp_pb2.Timestamp
    error: ReportError
    def __init__(self, event_id: _Optional[str] = ..., created: _Optional[bool] = ..., state: _Optional[str] = ..., grid_code: _Optional[str] = ..., locate_status: _Optional[_Union[_grid_pb2.PointStatus, str]] = ..., worker_id: _Optional[str] = ..., duplicate_of: _Optional[str] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[_Union[ReportError, _Mapping]] = ...) -> None: ...

class Position(_message.Message):
    __slots__ = ("lng", "lat")
    LNG_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    lng: float
    lat: float
    def __init__(self, lng: _Optional[float] = ..., lat: _Optional[float] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("event_id", "seq", "category_code", "occurred_at", "received_at", "source", "reporter", "description", "attachments", "lng", "lat", "crs", "building_code", "position", "grid_code", "community_code", "street_code", "district_code", "locate_status", "layer_version", "state", "state_label", "worker_id", "duplicate_of", "stage_started", "deadline", "escalation", "updated_at")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_CODE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REPORTER_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    LNG_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    CRS_FIELD_NUMBER: _ClassVar[int]
    BUILDING_CODE_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    GRID_CODE_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_CODE_FIELD_NUMBER: _ClassVar[int]
    STREET_CODE_FIELD_NUMBER: _ClassVar[int]
    DISTRICT_CODE_FIELD_NUMBER: _ClassVar[int]
    LOCATE_STATUS_FIELD_NUMBER: _ClassVar[int]
    LAYER_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_LABEL_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_OF_FIELD_NUMBER: _ClassVar[int]
    STAGE_STARTED_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    seq: int
    category_code: str
    occurred_at: _timestamp_pb2.Timestamp
    received_at: _timestamp_pb2.Timestamp
    source: str
    reporter: str
    description: str
    attachments: _containers.RepeatedScalarFieldContainer[str]
    lng: float
    lat: float
    crs: str
    building_code: str
    position: Position
    grid_code: str
    community_code: str
    street_code: str
    district_code: str
    locate_status: _grid_pb2.PointStatus
    layer_version: str
    state: str
    state_label: str
    worker_id: str
    duplicate_of: str
    stage_started: _timestamp_pb2.Timestamp
    deadline: _timestamp_pb2.Timestamp
    escalation: int
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., seq: _Optional[int] = ..., category_code: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ..., reporter: _Optional[str] = ..., description: _Optional[str] = ..., attachments: _Optional[_Iterable[str]] = ..., lng: _Optional[float] = ..., lat: _Optional[float] = ..., crs: _Optional[str] = ..., building_code: _Optional[str] = ..., position: _Optional[_Union[Position, _Mapping]] = ..., grid_code: _Optional[str] = ..., community_code: _Optional[str] = ..., street_code: _Optional[str] = ..., district_code: _Optional[str] = ..., locate_status: _Optional[_Union[_grid_pb2.PointStatus, str]] = ..., layer_version: _Optional[str] = ..., state: _Optional[str] = ..., state_label: _Optional[str] = ..., worker_id: _Optional[str] = ..., duplicate_of: _Optional[str] = ..., stage_started: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., escalation: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("seq", "at", "principal", "role", "action", "from_state", "to_state", "worker_id", "note")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    at: _timestamp_pb2.Timestamp
    principal: str
    role: str
    action: str
    from_state: str
    to_state: str
    worker_id: str
    note: str
    def __init__(self, seq: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., principal: _Optional[str] = ..., role: _Optional[str] = ..., action: _Optional[str] = ..., from_state: _Optional[str] = ..., to_state: _Optional[str] = ..., worker_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class SubmitEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[EventReport]
    def __init__(self, events: _Optional[_Iterable[_Union[EventReport, _Mapping]]] = ...) -> None: ...

class SubmitEventsResponse(_message.Message):
    __slots__ = ("receipts",)
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    receipts: _containers.RepeatedCompositeFieldContainer[Receipt]
    def __init__(self, receipts: _Optional[_Iterable[_Union[Receipt, _Mapping]]] = ...) -> None: ...

class GetEventRequest(_message.Message):
    __slots__ = ("event_id", "include_audit")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_AUDIT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    include_audit: bool
    def __init__(self, event_id: _Optional[str] = ..., include_audit: _Optional[bool] = ...) -> None: ...

class GetEventResponse(_message.Message):
    __slots__ = ("event", "audit")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    AUDIT_FIELD_NUMBER: _ClassVar[int]
    event: Event
    audit: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., audit: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ...) -> None: ...

class UpdateStatusRequest(_message.Message):
    __slots__ = ("event_id", "action", "note", "worker_id", "minutes")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    MINUTES_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    action: str
    note: str
    worker_id: str
    minutes: float
    def __init__(self, event_id: _Optional[str] = ..., action: _Optional[str] = ..., note: _Optional[str] = ..., worker_id: _Optional[str] = ..., minutes: _Optional[float] = ...) -> None: ...

class RelocateEventRequest(_message.Message):
    __slots__ = ("event_id", "lng", "lat", "crs", "building_code", "note")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    LNG_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    CRS_FIELD_NUMBER: _ClassVar[int]
    BUILDING_CODE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    lng: float
    lat: float
    crs: _grid_pb2.CoordinateSystem
    building_code: str
    note: str
    def __init__(self, event_id: _Optional[str] = ..., lng: _Optional[float] = ..., lat: _Optional[float] = ..., crs: _Optional[_Union[_grid_pb2.CoordinateSystem, str]] = ..., building_code: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("states", "category_codes", "areas", "worker_id", "source", "occurred_from", "occurred_to", "overdue_at", "duplicate_of", "page_size", "page_token")
    STATES_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_CODES_FIELD_NUMBER: _ClassVar[int]
    AREAS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_FROM_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_TO_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_AT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_OF_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[str]
    category_codes: _containers.RepeatedScalarFieldContainer[str]
    areas: _containers.RepeatedScalarFieldContainer[str]
    worker_id: str
    source: str
    occurred_from: _timestamp_pb2.Timestamp
    occurred_to: _timestamp_pb2.Timestamp
    overdue_at: _timestamp_pb2.Timestamp
    duplicate_of: str
    page_size: int
    page_token: str
    def __init__(self, states: _Optional[_Iterable[str]] = ..., category_codes: _Optional[_Iterable[str]] = ..., areas: _Optional[_Iterable[str]] = ..., worker_id: _Optional[str] = ..., source: _Optional[str] = ..., occurred_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., occurred_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., overdue_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duplicate_of: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchDispatchesRequest(_message.Message):
    __slots__ = ("worker_id", "after")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    after: int
    def __init__(self, worker_id: _Optional[str] = ..., after: _Optional[int] = ...) -> None: ...

class DispatchNotice(_message.Message):
    __slots__ = ("cursor", "event_id", "worker_id", "kind", "at", "action", "category_code", "grid_code", "position", "deadline", "description")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_CODE_FIELD_NUMBER: _ClassVar[int]
    GRID_CODE_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    cursor: int
    event_id: str
    worker_id: str
    kind: str
    at: _timestamp_pb2.Timestamp
    action: str
    category_code: str
    grid_code: str
    position: Position
    deadline: _timestamp_pb2.Timestamp
    description: str
    def __init__(self, cursor: _Optional[int] = ..., event_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., kind: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., action: _Optional[str] = ..., category_code: _Optional[str] = ..., grid_code: _Optional[str] = ..., position: _Optional[_Union[Position, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class WatchOverdueRequest(_message.Message):
    __slots__ = ("after",)
    AFTER_FIELD_NUMBER: _ClassVar[int]
    after: int
    def __init__(self, after: _Optional[int] = ...) -> None: ...

class OverdueNotice(_message.Message):
    __slots__ = ("cursor", "event_id", "level", "unit_code", "at", "state", "stage", "deadline", "overdue_minutes", "grid_code", "worker_id")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    UNIT_CODE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_MINUTES_FIELD_NUMBER: _ClassVar[int]
    GRID_CODE_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    cursor: int
    event_id: str
    level: int
    unit_code: str
    at: _timestamp_pb2.Timestamp
    state: str
    stage: str
    deadline: _timestamp_pb2.Timestamp
    overdue_minutes: float
    grid_code: str
    worker_id: str
    def __init__(self, cursor: _Optional[int] = ..., event_id: _Optional[str] = ..., level: _Optional[int] = ..., unit_code: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[str] = ..., stage: _Optional[str] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., overdue_minutes: _Optional[float] = ..., grid_code: _Optional[str] = ..., worker_id: _Optional[str] = ...) -> None: ...

class RebalanceRequest(_message.Message):
    __slots__ = ("max_hops", "dry_run", "respect_shifts")
    MAX_HOPS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    RESPECT_SHIFTS_FIELD_NUMBER: _ClassVar[int]
    max_hops: int
    dry_run: bool
    respect_shifts: bool
    def __init__(self, max_hops: _Optional[int] = ..., dry_run: _Optional[bool] = ..., respect_shifts: _Optional[bool] = ...) -> None: ...

class LoadSummary(_message.Message):
    __slots__ = ("max_load", "mean_load", "assigned", "outside_share")
    MAX_LOAD_FIELD_NUMBER: _ClassVar[int]
    MEAN_LOAD_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_FIELD_NUMBER: _ClassVar[int]
    OUTSIDE_SHARE_FIELD_NUMBER: _ClassVar[int]
    max_load: int
    mean_load: float
    assigned: int
    outside_share: float
    def __init__(self, max_load: _Optional[int] = ..., mean_load: _Optional[float] = ..., assigned: _Optional[int] = ..., outside_share: _Optional[float] = ...) -> None: ...

class Move(_message.Message):
    __slots__ = ("event_id", "from_worker_id", "to_worker_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TO_WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    from_worker_id: str
    to_worker_id: str
    def __init__(self, event_id: _Optional[str] = ..., from_worker_id: _Optional[str] = ..., to_worker_id: _Optional[str] = ...) -> None: ...

class RebalanceResponse(_message.Message):
    __slots__ = ("events", "assigned", "moved", "before", "after", "moves", "applied")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_FIELD_NUMBER: _ClassVar[int]
    MOVED_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    MOVES_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    events: int
    assigned: int
    moved: int
    before: LoadSummary
    after: LoadSummary
    moves: _containers.RepeatedCompositeFieldContainer[Move]
    applied: bool
    def __init__(self, events: _Optional[int] = ..., assigned: _Optional[int] = ..., moved: _Optional[int] = ..., before: _Optional[_Union[LoadSummary, _Mapping]] = ..., after: _Optional[_Union[LoadSummary, _Mapping]] = ..., moves: _Optional[_Iterable[_Union[Move, _Mapping]]] = ..., applied: _Optional[bool] = ...) -> None: ...

class Worker(_message.Message):
    __slots__ = ("worker_id", "grid_code", "name", "department", "skills", "shift", "capacity", "on_duty", "active")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    GRID_CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    SHIFT_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    ON_DUTY_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    grid_code: str
    name: str
    department: str
    skills: _containers.RepeatedScalarFieldContainer[str]
    shift: str
    capacity: int
    on_duty: bool
    active: bool
    def __init__(self, worker_id: _Optional[str] = ..., grid_code: _Optional[str] = ..., name: _Optional[str] = ..., department: _Optional[str] = ..., skills: _Optional[_Iterable[str]] = ..., shift: _Optional[str] = ..., capacity: _Optional[int] = ..., on_duty: _Optional[bool] = ..., active: _Optional[bool] = ...) -> None: ...

class PutWorkersRequest(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[Worker]
    def __init__(self, workers: _Optional[_Iterable[_Union[Worker, _Mapping]]] = ...) -> None: ...

class PutWorkersResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class SetDutyRequest(_message.Message):
    __slots__ = ("worker_id", "on_duty")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ON_DUTY_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    on_duty: bool
    def __init__(self, worker_id: _Optional[str] = ..., on_duty: _Optional[bool] = ...) -> None: ...

class GetWorkerRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "grid_codes")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    GRID_CODES_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    grid_codes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., grid_codes: _Optional[_Iterable[str]] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers", "next_page_token")
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[Worker]
    next_page_token: str
    def __init__(self, workers: _Optional[_Iterable[_Union[Worker, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
