"""Space-time clusters in a detection run: each category's prospective space-time permutation
scan over the grids' daily counts, its clusters as disc alerts.

A run scans the last ``scan_days`` days it judges (default 1: today, as a centre's morning scan
would; the scan is prospective, so a day is judged by the cylinders ending on it). For a day ``e``
the study is the ``scan_study_days`` days up to ``e``; the locations are every grid of the active
layer at its point on surface (GEOS; inside the grid, where its label goes), so a cluster counts
events across grid borders. Each category with events in the study is scanned on its own
(:func:`~citygrid.engine.alerts.scan.space_time_permutation`, radius ``scan_radius_km``, windows up
to ``scan_max_days`` days, at most half of the cases in a cylinder, at least ``scan_min_cases``,
``scan_reps`` replications, a fixed seed so a run is repeatable). Every reported cluster with
``p < scan_p`` becomes a :class:`~citygrid.engine.alerts.store.Finding` of level ``disc``: centre
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


def scan_findings(settings, layer, points, grid_codes, category_codes, day, first_day: dt.date,
                  scanned_days, deadline: float | None = None) -> list[S.Finding]:
    """Disc findings of the STP scans ending on each day of ``scanned_days`` (column indices).

    ``grid_codes``, ``category_codes`` and ``day`` describe the events (``day``: column index, 0 for
    ``first_day``); ``points``: :func:`grid_points` of ``layer``.
    """
    codes = np.asarray(layer.codes, dtype=object)
    row_of = {code: row for row, code in enumerate(codes.tolist())}
    rows = np.array([row_of.get(g, -1) for g in grid_codes.tolist()], dtype=np.int64)
    keep = rows >= 0  # events in grids of an older layer version are left out
    rows, cats, day = rows[keep], np.asarray(category_codes, dtype=object)[keep], np.asarray(day, dtype=np.int64)[keep]
    lng, lat = points
    options = StpOptions(max_radius_km=settings.scan_radius_km, max_share=0.5, max_days=settings.scan_max_days,
                         min_cases=settings.scan_min_cases, reps=settings.scan_reps, seed=SEED)
    chains = Chains.of_layer(layer)
    n_grids = len(codes)
    findings: list[S.Finding] = []
    for end in scanned_days:
        lo = max(0, end - settings.scan_study_days + 1)
        n_days = end - lo + 1
        in_study = (day >= lo) & (day <= end)
        for category in sorted(set(cats[in_study].tolist())):
            mine = in_study & (cats == category)
            counts = np.bincount(rows[mine] * n_days + (day[mine] - lo), minlength=n_grids * n_days)
            result = space_time_permutation(counts.reshape(n_grids, n_days), lng, lat, options, deadline=deadline)
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
