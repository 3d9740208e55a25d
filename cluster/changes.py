"""What a new layer version changes: rows that moved grid, open events to re-dispatch, workers whose
grids were split or merged.

When grids are redrawn, a re-indexing run assigns every row against both versions. From that:

- the **transition matrix**: for each (previous grid, new grid) pair, how many rows went that way
  (sparse: only the pairs that occur; codes, since rows of two versions are unrelated numbers);
  ``rows_moved`` counts the rows whose grid code changed (gaining or losing a grid counts);
- the **open events whose grid changed**, handed to dispatch for re-assignment;
- the **workers whose grid was split, merged, re-coded or removed**, each with the new grids that
  overlap their old one by area (largest share first), proposed for a person to confirm.

Grids are matched by area overlap: new grid ``j`` succeeds old grid ``i`` when their intersection is
at least ``min_share`` of ``i``'s area; ``i`` was *split* when it has two or more successors, and
*merged* when a successor of it has two or more predecessors (each giving at least ``min_share`` of the
new grid's area). Areas are taken in degrees squared: only ratios within one grid are used, and a
grid spans far too little latitude for the scale to change across it.

>>> import shapely
>>> from citygrid.engine.layers.layer import GridLayer
>>> old = GridLayer.from_geometries([shapely.box(0, 0, 2, 1), shapely.box(2, 0, 3, 1), shapely.box(3, 0, 4, 1)],
...                                 {"grid_code": ["A", "B", "C"]})
>>> new = GridLayer.from_geometries([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), shapely.box(2, 0, 4, 1)],
...                                 {"grid_code": ["A1", "A2", "BC"]})
>>> t = transitions_table(old, new, *count_transitions(np.array([0, 0, 1, 2, -1]), np.array([0, 1, 2, 2, -1])))
>>> t.to_pydict()
{'previous_grid_code': [None, 'A', 'A', 'B', 'C'], 'grid_code': [None, 'A1', 'A2', 'BC', 'BC'], 'rows': [1, 1, 1, 1, 1]}
>>> report = build_change_report(old, new, t, workers=[("w1", "A"), ("w2", "C"), ("w3", "Z")])
>>> report.rows_moved, [(w.worker_id, w.change, w.proposals) for w in report.workers]
(4, [('w1', 'split', (('A1', 0.5), ('A2', 0.5))), ('w2', 'merged', (('BC', 1.0),)), ('w3', 'unknown', ())])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from citygrid.engine.errors import InvalidInput
from citygrid.engine.layers.layer import GridLayer

#: Share of a grid's area another grid must cover to count as its successor / predecessor.
DEFAULT_MIN_SHARE = 0.05

#: ``(event_id, lng, lat, grid_code)``: an open event, where it is and the grid it is filed under.
OpenEvent = tuple[str, float, float, "str | None"]
#: ``(worker_id, grid_code)``: a worker and the grid they serve.
GridWorker = tuple[str, str]


@dataclass(frozen=True)
class EventChange:
    event_id: str
    previous_grid_code: str | None
    grid_code: str | None


@dataclass(frozen=True)
class WorkerChange:
    """A worker to re-assign: ``change`` is ``split``, ``merged``, ``recoded`` (same area, new code),
    ``removed`` (the area is in no grid now) or ``unknown`` (the code is not in the previous version);
    ``proposals`` are ``(new grid code, share of the old grid's area)``, largest first."""

    worker_id: str
    grid_code: str
    change: str
    proposals: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class ChangeReport:
    previous_version: str
    version: str
    rows: int
    rows_moved: int
    #: ``previous_grid_code``, ``grid_code``, ``rows`` (nulls: no grid).
    transitions: pa.Table
    #: Old grid code -> the new codes it was split into.
    split_grids: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: New grid code -> the old codes merged into it.
    merged_grids: dict[str, tuple[str, ...]] = field(default_factory=dict)
    events: list[EventChange] = field(default_factory=list)
    workers: list[WorkerChange] = field(default_factory=list)

    def summary(self) -> dict:
        """The figures as JSON values."""
        return {
            "previous_version": self.previous_version,
            "version": self.version,
            "rows": self.rows,
            "rows_moved": self.rows_moved,
            "moved_share": self.rows_moved / self.rows if self.rows else 0.0,
            "transition_pairs": self.transitions.num_rows,
            "grids_split": len(self.split_grids),
            "grids_merged": len(self.merged_grids),
            "events_changed": len(self.events),
            "workers_to_confirm": len(self.workers),
        }

    def to_json(self) -> dict:
        """Summary, grids and workers as JSON values (the events are listed in their own table)."""
        return {
            **self.summary(),
            "split_grids": {k: list(v) for k, v in self.split_grids.items()},
            "merged_grids": {k: list(v) for k, v in self.merged_grids.items()},
            "workers": [
                {"worker_id": w.worker_id, "grid_code": w.grid_code, "change": w.change,
                 "proposals": [{"grid_code": c, "share": s} for c, s in w.proposals]}
                for w in self.workers
            ],
        }

    def events_table(self) -> pa.Table:
        return pa.table({
            "event_id": pa.array([e.event_id for e in self.events], pa.string()),
            "previous_grid_code": pa.array([e.previous_grid_code for e in self.events], pa.string()),
            "grid_code": pa.array([e.grid_code for e in self.events], pa.string()),
        })


# ---------------------------------------------------------------------- per-row transitions


def count_transitions(previous_rows: np.ndarray, grid_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct ``(previous row, row)`` pairs (int32, -1: no grid) and how many points took each."""
    previous_rows = np.asarray(previous_rows)
    grid_rows = np.asarray(grid_rows)
    if previous_rows.shape != grid_rows.shape:
        raise InvalidInput(f"{len(previous_rows)} previous rows for {len(grid_rows)} rows")
    pairs = ((previous_rows.astype(np.int64) + 1) << 32) | (grid_rows.astype(np.int64) + 1)
    unique, counts = np.unique(pairs, return_counts=True)
    return ((unique >> 32) - 1).astype(np.int32), ((unique & 0xFFFFFFFF) - 1).astype(np.int32), counts.astype(np.int64)


def merge_transitions(parts: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Add up the pair counts of several :func:`count_transitions` results."""
    parts = list(parts)
    if not parts:
        empty = np.empty(0, np.int32)
        return empty, empty, np.empty(0, np.int64)
    previous = np.concatenate([p[0] for p in parts]).astype(np.int64)
    rows = np.concatenate([p[1] for p in parts]).astype(np.int64)
    counts = np.concatenate([p[2] for p in parts]).astype(np.int64)
    pairs = ((previous + 1) << 32) | (rows + 1)
    unique, inverse = np.unique(pairs, return_inverse=True)
    total = np.bincount(inverse, weights=counts, minlength=len(unique)).astype(np.int64)
    return ((unique >> 32) - 1).astype(np.int32), ((unique & 0xFFFFFFFF) - 1).astype(np.int32), total


def transitions_table(previous: GridLayer, layer: GridLayer, previous_rows: np.ndarray, grid_rows: np.ndarray,
                      counts: np.ndarray) -> pa.Table:
    """The sparse from -> to matrix by grid code."""
    return pa.table({
        "previous_grid_code": _codes(previous, previous_rows),
        "grid_code": _codes(layer, grid_rows),
        "rows": pa.array(np.asarray(counts, dtype=np.int64)),
    })


# ---------------------------------------------------------------------- grids by area


@dataclass(frozen=True)
class GridOverlaps:
    """Every pair of an old and a new grid whose intersection has an area, with its shares."""

    previous_rows: np.ndarray
    rows: np.ndarray
    share_of_previous: np.ndarray
    share_of_new: np.ndarray


def grid_overlaps(previous: GridLayer, layer: GridLayer) -> GridOverlaps:
    """Intersection areas of the old and new grids.

    A grid whose geometry did not change (byte for byte) matches itself with both shares 1, and only
    the changed grids are intersected (an STRtree over the new ones): in layers without overlaps an
    unchanged grid has no area in common with any other, and a yearly redraw changes few grids.
    """
    old = previous.geometries()
    new = layer.geometries()
    old_wkb = shapely.to_wkb(old)
    new_by_wkb = {w: j for j, (w, g) in enumerate(zip(shapely.to_wkb(new), new)) if not g.is_empty}
    same = np.array([new_by_wkb.get(w, -1) if not g.is_empty else -1 for w, g in zip(old_wkb, old)], dtype=np.int64)
    kept_old = np.flatnonzero(same >= 0)
    changed_old = np.flatnonzero(same < 0)
    unmatched = np.ones(len(new), dtype=bool)
    unmatched[same[kept_old]] = False
    changed_new = np.flatnonzero(unmatched)

    tree = shapely.STRtree(new[changed_new])
    a, b = tree.query(old[changed_old], predicate="intersects")
    i, j = changed_old[a], changed_new[b]
    try:
        areas = shapely.area(shapely.intersection(old[i], new[j]))
    except shapely.errors.GEOSException:
        areas = shapely.area(shapely.intersection(shapely.make_valid(old[i]), shapely.make_valid(new[j])))
    old_area = shapely.area(old)
    new_area = shapely.area(new)
    keep = areas > 0
    i, j, areas = i[keep], j[keep], areas[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        share_old = np.where(old_area[i] > 0, areas / old_area[i], 0.0)
        share_new = np.where(new_area[j] > 0, areas / new_area[j], 0.0)
    ones = np.ones(len(kept_old))
    return GridOverlaps(
        np.concatenate([kept_old, i]).astype(np.int32),
        np.concatenate([same[kept_old], j]).astype(np.int32),
        np.concatenate([ones, share_old]),
        np.concatenate([ones, share_new]),
    )


def reshaped_grids(previous: GridLayer, layer: GridLayer, overlaps: GridOverlaps, *,
                   min_share: float = DEFAULT_MIN_SHARE) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """``(split, merged)``: old code -> new codes it was split into; new code -> old codes merged in."""
    successors = _successors(overlaps, min_share)
    predecessors: dict[int, list[int]] = {}
    for i, j, share in zip(overlaps.previous_rows, overlaps.rows, overlaps.share_of_new):
        if share >= min_share:
            predecessors.setdefault(int(j), []).append(int(i))
    split = {
        previous.codes[i]: tuple(layer.codes[j] for j, _ in succ)
        for i, succ in successors.items() if len(succ) >= 2
    }
    merged = {
        layer.codes[j]: tuple(previous.codes[i] for i in sorted(preds))
        for j, preds in predecessors.items() if len(preds) >= 2
    }
    return split, merged


# ---------------------------------------------------------------------- the report


def build_change_report(
    previous: GridLayer,
    layer: GridLayer,
    transitions: pa.Table,
    *,
    events: Iterable[OpenEvent] | Callable[[], Iterable[OpenEvent]] | None = None,
    assigner=None,
    workers: Iterable[GridWorker] | Callable[[], Iterable[GridWorker]] | None = None,
    min_share: float = DEFAULT_MIN_SHARE,
) -> ChangeReport:
    """The change report of a re-indexing run from ``previous`` to ``layer``.

    ``transitions`` is :func:`transitions_table` of the whole run. ``events`` (or a callable giving
    them) are the open events; ``assigner`` (a :class:`citygrid.engine.layers.assignment.Assigner` of
    ``layer``) locates them. ``workers`` (or a callable) are the grid workers.
    """
    rows = int(pc.sum(transitions.column("rows")).as_py() or 0)
    previous_codes = transitions.column("previous_grid_code")
    codes = transitions.column("grid_code")
    same = pc.fill_null(pc.equal(previous_codes, codes), False)
    both_null = pc.and_(pc.is_null(previous_codes), pc.is_null(codes))
    stayed = pc.or_(same, both_null)
    rows_moved = int(pc.sum(pc.filter(transitions.column("rows"), pc.invert(stayed))).as_py() or 0)

    overlaps = grid_overlaps(previous, layer)
    split, merged = reshaped_grids(previous, layer, overlaps, min_share=min_share)
    changed_events = _changed_events(layer, events, assigner)
    worker_changes = _worker_changes(previous, layer, overlaps, workers, split, merged, min_share)
    return ChangeReport(
        previous_version=previous.version_id,
        version=layer.version_id,
        rows=rows,
        rows_moved=rows_moved,
        transitions=transitions,
        split_grids=split,
        merged_grids=merged,
        events=changed_events,
        workers=worker_changes,
    )


def _changed_events(layer: GridLayer, events, assigner) -> list[EventChange]:
    if events is None:
        return []
    records = list(events() if callable(events) else events)
    if not records:
        return []
    if assigner is None:
        raise InvalidInput("locating the open events needs the assigner of the new layer version")
    ids = [str(r[0]) for r in records]
    lng = np.array([r[1] for r in records], dtype=np.float64)
    lat = np.array([r[2] for r in records], dtype=np.float64)
    grid_rows = assigner.assign(lng, lat).grid_rows
    out = []
    for event_id, record, row in zip(ids, records, grid_rows):
        code = layer.codes[row] if row >= 0 else None
        if code != record[3]:
            out.append(EventChange(event_id, record[3], code))
    return out


def _worker_changes(previous: GridLayer, layer: GridLayer, overlaps: GridOverlaps, workers, split, merged,
                    min_share: float) -> list[WorkerChange]:
    if workers is None:
        return []
    successors = _successors(overlaps, min_share)
    merged_old = {code for codes in merged.values() for code in codes}
    new_codes = set(layer.codes)
    out = []
    for worker_id, code in (workers() if callable(workers) else workers):
        try:
            i = previous.row_of(code)
        except LookupError:
            out.append(WorkerChange(str(worker_id), code, "unknown", ()))
            continue
        proposals = tuple((layer.codes[j], round(float(share), 4)) for j, share in successors.get(i, []))
        if code in split:
            change = "split"
        elif code in merged_old:
            change = "merged"
        elif not proposals:
            change = "removed"
        elif proposals[0][0] != code and code not in new_codes:
            change = "recoded"
        else:
            continue
        out.append(WorkerChange(str(worker_id), code, change, proposals))
    return out


def _successors(overlaps: GridOverlaps, min_share: float) -> dict[int, list[tuple[int, float]]]:
    out: dict[int, list[tuple[int, float]]] = {}
    for i, j, share in zip(overlaps.previous_rows, overlaps.rows, overlaps.share_of_previous):
        if share >= min_share:
            out.setdefault(int(i), []).append((int(j), float(share)))
    for succ in out.values():
        succ.sort(key=lambda x: (-x[1], x[0]))
    return out


def _codes(layer: GridLayer, rows: np.ndarray) -> pa.Array:
    rows = np.asarray(rows, dtype=np.int64)
    codes = layer.attributes.column("grid_code").combine_chunks()
    return codes.take(pa.array(np.where(rows >= 0, rows, 0), mask=rows < 0))
