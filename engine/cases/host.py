"""The runtime that owns the intake of a data directory (the writer's; it was in the gRPC layer,
but it is engine work: building, following activations, the clock thread).

An :class:`IntakeHost` owns the intake of the server's data directory: built on the first call that
needs it (the data directory may get its first active layer version after the server was built,
as ``--demo`` does), with the events in the data directory's database
(:class:`~citygrid.engine.cases.store.SqliteEventStore`), set up by the ``[intake]`` table of the server's
config (:class:`~citygrid.engine.cases.settings.IntakeSettings`). It follows layer activations (new reports are
placed on the active version, and the open events whose grid changed move to their new grid and
are dispatched again; every call compares the version id, one attribute read), runs the
intake's clock in a thread (dispatching waiting events and escalating overdue ones every
``clock_interval`` seconds) and closes the store when the server stops.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.cases.intake import Intake
from citygrid.engine.cases.locator import AssignerLocator, read_buildings
from citygrid.engine.cases.settings import IntakeSettings
from citygrid.engine.cases.store import SqliteEventStore
from citygrid.engine.dispatch.workers import read_workers
from citygrid.engine.errors import PreconditionFailed
from citygrid.engine.layers.registry import LayerRegistry
from citygrid.engine.times import Clock

#: The server's logger (what it logged under before the host moved here from the gRPC layer).
log = logging.getLogger("citygrid.grpc_api")

#: Who the audit trail names for the workers loaded at start-up (``--demo``).
STARTUP = Principal("citygrid start-up", Role.ADMIN)
#: Who the audit trail names for the open events moved to another grid when a layer version is activated.
LAYER_ACTIVATION = Principal("layer-activation", Role.ADMIN)


class IntakeHost:
    """The intake of one data directory, built on first use over the registry's active version, set
    up by ``settings`` (the ``[intake]`` table of the server's config; the engine's defaults when
    ``None``)."""

    def __init__(self, data_dir: Path, registry: LayerRegistry, settings: IntakeSettings | None = None,
                 *, clock: Clock | None = None):
        self._data_dir = Path(data_dir)
        self._registry = registry
        self._settings = settings or IntakeSettings()
        #: The intake's clock: the one given, else ``[intake] clock_start``'s, else the system's.
        self.clock: Clock | None = clock or self._settings.clock()
        self._lock = threading.Lock()
        self._intake: Intake | None = None
        self._buildings: dict[str, tuple[float, float]] = {}
        self._stop = threading.Event()
        self._clock: threading.Thread | None = None

    def at_hand(self) -> Intake | None:
        """The intake when :meth:`intake` has it without waiting (built, on the active layer version),
        else ``None``; never waits (for an event loop)."""
        try:
            snapshot = self._registry.snapshot()
        except PreconditionFailed:
            return None
        intake = self._intake
        return intake if intake is not None and intake.layer.version_id == snapshot.version_id else None

    def intake(self) -> Intake:
        """The intake, placing new reports on the active layer version (on a change of version, the
        open events whose grid changed are moved first)."""
        snapshot = self._registry.snapshot()  # FAILED_PRECONDITION when no version is active
        intake = self._intake
        if intake is not None and intake.layer.version_id == snapshot.version_id:
            return intake
        with self._lock:
            locator = AssignerLocator(snapshot.assigner)
            if self._intake is None:
                settings = self._settings
                self._intake = Intake(SqliteEventStore(self._data_dir), locator, buildings=self._buildings,
                                      config=settings.intake_config, taxonomy=settings.taxonomy,
                                      routing=settings.routing_rules, clock=self.clock)
                self._clock = threading.Thread(target=self._intake.run_clock, args=(self._stop, settings.clock_interval),
                                               name="citygrid-intake-clock", daemon=True)
                self._clock.start()
            elif self._intake.layer.version_id != snapshot.version_id:
                log.info("intake: new reports go on layer version %s", snapshot.version_id)
                self._intake.use_layer(locator)
                moved = self._intake.regrid_open_events(LAYER_ACTIVATION, note="on activation")
                log.info("intake: %d open events changed grid on layer version %s and were dispatched again",
                         len(moved), snapshot.version_id)
            return self._intake

    def rebuild(self) -> None:
        """Build the intake anew from the store on its next use: after a bulk load wrote the store
        behind the intake's back (:func:`citygrid.engine.demo.history.load_demo_history`), so who
        holds what and the duplicate index are read again. For start-up, before the server is ready."""
        with self._lock:
            if self._intake is None:
                return
            self._stop.set()
            if self._clock is not None:
                self._clock.join()
            self._intake.close()
            self._intake, self._clock = None, None
            self._stop = threading.Event()

    def use_buildings(self, positions) -> None:
        """Place reports given by building (or unit) code at these positions (a live mapping: the house
        registry's :meth:`~citygrid.engine.houses.registry.HouseRegistry.positions`) instead of a table
        loaded with :meth:`load_staff`; before the intake's first use."""
        with self._lock:
            if self._intake is not None:
                self._intake.buildings = positions
            self._buildings = positions

    def load_staff(self, workers_path: Path | None = None, buildings_path: Path | None = None) -> tuple[int, int]:
        """Load workers (added or replaced) and building positions from Parquet tables such as the
        demo's ``workers.parquet`` and ``buildings.parquet``; returns how many of each."""
        intake = self.intake()
        n_buildings = 0
        if buildings_path is not None:
            if not isinstance(intake.buildings, dict):
                raise PreconditionFailed("the intake places building codes through the house registry; load "
                                         "buildings there")
            buildings = read_buildings(buildings_path)
            intake.buildings.update(buildings)
            n_buildings = len(buildings)
        n_workers = intake.put_workers(read_workers(workers_path), STARTUP) if workers_path is not None else 0
        return n_workers, n_buildings

    def open_event_locations(self) -> list[tuple[str, float, float, str]]:
        """The intake's open placed events for a re-indexing job's change report."""
        return self.intake().open_event_locations()

    def grid_workers(self) -> list[tuple[str, str]]:
        """The intake's workers and their grids for a re-indexing job's change report."""
        return self.intake().grid_workers()

    def close(self) -> None:
        """Stop the clock and close the store (after the server has stopped)."""
        with self._lock:
            self._stop.set()
            if self._clock is not None:
                self._clock.join()
            if self._intake is not None:
                self._intake.close()
