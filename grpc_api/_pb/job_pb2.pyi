import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from citygrid.grpc_api._pb import grid_pb2 as _grid_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitReindexRequest(_message.Message):
    __slots__ = ("input", "layer", "previous", "output", "lng_column", "lat_column", "row_id_column", "partition_by", "crs")
    INPUT_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    LNG_COLUMN_FIELD_NUMBER: _ClassVar[int]
    LAT_COLUMN_FIELD_NUMBER: _ClassVar[int]
    ROW_ID_COLUMN_FIELD_NUMBER: _ClassVar[int]
    PARTITION_BY_FIELD_NUMBER: _ClassVar[int]
    CRS_FIELD_NUMBER: _ClassVar[int]
    input: str
    layer: str
    previous: str
    output: str
    lng_column: str
    lat_column: str
    row_id_column: str
    partition_by: str
    crs: _grid_pb2.CoordinateSystem
    def __init__(self, input: _Optional[str] = ..., layer: _Optional[str] = ..., previous: _Optional[str] = ..., output: _Optional[str] = ..., lng_column: _Optional[str] = ..., lat_column: _Optional[str] = ..., row_id_column: _Optional[str] = ..., partition_by: _Optional[str] = ..., crs: _Optional[_Union[_grid_pb2.CoordinateSystem, str]] = ...) -> None: ...

class SubmitReindexResponse(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ChangeSummary(_message.Message):
    __slots__ = ("previous_version", "version", "rows", "rows_moved", "moved_share", "transition_pairs", "grids_split", "grids_merged", "events_changed", "workers_to_confirm")
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ROWS_MOVED_FIELD_NUMBER: _ClassVar[int]
    MOVED_SHARE_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_PAIRS_FIELD_NUMBER: _ClassVar[int]
    GRIDS_SPLIT_FIELD_NUMBER: _ClassVar[int]
    GRIDS_MERGED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    WORKERS_TO_CONFIRM_FIELD_NUMBER: _ClassVar[int]
    previous_version: str
    version: str
    rows: int
    rows_moved: int
    moved_share: float
    transition_pairs: int
    grids_split: int
    grids_merged: int
    events_changed: int
    workers_to_confirm: int
    def __init__(self, previous_version: _Optional[str] = ..., version: _Optional[str] = ..., rows: _Optional[int] = ..., rows_moved: _Optional[int] = ..., moved_share: _Optional[float] = ..., transition_pairs: _Optional[int] = ..., grids_split: _Optional[int] = ..., grids_merged: _Optional[int] = ..., events_changed: _Optional[int] = ..., workers_to_confirm: _Optional[int] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "kind", "state", "phase", "rows_done", "rows_total", "progress", "tasks_done", "tasks_total", "partitions_written", "cancel_requested", "error", "created_at", "started_at", "updated_at", "finished_at", "input", "layer", "previous", "output", "changes")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    ROWS_DONE_FIELD_NUMBER: _ClassVar[int]
    ROWS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    TASKS_DONE_FIELD_NUMBER: _ClassVar[int]
    TASKS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: str
    state: str
    phase: str
    rows_done: int
    rows_total: int
    progress: float
    tasks_done: int
    tasks_total: int
    partitions_written: int
    cancel_requested: bool
    error: str
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    input: str
    layer: str
    previous: str
    output: str
    changes: ChangeSummary
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[str] = ..., phase: _Optional[str] = ..., rows_done: _Optional[int] = ..., rows_total: _Optional[int] = ..., progress: _Optional[float] = ..., tasks_done: _Optional[int] = ..., tasks_total: _Optional[int] = ..., partitions_written: _Optional[int] = ..., cancel_requested: _Optional[bool] = ..., error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., input: _Optional[str] = ..., layer: _Optional[str] = ..., previous: _Optional[str] = ..., output: _Optional[str] = ..., changes: _Optional[_Union[ChangeSummary, _Mapping]] = ...) -> None: ...

class JobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...
