import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from citygrid.grpc_api._pb import grid_pb2 as _grid_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Building(_message.Message):
    __slots__ = ("code", "kind", "floors", "address", "lng", "lat", "issuing_grid", "grid_code", "community_code", "street_code", "district_code", "demolished_on", "n_units", "residents")
    CODE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FLOORS_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LNG_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    ISSUING_GRID_FIELD_NUMBER: _ClassVar[int]
    GRID_CODE_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_CODE_FIELD_NUMBER: _ClassVar[int]
    STREET_CODE_FIELD_NUMBER: _ClassVar[int]
    DISTRICT_CODE_FIELD_NUMBER: _ClassVar[int]
    DEMOLISHED_ON_FIELD_NUMBER: _ClassVar[int]
    N_UNITS_FIELD_NUMBER: _ClassVar[int]
    RESIDENTS_FIELD_NUMBER: _ClassVar[int]
    code: str
    kind: str
    floors: int
    address: str
    lng: float
    lat: float
    issuing_grid: str
    grid_code: str
    community_code: str
    street_code: str
    district_code: str
    demolished_on: str
    n_units: int
    residents: int
    def __init__(self, code: _Optional[str] = ..., kind: _Optional[str] = ..., floors: _Optional[int] = ..., address: _Optional[str] = ..., lng: _Optional[float] = ..., lat: _Optional[float] = ..., issuing_grid: _Optional[str] = ..., grid_code: _Optional[str] = ..., community_code: _Optional[str] = ..., street_code: _Optional[str] = ..., district_code: _Optional[str] = ..., demolished_on: _Optional[str] = ..., n_units: _Optional[int] = ..., residents: _Optional[int] = ...) -> None: ...

class Unit(_message.Message):
    __slots__ = ("code", "building_code", "kind", "entrance", "floor", "number", "area_m2", "rental", "rental_class", "control_level", "address", "removed_on", "residents")
    CODE_FIELD_NUMBER: _ClassVar[int]
    BUILDING_CODE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ENTRANCE_FIELD_NUMBER: _ClassVar[int]
    FLOOR_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    AREA_M2_FIELD_NUMBER: _ClassVar[int]
    RENTAL_FIELD_NUMBER: _ClassVar[int]
    RENTAL_CLASS_FIELD_NUMBER: _ClassVar[int]
    CONTROL_LEVEL_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_ON_FIELD_NUMBER: _ClassVar[int]
    RESIDENTS_FIELD_NUMBER: _ClassVar[int]
    code: str
    building_code: str
    kind: str
    entrance: int
    floor: int
    number: str
    area_m2: float
    rental: bool
    rental_class: str
    control_level: str
    address: str
    removed_on: str
    residents: int
    def __init__(self, code: _Optional[str] = ..., building_code: _Optional[str] = ..., kind: _Optional[str] = ..., entrance: _Optional[int] = ..., floor: _Optional[int] = ..., number: _Optional[str] = ..., area_m2: _Optional[float] = ..., rental: _Optional[bool] = ..., rental_class: _Optional[str] = ..., control_level: _Optional[str] = ..., address: _Optional[str] = ..., removed_on: _Optional[str] = ..., residents: _Optional[int] = ...) -> None: ...

class GetBuildingRequest(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    def __init__(self, code: _Optional[str] = ...) -> None: ...

class NearPoint(_message.Message):
    __slots__ = ("lng", "lat", "crs", "radius_m")
    LNG_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    CRS_FIELD_NUMBER: _ClassVar[int]
    RADIUS_M_FIELD_NUMBER: _ClassVar[int]
    lng: float
    lat: float
    crs: _grid_pb2.CoordinateSystem
    radius_m: float
    def __init__(self, lng: _Optional[float] = ..., lat: _Optional[float] = ..., crs: _Optional[_Union[_grid_pb2.CoordinateSystem, str]] = ..., radius_m: _Optional[float] = ...) -> None: ...

class AreaRef(_message.Message):
    __slots__ = ("level", "code")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    level: str
    code: str
    def __init__(self, level: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class FindBuildingsRequest(_message.Message):
    __slots__ = ("near", "area", "address", "limit")
    NEAR_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    near: NearPoint
    area: AreaRef
    address: str
    limit: int
    def __init__(self, near: _Optional[_Union[NearPoint, _Mapping]] = ..., area: _Optional[_Union[AreaRef, _Mapping]] = ..., address: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class FoundBuilding(_message.Message):
    __slots__ = ("building", "unit", "distance_m", "score")
    BUILDING_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_M_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    building: Building
    unit: Unit
    distance_m: float
    score: float
    def __init__(self, building: _Optional[_Union[Building, _Mapping]] = ..., unit: _Optional[_Union[Unit, _Mapping]] = ..., distance_m: _Optional[float] = ..., score: _Optional[float] = ...) -> None: ...

class FindBuildingsResponse(_message.Message):
    __slots__ = ("found",)
    FOUND_FIELD_NUMBER: _ClassVar[int]
    found: _containers.RepeatedCompositeFieldContainer[FoundBuilding]
    def __init__(self, found: _Optional[_Iterable[_Union[FoundBuilding, _Mapping]]] = ...) -> None: ...

class GetUnitRequest(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    def __init__(self, code: _Optional[str] = ...) -> None: ...

class ListUnitsRequest(_message.Message):
    __slots__ = ("building_code",)
    BUILDING_CODE_FIELD_NUMBER: _ClassVar[int]
    building_code: str
    def __init__(self, building_code: _Optional[str] = ...) -> None: ...

class ListUnitsResponse(_message.Message):
    __slots__ = ("units",)
    UNITS_FIELD_NUMBER: _ClassVar[int]
    units: _containers.RepeatedCompositeFieldContainer[Unit]
    def __init__(self, units: _Optional[_Iterable[_Union[Unit, _Mapping]]] = ...) -> None: ...

class ResolveCodeRequest(_message.Message):
    __slots__ = ("payload",)
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: str
    def __init__(self, payload: _Optional[str] = ...) -> None: ...

class ResolveCodeResponse(_message.Message):
    __slots__ = ("building", "unit")
    BUILDING_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    building: Building
    unit: Unit
    def __init__(self, building: _Optional[_Union[Building, _Mapping]] = ..., unit: _Optional[_Union[Unit, _Mapping]] = ...) -> None: ...

class Residence(_message.Message):
    __slots__ = ("resident_id", "unit_code", "moved_in", "moved_out", "recorded_by")
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_CODE_FIELD_NUMBER: _ClassVar[int]
    MOVED_IN_FIELD_NUMBER: _ClassVar[int]
    MOVED_OUT_FIELD_NUMBER: _ClassVar[int]
    RECORDED_BY_FIELD_NUMBER: _ClassVar[int]
    resident_id: str
    unit_code: str
    moved_in: str
    moved_out: str
    recorded_by: str
    def __init__(self, resident_id: _Optional[str] = ..., unit_code: _Optional[str] = ..., moved_in: _Optional[str] = ..., moved_out: _Optional[str] = ..., recorded_by: _Optional[str] = ...) -> None: ...

class MoveInRequest(_message.Message):
    __slots__ = ("resident_id", "unit_code", "on", "name", "gender", "birth_year", "registered")
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_CODE_FIELD_NUMBER: _ClassVar[int]
    ON_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    GENDER_FIELD_NUMBER: _ClassVar[int]
    BIRTH_YEAR_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    resident_id: str
    unit_code: str
    on: str
    name: str
    gender: str
    birth_year: int
    registered: bool
    def __init__(self, resident_id: _Optional[str] = ..., unit_code: _Optional[str] = ..., on: _Optional[str] = ..., name: _Optional[str] = ..., gender: _Optional[str] = ..., birth_year: _Optional[int] = ..., registered: _Optional[bool] = ...) -> None: ...

class MoveOutRequest(_message.Message):
    __slots__ = ("resident_id", "on")
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    ON_FIELD_NUMBER: _ClassVar[int]
    resident_id: str
    on: str
    def __init__(self, resident_id: _Optional[str] = ..., on: _Optional[str] = ...) -> None: ...

class DeclareRequest(_message.Message):
    __slots__ = ("payload", "declared_by", "kind", "unit_code", "resident_id", "moved_on", "name", "gender", "birth_year", "registered")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DECLARED_BY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    UNIT_CODE_FIELD_NUMBER: _ClassVar[int]
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    MOVED_ON_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    GENDER_FIELD_NUMBER: _ClassVar[int]
    BIRTH_YEAR_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    payload: str
    declared_by: str
    kind: str
    unit_code: str
    resident_id: str
    moved_on: str
    name: str
    gender: str
    birth_year: int
    registered: bool
    def __init__(self, payload: _Optional[str] = ..., declared_by: _Optional[str] = ..., kind: _Optional[str] = ..., unit_code: _Optional[str] = ..., resident_id: _Optional[str] = ..., moved_on: _Optional[str] = ..., name: _Optional[str] = ..., gender: _Optional[str] = ..., birth_year: _Optional[int] = ..., registered: _Optional[bool] = ...) -> None: ...

class Declaration(_message.Message):
    __slots__ = ("declaration_id", "kind", "unit_code", "grid_code", "resident_id", "name", "birth_year", "registered", "moved_on", "declared_by", "declared_at", "status", "reviewed_by", "note")
    DECLARATION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    UNIT_CODE_FIELD_NUMBER: _ClassVar[int]
    GRID_CODE_FIELD_NUMBER: _ClassVar[int]
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    BIRTH_YEAR_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    MOVED_ON_FIELD_NUMBER: _ClassVar[int]
    DECLARED_BY_FIELD_NUMBER: _ClassVar[int]
    DECLARED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REVIEWED_BY_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    declaration_id: int
    kind: str
    unit_code: str
    grid_code: str
    resident_id: str
    name: str
    birth_year: int
    registered: bool
    moved_on: str
    declared_by: str
    declared_at: str
    status: str
    reviewed_by: str
    note: str
    def __init__(self, declaration_id: _Optional[int] = ..., kind: _Optional[str] = ..., unit_code: _Optional[str] = ..., grid_code: _Optional[str] = ..., resident_id: _Optional[str] = ..., name: _Optional[str] = ..., birth_year: _Optional[int] = ..., registered: _Optional[bool] = ..., moved_on: _Optional[str] = ..., declared_by: _Optional[str] = ..., declared_at: _Optional[str] = ..., status: _Optional[str] = ..., reviewed_by: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ReviewDeclarationRequest(_message.Message):
    __slots__ = ("declaration_id", "accept", "note")
    DECLARATION_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    declaration_id: int
    accept: bool
    note: str
    def __init__(self, declaration_id: _Optional[int] = ..., accept: _Optional[bool] = ..., note: _Optional[str] = ...) -> None: ...

class WatchDeclarationsRequest(_message.Message):
    __slots__ = ("grid_code", "after", "reason")
    GRID_CODE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    grid_code: str
    after: int
    reason: str
    def __init__(self, grid_code: _Optional[str] = ..., after: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class ListResidentsRequest(_message.Message):
    __slots__ = ("level", "code", "reason", "limit")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    level: str
    code: str
    reason: str
    limit: int
    def __init__(self, level: _Optional[str] = ..., code: _Optional[str] = ..., reason: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class Resident(_message.Message):
    __slots__ = ("resident_id", "name", "gender", "birth_year", "registered", "unit_code", "building_code", "grid_code", "moved_in")
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    GENDER_FIELD_NUMBER: _ClassVar[int]
    BIRTH_YEAR_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    UNIT_CODE_FIELD_NUMBER: _ClassVar[int]
    BUILDING_CODE_FIELD_NUMBER: _ClassVar[int]
    GRID_CODE_FIELD_NUMBER: _ClassVar[int]
    MOVED_IN_FIELD_NUMBER: _ClassVar[int]
    resident_id: str
    name: str
    gender: str
    birth_year: int
    registered: bool
    unit_code: str
    building_code: str
    grid_code: str
    moved_in: str
    def __init__(self, resident_id: _Optional[str] = ..., name: _Optional[str] = ..., gender: _Optional[str] = ..., birth_year: _Optional[int] = ..., registered: _Optional[bool] = ..., unit_code: _Optional[str] = ..., building_code: _Optional[str] = ..., grid_code: _Optional[str] = ..., moved_in: _Optional[str] = ...) -> None: ...

class ListResidentsResponse(_message.Message):
    __slots__ = ("residents",)
    RESIDENTS_FIELD_NUMBER: _ClassVar[int]
    residents: _containers.RepeatedCompositeFieldContainer[Resident]
    def __init__(self, residents: _Optional[_Iterable[_Union[Resident, _Mapping]]] = ...) -> None: ...

class ResidentHistoryRequest(_message.Message):
    __slots__ = ("resident_id", "reason")
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    resident_id: str
    reason: str
    def __init__(self, resident_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ResidentHistoryResponse(_message.Message):
    __slots__ = ("stays",)
    STAYS_FIELD_NUMBER: _ClassVar[int]
    stays: _containers.RepeatedCompositeFieldContainer[Residence]
    def __init__(self, stays: _Optional[_Iterable[_Union[Residence, _Mapping]]] = ...) -> None: ...

class ExportResidentsRequest(_message.Message):
    __slots__ = ("level", "code", "reason", "page_size", "limit", "after")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    level: str
    code: str
    reason: str
    page_size: int
    limit: int
    after: str
    def __init__(self, level: _Optional[str] = ..., code: _Optional[str] = ..., reason: _Optional[str] = ..., page_size: _Optional[int] = ..., limit: _Optional[int] = ..., after: _Optional[str] = ...) -> None: ...

class MaskedResident(_message.Message):
    __slots__ = ("resident_id", "name", "age_band", "registered", "unit_code")
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    AGE_BAND_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    UNIT_CODE_FIELD_NUMBER: _ClassVar[int]
    resident_id: str
    name: str
    age_band: str
    registered: bool
    unit_code: str
    def __init__(self, resident_id: _Optional[str] = ..., name: _Optional[str] = ..., age_band: _Optional[str] = ..., registered: _Optional[bool] = ..., unit_code: _Optional[str] = ...) -> None: ...

class ExportResidentsPage(_message.Message):
    __slots__ = ("residents", "after")
    RESIDENTS_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    residents: _containers.RepeatedCompositeFieldContainer[MaskedResident]
    after: str
    def __init__(self, residents: _Optional[_Iterable[_Union[MaskedResident, _Mapping]]] = ..., after: _Optional[str] = ...) -> None: ...

class CheckInRequest(_message.Message):
    __slots__ = ("building_code", "lng", "lat", "crs")
    BUILDING_CODE_FIELD_NUMBER: _ClassVar[int]
    LNG_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    CRS_FIELD_NUMBER: _ClassVar[int]
    building_code: str
    lng: float
    lat: float
    crs: _grid_pb2.CoordinateSystem
    def __init__(self, building_code: _Optional[str] = ..., lng: _Optional[float] = ..., lat: _Optional[float] = ..., crs: _Optional[_Union[_grid_pb2.CoordinateSystem, str]] = ...) -> None: ...

class CheckInResponse(_message.Message):
    __slots__ = ("worker", "building_code", "at", "lng", "lat", "distance_m", "speed_kmh", "flags", "accepted")
    WORKER_FIELD_NUMBER: _ClassVar[int]
    BUILDING_CODE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    LNG_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_M_FIELD_NUMBER: _ClassVar[int]
    SPEED_KMH_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    worker: str
    building_code: str
    at: _timestamp_pb2.Timestamp
    lng: float
    lat: float
    distance_m: float
    speed_kmh: float
    flags: _containers.RepeatedScalarFieldContainer[str]
    accepted: bool
    def __init__(self, worker: _Optional[str] = ..., building_code: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lng: _Optional[float] = ..., lat: _Optional[float] = ..., distance_m: _Optional[float] = ..., speed_kmh: _Optional[float] = ..., flags: _Optional[_Iterable[str]] = ..., accepted: _Optional[bool] = ...) -> None: ...

class PopulationStatsRequest(_message.Message):
    __slots__ = ("level", "year")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    level: str
    year: int
    def __init__(self, level: _Optional[str] = ..., year: _Optional[int] = ...) -> None: ...

class RentalStatsRequest(_message.Message):
    __slots__ = ("level",)
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    level: str
    def __init__(self, level: _Optional[str] = ...) -> None: ...

class HouseCount(_message.Message):
    __slots__ = ("code", "counts")
    CODE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    code: str
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, code: _Optional[str] = ..., counts: _Optional[_Iterable[int]] = ...) -> None: ...

class HouseCounts(_message.Message):
    __slots__ = ("level", "columns", "areas")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    AREAS_FIELD_NUMBER: _ClassVar[int]
    level: str
    columns: _containers.RepeatedScalarFieldContainer[str]
    areas: _containers.RepeatedCompositeFieldContainer[HouseCount]
    def __init__(self, level: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ..., areas: _Optional[_Iterable[_Union[HouseCount, _Mapping]]] = ...) -> None: ...

class GroupRentingRequest(_message.Message):
    __slots__ = ("grid_code",)
    GRID_CODE_FIELD_NUMBER: _ClassVar[int]
    grid_code: str
    def __init__(self, grid_code: _Optional[str] = ...) -> None: ...

class GroupRentingUnit(_message.Message):
    __slots__ = ("unit_code", "building_code", "grid_code", "residents", "area_m2", "reason")
    UNIT_CODE_FIELD_NUMBER: _ClassVar[int]
    BUILDING_CODE_FIELD_NUMBER: _ClassVar[int]
    GRID_CODE_FIELD_NUMBER: _ClassVar[int]
    RESIDENTS_FIELD_NUMBER: _ClassVar[int]
    AREA_M2_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    unit_code: str
    building_code: str
    grid_code: str
    residents: int
    area_m2: float
    reason: str
    def __init__(self, unit_code: _Optional[str] = ..., building_code: _Optional[str] = ..., grid_code: _Optional[str] = ..., residents: _Optional[int] = ..., area_m2: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class GroupRentingResponse(_message.Message):
    __slots__ = ("units",)
    UNITS_FIELD_NUMBER: _ClassVar[int]
    units: _containers.RepeatedCompositeFieldContainer[GroupRentingUnit]
    def __init__(self, units: _Optional[_Iterable[_Union[GroupRentingUnit, _Mapping]]] = ...) -> None: ...
