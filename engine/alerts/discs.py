"""Space-time clusters in a detection run: each category's prospective space-time permutation
scan over the grids' daily counts, its clusters as disc alerts.

A run scans the last ``scan_days`` days it judges (default 1: today, as a centre's morning scan
would; the scan is prospective, so a day is judged by the cylinders ending on it). For a day ``e``
the study is the ``scan_study_days`` days up to ``e``; the locations are every grid of the active
layer at its point on surface (GEOS; inside the grid, where its label goes), so a cluster counts
events across grid borders. Each category with events in the study is scanned on its own
(:func:`~citygrid.engine.alerts.scan.space_time_permutation`, radius ``scan_radius_km``, windows up
to ``scan_max_days`` days, at most half of the cases in a cylinder, at least ``scan_min_cases``,
``scan_reps`` replications, a fixed seed so a run is repeatable; a category whose longest window
holds fewer than ``scan_min_cases`` events has no cylinder to score and is not scanned). Only
``p < scan_p`` matters here, so the replications stop once no cluster can reach it (``decide_p``,
sequential Monte Carlo: a cluster kept has the p of all ``scan_reps`` replications). Every reported
cluster with ``p < scan_p`` becomes a :class:`~citygrid.engine.alerts.store.Finding` of level ``disc``: centre
grid (its chain bounds who sees the alert), centre point, radius (the farthest grid point in it;
0 m for a cluster of one grid), the grids, the window, observed and expected events, the LLR as
the score, and p. The store deduplicates it like the other findings (an open disc alert of the
same category sharing a grid, its window within reach, is updated).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import shapely

from citygrid.engine.alerts import store as S
from citygrid.engine.alerts.scan import StpOptions, space_time_permutation
from citygrid.engine.hierarchy import Chains

#: The seed of every scan's replications (runs over the same counts give the same alerts).
SEED = 20_261_130
METHOD = "stp"


def grid_points(layer) -> tuple[np.ndarray, np.ndarray]:
    """(lng, lat) of each grid of the layer, by row: GEOS's point on surface."""
    points = shapely.point_on_surface(layer.geometries())
    return shapely.get_x(points), shapely.get_y(points)


def layer_rows(layer_codes, codes) -> np.ndarray:
    """The row of each of ``codes`` among ``layer_codes`` (-1 where the layer has no such code): one
    sort of the layer's codes and a binary search of them, with numpy (no Python lookup per code)."""
    mine = np.asarray(layer_codes, dtype=str)
    theirs = np.asarray(codes, dtype=str)
    if not len(mine) or not len(theirs):
        return np.full(len(theirs), -1, dtype=np.int64)
    order = np.argsort(mine, kind="stable")
    ordered = mine[order]
    at = np.minimum(np.searchsorted(ordered, theirs), len(mine) - 1)
    return np.where(ordered[at] == theirs, order[at], -1).astype(np.int64)


def scan_findings(settings, layer, points, grid, grid_codes, category, category_codes, day, first_day: dt.date,
                  scanned_days, deadline: float | None = None) -> list[S.Finding]:
    """Disc findings of the STP scans ending on each day of ``scanned_days`` (column indices).

    The events come dictionary-coded, as the analytics mirror holds them: event i is in grid
    ``grid_codes[grid[i]]``, of category ``category_codes[category[i]]``, on day ``day[i]`` (column
    index, 0 for ``first_day``). The dictionaries are mapped to layer rows and sorted categories once;
    ``points``: :func:`grid_points` of ``layer``.
    """
    codes = np.asarray(layer.codes, dtype=object)
    rows = layer_rows(codes, grid_codes)[np.asarray(grid, dtype=np.int64)]
    names, category_of = np.unique(np.asarray(category_codes, dtype=str), return_inverse=True)
    cats = category_of.reshape(-1)[np.asarray(category, dtype=np.int64)]
    keep = rows >= 0  # events in grids of an older layer version are left out
    rows, cats, day = rows[keep], cats[keep], np.asarray(day, dtype=np.int64)[keep]
    lng, lat = points
    options = StpOptions(max_radius_km=settings.scan_radius_km, max_share=0.5, max_days=settings.scan_max_days,
                         min_cases=settings.scan_min_cases, reps=settings.scan_reps, seed=SEED)
    chains = Chains.of_layer(layer)
    n_grids = len(codes)
    findings: list[S.Finding] = []
    for end in scanned_days:
        lo = max(0, end - settings.scan_study_days + 1)
        n_days = end - lo + 1
        in_study = np.flatnonzero((day >= lo) & (day <= end))
        # the study's events by category (in the order of the category codes): one sort, then slices
        by_category = in_study[np.argsort(cats[in_study], kind="stable")]
        cells = rows[by_category] * n_days + (day[by_category] - lo)
        present, first = np.unique(cats[by_category], return_index=True)
        bounds = np.append(first, len(by_category))
        recent = day[by_category] > end - settings.scan_max_days  # in the longest window
        for j, k in enumerate(present.tolist()):
            if np.count_nonzero(recent[bounds[j]:bounds[j + 1]]) < settings.scan_min_cases:
                continue  # no cylinder can hold scan_min_cases events: nothing to find
            category = str(names[k])
            counts = np.bincount(cells[bounds[j]:bounds[j + 1]], minlength=n_grids * n_days)
            result = space_time_permutation(counts.reshape(n_grids, n_days), lng, lat, options, deadline=deadline,
                                            decide_p=settings.scan_p)
            for c in result.clusters:
                if c.p is None or not c.p < settings.scan_p:
                    continue
                centre = str(codes[c.center])
                findings.append(S.Finding(
                    "scan", METHOD, category, "disc", centre, chains.chain_of_code(centre),
                    first_day + dt.timedelta(days=lo + c.start), first_day + dt.timedelta(days=lo + c.end),
                    float(c.observed), float(c.expected), float(c.llr), float(c.p),
                    grids=tuple(str(codes[k]) for k in c.locations.tolist()),
                    lng=float(lng[c.center]), lat=float(lat[c.center]), radius_m=float(c.radius_m)))
    return findings
