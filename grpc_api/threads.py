"""The server's threading model: calls live on one asyncio event loop, blocking work runs in handler threads.

- :func:`event_loop`: the process's event loop for gRPC, run by a daemon thread started on first use
  and shared by every server of the process. grpcio's asyncio stack polls one completion queue per
  process, bound to the loop that first used it (events of calls on another loop are handed over
  through that one), so a process runs one loop for all its servers (tests start several).
- :class:`HandlerThreads`, :class:`Blocking`: a server's handler threads (``max_workers`` of them)
  and ``await blocking(fn, ...)``, which runs a function in one of them, so the loop never waits on
  engine work: Numba kernels (they release the GIL, so the loop goes on meanwhile), SQLite reads and
  commits (fsync), token look-ups, file writes.
- :class:`SyncContext`: the ``context`` a synchronous (unary) handler gets in its handler thread:
  the methods of ``grpc.ServicerContext`` that handlers use, over the asyncio call. ``abort`` raises
  :class:`Aborted`, which ends the call with its status once the thread is done; ``add_callback``
  callbacks run when the call ends, cancelled or not (the engine's cancellation event for batches).

A call that waits (a stream between messages, a watch between notices) is a coroutine on the loop
and holds no thread; only the work between its waits takes one.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import queue
import threading
from typing import Awaitable, Callable, TypeVar

import grpc

log = logging.getLogger("citygrid.grpc_api")

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def event_loop() -> asyncio.AbstractEventLoop:
    """The process's gRPC event loop, running in the daemon thread ``citygrid-aio`` (started now if
    it is not running yet). It runs until the process exits."""
    global _loop
    with _loop_lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            started = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(started.set)
                loop.run_forever()

            threading.Thread(target=run, name="citygrid-aio", daemon=True).start()
            started.wait()
            _loop = loop
        return _loop


def run_in_loop(coroutine, timeout: float | None = None):
    """Run ``coroutine`` on :func:`event_loop` from another thread and return its result."""
    return asyncio.run_coroutine_threadsafe(coroutine, event_loop()).result(timeout)


class HandlerThreads:
    """A server's ``max_workers`` handler threads, taking jobs from one queue.

    :meth:`run` (on the event loop) queues ``fn(*args)`` and returns an asyncio future of its result.
    Finished jobs are handed back in batches: the first to finish while none is waiting to be handed
    back wakes the loop once, and the loop settles every finished job at that wake-up; under load one
    wake-up serves many calls, where an executor future per call costs a wake-up (a write to the
    loop's self-pipe) and a chain of callbacks each. A job runs even if its future was cancelled
    meanwhile, unless ``skip_cancelled`` (a unary call's job always runs: it accounts for itself).
    """

    def __init__(self, max_workers: int, name: str = "citygrid-grpc"):
        self.max_workers = max_workers
        self._name = name
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._waking = False
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shut_down = False

    def run(self, fn: Callable[..., T], *args, skip_cancelled: bool = False) -> asyncio.Future:
        """``fn(*args)`` in a handler thread; its result (or exception) as a future of the running loop."""
        if len(self._threads) < self.max_workers or self._shut_down:
            self._start()
        future = asyncio.get_running_loop().create_future()
        self._jobs.put((future, fn, args, skip_cancelled))
        return future

    def _start(self) -> None:
        with self._lock:
            if self._shut_down:
                raise RuntimeError("the server's handler threads are shut down")
            loop = asyncio.get_running_loop()
            while len(self._threads) < self.max_workers:
                thread = threading.Thread(target=self._work, args=(loop,), daemon=True,
                                          name=f"{self._name}_{len(self._threads)}")
                thread.start()
                self._threads.append(thread)

    def _work(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs, done = self._jobs, self._done
        while True:
            job = jobs.get()
            if job is None:
                return
            future, fn, args, skip_cancelled = job
            if skip_cancelled and future.cancelled():
                continue
            try:
                outcome = (True, fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                outcome = (False, exc)
            done.put((future, outcome))
            if not self._waking:
                self._waking = True
                try:
                    loop.call_soon_threadsafe(self._settle)
                except RuntimeError:  # the loop is closed: the process is exiting
                    return

    def _settle(self) -> None:
        """On the loop: settle every finished job's future."""
        self._waking = False
        done = self._done
        while True:
            try:
                future, (ok, value) = done.get_nowait()
            except queue.Empty:
                return
            if future.cancelled():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def shutdown(self) -> None:
        """Let the queued jobs finish, then stop the threads (from any thread but the loop's)."""
        with self._lock:
            self._shut_down = True
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            thread.join()


class Blocking:
    """``await blocking(fn, *args, **kwargs)``: ``fn`` in one of the server's handler threads, with
    the caller's context variables (the authenticated caller), off the event loop. A job whose caller
    was cancelled before a thread took it is dropped."""

    def __init__(self, threads: HandlerThreads):
        self.threads = threads

    def __call__(self, fn: Callable[..., T], /, *args, **kwargs) -> Awaitable[T]:
        context = contextvars.copy_context()
        return self.threads.run(functools.partial(context.run, fn, *args, **kwargs), skip_cancelled=True)


#: The attribute :func:`on_loop` sets on a servicer method.
ON_LOOP = "citygrid_on_loop"


def on_loop(when: Callable[[object, object], bool]):
    """Mark a plain unary servicer method quick: run it on the event loop, not in a handler thread,
    when ``when(servicer, request)`` holds and the caller's token is known without the database.

    For in-memory reads of microseconds only: no file or database access, no lock a writer holds
    while it writes, nothing built on first use; ``when`` says when that is so (it must itself be
    such a check). A handler thread costs a call two thread switches and a wake-up of the loop, more
    than such a read (``bench/test_grpc.py``)."""

    def mark(method):
        setattr(method, ON_LOOP, when)
        return method

    return mark


#: The attribute :func:`at_hand` sets on a servicer method.
AT_HAND = "citygrid_at_hand"


def at_hand(answer: Callable[[object, object], object]):
    """Mark a plain unary servicer method whose answer is often ready (remembered): when the caller's
    token is known without the database, ``answer(servicer, request)`` runs first, on the event loop
    with the caller authenticated, and returns the response it has without waiting, or ``None``;
    on ``None`` the method runs in a handler thread as any other. An error it raises ends the call
    as the method's would.

    ``answer`` must never wait: no file read, no lock it would wait for (it tries one and gives up),
    nothing built on first use. A handler thread costs a call two thread switches, a wake-up of the
    loop and a turn at the GIL among up to ``max_workers`` threads: more than handing back an answer
    kept in memory (``bench/test_analytics.py``, ``test_dashboard_queries_over_grpc``)."""

    def mark(method):
        setattr(method, AT_HAND, answer)
        return method

    return mark


class Aborted(Exception):
    """Raised in a handler thread by :meth:`SyncContext.abort`; the call ends with this status."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(code, details)
        self.code = code
        self.details = details


class SyncContext:
    """What a synchronous handler gets as ``context`` in its handler thread (see the module docstring)."""

    __slots__ = ("_context", "_callbacks", "_lock", "ended", "_code", "_details")

    def __init__(self, context: grpc.aio.ServicerContext):
        self._context = context
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        #: Whether the call has ended (answered, cancelled by the client, or past its deadline).
        self.ended = False
        self._code: grpc.StatusCode | None = None
        self._details = ""

    # ------------------------------------------------------------------ for the handler

    def invocation_metadata(self):
        return self._context.invocation_metadata()

    def peer(self) -> str:
        return self._context.peer()

    def auth_context(self):
        return self._context.auth_context()

    def time_remaining(self) -> float | None:
        return self._context.time_remaining()

    def is_active(self) -> bool:
        return not self.ended

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Call ``callback()`` when the call ends; ``False`` (and no call) when it has already ended."""
        with self._lock:
            if self.ended:
                return False
            self._callbacks.append(callback)
            return True

    def abort(self, code: grpc.StatusCode, details: str = ""):
        raise Aborted(code, details)

    def abort_with_status(self, status):
        raise Aborted(status.code, status.details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    # ------------------------------------------------------------------ for the call's coroutine

    def end(self) -> None:
        """Mark the call ended and run the callbacks (on the event loop; they must be quick)."""
        with self._lock:
            self.ended = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 - one callback's bug must not skip the others
                log.exception("a call's end callback failed")
