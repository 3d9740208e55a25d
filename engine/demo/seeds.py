"""Block and grid seeds, spaced by the landscape's grid density.

Blocks are the cells of a weighted centroidal Voronoi tessellation (Lloyd's algorithm on a cloud of
sample points), so neighbouring blocks have similar sizes that change smoothly from the dense town
centres to the hills. A subset of the blocks, spread like a coarser centroidal tessellation, seeds
the grids; every grid then grows over neighbouring blocks (see :mod:`.tessellation`).
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.spatial import cKDTree

from .landscape import MAX_GRID_DENSITY, Landscape
from .outline import LocalPlane

#: Blocks per grid: grids are unions of neighbouring blocks, which makes them irregular.
BLOCKS_PER_GRID = 3
_SAMPLES_PER_BLOCK = 16
_BLOCK_ITERATIONS = 4
_GRID_ITERATIONS = 6
_SNAP_CANDIDATES = 12


def _density_samples(
    outline: shapely.Polygon, landscape: Landscape, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` lon/lat points inside the outline drawn with probability proportional to grid density."""
    min_lng, min_lat, max_lng, max_lat = outline.bounds
    lngs, lats = [], []
    found = 0
    while found < n:
        lng = min_lng + rng.random(4 * n) * (max_lng - min_lng)
        lat = min_lat + rng.random(4 * n) * (max_lat - min_lat)
        density = landscape.grid_density(lng, lat)
        keep = rng.random(lng.size) < density / MAX_GRID_DENSITY
        lng, lat = lng[keep], lat[keep]
        inside = shapely.contains_xy(outline, lng, lat)
        lngs.append(lng[inside])
        lats.append(lat[inside])
        found += int(inside.sum())
    lng = np.concatenate(lngs)[:n]
    lat = np.concatenate(lats)[:n]
    return lng, lat, landscape.grid_density(lng, lat)


def _lloyd(samples: np.ndarray, weight: np.ndarray, n_centres: int, iterations: int) -> np.ndarray:
    """Weighted Lloyd relaxation of the first ``n_centres`` samples over all samples."""
    centres = samples[:n_centres].copy()
    for _ in range(iterations):
        _, label = cKDTree(centres).query(samples)
        mass = np.bincount(label, weights=weight, minlength=n_centres)
        moved = mass > 0
        for axis in range(2):
            total = np.bincount(label, weights=weight * samples[:, axis], minlength=n_centres)
            centres[moved, axis] = total[moved] / mass[moved]
    return centres


def block_seeds(
    outline: shapely.Polygon, plane: LocalPlane, landscape: Landscape, n_grids: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Seeds of the blocks that grids are made of, and which block seeds the grids grow from.

    Returns ``(block_xy, grid_block)``: ``(BLOCKS_PER_GRID * n_grids, 2)`` distinct plane
    coordinates (metres) inside the outline, and the ``n_grids`` distinct indices of the blocks
    that seed the grids (spread like a centroidal tessellation with ``n_grids`` cells).
    Samples are drawn with density ρ and weighted by ρ, which makes the Lloyd centres' density
    proportional to ρ (a centroidal Voronoi tessellation has centre density ∝ (sample weight)^½).
    """
    n_blocks = BLOCKS_PER_GRID * n_grids
    lng, lat, weight = _density_samples(outline, landscape, n_blocks * _SAMPLES_PER_BLOCK, rng)
    samples = np.column_stack(plane.to_xy(lng, lat))
    blocks = _lloyd(samples, weight, n_blocks, _BLOCK_ITERATIONS)
    # A centroid can fall outside a concave outline: pull it back to its nearest own sample.
    block_lng, block_lat = plane.to_lnglat(blocks[:, 0], blocks[:, 1])
    outside = np.flatnonzero(~shapely.contains_xy(outline, block_lng, block_lat))
    if outside.size:
        _, label = cKDTree(blocks).query(samples)
        for block in outside:
            own = samples[label == block]
            own = own if own.size else samples
            blocks[block] = own[np.argmin(((own - blocks[block]) ** 2).sum(axis=1))]
    if np.unique(blocks, axis=0).shape[0] != n_blocks:
        raise RuntimeError("block seeds are not distinct")

    centres = _lloyd(samples, weight, n_grids, _GRID_ITERATIONS)
    _, nearest = cKDTree(blocks).query(centres, k=_SNAP_CANDIDATES)
    grid_block = np.full(n_grids, -1)
    taken = np.zeros(n_blocks, dtype=bool)
    for grid, candidates in enumerate(nearest):
        free = candidates[~taken[candidates]]
        if free.size == 0:
            raise RuntimeError("no free block near a grid centre")
        grid_block[grid] = free[0]
        taken[free[0]] = True
    return blocks, grid_block
