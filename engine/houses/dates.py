"""Local dates of the houses wing: moves, declarations and demolitions are dated in the district's
local calendar (Asia/Shanghai, UTC+8, no daylight saving)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from citygrid.engine.errors import InvalidInput

#: Local time of the district (dates of moves are local dates).
LOCAL = timezone(timedelta(hours=8))


def local_date(value, what: str = "date") -> str:
    """A date (``date``, aware ``datetime`` or ISO text) as local ISO ``YYYY-MM-DD``."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidInput(f"the {what} {value.isoformat()} has no time zone")
        return value.astimezone(LOCAL).date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise InvalidInput(f"the {what} must be a date (YYYY-MM-DD), not {value!r}")
