"""The gateway's engine reads: run in its own worker threads, and identical reads that wait
together answered by one computation.

Why (profiled under bench/test_http.py's load, 20 clients at 100 requests/s in all): an engine read
of the dashboards takes 0.3-0.7 ms alone, but the analytics serialise their queries on the mirror's
lock, so 20 clients asking at once queued behind each other in 20 of anyio's threads; each one's
Numba kernels and NumPy calls release the GIL and must win it back from the others and from the
event loop, and each request cost two thread switches plus a wake-up of the loop through an
executor future. The request spent 10-25 ms in the "engine call" (mostly waiting) and 5-35 ms more
getting into and out of its thread.

So a read is a job for :class:`~citygrid.grpc_api.threads.HandlerThreads` (the gRPC servicers' pool
type: a few threads, finished jobs handed back to the loop in batches, one wake-up for many), and
reads with the same key take turns: while one computation of a key runs, the requests of that key
that arrive wait for the next one, which starts when the running one ends and answers them all.
Only a computation that has not started is joined: it reads the engine after every joiner arrived,
so a joiner's answer includes every write acknowledged before its request (nothing is served from
before the request; this is not a cache). 20 screens asking the same panel at once cost two
computations at most, however many ask, and the engine is asked at most once per computation time
per key.

Keys are the caller's choice; the gateway's include the principal (jurisdiction, role, worker), the
endpoint, its parameters and the answer's encoding, so only requests with the same answer share one.
A read without a key is never shared (streams, the layer's encoding, token look-ups).
"""

from __future__ import annotations

import asyncio
from typing import Callable, Hashable, TypeVar

from citygrid.engine.errors import DeadlineExceeded, Overloaded
from citygrid.grpc_api.threads import HandlerThreads

T = TypeVar("T")


class SharedReads:
    """``await reads.run(key, fn)``: ``fn()`` in one of ``threads`` worker threads, within
    ``timeout`` seconds (beyond: :class:`DeadlineExceeded`; the thread finishes and its answer is
    dropped) and at most ``max_jobs`` computations queued or running (beyond: :class:`Overloaded`).

    Per key, one computation runs at a time: a request whose key has one running waits for it to
    end and then shares the next one with every request of that key that arrived meanwhile.
    Everything here happens on one event loop (call :meth:`run` there only)."""

    def __init__(self, threads: int, max_jobs: int, timeout: float, *, name: str = "citygrid-http"):
        self._threads = HandlerThreads(threads, name=name)
        self.max_jobs = max_jobs
        self.timeout = timeout
        #: The computation running for a key, and the one waiting to start after it (with its work).
        self._running: dict[Hashable, asyncio.Future] = {}
        self._waiting: dict[Hashable, tuple[asyncio.Future, Callable]] = {}
        self._jobs = 0
        #: Computations started, and requests that shared one started for another request.
        self.computed = 0
        self.shared = 0

    async def run(self, key: Hashable | None, fn: Callable[[], T]) -> T:
        if key is not None and key in self._waiting:
            future = self._waiting[key][0]
            self.shared += 1
        else:
            if self._jobs >= self.max_jobs:
                raise Overloaded(f"{self.max_jobs} requests are running (http_max_concurrent); retry shortly")
            self._jobs += 1
            if key is not None and key in self._running:
                future = asyncio.get_running_loop().create_future()
                self._waiting[key] = (future, fn)
            else:
                future = self._submit(key, fn)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(
                f"the request took longer than {self.timeout:g} s (http_timeout_seconds); "
                "ask for a smaller window or fewer dimensions") from None

    def _submit(self, key: Hashable | None, fn: Callable[[], T]) -> asyncio.Future:
        self.computed += 1
        future = self._threads.run(fn)
        if key is not None:
            self._running[key] = future
        future.add_done_callback(lambda done: self._ended(key, done))
        return future

    def _ended(self, key: Hashable | None, done: asyncio.Future) -> None:
        self._jobs -= 1
        if not done.cancelled():
            done.exception()  # retrieved: a failure every waiter gave up on is not "never retrieved"
        if key is None:
            return
        del self._running[key]
        waiting = self._waiting.pop(key, None)
        if waiting is not None:  # the next computation starts now, after every request that joined it
            shared, fn = waiting
            _chain(self._submit(key, fn), shared)

    def shutdown(self) -> None:
        """Let queued jobs finish, then stop the threads (from any thread but the loop's)."""
        self._threads.shutdown()


def _chain(source: asyncio.Future, target: asyncio.Future) -> None:
    def copy(done: asyncio.Future) -> None:
        if target.done():
            return
        if done.cancelled():
            target.cancel()
        elif done.exception() is not None:
            target.set_exception(done.exception())
        else:
            target.set_result(done.result())
    source.add_done_callback(copy)
