"""Grid workers: who they are, which grid they serve, their skills, shifts, duty and capacity.

A worker (网格员, or a department's field officer) serves one grid and belongs to a department (what
the routing rules match: ``网格员`` for the grid workers, or a department of the taxonomy such as
``城管``); their skills are what a route may ask for (the demo uses taxonomy class codes). Dispatch offers a worker an event when the worker is active and on duty (a
flag the worker or the dispatcher switches; going off duty re-dispatches their open work), inside
their weekly shift at the dispatch time, has the skill the event's category asks for, and holds fewer
open events than their capacity.

Duty is a state of its own, not part of the roster: :meth:`WorkerStore.set_duty` (``SetDuty``) records
it with who changed it and when, in the ``worker_duty`` table, and a roster loaded again (``PutWorkers``,
``citygrid workers load``, ``serve --demo`` at each start) keeps it unless the roster states
``on_duty`` for that worker (``Worker.on_duty is None``: as it is; a new worker starts on duty).

Shifts are weekly patterns in the schedule's local time, written like ``"mon-fri 08:00-18:00"`` or
``"mon-fri 08:00-12:00,14:00-18:00; sat 09:00-12:00"`` (a period whose end is not after its start
runs past midnight), or one of the named :data:`SHIFT_PRESETS`. They are held as one boolean per
minute of the week, so the batch kernel checks a shift with one lookup.

>>> s = Shift.parse("mon-fri 08:00-12:00,14:00-18:00")
>>> bool(s.minutes[8 * 60]), bool(s.minutes[12 * 60]), bool(s.minutes[5 * 1440 + 9 * 60])
(True, False, False)
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field, replace
from datetime import time
from typing import Callable, Iterable, Sequence

import numpy as np

from citygrid.engine.errors import InvalidInput, NotFound
from citygrid.engine.files import read_table

MINUTES_PER_WEEK = 7 * 24 * 60
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: Named shifts; a worker's ``shift`` is one of these names or a pattern.
SHIFT_PRESETS = {
    "always": "mon-sun 00:00-24:00",
    "office": "mon-fri 08:00-12:00,14:00-18:00",
    "day": "mon-sun 08:00-18:00",
    "early": "mon-sun 06:00-14:00",
    "late": "mon-sun 14:00-22:00",
    "night": "mon-sun 22:00-06:00",
}
DEFAULT_SHIFT = "day"
DEFAULT_CAPACITY = 20
#: The department of grid workers (网格员), as the taxonomy names it.
DEFAULT_DEPARTMENT = "网格员"

_ID = re.compile(r"^[\w.:@\-]{1,64}$")


@dataclass(frozen=True, eq=False)
class Shift:
    """A weekly working pattern: ``minutes[i]`` is whether minute ``i`` of the week (Monday 00:00 is
    0, local time) is inside the shift."""

    spec: str
    minutes: np.ndarray

    @classmethod
    def parse(cls, spec: str) -> "Shift":
        text = SHIFT_PRESETS.get(spec.strip(), spec.strip())
        minutes = np.zeros(MINUTES_PER_WEEK, dtype=bool)
        for clause in filter(None, (c.strip() for c in text.split(";"))):
            try:
                days_text, periods_text = clause.split(None, 1)
            except ValueError:
                raise InvalidInput(f"bad shift {spec!r}: write it like 'mon-fri 08:00-18:00'") from None
            for day in _parse_days(days_text, spec):
                for start, end in _parse_periods(periods_text, spec):
                    length = (end - start) % 1440 or 1440
                    first = day * 1440 + start
                    idx = (first + np.arange(length)) % MINUTES_PER_WEEK
                    minutes[idx] = True
        if not minutes.any():
            raise InvalidInput(f"shift {spec!r} has no working time")
        return cls(spec=spec.strip(), minutes=minutes)


@dataclass(frozen=True)
class Worker:
    """One worker. ``grid_code`` is the grid they serve; ``department`` what routing matches."""

    worker_id: str
    grid_code: str
    name: str = ""
    department: str = DEFAULT_DEPARTMENT
    skills: frozenset[str] = field(default_factory=frozenset)
    shift: str = DEFAULT_SHIFT
    capacity: int = DEFAULT_CAPACITY
    #: On duty (值班中) or not; ``None`` in a roster: keep the stored duty (a new worker: on duty).
    on_duty: bool | None = None
    active: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.worker_id, str) or not _ID.match(self.worker_id):
            raise InvalidInput(
                f"bad worker id {self.worker_id!r}: 1-64 letters, digits or '_.:@-'"
            )
        if not self.grid_code:
            raise InvalidInput(f"worker {self.worker_id} needs a grid code")
        if not isinstance(self.capacity, int) or self.capacity < 0:
            raise InvalidInput(f"worker {self.worker_id}: capacity must be a whole number >= 0")
        object.__setattr__(self, "skills", frozenset(str(s) for s in self.skills))
        object.__setattr__(self, "grid_code", str(self.grid_code))
        shift_of(self.shift)  # refuses a bad pattern now, not at dispatch

    @property
    def available(self) -> bool:
        """Active and on duty (the shift is checked at the dispatch time, not here)."""
        return self.active and self.on_duty is not False


_SHIFTS: dict[str, Shift] = {}


def shift_of(spec: str) -> Shift:
    """The parsed shift of a spec (parsed once per distinct spec)."""
    shift = _SHIFTS.get(spec)
    if shift is None:
        shift = _SHIFTS[spec] = Shift.parse(spec)
    return shift


def read_workers(path) -> list[Worker]:
    """Workers from a Parquet table with the columns of the demo's ``workers.parquet``
    (``worker_id``, ``grid_code``, ``name``, ``department``, ``skills``, ``shift``, ``capacity``;
    optional ``on_duty`` (absent or null: keep the stored duty), ``active``)."""
    table = read_table(path, what="workers")
    missing = {"worker_id", "grid_code"} - set(table.column_names)
    if missing:
        raise InvalidInput(f"{path}: no column {', '.join(sorted(missing))}")
    out = []
    for r in table.to_pylist():
        out.append(Worker(
            worker_id=r["worker_id"], grid_code=r["grid_code"], name=r.get("name") or "",
            department=r.get("department") or DEFAULT_DEPARTMENT, skills=frozenset(r.get("skills") or ()),
            shift=r.get("shift") or DEFAULT_SHIFT, capacity=int(r.get("capacity", DEFAULT_CAPACITY)),
            on_duty=None if r.get("on_duty") is None else bool(r["on_duty"]), active=bool(r.get("active", True)),
        ))
    return out


def minute_of_week(local_us: np.ndarray) -> np.ndarray:
    """Minute of the week (Monday 00:00 = 0) of local wall times in microseconds since 1970-01-01
    (which was a Thursday)."""
    minutes = np.asarray(local_us, dtype=np.int64) // 60_000_000
    return ((minutes + 3 * 1440) % MINUTES_PER_WEEK).astype(np.int32)


# ---------------------------------------------------------------------- persistence

MIGRATIONS = [
    [
        """CREATE TABLE workers (
            worker_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            grid_code TEXT NOT NULL,
            department TEXT NOT NULL,
            skills TEXT NOT NULL,
            shift TEXT NOT NULL,
            capacity INTEGER NOT NULL,
            on_duty INTEGER NOT NULL,
            active INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        "CREATE INDEX workers_grid ON workers (grid_code)",
    ],
    # Duty moves to a table of its own, so that loading the roster again keeps it.
    [
        """CREATE TABLE worker_duty (
            worker_id TEXT PRIMARY KEY,
            on_duty INTEGER NOT NULL,
            changed_at INTEGER NOT NULL,
            changed_by TEXT NOT NULL
        )""",
        "INSERT INTO worker_duty SELECT worker_id, on_duty, updated_at, 'roster' FROM workers",
        "ALTER TABLE workers DROP COLUMN on_duty",
    ],
]

_ROSTER = "worker_id, name, grid_code, department, skills, shift, capacity, active"
_COLUMNS = ("w.worker_id, w.name, w.grid_code, w.department, w.skills, w.shift, w.capacity, "
            "coalesce(d.on_duty, 1), w.active")
_FROM = "FROM workers w LEFT JOIN worker_duty d ON d.worker_id = w.worker_id"
#: Who :meth:`WorkerStore.upsert` names for a duty a roster states.
ROSTER = "roster"


class WorkerStore:
    """The ``workers`` table of the event store's database. Writes run on the store's connection
    inside the caller's transaction (so a duty change and the re-dispatch it causes commit
    together); reads go through the store's ``read(sql, params)``."""

    def __init__(self, conn: sqlite3.Connection, read: Callable[[str, Sequence], list]):
        self._conn = conn
        self._read = read

    def upsert(self, workers: Iterable[Worker], now_us: int) -> int:
        """Add or replace roster entries; a worker's duty changes only where the roster states it."""
        workers = list(workers)
        rows = [
            (
                w.worker_id, w.name, w.grid_code, w.department, json.dumps(sorted(w.skills), ensure_ascii=False),
                w.shift, w.capacity, int(w.active), now_us,
            )
            for w in workers
        ]
        self._conn.executemany(
            f"INSERT INTO workers ({_ROSTER}, updated_at) VALUES (?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT(worker_id) DO UPDATE SET name=excluded.name, grid_code=excluded.grid_code, "
            "department=excluded.department, skills=excluded.skills, shift=excluded.shift, "
            "capacity=excluded.capacity, active=excluded.active, updated_at=excluded.updated_at",
            rows,
        )
        stated = [(w.worker_id, int(w.on_duty), now_us, ROSTER) for w in workers if w.on_duty is not None]
        self._conn.executemany(_SET_DUTY, stated)
        return len(rows)

    def set_duty(self, worker_id: str, on_duty: bool, now_us: int, changed_by: str) -> None:
        """Record that ``worker_id`` is now on (or off) duty, as ``changed_by`` said at ``now_us``."""
        self._conn.execute(_SET_DUTY, (worker_id, int(on_duty), now_us, changed_by))

    def duty_record(self, worker_id: str) -> tuple[bool, int, str] | None:
        """(on duty, changed at µs, changed by) of a worker's last duty change; ``None``: never set."""
        rows = self._read("SELECT on_duty, changed_at, changed_by FROM worker_duty WHERE worker_id = ?", (worker_id,))
        return (bool(rows[0][0]), rows[0][1], rows[0][2]) if rows else None

    def get(self, worker_id: str) -> Worker:
        rows = self._read(f"SELECT {_COLUMNS} {_FROM} WHERE w.worker_id = ?", (worker_id,))
        if not rows:
            raise NotFound(f"no worker {worker_id!r}")
        return _worker(rows[0])

    def all(self) -> list[Worker]:
        return [_worker(r) for r in self._read(f"SELECT {_COLUMNS} {_FROM} ORDER BY w.worker_id", ())]

    def list(
        self, *, grid_codes: Sequence[str] | None = None, after: str = "", limit: int = 1000
    ) -> list[Worker]:
        """Workers ordered by id, after the id ``after`` (paging), optionally in some grids."""
        sql, params = f"SELECT {_COLUMNS} {_FROM} WHERE w.worker_id > ?", [after]
        if grid_codes is not None:
            sql += f" AND w.grid_code IN ({','.join('?' * len(grid_codes))})"
            params += list(grid_codes)
        sql += " ORDER BY w.worker_id LIMIT ?"
        return [_worker(r) for r in self._read(sql, [*params, limit])]

_SET_DUTY = (
    "INSERT INTO worker_duty (worker_id, on_duty, changed_at, changed_by) VALUES (?,?,?,?) "
    "ON CONFLICT(worker_id) DO UPDATE SET on_duty=excluded.on_duty, changed_at=excluded.changed_at, "
    "changed_by=excluded.changed_by"
)


def _worker(row) -> Worker:
    worker_id, name, grid_code, department, skills, shift, capacity, on_duty, active = row
    return Worker(
        worker_id=worker_id, grid_code=grid_code, name=name, department=department,
        skills=frozenset(json.loads(skills)), shift=shift, capacity=capacity,
        on_duty=bool(on_duty), active=bool(active),
    )


def with_duty(worker: Worker, on_duty: bool) -> Worker:
    return replace(worker, on_duty=on_duty)


# ---------------------------------------------------------------------- shift parsing


def _parse_days(text: str, spec: str) -> list[int]:
    days: list[int] = []
    for part in text.lower().split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            i, j = _day(a, spec), _day(b, spec)
            days += [(i + k) % 7 for k in range((j - i) % 7 + 1)]
        else:
            days.append(_day(part, spec))
    return days


def _day(name: str, spec: str) -> int:
    try:
        return DAY_NAMES.index(name.strip()[:3])
    except ValueError:
        raise InvalidInput(f"bad shift {spec!r}: unknown day {name!r} (use mon … sun)") from None


def _parse_periods(text: str, spec: str) -> list[tuple[int, int]]:
    periods = []
    for part in text.split(","):
        try:
            a, b = (s.strip() for s in part.split("-"))
            start = _minute(a)
            end = 1440 if b == "24:00" else _minute(b)
        except ValueError:
            raise InvalidInput(f"bad shift {spec!r}: write periods like 08:00-12:00") from None
        periods.append((start, end))
    return periods


def _minute(text: str) -> int:
    t = time.fromisoformat(text)
    return t.hour * 60 + t.minute
