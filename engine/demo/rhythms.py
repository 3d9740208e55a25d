"""When grid matters are reported: sources, seasons, weekdays, holidays and hours of the day.

All times are local (Asia/Shanghai, UTC+8 all year, no daylight saving). The intensity of category
*c* from source *s* on day *d* at hour *h* is

    weight(c) · season(c, d) · festival(d) · mix(c, s) · day_off(s, d) · hour(s, c, h)

- season: a yearly cosine per class (sanitation and street order peak in summer, flooding and fallen
  trees in the rainy and typhoon season, fire hazards in winter) and bumps for a few categories
  (wage disputes before the Spring Festival, residence registration after it);
- festival: most migrant residents leave around the Spring Festival, so everything drops by up to
  65 % for about two weeks;
- day off: on days that are not working days (weekends and public holidays of the official
  calendar, :class:`citygrid.engine.dispatch.worktime.HolidayCalendar`, make-up working days count as
  working days) inspectors patrol less and citizens report a little more;
- hour: each source has a daily profile (inspectors in office hours, the hotline and the app from
  morning to late evening, video all day), sharpened for night-time categories (noise, night works,
  outdoor barbecues).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from citygrid.engine.cases.model import CHANNELS
from citygrid.engine.cases.taxonomy import Category
from citygrid.engine.dispatch.worktime import HolidayCalendar

UTC_OFFSET_HOURS = 8
#: Lunar new year's day for the years the demo can describe.
SPRING_FESTIVAL = {2024: date(2024, 2, 10), 2025: date(2025, 1, 29), 2026: date(2026, 2, 17)}


@dataclass(frozen=True)
class Source:
    """An intake channel (one of :data:`citygrid.engine.cases.store.CHANNELS`): code, Chinese name,
    multiplier on days off, hourly profile (local hours)."""

    code: str
    name: str
    day_off: float
    hours: tuple[float, ...]


SOURCES = (
    Source("inspector_terminal", CHANNELS["inspector_terminal"], 0.4,
           (0, 0, 0, 0, 0, 0, 0, .1, .8, 1.3, 1.3, 1.1, .3, .1, .9, 1.2, 1.2, 1.0, .4, .1, .05, 0, 0, 0)),
    Source("hotline_12345", CHANNELS["hotline_12345"], 1.1,
           (.15, .08, .05, .04, .04, .06, .2, .5, .9, 1.2, 1.3, 1.2, .9, .8, 1, 1.1, 1.1, 1, .9, 1, 1, .9, .6, .3)),
    Source("video_analytics", CHANNELS["video_analytics"], 1.1,
           (.25, .2, .15, .12, .12, .2, .5, .9, 1, 1, 1, 1.1, 1.2, 1, .9, .9, 1, 1.2, 1.4, 1.5, 1.4, 1.1, .7, .4)),
    Source("citizen_app", CHANNELS["citizen_app"], 1.25,
           (.1, .05, .03, .02, .02, .05, .2, .6, .9, 1, 1, 1, 1.1, 1, .9, .9, .9, 1, 1.1, 1.3, 1.4, 1.2, .7, .3)),
    Source("iot_sensor", CHANNELS["iot_sensor"], 1.0, (1.0,) * 24),
)

#: Source mix per class code (shares in the order of :data:`SOURCES`).
_CLASS_SOURCES = {
    "01": (.50, .15, .20, .15, 0), "02": (.60, .15, .10, .15, 0), "03": (.35, .45, .05, .15, 0),
    "04": (.25, .40, .10, .10, .15), "05": (.35, .10, .45, .10, 0), "06": (.55, .15, 0, .15, .15),
    "07": (.35, .55, 0, .10, 0), "08": (.60, .20, .10, .10, 0), "09": (.20, .60, .10, .10, 0),
    "10": (.70, .20, 0, .10, 0),
}
_DEFAULT_SOURCES = (.5, .3, .1, .1, 0)

#: Yearly cosine per class: (relative amplitude, day of year of the peak).
_CLASS_SEASON = {
    "01": (.35, 200), "02": (.10, 90), "03": (.15, 120), "04": (.90, 190), "05": (.20, 210),
    "06": (.15, 180), "07": (.10, 15), "08": (.20, 15), "09": (.20, 200), "10": (0.0, 0),
}
_CATEGORY_SEASON = {"0401": (1.5, 175), "0403": (1.5, 240), "0404": (.5, 20)}
#: Bumps around the Spring Festival: category -> (days from the festival, spread in days, height).
_FESTIVAL_BUMPS = {"0702": (-20, 12, 1.5), "1001": (20, 12, 1.5)}
#: Hour multipliers for night-time categories: category -> (hours, factor, factor elsewhere).
_NIGHT_CATEGORIES = {
    "0901": ((21, 22, 23, 0, 1), 3.0, 1.0),
    "0301": ((22, 23, 0, 1, 2, 3, 4, 5, 6), 3.0, 1.0),
    "0506": ((19, 20, 21, 22, 23, 0, 1), 4.0, 0.2),
    "0501": ((17, 18, 19, 20, 21), 1.8, 1.0),
    "0503": ((17, 18, 19, 20, 21), 1.8, 1.0),
}


def year_days(year: int) -> np.ndarray:
    """The local dates of ``year`` as numpy datetime64[D]."""
    return np.arange(np.datetime64(f"{year}-01-01"), np.datetime64(f"{year + 1}-01-01"))


def festival_factor(year: int) -> np.ndarray:
    """Per day of ``year``: the share of activity left while migrants are away for the Spring Festival."""
    days = np.arange(len(year_days(year)))
    offset = days - (SPRING_FESTIVAL[year] - date(year, 1, 1)).days
    spread = np.where(offset < 0, 6.0, 10.0)
    return 1.0 - 0.65 * np.exp(-0.5 * (offset / spread) ** 2)


def season_factor(category: Category, year: int) -> np.ndarray:
    """Per day of ``year``: the seasonal multiplier of ``category`` (mean about 1)."""
    days = np.arange(len(year_days(year)))
    amplitude, peak = _CATEGORY_SEASON.get(category.code, _CLASS_SEASON.get(category.class_code, (0.0, 0)))
    factor = 1.0 + amplitude * np.cos(2 * np.pi * (days - peak) / 365.0)
    if category.code in _FESTIVAL_BUMPS:
        shift, spread, height = _FESTIVAL_BUMPS[category.code]
        centre = (SPRING_FESTIVAL[year] - date(year, 1, 1)).days + shift
        factor += height * np.exp(-0.5 * ((days - centre) / spread) ** 2)
    return np.maximum(factor, 0.05)


def source_mix(category: Category) -> np.ndarray:
    """Shares of the sources (order of :data:`SOURCES`) reporting ``category``."""
    mix = np.asarray(_CLASS_SOURCES.get(category.class_code, _DEFAULT_SOURCES), dtype=float)
    return mix / mix.sum()


def source_day_factors(year: int) -> np.ndarray:
    """``(n_sources, n_days)`` multipliers of each source on each day (days off vs working days)."""
    calendar = HolidayCalendar.china()
    first = date(year, 1, 1)
    working = np.array([
        calendar.is_working_day(first + timedelta(days=i)) for i in range(len(year_days(year)))
    ])
    day_off = np.array([s.day_off for s in SOURCES])
    return np.where(working[None, :], 1.0, day_off[:, None])


def hour_profiles(categories: tuple[Category, ...]) -> np.ndarray:
    """``(n_sources, n_categories, 24)`` hourly profiles, each normalised to sum to 1."""
    profiles = np.array([s.hours for s in SOURCES], dtype=float)[:, None, :].repeat(len(categories), axis=1)
    for c, category in enumerate(categories):
        if category.code in _NIGHT_CATEGORIES:
            hours, inside, outside = _NIGHT_CATEGORIES[category.code]
            factor = np.full(24, outside)
            factor[list(hours)] = inside
            profiles[:, c, :] *= factor
    total = profiles.sum(axis=2, keepdims=True)
    return np.divide(profiles, total, out=np.full_like(profiles, 1 / 24), where=total > 0)
