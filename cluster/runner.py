"""The job runner: the one place batch jobs are submitted, watched, cancelled and resumed.

A :class:`JobRunner` belongs to the process that owns the data directory's writes (the server, or one
``citygrid reindex`` command). It records each submitted job in the data directory's database, runs
the jobs one after another in a background thread as the Ray driver, and answers for them while they
run. A job does not depend on the client that submitted it: the client may go away and another watch
it later, from this process or (read-only) from any other that opens the same data directory.

The gRPC ``JobService`` maps onto it one to one::

    SubmitReindex(request)  -> runner.submit_reindex(ReindexRequest(...))  -> job id
    GetJob(job_id)          -> runner.get(job_id)                          -> Job (state, progress)
    WatchJob(job_id)        -> runner.watch(job_id)                        -> Job, Job, ... (until settled)
    CancelJob(job_id)       -> runner.cancel(job_id)                       -> Job
    ResumeJob(job_id)       -> runner.resume(job_id)                       -> Job

When the runner starts, jobs whose owner died (the server was killed mid-job) are marked
*interrupted*; :meth:`JobRunner.resume` queues one again, keeping the partitions it already wrote.
Closing the runner stops the running job as *interrupted* too.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from citygrid.cluster import outputs
from citygrid.cluster.reindex import KIND, ReindexRequest, run_reindex
from citygrid.cluster.session import RaySession
from citygrid.cluster import changes
from citygrid.engine.layers import snapshots
from citygrid.engine.errors import NotFound, PreconditionFailed
from citygrid.cluster.jobs import Job, JobState, JobStore, process_owner

log = logging.getLogger(__name__)


class JobRunner:
    """Runs the jobs of ``data_dir`` on Ray.

    ``session`` is the Ray connection to use; without one the runner opens it on the first job
    (``address`` of a cluster, else a local Ray of ``num_cpus`` CPUs) and closes it with the runner.
    ``open_events`` and ``grid_workers`` feed the change reports of jobs that name no such files
    (the server passes its event store's open events and its workers).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        *,
        session: RaySession | None = None,
        address: str | None = None,
        num_cpus: int | None = None,
        open_events: Callable[[], Iterable[changes.OpenEvent]] | None = None,
        grid_workers: Callable[[], Iterable[changes.GridWorker]] | None = None,
    ):
        self.data_dir = Path(data_dir)
        self.store = JobStore(self.data_dir)
        self._session = session
        self._own_session = session is None
        self._address = address
        self._num_cpus = num_cpus
        self._open_events = open_events
        self._grid_workers = grid_workers
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stopping = threading.Event()
        self.interrupted = self.store.interrupt_orphans()
        for job_id in self.interrupted:
            log.warning("job %s was interrupted when its process stopped; resume it to finish", job_id)
        self._thread = threading.Thread(target=self._work, name="citygrid-jobs", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the API

    def submit_reindex(self, request: ReindexRequest) -> str:
        """Check the request, record it as a queued job and return its id (the job runs in the
        background)."""
        self._require_open()
        self._check_request(request)
        job = self.store.create(KIND, _absolute_paths(request).to_params())
        self._queue.put(job.job_id)
        return job.job_id

    def get(self, job_id: str) -> Job:
        return self.store.get(job_id)

    def list(self, *, state: JobState | None = None, limit: int = 100) -> list[Job]:
        return self.store.list(state=state, limit=limit)

    def watch(self, job_id: str, *, timeout: float | None = None) -> Iterator[Job]:
        """The job now and at every change of state or progress, until it settles."""
        return self.store.watch(job_id, timeout=timeout)

    def wait(self, job_id: str, *, timeout: float | None = None) -> Job:
        """Block until the job settles (or ``timeout``); return its record."""
        job = self.store.get(job_id)
        for job in self.store.watch(job_id, timeout=timeout):
            pass
        return job

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued, running or interrupted job (a running one stops within a second or so)."""
        return self.store.request_cancel(job_id)

    def resume(self, job_id: str) -> Job:
        """Queue an interrupted, failed or cancelled job again; its finished tasks are kept."""
        self._require_open()
        job = self.store.resume(job_id)
        self._queue.put(job_id)
        return job

    def close(self, timeout: float | None = 60.0) -> None:
        """Stop: the running job ends as interrupted (resumable), queued ones stay queued until the next
        runner marks them interrupted. Shuts down the Ray this runner started."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout)
        for job in self.store.list(state=JobState.QUEUED, limit=1_000_000):
            if job.owner == process_owner():
                self.store.interrupt(job.job_id, "the runner shut down before the job started; resume it")
        if self._own_session and self._session is not None:
            self._session.close()
        self.store.close()

    def __enter__(self) -> "JobRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _require_open(self) -> None:
        if self._stopping.is_set():
            raise PreconditionFailed("the job runner is shut down")

    def _check_request(self, request: ReindexRequest) -> None:
        """Fail at submission on what can be seen now: a missing input or layer, an output taken."""
        if not Path(request.input).exists():
            raise NotFound(f"no input at {request.input}")
        for spec in filter(None, (request.layer, request.previous)):
            path = Path(spec)
            if not path.exists() and not (snapshots.layers_dir(self.data_dir) / spec / snapshots.MANIFEST).is_file():
                raise NotFound(f"no layer {spec!r}: not a file, a version directory or a saved version id")
        for name in filter(None, (request.events, request.grid_workers)):
            if not Path(name).is_file():
                raise NotFound(f"no file {name}")
        outputs.check_free(request.output)  # here, not after Ray has started for the job

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None or self._stopping.is_set():
                return
            if self.store.get(job_id).state is not JobState.QUEUED:
                continue  # cancelled while it waited
            try:
                self._ensure_session()
                run_reindex(
                    self.store, job_id, data_dir=self.data_dir, should_stop=self._stopping.is_set,
                    open_events=self._open_events, grid_workers=self._grid_workers,
                )
            except Exception as exc:  # Ray would not start: the job fails with the reason
                log.exception("job %s could not run", job_id)
                if self.store.get(job_id).state.active:
                    self.store.finish(job_id, JobState.FAILED, error=f"{type(exc).__name__}: {exc}")

    def _ensure_session(self) -> None:
        if self._session is None:
            self._session = RaySession.open(self._address, num_cpus=self._num_cpus)


def _absolute_paths(request: ReindexRequest) -> ReindexRequest:
    """The request with its file paths made absolute, so a resume from another directory finds them
    (a layer given by version id stays an id)."""
    def absolute(path: str | None) -> str | None:
        return str(Path(path).resolve()) if path else path

    def layer(spec: str | None) -> str | None:
        return absolute(spec) if spec and Path(spec).exists() else spec

    return replace(
        request, input=absolute(request.input), output=absolute(request.output),
        events=absolute(request.events), grid_workers=absolute(request.grid_workers),
        layer=layer(request.layer), previous=layer(request.previous),
    )
