"""The tasks of a re-indexing job (run in Ray workers): sort an input slice by spatial key, cut it
into the key ranges of the plan, assign a range and write its output files and transitions."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import ray

from citygrid.cluster import inputs, outputs
from citygrid.cluster.placement import PlacedLayer, attach
from citygrid.cluster.spatial import KeyFrame, key_histogram
from citygrid.cluster import changes

from citygrid.cluster.columns import STATUS_NAMES, _result_columns, _code_column

#: Points assigned between two progress reports of a task.
PROGRESS_ROWS = 1 << 20
_CHANGES = "_changes"
#: Test hook: a directory where a file ``kill-assign-<task>`` makes the next attempt of that task kill
#: its own worker (SIGKILL) after writing its first output file. Read in the worker's environment.
FAULT_DIR_ENV = "CITYGRID_FAULT_DIR"

#: Ray retries of a task whose worker died (killed, out of memory, node lost).
MAX_RETRIES = 3


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
