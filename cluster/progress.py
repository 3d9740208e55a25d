"""Progress of a re-indexing job's tasks: a Ray actor per driver that the tasks report rows done to,
and the driver's reader of it."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import ray



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
