"""Point-in-grid kernels: which grid holds each point, exactly.

The index these kernels read (built with :mod:`citygrid.kernels.indexing`, described in
:mod:`citygrid.engine.layers.index`):

- a **cell table** of two levels over the layer's bounding box. A point's fine cell ``(i, j)`` lies
  on a grid ``2**shift`` times finer than the ``nx`` by ``ny`` top cells (``cell_box`` is ``(x0, y0,
  x1, y1, fine cells per degree in x, in y)``). Its top cell holds a grid row (the cell lies wholly
  inside that one grid: the answer at once), ``-1`` (inside no grid) or ``-2 - b``: the cell is split
  into block ``b`` of ``2**shift`` by ``2**shift`` fine cells in ``block_values``, whose values read
  the same way, except that ``-2 - k`` there is a candidate list starting at row ``k`` of
  ``list_entries``: a header ``(count, 0, 0)`` and then ``count`` rows ``(grid row, first edge, end
  edge)``, sorted by grid row, one for every polygon part that may cover a point of the fine cell;
- **strips**: each polygon part (a shell and its holes) has one strip per *strip row* it spans (a
  band of rows of fine cells; by default one row each), holding, as ``(ax, ay, bx, by)`` rows of
  ``strip_segments``, every edge of the part whose y-range reaches that row, by decreasing right end.
  A candidate row names the run of the part's strip at the fine cell's row that reaches the cell's
  left side (edges wholly left of a point can neither cross its ray to +x nor hold it), so the exact
  test reads one short contiguous run of edges and nothing else.

The exact test of a part casts a ray from the point to +x and counts the crossings of the edges of
its strip: the half-open rule ``(ay > py) != (by > py)``, the side from the orientation determinant,
trusted only when it exceeds Shewchuk's error bound and otherwise decided by
:func:`~citygrid.kernels.predicates.orient2d_exact` on the input doubles; a point on an edge, a vertex
or a horizontal edge is found explicitly and is *covered*. Rows are computed with the same monotone
:func:`strip_of` as the cells, so every edge whose y-range holds the point's y is in its strip.

Semantics (closed, one grid per point): a point covered by one grid gets it (status ``INSIDE``), by
two or more the lowest grid row among them (``SHARED_BOUNDARY``), by none ``-1`` (``OUTSIDE``). A
NaN, infinite or out-of-range coordinate gets ``-1`` and ``INVALID``. Kernels never raise.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from citygrid.kernels._jit import njit, pnjit
from citygrid.kernels.predicates import CCW_ERRBOUND_A, EXACT_SCRATCH, orient2d_exact

# Per-point status codes (citygrid.engine.layers.assignment.Status has the same values).
INSIDE = 0
SHARED_BOUNDARY = 1
FALLBACK = 2
OUTSIDE = 3
INVALID = 4

#: Metres per degree of latitude on the mean Earth sphere (R = 6,371,008.8 m), for the fallback.
METRES_PER_DEGREE = 2.0 * math.pi * 6371008.8 / 360.0

#: Points per call of :func:`locate_block` in the parallel kernel (each call pays a fixed cost: the
#: reference counts of its array arguments; per point there is no call at all).
BLOCK = 2048

#: Points per stage inside :func:`locate_block` (see there).
STAGE = 256

#: Distinct edge runs the fallback search remembers per point (more are re-measured, never missed).
_FALLBACK_SEEN = 64


@njit
def strip_of(v, v0, scale, count):
    """The strip (or cell) number of coordinate ``v`` in a row of ``count`` strips starting at ``v0``
    with ``scale`` strips per unit, clamped to ``[0, count)``. Monotone in ``v``, so an edge filed
    under the strips of its end points' y is found from any point whose y lies between them."""
    t = (v - v0) * scale
    if not t > 0.0:
        return 0
    if t >= count:
        return count - 1
    return int(t)


@njit
def locate_block(lo, hi, lng, lat, cell_box, nx, ny, shift, cell_values, block_values, list_entries, strip_segments,
                 out_rows, out_status):
    """Locate points ``lo:hi``: the one implementation of the rule, which every code path runs.

    The points go through in stages of :data:`STAGE`: first every point's top cell, then the block
    cells of those that need one, then the exact tests, so that the cache misses of one stage are
    independent of each other and the processor overlaps them. The whole per-point test is written
    out in this body on purpose: calling a Numba function that takes arrays costs two atomic
    reference-count operations per array, more than the test.
    """
    scratch = np.empty(EXACT_SCRATCH)
    pending = np.empty(STAGE, dtype=np.int64)
    pending_value = np.empty(STAGE, dtype=np.int64)
    mask = (1 << shift) - 1
    fnx = nx << shift
    fny = ny << shift
    for start in range(lo, hi, STAGE):
        stop = min(hi, start + STAGE)
        # Stage 1: validate, and read the top cell.
        n_pending = 0
        for n in range(start, stop):
            px = lng[n]
            py = lat[n]
            if not (-180.0 <= px <= 180.0 and -90.0 <= py <= 90.0):
                out_rows[n] = -1
                out_status[n] = INVALID
                continue
            if px < cell_box[0] or py < cell_box[1] or px > cell_box[2] or py > cell_box[3]:
                out_rows[n] = -1
                out_status[n] = OUTSIDE
                continue
            i = strip_of(px, cell_box[0], cell_box[4], fnx)
            j = strip_of(py, cell_box[1], cell_box[5], fny)
            v = cell_values[(j >> shift) * nx + (i >> shift)]
            if v >= 0:
                out_rows[n] = v
                out_status[n] = INSIDE
            elif v == -1:
                out_rows[n] = -1
                out_status[n] = OUTSIDE
            else:
                pending[n_pending] = n
                pending_value[n_pending] = (((-2 - v) << (2 * shift)) + ((j & mask) << shift) + (i & mask))
                n_pending += 1
        # Stage 2: read the block cells.
        n_lists = 0
        for q in range(n_pending):
            n = pending[q]
            v = block_values[pending_value[q]]
            if v >= 0:
                out_rows[n] = v
                out_status[n] = INSIDE
            elif v == -1:
                out_rows[n] = -1
                out_status[n] = OUTSIDE
            else:
                pending[n_lists] = n
                pending_value[n_lists] = -2 - v
                n_lists += 1
        # Stage 3: exact tests against the candidate parts of the point's list.
        for q in range(n_lists):
            n = pending[q]
            k = pending_value[q]
            px = lng[n]
            py = lat[n]
            row = -1
            count = 0
            covered_grid = -1
            for t in range(k + 1, k + 1 + list_entries[k, 0]):
                g = list_entries[t, 0]
                if g == covered_grid:
                    continue  # another part of a grid already found to cover the point
                # Exact test against the part: ray to +x, half-open in y, over the edges of its strip.
                inside = False
                on_edge = False
                for e in range(list_entries[t, 1], list_entries[t, 2]):
                    ax = strip_segments[e, 0]
                    ay = strip_segments[e, 1]
                    bx = strip_segments[e, 2]
                    by = strip_segments[e, 3]
                    b_above = by > py
                    straddles = (ay > py) != b_above
                    detleft = (ax - px) * (by - py)
                    detright = (ay - py) * (bx - px)
                    det = detleft - detright
                    if ((straddles and abs(det) <= CCW_ERRBOUND_A * (abs(detleft) + abs(detright)))
                            or ay == py or by == py):
                        # Rare: the side is uncertain in floating point, or an end lies on the ray's line.
                        if straddles:
                            o = orient2d_exact(ax, ay, bx, by, px, py, scratch)
                            if o == 0.0:
                                on_edge = True
                                break
                            inside ^= (o > 0.0) == b_above
                        elif ay == by:
                            if (ax <= px <= bx) or (bx <= px <= ax):
                                on_edge = True
                                break
                        elif px == (ax if ay == py else bx):
                            on_edge = True
                            break
                    else:
                        inside ^= straddles & ((det > 0.0) == b_above)
                if inside or on_edge:
                    covered_grid = g
                    if count == 0:
                        row = g
                    count += 1
            out_rows[n] = row
            out_status[n] = OUTSIDE if count == 0 else (INSIDE if count == 1 else SHARED_BOUNDARY)


@pnjit
def locate_points(lng, lat, cell_box, nx, ny, shift, cell_values, block_values, list_entries, strip_segments,
                  out_rows, out_status):
    """Write each point's grid row (``-1``: none) into ``out_rows`` and its status into ``out_status``,
    in parallel over blocks of points. Never raises."""
    n = lng.shape[0]
    for b in numba.prange((n + BLOCK - 1) // BLOCK):
        locate_block(b * BLOCK, min(n, (b + 1) * BLOCK), lng, lat, cell_box, nx, ny, shift, cell_values,
                     block_values, list_entries, strip_segments, out_rows, out_status)


@njit
def locate_points_serial(lng, lat, cell_box, nx, ny, shift, cell_values, block_values, list_entries, strip_segments,
                         out_rows, out_status):
    """:func:`locate_points` on the calling thread alone (small batches: no thread-pool launch)."""
    locate_block(0, lng.shape[0], lng, lat, cell_box, nx, ny, shift, cell_values, block_values, list_entries,
                 strip_segments, out_rows, out_status)


# ---------------------------------------------------------------------- fallback (属地兜底)


@njit
def _segment_distance2(px, py, ax, ay, bx, by, kx):
    """Squared distance in degrees of latitude from p to segment ab, x scaled by ``kx`` (cos lat)."""
    ux = (bx - ax) * kx
    uy = by - ay
    wx = (px - ax) * kx
    wy = py - ay
    uu = ux * ux + uy * uy
    t = 0.0
    if uu > 0.0:
        t = min(max((wx * ux + wy * uy) / uu, 0.0), 1.0)
    dx = wx - t * ux
    dy = wy - t * uy
    return dx * dx + dy * dy


@njit
def nearest_grid(px, py, radius_m, cell_box, nx, ny, shift, cell_values, block_values, list_entries,
                 strip_segments):
    """The grid whose boundary is nearest to p within ``radius_m`` metres (lowest row on a tie), or -1.

    Distances are measured on the local equirectangular plane at p's latitude (error far below a
    metre at grid scale). Only fine cells with candidate lists within the radius are searched: the
    nearest point of a grid to a point outside it lies on its boundary, and every edge is in the list
    (strip) of each fine cell it comes near.
    """
    ry = radius_m / METRES_PER_DEGREE
    kx = math.cos(py * math.pi / 180.0)
    rx = 360.0 if kx * 360.0 <= ry else ry / kx
    if px + rx < cell_box[0] or px - rx > cell_box[2] or py + ry < cell_box[1] or py - ry > cell_box[3]:
        return -1
    fnx = nx << shift
    fny = ny << shift
    mask = (1 << shift) - 1
    i0 = strip_of(px - rx, cell_box[0], cell_box[4], fnx)
    i1 = strip_of(px + rx, cell_box[0], cell_box[4], fnx)
    j0 = strip_of(py - ry, cell_box[1], cell_box[5], fny)
    j1 = strip_of(py + ry, cell_box[1], cell_box[5], fny)
    seen_lo = np.empty(_FALLBACK_SEEN, dtype=np.int64)
    seen_hi = np.empty(_FALLBACK_SEEN, dtype=np.int64)
    n_seen = 0
    best_row = -1
    best_d2 = ry * ry
    for j in range(j0, j1 + 1):
        for i in range(i0, i1 + 1):
            v = cell_values[(j >> shift) * nx + (i >> shift)]
            if v <= -2:
                v = block_values[((-2 - v) << (2 * shift)) + ((j & mask) << shift) + (i & mask)]
            if v > -2:
                continue
            k = -2 - v
            for t in range(k + 1, k + 1 + list_entries[k, 0]):
                g = list_entries[t, 0]
                lo = list_entries[t, 1]
                hi = list_entries[t, 2]
                known = False
                for q in range(n_seen):
                    if seen_lo[q] == lo and seen_hi[q] == hi:
                        known = True
                        break
                if known:
                    continue
                if n_seen < _FALLBACK_SEEN:
                    seen_lo[n_seen] = lo
                    seen_hi[n_seen] = hi
                    n_seen += 1
                d2 = np.inf
                for e in range(lo, hi):
                    d2 = min(d2, _segment_distance2(px, py, strip_segments[e, 0], strip_segments[e, 1],
                                                    strip_segments[e, 2], strip_segments[e, 3], kx))
                if d2 < best_d2 or (d2 == best_d2 and (best_row < 0 or g < best_row)):
                    best_d2 = d2
                    best_row = g
    return best_row


@pnjit
def assign_fallback(lng, lat, radius_m, cell_box, nx, ny, shift, cell_values, block_values, list_entries,
                    strip_segments, out_rows, out_status):
    """Give every ``OUTSIDE`` point the grid nearest to it within ``radius_m`` (status ``FALLBACK``)."""
    for n in numba.prange(lng.shape[0]):
        if out_status[n] != OUTSIDE:
            continue
        g = nearest_grid(lng[n], lat[n], radius_m, cell_box, nx, ny, shift, cell_values, block_values, list_entries,
                         strip_segments)
        if g >= 0:
            out_rows[n] = g
            out_status[n] = FALLBACK
