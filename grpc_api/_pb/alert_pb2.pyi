import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Alert(_message.Message):
    __slots__ = ("alert_id", "kind", "method", "category_code", "level", "unit_code", "lng", "lat", "radius_m", "grids", "grid_code", "community_code", "street_code", "district_code", "first_day", "last_day", "observed", "expected", "score", "peak_score", "p", "state", "raised_at", "updated_at", "updates", "event_id", "reason")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_CODE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    UNIT_CODE_FIELD_NUMBER: _ClassVar[int]
    LNG_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    RADIUS_M_FIELD_NUMBER: _ClassVar[int]
    GRIDS_FIELD_NUMBER: _ClassVar[int]
    GRID_CODE_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_CODE_FIELD_NUMBER: _ClassVar[int]
    STREET_CODE_FIELD_NUMBER: _ClassVar[int]
    DISTRICT_CODE_FIELD_NUMBER: _ClassVar[int]
    FIRST_DAY_FIELD_NUMBER: _ClassVar[int]
    LAST_DAY_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PEAK_SCORE_FIELD_NUMBER: _ClassVar[int]
    P_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RAISED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    alert_id: int
    kind: str
    method: str
    category_code: str
    level: str
    unit_code: str
    lng: float
    lat: float
    radius_m: float
    grids: _containers.RepeatedScalarFieldContainer[str]
    grid_code: str
    community_code: str
    street_code: str
    district_code: str
    first_day: str
    last_day: str
    observed: float
    expected: float
    score: float
    peak_score: float
    p: float
    state: str
    raised_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    updates: int
    event_id: str
    reason: str
    def __init__(self, alert_id: _Optional[int] = ..., kind: _Optional[str] = ..., method: _Optional[str] = ..., category_code: _Optional[str] = ..., level: _Optional[str] = ..., unit_code: _Optional[str] = ..., lng: _Optional[float] = ..., lat: _Optional[float] = ..., radius_m: _Optional[float] = ..., grids: _Optional[_Iterable[str]] = ..., grid_code: _Optional[str] = ..., community_code: _Optional[str] = ..., street_code: _Optional[str] = ..., district_code: _Optional[str] = ..., first_day: _Optional[str] = ..., last_day: _Optional[str] = ..., observed: _Optional[float] = ..., expected: _Optional[float] = ..., score: _Optional[float] = ..., peak_score: _Optional[float] = ..., p: _Optional[float] = ..., state: _Optional[str] = ..., raised_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updates: _Optional[int] = ..., event_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ("states", "kinds", "category_codes", "areas", "since", "until", "page_size", "page_token")
    STATES_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_CODES_FIELD_NUMBER: _ClassVar[int]
    AREAS_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[str]
    kinds: _containers.RepeatedScalarFieldContainer[str]
    category_codes: _containers.RepeatedScalarFieldContainer[str]
    areas: _containers.RepeatedScalarFieldContainer[str]
    since: str
    until: str
    page_size: int
    page_token: str
    def __init__(self, states: _Optional[_Iterable[str]] = ..., kinds: _Optional[_Iterable[str]] = ..., category_codes: _Optional[_Iterable[str]] = ..., areas: _Optional[_Iterable[str]] = ..., since: _Optional[str] = ..., until: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAlertsResponse(_message.Message):
    __slots__ = ("alerts", "next_page_token")
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    next_page_token: str
    def __init__(self, alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetAlertRequest(_message.Message):
    __slots__ = ("alert_id", "include_audit")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_AUDIT_FIELD_NUMBER: _ClassVar[int]
    alert_id: int
    include_audit: bool
    def __init__(self, alert_id: _Optional[int] = ..., include_audit: _Optional[bool] = ...) -> None: ...

class AlertChange(_message.Message):
    __slots__ = ("cursor", "at", "principal", "role", "action", "from_state", "to_state", "note", "alert")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    cursor: int
    at: _timestamp_pb2.Timestamp
    principal: str
    role: str
    action: str
    from_state: str
    to_state: str
    note: str
    alert: Alert
    def __init__(self, cursor: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., principal: _Optional[str] = ..., role: _Optional[str] = ..., action: _Optional[str] = ..., from_state: _Optional[str] = ..., to_state: _Optional[str] = ..., note: _Optional[str] = ..., alert: _Optional[_Union[Alert, _Mapping]] = ...) -> None: ...

class GetAlertResponse(_message.Message):
    __slots__ = ("alert", "audit")
    ALERT_FIELD_NUMBER: _ClassVar[int]
    AUDIT_FIELD_NUMBER: _ClassVar[int]
    alert: Alert
    audit: _containers.RepeatedCompositeFieldContainer[AlertChange]
    def __init__(self, alert: _Optional[_Union[Alert, _Mapping]] = ..., audit: _Optional[_Iterable[_Union[AlertChange, _Mapping]]] = ...) -> None: ...

class AcknowledgeAlertRequest(_message.Message):
    __slots__ = ("alert_id", "note")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    alert_id: int
    note: str
    def __init__(self, alert_id: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...

class DismissAlertRequest(_message.Message):
    __slots__ = ("alert_id", "reason")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    alert_id: int
    reason: str
    def __init__(self, alert_id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class AlertToEventRequest(_message.Message):
    __slots__ = ("alert_id", "note")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    alert_id: int
    note: str
    def __init__(self, alert_id: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...

class AlertToEventResponse(_message.Message):
    __slots__ = ("alert", "event_id")
    ALERT_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    alert: Alert
    event_id: str
    def __init__(self, alert: _Optional[_Union[Alert, _Mapping]] = ..., event_id: _Optional[str] = ...) -> None: ...

class RunDetectionRequest(_message.Message):
    __slots__ = ("since",)
    SINCE_FIELD_NUMBER: _ClassVar[int]
    since: str
    def __init__(self, since: _Optional[str] = ...) -> None: ...

class RunDetectionResponse(_message.Message):
    __slots__ = ("run_id", "first_day", "last_day", "series", "events", "raised", "updated", "seconds")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_DAY_FIELD_NUMBER: _ClassVar[int]
    LAST_DAY_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    RAISED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    first_day: str
    last_day: str
    series: int
    events: int
    raised: _containers.RepeatedScalarFieldContainer[int]
    updated: _containers.RepeatedScalarFieldContainer[int]
    seconds: float
    def __init__(self, run_id: _Optional[int] = ..., first_day: _Optional[str] = ..., last_day: _Optional[str] = ..., series: _Optional[int] = ..., events: _Optional[int] = ..., raised: _Optional[_Iterable[int]] = ..., updated: _Optional[_Iterable[int]] = ..., seconds: _Optional[float] = ...) -> None: ...

class WatchAlertsRequest(_message.Message):
    __slots__ = ("after",)
    AFTER_FIELD_NUMBER: _ClassVar[int]
    after: int
    def __init__(self, after: _Optional[int] = ...) -> None: ...
