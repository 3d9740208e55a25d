"""Deadline and cancellation of a long computation, checked between its kernel calls."""

from __future__ import annotations

import threading
import time

from citygrid.engine.errors import DeadlineExceeded


class Budget:
    """Yields ``(lo, hi)`` chunks of ``range(n)``; raises :class:`DeadlineExceeded` before a chunk
    once ``deadline`` (a ``time.monotonic()`` value) has passed or ``cancel`` is set."""

    def __init__(self, deadline: float | None = None, cancel: threading.Event | None = None):
        self.deadline = deadline
        self.cancel = cancel

    def chunks(self, n: int, size: int, what: str, first: int | None = None):
        """Chunks of ``size`` (the first one ``first`` long when given)."""
        bounds = [0] + ([first] if first else []) + list(range((first or 0) + size, n, size)) + [n]
        bounds = sorted(set(b for b in bounds if 0 <= b <= n))
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            if self.cancel is not None and self.cancel.is_set():
                raise DeadlineExceeded(f"cancelled after {lo:,} of {n:,} {what}")
            if self.deadline is not None and time.monotonic() >= self.deadline:
                raise DeadlineExceeded(f"the deadline passed after {lo:,} of {n:,} {what}; retry with more time")
            yield lo, hi
