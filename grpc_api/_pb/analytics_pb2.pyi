import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AnswerFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANSWER_FORMAT_AUTO: _ClassVar[AnswerFormat]
    ANSWER_FORMAT_COLUMNS: _ClassVar[AnswerFormat]
    ANSWER_FORMAT_ARROW: _ClassVar[AnswerFormat]
ANSWER_FORMAT_AUTO: AnswerFormat
ANSWER_FORMAT_COLUMNS: AnswerFormat
ANSWER_FORMAT_ARROW: AnswerFormat

class Window(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("dimension", "codes")
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    CODES_FIELD_NUMBER: _ClassVar[int]
    dimension: str
    codes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dimension: _Optional[str] = ..., codes: _Optional[_Iterable[str]] = ...) -> None: ...

class StringValues(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class Int64Values(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, values: _Optional[_Iterable[int]] = ...) -> None: ...

class DoubleValues(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class Column(_message.Message):
    __slots__ = ("name", "strings", "ints", "doubles")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    INTS_FIELD_NUMBER: _ClassVar[int]
    DOUBLES_FIELD_NUMBER: _ClassVar[int]
    name: str
    strings: StringValues
    ints: Int64Values
    doubles: DoubleValues
    def __init__(self, name: _Optional[str] = ..., strings: _Optional[_Union[StringValues, _Mapping]] = ..., ints: _Optional[_Union[Int64Values, _Mapping]] = ..., doubles: _Optional[_Union[DoubleValues, _Mapping]] = ...) -> None: ...

class Table(_message.Message):
    __slots__ = ("rows", "columns", "arrow_ipc")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    rows: int
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    arrow_ipc: bytes
    def __init__(self, rows: _Optional[int] = ..., columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., arrow_ipc: _Optional[bytes] = ...) -> None: ...

class AggregateRequest(_message.Message):
    __slots__ = ("window", "dimensions", "measures", "filters", "bucket", "format")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    MEASURES_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    window: Window
    dimensions: _containers.RepeatedScalarFieldContainer[str]
    measures: _containers.RepeatedScalarFieldContainer[str]
    filters: _containers.RepeatedCompositeFieldContainer[Filter]
    bucket: str
    format: AnswerFormat
    def __init__(self, window: _Optional[_Union[Window, _Mapping]] = ..., dimensions: _Optional[_Iterable[str]] = ..., measures: _Optional[_Iterable[str]] = ..., filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ..., bucket: _Optional[str] = ..., format: _Optional[_Union[AnswerFormat, str]] = ...) -> None: ...

class TrendRequest(_message.Message):
    __slots__ = ("window", "measure", "filters")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    MEASURE_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    window: Window
    measure: str
    filters: _containers.RepeatedCompositeFieldContainer[Filter]
    def __init__(self, window: _Optional[_Union[Window, _Mapping]] = ..., measure: _Optional[str] = ..., filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ...) -> None: ...

class TrendResponse(_message.Message):
    __slots__ = ("measure", "current", "previous", "year_before", "vs_previous", "vs_year_before")
    MEASURE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    YEAR_BEFORE_FIELD_NUMBER: _ClassVar[int]
    VS_PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    VS_YEAR_BEFORE_FIELD_NUMBER: _ClassVar[int]
    measure: str
    current: int
    previous: int
    year_before: int
    vs_previous: float
    vs_year_before: float
    def __init__(self, measure: _Optional[str] = ..., current: _Optional[int] = ..., previous: _Optional[int] = ..., year_before: _Optional[int] = ..., vs_previous: _Optional[float] = ..., vs_year_before: _Optional[float] = ...) -> None: ...

class TopAreasRequest(_message.Message):
    __slots__ = ("window", "level", "by", "n", "measure", "filters")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    MEASURE_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    window: Window
    level: str
    by: str
    n: int
    measure: str
    filters: _containers.RepeatedCompositeFieldContainer[Filter]
    def __init__(self, window: _Optional[_Union[Window, _Mapping]] = ..., level: _Optional[str] = ..., by: _Optional[str] = ..., n: _Optional[int] = ..., measure: _Optional[str] = ..., filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ...) -> None: ...

class AreaRank(_message.Message):
    __slots__ = ("code", "count", "previous", "per_1000_residents", "growth")
    CODE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    PER_1000_RESIDENTS_FIELD_NUMBER: _ClassVar[int]
    GROWTH_FIELD_NUMBER: _ClassVar[int]
    code: str
    count: int
    previous: int
    per_1000_residents: float
    growth: float
    def __init__(self, code: _Optional[str] = ..., count: _Optional[int] = ..., previous: _Optional[int] = ..., per_1000_residents: _Optional[float] = ..., growth: _Optional[float] = ...) -> None: ...

class TopAreasResponse(_message.Message):
    __slots__ = ("areas",)
    AREAS_FIELD_NUMBER: _ClassVar[int]
    areas: _containers.RepeatedCompositeFieldContainer[AreaRank]
    def __init__(self, areas: _Optional[_Iterable[_Union[AreaRank, _Mapping]]] = ...) -> None: ...

class HeatmapRequest(_message.Message):
    __slots__ = ("window", "h3_resolution", "filters", "format")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    H3_RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    window: Window
    h3_resolution: int
    filters: _containers.RepeatedCompositeFieldContainer[Filter]
    format: AnswerFormat
    def __init__(self, window: _Optional[_Union[Window, _Mapping]] = ..., h3_resolution: _Optional[int] = ..., filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ..., format: _Optional[_Union[AnswerFormat, str]] = ...) -> None: ...

class KpisRequest(_message.Message):
    __slots__ = ("window", "unit", "filters", "format")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    window: Window
    unit: str
    filters: _containers.RepeatedCompositeFieldContainer[Filter]
    format: AnswerFormat
    def __init__(self, window: _Optional[_Union[Window, _Mapping]] = ..., unit: _Optional[str] = ..., filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ..., format: _Optional[_Union[AnswerFormat, str]] = ...) -> None: ...

class WatchTalliesRequest(_message.Message):
    __slots__ = ("level", "since", "interval_seconds", "filters")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    level: str
    since: _timestamp_pb2.Timestamp
    interval_seconds: float
    filters: _containers.RepeatedCompositeFieldContainer[Filter]
    def __init__(self, level: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., interval_seconds: _Optional[float] = ..., filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ...) -> None: ...

class AreaCount(_message.Message):
    __slots__ = ("code", "reported", "closed", "overdue_now")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REPORTED_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_NOW_FIELD_NUMBER: _ClassVar[int]
    code: str
    reported: int
    closed: int
    overdue_now: int
    def __init__(self, code: _Optional[str] = ..., reported: _Optional[int] = ..., closed: _Optional[int] = ..., overdue_now: _Optional[int] = ...) -> None: ...

class TalliesUpdate(_message.Message):
    __slots__ = ("at", "full", "areas")
    AT_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    AREAS_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    full: bool
    areas: _containers.RepeatedCompositeFieldContainer[AreaCount]
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., full: _Optional[bool] = ..., areas: _Optional[_Iterable[_Union[AreaCount, _Mapping]]] = ...) -> None: ...
