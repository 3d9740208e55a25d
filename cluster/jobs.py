"""Batch job records: what was asked, how far it got, what it wrote.

A job (a re-indexing run, say) is a row of ``jobs`` in the data directory's database; each unit of work
it finished (a task that wrote its output partitions) is a row of ``job_tasks``. The process that runs
a job (the server, or the ``citygrid`` command) is its owner and the one writer of its row; any process
can read it. The record outlives the process: when a server restarts, :meth:`JobStore.interrupt_orphans`
marks every job whose owner died while it was queued or running as **interrupted**, and
:meth:`JobStore.resume` queues it again with the tasks it already finished kept, so only the rest runs.

States and the moves between them::

    queued -> running -> succeeded | failed | cancelled
    queued | running -> interrupted        (the owner process died)
    queued | interrupted -> cancelled      (cancel; a running job stops at its next check)
    interrupted | failed | cancelled -> queued   (resume, finished tasks kept)

>>> import tempfile
>>> store = JobStore(tempfile.mkdtemp())
>>> job = store.create("reindex", {"input": "points.parquet"})
>>> job.state, store.start(job.job_id).state
(<JobState.QUEUED: 'queued'>, <JobState.RUNNING: 'running'>)
>>> _ = store.set_totals(job.job_id, rows_total=10, tasks_total=2)
>>> store.complete_task(job.job_id, 0, rows=6, files=["street_code/1/part-00000.parquet"]).progress
0.6
>>> store.finish(job.job_id, JobState.SUCCEEDED).state
<JobState.SUCCEEDED: 'succeeded'>
"""

from __future__ import annotations

import enum
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from citygrid.engine.database import open_database, transaction
from citygrid.engine.errors import InvalidInput, NotFound, PreconditionFailed

STORE = "jobs"
MIGRATIONS = [
    [
        """CREATE TABLE jobs (
            job_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            params TEXT NOT NULL,
            state TEXT NOT NULL,
            phase TEXT NOT NULL DEFAULT '',
            rows_total INTEGER NOT NULL DEFAULT 0,
            rows_done INTEGER NOT NULL DEFAULT 0,
            tasks_total INTEGER NOT NULL DEFAULT 0,
            plan TEXT,
            result TEXT,
            error TEXT,
            owner TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            started_at TEXT,
            updated_at TEXT NOT NULL,
            finished_at TEXT
        )""",
        "CREATE INDEX jobs_by_state ON jobs (state)",
        """CREATE TABLE job_tasks (
            job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
            task INTEGER NOT NULL,
            rows INTEGER NOT NULL,
            files TEXT NOT NULL,
            summary TEXT,
            finished_at TEXT NOT NULL,
            PRIMARY KEY (job_id, task)
        )""",
    ]
]

#: How often :meth:`JobStore.watch` re-reads a job that another process is running.
WATCH_POLL_SECONDS = 0.5


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def active(self) -> bool:
        """Queued or running: the job's owner is (or should be) working on it."""
        return self in (JobState.QUEUED, JobState.RUNNING)

    @property
    def resumable(self) -> bool:
        return self in (JobState.INTERRUPTED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class Job:
    """One job record, as read at one moment."""

    job_id: str
    kind: str
    params: dict
    state: JobState
    phase: str
    rows_total: int
    rows_done: int
    tasks_total: int
    tasks_done: int
    partitions_written: int
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    owner: str | None = None
    error: str | None = None
    result: dict = field(default_factory=dict)

    @property
    def progress(self) -> float:
        """Share of the rows done, 0..1 (1 for a succeeded job, whatever its size)."""
        if self.state is JobState.SUCCEEDED:
            return 1.0
        return self.rows_done / self.rows_total if self.rows_total else 0.0

    def _observable(self) -> tuple:
        return (self.state, self.phase, self.rows_done, self.rows_total, self.tasks_done, self.cancel_requested)


@dataclass(frozen=True)
class TaskRecord:
    """A finished unit of a job: the rows it handled and the files it wrote (relative paths)."""

    task: int
    rows: int
    files: tuple[str, ...]
    summary: dict
    finished_at: datetime


class JobStore:
    """Job records in the database of ``data_dir``. Safe to share between threads."""

    def __init__(self, data_dir: str | os.PathLike):
        self.data_dir = Path(data_dir)
        self._db = open_database(self.data_dir, STORE, MIGRATIONS)
        self._lock = threading.Lock()
        self._changed = threading.Condition(threading.Lock())

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ reading

    def get(self, job_id: str) -> Job:
        jobs = self._select(" WHERE j.job_id = ?", (job_id,))
        if not jobs:
            raise NotFound(f"no job {job_id!r}; list the jobs to see which exist")
        return jobs[0]

    def list(self, *, kind: str | None = None, state: JobState | None = None, limit: int = 100) -> list[Job]:
        """Jobs, newest first."""
        where, params = [], []
        if kind is not None:
            where.append("j.kind = ?")
            params.append(kind)
        if state is not None:
            where.append("j.state = ?")
            params.append(JobState(state).value)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        return self._select(clause + " ORDER BY j.created_at DESC, j.job_id LIMIT ?", (*params, int(limit)))

    def plan(self, job_id: str) -> dict | None:
        """The work plan the owner recorded when it first started the job (kept across resumes)."""
        row = self._one("SELECT plan FROM jobs WHERE job_id = ?", (job_id,))
        return json.loads(row[0]) if row[0] else None

    def tasks(self, job_id: str) -> dict[int, TaskRecord]:
        """The finished tasks of a job, by task number."""
        self.get(job_id)
        with self._lock:
            rows = self._db.execute(
                "SELECT task, rows, files, summary, finished_at FROM job_tasks WHERE job_id = ? ORDER BY task",
                (job_id,),
            ).fetchall()
        return {
            t: TaskRecord(t, n, tuple(json.loads(f)), json.loads(s) if s else {}, _parse(at))
            for t, n, f, s, at in rows
        }

    def watch(self, job_id: str, *, timeout: float | None = None) -> Iterator[Job]:
        """Yield the job now and again each time its state or progress changes; stop after it
        settles (any state but queued or running) or after ``timeout`` seconds.

        Changes this process makes wake the watcher at once; another process's are seen within
        :data:`WATCH_POLL_SECONDS`.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            job = self.get(job_id)
            if last is None or job._observable() != last._observable():
                yield job
                last = job
            if not job.state.active:
                return
            wait = WATCH_POLL_SECONDS
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return
            with self._changed:
                self._changed.wait(wait)

    # ------------------------------------------------------------------ writing

    def create(self, kind: str, params: dict, *, owner: str | None = None) -> Job:
        """Record a new queued job owned by ``owner`` (default: this process)."""
        if not kind:
            raise InvalidInput("a job needs a kind (for example 'reindex')")
        job_id = f"{kind}-{uuid.uuid4().hex[:12]}"
        now = _now()
        try:
            text = json.dumps(params, ensure_ascii=False, sort_keys=True)
        except TypeError as exc:
            raise InvalidInput(f"job parameters must be JSON values: {exc}") from None
        self._write(
            "INSERT INTO jobs (job_id, kind, params, state, owner, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (job_id, kind, text, JobState.QUEUED.value, owner or process_owner(), now, now),
        )
        return self.get(job_id)

    def start(self, job_id: str, *, owner: str | None = None) -> Job:
        """queued -> running, owned by ``owner`` (default: this process)."""
        self._move(job_id, {JobState.QUEUED}, JobState.RUNNING, "start",
                   owner=owner or process_owner(), started_at=_now())
        return self.get(job_id)

    def set_plan(self, job_id: str, plan: dict) -> Job:
        """Record the work plan (kept for resumes; set once)."""
        self._write("UPDATE jobs SET plan = ?, updated_at = ? WHERE job_id = ? AND plan IS NULL",
                    (json.dumps(plan, sort_keys=True), _now(), job_id))
        return self.get(job_id)

    def set_totals(self, job_id: str, *, rows_total: int, tasks_total: int) -> Job:
        self._write("UPDATE jobs SET rows_total = ?, tasks_total = ?, updated_at = ? WHERE job_id = ?",
                    (int(rows_total), int(tasks_total), _now(), job_id))
        return self.get(job_id)

    def set_progress(self, job_id: str, *, rows_done: int | None = None, phase: str | None = None) -> None:
        """Record progress (called often: no read back)."""
        sets, params = ["updated_at = ?"], [_now()]
        if rows_done is not None:
            sets.append("rows_done = ?")
            params.append(int(rows_done))
        if phase is not None:
            sets.append("phase = ?")
            params.append(phase)
        self._write(f"UPDATE jobs SET {', '.join(sets)} WHERE job_id = ?", (*params, job_id))

    def complete_task(self, job_id: str, task: int, *, rows: int, files: list[str], summary: dict | None = None) -> Job:
        """Record a finished task and the files it wrote, in one commit with the job's progress.

        Recording a task again (a resumed job re-ran it after its owner died between writing the
        files and recording them) replaces the record: same task, same file names.
        """
        now = _now()
        with self._lock, transaction(self._db):
            self._db.execute(
                "INSERT INTO job_tasks (job_id, task, rows, files, summary, finished_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(job_id, task) DO UPDATE SET rows = excluded.rows, files = excluded.files, "
                "summary = excluded.summary, finished_at = excluded.finished_at",
                (job_id, int(task), int(rows), json.dumps(list(files)),
                 json.dumps(summary) if summary is not None else None, now),
            )
            self._db.execute(
                "UPDATE jobs SET rows_done = MAX(rows_done, (SELECT COALESCE(SUM(rows), 0) FROM job_tasks "
                "WHERE job_id = ?)), updated_at = ? WHERE job_id = ?",
                (job_id, now, job_id),
            )
        self._notify()
        return self.get(job_id)

    def finish(self, job_id: str, state: JobState, *, error: str | None = None, result: dict | None = None) -> Job:
        """running -> succeeded | failed | cancelled."""
        state = JobState(state)
        if state not in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
            raise InvalidInput(f"a job finishes as succeeded, failed or cancelled, not {state.value}")
        allowed = {JobState.RUNNING, JobState.QUEUED} if state is not JobState.SUCCEEDED else {JobState.RUNNING}
        self._move(job_id, allowed, state, "finish", error=error, finished_at=_now(),
                   result=json.dumps(result, ensure_ascii=False) if result is not None else None,
                   phase="")
        return self.get(job_id)

    def request_cancel(self, job_id: str) -> Job:
        """Cancel a job: a queued or interrupted one at once, a running one at its owner's next check.
        A settled job cannot be cancelled (:class:`PreconditionFailed`)."""
        with self._lock, transaction(self._db):
            state = self._state(job_id)
            if state in (JobState.QUEUED, JobState.INTERRUPTED):
                self._db.execute(
                    "UPDATE jobs SET state = ?, cancel_requested = 1, finished_at = ?, updated_at = ? WHERE job_id = ?",
                    (JobState.CANCELLED.value, _now(), _now(), job_id),
                )
            elif state is JobState.RUNNING:
                self._db.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE job_id = ?",
                                 (_now(), job_id))
            else:
                raise PreconditionFailed(f"job {job_id} already {state.value}; there is nothing to cancel")
        self._notify()
        return self.get(job_id)

    def resume(self, job_id: str, *, owner: str | None = None) -> Job:
        """interrupted | failed | cancelled -> queued, keeping the plan and the finished tasks."""
        self._move(job_id, {JobState.INTERRUPTED, JobState.FAILED, JobState.CANCELLED}, JobState.QUEUED, "resume",
                   owner=owner or process_owner(), cancel_requested=0, error=None, finished_at=None)
        return self.get(job_id)

    def interrupt(self, job_id: str, reason: str) -> Job:
        """queued | running -> interrupted: the owner stops without finishing (it is shutting down)."""
        self._move(job_id, {JobState.QUEUED, JobState.RUNNING}, JobState.INTERRUPTED, "interrupt", error=reason)
        return self.get(job_id)

    def interrupt_orphans(self) -> list[str]:
        """Mark queued and running jobs whose owner process is gone as interrupted; return their ids.

        An owner on this host is gone when its process id no longer exists; an owner on another host
        cannot be checked from here and is left alone.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, owner FROM jobs WHERE state IN (?, ?)",
                (JobState.QUEUED.value, JobState.RUNNING.value),
            ).fetchall()
        orphans = [job_id for job_id, owner in rows if not _owner_alive(owner)]
        for job_id in orphans:
            self._write(
                "UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE job_id = ? AND state IN (?, ?)",
                (JobState.INTERRUPTED.value, "the process running the job stopped; resume it to finish",
                 _now(), job_id, JobState.QUEUED.value, JobState.RUNNING.value),
            )
        return orphans

    # ------------------------------------------------------------------ internals

    def _move(self, job_id: str, allowed: set[JobState], target: JobState, action: str, **columns) -> None:
        with self._lock, transaction(self._db):
            state = self._state(job_id)
            if state not in allowed:
                names = " or ".join(sorted(s.value for s in allowed))
                raise PreconditionFailed(f"cannot {action} job {job_id}: it is {state.value}, not {names}")
            columns = {"state": target.value, "updated_at": _now(), **columns}
            sets = ", ".join(f"{name} = ?" for name in columns)
            self._db.execute(f"UPDATE jobs SET {sets} WHERE job_id = ?", (*columns.values(), job_id))
        self._notify()

    def _state(self, job_id: str) -> JobState:
        row = self._db.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id!r}; list the jobs to see which exist")
        return JobState(row[0])

    def _write(self, sql: str, params: tuple) -> None:
        with self._lock, transaction(self._db):
            self._db.execute(sql, params)
        self._notify()

    def _one(self, sql: str, params: tuple) -> tuple:
        with self._lock:
            row = self._db.execute(sql, params).fetchone()
        if row is None:
            raise NotFound(f"no job {params[0]!r}; list the jobs to see which exist")
        return row

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _select(self, where: str, params: tuple) -> list[Job]:
        with self._lock:
            rows = self._db.execute(
                "SELECT j.job_id, j.kind, j.params, j.state, j.phase, j.rows_total, j.rows_done, j.tasks_total, "
                "(SELECT COUNT(*) FROM job_tasks t WHERE t.job_id = j.job_id), "
                "(SELECT COALESCE(SUM(json_array_length(t.files)), 0) FROM job_tasks t WHERE t.job_id = j.job_id), "
                "j.cancel_requested, j.created_at, j.updated_at, j.started_at, j.finished_at, j.owner, j.error, "
                "j.result FROM jobs j" + where,
                params,
            ).fetchall()
        return [
            Job(
                job_id=r[0], kind=r[1], params=json.loads(r[2]), state=JobState(r[3]), phase=r[4],
                rows_total=r[5], rows_done=r[6], tasks_total=r[7], tasks_done=r[8], partitions_written=r[9],
                cancel_requested=bool(r[10]), created_at=_parse(r[11]), updated_at=_parse(r[12]),
                started_at=_parse(r[13]) if r[13] else None, finished_at=_parse(r[14]) if r[14] else None,
                owner=r[15], error=r[16], result=json.loads(r[17]) if r[17] else {},
            )
            for r in rows
        ]


def process_owner() -> str:
    """``host:pid:start`` of this process: the owner written on the jobs it runs (``start`` is the
    process's start time where the system tells it, so a new process that got an old one's id, such
    as a restarted container's pid 1, is not taken for it)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_start(pid) or ''}"


def _owner_alive(owner: str | None) -> bool:
    parts = (owner or "").rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    host, pid, start = parts[0], int(parts[1]), parts[2]
    if host != socket.gethostname():
        return True  # cannot be checked from here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not start or _process_start(pid) == start


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _now() -> str:
    """UTC with a fixed width, so the text order in SQL is the time order."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)
