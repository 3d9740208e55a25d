"""``citygrid.v1.JobService``: batch re-indexing jobs over the cluster's
:class:`~citygrid.cluster.runner.JobRunner`.

The servicer converts messages to runner calls and back; the rules (what may be cancelled or
resumed, what a request must name) are the runner's and the job store's, and their errors map to
status codes through :mod:`citygrid.grpc_api.errors`. Submitting, cancelling and resuming need the
admin or supervisor role with a district-wide jurisdiction; reading and watching any role with a
district-wide jurisdiction (a job covers the whole district's files, not one area).

:class:`JobHost` owns the runner of the server's data directory: built on the first call (so a
server that never runs a job never touches Ray; the runner itself starts or joins Ray only when its
first job runs, and marks the jobs a previous server left unfinished as interrupted when it is
built) and closed when the server stops (a running job then ends as interrupted, resumable).

``WatchJob`` is async: it reads the job in a handler thread every :data:`WATCH_POLL_S` seconds and
sends each change; between reads it waits on the event loop, holding no thread, and a client that goes
away (or a deadline that passes) ends it.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import grpc

from citygrid.cluster.reindex import ReindexRequest
from citygrid.cluster.runner import JobRunner
from citygrid.engine.errors import InvalidInput
from citygrid.cluster.jobs import Job
from citygrid.engine.access.principals import Role
from citygrid.grpc_api._pb import job_pb2, job_pb2_grpc
from citygrid.grpc_api.convert import crs_of, to_timestamp
from citygrid.grpc_api.interceptors import Authenticator
from citygrid.grpc_api.threads import Blocking

SERVICE_NAME = job_pb2.DESCRIPTOR.services_by_name["JobService"].full_name
#: Seconds between a watch's reads of its job.
WATCH_POLL_S = 0.25
#: Roles that may submit, cancel and resume jobs (admins always may).
OPERATORS = (Role.SUPERVISOR,)


class JobHost:
    """The job runner of one data directory, built on first use; ``runner_options`` go to
    :class:`JobRunner` (``session``, ``address``, ``num_cpus``, ``open_events``, ``grid_workers``)."""

    def __init__(self, data_dir: Path, **runner_options):
        self._data_dir = Path(data_dir)
        self._options = runner_options
        self._lock = threading.Lock()
        self._runner: JobRunner | None = None

    def runner(self) -> JobRunner:
        runner = self._runner
        if runner is not None:
            return runner
        with self._lock:
            if self._runner is None:
                self._runner = JobRunner(self._data_dir, **self._options)
            return self._runner

    def close(self) -> None:
        """Stop the runner (after the server has stopped): a running job ends as interrupted."""
        with self._lock:
            if self._runner is not None:
                self._runner.close()


class JobServicer(job_pb2_grpc.JobServiceServicer):
    def __init__(self, host: JobHost, auth: Authenticator, blocking: Blocking):
        self._host = host
        self._auth = auth
        self._blocking = blocking

    def SubmitReindex(self, request, context):
        self._operator("submit jobs")
        job_id = self._host.runner().submit_reindex(reindex_request(request))
        return job_pb2.SubmitReindexResponse(job_id=job_id)

    def GetJob(self, request, context):
        self._auth.principal().require_everywhere(action="read jobs")
        return job_message(self._host.runner().get(_job_id(request)))

    async def WatchJob(self, request, context):
        self._auth.principal().require_everywhere(action="watch jobs")
        job_id = _job_id(request)
        runner = await self._blocking(self._host.runner)
        last = None
        while True:
            job = await self._blocking(runner.get, job_id)
            message = job_message(job)
            if _news(message) != last:
                last = _news(message)
                yield message
            if not job.state.active:
                return
            await asyncio.sleep(WATCH_POLL_S)

    def CancelJob(self, request, context):
        self._operator("cancel jobs")
        return job_message(self._host.runner().cancel(_job_id(request)))

    def ResumeJob(self, request, context):
        self._operator("resume jobs")
        return job_message(self._host.runner().resume(_job_id(request)))

    def _operator(self, action: str) -> None:
        principal = self._auth.principal()
        principal.require_role(*OPERATORS, action=action)
        principal.require_everywhere(action=action)  # a job reads and writes whole files, not an area


# ---------------------------------------------------------------------- conversions


def reindex_request(m: job_pb2.SubmitReindexRequest) -> ReindexRequest:
    """The runner's request for a message; empty names take the defaults."""
    for name in ("input", "layer", "output"):
        if not getattr(m, name):
            raise InvalidInput(f"SubmitReindex needs {name}: give a path" + (" or a version id" if name == "layer" else ""))
    options = {
        "lng_col": m.lng_column, "lat_col": m.lat_column, "row_id_col": m.row_id_column,
        "partition_by": m.partition_by,
    }
    return ReindexRequest(
        input=m.input, layer=m.layer, output=m.output, previous=m.previous or None, crs=crs_of(m.crs).stored_name,
        **{k: v for k, v in options.items() if v},
    )


def job_message(job: Job) -> job_pb2.Job:
    params, result = job.params, job.result
    changes = result.get("changes")
    return job_pb2.Job(
        job_id=job.job_id, kind=job.kind, state=job.state.value, phase=job.phase, rows_done=job.rows_done,
        rows_total=job.rows_total, progress=job.progress, tasks_done=job.tasks_done, tasks_total=job.tasks_total,
        partitions_written=job.partitions_written, cancel_requested=job.cancel_requested, error=job.error or "",
        created_at=to_timestamp(job.created_at), started_at=to_timestamp(job.started_at),
        updated_at=to_timestamp(job.updated_at), finished_at=to_timestamp(job.finished_at),
        input=params.get("input") or "", layer=params.get("layer") or "", previous=params.get("previous") or "",
        output=result.get("output") or params.get("output") or "",
        changes=job_pb2.ChangeSummary(**{k: changes[k] for k in _CHANGE_FIELDS if k in changes}) if changes else None,
    )


_CHANGE_FIELDS = tuple(job_pb2.ChangeSummary.DESCRIPTOR.fields_by_name)


def _news(message: job_pb2.Job) -> bytes:
    """What a watcher is told about: the message without its update time."""
    copy = job_pb2.Job()
    copy.CopyFrom(message)
    copy.ClearField("updated_at")
    return copy.SerializeToString(deterministic=True)


def _job_id(request: job_pb2.JobRequest) -> str:
    if not request.job_id:
        raise InvalidInput("give the job_id (SubmitReindex returns it)")
    return request.job_id


def add_to_server(server: grpc.Server, servicer: JobServicer) -> str:
    """Register ``servicer`` on ``server``; return the service's full name."""
    job_pb2_grpc.add_JobServiceServicer_to_server(servicer, server)
    return SERVICE_NAME
