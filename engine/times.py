"""Time, declared once: the clock the engine runs on, and microseconds <-> datetimes and local time.

A clock is any callable that returns an aware ``datetime``.

Shifts, stage deadlines in working time, escalation (督办) and the duplicate window all read the
intake's clock, never the system time directly, so a test (or a rehearsal of a night or a holiday)
passes a clock in: :class:`~citygrid.engine.cases.intake.Intake` takes ``clock=``, the server's
``create_server(config, clock=...)`` passes one to its intake, and a server in another process reads
the ``[intake] clock_start`` key (a :class:`StartedClock`).

- :func:`system_clock`: the real time (the default);
- :class:`ManualClock`: stands still until moved (``advance``, ``set``), for tests that step time;
- :class:`StartedClock`: reads a given instant when made and runs on from it at the pace of the
  system's monotonic clock, for a whole server that must live at another hour.

>>> from datetime import datetime, timedelta, timezone
>>> cst = timezone(timedelta(hours=8))
>>> clock = ManualClock(datetime(2026, 12, 7, 3, 5, tzinfo=cst))
>>> clock.advance(minutes=30).isoformat()
'2026-12-07T03:35:00+08:00'
>>> ManualClock(datetime(2026, 12, 7, 3, 5))
Traceback (most recent call last):
...
citygrid.engine.errors.InvalidInput: clock time 2026-12-07T03:05:00 has no time zone; give an aware time (UTC or +08:00)
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

import numpy as np

from citygrid.engine.errors import InvalidInput

#: What the engine calls for the present time.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The present time (UTC) of the system clock."""
    return datetime.now(timezone.utc)


def aware(t: datetime, what: str = "clock time") -> datetime:
    """``t`` when it carries a time zone; :class:`InvalidInput` otherwise (its instant is unknown)."""
    if not isinstance(t, datetime):
        raise InvalidInput(f"{what} must be a date and time, got {t!r}")
    if t.tzinfo is None or t.tzinfo.utcoffset(t) is None:
        raise InvalidInput(f"{what} {t.isoformat()} has no time zone; give an aware time (UTC or +08:00)")
    return t


class ManualClock:
    """A clock that reads ``start`` until it is moved. Thread-safe."""

    def __init__(self, start: datetime):
        self._now = aware(start)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, t: datetime) -> datetime:
        with self._lock:
            self._now = aware(t)
            return self._now

    def advance(self, **delta: float) -> datetime:
        """Move on by ``timedelta(**delta)`` (``minutes=5``, ``days=1``); returns the new time."""
        with self._lock:
            self._now = self._now + timedelta(**delta)
            return self._now


class StartedClock:
    """A clock that reads ``start`` when it is made and then runs on with the system's monotonic
    clock (so it keeps its pace when the wall clock is set)."""

    def __init__(self, start: datetime, *, monotonic: Callable[[], float] = time.monotonic):
        self.start = aware(start)
        self._monotonic = monotonic
        self._t0 = monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=self._monotonic() - self._t0)


# ---------------------------------------------------------------------- µs <-> datetime, local time

#: Microseconds per minute; times are int64 microseconds since the Unix epoch (UTC) inside.
US_PER_MINUTE = 60_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_us(t) -> np.ndarray | int:
    """UTC microseconds since the epoch of an aware datetime, a ``datetime64`` array (UTC) or an
    integer array already in microseconds. Naive datetimes are refused: their zone is unknown."""
    if isinstance(t, datetime):
        if t.tzinfo is None or t.tzinfo.utcoffset(t) is None:
            raise InvalidInput(f"time {t.isoformat()} has no time zone; give an aware time (UTC or +08:00)")
        return (t - _EPOCH) // timedelta(microseconds=1)
    arr = np.asarray(t)
    if np.issubdtype(arr.dtype, np.datetime64):
        if np.isnat(arr).any():
            raise InvalidInput("a time is missing (NaT)")
        return arr.astype("datetime64[us]").astype(np.int64)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    raise InvalidInput(f"expected times (datetime or datetime64), got {arr.dtype}")


def local_us(t_us: np.ndarray, timezone_name: str) -> np.ndarray:
    """Local wall-clock microseconds (since 1970-01-01 00:00 local) of UTC microsecond times in a
    zone. One zone lookup per calendar month unless the offset changes inside it (DST)."""
    t_us = np.atleast_1d(np.asarray(t_us, dtype=np.int64))
    if t_us.size == 0:
        return t_us.copy()
    tz = ZoneInfo(timezone_name)
    order = np.argsort(t_us, kind="stable")
    sorted_us = t_us[order]
    offsets = offsets_by_month(sorted_us, lambda t: _utc_offset_us(t, tz))
    out = np.empty_like(t_us)
    out[order] = sorted_us + offsets
    return out


def offsets_by_month(sorted_us: np.ndarray, offset_of: Callable[[int], int]) -> np.ndarray:
    """``offset_of(t)`` for each of the sorted microsecond times: one lookup at each end of a calendar
    month whose offset does not change between them, and time by time only in months where it does
    (a DST transition)."""
    month = sorted_us.astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)
    out = np.empty(len(sorted_us), dtype=np.int64)
    bounds = np.flatnonzero(np.diff(month)) + 1
    for lo, hi in _runs(bounds, len(sorted_us)):
        first, last = offset_of(int(sorted_us[lo])), offset_of(int(sorted_us[hi - 1]))
        out[lo:hi] = first if first == last else [offset_of(int(t)) for t in sorted_us[lo:hi]]
    return out


def _runs(bounds: np.ndarray, n: int) -> list[tuple[int, int]]:
    """(start, stop) of the runs between the break points ``bounds`` of ``n`` items."""
    edges = [0, *bounds.tolist(), n]
    return list(zip(edges[:-1], edges[1:]))


def _utc_offset_us(t_us: int, tz: ZoneInfo) -> int:
    return from_us(t_us).astimezone(tz).utcoffset() // timedelta(microseconds=1)


def _from_us(us: int, tz) -> datetime:
    return (_EPOCH + timedelta(microseconds=us)).astimezone(tz)


def from_us(us: int) -> datetime:
    """The aware UTC datetime of a microsecond timestamp."""
    return _from_us(int(us), timezone.utc)
