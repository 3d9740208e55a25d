"""Re-indexing jobs on Ray: the output equals the local engine's row for row, a killed worker is
retried with nothing written twice, an interrupted job resumes keeping its partitions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from citygrid.cluster import outputs
from citygrid.cluster.reindex import ReindexRequest
from citygrid.cluster.runner import JobRunner
from citygrid.engine.errors import Conflict, InvalidInput, NotFound
from citygrid.cluster.jobs import JobState

from cluster_env import assert_matches_local_engine, expected_rows, output_files, read_output, write_points

TIMEOUT = 120


def run_job(data_dir: Path, request: ReindexRequest):
    with JobRunner(data_dir) as runner:
        job_id = runner.submit_reindex(request)
        return runner.wait(job_id, timeout=TIMEOUT)


@pytest.mark.parametrize("shuffle", ["direct", "cut"])
def test_output_matches_local_engine_row_for_row(ray_session, data_dir, tracts, tract_points, tmp_path, shuffle):
    """Both ways of handing rows to tasks (slicing in shared memory, or cutting per slice first, as
    on several nodes) give the local engine's answer."""
    out = tmp_path / "out"
    job = run_job(data_dir, ReindexRequest(
        input=str(tract_points), layer="tracts", output=str(out), partition_by="community",
        task_rows=40_000, slice_rows=40_000, shuffle=shuffle,
    ))
    assert job.state is JobState.SUCCEEDED, job.error
    n = pq.ParquetFile(tract_points).metadata.num_rows
    assert (job.rows_total, job.rows_done, job.tasks_done) == (n, n, job.tasks_total)
    assert job.tasks_total == 6  # ~161k points at 40k a task: 5, rounded up to 3 waves over 2 CPUs
    table = assert_matches_local_engine(out, tracts, tract_points)

    # Rows in no grid (outside, invalid) land in the null partition; status counts add up.
    status = table.column("status").cast(pa.string()).to_pylist()
    assert job.result["status_counts"] == {s: status.count(s) for s in set(status)}
    assert job.result["status_counts"]["invalid"] == 4
    assert (out / outputs.partition_dir("community_code", None)).is_dir()

    # Partition files: named by task, as recorded in the job, no temporaries; spatial tasks touch
    # few partitions each (a row-range split would put every task in almost every one).
    files = output_files(out)
    assert len(files) == job.partitions_written
    assert all(f.name in {outputs.part_name(k) for k in range(6)} for f in files)
    assert not list(out.rglob("*.tmp"))
    assert (out / outputs.SUCCESS_MARKER).is_file()
    n_partitions = len({f.parent for f in files})
    assert len(files) < 1.5 * n_partitions

    # Balanced tasks: the plan's spatial ranges hold about the same number of points.
    with JobRunner(data_dir) as runner:
        plan = runner.store.plan(job.job_id)
    sizes = np.array(plan["task_rows"])
    assert sizes.sum() == n and sizes.max() < 1.1 * sizes.mean()


def test_input_directory_with_own_ids_and_clashing_columns(ray_session, data_dir, tracts, rng, tmp_path):
    """A directory of files, the caller's own ids kept, an input ``grid_code`` kept as ``input_grid_code``;
    partitioned by grid (points in a part of Manhattan: a few hundred tracts, a file each)."""
    x0, y0, x1, y1 = -74.02, 40.70, -73.96, 40.76
    folder = tmp_path / "in"
    folder.mkdir()
    parts = []
    for i in range(3):
        lng, lat = rng.uniform(x0, x1, 10_000), rng.uniform(y0, y1, 10_000)
        ids = np.arange(10_000) * 3 + i  # the caller's ids: interleaved over the files
        write_points(folder / f"part-{i}.parquet", lng, lat, row_id=ids, grid_code=pa.array(["old"] * 10_000))
        parts.append(pa.table({"row_id": ids, "lng": lng, "lat": lat}))
    out = tmp_path / "out"
    job = run_job(data_dir, ReindexRequest(input=str(folder), layer="tracts", output=str(out),
                                           partition_by="grid", task_rows=10_000, slice_rows=10_000))
    assert job.state is JobState.SUCCEEDED, job.error
    table = read_output(out)
    points = pa.concat_tables(parts).sort_by("row_id")
    np.testing.assert_array_equal(table.column("row_id").to_numpy(), np.arange(30_000))
    np.testing.assert_array_equal(table.column("lng").to_numpy(), points.column("lng").to_numpy())
    assert set(table.column("input_grid_code").to_pylist()) == {"old"}
    expected = expected_rows(tracts, points)
    assert table.column("grid_code").cast(pa.string()).to_pylist() == expected["grid_code"]


def test_killed_worker_is_retried_and_nothing_written_twice(ray_session, fault_dir, data_dir, tracts, tract_points, tmp_path):
    # Task 1's first attempt SIGKILLs its own worker process right after its first output file.
    trigger = fault_dir / "kill-assign-1"
    trigger.touch()
    out = tmp_path / "out"
    job = run_job(data_dir, ReindexRequest(
        input=str(tract_points), layer="tracts", output=str(out), partition_by="community",
        task_rows=40_000, slice_rows=40_000,
    ))
    assert (fault_dir / "kill-assign-1.fired").exists(), "the worker was not killed"
    assert not trigger.exists()
    assert job.state is JobState.SUCCEEDED, job.error
    assert_matches_local_engine(out, tracts, tract_points)
    files = output_files(out)
    assert len(files) == job.partitions_written
    assert not list(out.rglob("*.tmp"))


def test_interrupted_job_resumes_keeping_its_partitions(ray_session, data_dir, tracts, tract_points, tmp_path):
    """The driver (a server) is SIGKILLed after its first task; a new runner marks the job interrupted,
    and resuming it runs only the rest, leaving the finished task's files untouched."""
    out = tmp_path / "out"
    address = ray.get_runtime_context().gcs_address
    script = textwrap.dedent(f"""
        import os, signal
        from citygrid.cluster.session import RaySession
        from citygrid.cluster.runner import JobRunner
        from citygrid.cluster.reindex import ReindexRequest
        session = RaySession.open({address!r})
        runner = JobRunner({str(data_dir)!r}, session=session)
        job_id = runner.submit_reindex(ReindexRequest(
            input={str(tract_points)!r}, layer="tracts", output={str(out)!r}, partition_by="community",
            task_rows=40_000, slice_rows=40_000))
        print(job_id, flush=True)
        for job in runner.watch(job_id):
            if job.tasks_done >= 1:
                os.kill(os.getpid(), signal.SIGKILL)
    """)
    driver = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT)
    assert driver.returncode == -signal.SIGKILL, driver.stderr[-2000:]
    job_id = driver.stdout.split()[0]

    with JobRunner(data_dir) as runner:
        assert job_id in runner.interrupted
        job = runner.get(job_id)
        assert job.state is JobState.INTERRUPTED and 1 <= job.tasks_done < job.tasks_total
        kept = {k: t.files for k, t in runner.store.tasks(job_id).items()}
        stamps = {f: (out / f).stat() for files in kept.values() for f in files}
        with pytest.raises(Conflict):  # another job may not write into it meanwhile
            outputs.claim_output(out, "another-job", {})
        runner.resume(job_id)
        job = runner.wait(job_id, timeout=TIMEOUT)
    assert job.state is JobState.SUCCEEDED, job.error
    for f, st in stamps.items():
        now = (out / f).stat()
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), f"{f} was rewritten"
    assert_matches_local_engine(out, tracts, tract_points)
    assert len(output_files(out)) == job.partitions_written


def test_cancel_then_resume_and_a_shutdown_mid_job(ray_session, data_dir, tracts, tract_points, tmp_path):
    """Cancelled, resumed, stopped by a runner shutting down (interrupted), resumed by a new runner."""
    out = tmp_path / "out"
    request = ReindexRequest(input=str(tract_points), layer="tracts", output=str(out), partition_by="street",
                             task_rows=40_000, slice_rows=40_000)
    runner = JobRunner(data_dir)
    job_id = runner.submit_reindex(request)
    for job in runner.watch(job_id, timeout=TIMEOUT):
        if job.state is JobState.RUNNING:
            runner.cancel(job_id)
            break
    job = runner.wait(job_id, timeout=TIMEOUT)
    assert job.state is JobState.CANCELLED
    assert not (out / outputs.SUCCESS_MARKER).exists()
    runner.resume(job_id)
    for job in runner.watch(job_id, timeout=TIMEOUT):
        if job.phase == "assigning":
            break
    runner.close()

    with JobRunner(data_dir) as runner:
        job = runner.get(job_id)
        assert job.state is JobState.INTERRUPTED, job
        runner.resume(job_id)
        job = runner.wait(job_id, timeout=TIMEOUT)
    assert job.state is JobState.SUCCEEDED, job.error
    assert_matches_local_engine(out, tracts, tract_points)
    assert not list(out.rglob("*.tmp"))


def test_requests_refused_up_front(ray_session, data_dir, tract_points, tmp_path):
    with JobRunner(data_dir) as runner:
        with pytest.raises(NotFound):
            runner.submit_reindex(ReindexRequest(input=str(tmp_path / "none.parquet"), layer="tracts", output=str(tmp_path / "o")))
        with pytest.raises(NotFound):
            runner.submit_reindex(ReindexRequest(input=str(tract_points), layer="no-such-version", output=str(tmp_path / "o")))
    with pytest.raises(InvalidInput):
        ReindexRequest(input="x", layer="y", output="z", partition_by="house")
    with pytest.raises(InvalidInput):
        ReindexRequest(input="x", layer="y", output="z", events="events.parquet")


def test_bad_column_fails_the_job_with_a_reason(ray_session, data_dir, tract_points, tmp_path):
    job = run_job(data_dir, ReindexRequest(input=str(tract_points), layer="tracts", output=str(tmp_path / "o"),
                                           lng_col="longitude"))
    assert job.state is JobState.FAILED
    assert "no column 'longitude'" in job.error


def test_output_directory_of_another_job_is_refused(data_dir, tract_points, tmp_path):
    """At submission (before any Ray work), and again when a job claims it (taken in between)."""
    out = tmp_path / "taken"
    outputs.claim_output(out, "reindex-someone-else", {})
    with JobRunner(data_dir) as runner:
        with pytest.raises(Conflict, match="holds the output of job reindex-someone-else"):
            runner.submit_reindex(ReindexRequest(input=str(tract_points), layer="tracts", output=str(out)))
    with pytest.raises(Conflict, match="reindex-someone-else"):
        outputs.claim_output(out, "reindex-mine", {})
    assert os.listdir(out) == [outputs.JOB_MARKER]
