"""Working time: stage time limits counted in working minutes on a schedule and a holiday calendar.

Digital city-management platforms count a case's time limits (立案 within 1 working hour, 处置 within
2 working days, …) in *working* time: the daily working periods (by default 08:00-12:00 and
14:00-18:00, Asia/Shanghai) of working days. A day is a working day when it is not on the weekend,
or when the calendar lists it as a make-up working day (调休上班); listed public holidays are not.

The default calendar is the official one of the State Council for 2025 and 2026
(``engine/data/calendar_cn.json``, sources named in the file); outside its years only the weekend
rule applies, so add each new year's notice to the file or pass a calendar of your own
(:meth:`HolidayCalendar.from_file`).

Every computation is a lookup in a table of the schedule's working intervals (UTC microseconds, with
the working time accumulated before each), so both operations take numpy arrays as well as single
datetimes:

>>> from datetime import datetime, timezone, timedelta
>>> cst = timezone(timedelta(hours=8))
>>> s = WorkSchedule()
>>> s.add_working_minutes(datetime(2026, 3, 6, 17, 30, tzinfo=cst), 60)  # Friday 17:30 + 1 h
datetime.datetime(2026, 3, 9, 8, 30, tzinfo=datetime.timezone(datetime.timedelta(seconds=28800)))
>>> s.working_minutes_between(datetime(2026, 2, 13, 17, 0, tzinfo=cst),  # 春节: 14th is 调休上班
...                           datetime(2026, 2, 24, 9, 0, tzinfo=cst))
600.0
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache, cached_property
from importlib import resources
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from citygrid.engine.errors import InvalidInput
from citygrid.engine.times import US_PER_MINUTE, _from_us, offsets_by_month, to_us

DEFAULT_PERIODS = ("08:00-12:00", "14:00-18:00")
DEFAULT_TIMEZONE = "Asia/Shanghai"
#: The years the interval table covers by default; a time outside them is refused, never guessed.
DEFAULT_YEARS = (2000, 2099)


@dataclass(frozen=True)
class HolidayCalendar:
    """Which local dates are working days: weekdays not in ``weekend``, minus ``holidays``, plus
    ``workdays`` (make-up working days, 调休上班)."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    #: ``date.weekday()`` numbers of the weekend (Monday 0 … Sunday 6).
    weekend: frozenset[int] = frozenset({5, 6})
    name: str = "weekends-only"

    def __post_init__(self) -> None:
        both = self.holidays & self.workdays
        if both:
            raise InvalidInput(
                f"calendar {self.name}: {sorted(both)[0]} is listed both as a holiday and as a working day"
            )
        if not self.weekend <= set(range(7)):
            raise InvalidInput(f"calendar {self.name}: weekend days are weekday numbers 0 (Monday) to 6")

    @classmethod
    def from_dict(cls, payload: dict, *, name: str | None = None) -> "HolidayCalendar":
        """From the JSON layout of ``engine/data/calendar_cn.json``: ``holidays`` and ``workdays``
        (ISO dates, as a list or as a mapping date -> label) and ``weekend`` (weekday numbers)."""
        try:
            return cls(
                holidays=frozenset(_dates(payload.get("holidays", ()))),
                workdays=frozenset(_dates(payload.get("workdays", ()))),
                weekend=frozenset(int(d) for d in payload.get("weekend", (5, 6))),
                name=name or str(payload.get("name", "custom")),
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, InvalidInput):
                raise
            raise InvalidInput(f"calendar {name or payload.get('name', '')}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "HolidayCalendar":
        try:
            with open(path, encoding="utf-8") as fh:
                payload = json.load(fh)
        except FileNotFoundError:
            raise InvalidInput(f"no calendar file {path}") from None
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"calendar file {path} is not valid JSON: {exc}") from None
        return cls.from_dict(payload, name=str(payload.get("name", os.fspath(path))))

    @classmethod
    def china(cls) -> "HolidayCalendar":
        """The official Chinese calendar shipped with CityGrid (the years listed in its file)."""
        return _china_calendar()

    def is_working_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() not in self.weekend and day not in self.holidays


@cache
def _china_calendar() -> HolidayCalendar:
    text = resources.files("citygrid.engine").joinpath("data/calendar_cn.json").read_text("utf-8")
    return HolidayCalendar.from_dict(json.loads(text))


@dataclass(frozen=True)
class WorkSchedule:
    """Daily working periods in a time zone, on the working days of a calendar.

    ``periods`` are ``"HH:MM-HH:MM"`` strings (or ``(time, time)`` pairs) in local time, in order and
    not overlapping; an end of ``24:00`` is midnight at the end of the day (kept as ``time.max``, one
    microsecond later), so ``"00:00-24:00"`` is the whole day. The default is 08:00-12:00 and
    14:00-18:00 in Asia/Shanghai on the official Chinese calendar.
    """

    periods: tuple = DEFAULT_PERIODS
    timezone: str = DEFAULT_TIMEZONE
    calendar: HolidayCalendar = field(default_factory=HolidayCalendar.china)
    years: tuple[int, int] = DEFAULT_YEARS

    def __post_init__(self) -> None:
        object.__setattr__(self, "periods", tuple(_parse_period(p) for p in self.periods))
        if not self.periods:
            raise InvalidInput("a work schedule needs at least one working period a day")
        for (_, end), (start, _) in zip(self.periods, self.periods[1:]):
            if start < end:
                raise InvalidInput("working periods must be in order and must not overlap")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(f"unknown time zone {self.timezone!r} (use an IANA name like Asia/Shanghai)") from None
        if not (1971 <= self.years[0] <= self.years[1] <= 9998):
            raise InvalidInput(f"bad year range {self.years}")

    # ------------------------------------------------------------------ the interval table

    @cached_property
    def _table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Working intervals as (starts, ends, worked-before) in UTC microseconds, sorted."""
        days = np.arange(
            np.datetime64(f"{self.years[0]:04d}-01-01"), np.datetime64(f"{self.years[1] + 1:04d}-01-01")
        )
        weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
        cal = self.calendar
        working = ~np.isin(weekday, sorted(cal.weekend)) & ~np.isin(days, _as_days(cal.holidays))
        working |= np.isin(days, _as_days(cal.workdays))
        day_us = days[working].astype("datetime64[us]").astype(np.int64)
        local_starts = (day_us[:, None] + [_time_us(a) for a, _ in self.periods]).ravel()
        local_ends = (day_us[:, None] + [_time_us(b) for _, b in self.periods]).ravel()
        tz = ZoneInfo(self.timezone)
        starts = local_starts - _utc_offsets_us(local_starts, tz)
        ends = local_ends - _utc_offsets_us(local_ends, tz)
        worked_before = np.concatenate([[0], np.cumsum(ends - starts)[:-1]]).astype(np.int64)
        return starts, ends, worked_before

    @cached_property
    def _range_us(self) -> tuple[int, int]:
        tz = ZoneInfo(self.timezone)
        return (
            _local_us(date(self.years[0], 1, 1), time(0), tz),
            _local_us(date(self.years[1], 12, 31), time(23, 59, 59), tz),
        )

    def worked_until(self, t_us: np.ndarray) -> np.ndarray:
        """Working microseconds from the table's start to each time (``t_us``: int64 UTC µs)."""
        starts, ends, before = self._table
        t_us = np.asarray(t_us, dtype=np.int64)
        self._check_range(t_us)
        i = np.searchsorted(starts, t_us, side="right") - 1
        j = np.maximum(i, 0)
        inside = np.clip(t_us - starts[j], 0, ends[j] - starts[j])
        return np.where(i < 0, 0, before[j] + inside)

    def add_working_us(self, start_us: np.ndarray, minutes: np.ndarray | float) -> np.ndarray:
        """The first instant (UTC µs) at or after each start when ``minutes`` working minutes have
        passed; a deadline that ends a period is the period's end (12:00, not 14:00)."""
        starts, ends, before = self._table
        start_us = np.asarray(start_us, dtype=np.int64)
        minutes = np.asarray(minutes, dtype=np.float64)
        if np.any(~np.isfinite(minutes)) or np.any(minutes < 0):
            raise InvalidInput("working minutes must be finite and not negative")
        target = self.worked_until(start_us) + np.rint(minutes * US_PER_MINUTE).astype(np.int64)
        total = before + (ends - starts)
        j = np.searchsorted(total, target, side="left")
        if np.any(j >= len(starts)):
            raise InvalidInput(
                f"a deadline falls after the end of {self.years[1]}, the last year of the work schedule"
            )
        return np.maximum(starts[j] + (target - before[j]), start_us)

    def _check_range(self, t_us: np.ndarray) -> None:
        lo, hi = self._range_us
        if t_us.size and (t_us.min() < lo or t_us.max() > hi):
            raise InvalidInput(
                f"time outside the years {self.years[0]}-{self.years[1]} that the work schedule covers"
            )

    # ------------------------------------------------------------------ public operations

    def add_working_minutes(self, start, minutes):
        """The deadline ``minutes`` working minutes after ``start``.

        ``start`` is an aware ``datetime`` (the answer is a datetime in the same zone) or an array of
        ``datetime64`` in UTC (the answer is ``datetime64[us]``); ``minutes`` a number or an array.
        """
        if isinstance(start, datetime):
            return _from_us(int(self.add_working_us(to_us(start), minutes)), start.tzinfo)
        return self.add_working_us(to_us(start), minutes).astype("datetime64[us]")

    def working_minutes_between(self, a, b):
        """Working minutes from ``a`` to ``b`` (negative when ``b`` is earlier); scalars or arrays
        as in :meth:`add_working_minutes`."""
        minutes = (self.worked_until(to_us(b)) - self.worked_until(to_us(a))) / US_PER_MINUTE
        if isinstance(a, datetime) and isinstance(b, datetime):
            return float(minutes)
        return minutes

    def is_working_time(self, t) -> bool | np.ndarray:
        """Whether ``t`` lies inside a working period (start included, end excluded)."""
        starts, ends, _ = self._table
        t_us = np.asarray(to_us(t), dtype=np.int64)
        self._check_range(t_us)
        i = np.searchsorted(starts, t_us, side="right") - 1
        inside = (i >= 0) & (t_us < ends[np.maximum(i, 0)])
        return bool(inside) if isinstance(t, datetime) else inside


# ---------------------------------------------------------------------- time conversions


def _local_us(day: date, at: time, tz: ZoneInfo) -> int:
    return int(to_us(datetime.combine(day, at, tzinfo=tz)))


def _time_us(at: time) -> int:
    """Microseconds since midnight; ``time.max`` (a period ending at 24:00) is the whole day."""
    if at == time.max:
        return 86_400_000_000
    return ((at.hour * 60 + at.minute) * 60 + at.second) * 1_000_000 + at.microsecond


def _as_days(dates: Iterable[date]) -> np.ndarray:
    return np.asarray(sorted(dates), dtype="datetime64[D]")


def _utc_offsets_us(local_us: np.ndarray, tz: ZoneInfo) -> np.ndarray:
    """The zone's UTC offset (µs) at each local wall time (sorted)."""
    return offsets_by_month(local_us, lambda t: _offset_us(t, tz))


def _offset_us(local_us: int, tz: ZoneInfo) -> int:
    wall = datetime(1970, 1, 1) + timedelta(microseconds=local_us)
    return tz.utcoffset(wall) // timedelta(microseconds=1)


def _parse_period(period) -> tuple[time, time]:
    if isinstance(period, str):
        try:
            start, end = (s.strip() for s in period.split("-"))
            a, b = time.fromisoformat(start), time.max if end in ("24:00", "24:00:00") else time.fromisoformat(end)
        except ValueError:
            raise InvalidInput(f"bad working period {period!r}; write it like '08:00-12:00'") from None
    else:
        a, b = period
    if not a < b:
        raise InvalidInput(f"working period {a}-{b} ends before it starts")
    return (a, b)


def _dates(values: Iterable | dict) -> Sequence[date]:
    return [date.fromisoformat(str(v)) for v in values]
