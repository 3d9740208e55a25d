"""The one table from CityGrid's errors to gRPC status codes.

Servicers raise the classes of :mod:`citygrid.engine.errors`; the error interceptor
(:mod:`citygrid.grpc_api.interceptors`) turns each into its status code with the error's message, which
is written for a person. Anything else is ``INTERNAL``: logged with its traceback under a reference id,
and only that id is sent.

>>> status_of(NotFound("no grid with code 'X'"))
<StatusCode.NOT_FOUND: (5, 'not found')>
>>> status_of(KeyError("x")) is None
True
"""

from __future__ import annotations

import grpc

from citygrid.engine.errors import (
    CityGridError,
    Conflict,
    DeadlineExceeded,
    Forbidden,
    InvalidInput,
    NotFound,
    Overloaded,
    PreconditionFailed,
    Unauthorized,
)

STATUS_CODES: dict[type[CityGridError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Conflict: grpc.StatusCode.ALREADY_EXISTS,
    PreconditionFailed: grpc.StatusCode.FAILED_PRECONDITION,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unauthorized: grpc.StatusCode.UNAUTHENTICATED,
    Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def status_of(exc: BaseException) -> grpc.StatusCode | None:
    """The status code of a CityGrid error (by its nearest class in the table), ``None`` otherwise."""
    for cls in type(exc).__mro__:
        code = STATUS_CODES.get(cls)
        if code is not None:
            return code
    return None
