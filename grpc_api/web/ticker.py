"""The live streams' tallies, computed once per tick for every stream that shows the same thing.

A stream (``/api/v1/stream``) sends the day's and the week's events per grid when they change. Each
stream computing them every interval costs the engine one pair of heat maps per screen per tick; a
wall of screens of one street would ask the same question many times a second. So the streams with
the same key (the caller's jurisdiction, role and worker, the filters, the interval) read one
:class:`Ticker`, which computes every ``interval`` seconds while anyone listens, keeps the latest
answer with a version number that grows when the counts change, and wakes its readers. A stream that
joins gets the latest answer at once; the ticker stops when its last stream closes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Hashable

from citygrid.engine.errors import CityGridError

log = logging.getLogger("citygrid.grpc_api.web")


class Ticker:
    """One key's computation every ``interval`` seconds (see the module docstring)."""

    def __init__(self, compute: Callable[[], Awaitable[dict]], interval: float, same: Callable[[dict], object]):
        self.interval = interval
        self._compute = compute
        self._same = same
        #: ("tallies", answer) or ("problem", CityGridError), and its version (0: none yet).
        self.latest: tuple[str, object] | None = None
        self.version = 0
        self.computed = 0
        self.readers = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def wait(self, seen: int, timeout: float) -> None:
        """Until there is a version after ``seen`` or ``timeout`` seconds passed."""
        if self.version > seen:
            return
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def _run(self) -> None:
        last = None
        while True:
            try:
                answer = await self._compute()
                self.computed += 1
                counts = self._same(answer)
                if self.latest is None or self.latest[0] != "tallies" or counts != last:
                    last = counts
                    self._publish(("tallies", answer))
            except CityGridError as exc:
                self._publish(("problem", exc))
            except Exception:  # noqa: BLE001 - a ticker outlives a bad tick; the log has it
                log.exception("the stream tallies' tick failed")
            await asyncio.sleep(self.interval)

    def _publish(self, latest: tuple[str, object]) -> None:
        self.latest = latest
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()  # the readers woken now wait on the next one


class Tickers:
    """The running tickers by key; :meth:`join` and :meth:`leave` on the event loop only."""

    def __init__(self):
        self._tickers: dict[Hashable, Ticker] = {}

    def join(self, key: Hashable, compute: Callable[[], Awaitable[dict]], interval: float,
             same: Callable[[dict], object]) -> Ticker:
        ticker = self._tickers.get(key)
        if ticker is None:
            ticker = self._tickers[key] = Ticker(compute, interval, same)
            ticker.start()
        ticker.readers += 1
        return ticker

    def leave(self, key: Hashable, ticker: Ticker) -> None:
        ticker.readers -= 1
        if ticker.readers == 0 and self._tickers.get(key) is ticker:
            del self._tickers[key]
            ticker.stop()

    def __len__(self) -> int:
        return len(self._tickers)

    def running(self) -> list[Ticker]:
        return list(self._tickers.values())
