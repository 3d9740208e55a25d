"""Server interceptors: metrics (outermost), errors, auth (innermost), in that order on every call.

Each layer wraps the behaviour of a method's handler, for all four kinds of method (a
response-streaming behaviour is wrapped by a generator, so errors raised while streaming are handled
too). Servicers stay thin: they raise :mod:`citygrid.engine.errors` classes and read the caller with
:meth:`Authenticator.principal`.

- :class:`MetricsInterceptor` counts each call by its final status code, times it, and tracks calls in
  flight.
- :class:`ErrorInterceptor` maps CityGrid errors to status codes through the one table in
  :mod:`citygrid.grpc_api.errors`; anything else becomes ``INTERNAL`` with a reference id, and the
  traceback is logged under that id, never sent.
- :class:`AuthInterceptor` resolves ``authorization: Bearer <token>`` to the caller's token
  (:class:`~citygrid.engine.tokens.TokenInfo`) before the servicer runs, for every method but the
  exempt ones (health checking).

The three are installed as one ``grpc.ServerInterceptor`` (:class:`InterceptorChain`) that wraps each
method's handler once and reuses it: grpcio runs every interceptor's ``intercept_service`` on every
call, and rebuilding the wrapped handler each time cost about a tenth of a unary call's server time.
"""

from __future__ import annotations

import abc
import contextvars
import logging
import secrets
import time
from typing import Callable, Iterable

import grpc

from citygrid.engine.errors import Unauthorized
from citygrid.engine.principals import Principal
from citygrid.engine.tokens import TokenInfo, TokenStore
from citygrid.grpc_api.errors import status_of
from citygrid.grpc_api.metrics import Metrics

log = logging.getLogger("citygrid.grpc_api")

#: Methods callable without a token (by prefix).
AUTH_EXEMPT = ("/grpc.health.v1.Health/",)

Behavior = Callable  # (request or request iterator, context) -> response or response iterator
Around = Callable[[str, Behavior, bool], Behavior]  # (method, behaviour, streams responses) -> behaviour


def wrap_handler(handler: grpc.RpcMethodHandler | None, method: str, around: Around) -> grpc.RpcMethodHandler | None:
    """The handler with its behaviour replaced by ``around(method, behaviour, response_streaming)``."""
    if handler is None:
        return None
    if handler.unary_unary:
        return handler._replace(unary_unary=around(method, handler.unary_unary, False))
    if handler.unary_stream:
        return handler._replace(unary_stream=around(method, handler.unary_stream, True))
    if handler.stream_unary:
        return handler._replace(stream_unary=around(method, handler.stream_unary, False))
    return handler._replace(stream_stream=around(method, handler.stream_stream, True))


class _Layer(abc.ABC):
    @abc.abstractmethod
    def around(self, method: str, behavior: Behavior, streaming: bool) -> Behavior:
        """The behaviour wrapped in this layer."""


class InterceptorChain(grpc.ServerInterceptor):
    """The layers (the first outermost) around each method's handler, built once per method."""

    def __init__(self, layers: list[_Layer]):
        self._layers = layers
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        handler = self._handlers.get(method)
        if handler is None:
            handler = continuation(handler_call_details)
            if handler is None:  # an unknown method: grpc answers UNIMPLEMENTED; nothing to cache
                return None
            for layer in reversed(self._layers):
                handler = wrap_handler(handler, method, layer.around)
            self._handlers[method] = handler
        return handler


class MetricsInterceptor(_Layer):
    def __init__(self, metrics: Metrics):
        self._metrics = metrics

    def around(self, method, behavior, streaming):
        metrics = self._metrics

        if streaming:
            def call_streaming(request, context):
                metrics.started(method)
                start = time.perf_counter()
                code = "OK"
                try:
                    yield from behavior(request, context)
                except BaseException:
                    code = _code_name(context, default="CANCELLED")
                    raise
                finally:
                    metrics.finished(method, code, time.perf_counter() - start)

            return call_streaming

        def call(request, context):
            metrics.started(method)
            start = time.perf_counter()
            code = "OK"
            try:
                return behavior(request, context)
            except BaseException:
                code = _code_name(context, default="UNKNOWN")
                raise
            finally:
                metrics.finished(method, code, time.perf_counter() - start)

        return call


class ErrorInterceptor(_Layer):
    def around(self, method, behavior, streaming):
        if streaming:
            def call_streaming(request, context):
                try:
                    yield from behavior(request, context)
                except Exception as exc:
                    _abort(method, context, exc)

            return call_streaming

        def call(request, context):
            try:
                return behavior(request, context)
            except Exception as exc:
                _abort(method, context, exc)

        return call


def _abort(method: str, context: grpc.ServicerContext, exc: Exception):
    code = status_of(exc)
    if code is not None:
        context.abort(code, str(exc))
    if context.code() is not None or not context.is_active():
        raise exc  # already aborted further in, or the call is gone (cancelled, deadline passed)
    reference = secrets.token_hex(4)
    log.error("internal error %s in %s", reference, method, exc_info=exc)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error (reference {reference}); the server logged the details")


def _code_name(context: grpc.ServicerContext, default: str) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else default


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
        for key, value in metadata or ():
            if key == "authorization":
                scheme, _, secret = value.partition(" ")
                if scheme.lower() != "bearer" or not secret.strip():
                    raise Unauthorized("the authorization header must be 'Bearer <token>'")
                return self.tokens.lookup(secret.strip())
        raise Unauthorized("no token: send the header 'authorization: Bearer <token>'")

    def enter(self, context: grpc.ServicerContext) -> contextvars.Token:
        return self._caller.set(self.authenticate(context.invocation_metadata()))

    def exit(self, token: contextvars.Token) -> None:
        self._caller.reset(token)


class AuthInterceptor(_Layer):
    def __init__(self, authenticator: Authenticator, exempt: tuple[str, ...] = AUTH_EXEMPT):
        self._auth = authenticator
        self._exempt = exempt

    def around(self, method, behavior, streaming):
        if method.startswith(self._exempt):
            return behavior
        auth = self._auth

        if streaming:
            def call_streaming(request, context):
                token = auth.enter(context)
                try:
                    yield from behavior(request, context)
                finally:
                    auth.exit(token)

            return call_streaming

        def call(request, context):
            token = auth.enter(context)
            try:
                return behavior(request, context)
            finally:
                auth.exit(token)

        return call


def server_interceptors(metrics: Metrics, authenticator: Authenticator) -> list[grpc.ServerInterceptor]:
    """The server's interceptors: metrics, errors and auth (outermost first) in one chain."""
    return [InterceptorChain([MetricsInterceptor(metrics), ErrorInterceptor(), AuthInterceptor(authenticator)])]
