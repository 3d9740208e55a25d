"""Vectorised random points inside polygons (rejection sampling in bounding boxes)."""

from __future__ import annotations

import numpy as np
import shapely

_MAX_ROUNDS = 200


def points_in_polygons(
    polygons: np.ndarray, counts: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``counts[i]`` uniform random points inside ``polygons[i]`` for every i.

    Points are drawn in each polygon's bounding box and kept when the polygon contains them (GEOS
    ``contains``, so never on a boundary); rounds repeat for the polygons still short of points.
    Returns ``(owner, x, y)`` with ``owner`` the polygon index of each point, grouped by polygon in
    ascending order. The polygons should be prepared (``shapely.prepare``) for speed.
    """
    counts = np.asarray(counts, dtype=np.int64)
    bounds = shapely.bounds(polygons)
    fill = np.clip(shapely.area(polygons) / np.maximum(
        (bounds[:, 2] - bounds[:, 0]) * (bounds[:, 3] - bounds[:, 1]), 1e-300), 0.05, 1.0)
    needed = counts.copy()
    owners, xs, ys = [], [], []
    for _ in range(_MAX_ROUNDS):
        active = np.flatnonzero(needed > 0)
        if active.size == 0:
            break
        draws = np.ceil(needed[active] / fill[active] * 1.2 + 2).astype(np.int64)
        owner = np.repeat(active, draws)
        b = bounds[owner]
        x = b[:, 0] + rng.random(owner.size) * (b[:, 2] - b[:, 0])
        y = b[:, 1] + rng.random(owner.size) * (b[:, 3] - b[:, 1])
        keep = shapely.contains_xy(polygons[owner], x, y)
        owner, x, y = owner[keep], x[keep], y[keep]
        rank = np.arange(owner.size) - np.searchsorted(owner, owner)
        take = rank < needed[owner]
        owner, x, y = owner[take], x[take], y[take]
        needed -= np.bincount(owner, minlength=needed.size)
        owners.append(owner)
        xs.append(x)
        ys.append(y)
    else:
        raise RuntimeError("could not place points in some polygons")
    owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
    x = np.concatenate(xs) if xs else np.zeros(0)
    y = np.concatenate(ys) if ys else np.zeros(0)
    order = np.argsort(owner, kind="stable")
    return owner[order], x[order], y[order]
