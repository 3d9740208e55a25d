"""The clock of :class:`~citygrid.engine.cases.intake.Intake`: each tick dispatches what waits for a
worker and escalates what is late (督办); ``run_clock`` ticks in a thread of the serving process.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from citygrid.engine.errors import CityGridError
from citygrid.engine.cases.store import EscalationRow
from citygrid.engine.cases.lifecycle import (
    Escalation, stage_of,
)
from citygrid.engine.times import US_PER_MINUTE, to_us

#: The intake's logger: this is a part of :class:`~citygrid.engine.cases.intake.Intake`.
log = logging.getLogger("citygrid.engine.cases.intake")
from citygrid.engine.cases.actions import _us
from citygrid.engine.cases.feeds import _OVERDUE


@dataclass(frozen=True)
class TickReport:
    dispatched: int
    escalated: int


class ClockWork:
    """The clock (a part of :class:`~citygrid.engine.cases.intake.Intake`, over its state)."""

    def tick(self, now: datetime | None = None) -> TickReport:
        """The clock (call it every minute or so): dispatch events waiting for a worker (oldest
        first) and escalate overdue ones (督办)."""
        with self._writer:
            with self._writing():
                now_us = to_us(now) if now is not None else self._now_us()
                dispatched = self._dispatch_waiting(now_us)
                escalated = self._escalate(now_us)
            if escalated:
                self._wake([_OVERDUE])
        return TickReport(dispatched, escalated)

    def run_clock(self, stop: threading.Event, interval: float = 60.0) -> None:
        """Call :meth:`tick` every ``interval`` seconds until ``stop`` is set (run it in a thread of
        the serving process). A tick that fails with a CityGrid error is logged and retried at the
        next one; any other error ends the thread (a bug)."""
        while not stop.wait(interval):
            try:
                self.tick()
            except CityGridError as exc:
                log.warning("intake clock: tick failed, retrying in %.0f s: %s", interval, exc)

    def _escalate(self, now_us: int) -> int:
        """Inside a transaction: escalate overdue events to their community, then their street."""
        rows: list[EscalationRow] = []
        levels: list[tuple[int, int]] = []
        worked = self.config.schedule.worked_until
        after = (0, 0)
        while due := self.store.due(now_us, after=after):
            after = (_us(due[-1].deadline), due[-1].seq)
            deadlines = np.array([_us(e.deadline) for e in due], dtype=np.int64)
            overdue = (worked(np.full(len(due), now_us)) - worked(deadlines)) / US_PER_MINUTE
            for e, minutes in zip(due, overdue.tolist()):
                limit = self._limit(e.category_code, e.state)
                level = max(int(self.config.escalation.level(minutes, limit)), int(Escalation.COMMUNITY))
                if level <= e.escalation:
                    continue
                for lv in range(e.escalation + 1, level + 1):
                    unit = e.community_code if lv == Escalation.COMMUNITY else e.street_code
                    rows.append(EscalationRow(e.seq, now_us, lv, unit, stage_of(e.state), _us(e.deadline), minutes))
                levels.append((e.seq, level))
        self.store.add_escalations(rows, levels)
        return len(rows)
