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
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow.parquet as pq
import ray

from citygrid.cluster import inputs, outputs
from citygrid.cluster.placement import PlacedLayer, place_layer
from citygrid.cluster.spatial import N_KEYS, KeyFrame, balanced_boundaries, choose_task_count
from citygrid.cluster import changes
from citygrid.engine.layers import sources
from citygrid.engine.layers.assignment import Assigner
from citygrid.engine.errors import CityGridError, InvalidInput
from citygrid.cluster.jobs import Job, JobState, JobStore
from citygrid.engine.layers.layer import FieldMap, GridLayer
from citygrid.engine.hierarchy import CODE_COLUMNS, code_column

from citygrid.cluster.columns import PREVIOUS_COLUMN, RENAMED_PREFIX, STATUS_COLUMN
from citygrid.cluster.progress import _ProgressReader
from citygrid.cluster.tasks import TaskSpec, _CHANGES, _alive_nodes, _assign_task, _cut_slice, _parallelism, _sort_slice

log = logging.getLogger(__name__)

KIND = "reindex"
#: ``--partition-by`` levels and the column each partitions on.
PARTITION_LEVELS = {level: code_column(level) for level in ("street", "community", "grid", "district")}

#: How assign tasks get their rows (see :attr:`ReindexRequest.shuffle`).
SHUFFLES = ("auto", "direct", "cut")
#: Target points per spatial task (tasks get between half and all of it, see ``choose_task_count``).
DEFAULT_TASK_ROWS = 4_000_000
#: Largest input slice (read and sorted by one task; whole row groups, so never less than one)...
DEFAULT_SLICE_ROWS = 4_000_000
#: ...and at least this many slices per CPU, so the sort phase is balanced over the cluster.
SLICE_WAVES = 4
#: Seconds between two reads of the tasks' progress by the driver.
POLL_SECONDS = 0.5
#: Seconds a cancelled job waits for its running tasks to stop before it tidies the output.
CANCEL_GRACE_SECONDS = 30.0



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
