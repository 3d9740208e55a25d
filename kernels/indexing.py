"""Kernels that build the point-location index from a layer's buffers (see :mod:`citygrid.engine.layers.index`).

Every kernel here is a counting pass or a filling pass over flat arrays; the engine allocates the
outputs between the two. Decisions that must be exact (which grids cover a cell's centre) are not made
here: the engine runs the query kernel :func:`citygrid.kernels.locate.locate_points` itself for them.
Decisions that only need to be conservative (which cells an edge may touch) widen every cell by a
margin far larger than the rounding of the cell arithmetic, so they can only over-report.
"""

from __future__ import annotations

import numba
import numpy as np

from citygrid.kernels._jit import njit, pnjit
from citygrid.kernels.locate import strip_of


@njit
def part_boxes(x, y, ring_offsets, part_offsets, out_box):
    """``out_box[p] = (min x, min y, max x, max y)`` over every vertex of part ``p``."""
    for p in range(part_offsets.shape[0] - 1):
        xmin = np.inf
        ymin = np.inf
        xmax = -np.inf
        ymax = -np.inf
        for r in range(part_offsets[p], part_offsets[p + 1]):
            for i in range(ring_offsets[r], ring_offsets[r + 1]):
                xmin = min(xmin, x[i])
                xmax = max(xmax, x[i])
                ymin = min(ymin, y[i])
                ymax = max(ymax, y[i])
        out_box[p, 0] = xmin
        out_box[p, 1] = ymin
        out_box[p, 2] = xmax
        out_box[p, 3] = ymax


@njit
def strips_of(values, v0, scale, count):
    """:func:`~citygrid.kernels.locate.strip_of` of every value (int64 array)."""
    out = np.empty(values.shape[0], dtype=np.int64)
    for k in range(values.shape[0]):
        out[k] = strip_of(values[k], v0, scale, count)
    return out


@njit
def trim_runs(right_end, lo, hi, left):
    """For runs ``[lo[k], hi[k])`` of edges sorted by decreasing ``right_end``: the end of the part of
    each run whose edges reach ``left[k]`` or further right (int64 array)."""
    out = np.empty(lo.shape[0], dtype=np.int64)
    for k in range(lo.shape[0]):
        a = lo[k]
        b = hi[k]
        while a < b:  # first edge ending left of left[k]
            mid = (a + b) // 2
            if right_end[mid] >= left[k]:
                a = mid + 1
            else:
                b = mid
        out[k] = a
    return out


@njit
def part_rows(part_box, row_box, n_rows, shift, out_first_row, out_rows):
    """The strip rows each part spans: from ``out_first_row[p]``, ``out_rows[p]`` of them.

    A strip row is ``2**shift`` fine rows of ``row_box`` (``(y0, fine rows per degree)``), computed
    exactly as the query kernel computes a point's fine row, so a point inside a part always falls in
    one of its rows."""
    fine_rows = n_rows << shift
    for p in range(part_box.shape[0]):
        lo = strip_of(part_box[p, 1], row_box[0], row_box[1], fine_rows) >> shift
        hi = strip_of(part_box[p, 3], row_box[0], row_box[1], fine_rows) >> shift
        out_first_row[p] = lo
        out_rows[p] = hi - lo + 1


@njit
def count_strip_edges(y, ring_offsets, part_offsets, row_box, n_rows, shift, part_first_row, strip_first,
                      out_counts):
    """Add to ``out_counts[s]`` one for every edge whose y-range reaches the row of strip ``s``."""
    fine_rows = n_rows << shift
    for p in range(part_offsets.shape[0] - 1):
        base = strip_first[p] - part_first_row[p]
        for r in range(part_offsets[p], part_offsets[p + 1]):
            for i in range(ring_offsets[r], ring_offsets[r + 1] - 1):
                lo = strip_of(min(y[i], y[i + 1]), row_box[0], row_box[1], fine_rows) >> shift
                hi = strip_of(max(y[i], y[i + 1]), row_box[0], row_box[1], fine_rows) >> shift
                for row in range(lo, hi + 1):
                    out_counts[base + row] += 1


@njit
def fill_strip_segments(x, y, ring_offsets, part_offsets, row_box, n_rows, shift, part_first_row, strip_first,
                        strip_offsets, out_segments):
    """Write each edge's end points ``(ax, ay, bx, by)`` into the strip of every row its y-range
    reaches, in vertex order; ``strip_offsets`` comes from :func:`count_strip_edges`. The coordinates
    are copied, not referenced, so a strip's edges lie side by side in memory."""
    fine_rows = n_rows << shift
    cursor = strip_offsets[:-1].copy()
    for p in range(part_offsets.shape[0] - 1):
        base = strip_first[p] - part_first_row[p]
        for r in range(part_offsets[p], part_offsets[p + 1]):
            for i in range(ring_offsets[r], ring_offsets[r + 1] - 1):
                lo = strip_of(min(y[i], y[i + 1]), row_box[0], row_box[1], fine_rows) >> shift
                hi = strip_of(max(y[i], y[i + 1]), row_box[0], row_box[1], fine_rows) >> shift
                for row in range(lo, hi + 1):
                    j = cursor[base + row]
                    out_segments[j, 0] = x[i]
                    out_segments[j, 1] = y[i]
                    out_segments[j, 2] = x[i + 1]
                    out_segments[j, 3] = y[i + 1]
                    cursor[base + row] += 1


@njit
def _edge_cells(ax, ay, bx, by, cell_box, nx, ny, margin_x, margin_y, out_cells, start, fill):
    """Every cell the segment ab may touch, each cell widened by the margins (conservative).

    Counts them, and when ``fill`` writes their numbers to ``out_cells[start:]``. Returns the count.
    """
    x0 = cell_box[0]
    y0 = cell_box[1]
    sx = cell_box[4]
    sy = cell_box[5]
    exmin = min(ax, bx) - margin_x
    exmax = max(ax, bx) + margin_x
    eymin = min(ay, by) - margin_y
    eymax = max(ay, by) + margin_y
    i0 = strip_of(exmin, x0, sx, nx)
    i1 = strip_of(exmax, x0, sx, nx)
    j0 = strip_of(eymin, y0, sy, ny)
    j1 = strip_of(eymax, y0, sy, ny)
    n = 0
    for j in range(j0, j1 + 1):
        ilo = i0
        ihi = i1
        if i0 != i1 and j0 != j1 and ay != by:
            # Clip the segment to this row's band (widened) and keep the cells of that piece only.
            band_lo = max(eymin, y0 + j / sy - margin_y)
            band_hi = min(eymax, y0 + (j + 1) / sy + margin_y)
            ylo = min(max(band_lo, min(ay, by)), max(ay, by))
            yhi = min(max(band_hi, min(ay, by)), max(ay, by))
            slope = (bx - ax) / (by - ay)
            xa = ax + (ylo - ay) * slope
            xb = ax + (yhi - ay) * slope
            ilo = max(i0, strip_of(min(xa, xb) - margin_x, x0, sx, nx))
            ihi = min(i1, strip_of(max(xa, xb) + margin_x, x0, sx, nx))
        for i in range(ilo, ihi + 1):
            if fill:
                out_cells[start + n] = j * nx + i
            n += 1
    return n


@njit
def count_edge_cells(x, y, ring_offsets, part_offsets, cell_box, nx, ny, margin_x, margin_y, out_counts):
    """``out_counts[p]`` = how many (cell, edge) touches part ``p``'s edges make."""
    dummy = np.empty(0, dtype=np.int64)
    for p in range(part_offsets.shape[0] - 1):
        n = 0
        for r in range(part_offsets[p], part_offsets[p + 1]):
            for i in range(ring_offsets[r], ring_offsets[r + 1] - 1):
                n += _edge_cells(x[i], y[i], x[i + 1], y[i + 1], cell_box, nx, ny, margin_x, margin_y, dummy, 0,
                                 False)
        out_counts[p] = n


@pnjit
def fill_edge_cells(x, y, ring_offsets, part_offsets, cell_box, nx, ny, margin_x, margin_y, part_starts, out_cells,
                    out_parts):
    """The (cell, part) touches counted by :func:`count_edge_cells`, part ``p``'s from ``part_starts[p]``."""
    for p in numba.prange(part_offsets.shape[0] - 1):
        n = part_starts[p]
        for r in range(part_offsets[p], part_offsets[p + 1]):
            for i in range(ring_offsets[r], ring_offsets[r + 1] - 1):
                n += _edge_cells(x[i], y[i], x[i + 1], y[i + 1], cell_box, nx, ny, margin_x, margin_y, out_cells, n,
                                 True)
        for t in range(part_starts[p], n):
            out_parts[t] = p
