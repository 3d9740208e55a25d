"""The one error hierarchy of CityGrid.

Every failure the engine reports to a caller is a :class:`CityGridError`. The gRPC layer maps each
class to one status code in a single table (``citygrid.grpc_api.errors``); the CLI maps them to exit
codes. Messages are written for a person: they say what was wrong and what to do about it.
"""

from __future__ import annotations


class CityGridError(Exception):
    """Root of every error CityGrid raises on purpose."""


class InvalidInput(CityGridError, ValueError):
    """The caller's input is malformed: bad coordinates, an unreadable file, a bad argument."""


class NotFound(CityGridError, LookupError):
    """A named thing (grid code, layer version, event, token) does not exist."""


class Conflict(CityGridError):
    """The thing already exists with different content (for example an event id reused)."""


class PreconditionFailed(CityGridError):
    """The request is well formed but not allowed in the current state (illegal transition)."""


class Overloaded(CityGridError):
    """A named limit was exceeded (batch size, queue depth); retry smaller or later."""


class Unauthorized(CityGridError):
    """No credentials, or credentials that are wrong or revoked."""


class Forbidden(CityGridError):
    """The caller is known but its role or jurisdiction does not allow this."""


class Unavailable(CityGridError):
    """A part of the server is not ready yet (still opening or loading); retry shortly."""


class DeadlineExceeded(CityGridError):
    """The caller's deadline passed or it cancelled; the work stopped between chunks."""
