"""The server's threading model: calls live on one asyncio event loop, blocking work runs in handler threads.

- :func:`event_loop`: the process's event loop for gRPC, run by a daemon thread started on first use
  and shared by every server of the process. grpcio's asyncio stack polls one completion queue per
  process, bound to the loop that first used it (events of calls on another loop are handed over
  through that one), so a process runs one loop for all its servers (tests start several).
- :class:`Blocking`: runs a function in a server's handler threads (``max_workers`` of them) and
  awaits it, so the loop never waits on engine work: Numba kernels (they release the GIL, so the
  loop goes on meanwhile), SQLite reads and commits (fsync), token look-ups, file writes.
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
import threading
from concurrent.futures import Executor
from typing import Callable, TypeVar

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


class Blocking:
    """``await blocking(fn, *args, **kwargs)``: ``fn`` in one of the server's handler threads, with
    the caller's context variables (the authenticated caller), off the event loop."""

    def __init__(self, executor: Executor):
        self.executor = executor

    async def __call__(self, fn: Callable[..., T], /, *args, **kwargs) -> T:
        context = contextvars.copy_context()
        call = functools.partial(context.run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.executor, call)


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
