"""What wraps every call: metrics (outermost), readiness, admission, auth, errors, for the asyncio server.

The layers are applied once per method, when a servicer registers its handlers on the
:class:`Registrar` (the object ``add_to_server`` functions get as their server), so a call pays no
interceptor look-up. Servicers stay thin: they raise :mod:`citygrid.engine.errors` classes and read
the caller with :meth:`Authenticator.principal`.

- Metrics: each call counted by its final status code, timed, and tracked in flight
  (:class:`~citygrid.grpc_api.metrics.Metrics`).
- Readiness: while the server is not ready (``Interceptors.ready`` false: ``serve --demo`` preparing
  the demo district) every call but health checking gets UNAVAILABLE, and health says NOT_SERVING.
- Admission: at most ``max_concurrent_rpcs`` unary calls run or wait for a handler thread; beyond
  that RESOURCE_EXHAUSTED at once. At most ``max_streams_per_token`` streams (any call that streams
  requests or responses) are open per token; beyond that RESOURCE_EXHAUSTED with a message that says
  what to do (:class:`StreamLimit`).
- Auth: ``authorization: Bearer <token>`` resolved to the caller's token
  (:class:`~citygrid.engine.access.tokens.TokenInfo`) in a handler thread (the token store is SQLite) before
  the servicer runs, for every method but the exempt ones (health checking).
- Errors: CityGrid errors become their status codes through the one table in
  :mod:`citygrid.grpc_api.errors`, with the error's message bounded (:func:`~citygrid.grpc_api.errors.details_of`);
  anything else becomes ``INTERNAL`` with a reference id, and the traceback is logged under that id,
  never sent.

How a method runs (:mod:`citygrid.grpc_api.threads`): a plain ``def`` unary method runs in a handler
thread, whole (auth, servicer, error mapping), with a :class:`~citygrid.grpc_api.threads.SyncContext`;
the coroutine only waits for it. One marked :func:`~citygrid.grpc_api.threads.on_loop` (an in-memory
read of microseconds, such as ``AssignPoint``) runs the same way on the loop itself when its
condition holds and the caller's token is known without the database; otherwise in a thread. One
marked :func:`~citygrid.grpc_api.threads.at_hand` (AnalyticsService's queries) first asks, on the
loop, for an answer it has without waiting (remembered); only when there is none does it go to a
thread. A streaming method must be ``async`` (an async generator, or a
coroutine that writes with ``context.write``) and runs on the event loop, handing its blocking work to
``resources.blocking``; a plain ``def`` streaming method is refused when it is registered, since it
would hold a thread while it waits.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import secrets
import threading
import time
from typing import Callable, Iterable

import grpc

from citygrid.engine.errors import Overloaded, Unauthorized
from citygrid.engine.access.principals import Principal
from citygrid.engine.access.tokens import TokenInfo, TokenStore
from citygrid.grpc_api.errors import details_of, status_of
from citygrid.grpc_api.metrics import Metrics
from citygrid.grpc_api.threads import AT_HAND, ON_LOOP, Aborted, Blocking, SyncContext

log = logging.getLogger("citygrid.grpc_api")

#: Methods callable without a token, and while the server is not ready (by prefix).
AUTH_EXEMPT = ("/grpc.health.v1.Health/",)
#: What a call gets while the server is not ready.
NOT_READY = ("the server is starting (serve --demo prepares the demo district on its first start); retry when "
             "the health check (citygrid query health) says SERVING")


class Authenticator:
    """Resolves bearer tokens and holds the current call's caller (a context variable per server)."""

    def __init__(self, tokens: TokenStore):
        self.tokens = tokens
        self._caller: contextvars.ContextVar[TokenInfo] = contextvars.ContextVar("citygrid_caller")

    def caller(self) -> TokenInfo:
        """The token of the call being served."""
        try:
            return self._caller.get()
        except LookupError:
            raise Unauthorized("this call was not authenticated") from None

    def principal(self) -> Principal:
        return self.caller().principal

    def authenticate(self, metadata: Iterable[tuple[str, str]] | None) -> TokenInfo:
        return self.tokens.lookup(_bearer(metadata))

    def cached(self, metadata: Iterable[tuple[str, str]] | None) -> TokenInfo | None:
        """:meth:`authenticate` answered from the token store's memory without waiting, or ``None`` when
        that takes the database (or the header is wrong: :meth:`authenticate` says how)."""
        try:
            return self.tokens.cached(_bearer(metadata))
        except Unauthorized:
            return None

    def assume(self, info: TokenInfo) -> None:
        """Make ``info`` the caller for the rest of the current context (a call's own task or thread context)."""
        self._caller.set(info)


def _bearer(metadata: Iterable[tuple[str, str]] | None) -> str:
    """The secret of the ``authorization: Bearer <token>`` header."""
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, secret = value.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                raise Unauthorized("the authorization header must be 'Bearer <token>'")
            return secret.strip()
    raise Unauthorized("no token: send the header 'authorization: Bearer <token>'")


class StreamLimit:
    """Open streams per token, at most ``per_token`` each. Used on the event loop only (no lock)."""

    def __init__(self, per_token: int):
        self.per_token = per_token
        self._open: dict[str, int] = {}

    def open(self, info: TokenInfo) -> Callable[[], None]:
        """Count a stream of ``info``'s token (:class:`Overloaded` beyond the limit); returns the
        function that closes it (calling it again does nothing)."""
        token_id = info.token_id
        n = self._open.get(token_id, 0)
        if n >= self.per_token:
            raise Overloaded(
                f"the token {token_id} of {info.principal.name} already has {n} streams open, the most one token "
                "may hold (max_streams_per_token in the server's [server] config); close a stream you no longer "
                "read, or give each terminal a token of its own"
            )
        self._open[token_id] = n + 1
        closed = False

        def close() -> None:
            nonlocal closed
            if closed:
                return
            closed = True
            left = self._open[token_id] - 1
            if left:
                self._open[token_id] = left
            else:
                del self._open[token_id]

        return close

    def count(self, token_id: str) -> int:
        return self._open.get(token_id, 0)


class Interceptors:
    """The layers of the module docstring around each method's handler (:meth:`wrap`)."""

    def __init__(self, metrics: Metrics, auth: Authenticator, blocking: Blocking, *, max_calls: int,
                 max_streams_per_token: int, exempt: tuple[str, ...] = AUTH_EXEMPT):
        self.metrics = metrics
        self.auth = auth
        self.blocking = blocking
        self.streams = StreamLimit(max_streams_per_token)
        #: False while the server prepares what it serves: calls but health checks get UNAVAILABLE.
        self.ready = True
        self._exempt = exempt
        self._max_calls = max_calls
        self._calls = 0
        self._calls_lock = threading.Lock()

    def wrap(self, method: str, handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler | None:
        """The handler with every layer around its behaviour (and a response serialiser that sends a
        servicer's ``bytes``, an answer it serialised before, as they are)."""
        if handler is None:
            return None
        if handler.response_serializer is not None:
            handler = handler._replace(response_serializer=_bytes_as_they_are(handler.response_serializer))
        if not handler.request_streaming and not handler.response_streaming:
            behavior = handler.unary_unary
            if inspect.iscoroutinefunction(behavior):
                return handler._replace(unary_unary=self._async_call(method, behavior, streaming=False))
            return handler._replace(unary_unary=self._threaded_call(method, behavior))
        kind = {(False, True): "unary_stream", (True, False): "stream_unary", (True, True): "stream_stream"}[
            (handler.request_streaming, handler.response_streaming)]
        behavior = getattr(handler, kind)
        if inspect.isasyncgenfunction(behavior):
            wrapped = self._async_stream(method, behavior)
        elif inspect.iscoroutinefunction(behavior):
            wrapped = self._async_call(method, behavior, streaming=True)
        else:
            raise TypeError(
                f"{method} streams, so its servicer method must be async (an async generator, or a coroutine "
                "using context.write); a plain def would hold a handler thread while it waits (see "
                "citygrid.grpc_api.threads)"
            )
        return handler._replace(**{kind: wrapped})

    # ------------------------------------------------------------------ unary methods in a handler thread

    def _threaded_call(self, method: str, behavior: Callable):
        metrics, auth, threads = self.metrics, self.auth, self.blocking.threads
        exempt = method.startswith(self._exempt)
        quick = getattr(behavior, ON_LOOP, None)  # see threads.on_loop
        ready = getattr(behavior, AT_HAND, None)  # see threads.at_hand
        servicer = getattr(behavior, "__self__", None)

        def serve(request, context: SyncContext, start: float, caller: TokenInfo | None = None,
                  answer: Callable | None = None):
            """Auth (unless ``caller`` is known), the servicer (or ``answer``, an at-hand answer), errors;
            returns (response, code, details), or (None, None, "") when ``answer`` had none: the call is
            then still running, not counted. In a handler thread, or on the loop for a quick call."""
            response, code, details, settled = None, None, "", True
            try:
                if context.ended:
                    code = grpc.StatusCode.CANCELLED  # cancelled, or past its deadline, while it waited
                    return None, code, ""
                if not exempt:
                    auth.assume(caller or auth.authenticate(context.invocation_metadata()))
                if answer is not None:
                    response = answer(servicer, request)
                    settled = response is not None
                else:
                    response = behavior(request, context)
                if context.code() not in (None, grpc.StatusCode.OK):
                    code, details = context.code(), context.details()
            except Aborted as aborted:
                code, details = aborted.code, aborted.details
            except Exception as exc:  # noqa: BLE001 - every error becomes a status here
                settled = True
                code, details = _status(method, exc, ended=context.ended)
            finally:
                if settled:
                    with self._calls_lock:
                        self._calls -= 1
                    metrics.finished(method, code.name if code is not None else "OK", time.perf_counter() - start)
            return response, code, details

        async def call(request, context):
            if not self.ready and not exempt:
                self._refuse(method)
                await context.abort(grpc.StatusCode.UNAVAILABLE, NOT_READY)
            with self._calls_lock:
                admitted = self._calls < self._max_calls
                if admitted:
                    self._calls += 1
            if not admitted:
                self._refuse(method, "RESOURCE_EXHAUSTED")
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, (
                    f"the server already has {self._max_calls} calls running or waiting for a handler thread "
                    "(max_concurrent_rpcs); retry with backoff"))
            metrics.started(method)
            sync = SyncContext(context)
            start = time.perf_counter()
            caller = None if exempt or (quick is None and ready is None) else auth.cached(context.invocation_metadata())
            known = exempt or caller is not None
            try:
                if quick is not None and known and quick(servicer, request):
                    # A quick call whose caller is known without the database: on the loop, no thread hop.
                    response, code, details = contextvars.Context().run(serve, request, sync, start, caller)
                else:
                    response = code = None
                    if ready is not None and known:
                        # An answer at hand (remembered) whose caller is known without the database:
                        # handed back on the loop, no thread hop; (None, None) when it is not at hand.
                        response, code, details = contextvars.Context().run(serve, request, sync, start, caller,
                                                                            ready)
                    if response is None and code is None:
                        # A cancelled call's job still runs (and counts itself); SyncContext.end() tells it
                        # (and the engine) to stop early.
                        response, code, details = await threads.run(contextvars.Context().run, serve, request,
                                                                    sync, start)
            finally:
                sync.end()
            if code is not None:
                await context.abort(code, details)
            return response

        return call

    # ------------------------------------------------------------------ async methods on the event loop

    async def _enter(self, method: str, context, exempt: bool, streaming: bool) -> Callable[[], None] | None:
        """Readiness, auth and the stream limit of an async call; returns what closes its stream."""
        if exempt:
            return None
        if not self.ready:
            await context.abort(grpc.StatusCode.UNAVAILABLE, NOT_READY)
        info = self.auth.cached(context.invocation_metadata())  # known without the database: no thread hop
        if info is None:
            info = await self.blocking(self.auth.authenticate, context.invocation_metadata())
        self.auth.assume(info)
        return self.streams.open(info) if streaming else None

    @contextlib.asynccontextmanager
    async def _served(self, method: str, context, streaming: bool):
        """Every layer of an async call around its body (the ``async with`` block)."""
        self.metrics.started(method)
        start, ok, release = time.perf_counter(), False, None
        try:
            release = await self._enter(method, context, method.startswith(self._exempt), streaming)
            yield
            ok = True
        except BaseException as exc:
            await _fail(method, context, exc)
            raise
        finally:
            if release is not None:
                release()
            self.metrics.finished(method, _code_name(context, ok), time.perf_counter() - start)

    def _async_call(self, method: str, behavior: Callable, *, streaming: bool):
        async def call(request, context):
            async with self._served(method, context, streaming):
                return await behavior(request, context)

        return call

    def _async_stream(self, method: str, behavior: Callable):
        async def call(request, context):
            async with self._served(method, context, True), contextlib.aclosing(behavior(request, context)) as responses:
                async for response in responses:
                    yield response

        return call

    def _refuse(self, method: str, code: str = "UNAVAILABLE") -> None:
        self.metrics.started(method)
        self.metrics.finished(method, code, 0.0)


def _bytes_as_they_are(serializer: Callable[[object], bytes]) -> Callable[[object], bytes]:
    """``serializer``, but a message already serialised (``bytes``, such as a remembered answer) is sent as is."""

    def serialize(message) -> bytes:
        return message if type(message) is bytes else serializer(message)

    return serialize


def _status(method: str, exc: Exception, *, ended: bool) -> tuple[grpc.StatusCode, str]:
    """The status code and message for an error a servicer raised."""
    code = status_of(exc)
    if code is not None:
        return code, details_of(exc)
    if ended:  # the call is gone (cancelled, deadline passed): what failed after it no longer matters
        log.debug("%s failed after its call ended", method, exc_info=exc)
        return grpc.StatusCode.CANCELLED, ""
    reference = secrets.token_hex(4)
    log.error("internal error %s in %s", reference, method, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error (reference {reference}); the server logged the details"


async def _fail(method: str, context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    """End an async call that raised ``exc`` with its status; returns (the caller re-raises) when
    there is nothing to send: cancelled, already aborted, or not an error at all."""
    if not isinstance(exc, Exception) or isinstance(exc, grpc.aio.AbortError) or context.done():
        return
    code, details = _status(method, exc, ended=context.cancelled())
    if code is not grpc.StatusCode.CANCELLED:
        await context.abort(code, details)


def _code_name(context: grpc.aio.ServicerContext, ok: bool) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    return "OK" if ok else "CANCELLED"


class _MethodTable(grpc.GenericRpcHandler):
    """Every wrapped method handler of a server by its full name (one dictionary look-up a call)."""

    def __init__(self):
        self.methods: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details):
        return self.methods.get(handler_call_details.method)


class _WrappedGeneric(grpc.GenericRpcHandler):
    """A generic handler whose method handlers are wrapped on first use (once per method)."""

    def __init__(self, inner: grpc.GenericRpcHandler, interceptors: Interceptors):
        self._inner = inner
        self._interceptors = interceptors
        self._handlers: dict[str, grpc.RpcMethodHandler | None] = {}

    def service(self, handler_call_details):
        method = handler_call_details.method
        try:
            return self._handlers[method]
        except KeyError:
            handler = self._interceptors.wrap(method, self._inner.service(handler_call_details))
            if handler is not None:
                self._handlers[method] = handler
            return handler


class Registrar:
    """The "server" that ``add_to_server`` functions (and the generated ``add_*Servicer_to_server``)
    register on: each handler goes to the ``grpc.aio`` server wrapped by :class:`Interceptors`.

    Every method goes into one table the server looks up per call (a generic handler), none is
    registered with the server as such: grpcio's asyncio server keeps a pending call request per
    registered method and waits on all of them (``asyncio.wait``) for every call it takes, which with
    this server's 40 methods cost more than the AssignPoint handler itself (measured with py-spy).
    """

    def __init__(self, server: grpc.aio.Server, interceptors: Interceptors):
        self.server = server
        self.interceptors = interceptors
        self._table = _MethodTable()
        server.add_generic_rpc_handlers([self._table])

    def add_generic_rpc_handlers(self, generic_rpc_handlers) -> None:
        self.server.add_generic_rpc_handlers([_WrappedGeneric(h, self.interceptors) for h in generic_rpc_handlers])

    def add_registered_method_handlers(self, service_name: str, method_handlers: dict) -> None:
        for name, handler in method_handlers.items():
            method = f"/{service_name}/{name}"
            self._table.methods[method] = self.interceptors.wrap(method, handler)
