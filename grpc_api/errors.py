"""The one table from CityGrid's errors to gRPC status codes and HTTP statuses.

Each row names the gRPC status code and the HTTP status of an engine error class (the HTTP/JSON
gateway, :mod:`citygrid.grpc_api.web`, sends the HTTP status with an RFC 9457 problem body; the
statuses follow Google's published gRPC-to-HTTP mapping, ``google/rpc/code.proto``).

Servicers raise the classes of :mod:`citygrid.engine.errors`; the error interceptor
(:mod:`citygrid.grpc_api.interceptors`) turns each into its status code with the error's message, which
is written for a person. Anything else is ``INTERNAL``: logged with its traceback under a reference id,
and only that id is sent.

What is sent is bounded in one place, :func:`details_of`: a message that echoes a huge input (a
megabyte-long grid code) would otherwise exceed the client's metadata limit, and the client would
see RESOURCE_EXHAUSTED instead of the error.

>>> status_of(NotFound("no grid with code 'X'"))
<StatusCode.NOT_FOUND: (5, 'not found')>
>>> status_of(KeyError("x")) is None
True
>>> http_status_of(NotFound("x")), http_status_of(Overloaded("x")), http_status_of(KeyError("x"))
(404, 429, 500)
>>> details = details_of(NotFound(f"no grid with code {'X' * 100_000!r}; list the grids"))
>>> len(details.encode()) <= MAX_DETAILS_BYTES, details[:22], details[-16:]
(True, "no grid with code 'XXX", '; list the grids')
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
    Unavailable,
)

#: The one table: each engine error class -> (gRPC status code, HTTP status).
ERRORS: dict[type[CityGridError], tuple[grpc.StatusCode, int]] = {
    InvalidInput: (grpc.StatusCode.INVALID_ARGUMENT, 400),
    NotFound: (grpc.StatusCode.NOT_FOUND, 404),
    Conflict: (grpc.StatusCode.ALREADY_EXISTS, 409),
    PreconditionFailed: (grpc.StatusCode.FAILED_PRECONDITION, 400),
    Overloaded: (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    Unauthorized: (grpc.StatusCode.UNAUTHENTICATED, 401),
    Forbidden: (grpc.StatusCode.PERMISSION_DENIED, 403),
    DeadlineExceeded: (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
    Unavailable: (grpc.StatusCode.UNAVAILABLE, 503),
}
STATUS_CODES: dict[type[CityGridError], grpc.StatusCode] = {cls: code for cls, (code, _) in ERRORS.items()}
#: What anything else is over HTTP (INTERNAL over gRPC).
HTTP_INTERNAL = 500


#: Most UTF-8 bytes of an error message sent to a client. gRPC sends the message in a trailer,
#: percent-encoding every byte outside printable ASCII (3 characters each), and clients refuse
#: trailers over 8 KiB by default: 1,024 bytes stay under that even in Chinese.
MAX_DETAILS_BYTES = 1024
#: Bytes kept from the start of a longer message (what failed) and from its end (what to do); the
#: rest of the budget is for the note between them.
_HEAD_BYTES, _TAIL_BYTES = 640, 320


def details_of(exc: BaseException) -> str:
    """The message of ``exc`` as sent to a client: at most :data:`MAX_DETAILS_BYTES` UTF-8 bytes; a
    longer one keeps its start and its end, and says how much was left out between them."""
    text = str(exc)
    raw = text.encode("utf-8", "replace")
    if len(raw) <= MAX_DETAILS_BYTES:
        return text
    head = raw[:_HEAD_BYTES].decode("utf-8", "ignore")
    tail = raw[-_TAIL_BYTES:].decode("utf-8", "ignore")
    return f"{head} ... [{len(raw) - _HEAD_BYTES - _TAIL_BYTES:,} bytes left out] ... {tail}"


def _row(exc: BaseException) -> tuple[type[CityGridError], grpc.StatusCode, int] | None:
    for cls in type(exc).__mro__:
        row = ERRORS.get(cls)
        if row is not None:
            return (cls, *row)
    return None


def status_of(exc: BaseException) -> grpc.StatusCode | None:
    """The status code of a CityGrid error (by its nearest class in the table), ``None`` otherwise."""
    row = _row(exc)
    return None if row is None else row[1]


def http_status_of(exc: BaseException) -> int:
    """The HTTP status of a CityGrid error (by its nearest class in the table), 500 otherwise."""
    row = _row(exc)
    return HTTP_INTERNAL if row is None else row[2]


def problem_type_of(exc: BaseException) -> str:
    """The RFC 9457 problem type of an error: the gRPC code's name (``not-found``), ``internal`` otherwise."""
    row = _row(exc)
    return "internal" if row is None else row[1].name.lower().replace("_", "-")
