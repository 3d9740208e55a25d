"""The layer registry: which saved layer versions exist, when each is valid, and which one is active.

The registry lives in the data directory's database (table ``layer_versions`` and the ``active``
pointer in ``layer_registry``); the layers themselves are saved version directories
(:mod:`citygrid.engine.layers.snapshots`). A version's life:

1. **registered** (:meth:`LayerRegistry.register`, or found on disk by :meth:`LayerRegistry.sync`):
   saved, not yet valid at any time;
2. **published** (:meth:`LayerRegistry.publish`) with a ``valid_from``, later than every other published
   version's; the previous latest version's ``valid_to`` becomes that time, so the published versions
   tile the time line without overlap;
3. **active** (:meth:`LayerRegistry.activate`): answers every request that names no time.

Readers take an immutable :class:`LayerSnapshot` (the layer and its assigner) with :meth:`snapshot` (the
active version) or :meth:`at` (the version valid at a time), and keep it for the whole request.
Activation loads the new version's snapshot first (index included) and then swaps one reference, so a
request never sees half a swap: those in flight finish on the old snapshot, new ones get the new one.

One process writes the registry. Read-only replicas open the same data directory and call
:meth:`refresh` (or run :meth:`follow` in a thread) to pick up publications and activations.

>>> import tempfile, shapely
>>> from citygrid.engine.layers.layer import GridLayer
>>> registry = LayerRegistry(tempfile.mkdtemp(), assigner_factory=lambda layer: None)
>>> layer = GridLayer.from_geometries([shapely.box(0, 0, 1, 1)], {"grid_code": ["A"]}, version_id="v1")
>>> registry.register(layer).published
False
>>> _ = registry.publish("v1", datetime(2026, 1, 1, tzinfo=timezone.utc))
>>> _ = registry.activate("v1")
>>> registry.snapshot().version_id, registry.at(datetime(2026, 6, 1, tzinfo=timezone.utc)).version_id
('v1', 'v1')
"""

from __future__ import annotations

import bisect
import logging
import os
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from citygrid.engine.layers import snapshots
from citygrid.engine.database import open_database, transaction
from citygrid.engine.errors import CityGridError, InvalidInput, NotFound, PreconditionFailed
from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.layers.validation import validate_layer

log = logging.getLogger("citygrid.registry")

STORE = "layer_registry"
MIGRATIONS = [
    [
        """CREATE TABLE layer_versions (
            version_id TEXT PRIMARY KEY,
            content_hash TEXT NOT NULL,
            n_grids INTEGER NOT NULL,
            source TEXT NOT NULL,
            created_at TEXT NOT NULL,
            valid_from TEXT,
            valid_to TEXT
        )""",
        "CREATE TABLE layer_registry (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ]
]

#: How many loaded snapshots besides the active one stay in memory (for requests with a time).
DEFAULT_CACHE_SIZE = 4


@dataclass(frozen=True)
class VersionRecord:
    """One row of the registry."""

    version_id: str
    content_hash: str
    n_grids: int
    source: str
    created_at: datetime
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    active: bool = False

    @property
    def published(self) -> bool:
        return self.valid_from is not None

    def valid_at(self, when: datetime) -> bool:
        return self.published and self.valid_from <= when and (self.valid_to is None or when < self.valid_to)


@dataclass(frozen=True, eq=False)
class LayerSnapshot:
    """An immutable loaded version: what one request works on from start to end."""

    version_id: str
    layer: GridLayer
    #: The :class:`citygrid.engine.layers.assignment.Assigner` of ``layer`` (its index loaded or built).
    assigner: object


def _default_assigner(layer: GridLayer):
    from citygrid.engine.layers.assignment import Assigner

    return Assigner.for_layer(layer)


class LayerRegistry:
    """Versions, validity dates and the active pointer of the layers in ``data_dir``.

    ``assigner_factory`` builds the assigner of a loaded layer (default
    :meth:`citygrid.engine.layers.assignment.Assigner.for_layer`). Safe to share between threads.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        *,
        assigner_factory: Callable[[GridLayer], object] | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ):
        self.data_dir = Path(data_dir)
        self._db = open_database(self.data_dir, STORE, MIGRATIONS)
        self._assigner_factory = assigner_factory or _default_assigner
        self._cache_size = cache_size
        self._db_lock = threading.Lock()  # one statement or transaction at a time on the connection
        self._write_lock = threading.Lock()  # publish / activate / refresh, one at a time
        self._load_lock = threading.Lock()  # loading snapshots, one at a time
        self._cache: OrderedDict[str, LayerSnapshot] = OrderedDict()
        self._active: LayerSnapshot | None = None
        self._timeline: tuple[tuple[datetime, datetime | None, str], ...] = ()
        self.sync()
        self.refresh()

    def close(self) -> None:
        with self._db_lock:
            self._db.close()

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> LayerSnapshot:
        """The active version's snapshot (lock-free: one attribute read)."""
        active = self._active
        if active is None:
            raise PreconditionFailed(
                "no active layer version: upload or import one, publish it and activate it "
                "(or start the server with --demo)"
            )
        return active

    def at(self, when: datetime) -> LayerSnapshot:
        """The snapshot of the version valid at ``when`` (an aware datetime)."""
        when = _utc(when)
        timeline = self._timeline
        i = bisect.bisect_right([start for start, _, _ in timeline], when) - 1
        if i < 0 or (timeline[i][1] is not None and when >= timeline[i][1]):
            first = f"; the first one is valid from {timeline[0][0].isoformat()}" if timeline else ""
            raise NotFound(f"no published layer version is valid at {when.isoformat()}{first}")
        return self.get(timeline[i][2])

    def get(self, version_id: str) -> LayerSnapshot:
        """The snapshot of a registered version (loaded on first use and cached)."""
        active = self._active
        if active is not None and active.version_id == version_id:
            return active
        snap = self._cache.get(version_id)
        if snap is not None:
            return snap
        self.version(version_id)  # NotFound for an unknown id
        return self._load(version_id)

    def get_layer(self, version_id: str) -> GridLayer:
        """The layer of a registered version (mapped from its directory; no index is built)."""
        snap = self._cache.get(version_id)
        if snap is None and self.active_version_id == version_id:
            snap = self._active
        if snap is not None:
            return snap.layer
        self.version(version_id)
        return snapshots.load_layer(snapshots.version_dir(self.data_dir, version_id))

    def version(self, version_id: str) -> VersionRecord:
        rows = self._select(" WHERE version_id = ?", (version_id,))
        if not rows:
            raise NotFound(f"no layer version {version_id!r}; list the versions to see which exist")
        return rows[0]

    def versions(self) -> list[VersionRecord]:
        """Every registered version: published ones by ``valid_from``, then the others by creation."""
        return self._select(
            " ORDER BY valid_from IS NULL, valid_from, created_at, version_id", ()
        )

    @property
    def active_version_id(self) -> str | None:
        active = self._active
        return active.version_id if active is not None else None

    # ------------------------------------------------------------------ writing

    def register(self, layer: GridLayer) -> VersionRecord:
        """Save ``layer`` as a version directory (if it is not saved yet) and record it, unpublished.

        Registering the same content under the same id again returns the existing record; other
        content under an existing id is a :class:`~citygrid.engine.errors.Conflict`.
        """
        path = snapshots.save_layer(layer, self.data_dir)
        self._insert(snapshots.read_manifest(path))
        return self.version(layer.version_id)

    def sync(self) -> list[str]:
        """Record every saved version directory the registry does not know yet (for example from
        ``citygrid layer import``); return their ids."""
        known = {r.version_id for r in self._select("", ())}
        added = []
        for manifest in snapshots.list_versions(self.data_dir):
            if manifest["version_id"] not in known:
                self._insert(manifest)
                added.append(manifest["version_id"])
        return added

    def publish(self, version_id: str, valid_from: datetime | None = None) -> VersionRecord:
        """Make a registered version valid from ``valid_from`` (default now) on, closing the previous
        latest version's validity at that time.

        Publishing is gated by coverage validation (:func:`citygrid.engine.layers.validation.validate_layer`):
        a layer with overlaps, gaps, invalid geometries or bad codes is refused (slivers pass).
        """
        valid_from = _utc(valid_from or datetime.now(timezone.utc))
        with self._write_lock:
            record = self.version(version_id)
            if record.published:
                raise PreconditionFailed(
                    f"layer version {version_id} is already published (valid from "
                    f"{record.valid_from.isoformat()}); upload the changed grids as a new version"
                )
            report = validate_layer(self.get_layer(version_id))
            if not report.valid:
                problems = ", ".join(
                    f"{k}={v}" for k, v in report.summary().items() if k.startswith("n_") and k != "n_slivers" and v
                )
                raise PreconditionFailed(
                    f"layer version {version_id} fails coverage validation ({problems}); fix the grids "
                    "and upload them as a new version (ValidateLayer gives the full report)"
                )
            with self._db_lock, transaction(self._db):
                latest = self._db.execute(
                    "SELECT version_id, valid_from FROM layer_versions WHERE valid_from IS NOT NULL "
                    "ORDER BY valid_from DESC LIMIT 1"
                ).fetchone()
                if latest is not None and _parse(latest[1]) >= valid_from:
                    raise PreconditionFailed(
                        f"valid_from {valid_from.isoformat()} is not after the latest published version "
                        f"{latest[0]}'s valid_from {latest[1]}; publish with a later time"
                    )
                if latest is not None:
                    self._db.execute(
                        "UPDATE layer_versions SET valid_to = ? WHERE version_id = ?", (_format(valid_from), latest[0])
                    )
                self._db.execute(
                    "UPDATE layer_versions SET valid_from = ?, valid_to = NULL WHERE version_id = ?",
                    (_format(valid_from), version_id),
                )
            self._reload_timeline()
        return self.version(version_id)

    def activate(self, version_id: str) -> tuple[VersionRecord, str | None]:
        """Swap the active version to a published one; return its record and the previous active id.

        The new snapshot is loaded (its index built or mapped) before the swap, so no request waits
        for it and none fails.
        """
        with self._write_lock:
            record = self.version(version_id)
            if not record.published:
                raise PreconditionFailed(
                    f"layer version {version_id} is not published; publish it (with its valid_from) first"
                )
            snap = self.get(version_id)
            with self._db_lock, transaction(self._db):
                self._db.execute(
                    "INSERT INTO layer_registry (key, value) VALUES ('active', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (version_id,),
                )
            previous = self.active_version_id
            self._swap(snap)
        return self.version(version_id), previous

    def refresh(self) -> bool:
        """Re-read the time line and the active pointer from the database (another process may have
        changed them); swap in the new active snapshot if it changed. Returns whether it did."""
        with self._write_lock:
            self._reload_timeline()
            with self._db_lock:
                row = self._db.execute("SELECT value FROM layer_registry WHERE key = 'active'").fetchone()
            if row is None or row[0] == self.active_version_id:
                return False
            self._swap(self.get(row[0]))
            return True

    def follow(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Call :meth:`refresh` every ``interval`` seconds until ``stop`` is set (a replica's thread).
        A failed refresh (a version directory not yet visible, a busy database) is logged and retried
        on the next tick."""
        while not stop.wait(interval):
            try:
                self.refresh()
            except (CityGridError, sqlite3.Error) as exc:
                log.warning("could not follow the layer registry (will retry): %s", exc)

    # ------------------------------------------------------------------ internals

    def _swap(self, snap: LayerSnapshot) -> None:
        previous = self._active
        self._active = snap  # the one atomic step readers see
        if previous is not None and previous is not snap:
            self._remember(previous)
        self._cache.pop(snap.version_id, None)

    def _load(self, version_id: str) -> LayerSnapshot:
        with self._load_lock:
            snap = self._cache.get(version_id)
            if snap is not None:
                return snap
            layer = snapshots.load_layer(snapshots.version_dir(self.data_dir, version_id))
            snap = LayerSnapshot(version_id, layer, self._assigner_factory(layer))
            self._remember(snap)
            return snap

    def _remember(self, snap: LayerSnapshot) -> None:
        cache = OrderedDict(self._cache)  # copy-on-write: readers index the old dict lock-free
        cache[snap.version_id] = snap
        while len(cache) > self._cache_size:
            cache.popitem(last=False)
        self._cache = cache

    def _reload_timeline(self) -> None:
        with self._db_lock:
            rows = self._db.execute(
                "SELECT valid_from, valid_to, version_id FROM layer_versions WHERE valid_from IS NOT NULL "
                "ORDER BY valid_from"
            ).fetchall()
        self._timeline = tuple((_parse(a), _parse(b) if b else None, v) for a, b, v in rows)

    def _insert(self, manifest: dict) -> None:
        with self._db_lock, transaction(self._db):
            self._db.execute(
                "INSERT INTO layer_versions (version_id, content_hash, n_grids, source, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(version_id) DO NOTHING",
                (
                    manifest["version_id"],
                    manifest["content_hash"],
                    int(manifest["n_grids"]),
                    manifest.get("source", ""),
                    manifest.get("created_at") or _format(datetime.now(timezone.utc)),
                ),
            )

    def _select(self, where: str, params: tuple) -> list[VersionRecord]:
        with self._db_lock:
            rows = self._db.execute(
                "SELECT version_id, content_hash, n_grids, source, created_at, valid_from, valid_to "
                "FROM layer_versions" + where,
                params,
            ).fetchall()
            active = self._db.execute("SELECT value FROM layer_registry WHERE key = 'active'").fetchone()
        active_id = active[0] if active else None
        return [
            VersionRecord(
                version_id=v,
                content_hash=h,
                n_grids=n,
                source=s,
                created_at=_parse(c),
                valid_from=_parse(a) if a else None,
                valid_to=_parse(b) if b else None,
                active=v == active_id,
            )
            for v, h, n, s, c, a, b in rows
        ]


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise InvalidInput(f"time {when.isoformat()} has no time zone; give one (for example +08:00 or Z)")
    return when.astimezone(timezone.utc)


def _format(when: datetime) -> str:
    """UTC with a fixed width, so the text order in SQL is the time order."""
    return _utc(when).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _parse(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
