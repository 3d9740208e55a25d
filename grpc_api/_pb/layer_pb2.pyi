import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FieldMap(_message.Message):
    __slots__ = ("grid_code", "grid_name", "grid_type", "community_code", "street_code", "district_code")
    GRID_CODE_FIELD_NUMBER: _ClassVar[int]
    GRID_NAME_FIELD_NUMBER: _ClassVar[int]
    GRID_TYPE_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_CODE_FIELD_NUMBER: _ClassVar[int]
    STREET_CODE_FIELD_NUMBER: _ClassVar[int]
    DISTRICT_CODE_FIELD_NUMBER: _ClassVar[int]
    grid_code: str
    grid_name: str
    grid_type: str
    community_code: str
    street_code: str
    district_code: str
    def __init__(self, grid_code: _Optional[str] = ..., grid_name: _Optional[str] = ..., grid_type: _Optional[str] = ..., community_code: _Optional[str] = ..., street_code: _Optional[str] = ..., district_code: _Optional[str] = ...) -> None: ...

class UploadHeader(_message.Message):
    __slots__ = ("filename", "version_id", "fields")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    filename: str
    version_id: str
    fields: FieldMap
    def __init__(self, filename: _Optional[str] = ..., version_id: _Optional[str] = ..., fields: _Optional[_Union[FieldMap, _Mapping]] = ...) -> None: ...

class UploadLayerRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class LayerVersion(_message.Message):
    __slots__ = ("version_id", "content_hash", "n_grids", "source", "created_at", "valid_from", "valid_to", "published", "active")
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    N_GRIDS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_TO_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    version_id: str
    content_hash: str
    n_grids: int
    source: str
    created_at: _timestamp_pb2.Timestamp
    valid_from: _timestamp_pb2.Timestamp
    valid_to: _timestamp_pb2.Timestamp
    published: bool
    active: bool
    def __init__(self, version_id: _Optional[str] = ..., content_hash: _Optional[str] = ..., n_grids: _Optional[int] = ..., source: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., published: _Optional[bool] = ..., active: _Optional[bool] = ...) -> None: ...

class ValidateLayerRequest(_message.Message):
    __slots__ = ("version_id", "boundary", "boundary_filename")
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    BOUNDARY_FIELD_NUMBER: _ClassVar[int]
    BOUNDARY_FILENAME_FIELD_NUMBER: _ClassVar[int]
    version_id: str
    boundary: bytes
    boundary_filename: str
    def __init__(self, version_id: _Optional[str] = ..., boundary: _Optional[bytes] = ..., boundary_filename: _Optional[str] = ...) -> None: ...

class ValidateLayerResponse(_message.Message):
    __slots__ = ("version_id", "valid", "report_json")
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    VALID_FIELD_NUMBER: _ClassVar[int]
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    version_id: str
    valid: bool
    report_json: str
    def __init__(self, version_id: _Optional[str] = ..., valid: _Optional[bool] = ..., report_json: _Optional[str] = ...) -> None: ...

class PublishLayerRequest(_message.Message):
    __slots__ = ("version_id", "valid_from")
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    version_id: str
    valid_from: _timestamp_pb2.Timestamp
    def __init__(self, version_id: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ActivateVersionRequest(_message.Message):
    __slots__ = ("version_id",)
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    version_id: str
    def __init__(self, version_id: _Optional[str] = ...) -> None: ...

class MovedBuilding(_message.Message):
    __slots__ = ("building_code", "previous_grid", "grid_code")
    BUILDING_CODE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_GRID_FIELD_NUMBER: _ClassVar[int]
    GRID_CODE_FIELD_NUMBER: _ClassVar[int]
    building_code: str
    previous_grid: str
    grid_code: str
    def __init__(self, building_code: _Optional[str] = ..., previous_grid: _Optional[str] = ..., grid_code: _Optional[str] = ...) -> None: ...

class ActivateVersionResponse(_message.Message):
    __slots__ = ("active", "previous_version_id", "buildings_regridded", "moved_buildings")
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDINGS_REGRIDDED_FIELD_NUMBER: _ClassVar[int]
    MOVED_BUILDINGS_FIELD_NUMBER: _ClassVar[int]
    active: LayerVersion
    previous_version_id: str
    buildings_regridded: int
    moved_buildings: _containers.RepeatedCompositeFieldContainer[MovedBuilding]
    def __init__(self, active: _Optional[_Union[LayerVersion, _Mapping]] = ..., previous_version_id: _Optional[str] = ..., buildings_regridded: _Optional[int] = ..., moved_buildings: _Optional[_Iterable[_Union[MovedBuilding, _Mapping]]] = ...) -> None: ...

class ListVersionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListVersionsResponse(_message.Message):
    __slots__ = ("versions", "active_version_id")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[LayerVersion]
    active_version_id: str
    def __init__(self, versions: _Optional[_Iterable[_Union[LayerVersion, _Mapping]]] = ..., active_version_id: _Optional[str] = ...) -> None: ...
