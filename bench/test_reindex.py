"""Re-indexing on Ray against the local engine (issue 6), and the zero-copy figures.

The same job on the same Parquet file of uniform points over the demo district (3,823 grids),
partitioned by street:

- **ray-1** / **ray-2**: ``citygrid.cluster`` on a local Ray of 1 and 2 CPUs (one task per CPU at a
  time), timed from submission to success, after a warm-up job (workers started, kernels loaded);
- **local**, before every Ray round: one process, one thread: read the file, ``Assigner.assign``,
  write the same columns partitioned by street with the same writer — the engine without Ray (and
  without the spatial sort). Pairing the rounds keeps the ratio honest on a shared, noisy machine.

Reported: points per second, Ray's overhead over the local engine with one worker (median of the
paired ratios), the speed-up from one to two workers (goals: overhead < 20 %, speed-up >= 1.5x), the
object store's use (the placed layer and index, and the peak during the job's shuffle), and each
worker's private memory after 2, 20 and 200 tasks that use the placed index (it must not grow). Run::

    pytest bench/test_reindex.py --benchmark-only -s                                     # 20 million points
    CITYGRID_BENCH_REINDEX_ROWS=2000000 pytest bench/test_reindex.py --benchmark-only -s  # quick

(``CITYGRID_BENCH_REINDEX_ROUNDS`` sets the rounds, default 3.)
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
from ray._private.internal_api import memory_summary

from citygrid.cluster.outputs import flush, part_name, partition_dir, write_parquet_atomic
from citygrid.cluster.placement import attach, place_layer
from citygrid.cluster.reindex import ReindexRequest
from citygrid.cluster.runner import JobRunner
from citygrid.cluster.session import RaySession
from citygrid.engine.layers import snapshots
from citygrid.engine.layers.assignment import Assigner
from citygrid.cluster.jobs import JobState

# Ray's workers cannot import this module: ship the probe task by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

ROWS = int(float(os.environ.get("CITYGRID_BENCH_REINDEX_ROWS", "20e6")))
#: Points per task: the job's default at full size, a fifth of the job for quick runs.
TASK_ROWS = min(4_000_000, max(ROWS // 5, 100_000))
ROW_GROUP = 1_000_000
WARMUP_ROWS = 200_000
ROUNDS = int(os.environ.get("CITYGRID_BENCH_REINDEX_ROUNDS", "3"))
RESULTS: dict[str, dict] = {}


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory):
    """The demo district saved as a version (index built), and ROWS uniform points in a Parquet file."""
    from citygrid.engine.demo import generate_demo
    from citygrid.engine.layers.sources import read_layer

    root = tmp_path_factory.mktemp("bench-reindex")
    generate_demo(root / "demo", seed=20261130, n_events=1_000)
    layer = read_layer(root / "demo" / "grids.parquet", version_id="bench-demo")
    data_dir = root / "data"
    layer = snapshots.load_layer(snapshots.save_layer(layer, data_dir))
    Assigner.for_layer(layer)  # builds and saves the index once
    rng = np.random.default_rng(20261130)
    x0, y0, x1, y1 = layer.bounds
    points = root / "points.parquet"
    with pq.ParquetWriter(points, pa.schema([("lng", pa.float64()), ("lat", pa.float64())])) as writer:
        for start in range(0, ROWS, ROW_GROUP):
            n = min(ROW_GROUP, ROWS - start)
            writer.write_table(pa.table({"lng": rng.uniform(x0, x1, n), "lat": rng.uniform(y0, y1, n)}))
    warmup = root / "warmup.parquet"
    pq.write_table(pa.table({"lng": rng.uniform(x0, x1, WARMUP_ROWS), "lat": rng.uniform(y0, y1, WARMUP_ROWS)}),
                   warmup, row_group_size=WARMUP_ROWS // 8)
    return {"root": root, "data_dir": data_dir, "layer": layer, "points": points, "warmup": warmup}


def run_local(layer, points: Path, out: Path) -> None:
    """The engine alone, on one core: read, assign, write the same columns, a file per street, the
    same way as the job (``write_parquet_atomic``, one flush at the end)."""
    import numba

    numba.set_num_threads(1)
    table = pq.read_table(points, use_threads=False)
    assignment = Assigner.for_layer(layer).assign(table.column("lng").to_numpy(), table.column("lat").to_numpy())
    rows = assignment.grid_rows
    streets = layer.attributes.column("street_code").combine_chunks().dictionary_encode()
    street_of_row = np.concatenate([[len(streets.dictionary)], streets.indices.to_numpy()])
    by_street = np.argsort(street_of_row[rows + 1], kind="stable")
    rows = rows[by_street]
    indices = pa.array(np.where(rows >= 0, rows, 0), mask=rows < 0)
    table = table.append_column("row_id", pa.array(np.arange(table.num_rows))).take(pa.array(by_street))
    for name in ("grid_code", "community_code", "street_code", "district_code"):  # as the job writes them
        table = table.append_column(
            name, pa.DictionaryArray.from_arrays(indices, layer.attributes.column(name).combine_chunks()))
    table = table.append_column("status", pa.array(assignment.status[by_street]))
    street = street_of_row[rows + 1]
    cuts = np.flatnonzero(np.diff(street)) + 1
    for start, stop in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(street)]])):
        s = street[start]
        value = streets.dictionary[s].as_py() if s < len(streets.dictionary) else None
        write_parquet_atomic(table.slice(start, stop - start),
                             out / partition_dir("street_code", value) / part_name(0), durable=False)
    flush()


def run_ray(data, out: Path, input_path: Path, task_rows: int = TASK_ROWS) -> dict:
    with JobRunner(data["data_dir"]) as runner:
        job_id = runner.submit_reindex(ReindexRequest(
            input=str(input_path), layer=data["layer"].version_id, output=str(out), task_rows=task_rows))
        job = runner.wait(job_id)
    assert job.state is JobState.SUCCEEDED, job.error
    return job.result


def object_store_used() -> float:
    return ray.cluster_resources()["object_store_memory"] - ray.available_resources().get("object_store_memory", 0)


@pytest.fixture(scope="module", autouse=True)
def report():
    """Print the ratio table after the module's benchmarks ran (whatever order pytest picked)."""
    yield
    if not {"ray-1", "ray-2"} <= set(RESULTS):
        return
    print(f"\n\n{ROWS:,} uniform points, demo district (3,823 grids), partitioned by street, "
          f"{TASK_ROWS:,} points per task; each Ray round follows a local round on the same machine state")
    print(f"{'run':<8} {'best s':>7} {'Mpoints/s':>10} {'paired local s':>15} {'Ray / local':>12} {'tasks':>6} "
          f"{'placed MiB':>11} {'peak store MiB':>15}")
    for name in ("ray-1", "ray-2"):
        r = RESULTS[name]
        ratios = [ray_s / local_s for ray_s, local_s in zip(r["rounds"], r["local_rounds"])]
        print(f"{name:<8} {min(r['rounds']):>7.2f} {ROWS / min(r['rounds']) / 1e6:>10.2f} "
              f"{min(r['local_rounds']):>15.2f} {np.median(ratios):>12.2f} {r['tasks']:>6} "
              f"{r['placed_bytes'] / 2**20:>11.1f} {r['peak_store_bytes'] / 2**20:>15.0f}")
    one, two = RESULTS["ray-1"], RESULTS["ray-2"]
    overhead = np.median([a / b for a, b in zip(one["rounds"], one["local_rounds"])]) - 1
    print(f"local engine (1 thread): {ROWS / min(one['local_rounds'] + two['local_rounds']) / 1e6:.2f} Mpoints/s")
    print(f"overhead of Ray with 1 worker over the local engine (median of paired rounds): {overhead:+.1%} (goal < 20 %)")
    print(f"speed-up from 1 to 2 workers: {min(one['rounds']) / min(two['rounds']):.2f}x best against best, "
          f"{np.median(one['rounds']) / np.median(two['rounds']):.2f}x median against median (goal >= 1.5x)")
    if "zero-copy" in RESULTS:
        z = RESULTS["zero-copy"]
        print(f"\nplaced layer + index: {z['placed_bytes'] / 2**20:.1f} MiB of arrays, put in "
              f"{z['put_seconds'] * 1000:.0f} ms; the object store grew by {z['store_growth'] / 2**20:.1f} MiB")
        print(f"after 200 tasks, ray memory: {z['summary']}")
        print(f"{'tasks run':>9}  {'object store MiB':>16}  private MiB per worker (pid: MiB)")
        for total, store, by_pid in z["rows"]:
            private = ", ".join(f"{pid}: {b / 2**20:.1f}" for pid, b in by_pid.items())
            print(f"{total:>9}  {store / 2**20:>16.1f}  {private}")


@pytest.mark.parametrize("workers", [1, 2])
def test_ray_job(benchmark, bench_data, tmp_path, workers):
    """The job on a local Ray of ``workers`` CPUs; before each round, the local engine on the same
    data (not timed by the benchmark: its time is kept for the paired ratio)."""
    if ray.is_initialized():
        ray.shutdown()
    session = RaySession.open(num_cpus=workers)
    try:
        # Warm-up: enough small tasks that every worker process starts and loads the kernels; and
        # the local engine once (its kernels compiled or loaded in this process).
        run_ray(bench_data, tmp_path / "warmup", bench_data["warmup"], task_rows=WARMUP_ROWS // (2 * workers))
        run_local(bench_data["layer"], bench_data["warmup"], tmp_path / "warmup-local")
        peak = [object_store_used()]
        sampling = threading.Event()

        def sample():
            while not sampling.wait(0.2):
                peak.append(object_store_used())

        sampler = threading.Thread(target=sample)
        sampler.start()
        runs, results, local_rounds = iter(range(100)), [], []

        def local_round():
            started = time.perf_counter()
            run_local(bench_data["layer"], bench_data["points"], tmp_path / f"local-{len(local_rounds)}")
            local_rounds.append(time.perf_counter() - started)

        def run():
            results.append(run_ray(bench_data, tmp_path / f"ray-{workers}-{next(runs)}", bench_data["points"]))

        try:
            benchmark.pedantic(run, setup=local_round, rounds=ROUNDS, iterations=1)
        finally:
            sampling.set()
            sampler.join()
        RESULTS[f"ray-{workers}"] = {
            "rounds": list(benchmark.stats.stats.data), "local_rounds": local_rounds, "tasks": results[-1]["tasks"],
            "placed_bytes": results[-1]["object_store_bytes"], "peak_store_bytes": max(peak),
        }
    finally:
        session.close()


@ray.remote
def probe(placed) -> tuple[int, int]:
    """(pid, private bytes) after using the placed index once more."""
    assigner = attach(placed)
    assigner.assign(np.array([114.2]), np.array([22.7]))
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) * 1024
    return os.getpid(), fields["Private_Clean"] + fields["Private_Dirty"]


def test_zero_copy_figures(benchmark, bench_data):
    """The time to place the demo layer and its index, then 2, 20 and 200 tasks that use it: the
    object store does not grow, nor does any worker's private memory."""
    if ray.is_initialized():
        ray.shutdown()
    assigner = Assigner.for_layer(bench_data["layer"])
    with RaySession.open(num_cpus=2):
        before = object_store_used()
        placed = benchmark.pedantic(place_layer, args=(bench_data["layer"], assigner), rounds=1, iterations=1)
        time.sleep(2)  # resource figures are reported about once a second
        growth = object_store_used() - before
        rows, done = [], 0
        for total in (2, 20, 200):
            results = ray.get([probe.remote(placed) for _ in range(total - done)])
            done = total
            rows.append((total, object_store_used() - before, dict(sorted(dict(results).items()))))
        summary = memory_summary(stats_only=True).strip().splitlines()[-1]  # what `ray memory --stats-only` says
    RESULTS["zero-copy"] = {"placed_bytes": placed.nbytes, "put_seconds": benchmark.stats.stats.min,
                            "store_growth": growth, "rows": rows, "summary": summary}
    first, last = rows[0][2], rows[-1][2]
    for pid in set(first) & set(last):
        assert last[pid] - first[pid] < 8 * 2**20, "a worker's private memory grew with its tasks"
    assert abs(rows[-1][1] - growth) < 2**20, "tasks added objects to the store"
