"""Re-indexing jobs: millions of rows assigned to the grids of a layer version on a Ray cluster.

A job reads a Parquet dataset with lng/lat columns, assigns every row against a layer version (and,
when a previous version is given, against that too), and writes the rows with their grid code, status
and parent chain as a Parquet dataset partitioned by street (or community, grid or district), each row
keeping its input row id. It runs in these phases:

1. **sort**: one task per input slice (whole row groups) reads its rows, gives each point the spatial
   key of its cell (:mod:`citygrid.cluster.spatial`) and keeps the rows in the object store with
   their order by key (rows are not moved: the assign tasks gather theirs once), returning the count
   of points per key.
2. **plan**: from the counts, the key line is cut into ranges of equal weight, one per task, a whole
   number of waves over the cluster's CPUs, each of at least ``task_rows / 2`` points. The plan is
   kept in the job record (a resumed job reuses it).
3. **assign**: one task per key range gathers its rows from every sorted slice (on one node it reads
   them in place, in shared memory; across nodes a small task per slice first cuts it into the
   ranges where it lies, so each node receives only its tasks' rows), assigns them with the layer
   placed once in the object store (:mod:`citygrid.cluster.placement`) — runs of neighbouring
   points, so the index stays in cache — and writes one file per partition it touches, atomically
   and under names fixed by the task (:mod:`citygrid.cluster.outputs`). A task killed half-way is
   retried by Ray (``max_retries``) and overwrites its own files. Each finished task is recorded in
   the job.
4. **report**: with a previous version, the change report (:mod:`citygrid.cluster.changes`).

The output rows are those of the local engine, row for row by row id: every task runs the same
:class:`~citygrid.engine.layers.assignment.Assigner` on the same doubles.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray

from citygrid.cluster import inputs, outputs
from citygrid.cluster.placement import PlacedLayer, attach, place_layer
from citygrid.cluster.spatial import N_KEYS, KeyFrame, balanced_boundaries, choose_task_count, key_histogram
from citygrid.cluster import changes
from citygrid.engine.layers import sources
from citygrid.engine.layers.assignment import Assigner, Status
from citygrid.engine.errors import CityGridError, InvalidInput
from citygrid.cluster.jobs import Job, JobState, JobStore
from citygrid.engine.layers.layer import FieldMap, GridLayer
from citygrid.engine.hierarchy import CODE_COLUMNS, code_column

log = logging.getLogger(__name__)

KIND = "reindex"
#: ``--partition-by`` levels and the column each partitions on.
PARTITION_LEVELS = {level: code_column(level) for level in ("street", "community", "grid", "district")}
#: Columns every output row gains (``previous_grid_code`` too when a previous version is given).
STATUS_COLUMN = "status"
PREVIOUS_COLUMN = "previous_grid_code"
#: Status names by code, the values of the ``status`` column (as ``citygrid assign`` writes them).
STATUS_NAMES = tuple(s.name.lower() for s in Status)
#: Prefix given to an input column whose name an output column takes (``grid_code`` -> ``input_grid_code``).
RENAMED_PREFIX = "input_"

#: How assign tasks get their rows (see :attr:`ReindexRequest.shuffle`).
SHUFFLES = ("auto", "direct", "cut")
#: Target points per spatial task (tasks get between half and all of it, see ``choose_task_count``).
DEFAULT_TASK_ROWS = 4_000_000
#: Largest input slice (read and sorted by one task; whole row groups, so never less than one)...
DEFAULT_SLICE_ROWS = 4_000_000
#: ...and at least this many slices per CPU, so the sort phase is balanced over the cluster.
SLICE_WAVES = 4
#: Ray retries of a task whose worker died (killed, out of memory, node lost).
MAX_RETRIES = 3
#: Points assigned between two progress reports of a task.
PROGRESS_ROWS = 1 << 20
#: Seconds between two reads of the tasks' progress by the driver.
POLL_SECONDS = 0.5
#: Seconds a cancelled job waits for its running tasks to stop before it tidies the output.
CANCEL_GRACE_SECONDS = 30.0

_CHANGES = "_changes"
#: Test hook: a directory where a file ``kill-assign-<task>`` makes the next attempt of that task kill
#: its own worker (SIGKILL) after writing its first output file. Read in the worker's environment.
FAULT_DIR_ENV = "CITYGRID_FAULT_DIR"


@dataclass(frozen=True)
class ReindexRequest:
    """What a re-indexing job is asked to do (the job's parameters, JSON-able)."""

    input: str
    layer: str
    output: str
    previous: str | None = None
    lng_col: str = "lng"
    lat_col: str = "lat"
    row_id_col: str = "row_id"
    partition_by: str = "street"
    crs: str = "wgs84"
    fallback_m: float = 0.0
    task_rows: int = DEFAULT_TASK_ROWS
    slice_rows: int = DEFAULT_SLICE_ROWS
    #: Parquet of the open events for the change report: ``event_id, lng, lat`` and optionally
    #: ``grid_code`` (else their grid under the previous version).
    events: str | None = None
    #: Parquet of the grid workers for the change report: ``worker_id, grid_code``.
    grid_workers: str | None = None
    #: Source columns of the grid attributes when a layer is given as a grid file (FieldMap fields).
    fields: dict = field(default_factory=dict)
    #: How tasks get their rows: ``direct`` (slice the sorted slices in shared memory: one node),
    #: ``cut`` (a task per slice cuts it first: several nodes), ``auto`` (by the number of nodes).
    shuffle: str = "auto"

    def __post_init__(self):
        if self.partition_by not in PARTITION_LEVELS:
            raise InvalidInput(
                f"cannot partition by {self.partition_by!r}; choose one of {', '.join(PARTITION_LEVELS)}"
            )
        if self.task_rows < 1 or self.slice_rows < 1:
            raise InvalidInput("task_rows and slice_rows must be positive")
        if self.fallback_m < 0:
            raise InvalidInput(f"fallback_m must be 0 or more metres, got {self.fallback_m}")
        if self.shuffle not in SHUFFLES:
            raise InvalidInput(f"shuffle must be one of {', '.join(SHUFFLES)}, not {self.shuffle!r}")
        if self.lng_col == self.lat_col:
            raise InvalidInput("the lng and lat columns must differ")
        if (self.events or self.grid_workers) and not self.previous:
            raise InvalidInput("events and grid workers are for the change report: give a previous version too")

    def to_params(self) -> dict:
        return asdict(self)

    @classmethod
    def from_params(cls, params: dict) -> "ReindexRequest":
        return cls(**params)

    @property
    def partition_column(self) -> str:
        return PARTITION_LEVELS[self.partition_by]

    def field_map(self) -> FieldMap:
        return FieldMap(**self.fields)


@dataclass(frozen=True)
class TaskSpec:
    """What every task of one job needs besides its rows (small: pickled into each task)."""

    lng_col: str
    lat_col: str
    row_id_col: str
    renames: dict
    frame: KeyFrame
    output: str
    partition_column: str
    crs: str
    fallback_m: float


class JobCancelled(Exception):
    """The job's record asks it to stop (cancel)."""


class JobStopped(Exception):
    """The process running the job is shutting down."""


# ---------------------------------------------------------------------- the driver


def run_reindex(
    store: JobStore,
    job_id: str,
    *,
    data_dir: str | os.PathLike,
    should_stop: Callable[[], bool] = lambda: False,
    open_events: Callable[[], Iterable[changes.OpenEvent]] | None = None,
    grid_workers: Callable[[], Iterable[changes.GridWorker]] | None = None,
) -> Job:
    """Run (or resume) the queued job ``job_id`` to its end on the Ray this process is connected to;
    return its final record.

    ``should_stop`` is polled: when it turns true the job stops as *interrupted* (resumable).
    ``open_events`` / ``grid_workers`` feed the change report when the request names no files.
    """
    job = store.start(job_id)
    try:
        result = _Reindex(store, job, Path(data_dir), should_stop, open_events, grid_workers).run()
    except JobCancelled:
        return store.finish(job_id, JobState.CANCELLED, error="cancelled on request")
    except JobStopped:
        return store.interrupt(job_id, "the process running the job shut down; resume it to finish")
    except CityGridError as exc:
        return store.finish(job_id, JobState.FAILED, error=str(exc))
    except Exception as exc:  # a task's error arrives as a RayTaskError: keep its cause for the record
        log.error("job %s failed:\n%s", job_id, traceback.format_exc())
        return store.finish(job_id, JobState.FAILED, error=_describe(exc))
    return store.finish(job_id, JobState.SUCCEEDED, result=result)


class _Reindex:
    def __init__(self, store: JobStore, job: Job, data_dir: Path, should_stop, open_events, grid_workers):
        self.store = store
        self.job_id = job.job_id
        self.request = ReindexRequest.from_params(job.params)
        self.data_dir = data_dir
        self.should_stop = should_stop
        self.open_events = open_events
        self.grid_workers = grid_workers

    def run(self) -> dict:
        request = self.request
        layer = sources.resolve_layer(request.layer, self.data_dir, request.field_map())
        previous = sources.resolve_layer(request.previous, self.data_dir, request.field_map()) if request.previous else None
        dataset = inputs.open_input(request.input, columns=(request.lng_col, request.lat_col))
        out = outputs.claim_output(request.output, self.job_id, {
            "kind": KIND, "layer": layer.version_id,
            "previous": previous.version_id if previous is not None else None,
            "partition_by": request.partition_by, "partition_column": request.partition_column,
            "input": dataset.root,
        })
        plan = self.store.plan(self.job_id)
        if plan is not None:
            dataset.check_unchanged(plan["fingerprint"])
            frame = KeyFrame.from_dict(plan["frame"])
        else:
            frame = KeyFrame.around(layer.bounds, *([previous.bounds] if previous is not None else []))
        spec = self._spec(dataset, frame, out)
        self._check()

        self.store.set_progress(self.job_id, phase="placing")
        placed = place_layer(layer, _assigner(layer))
        placed_previous = place_layer(previous, _assigner(previous)) if previous is not None else None

        if plan is None or len(self._finished_tasks(out)) < plan["n_tasks"]:
            plan = self._sort_and_assign(dataset, plan, spec, out, placed, placed_previous)
        outputs.remove_temporaries(out)

        tasks = self.store.tasks(self.job_id)
        result = {
            "output": str(out),
            "layer": layer.version_id,
            "rows": sum(t.rows for t in tasks.values()),
            "tasks": len(tasks),
            "partitions_written": sum(len(t.files) for t in tasks.values()),
            "status_counts": _sum_counts(t.summary.get("status_counts", {}) for t in tasks.values()),
            "object_store_bytes": placed.nbytes + (placed_previous.nbytes if placed_previous else 0),
        }
        if previous is not None:
            self.store.set_progress(self.job_id, phase="reporting")
            report = self._change_report(out, previous, layer, plan["n_tasks"])
            result["changes"] = report.summary()
        outputs.flush()
        outputs.mark_succeeded(out, {"job_id": self.job_id, **result})
        return result

    # ------------------------------------------------------------------ phases

    def _spec(self, dataset: inputs.InputDataset, frame: KeyFrame, out: Path) -> TaskSpec:
        request = self.request
        produced = set(CODE_COLUMNS) | {STATUS_COLUMN, PREVIOUS_COLUMN}
        renames = {
            name: RENAMED_PREFIX + name
            for name in dataset.schema.names
            if name in produced and name not in (request.lng_col, request.lat_col, request.row_id_col)
        }
        return TaskSpec(
            lng_col=request.lng_col, lat_col=request.lat_col, row_id_col=request.row_id_col, renames=renames,
            frame=frame, output=str(out), partition_column=request.partition_column, crs=request.crs,
            fallback_m=request.fallback_m,
        )

    def _make_plan(self, dataset: inputs.InputDataset, spec: TaskSpec, histogram: np.ndarray, slice_rows: int) -> dict:
        n_tasks = choose_task_count(dataset.n_rows, self.request.task_rows, _parallelism())
        boundaries = balanced_boundaries(histogram, n_tasks)
        cumulative = np.concatenate([[0], np.cumsum(histogram)])
        plan = {
            "frame": spec.frame.to_dict(),
            "boundaries": [int(b) for b in boundaries],
            "n_tasks": n_tasks,
            "n_rows": dataset.n_rows,
            "slice_rows": slice_rows,
            "task_rows": [int(n) for n in cumulative[boundaries[1:]] - cumulative[boundaries[:-1]]],
            "fingerprint": dataset.fingerprint(),
        }
        self.store.set_plan(self.job_id, plan)
        self.store.set_totals(self.job_id, rows_total=dataset.n_rows, tasks_total=n_tasks)
        return plan

    def _finished_tasks(self, out: Path) -> dict:
        """The tasks recorded as finished whose files are all still there and complete (a task whose
        output was deleted, or cut short by a crash of the machine, runs again)."""
        return {
            k: record for k, record in self.store.tasks(self.job_id).items()
            if all(outputs.intact(out / f, n) for f, n in record.summary.get("file_rows", {}).items())
        }

    def _sort_and_assign(self, dataset, plan: dict | None, spec: TaskSpec, out: Path,
                         placed: PlacedLayer, placed_previous: PlacedLayer | None) -> dict:
        self.store.set_progress(self.job_id, phase="sorting")
        slice_rows = plan["slice_rows"] if plan is not None else min(
            self.request.slice_rows, math.ceil(dataset.n_rows / (SLICE_WAVES * _parallelism())))
        sorted_slices = [_sort_slice.options(num_returns=2).remote(piece, spec)
                         for piece in dataset.slices(max(slice_rows, 1))]
        histogram = self._sum_histograms([h for h, _ in sorted_slices])
        if plan is None:
            plan = self._make_plan(dataset, spec, histogram, slice_rows)
        tables = [t for _, t in sorted_slices]
        del sorted_slices
        n_tasks, boundaries = plan["n_tasks"], plan["boundaries"]
        done = self._finished_tasks(out)
        wanted = [k for k in range(n_tasks) if k not in done]

        self.store.set_progress(self.job_id, phase="assigning")
        if self.request.shuffle == "cut" or (self.request.shuffle == "auto" and _alive_nodes() > 1):
            # Across nodes: cut each sorted slice where it lies, so a task pulls only its own rows.
            wanted_mask = tuple(k not in done for k in range(n_tasks))
            cut = [_cut_slice.options(num_returns=n_tasks).remote(t, boundaries, wanted_mask) for t in tables]
            cut = [[refs] if n_tasks == 1 else list(refs) for refs in cut]
            shares = {k: [c[k] for c in cut] for k in wanted}
            del cut
        else:
            # On one node: every task maps all the sorted slices (shared memory) and takes its key range.
            shares = {k: tables for k in wanted}
        del tables
        progress = _ProgressReader(self.job_id)
        running = {
            _assign_task.remote(k, spec, placed, placed_previous, progress.sink, (boundaries[k], boundaries[k + 1]),
                                *refs): k
            for k, refs in shares.items()
        }
        del shares  # the pending tasks hold the rows now; the store frees them as the tasks finish
        finished_rows = {k: t.rows for k, t in done.items()}
        try:
            while running:
                ready, _ = ray.wait(list(running), num_returns=len(running), timeout=POLL_SECONDS, fetch_local=False)
                for ref in ready:
                    k = running.pop(ref)
                    result = ray.get(ref)
                    self.store.complete_task(self.job_id, k, rows=result["rows"], files=result["files"],
                                             summary={"status_counts": result["status_counts"],
                                                      "file_rows": result["file_rows"]})
                    finished_rows[k] = result["rows"]
                partial = progress.rows()
                rows_done = sum(finished_rows.values()) + sum(n for k, n in partial.items() if k not in finished_rows)
                self.store.set_progress(self.job_id, rows_done=rows_done)
                self._check()
        except BaseException:  # cancelled, stopped, or a task failed for good: stop the others
            self._stop_tasks(list(running))
            raise
        finally:
            progress.forget()
        return plan

    def _change_report(self, out: Path, previous: GridLayer, layer: GridLayer, n_tasks: int) -> changes.ChangeReport:
        parts = []
        for k in range(n_tasks):
            path = out / _CHANGES / "transitions" / outputs.part_name(k)
            if path.exists():
                t = pq.read_table(path)
                parts.append(tuple(t.column(c).to_numpy() for c in ("previous_row", "row", "rows")))
        merged = changes.merge_transitions(parts)
        table = changes.transitions_table(previous, layer, *merged)
        events = _events_source(self.request, previous, self.open_events)
        report = changes.build_change_report(
            previous, layer, table,
            events=events, assigner=_assigner(layer) if events is not None else None,
            workers=_workers_source(self.request, self.grid_workers),
        )
        folder = out / _CHANGES
        outputs.write_parquet_atomic(report.transitions, folder / "transitions.parquet")
        outputs.write_parquet_atomic(report.events_table(), folder / "events.parquet")
        outputs.write_json_atomic(folder / "report.json", report.to_json())
        return report

    # ------------------------------------------------------------------ helpers

    def _check(self) -> None:
        if self.should_stop():
            raise JobStopped()
        if self.store.get(self.job_id).cancel_requested:
            raise JobCancelled()

    def _sum_histograms(self, refs: list) -> np.ndarray:
        """The sum of the sort tasks' key counts, added up as they arrive (checking for cancel and stop)."""
        total = np.zeros(N_KEYS, dtype=np.int64)
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_SECONDS, fetch_local=False)
                for ref in ready:
                    total += ray.get(ref)
                self._check()
        except (JobCancelled, JobStopped):
            self._stop_tasks(pending)
            raise
        return total

    def _stop_tasks(self, refs: list) -> None:
        for ref in refs:
            ray.cancel(ref, recursive=True)
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_SECONDS)


def _assigner(layer: GridLayer) -> Assigner:
    """The driver's assigner of a layer: the saved index mapped (built and saved on first use)."""
    return Assigner.for_layer(layer)


def _events_source(request: ReindexRequest, previous: GridLayer, provider):
    if request.events:
        table = pq.read_table(request.events)
        missing = {"event_id", "lng", "lat"} - set(table.column_names)
        if missing:
            raise InvalidInput(f"{request.events}: the events need columns event_id, lng, lat (missing {sorted(missing)})")
        ids = [str(v) for v in table.column("event_id").to_pylist()]
        lng = inputs.float_column(table, "lng")
        lat = inputs.float_column(table, "lat")
        if "grid_code" in table.column_names:
            codes = table.column("grid_code").to_pylist()
        else:
            rows = _assigner(previous).assign(lng, lat).grid_rows
            codes = [previous.codes[r] if r >= 0 else None for r in rows]
        return list(zip(ids, lng.tolist(), lat.tolist(), codes))
    return provider


def _workers_source(request: ReindexRequest, provider):
    if request.grid_workers:
        table = pq.read_table(request.grid_workers)
        missing = {"worker_id", "grid_code"} - set(table.column_names)
        if missing:
            raise InvalidInput(f"{request.grid_workers}: the workers need columns worker_id, grid_code (missing {sorted(missing)})")
        return list(zip(map(str, table.column("worker_id").to_pylist()), table.column("grid_code").to_pylist()))
    return provider


def _sum_counts(counts: Iterable[dict]) -> dict:
    total: dict[str, int] = {}
    for c in counts:
        for name, n in c.items():
            total[name] = total.get(name, 0) + int(n)
    return total


def _describe(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    return f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------- tasks


@ray.remote(num_cpus=0)
class _ProgressBoard:
    """Rows done per (job, task), as last reported by the task's current attempt. One per driver,
    shared by its jobs (an actor takes a process to start: not one per job)."""

    def __init__(self):
        self._rows: dict[str, dict[int, int]] = {}

    def report(self, job_id: str, task: int, rows: int) -> None:
        self._rows.setdefault(job_id, {})[task] = rows

    def rows(self, job_id: str) -> dict[int, int]:
        return dict(self._rows.get(job_id, {}))

    def forget(self, job_id: str) -> None:
        self._rows.pop(job_id, None)


_boards: dict[str, object] = {}
_boards_lock = threading.Lock()


def _progress_board():
    """This driver's progress board (one per connection to Ray, kept for the process's life: an
    actor whose last handle is dropped is stopped, and starting one takes a process)."""
    context = ray.get_runtime_context()
    key = f"{context.get_node_id()}:{context.get_job_id()}"  # job ids restart with a new cluster; node ids do not
    with _boards_lock:
        if key not in _boards:
            _boards.clear()  # a board of an earlier connection (Ray was restarted) is gone with it
            _boards[key] = _ProgressBoard.remote()
        return _boards[key]


@dataclass(frozen=True)
class _ProgressSink:
    """What a task reports its progress to (small: pickled into each task)."""

    board: object
    job_id: str

    def report(self, task: int, rows: int) -> None:
        self.board.report.remote(self.job_id, task, rows)


class _ProgressReader:
    """The driver's side of a job's progress: reads the board without waiting (the last answer until
    a newer one arrives)."""

    def __init__(self, job_id: str):
        self.sink = _ProgressSink(_progress_board(), job_id)
        self._pending = None
        self._last: dict[int, int] = {}

    def rows(self) -> dict[int, int]:
        if self._pending is not None:
            ready, _ = ray.wait([self._pending], timeout=0)
            if ready:
                self._last = ray.get(self._pending)
                self._pending = None
        if self._pending is None:
            self._pending = self.sink.board.rows.remote(self.sink.job_id)
        return self._last

    def forget(self) -> None:
        self.sink.board.forget.remote(self.sink.job_id)


@dataclass(frozen=True)
class SortedSlice:
    """Rows of an input slice (with their row ids) and their order by spatial key: the rows in key
    order are ``table.take(order)`` (``table`` itself when ``order`` is None), with the keys ``keys``."""

    table: pa.Table
    order: np.ndarray | None
    keys: np.ndarray

    def key_range(self, lo: int, hi: int) -> np.ndarray:
        """Positions in ``table`` of the rows with keys in ``[lo, hi)``, in key order."""
        start, stop = np.searchsorted(self.keys, [lo, hi], side="left")
        return self.order[start:stop] if self.order is not None else np.arange(start, stop)


@ray.remote(max_retries=MAX_RETRIES)
def _sort_slice(piece: inputs.InputSlice, spec: TaskSpec) -> tuple[np.ndarray, SortedSlice]:
    """Read one input slice and order it by spatial key; return the points per key and the slice."""
    table = inputs.read_slice(piece)
    lng, lat = inputs.coordinates(table, spec.lng_col, spec.lat_col)
    keys = spec.frame.keys(lng, lat)
    # Coordinates as one contiguous chunk each (no copy: they were just made), so every assign task
    # reads them in place.
    table = inputs.with_columns(table, {spec.lng_col: lng, spec.lat_col: lat})
    ids = inputs.row_ids(table, piece, spec.row_id_col)
    if spec.renames:
        table = table.rename_columns([spec.renames.get(n, n) for n in table.column_names])
    if spec.row_id_col not in table.column_names:
        table = table.append_column(spec.row_id_col, pa.array(ids))
    order = np.argsort(keys, kind="stable").astype(np.int32 if len(keys) < 2**31 else np.int64)
    return key_histogram(keys), SortedSlice(table, order, keys[order])


@ray.remote(max_retries=MAX_RETRIES)
def _cut_slice(piece: SortedSlice, boundaries: list[int], wanted: tuple[bool, ...]):
    """A sorted slice cut into the tasks' key ranges, each share's rows in key order (an empty share
    for a task already done)."""
    shares = []
    for k, want in enumerate(wanted):
        lo, hi = boundaries[k], boundaries[k + 1]
        positions = piece.key_range(lo, hi) if want else np.empty(0, dtype=np.int64)
        start, stop = np.searchsorted(piece.keys, [lo, hi], side="left") if want else (0, 0)
        shares.append(SortedSlice(piece.table.take(pa.array(positions)), None, piece.keys[start:stop]))
    return shares[0] if len(shares) == 1 else tuple(shares)


@ray.remote(max_retries=MAX_RETRIES)
def _assign_task(task: int, spec: TaskSpec, placed: PlacedLayer, placed_previous: PlacedLayer | None,
                 progress, key_range: tuple[int, int], *pieces: SortedSlice) -> dict:
    """Assign the rows of one key range and write its output files; return what it wrote.

    ``pieces`` are the sorted slices (or the task's shares of them); the task gathers the rows of its
    key range from each, in key order, once.
    """
    _use_assigned_cpus()
    positions = [p.key_range(*key_range) for p in pieces]
    n = sum(len(q) for q in positions)
    if n == 0:
        return {"task": task, "rows": 0, "files": [], "file_rows": {}, "status_counts": {}}
    # Runs of points sorted by spatial key (one per slice): assigned in this order, neighbours follow
    # each other and the index stays in cache.
    lng = np.concatenate([inputs.float_column(p.table, spec.lng_col)[q] for p, q in zip(pieces, positions)])
    lat = np.concatenate([inputs.float_column(p.table, spec.lat_col)[q] for p, q in zip(pieces, positions)])
    assigner = attach(placed)
    layer = assigner.layer
    grid_rows, status = _assign_in_chunks(assigner, lng, lat, spec, progress, task)
    previous_rows = None
    file_rows: dict[str, int] = {}
    if placed_previous is not None:
        previous_rows, _ = _assign_in_chunks(attach(placed_previous), lng, lat, spec, None, task)
        file_rows.update(_write_transitions(Path(spec.output), task, previous_rows, grid_rows))
    progress.report(task, n)

    # Group the rows by partition (stable: key order inside each); each partition's file gathers its
    # rows from each slice with one take (the one copy of the rows) and the result columns' slice.
    partitions = _code_column(layer, spec.partition_column)
    partition = partitions.of_row[grid_rows + 1]
    by_partition = np.argsort(partition, kind="stable")
    grid_rows, status, partition = grid_rows[by_partition], status[by_partition], partition[by_partition]
    if previous_rows is not None:
        previous_rows = previous_rows[by_partition]
    results = _result_columns(layer, grid_rows, status, attach(placed_previous).layer if placed_previous else None,
                              previous_rows)
    starts = np.cumsum([0] + [len(q) for q in positions])  # of each slice's run in assignment order
    cuts = np.flatnonzero(np.diff(partition)) + 1
    files = []
    for start, end in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [n]])):
        chosen = by_partition[start:end]  # ascending: the runs of each slice are contiguous in it
        bounds = np.searchsorted(chosen, starts)
        rows = pa.concat_tables([
            piece.table.take(pa.array(q[chosen[bounds[m]:bounds[m + 1]] - starts[m]]))
            for m, (piece, q) in enumerate(zip(pieces, positions)) if bounds[m + 1] > bounds[m]
        ])
        for name, column in results.items():
            rows = rows.append_column(name, column.slice(start, end - start))
        value = partitions.values[partition[start]]
        rel = Path(outputs.partition_dir(spec.partition_column, value)) / outputs.part_name(task)
        outputs.write_parquet_atomic(rows, Path(spec.output) / rel, durable=False)
        files.append(str(rel))
        file_rows[str(rel)] = int(end - start)
        _fault_point(task)
    counts = np.bincount(status, minlength=len(STATUS_NAMES))
    return {
        "task": task,
        "rows": n,
        "files": files,
        "file_rows": file_rows,
        "status_counts": {name: int(c) for name, c in zip(STATUS_NAMES, counts) if c},
    }


def _parallelism() -> int:
    """CPUs of the cluster: how many tasks run at once."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _alive_nodes() -> int:
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def _assign_in_chunks(assigner, lng, lat, spec: TaskSpec, progress, task: int):
    n = len(lng)
    grid_rows = np.empty(n, dtype=np.int32)
    status = np.empty(n, dtype=np.uint8)
    for start in range(0, n, PROGRESS_ROWS):
        end = min(start + PROGRESS_ROWS, n)
        result = assigner.assign(lng[start:end], lat[start:end], crs=spec.crs, fallback_m=spec.fallback_m)
        grid_rows[start:end] = result.grid_rows
        status[start:end] = result.status
        if progress is not None:
            progress.report(task, end)
    return grid_rows, status


@dataclass(frozen=True)
class _CodeColumn:
    """A code column of a layer by grid row: its distinct values (sorted, then ``None`` last) and
    ``of_row[g + 1]``, the position of grid row ``g``'s value (``of_row[0]``, for row -1, is ``None``'s)."""

    values: tuple
    of_row: np.ndarray

    @property
    def none(self) -> int:
        return len(self.values) - 1


def _code_column(layer: GridLayer, column: str) -> _CodeColumn:
    raw = layer.attributes.column(column).to_pylist()
    values = sorted({v for v in raw if v is not None})
    position = {v: i for i, v in enumerate(values)}
    none = len(values)
    of_row = np.array([none] + [position[v] if v is not None else none for v in raw], dtype=np.int32)
    return _CodeColumn(tuple(values) + (None,), of_row)


def _result_columns(layer: GridLayer, grid_rows: np.ndarray, status: np.ndarray, previous: GridLayer | None,
                    previous_rows: np.ndarray | None) -> dict[str, pa.Array]:
    """The columns a row gains, by name: the code columns (the partition column too: a reader takes
    it from the file, as text, see :mod:`citygrid.cluster.outputs`), the status and the previous grid
    code, as dictionary arrays (dictionaries of the values present only)."""
    codes = _GridCodes(layer, grid_rows)
    columns = {name: codes.column(name) for name in CODE_COLUMNS}
    columns[STATUS_COLUMN] = pa.DictionaryArray.from_arrays(
        pa.array(status.astype(np.int8)), pa.array(STATUS_NAMES, pa.string()))
    if previous is not None:
        columns[PREVIOUS_COLUMN] = _GridCodes(previous, previous_rows).column("grid_code")
    return columns


class _GridCodes:
    """Attribute columns of the grids of some rows, built with one pass over the rows per column: the
    grids present are numbered once (``local``), each column maps those few numbers to its values."""

    def __init__(self, layer: GridLayer, grid_rows: np.ndarray):
        self.layer = layer
        self.used = np.flatnonzero(np.bincount(grid_rows + 1, minlength=layer.n_grids + 1)[1:])
        number = np.full(layer.n_grids + 1, -1, dtype=np.int32)
        number[self.used + 1] = np.arange(len(self.used), dtype=np.int32)
        self.local = number[grid_rows + 1]  # -1: no grid

    def column(self, name: str) -> pa.DictionaryArray:
        """Column ``name`` per row (null: no grid, or a grid without that value)."""
        values = self.layer.attributes.column(name).combine_chunks().take(pa.array(self.used)).to_pylist()
        dictionary = sorted({v for v in values if v is not None})
        position = {v: i for i, v in enumerate(dictionary)}
        # One entry per grid present, then -1 for the rows without a grid (local number -1).
        lookup = np.array([position.get(v, -1) if v is not None else -1 for v in values] + [-1], dtype=np.int32)
        indices = lookup[self.local]
        missing = indices < 0
        array = pa.array(indices, mask=missing) if missing.any() else pa.array(indices)
        return pa.DictionaryArray.from_arrays(array, pa.array(dictionary, pa.string()))


def _write_transitions(out: Path, task: int, previous_rows: np.ndarray, grid_rows: np.ndarray) -> dict[str, int]:
    """Write the task's (previous row, row) counts; return ``{relative path: rows}``."""
    previous, rows, counts = changes.count_transitions(previous_rows, grid_rows)
    rel = Path(_CHANGES) / "transitions" / outputs.part_name(task)
    outputs.write_parquet_atomic(pa.table({"previous_row": previous, "row": rows, "rows": counts}), out / rel,
                                 durable=False)
    return {str(rel): len(counts)}


def _use_assigned_cpus() -> None:
    """Run the parallel kernels on the CPUs Ray gave this task (one by default), not on every core of
    the node: two workers would otherwise each start a thread per core."""
    import numba

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    numba.set_num_threads(max(1, min(int(cpus), numba.config.NUMBA_NUM_THREADS)))


def _fault_point(task: int) -> None:
    """Test hook (see :data:`FAULT_DIR_ENV`): kill this worker once, after its first output file."""
    folder = os.environ.get(FAULT_DIR_ENV)
    if not folder:
        return
    trigger = Path(folder) / f"kill-assign-{task}"
    try:
        os.rename(trigger, trigger.with_name(trigger.name + ".fired"))
    except FileNotFoundError:
        return
    os.kill(os.getpid(), signal.SIGKILL)
