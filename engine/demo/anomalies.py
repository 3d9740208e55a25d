"""Labelled anomalies injected on top of the background events.

- ``spike``: one grid and one category get many times their normal rate for 6–72 hours (events at
  the category's usual kind of place inside that grid, at the usual hours of their sources);
- ``cluster``: one category piles up within 100–300 m of a point over 2–5 days (uniform in the disc,
  across whatever grids it covers).

Every anomaly records its centre, radius, window, the number of events injected and the expected
number of background events of its category in its grid during its window (the generator's own
expectation, without the hour-of-day profile), so a detector's findings can be scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from .events import MS_PER_HOUR, EventModel, Events, EventSpace
from .outline import LocalPlane

#: Anomalies per kind for the default event count; fewer for small runs (see :func:`anomaly_plan`).
N_SPIKES = 24
N_CLUSTERS = 16
_DEFAULT_EVENTS = 200_000


@dataclass(frozen=True)
class Anomalies:
    """Anomalies as parallel arrays, in id order."""

    anomaly_id: np.ndarray
    kind: np.ndarray
    category: np.ndarray
    grid: np.ndarray
    center_lng: np.ndarray
    center_lat: np.ndarray
    radius_m: np.ndarray
    start_ms: np.ndarray
    end_ms: np.ndarray
    n_events: np.ndarray
    expected_background: np.ndarray


def anomaly_plan(n_events: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Kinds and event counts of the anomalies for a run of ``n_events`` events in all."""
    scale = n_events / _DEFAULT_EVENTS
    n_spikes = min(N_SPIKES, max(1, int(N_SPIKES * scale * 10)))
    n_clusters = min(N_CLUSTERS, max(1, int(N_CLUSTERS * scale * 10)))
    kinds = np.array(["spike"] * n_spikes + ["cluster"] * n_clusters, dtype=object)
    low = np.where(kinds == "spike", 20, 12)
    counts = np.maximum(6, np.round(rng.uniform(low, 3 * low) * min(1.0, max(scale, 0.25)))).astype(int)
    return kinds, counts


def inject_anomalies(
    kinds: np.ndarray, counts: np.ndarray, model: EventModel, space: EventSpace, plane: LocalPlane,
    n_background: int, rng: np.random.Generator,
) -> tuple[Events, Anomalies]:
    """The injected events and the table of anomalies (ids ``A001`` …)."""
    n = len(kinds)
    weights = np.array([c.weight for c in model.categories])
    category = rng.choice(len(weights), size=n, p=weights / weights.sum())
    start = model.day_start_ms(rng.integers(7, model.n_days - 7, size=n)) + \
        rng.integers(6, 21, size=n) * MS_PER_HOUR
    hours = np.where(kinds == "spike", rng.integers(6, 73, size=n), rng.integers(48, 121, size=n))
    end = start + hours * MS_PER_HOUR
    radius = np.where(kinds == "spike", 0.0, rng.uniform(100.0, 300.0, size=n))
    grid = np.empty(n, dtype=np.int64)
    centre_lng, centre_lat, expected = np.empty(n), np.empty(n), np.empty(n)
    parts = []
    for a in range(n):
        profile = model.profiles[category[a]]
        share = space.grid_share(profile)
        if kinds[a] == "spike":
            grid[a] = rng.choice(len(share), p=share)
            _, building, lng, lat = space.place(profile, int(counts[a]), plane, rng, grid=int(grid[a]))
            centre = shapely.point_on_surface(space.grids[grid[a]])
            centre_lng[a], centre_lat[a] = centre.x, centre.y
            radius[a] = float(np.sqrt(space.area_m2[grid[a]] / np.pi))
            in_grid = np.full(int(counts[a]), grid[a])
            coverage = 1.0
        else:
            g, _, lng0, lat0 = space.place(profile, 1, plane, rng)
            grid[a], centre_lng[a], centre_lat[a] = g[0], lng0[0], lat0[0]
            in_grid, lng, lat = _disc_points(int(counts[a]), lng0[0], lat0[0], radius[a], space, plane, rng)
            building = np.full(int(counts[a]), -1)
            coverage = min(1.0, np.pi * radius[a] ** 2 / space.area_m2[grid[a]])
        expected[a] = model.expected(int(category[a]), int(start[a]), int(end[a]), n_background) * \
            share[grid[a]] * coverage
        k = int(counts[a])
        cats = np.full(k, category[a])
        sources = model.sample_source(cats, rng)
        occurred = model.sample_instants(int(start[a]), int(end[a]), sources, cats, rng)
        parts.append(Events(occurred, cats, sources, in_grid, building, lng, lat, np.full(k, a)))
    anomalies = Anomalies(
        anomaly_id=np.array([f"A{a + 1:03d}" for a in range(n)], dtype=object), kind=kinds, category=category,
        grid=grid, center_lng=centre_lng, center_lat=centre_lat, radius_m=radius, start_ms=start, end_ms=end,
        n_events=counts.astype(np.int32), expected_background=expected,
    )
    return Events.concat(parts), anomalies


def _disc_points(
    n: int, lng0: float, lat0: float, radius_m: float, space: EventSpace, plane: LocalPlane,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` uniform points in a disc that lie inside one grid each (so inside the district)."""
    grids, lngs, lats = [], [], []
    tree = shapely.STRtree(space.grids)
    while sum(map(len, grids)) < n:
        r = radius_m * np.sqrt(rng.random(2 * n))
        theta = rng.uniform(0.0, 2 * np.pi, size=2 * n)
        dlng, dlat = plane.metres_to_degrees(r * np.cos(theta), r * np.sin(theta))
        lng, lat = lng0 + dlng, lat0 + dlat
        point, grid = tree.query(shapely.points(lng, lat), predicate="within")
        alone = np.bincount(point, minlength=lng.size) == 1
        keep = alone[point]
        grids.append(grid[keep])
        lngs.append(lng[point[keep]])
        lats.append(lat[point[keep]])
    return np.concatenate(grids)[:n], np.concatenate(lngs)[:n], np.concatenate(lats)[:n]
