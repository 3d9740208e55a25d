"""The feeds of :class:`~citygrid.engine.cases.intake.Intake`: a worker's dispatches and the overdue
(督办) notices after a cursor, waiting for news, and callbacks after each commit with news.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
import time


from citygrid.engine.cases.model import DispatchNotice, OverdueNotice
from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.cases.roster import _page_size

#: The intake's logger: this is a part of :class:`~citygrid.engine.cases.intake.Intake`.
log = logging.getLogger("citygrid.engine.cases.intake")


#: The key of the escalation feed among the feeds' news counters (worker ids cannot contain a space).
_OVERDUE = "overdue feed"


class Feeds:
    """Feeds (a part of :class:`~citygrid.engine.cases.intake.Intake`, over its state)."""

    def dispatches(self, worker_id: str, principal: Principal, *, after: int = 0, limit: int = 100,
                   wait: float = 0.0) -> list[DispatchNotice]:
        """``WatchDispatches``: a worker's notices after the cursor ``after``; with ``wait`` seconds,
        blocks until one arrives or the time is up (the servicer loops, passing the last cursor)."""
        if not (principal.role is Role.WORKER and principal.worker_id == worker_id):
            principal.require_role(Role.DISPATCHER, Role.SUPERVISOR, action="watch another worker's dispatches")
            principal.require_covers(self._chain_of_code(self.store.workers.get(worker_id).grid_code),
                                     what=f"worker {worker_id}")
        limit = _page_size(limit)
        return self._wait(lambda: self.store.dispatch_feed(worker_id, after=after, limit=limit), worker_id, wait)

    def overdue(self, principal: Principal, *, after: int = 0, limit: int = 100, wait: float = 0.0) -> list[OverdueNotice]:
        """``WatchOverdue``: escalations inside the caller's jurisdiction after the cursor ``after``."""
        principal.require_role(Role.DISPATCHER, Role.SUPERVISOR, Role.DASHBOARD, action="watch overdue events")
        areas = () if principal.everywhere else principal.jurisdiction
        limit = _page_size(limit)
        return self._wait(lambda: self.store.overdue_feed(after=after, limit=limit, areas=areas), _OVERDUE, wait)

    def _wait(self, read, key: str, wait: float):
        """Read; when there is nothing yet, wait (at most ``wait`` seconds) for news of ``key`` (a
        worker id, or the overdue feed) and read again. A news counter taken before each read tells
        whether a commit came between the read and the wait."""
        deadline = time.monotonic() + wait
        while True:
            with self._feed_lock:
                seen = self._feed_news.get(key, 0)
            rows = read()
            remaining = deadline - time.monotonic()
            if rows or remaining <= 0:
                return rows
            with self._feed_lock:
                if self._feed_news.get(key, 0) == seen:
                    news = self._feed_waiters.get(key)
                    if news is None:
                        news = self._feed_waiters[key] = threading.Condition(self._feed_lock)
                    news.wait(remaining)

    def on_news(self, callback: Callable[[], None], worker_id: str | None = None) -> Callable[[], None]:
        """Call ``callback()`` after each commit that brings news to ``worker_id``'s dispatch feed
        (``None``: the overdue feed), until the function returned is called.

        This is how a caller waits for news without a thread of its own: an event loop passes
        something like ``lambda: loop.call_soon_threadsafe(news.set)``, awaits the event, then reads
        with :meth:`dispatches` or :meth:`overdue` (``wait=0``). Subscribe before the first read and
        clear the event before each read, and no news is missed. The callback runs in the committing
        thread after the commit and must return at once; an error in it is logged, not raised.
        """
        key = _OVERDUE if worker_id is None else worker_id
        with self._feed_lock:
            self._feed_listeners.setdefault(key, []).append(callback)

        def stop() -> None:
            with self._feed_lock:
                listeners = self._feed_listeners.get(key, [])
                if callback in listeners:
                    listeners.remove(callback)
                if not listeners:
                    self._feed_listeners.pop(key, None)

        return stop

    def _wake(self, keys) -> None:
        """After a commit: count news for these workers (or the overdue feed) and wake their watchers."""
        listeners: list[Callable[[], None]] = []
        with self._feed_lock:
            for key in keys:
                self._feed_news[key] = self._feed_news.get(key, 0) + 1
                news = self._feed_waiters.get(key)
                if news is not None:
                    news.notify_all()
                listeners.extend(self._feed_listeners.get(key, ()))
        for callback in listeners:
            try:
                callback()
            except Exception:  # noqa: BLE001 - a watcher's bug must not fail the commit that is already done
                log.warning("a feed listener failed", exc_info=True)
