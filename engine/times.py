"""The time the intake runs on: a clock is any callable that returns an aware ``datetime``.

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
