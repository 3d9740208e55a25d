"""The registry's address index (:class:`~.address.AddressIndex`), built in a thread of its own and
swapped in whole, so a registry call never waits behind it.

- **Built at open and after every load** that adds buildings or units: a thread reads the standing
  buildings' addresses and their units from its **own** connection, in one read transaction (SQLite's
  WAL lets it read while the registry writes), without the registry's lock. Only the last step, the
  swap, takes the lock.
- **Current on writes**: a load bumps the book's generation (under the registry's lock, in the same
  hold as its commit). A build that started before is not swapped in: it reads again. A search waits
  for the index of the current generation, so it never answers from one that lacks an acknowledged
  load; after :data:`WAIT_SECONDS` it is refused with :class:`~citygrid.engine.errors.Unavailable`
  ("being built": retry). A demolition takes its building out of the built index at once
  (:meth:`AddressIndex.remove <.address.AddressIndex.remove>`), and the swap takes out every building
  demolished while the build ran.
- **Searches** run on the index they took, outside every lock; the index is never changed but by
  :meth:`~.address.AddressIndex.remove` (a flag per building).

The units are read as integers (``group_concat`` parsed by numpy, as the registry reads its counts):
no Python object per unit; a found unit's row (and address) is read by the registry.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from citygrid.engine.errors import NotFound, Unavailable
from citygrid.engine.houses.address import AddressIndex
from citygrid.engine.houses.store import open_reader

log = logging.getLogger("citygrid.houses")

#: Seconds a search waits for the index of the current generation before it is refused (Unavailable).
WAIT_SECONDS = 30.0

_UNITS_SQL = """
SELECT group_concat(id), group_concat(building_id), group_concat(entrance), group_concat(number) FROM (
    SELECT u.id AS id, u.building_id AS building_id, coalesce(u.entrance, 0) AS entrance,
           CASE WHEN length(u.number) BETWEEN 1 AND 9 AND u.number NOT GLOB '*[^0-9]*'
                THEN CAST(u.number AS INTEGER) ELSE -1 END AS number
    FROM house_units u JOIN house_buildings b ON b.id = u.building_id
    WHERE u.removed_on IS NULL AND b.demolished_on IS NULL ORDER BY u.building_id, u.id)
"""


@dataclass(frozen=True)
class Built:
    """An address index with the registry ids of its rows: ``building_ids[row]``, ``unit_ids[unit row]``
    and ``row_of[building id]`` (-1: not in the index)."""

    index: AddressIndex
    building_ids: np.ndarray
    unit_ids: np.ndarray
    row_of: np.ndarray


def _integers(text: str | None) -> np.ndarray:
    return np.fromstring(text, dtype=np.int64, sep=",") if text else np.empty(0, dtype=np.int64)


def read_index(conn: sqlite3.Connection) -> Built | None:
    """The address index of the standing buildings and units of the database (None: no building),
    read in one read transaction of ``conn``."""
    conn.execute("BEGIN")
    try:
        buildings = conn.execute("SELECT id, address FROM house_buildings WHERE demolished_on IS NULL "
                                 "ORDER BY id").fetchall()
        units = conn.execute(_UNITS_SQL).fetchone()
    finally:
        conn.execute("COMMIT")
    if not buildings:
        return None
    building_ids = np.fromiter((b[0] for b in buildings), dtype=np.int64, count=len(buildings))
    row_of = np.full(int(building_ids[-1]) + 1, -1, dtype=np.int64)
    row_of[building_ids] = np.arange(len(building_ids))
    unit_ids, unit_building, entrance, number = (_integers(t) for t in units)
    index = AddressIndex([b[1] for b in buildings], unit_building=row_of[unit_building], unit_entrance=entrance,
                         unit_number=number)
    return Built(index, building_ids, unit_ids, row_of)


class AddressBook:
    """The registry's address index, built in a thread (see the module docstring).

    ``data_dir`` is the registry's data directory (the thread opens its own connection), ``lock`` the
    registry's lock (held by the writes that change addresses), ``standing`` gives the registry's
    standing flag per building id (called under ``lock``)."""

    def __init__(self, data_dir, lock: threading.RLock, standing: Callable[[], np.ndarray]):
        self._data_dir = data_dir
        self._lock = lock
        self._standing = standing
        self._state = threading.Condition(threading.Lock())
        self._generation = 0  # of the registry's addresses
        self._built: Built | None = None
        self._built_generation = -1
        self._thread: threading.Thread | None = None
        self._reader: sqlite3.Connection | None = None
        self._closed = False
        #: Why the last build failed (None when it succeeded or none failed).
        self.error: BaseException | None = None
        #: Seconds the last build took, and the generation it was of.
        self.last_build: tuple[float, int] | None = None

    def changed(self) -> None:
        """The registry's addresses changed (a load committed; call under the registry's lock): the
        index is built again, and searches wait for it."""
        with self._state:
            self._generation += 1
        self.start()

    def start(self) -> None:
        """Build the index in the background, unless a build is running (it reads again when it sees the
        generation moved)."""
        with self._state:
            if self._closed or (self._thread is not None and self._thread.is_alive()):
                return
            self.error = None
            self._thread = threading.Thread(target=self._run, name="citygrid-houses-addresses", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._state:
                if self._closed:
                    return
                generation = self._generation
                started = time.perf_counter()
            try:
                reader = self._reader = open_reader(self._data_dir)
                try:
                    built = read_index(reader)
                finally:
                    self._reader = None
                    reader.close()
            except BaseException as exc:  # noqa: BLE001 - kept: searches report it and start a new build
                with self._state:
                    if not self._closed:
                        self.error = exc
                        log.exception("houses: the address index failed to build")
                    self._state.notify_all()
                return
            with self._lock:  # no load or demolition between the check and the swap
                standing = self._standing() if built is not None else None
                with self._state:
                    if self._closed:
                        return
                    if generation != self._generation:
                        continue  # a load committed meanwhile: read again
                    if built is not None:
                        gone = ~standing[built.building_ids]
                        if gone.any():
                            built.index.remove(np.flatnonzero(gone))
                    self._built, self._built_generation = built, generation
                    self.last_build = (time.perf_counter() - started, generation)
                    self._state.notify_all()
                    log.info("houses: address index built in %.1f s (%d buildings)", self.last_build[0],
                             0 if built is None else len(built.building_ids))
                    return

    def current(self, timeout: float | None = None) -> Built:
        """The index of the current generation, waiting up to ``timeout`` seconds (default
        :data:`WAIT_SECONDS`) for its build;
        :class:`Unavailable` when it is not ready by then (or its build failed: a new one is started),
        :class:`NotFound` when the registry holds no standing building."""
        timeout = WAIT_SECONDS if timeout is None else timeout
        with self._state:
            ready = self._state.wait_for(lambda: self._closed or self.error is not None
                                         or self._built_generation == self._generation, timeout)
            error, built = self.error, self._built
        if error is not None:
            self.start()
            raise Unavailable(f"the address index failed to build ({error}); it is being built again, retry shortly")
        if not ready:
            raise Unavailable(f"the address index is being built (waited {timeout:g} s); retry shortly")
        if built is None:
            raise NotFound("the registry holds no building to search")
        return built

    def demolished(self, building_id: int) -> None:
        """Take a demolished building out of the built index (call under the registry's lock)."""
        built = self._built
        if built is not None and building_id < len(built.row_of) and built.row_of[building_id] >= 0:
            built.index.remove([built.row_of[building_id]])

    def close(self) -> None:
        """Stop a running build (its read is interrupted) and wait for its thread."""
        with self._state:
            self._closed = True
            self._state.notify_all()
            thread, reader = self._thread, self._reader
        if reader is not None:
            try:
                reader.interrupt()
            except sqlite3.ProgrammingError:  # closed meanwhile: the build is past its read
                pass
        if thread is not None and thread is not threading.current_thread():
            thread.join()
