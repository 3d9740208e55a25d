"""Hourly judging of the fast-moving categories: each hour of the day against the same hour of
earlier days.

A fast-moving category (:func:`~citygrid.engine.alerts.series.fast_moving`: one the taxonomy wants
handled within ``[alerts] hourly_handle_minutes``) is counted per grid x category and local hour
(:func:`~citygrid.engine.alerts.series.count_events` with ``step="hour"``). Reports follow the
day: the demo has ten times as many at 17:00 as at 03:00, so a baseline of the hours just before
would alarm every morning. The (series x hours) matrix is therefore folded into one series per
hour of the day (:func:`fold_hours`: row ``r * 24 + h`` holds hour ``h`` of every day) and the
EARS detector runs over those: hour ``h`` of day ``d`` is judged against hour ``h`` of the
baseline's days (C2: days d-3 .. d-9), the day/night cycle being in its own baseline.

Alarm hours become findings as the daily alarms do: a series' alarm days (a day with an alarm
hour) at most :data:`~citygrid.engine.alerts.store.MERGE_GAP_DAYS` quiet days apart are one
finding over those days, its figures the events and expected events of its alarm hours and its
score the largest statistic. The finding ``joins`` the daily detector's method, so a rise that
both see is one alert.

Hours are counted from the local midnight of the first day counted, 24 to a day: exact for zones
without daylight saving (Asia/Shanghai); where the offset changes, the hours after a change are
compared with the hour one off on the days before it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from citygrid.engine.alerts import store as S
from citygrid.engine.alerts.detectors import detect
from citygrid.engine.alerts.series import EventSeries
from citygrid.engine.errors import InvalidInput

HOURS = 24
#: Days judged per counting pass of a long backfill (the hour matrix of a year would not fit).
BLOCK_DAYS = 28


def fold_hours(counts: np.ndarray, n_days: int) -> np.ndarray:
    """A (series x n_days * 24) hour matrix as (series * 24 x n_days): row ``r * 24 + h`` is hour ``h``
    of series ``r`` on each day."""
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[1] != n_days * HOURS:
        raise InvalidInput(f"an hour matrix of {n_days} days needs {n_days * HOURS} columns, got shape {counts.shape}")
    n = counts.shape[0]
    return np.ascontiguousarray(counts.reshape(n, n_days, HOURS).transpose(0, 2, 1).reshape(n * HOURS, n_days))


def unfold_hours(folded: np.ndarray, n_series: int, n_days: int) -> np.ndarray:
    """The inverse of :func:`fold_hours`."""
    return folded.reshape(n_series, HOURS, n_days).transpose(0, 2, 1).reshape(n_series, n_days * HOURS)


def hour_span(first_day: dt.date, n_days: int, tz) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` of ``n_days`` counted from the local midnight of ``first_day``, 24 hours a day."""
    start = dt.datetime.combine(first_day, dt.time(), tz)
    return start, (start.astimezone(dt.timezone.utc) + dt.timedelta(hours=HOURS * n_days)).astimezone(tz)


def hourly_findings(series: EventSeries, settings, judged_from_day: int, start_day: dt.date, level: str,
                    parents: dict) -> list[S.Finding]:
    """The findings of an hour series (hours counted from the local midnight of ``start_day``)
    on the days from ``judged_from_day`` on."""
    n, n_hours = series.counts.shape
    if n_hours % HOURS:
        raise InvalidInput(f"an hour series must hold whole days, got {n_hours} hours")
    n_days = n_hours // HOURS
    if not n:
        return []
    result = detect("ears", fold_hours(series.counts, n_days), settings.hourly_options, freq=365)
    alarm = unfold_hours(result.alarm, n, n_days)
    alarm[:, :judged_from_day * HOURS] = False
    if not alarm.any():
        return []
    rows = np.flatnonzero(alarm.any(axis=1))  # the figures of the series that alarmed only

    def of_rows(folded):
        return unfold_hours(folded.reshape(n, HOURS, n_days)[rows], len(rows), n_days)

    alarm, expected, statistic, counts = alarm[rows], of_rows(result.expected), of_rows(result.statistic), \
        series.counts[rows]
    findings = []
    for k, c0, c1 in S.alarm_runs(alarm.reshape(len(rows), n_days, HOURS).any(axis=2)):
        hours = slice(c0 * HOURS, (c1 + 1) * HOURS)
        hit = alarm[k, hours]
        r = rows[k]
        unit = series.units[r]
        findings.append(S.Finding(
            "detector", settings.hourly_method_name, series.categories[r], level, unit,
            parents.get(unit, (unit, None, None, None)),
            start_day + dt.timedelta(days=c0), start_day + dt.timedelta(days=c1),
            float(counts[k, hours][hit].sum()), float(np.nansum(expected[k, hours][hit])),
            float(np.nanmax(statistic[k, hours][hit])), joins=(settings.method_name,), period="hour"))
    return findings
