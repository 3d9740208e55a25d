import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CoordinateSystem(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COORDINATE_SYSTEM_UNSPECIFIED: _ClassVar[CoordinateSystem]
    COORDINATE_SYSTEM_WGS84: _ClassVar[CoordinateSystem]
    COORDINATE_SYSTEM_CGCS2000: _ClassVar[CoordinateSystem]
    COORDINATE_SYSTEM_GCJ02: _ClassVar[CoordinateSystem]
    COORDINATE_SYSTEM_BD09: _ClassVar[CoordinateSystem]

class PointStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POINT_STATUS_UNSPECIFIED: _ClassVar[PointStatus]
    POINT_STATUS_INSIDE: _ClassVar[PointStatus]
    POINT_STATUS_SHARED_BOUNDARY: _ClassVar[PointStatus]
    POINT_STATUS_FALLBACK: _ClassVar[PointStatus]
    POINT_STATUS_OUTSIDE: _ClassVar[PointStatus]
    POINT_STATUS_INVALID: _ClassVar[PointStatus]
    POINT_STATUS_OUT_OF_JURISDICTION: _ClassVar[PointStatus]

class GeometryFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GEOMETRY_FORMAT_UNSPECIFIED: _ClassVar[GeometryFormat]
    GEOMETRY_FORMAT_WKB: _ClassVar[GeometryFormat]
    GEOMETRY_FORMAT_GEOJSON: _ClassVar[GeometryFormat]
COORDINATE_SYSTEM_UNSPECIFIED: CoordinateSystem
COORDINATE_SYSTEM_WGS84: CoordinateSystem
COORDINATE_SYSTEM_CGCS2000: CoordinateSystem
COORDINATE_SYSTEM_GCJ02: CoordinateSystem
COORDINATE_SYSTEM_BD09: CoordinateSystem
POINT_STATUS_UNSPECIFIED: PointStatus
POINT_STATUS_INSIDE: PointStatus
POINT_STATUS_SHARED_BOUNDARY: PointStatus
POINT_STATUS_FALLBACK: PointStatus
POINT_STATUS_OUTSIDE: PointStatus
POINT_STATUS_INVALID: PointStatus
POINT_STATUS_OUT_OF_JURISDICTION: PointStatus
GEOMETRY_FORMAT_UNSPECIFIED: GeometryFormat
GEOMETRY_FORMAT_WKB: GeometryFormat
GEOMETRY_FORMAT_GEOJSON: GeometryFormat

class Grid(_message.Message):
    __slots__ = ("code", "name", "type", "community_code", "community_name", "street_code", "street_name", "district_code", "district_name", "row", "layer_version", "wkb", "geojson")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_CODE_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_NAME_FIELD_NUMBER: _ClassVar[int]
    STREET_CODE_FIELD_NUMBER: _ClassVar[int]
    STREET_NAME_FIELD_NUMBER: _ClassVar[int]
    DISTRICT_CODE_FIELD_NUMBER: _ClassVar[int]
    DISTRICT_NAME_FIELD_NUMBER: _ClassVar[int]
    ROW_FIELD_NUMBER: _ClassVar[int]
    LAYER_VERSION_FIELD_NUMBER: _ClassVar[int]
    WKB_FIELD_NUMBER: _ClassVar[int]
    GEOJSON_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    type: str
    community_code: str
    community_name: str
    street_code: str
    street_name: str
    district_code: str
    district_name: str
    row: int
    layer_version: str
    wkb: bytes
    geojson: str
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[str] = ..., community_code: _Optional[str] = ..., community_name: _Optional[str] = ..., street_code: _Optional[str] = ..., street_name: _Optional[str] = ..., district_code: _Optional[str] = ..., district_name: _Optional[str] = ..., row: _Optional[int] = ..., layer_version: _Optional[str] = ..., wkb: _Optional[bytes] = ..., geojson: _Optional[str] = ...) -> None: ...

class AssignPointRequest(_message.Message):
    __slots__ = ("lng", "lat", "crs", "event_time", "fallback_m", "request_id")
    LNG_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    CRS_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_M_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    lng: float
    lat: float
    crs: CoordinateSystem
    event_time: _timestamp_pb2.Timestamp
    fallback_m: float
    request_id: str
    def __init__(self, lng: _Optional[float] = ..., lat: _Optional[float] = ..., crs: _Optional[_Union[CoordinateSystem, str]] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fallback_m: _Optional[float] = ..., request_id: _Optional[str] = ...) -> None: ...

class AssignPointResponse(_message.Message):
    __slots__ = ("status", "grid", "layer_version", "request_id")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    GRID_FIELD_NUMBER: _ClassVar[int]
    LAYER_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    status: PointStatus
    grid: Grid
    layer_version: str
    request_id: str
    def __init__(self, status: _Optional[_Union[PointStatus, str]] = ..., grid: _Optional[_Union[Grid, _Mapping]] = ..., layer_version: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class AssignPointsRequest(_message.Message):
    __slots__ = ("lng", "lat", "crs", "event_time", "fallback_m", "rows_only")
    LNG_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    CRS_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_M_FIELD_NUMBER: _ClassVar[int]
    ROWS_ONLY_FIELD_NUMBER: _ClassVar[int]
    lng: bytes
    lat: bytes
    crs: CoordinateSystem
    event_time: _timestamp_pb2.Timestamp
    fallback_m: float
    rows_only: bool
    def __init__(self, lng: _Optional[bytes] = ..., lat: _Optional[bytes] = ..., crs: _Optional[_Union[CoordinateSystem, str]] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fallback_m: _Optional[float] = ..., rows_only: _Optional[bool] = ...) -> None: ...

class AssignPointsResponse(_message.Message):
    __slots__ = ("grid_rows", "statuses", "grids", "layer_version")
    GRID_ROWS_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    GRIDS_FIELD_NUMBER: _ClassVar[int]
    LAYER_VERSION_FIELD_NUMBER: _ClassVar[int]
    grid_rows: bytes
    statuses: bytes
    grids: _containers.RepeatedCompositeFieldContainer[Grid]
    layer_version: str
    def __init__(self, grid_rows: _Optional[bytes] = ..., statuses: _Optional[bytes] = ..., grids: _Optional[_Iterable[_Union[Grid, _Mapping]]] = ..., layer_version: _Optional[str] = ...) -> None: ...

class GetGridRequest(_message.Message):
    __slots__ = ("code", "at", "geojson")
    CODE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    GEOJSON_FIELD_NUMBER: _ClassVar[int]
    code: str
    at: _timestamp_pb2.Timestamp
    geojson: bool
    def __init__(self, code: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., geojson: _Optional[bool] = ...) -> None: ...

class GetLayerGeometryRequest(_message.Message):
    __slots__ = ("level", "format", "tolerance", "layer_version", "at", "page_size")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    LAYER_VERSION_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    level: str
    format: GeometryFormat
    tolerance: float
    layer_version: str
    at: _timestamp_pb2.Timestamp
    page_size: int
    def __init__(self, level: _Optional[str] = ..., format: _Optional[_Union[GeometryFormat, str]] = ..., tolerance: _Optional[float] = ..., layer_version: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ...) -> None: ...

class AreaGeometry(_message.Message):
    __slots__ = ("code", "name", "level", "wkb", "geojson")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    WKB_FIELD_NUMBER: _ClassVar[int]
    GEOJSON_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    level: str
    wkb: bytes
    geojson: str
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., level: _Optional[str] = ..., wkb: _Optional[bytes] = ..., geojson: _Optional[str] = ...) -> None: ...

class GetLayerGeometryResponse(_message.Message):
    __slots__ = ("areas", "layer_version")
    AREAS_FIELD_NUMBER: _ClassVar[int]
    LAYER_VERSION_FIELD_NUMBER: _ClassVar[int]
    areas: _containers.RepeatedCompositeFieldContainer[AreaGeometry]
    layer_version: str
    def __init__(self, areas: _Optional[_Iterable[_Union[AreaGeometry, _Mapping]]] = ..., layer_version: _Optional[str] = ...) -> None: ...

class ListGridsRequest(_message.Message):
    __slots__ = ("community_code", "street_code", "grid_type", "page_size", "page_token", "at")
    COMMUNITY_CODE_FIELD_NUMBER: _ClassVar[int]
    STREET_CODE_FIELD_NUMBER: _ClassVar[int]
    GRID_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    community_code: str
    street_code: str
    grid_type: str
    page_size: int
    page_token: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, community_code: _Optional[str] = ..., street_code: _Optional[str] = ..., grid_type: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListGridsResponse(_message.Message):
    __slots__ = ("grids", "next_page_token", "layer_version")
    GRIDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LAYER_VERSION_FIELD_NUMBER: _ClassVar[int]
    grids: _containers.RepeatedCompositeFieldContainer[Grid]
    next_page_token: str
    layer_version: str
    def __init__(self, grids: _Optional[_Iterable[_Union[Grid, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., layer_version: _Optional[str] = ...) -> None: ...

class GetGridCellsRequest(_message.Message):
    __slots__ = ("code", "at")
    CODE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    code: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, code: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetGridCellsResponse(_message.Message):
    __slots__ = ("grid", "cell_ids", "interior", "layer_version")
    GRID_FIELD_NUMBER: _ClassVar[int]
    CELL_IDS_FIELD_NUMBER: _ClassVar[int]
    INTERIOR_FIELD_NUMBER: _ClassVar[int]
    LAYER_VERSION_FIELD_NUMBER: _ClassVar[int]
    grid: Grid
    cell_ids: _containers.RepeatedScalarFieldContainer[int]
    interior: _containers.RepeatedScalarFieldContainer[bool]
    layer_version: str
    def __init__(self, grid: _Optional[_Union[Grid, _Mapping]] = ..., cell_ids: _Optional[_Iterable[int]] = ..., interior: _Optional[_Iterable[bool]] = ..., layer_version: _Optional[str] = ...) -> None: ...

class LocateCellRequest(_message.Message):
    __slots__ = ("cell_id", "at")
    CELL_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    cell_id: int
    at: _timestamp_pb2.Timestamp
    def __init__(self, cell_id: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LocateCellResponse(_message.Message):
    __slots__ = ("grids", "layer_version")
    GRIDS_FIELD_NUMBER: _ClassVar[int]
    LAYER_VERSION_FIELD_NUMBER: _ClassVar[int]
    grids: _containers.RepeatedCompositeFieldContainer[Grid]
    layer_version: str
    def __init__(self, grids: _Optional[_Iterable[_Union[Grid, _Mapping]]] = ..., layer_version: _Optional[str] = ...) -> None: ...
