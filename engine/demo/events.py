"""A year of grid events: what, when (see :mod:`.rhythms`), where, and from which source.

Where an event happens depends on its category's *space profile*:

- at a building (a jittered point near it, kept inside the building's grid), weighted by the
  building's residents (``residential``), its shops (``commercial``) or its factory staff
  (``industrial``);
- at a uniform point inside a grid, weighted per grid by street activity (``street``), active
  construction sites (``construction``), green land (``green``) or urban villages (``village``).

Background events are drawn in bulk: (category, source, day) cells in proportion to the model's
intensity, an hour from the cell's hourly profile, a uniform instant within the hour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from citygrid.engine.cases.taxonomy import Category, Taxonomy

from .outline import LocalPlane
from .population import Buildings, Businesses, Residents
from .rhythms import (
    SOURCES, UTC_OFFSET_HOURS, festival_factor, hour_profiles, season_factor, source_day_factors, source_mix,
    year_days,
)
from .sampling import points_in_polygons

MS_PER_HOUR = 3_600_000
BUILDING_PROFILES = ("residential", "commercial", "industrial")
AREA_PROFILES = ("street", "construction", "green", "village")

_CLASS_SPACE = {
    "01": "street", "02": "street", "03": "construction", "04": "street", "05": "commercial",
    "06": "street", "07": "residential", "08": "residential", "09": "residential", "10": "residential",
}
_CATEGORY_SPACE = {
    "0105": "green", "0106": "green", "0403": "green", "0404": "green", "0305": "village",
    "0203": "commercial", "0204": "commercial", "0503": "street", "0504": "street", "0505": "street",
    "0702": "industrial", "0805": "commercial", "0902": "street", "0904": "street", "1004": "commercial",
}
_PLACES = {
    "residential": ("小区内", "楼栋内", "出租屋内", "楼道内"),
    "commercial": ("商铺前", "市场周边", "餐饮店门口", "商业街"),
    "industrial": ("厂区内", "工业园内", "厂房周边"),
    "street": ("路边", "路口", "人行道上", "公交站旁", "巷道内"),
    "construction": ("工地周边", "工地门口", "施工路段"),
    "green": ("公园内", "山林边", "河道旁", "水库周边"),
    "village": ("城中村内", "村民楼旁", "巷道内"),
}
_SOURCE_PHRASES = ("网格员巡查发现", "市民来电反映", "视频识别到", "市民随手拍反映", "设备告警：")
_JITTER_M = 12.0
_TIME_TRIES = 100
#: Share of grids that hold an active construction site during the year.
_CONSTRUCTION_SHARE = 0.06
_TYPE_ACTIVITY = {"01": 1.0, "02": 1.5, "03": 0.6, "04": 1.2, "05": 0.5, "06": 0.8, "07": 3.0, "08": 0.2}


def space_profile(category: Category) -> str:
    """Where events of ``category`` happen (one of the building or area profiles)."""
    return _CATEGORY_SPACE.get(category.code, _CLASS_SPACE.get(category.class_code, "street"))


@dataclass(frozen=True)
class Events:
    """Events as parallel arrays; ``building`` and ``anomaly`` are −1 where there is none."""

    occurred_ms: np.ndarray
    category: np.ndarray
    source: np.ndarray
    grid: np.ndarray
    building: np.ndarray
    lng: np.ndarray
    lat: np.ndarray
    anomaly: np.ndarray

    def __len__(self) -> int:
        return len(self.occurred_ms)

    @classmethod
    def concat(cls, parts: list[Events]) -> Events:
        return cls(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__})

    def sorted(self) -> Events:
        """The events in time order (ties by grid, then position)."""
        order = np.lexsort((self.lat, self.lng, self.grid, self.occurred_ms))
        return Events(**{f: getattr(self, f)[order] for f in self.__dataclass_fields__})


@dataclass(frozen=True)
class EventSpace:
    """Where events can happen: the grids and buildings with a weight per space profile."""

    grids: np.ndarray
    area_m2: np.ndarray
    building_grid: np.ndarray
    building_lng: np.ndarray
    building_lat: np.ndarray
    weights: dict[str, np.ndarray]

    @classmethod
    def build(
        cls, grids: np.ndarray, grid_types: np.ndarray, area_m2: np.ndarray, urban: np.ndarray,
        green: np.ndarray, buildings: Buildings, residents: Residents, businesses: Businesses,
        rng: np.random.Generator,
    ) -> EventSpace:
        n_buildings = len(buildings)
        residents_at = np.bincount(residents.building, minlength=n_buildings).astype(float)
        company = businesses.business_form == "企业"
        shops_at = np.bincount(businesses.building[~company], minlength=n_buildings).astype(float)
        staff_at = np.bincount(businesses.building[company], weights=businesses.employees[company],
                               minlength=n_buildings)
        activity = np.array([_TYPE_ACTIVITY[t] for t in grid_types])
        area_km2 = area_m2 / 1e6
        site_weight = (urban + 0.05) * area_km2
        sites = rng.choice(len(grids), size=max(1, int(_CONSTRUCTION_SHARE * len(grids))), replace=False,
                           p=site_weight / site_weight.sum())
        construction = np.zeros(len(grids))
        construction[sites] = rng.uniform(0.5, 2.0, size=sites.size)
        weights = {
            "residential": residents_at + 0.05,
            "commercial": shops_at + 0.05 * (buildings.kind == "商业"),
            "industrial": staff_at + 1.0 * (buildings.kind == "厂房"),
            "street": (urban + 0.03) * area_km2 * activity,
            "construction": construction,
            "green": (green + 0.05) * area_km2 * np.where(grid_types == "08", 4.0, 1.0),
            "village": area_km2 * np.select([grid_types == "02", grid_types == "04"], [1.0, 0.3], 0.02),
        }
        for name, w in weights.items():
            if not w.sum() > 0:
                weights[name] = np.ones_like(w)
        return cls(grids, area_m2, buildings.grid, buildings.lng, buildings.lat, weights)

    def grid_share(self, profile: str) -> np.ndarray:
        """The share of a profile's events that falls in each grid."""
        w = self.weights[profile]
        if profile in BUILDING_PROFILES:
            w = np.bincount(self.building_grid, weights=w, minlength=len(self.grids))
        return w / w.sum()

    def place(
        self, profile: str, n: int, plane: LocalPlane, rng: np.random.Generator, grid: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``n`` positions of a profile: ``(grid, building, lng, lat)``, optionally all in one grid."""
        if profile in BUILDING_PROFILES:
            w = self.weights[profile] * (1.0 if grid is None else (self.building_grid == grid))
            if not w.sum() > 0:
                return self.place("street", n, plane, rng, grid)
            building = rng.choice(len(w), size=n, p=w / w.sum())
            in_grid = self.building_grid[building]
            dlng, dlat = plane.metres_to_degrees(*rng.normal(0.0, _JITTER_M, size=(2, n)))
            lng, lat = self.building_lng[building] + dlng, self.building_lat[building] + dlat
            inside = shapely.contains_xy(self.grids[in_grid], lng, lat)
            lng = np.where(inside, lng, self.building_lng[building])
            lat = np.where(inside, lat, self.building_lat[building])
            return in_grid, building, lng, lat
        if grid is None:
            w = self.weights[profile]
            chosen = rng.choice(len(w), size=n, p=w / w.sum())
        else:
            chosen = np.full(n, grid)
        order = np.argsort(chosen, kind="stable")
        _, x, y = points_in_polygons(self.grids, np.bincount(chosen, minlength=len(self.grids)), rng)
        lng, lat = np.empty(n), np.empty(n)
        lng[order], lat[order] = x, y
        return chosen, np.full(n, -1), lng, lat


class EventModel:
    """The intensity of events over categories, sources and days of a year, and their hours."""

    def __init__(self, taxonomy: Taxonomy, year: int):
        self.categories = taxonomy.categories
        self.profiles = np.array([space_profile(c) for c in self.categories], dtype=object)
        season = np.array([season_factor(c, year) for c in self.categories])
        mix = np.array([source_mix(c) for c in self.categories])
        weight = np.array([c.weight for c in self.categories])
        day = festival_factor(year)[None, None, :] * source_day_factors(year)[None, :, :]
        #: ``(category, source, day)`` relative intensity.
        self.intensity = weight[:, None, None] * season[:, None, :] * mix[:, :, None] * day
        self.intensity /= self.intensity.sum()
        #: ``(source, category, hour)`` hourly profiles, each summing to 1.
        self.hours = hour_profiles(self.categories)
        cdf = np.cumsum(self.hours, axis=2)
        cdf[:, :, -1] = 1.0
        self._hour_cdf = (np.arange(cdf.shape[0] * cdf.shape[1]).reshape(cdf.shape[:2])[:, :, None] + cdf).ravel()
        first_day = year_days(year)[0].astype("datetime64[ms]").astype(np.int64)
        self._day0_utc_ms = first_day - UTC_OFFSET_HOURS * MS_PER_HOUR

    @property
    def n_days(self) -> int:
        return self.intensity.shape[2]

    def day_start_ms(self, day: np.ndarray) -> np.ndarray:
        """UTC epoch milliseconds of local midnight of day-of-year ``day`` (0-based)."""
        return self._day0_utc_ms + np.asarray(day, dtype=np.int64) * 24 * MS_PER_HOUR

    def sample_source(self, category: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A source for each event of these categories, by the categories' yearly source mix."""
        mix = self.intensity.sum(axis=2)[category]
        cdf = np.cumsum(mix / mix.sum(axis=1, keepdims=True), axis=1)
        return np.minimum((rng.random(len(category))[:, None] > cdf).sum(axis=1), len(SOURCES) - 1)

    def sample_hour(self, source: np.ndarray, category: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A local hour for each (source, category) from its hourly profile."""
        row = source * len(self.categories) + category
        found = np.searchsorted(self._hour_cdf, row + rng.random(len(row)), side="right")
        return np.minimum(found - 24 * row, 23)

    def sample_instants(
        self, start_ms: int, end_ms: int, source: np.ndarray, category: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Sorted instants in ``[start_ms, end_ms)`` that follow the hourly profiles of the events'
        (source, category) (rejection sampling; uniform for the rare event that keeps failing)."""
        peak = self.hours.max(axis=2)[source, category]
        instants = start_ms + rng.integers(0, end_ms - start_ms, size=len(source))
        pending = np.arange(len(source))
        for _ in range(_TIME_TRIES):
            hour = ((instants[pending] // MS_PER_HOUR) + UTC_OFFSET_HOURS) % 24
            weight = self.hours[source[pending], category[pending], hour] / peak[pending]
            pending = pending[rng.random(pending.size) >= weight]
            if pending.size == 0:
                break
            instants[pending] = start_ms + rng.integers(0, end_ms - start_ms, size=pending.size)
        return np.sort(instants)

    def background(
        self, n: int, space: EventSpace, plane: LocalPlane, rng: np.random.Generator
    ) -> Events:
        """``n`` background events, anywhere in the district, over the whole year."""
        cell = rng.choice(self.intensity.size, size=n, p=self.intensity.ravel())
        category, source, day = np.unravel_index(cell, self.intensity.shape)
        hour = self.sample_hour(source, category, rng)
        occurred = self.day_start_ms(day) + hour * MS_PER_HOUR + rng.integers(0, MS_PER_HOUR, size=n)
        grid, building = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
        lng, lat = np.empty(n), np.empty(n)
        for profile in (*BUILDING_PROFILES, *AREA_PROFILES):
            rows = np.flatnonzero(self.profiles[category] == profile)
            if rows.size:
                grid[rows], building[rows], lng[rows], lat[rows] = space.place(profile, rows.size, plane, rng)
        return Events(occurred, category, source, grid, building, lng, lat, np.full(n, -1))

    def expected(self, category: int, start_ms: int, end_ms: int, n_background: int) -> float:
        """Expected background events of ``category`` in the whole district between two instants."""
        starts = self.day_start_ms(np.arange(self.n_days))
        overlap = np.clip(np.minimum(starts + 24 * MS_PER_HOUR, end_ms) - np.maximum(starts, start_ms), 0, None)
        per_day = self.intensity[category].sum(axis=0) * n_background
        return float((per_day * overlap / (24 * MS_PER_HOUR)).sum())


def describe(
    events: Events, categories: tuple[Category, ...], profiles: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """A short Chinese description of every event: who reported, where, what."""
    names = np.array([c.name for c in categories])[events.category]
    places = np.empty(len(events), dtype=object)
    for profile, options in _PLACES.items():
        rows = np.flatnonzero(profiles[events.category] == profile)
        places[rows] = rng.choice(np.array(options, dtype=object), size=rows.size)
    phrases = np.array(_SOURCE_PHRASES)[events.source]
    return np.char.add(np.char.add(np.char.add(phrases, places.astype(str)), "存在"), names).astype(object)
