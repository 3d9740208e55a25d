"""Conversions between protocol messages and engine values (no geometry here).

- times: ``google.protobuf.Timestamp`` <-> aware ``datetime``;
- coordinate systems: the proto enum -> the engine's ``crs`` names;
- point statuses: the engine's :class:`~citygrid.engine.layers.assignment.Status` -> ``PointStatus`` (the
  same names, shifted by one);
- :class:`GridCatalog`: per loaded layer version, one prebuilt ``Grid`` message per row and the code
  columns that filters and jurisdictions test, built once and shared by every call on that version.
"""

from __future__ import annotations

import threading
import weakref
from datetime import datetime, timedelta, timezone

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from citygrid.engine.layers.assignment import Status
from citygrid.engine.errors import InvalidInput
from citygrid.engine.access.principals import Principal
from citygrid.engine.layers.registry import LayerSnapshot, VersionRecord
from citygrid.engine.access.tokens import TokenInfo
from citygrid.grpc_api._pb import grid_pb2, layer_pb2, token_pb2
from citygrid.engine.hierarchy import CODE_COLUMNS, PARENTS
from citygrid.engine.layers.coordinates import CoordinateSystem

# ---------------------------------------------------------------------- times

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_timestamp(when: datetime | None) -> Timestamp | None:
    if when is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(when.astimezone(timezone.utc))
    return ts


def from_timestamp(message, field: str) -> datetime | None:
    """The aware datetime (UTC, whole microseconds) in ``message.<field>``, ``None`` when unset."""
    if not message.HasField(field):
        return None
    ts = getattr(message, field)
    try:
        return _EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)
    except OverflowError:
        raise InvalidInput(f"{field}: {ts.seconds} s since 1970 is not a time between the years 1 and 9999") from None


# ---------------------------------------------------------------------- coordinate systems

def crs_of(value: int) -> CoordinateSystem:
    """The engine's coordinate system of a message's ``CoordinateSystem`` number (0: WGS84), directly."""
    return CoordinateSystem.of(int(value))


# ---------------------------------------------------------------------- statuses

#: ``PointStatus`` value = engine :class:`Status` + ``STATUS_OFFSET``, for every status (checked at
#: import), so a million statuses convert in one addition (a table lookup takes 20 times longer).
STATUS_OFFSET = 1
_mismatched = [s.name for s in Status if grid_pb2.PointStatus.Value(f"POINT_STATUS_{s.name}") != s + STATUS_OFFSET]
if _mismatched:
    raise ImportError(f"PointStatus in grid.proto no longer equals the engine's Status + 1 for {_mismatched}")
OUT_OF_JURISDICTION = np.uint8(grid_pb2.POINT_STATUS_OUT_OF_JURISDICTION)


def point_statuses(engine_statuses: np.ndarray) -> np.ndarray:
    """Engine statuses (uint8) as ``PointStatus`` values (uint8), a new array."""
    return np.add(engine_statuses, np.uint8(STATUS_OFFSET), dtype=np.uint8)


def point_status(engine_status: int) -> int:
    return int(engine_status) + STATUS_OFFSET


# ---------------------------------------------------------------------- grids



class GridCatalog:
    """The grids of one layer version as protocol messages, and their codes for filtering.

    ``catalog.grid(row)`` is a shared message: copy it (``CopyFrom``, ``extend``), never change it.
    """

    def __init__(self, snapshot: LayerSnapshot):
        layer = snapshot.layer
        self.version_id = snapshot.version_id
        self.n_grids = layer.n_grids
        columns = {name: layer.column(name) for name in layer.attributes.column_names}
        self.columns = {name: columns[name] for name in (*CODE_COLUMNS, "grid_type")}
        parents = tuple(column for _, code, name in PARENTS for column in (code, name))
        fields = ("code", "name", "type", *parents)
        sources = ("grid_code", "grid_name", "grid_type", *parents)
        values = [columns[s] for s in sources]
        self._grids = tuple(
            grid_pb2.Grid(
                **{f: v[row] for f, v in zip(fields, values) if v[row] is not None},
                row=row,
                layer_version=self.version_id,
            )
            for row in range(self.n_grids)
        )
        # each grid encoded as field 3 (``grids``) of an AssignPointsResponse: a batch's dictionary is
        # parsed from their concatenation, four times faster than copying the messages in one by one
        self._encoded = tuple(grid_pb2.AssignPointsResponse(grids=[g]).SerializeToString() for g in self._grids)
        self._lock = threading.Lock()
        self._allowed: dict[tuple[str, ...], np.ndarray] = {}

    def grid(self, row: int) -> grid_pb2.Grid:
        return self._grids[row]

    def points_response(self, rows) -> grid_pb2.AssignPointsResponse:
        """A new ``AssignPointsResponse`` whose ``grids`` are the grids of ``rows``, in that order."""
        return grid_pb2.AssignPointsResponse.FromString(b"".join([self._encoded[row] for row in rows]))

    def chain(self, row: int) -> list[str | None]:
        """The codes of the grid and its parents, for jurisdiction checks."""
        return [self.columns[name][row] for name in CODE_COLUMNS]

    def allowed(self, principal: Principal) -> np.ndarray | None:
        """Per row, whether the grid lies in ``principal``'s jurisdiction; ``None`` for everywhere."""
        if principal.everywhere:
            return None
        key = principal.jurisdiction
        mask = self._allowed.get(key)
        if mask is None:
            scope = np.asarray(list(key), dtype=object)
            mask = np.zeros(self.n_grids, dtype=bool)
            for name in CODE_COLUMNS:
                mask |= np.isin(self.columns[name], scope)
            with self._lock:
                self._allowed[key] = mask
        return mask

    def filter(self, *, community_code: str = "", street_code: str = "", grid_type: str = "") -> np.ndarray:
        """Per row, whether the grid matches every non-empty filter."""
        mask = np.ones(self.n_grids, dtype=bool)
        for name, value in (("community_code", community_code), ("street_code", street_code),
                            ("grid_type", grid_type)):
            if value:
                mask &= self.columns[name] == value
        return mask


class GridCatalogs:
    """One :class:`GridCatalog` per snapshot, built on first use and dropped with the snapshot."""

    def __init__(self):
        self._lock = threading.Lock()
        self._catalogs: weakref.WeakKeyDictionary[LayerSnapshot, GridCatalog] = weakref.WeakKeyDictionary()

    def built(self, snapshot: LayerSnapshot) -> bool:
        """Whether ``snapshot``'s catalogue is built (calling for it takes no time and no lock)."""
        return snapshot in self._catalogs

    def __call__(self, snapshot: LayerSnapshot) -> GridCatalog:
        catalog = self._catalogs.get(snapshot)
        if catalog is None:
            with self._lock:
                catalog = self._catalogs.get(snapshot)
                if catalog is None:
                    catalog = self._catalogs[snapshot] = GridCatalog(snapshot)
        return catalog


# ---------------------------------------------------------------------- registry and tokens


def layer_version(record: VersionRecord) -> layer_pb2.LayerVersion:
    return layer_pb2.LayerVersion(
        version_id=record.version_id,
        content_hash=record.content_hash,
        n_grids=record.n_grids,
        source=record.source,
        created_at=to_timestamp(record.created_at),
        valid_from=to_timestamp(record.valid_from),
        valid_to=to_timestamp(record.valid_to),
        published=record.published,
        active=record.active,
    )


def token_info(info: TokenInfo) -> token_pb2.TokenInfo:
    p = info.principal
    return token_pb2.TokenInfo(
        token_id=info.token_id,
        principal=p.name,
        role=p.role.value,
        jurisdiction=list(p.jurisdiction),
        worker_id=p.worker_id or "",
        created_at=to_timestamp(info.created_at),
        revoked_at=to_timestamp(info.revoked_at),
    )
