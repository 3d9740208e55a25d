"""The runtime that owns a server's :class:`~citygrid.engine.analytics.queries.Analytics`.

An :class:`AnalyticsHost` builds the analytics of the intake's store on the first query (the data
directory may get its first active layer version after the server was built, as ``serve --demo``
does, and the intake is built on first use for the same reason), with the ``[analytics]``
configuration and a population: residents per grid from ``residents.parquet`` of the demo folder
when the data directory has one (``serve --demo``), else none (rates per 1,000 residents are then
NaN). When the intake host builds a new intake (after a bulk load of history into the store, see
:mod:`citygrid.engine.demo.history`), the analytics follow it with a rebuilt mirror.
"""

from __future__ import annotations

import threading
from pathlib import Path

from citygrid.engine.analytics.config import AnalyticsConfig
from citygrid.engine.analytics.population import PopulationProvider, ResidentsFile
from citygrid.engine.analytics.queries import Analytics
from citygrid.engine.cases.host import IntakeHost

#: Where ``serve --demo`` keeps the demo district's residents, under the data directory.
DEMO_RESIDENTS = Path("demo") / "residents.parquet"


class AnalyticsHost:
    """The analytics of one intake host's store, built on first use."""

    def __init__(self, data_dir: Path, intake: IntakeHost, config: AnalyticsConfig | None = None,
                 population: PopulationProvider | None = None):
        self._data_dir = Path(data_dir)
        self._intake = intake
        self.config = config or AnalyticsConfig()
        self._population = population
        self._lock = threading.Lock()
        self._analytics: Analytics | None = None

    def analytics(self) -> Analytics:
        """The analytics over the intake's store (FAILED_PRECONDITION while no layer version is active)."""
        intake = self._intake.intake()
        analytics = self._analytics
        if analytics is not None and analytics._follow is intake:
            return analytics
        with self._lock:
            if self._analytics is None or self._analytics._follow is not intake:
                if self._analytics is not None:
                    self._analytics.close()
                self._analytics = Analytics.for_intake(intake, self._data_dir, population=self._population_of(intake),
                                                       config=self.config)
            return self._analytics

    def at_hand(self) -> Analytics | None:
        """The analytics when :meth:`analytics` has them without waiting (built, following the intake
        of the active layer version), else ``None``; never waits (for an event loop)."""
        analytics, intake = self._analytics, self._intake.at_hand()
        if analytics is None or intake is None or analytics._follow is not intake:
            return None
        return analytics

    def _population_of(self, intake) -> PopulationProvider | None:
        if self._population is not None:
            return self._population
        residents = self._data_dir / DEMO_RESIDENTS
        if residents.exists():
            return ResidentsFile(residents, intake.layer.column("grid_code").tolist())
        return None

    def close(self) -> None:
        with self._lock:
            if self._analytics is not None:
                self._analytics.close()
                self._analytics = None
