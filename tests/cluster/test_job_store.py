"""Job records in the data directory's database (citygrid.cluster.jobs): states, progress, orphans."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from citygrid.engine.errors import NotFound, PreconditionFailed
from citygrid.cluster.jobs import JobState, JobStore, process_owner


@pytest.fixture
def store(tmp_path):
    s = JobStore(tmp_path)
    yield s
    s.close()


def test_life_of_a_job(store, tmp_path):
    job = store.create("reindex", {"input": "a.parquet", "task_rows": 5})
    assert job.state is JobState.QUEUED and job.owner == process_owner() and job.progress == 0.0
    store.start(job.job_id)
    store.set_plan(job.job_id, {"n_tasks": 2})
    store.set_plan(job.job_id, {"n_tasks": 99})  # the plan is set once and kept (resumes reuse it)
    assert store.plan(job.job_id) == {"n_tasks": 2}
    store.set_totals(job.job_id, rows_total=100, tasks_total=2)
    store.set_progress(job.job_id, rows_done=30, phase="assigning")
    job = store.complete_task(job.job_id, 0, rows=60, files=["a=1/part-00000.parquet", "a=2/part-00000.parquet"])
    assert (job.rows_done, job.tasks_done, job.partitions_written, job.progress) == (60, 1, 2, 0.6)
    # Recording a task again (re-run after a resume) replaces it: nothing counted twice.
    job = store.complete_task(job.job_id, 0, rows=60, files=["a=1/part-00000.parquet", "a=2/part-00000.parquet"])
    assert (job.tasks_done, job.partitions_written) == (1, 2)
    store.complete_task(job.job_id, 1, rows=40, files=["a=2/part-00001.parquet"], summary={"status_counts": {"inside": 40}})
    job = store.finish(job.job_id, JobState.SUCCEEDED, result={"rows": 100})
    assert job.state is JobState.SUCCEEDED and job.progress == 1.0 and job.result == {"rows": 100}
    assert job.finished_at >= job.started_at >= job.created_at
    assert store.tasks(job.job_id)[1].summary == {"status_counts": {"inside": 40}}
    # Another process (another connection) reads the same record.
    other = JobStore(tmp_path)
    assert other.get(job.job_id).partitions_written == 3
    other.close()


def test_illegal_moves_are_refused(store):
    job = store.create("reindex", {})
    with pytest.raises(PreconditionFailed):
        store.finish(job.job_id, JobState.SUCCEEDED)  # never started
    with pytest.raises(PreconditionFailed):
        store.resume(job.job_id)  # nothing to resume
    store.start(job.job_id)
    with pytest.raises(PreconditionFailed):
        store.start(job.job_id)
    store.finish(job.job_id, JobState.FAILED, error="boom")
    with pytest.raises(PreconditionFailed):
        store.request_cancel(job.job_id)  # already settled
    assert store.resume(job.job_id).state is JobState.QUEUED
    assert store.get(job.job_id).error is None
    with pytest.raises(NotFound):
        store.get("reindex-nope")


def test_cancel_queued_at_once_running_at_next_check(store):
    queued = store.create("reindex", {})
    assert store.request_cancel(queued.job_id).state is JobState.CANCELLED
    running = store.create("reindex", {})
    store.start(running.job_id)
    job = store.request_cancel(running.job_id)
    assert job.state is JobState.RUNNING and job.cancel_requested
    assert store.finish(running.job_id, JobState.CANCELLED).state is JobState.CANCELLED
    resumed = store.resume(running.job_id)
    assert resumed.state is JobState.QUEUED and not resumed.cancel_requested


def test_jobs_of_a_dead_process_become_interrupted(store):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    orphan = store.create("reindex", {}, owner=f"{host}:{int(dead.stdout)}:")
    store.start(orphan.job_id, owner=f"{host}:{int(dead.stdout)}:")
    # This process's id, but another start time: a new process that got a dead one's id (a restarted
    # container's pid 1, say) is not the owner.
    reused = store.create("reindex", {}, owner=f"{host}:{os.getpid()}:1")
    mine = store.create("reindex", {})
    store.start(mine.job_id)
    remote = store.create("reindex", {}, owner="another-host:1:")
    assert sorted(store.interrupt_orphans()) == sorted([orphan.job_id, reused.job_id])
    assert store.get(orphan.job_id).state is JobState.INTERRUPTED
    assert store.get(mine.job_id).state is JobState.RUNNING  # this process is alive
    assert store.get(remote.job_id).state is JobState.QUEUED  # cannot be checked from here
    assert store.resume(orphan.job_id).owner == process_owner()


def test_watch_yields_changes_until_settled(store):
    job = store.create("reindex", {})
    seen = []

    def watcher():
        seen.extend((j.state, j.rows_done) for j in store.watch(job.job_id, timeout=10))

    thread = threading.Thread(target=watcher)
    thread.start()
    time.sleep(0.1)
    store.start(job.job_id)
    store.set_totals(job.job_id, rows_total=10, tasks_total=1)
    store.set_progress(job.job_id, rows_done=5)
    deadline = time.monotonic() + 10  # let the watch see the progress, however slowly it polls here
    while (JobState.RUNNING, 5) not in seen and time.monotonic() < deadline:
        time.sleep(0.01)
    store.complete_task(job.job_id, 0, rows=10, files=[])
    store.finish(job.job_id, JobState.SUCCEEDED)
    thread.join(5)
    assert not thread.is_alive()
    assert seen[0] == (JobState.QUEUED, 0) and seen[-1] == (JobState.SUCCEEDED, 10)
    assert (JobState.RUNNING, 5) in seen
    assert list(store.list(state=JobState.SUCCEEDED))[0].job_id == job.job_id
