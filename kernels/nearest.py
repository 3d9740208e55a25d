"""Nearest building to many points: a uniform cell grid over the buildings, great-circle distance.

The index (built by :class:`citygrid.engine.houses.spatial.BuildingIndex`):

- ``cell_box = (lng0, lat0, cells per degree of longitude, cells per degree of latitude,
  cos(largest |latitude| of the box), cell width in radians, cell height in radians)``, and ``nx``
  by ``ny`` cells; cell ``(i, j)`` covers longitudes ``lng0 + i / cells per degree`` onwards;
- ``cell_offsets`` (``nx * ny + 1``): the buildings of cell ``c`` are positions
  ``cell_offsets[c]:cell_offsets[c + 1]`` of ``xyz`` (their unit vectors on the sphere, one row
  each) and of ``rows`` (their rows in the caller's table).

**Distance** is the great-circle distance on the mean Earth sphere (R = 6,371,008.8 m), in metres:
``2 R asin(c / 2)`` with ``c`` the chord between the unit vectors. Candidates are compared by
``c²`` (monotone in the distance, no trigonometry per candidate). Against the WGS84 ellipsoid the
sphere is off by at most ~0.5 % of the distance, which at the tens of metres this is asked about is
centimetres.

**Search**: the point's cell (clamped to the grid when the point is outside it), then the rings of
cells at Chebyshev distance 1, 2, … around it. A building in ring ``k`` is at least ``k - 1`` whole
cells away in latitude or in longitude, so its chord is at least ``min(2 sin((k - 1) h / 2),
2 cos(φmax) sin((k - 1) w / 2))`` (φmax the largest |latitude| of the box and the point); the
search stops at the first ring whose bound exceeds the best
chord found (or the radius). **Ties**: among buildings at the same ``c²`` (as computed in float64),
the lowest row wins, whatever the order the cells are visited in.

Results: ``out_rows[n]`` the row of the nearest building within ``radius_m`` (closed), ``-1``
without one; ``out_distance[n]`` its distance in metres, ``-1.0`` when there is none within the
radius, ``NaN`` when the point is not a valid longitude / latitude (row ``-1`` too). Kernels never raise.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from citygrid.kernels._jit import njit, pnjit
from citygrid.kernels.locate import strip_of

#: Mean Earth radius (IUGG), metres.
EARTH_RADIUS_M = 6371008.8
#: Points per call of :func:`nearest_block` from the parallel kernel.
BLOCK = 1024
#: Ring bounds are shrunk by this relative margin so that rounding can never stop a search early.
_BOUND_SLACK = 1.0 - 1e-9


@njit
def unit_vectors(lng, lat, out_xyz):
    """``out_xyz[k] = (cos φ cos λ, cos φ sin λ, sin φ)`` of every point (degrees in)."""
    for k in range(lng.shape[0]):
        phi = lat[k] * (math.pi / 180.0)
        lam = lng[k] * (math.pi / 180.0)
        c = math.cos(phi)
        out_xyz[k, 0] = c * math.cos(lam)
        out_xyz[k, 1] = c * math.sin(lam)
        out_xyz[k, 2] = math.sin(phi)


@njit
def chord2_of_metres(radius_m):
    """The squared chord of a great-circle distance in metres (capped at the antipode)."""
    theta = min(radius_m / EARTH_RADIUS_M, math.pi)
    c = 2.0 * math.sin(theta / 2.0)
    return c * c


@njit
def metres_of_chord2(c2):
    return 2.0 * EARTH_RADIUS_M * math.asin(min(math.sqrt(c2) / 2.0, 1.0))


@njit
def nearest_block(lo, hi, lng, lat, radius_m, cell_box, nx, ny, cell_offsets, xyz, rows, out_rows, out_distance):
    """:func:`nearest_buildings` for points ``lo:hi`` on the calling thread."""
    limit = chord2_of_metres(radius_m)
    w = cell_box[5]
    h = cell_box[6]
    max_ring = max(nx, ny)
    for n in range(lo, hi):
        px = lng[n]
        py = lat[n]
        if not (-180.0 <= px <= 180.0 and -90.0 <= py <= 90.0):
            out_rows[n] = -1
            out_distance[n] = np.nan
            continue
        phi = py * (math.pi / 180.0)
        lam = px * (math.pi / 180.0)
        c = math.cos(phi)
        qx = c * math.cos(lam)
        qy = c * math.sin(lam)
        qz = math.sin(phi)
        cos_max = min(cell_box[4], c)  # the bound needs the smaller cosine of the two latitudes
        ci = strip_of(px, cell_box[0], cell_box[2], nx)
        cj = strip_of(py, cell_box[1], cell_box[3], ny)
        best = limit
        best_row = -1
        for k in range(max_ring + 1):
            if k >= 2:
                gap = k - 1
                bound = min(2.0 * math.sin(gap * h / 2.0), 2.0 * cos_max * math.sin(min(gap * w, math.pi) / 2.0))
                bound *= _BOUND_SLACK
                if bound * bound > best:
                    break
            j0 = max(cj - k, 0)
            j1 = min(cj + k, ny - 1)
            for j in range(j0, j1 + 1):
                on_edge_row = j == cj - k or j == cj + k
                if on_edge_row:
                    i0 = max(ci - k, 0)
                    i1 = min(ci + k, nx - 1)
                    step = 1
                else:  # only the ring's two side cells of this row
                    i0 = ci - k
                    i1 = ci + k
                    step = 2 * k if k > 0 else 1
                i = i0
                while i <= i1:
                    if 0 <= i < nx:
                        cell = j * nx + i
                        for t in range(cell_offsets[cell], cell_offsets[cell + 1]):
                            dx = xyz[t, 0] - qx
                            dy = xyz[t, 1] - qy
                            dz = xyz[t, 2] - qz
                            c2 = dx * dx + dy * dy + dz * dz
                            if c2 < best or (c2 == best and (best_row < 0 or rows[t] < best_row)):
                                best = c2
                                best_row = rows[t]
                    i += step
            if cj - k <= 0 and cj + k >= ny - 1 and ci - k <= 0 and ci + k >= nx - 1:
                break  # the ring covers the whole grid: nothing is left
        out_rows[n] = best_row
        out_distance[n] = metres_of_chord2(best) if best_row >= 0 else -1.0


@pnjit
def nearest_buildings(lng, lat, radius_m, cell_box, nx, ny, cell_offsets, xyz, rows, out_rows, out_distance):
    """Write each point's nearest building row within ``radius_m`` metres into ``out_rows`` and its
    great-circle distance into ``out_distance`` (see the module docstring), in parallel over blocks."""
    n = lng.shape[0]
    for b in numba.prange((n + BLOCK - 1) // BLOCK):
        nearest_block(b * BLOCK, min(n, (b + 1) * BLOCK), lng, lat, radius_m, cell_box, nx, ny, cell_offsets, xyz,
                      rows, out_rows, out_distance)


@njit
def nearest_buildings_serial(lng, lat, radius_m, cell_box, nx, ny, cell_offsets, xyz, rows, out_rows, out_distance):
    """:func:`nearest_buildings` on the calling thread alone (small batches: no thread-pool launch)."""
    nearest_block(0, lng.shape[0], lng, lat, radius_m, cell_box, nx, ny, cell_offsets, xyz, rows, out_rows,
                  out_distance)
