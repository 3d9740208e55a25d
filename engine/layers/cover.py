"""The H3 cover of a layer version (saved with its point-location index, :mod:`citygrid.engine.layers.index`).

Per grid, the H3 cells (default resolution :data:`DEFAULT_H3_RESOLUTION`) that overlap
it, flagged *interior* when the cell (its boundary vertices joined by straight lines in lon/lat, as
the grids' edges are) lies wholly inside the grid, and the reverse map cell -> grid rows. Cell ids are
h3-py's uint64 integers (``h3.str_to_int``).
"""

from __future__ import annotations

import math

import h3
import numpy as np
import shapely

from citygrid.engine.errors import InvalidInput
from citygrid.engine.layers.layer import GridLayer

#: H3 resolution of the cover (res 10: cells of ~0.015 km², ~66 m edge).
DEFAULT_H3_RESOLUTION = 10
#: Most H3 cells a cover may hold (a layer of grids the size of provinces gets a coarser default).
MAX_COVER_CELLS = 1_000_000


# ---------------------------------------------------------------------- H3 cover


def _cover_resolution(layer: GridLayer, requested: int | None) -> int:
    """The H3 resolution of the cover: ``requested`` (checked), else the default or the finest one
    whose cover stays under :data:`MAX_COVER_CELLS` cells."""
    if requested is not None:
        if not 0 <= int(requested) <= 15:
            raise InvalidInput(f"H3 resolution {requested} is out of range: use 0 to 15")
        resolution = int(requested)
    else:
        resolution = DEFAULT_H3_RESOLUTION
    expected = _expected_cover_cells(layer, resolution)
    if expected <= MAX_COVER_CELLS:
        return resolution
    if requested is not None:
        raise InvalidInput(
            f"an H3 cover at resolution {resolution} would hold about {expected:,.0f} cells (the limit is "
            f"{MAX_COVER_CELLS:,}); choose a coarser resolution"
        )
    while resolution > 0 and _expected_cover_cells(layer, resolution) > MAX_COVER_CELLS:
        resolution -= 1
    return resolution


def _expected_cover_cells(layer: GridLayer, resolution: int) -> float:
    """About how many (grid, cell) pairs a cover holds: area over cell area, plus a ring per grid."""
    if layer.n_grids == 0:
        return 0.0
    x, y = layer.x, layer.y
    # Shoelace area of every ring (holes counted too: an upper bound), in square degrees, then km² at
    # the mean latitude.
    starts, stops = layer.ring_offsets[:-1], layer.ring_offsets[1:] - 1
    cross = x[:-1] * y[1:] - x[1:] * y[:-1]
    cumulative = np.concatenate([[0.0], np.cumsum(cross)])
    area_deg2 = float(np.sum(np.abs(cumulative[stops] - cumulative[starts]))) / 2.0
    km_per_deg = 111.32
    area_km2 = area_deg2 * km_per_deg ** 2 * math.cos(math.radians(float(np.mean(y)))) if len(y) else 0.0
    cell_km2 = h3.average_hexagon_area(resolution, unit="km^2")
    return area_km2 / cell_km2 + 6.0 * layer.n_grids


def build_h3_cover(layer: GridLayer, resolution: int = DEFAULT_H3_RESOLUTION) -> dict[str, np.ndarray]:
    """Per grid its H3 cells (interior or not), and per cell its grids; see the module docstring.

    Candidate cells come from H3 (every cell overlapping the layer's bounding box, widened by a cell,
    or per grid when that box is huge); which grids each cell overlaps and whether it lies inside one
    is decided by GEOS on the cells' straight-edged lon/lat polygons, as the grids' edges are drawn.
    """
    empty = {
        "cover_offsets": np.zeros(layer.n_grids + 1, dtype=np.int64),
        "cover_cells": np.empty(0, dtype=np.uint64),
        "cover_interior": np.empty(0, dtype=bool),
        "cell_ids": np.empty(0, dtype=np.uint64),
        "cell_offsets": np.zeros(1, dtype=np.int64),
        "cell_rows": np.empty(0, dtype=np.int32),
    }
    geoms = layer.geometries()
    present = np.flatnonzero(~shapely.is_empty(geoms)) if len(geoms) else np.empty(0, dtype=np.int64)
    if len(present) == 0:
        return empty
    candidates = _candidate_cells(geoms[present], resolution)
    polygons = _cell_polygons(candidates)
    tree = shapely.STRtree(geoms[present])
    cell_k, grid_k = tree.query(polygons, predicate="intersects")
    grid_of = present[grid_k].astype(np.int64)
    cell_of = candidates[cell_k]
    interior = shapely.covers(geoms[grid_of], polygons[cell_k]) if len(cell_k) else np.empty(0, dtype=bool)

    by_grid = np.lexsort((cell_of, grid_of))
    cover_offsets = np.searchsorted(grid_of[by_grid], np.arange(layer.n_grids + 1)).astype(np.int64)
    by_cell = np.lexsort((grid_of, cell_of))
    cell_ids, cell_starts = np.unique(cell_of[by_cell], return_index=True)
    return {
        "cover_offsets": cover_offsets,
        "cover_cells": cell_of[by_grid].astype(np.uint64),
        "cover_interior": np.asarray(interior, dtype=bool)[by_grid],
        "cell_ids": cell_ids.astype(np.uint64),
        "cell_offsets": np.append(cell_starts, len(by_cell)).astype(np.int64),
        "cell_rows": grid_of[by_cell].astype(np.int32),
    }


def _candidate_cells(geoms: np.ndarray, resolution: int) -> np.ndarray:
    """Sorted unique uint64 ids of H3 cells that may overlap the grids (a superset)."""
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
    pad = 2.0 * h3.average_hexagon_edge_length(resolution, unit="km") / 111.0
    box = h3.LatLngPoly([(ymin - pad, xmin - pad), (ymin - pad, xmax + pad), (ymax + pad, xmax + pad),
                         (ymax + pad, xmin - pad)])
    box_area = (xmax - xmin + 2 * pad) * (ymax - ymin + 2 * pad) * 111.32 ** 2
    if box_area / h3.average_hexagon_area(resolution, unit="km^2") <= 4 * MAX_COVER_CELLS:
        cells = h3.h3shape_to_cells_experimental(box, resolution, contain="overlap")
    else:  # grids scattered over a large area: ask per grid
        cells = [c for g in geoms for c in h3.h3shape_to_cells_experimental(
            h3.geo_to_h3shape(g.__geo_interface__), resolution, contain="overlap")]
    return np.unique(np.array([h3.str_to_int(c) for c in cells], dtype=np.uint64))


def _cell_polygons(cells: np.ndarray) -> np.ndarray:
    """The cells as shapely polygons, their boundary vertices joined by straight lon/lat edges."""
    rings = [h3.cell_to_boundary(h3.int_to_str(int(c))) for c in cells.tolist()]
    sizes = np.array([len(r) for r in rings], dtype=np.int64)
    coords = np.array([(lng, lat) for ring in rings for lat, lng in ring], dtype=np.float64).reshape(-1, 2)
    linear_rings = shapely.linearrings(coords, indices=np.repeat(np.arange(len(rings)), sizes))
    return shapely.polygons(linear_rings)
