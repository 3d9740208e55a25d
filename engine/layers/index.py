"""The point-location index of a layer version and its H3 cover: built once, saved with the version,
memory-mapped on load.

Design
------
**Cells, two levels.** A uniform grid of square *top* cells over the layer's bounding box, sized for
about :data:`CELLS_PER_GRID` cells per grid. A top cell that no edge comes near holds its one answer:
the grid that covers it wholly, or ``-1``. A top cell that edges come near (or that several grids
cover) is split into a block of ``2**BLOCK_SHIFT`` by ``2**BLOCK_SHIFT`` *fine* cells, and each fine
cell again holds its answer when no edge comes near it, or else a short candidate list: one entry
per polygon part that may cover a point of the cell, naming that part's edges in the cell's row.
"Near" means within ``1e-6`` cell widths (:data:`CELL_MARGIN`), a million times the rounding of the
cell arithmetic, so a point that floating point puts in a neighbouring cell is still answered right.

**Strips.** Every polygon part (a shell and its holes) has one strip per row of fine cells it spans
(``2**STRIP_SHIFT`` strips to a top row), holding copies of every edge whose y-range reaches that row,
side by side, by decreasing right end (tg's y-stripes, aligned to the cell rows). A candidate entry
points straight at the run of its part's strip that reaches the cell's left side: the edges a ray
from a point of the cell to +x can cross or that can hold the point. The exact test counts the
crossings of that run: half-open rule, Shewchuk's error bound on the orientation determinant with an
exact fallback on the input doubles, explicit on-edge detection. Nothing is snapped; see
:mod:`citygrid.kernels.locate`.

**Build.** Edges are rasterised conservatively onto the fine cells. Which grid covers a cell that no
edge comes near is decided at one point of it by the query kernel itself (over a coarse table listing
the parts by bounding box), so the build and the queries cannot disagree; along a row, a run of
edge-free cells shares one answer and only its first cell is located.

**Why this design.** Measured on this 2-core VM (shared, noisy; min of 5 runs), single thread, 2
million uniform points over the demo district's bounding box. Memory dominates: a dependent load
costs ~18 ns in a 2 MB working set, ~45 ns in 8 MB and ~125 ns beyond 32 MB here.

============================================  ==========  ============  ===========
table (cells per grid, block shift, strips)   index MB    random ns/pt  sorted ns/pt
============================================  ==========  ============  ===========
one level (256, 0, one strip per row)         27          49            16
two levels (64, 2, one strip per top row)     29          40            15
two levels (64, 2, one strip per fine row)    36          38            14   (default)
two levels (128, 2, per fine row)             49          36            13
two levels (64, 3, per fine row)              72          32            13
============================================  ==========  ============  ===========

With the default, 85 % of uniform points are answered by the top cell (~19 ns), 11 % by a fine cell
(~14 ns) and 4 % by a candidate list (~206 ns: two parts, six edges read). Earlier layouts measured
and dropped: candidate lists of grids, then parts, each test finding its strip through per-part
records (6 to 10 dependent misses, 500-700 ns per boundary point, 19 edges read); per-point helper
functions taking arrays (Numba increments and decrements every array's reference count per call:
~180 ns per point); an allocating exact fallback inlined into the hot loop (2x slower even when
unused). Not tried: S2 / ACT-style cell-local edges with a reference point (exact segment-crossing
logic for the walk from the reference point, and more memory for no fewer misses); H3 as the first
level (``latlng_to_cell`` alone costs ~1 us in h3-py, 25 times the whole lookup).

**H3 cover**: :mod:`citygrid.engine.layers.cover`.

Saved layout (``<version dir>/index/``, Arrow IPC, one array per file, one record batch each)::

    manifest.json   format, the layer's content hash, sizes, H3 resolution, build figures
    <name>.arrow    the arrays of GridIndex, two-dimensional ones flattened
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from citygrid.engine.errors import InvalidInput, NotFound
from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.files import check_format, fsync_path, read_json, write_json
from citygrid.engine.layers.snapshots import read_array, write_arrays
from citygrid.engine.layers.cover import DEFAULT_H3_RESOLUTION, _cover_resolution, build_h3_cover  # noqa: F401 (the default, named here)
from citygrid.kernels import indexing as kernels
from citygrid.kernels.locate import INSIDE, OUTSIDE, SHARED_BOUNDARY, locate_points

INDEX_FORMAT = "citygrid-index"
INDEX_FORMAT_VERSION = 1
INDEX_DIR = "index"
MANIFEST = "manifest.json"

#: Target number of top cells per grid (a grid's typical bounding box over this many cells).
CELLS_PER_GRID = 64
#: Top cells that edges come near are split into blocks of ``2**BLOCK_SHIFT`` fine cells a side.
BLOCK_SHIFT = 2
#: Strips are ``2**STRIP_SHIFT`` to a top row (at most ``2**BLOCK_SHIFT``: one per row of fine cells).
STRIP_SHIFT = 2
#: Upper bound of the number of top cells (int32 each: 64 MiB at most).
MAX_CELLS = 1 << 24
#: Cells are widened by this fraction of their size when deciding which edges come near them.
CELL_MARGIN = 1e-6

#: Arrays of the point-location index, in the order the locate kernels take them after the scalars.
LOCATE_ARRAYS = ("cell_values", "block_values", "list_entries", "strip_segments")
COVER_ARRAYS = ("cover_offsets", "cover_cells", "cover_interior", "cell_ids", "cell_offsets", "cell_rows")
ARRAY_NAMES = ("cell_box",) + LOCATE_ARRAYS + COVER_ARRAYS
#: Two-dimensional arrays (saved flat) and their widths.
_WIDTHS = {"list_entries": 3, "strip_segments": 4}


@dataclass(frozen=True, eq=False)
class GridIndex:
    """The point-location index and H3 cover of one layer version (immutable; arrays read-only).

    See the module docstring for the design and :mod:`citygrid.kernels.locate` for the exact layout.
    """

    content_hash: str
    #: Top cells in x and y; split ones become blocks of ``2**shift`` by ``2**shift`` fine cells.
    nx: int
    ny: int
    shift: int
    h3_resolution: int
    #: (x0, y0, x1, y1, fine cells per degree in x, in y).
    cell_box: np.ndarray
    #: Per top cell (row-major, int32): a grid row, -1 (no grid) or -2 - block.
    cell_values: np.ndarray
    #: Per fine cell of each block (block-major, then row-major, int32): a grid row, -1 or -2 - list.
    block_values: np.ndarray
    #: Candidate lists (int32 rows): a header (count, 0, 0), then (grid row, first edge, end edge).
    list_entries: np.ndarray
    #: (ax, ay, bx, by) of every edge in the strip of every row it reaches, strip by strip.
    strip_segments: np.ndarray
    #: H3 cover by grid: grid ``g``'s cells are ``cover_cells[cover_offsets[g]:cover_offsets[g+1]]``.
    cover_offsets: np.ndarray
    cover_cells: np.ndarray
    cover_interior: np.ndarray
    #: H3 cover by cell: sorted unique ``cell_ids``; cell ``k``'s grids: ``cell_rows[cell_offsets[k]:…]``.
    cell_ids: np.ndarray
    cell_offsets: np.ndarray
    cell_rows: np.ndarray
    #: How the build went: seconds per stage and sizes (informational).
    stats: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ use

    def locate_args(self) -> tuple:
        """The arguments of :func:`citygrid.kernels.locate.locate_points` between the points and the outputs."""
        return (self.cell_box, self.nx, self.ny, self.shift) + tuple(getattr(self, n) for n in LOCATE_ARRAYS)

    @property
    def nbytes(self) -> int:
        """Bytes of every array of the index (the layer's own buffers not included)."""
        return int(sum(getattr(self, name).nbytes for name in ARRAY_NAMES))

    def describe(self) -> dict:
        """Sizes and build figures, for reports."""
        side = 1 << self.shift
        return {
            "top_cells": f"{self.nx} x {self.ny}",
            "top_cell_deg": side / float(self.cell_box[4]),
            "blocks": int(len(self.block_values) // (side * side)),
            "block_side": side,
            "strip_edges": int(len(self.strip_segments)),
            "h3_resolution": self.h3_resolution,
            "h3_cells": int(len(self.cell_ids)),
            "locate_nbytes": int(sum(getattr(self, n).nbytes for n in LOCATE_ARRAYS)),
            "nbytes": self.nbytes,
            **self.stats,
        }

    # ------------------------------------------------------------------ plain arrays (Ray object store)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every array by name (flat) plus ``meta`` (JSON of the scalars, uint8): what :meth:`from_arrays` takes."""
        arrays = {name: getattr(self, name) for name in ARRAY_NAMES}
        for name in _WIDTHS:
            arrays[name] = arrays[name].reshape(-1)
        arrays["cover_interior"] = self.cover_interior.view(np.uint8)
        arrays["meta"] = np.frombuffer(json.dumps(self._meta()).encode(), dtype=np.uint8)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "GridIndex":
        """Rebuild an index around the arrays of :meth:`to_arrays` without copying them."""
        meta = json.loads(bytes(np.asarray(arrays["meta"])).decode())
        return cls._from_parts(meta, {name: arrays[name] for name in ARRAY_NAMES})

    def _meta(self) -> dict:
        return {
            "format": INDEX_FORMAT,
            "format_version": INDEX_FORMAT_VERSION,
            "content_hash": self.content_hash,
            "nx": self.nx,
            "ny": self.ny,
            "shift": self.shift,
            "h3_resolution": self.h3_resolution,
            "stats": self.stats,
        }

    @classmethod
    def _from_parts(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "GridIndex":
        check_format(meta, INDEX_FORMAT, INDEX_FORMAT_VERSION, what="the saved index", kind="index",
                     fix="upgrade CityGrid or delete the index directory to rebuild it")
        arrays = {name: _frozen(np.asarray(a)) for name, a in arrays.items()}
        for name, width in _WIDTHS.items():
            arrays[name] = arrays[name].reshape(-1, width)
        arrays["cover_interior"] = arrays["cover_interior"].view(bool)
        return cls(
            content_hash=meta["content_hash"],
            nx=int(meta["nx"]),
            ny=int(meta["ny"]),
            shift=int(meta["shift"]),
            h3_resolution=int(meta["h3_resolution"]),
            stats=meta.get("stats", {}),
            **arrays,
        )


# ---------------------------------------------------------------------- build


def build_index(
    layer: GridLayer,
    *,
    h3_resolution: int | None = None,
    cells_per_grid: float = CELLS_PER_GRID,
    block_shift: int = BLOCK_SHIFT,
    strip_shift: int = STRIP_SHIFT,
) -> GridIndex:
    """Build the index of ``layer`` from its buffers (see the module docstring for the design).

    ``h3_resolution`` of the cover defaults to :data:`DEFAULT_H3_RESOLUTION`, or the finest
    resolution whose cover stays under :data:`MAX_COVER_CELLS` cells for a layer of very large grids.
    """
    h3_resolution = _cover_resolution(layer, h3_resolution)
    if not cells_per_grid > 0:
        raise InvalidInput(f"cells_per_grid must be positive, got {cells_per_grid}")
    if not 0 <= block_shift <= 5:
        raise InvalidInput(f"block_shift must be 0 to 5 (blocks of 1 to 32 cells a side), got {block_shift}")
    strip_shift = min(strip_shift, block_shift)
    started = time.perf_counter()
    geometry = _Geometry(layer)
    nx, ny, top_box = _top_cells(geometry, cells_per_grid)
    table = _CellTable(geometry, nx, ny, top_box, block_shift, strip_shift)
    strips = table.strips()
    stats: dict[str, float | int] = {"strips_s": round(time.perf_counter() - started, 3)}

    tick = time.perf_counter()
    cells = table.build(strips)
    stats["cells_s"] = round(time.perf_counter() - tick, 3)

    tick = time.perf_counter()
    cover = build_h3_cover(layer, h3_resolution)
    stats["h3_cover_s"] = round(time.perf_counter() - tick, 3)
    stats["build_s"] = round(time.perf_counter() - started, 3)

    arrays = {"cell_box": table.fine_box, **cells, "strip_segments": strips.segments, **cover}
    return GridIndex(
        content_hash=layer.content_hash,
        nx=nx,
        ny=ny,
        shift=block_shift,
        h3_resolution=h3_resolution,
        stats=stats,
        **{name: _frozen(a) for name, a in arrays.items()},
    )


class _Geometry:
    """The layer's buffers as the build kernels take them, with part boxes and each part's grid."""

    def __init__(self, layer: GridLayer):
        if len(layer.x) >= np.iinfo(np.int32).max:
            raise InvalidInput(f"the layer has {len(layer.x):,} vertices; the index holds at most 2**31 - 2")
        self.x, self.y = _frozen(layer.x), _frozen(layer.y)
        self.ring_offsets, self.part_offsets = layer.ring_offsets, layer.part_offsets
        self.grid_offsets = layer.grid_offsets
        self.n_grids = layer.n_grids
        self.n_parts = len(layer.part_offsets) - 1
        self.part_box = np.empty((self.n_parts, 4))
        kernels.part_boxes(self.x, self.y, self.ring_offsets, self.part_offsets, self.part_box)
        self.part_grid = np.repeat(np.arange(self.n_grids, dtype=np.int64), np.diff(self.grid_offsets))


def _top_cells(geometry: _Geometry, cells_per_grid: float) -> tuple[int, int, np.ndarray]:
    """Square top cells sized for about ``cells_per_grid`` cells per grid: ``(nx, ny, box)`` with
    ``box = (x0, y0, x1, y1, top cells per degree in x, in y)``."""
    boxes = geometry.part_box[geometry.part_box[:, 0] <= geometry.part_box[:, 2]]
    if len(boxes) == 0:
        return 1, 1, np.array([0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    xmin, ymin = boxes[:, 0].min(), boxes[:, 1].min()
    xmax, ymax = boxes[:, 2].max(), boxes[:, 3].max()
    # The grids' typical size (the median area of their boxes) sets the cell size, so a district that
    # fills half of its bounding box gets as many cells per grid as a square one.
    valid = geometry.part_box[:, 0] <= geometry.part_box[:, 2]
    grid_box = np.full((geometry.n_grids, 4), np.nan)
    grids = geometry.part_grid[valid]
    np.fmin.at(grid_box[:, 0], grids, boxes[:, 0])
    np.fmin.at(grid_box[:, 1], grids, boxes[:, 1])
    np.fmax.at(grid_box[:, 2], grids, boxes[:, 2])
    np.fmax.at(grid_box[:, 3], grids, boxes[:, 3])
    typical = float(np.nanmedian((grid_box[:, 2] - grid_box[:, 0]) * (grid_box[:, 3] - grid_box[:, 1])))
    span = max(xmax - xmin, ymax - ymin, 1e-9)
    size = math.sqrt(typical / cells_per_grid) if typical > 0 else span
    size = max(size, span / 65536.0, math.sqrt((xmax - xmin + 1e-9) * (ymax - ymin + 1e-9) / MAX_CELLS))
    nx = int(math.ceil((xmax - xmin) / size)) + 1
    ny = int(math.ceil((ymax - ymin) / size)) + 1
    x0, y0 = xmin - size / 2, ymin - size / 2
    return nx, ny, np.array([x0, y0, x0 + nx * size, y0 + ny * size, 1.0 / size, 1.0 / size])


@dataclass
class _Strips:
    """Per part: its first row and row count, where its strips start; and every strip's edges."""

    first_row: np.ndarray
    n_rows: np.ndarray
    first_strip: np.ndarray
    offsets: np.ndarray
    segments: np.ndarray
    #: max(ax, bx) of every segment (decreasing within a strip).
    right_end: np.ndarray

    def runs(self, parts: np.ndarray, rows: np.ndarray, left: np.ndarray):
        """For (part, strip row, cell's left side) triples: which exist (the part spans the row), and
        their edge runs ``[lo, hi)``: the edges of the part's strip reaching ``left`` or further right."""
        exists = (rows >= self.first_row[parts]) & (rows < self.first_row[parts] + self.n_rows[parts])
        strip = np.where(exists, self.first_strip[parts] + rows - self.first_row[parts], 0)
        lo, hi = self.offsets[strip], self.offsets[strip + 1]
        return exists, lo, kernels.trim_runs(self.right_end, lo, hi, left)


class _CellTable:
    """Builds the two-level cell table of one layer (see the module docstring)."""

    def __init__(self, geometry: _Geometry, nx: int, ny: int, top_box: np.ndarray, shift: int, strip_shift: int):
        self.g = geometry
        self.nx, self.ny, self.shift = nx, ny, shift
        self.side = 1 << shift
        self.fine_box = np.array([*top_box[:4], top_box[4] * self.side, top_box[5] * self.side])
        self.row_box = np.array([self.fine_box[1], self.fine_box[5]])
        # Strip rows: fine row j lies in strip row j >> row_shift.
        self.row_shift = shift - strip_shift
        self.n_strip_rows = ny << strip_shift

    def strips(self) -> _Strips:
        g = self.g
        first_row = np.empty(g.n_parts, dtype=np.int64)
        n_rows = np.empty(g.n_parts, dtype=np.int64)
        kernels.part_rows(g.part_box, self.row_box, self.n_strip_rows, self.row_shift, first_row, n_rows)
        first_strip = np.zeros(g.n_parts + 1, dtype=np.int64)
        np.cumsum(n_rows, out=first_strip[1:])
        per_strip = np.zeros(int(first_strip[-1]), dtype=np.int64)
        kernels.count_strip_edges(g.y, g.ring_offsets, g.part_offsets, self.row_box, self.n_strip_rows,
                                  self.row_shift, first_row, first_strip, per_strip)
        offsets = np.zeros(len(per_strip) + 1, dtype=np.int64)
        np.cumsum(per_strip, out=offsets[1:])
        if offsets[-1] >= np.iinfo(np.int32).max:
            raise InvalidInput("the layer is too detailed for the index (over 2**31 strip edges): split it")
        segments = np.empty((int(offsets[-1]), 4))
        kernels.fill_strip_segments(g.x, g.y, g.ring_offsets, g.part_offsets, self.row_box, self.n_strip_rows,
                                    self.row_shift, first_row, first_strip, offsets, segments)
        # Within a strip, edges go by decreasing right end, so that a cell's candidate entry can stop
        # at the last edge reaching the cell's left side: edges wholly left of a point cannot cross
        # its ray to +x nor hold it.
        right_end = np.maximum(segments[:, 0], segments[:, 2])
        strip_of_edge = np.repeat(np.arange(len(per_strip)), per_strip)
        order = np.lexsort((-right_end, strip_of_edge))
        return _Strips(first_row, n_rows, first_strip, offsets, _frozen(segments[order]), _frozen(right_end[order]))

    def build(self, strips: _Strips) -> dict[str, np.ndarray]:
        g, nx, ny, shift, side = self.g, self.nx, self.ny, self.shift, self.side
        fnx = nx * side
        locate = _coverage_locator(g, self.fine_box, self.n_strip_rows, self.row_shift, strips)

        # 1. Which fine cells each part's edges come near: (fine cell, part) touches. A top cell
        # holding a touched fine cell is split into a block.
        per_part = np.zeros(g.n_parts, dtype=np.int64)
        margin_x, margin_y = CELL_MARGIN / self.fine_box[4], CELL_MARGIN / self.fine_box[5]
        kernels.count_edge_cells(g.x, g.y, g.ring_offsets, g.part_offsets, self.fine_box, fnx, ny * side, margin_x,
                                 margin_y, per_part)
        starts = np.zeros(g.n_parts + 1, dtype=np.int64)
        np.cumsum(per_part, out=starts[1:])
        touch_fine = np.empty(int(starts[-1]), dtype=np.int64)
        touch_parts = np.empty(int(starts[-1]), dtype=np.int64)
        kernels.fill_edge_cells(g.x, g.y, g.ring_offsets, g.part_offsets, self.fine_box, fnx, ny * side, margin_x,
                                margin_y, starts, touch_fine, touch_parts)
        touch_i, touch_j = touch_fine % fnx, touch_fine // fnx
        touch_top = (touch_j >> shift) * nx + (touch_i >> shift)
        top_crossed = np.zeros(nx * ny, dtype=bool)
        top_crossed[touch_top] = True

        # 2. Top cells no edge comes near: the coverage of one point holds throughout.
        top = np.arange(nx * ny)
        top_row, top_status = _run_coverage(top_crossed, nx, lambda at: locate(
            ((top[at] % nx) << shift) + side // 2, ((top[at] // nx) << shift) + side // 2))
        split = top_crossed | (top_status == SHARED_BOUNDARY)
        cell_values = np.where(top_status == OUTSIDE, -1, top_row).astype(np.int32)
        blocks = np.flatnonzero(split)
        if len(blocks) >= (np.iinfo(np.int32).max - 2) >> (2 * shift):
            raise InvalidInput("the layer is too detailed for the cell table: split it")
        cell_values[blocks] = -2 - np.arange(len(blocks), dtype=np.int32)

        # 3. The fine cells of every block: block by block, row-major inside a block.
        slots = np.arange(len(blocks) << (2 * shift), dtype=np.int64)
        slot_top = blocks[slots >> (2 * shift)]
        slot_i = ((slot_top % nx) << shift) + (slots & (side - 1))
        slot_j = ((slot_top // nx) << shift) + ((slots >> shift) & (side - 1))
        touch_slot = ((-2 - cell_values[touch_top]).astype(np.int64) << (2 * shift)) \
            + ((touch_j & (side - 1)) << shift) + (touch_i & (side - 1))
        fine_crossed = np.zeros(len(slots), dtype=bool)
        fine_crossed[touch_slot] = True
        fine_row, fine_status = _run_coverage(fine_crossed, side, lambda at: locate(slot_i[at], slot_j[at]),
                                              evaluate_crossed=True)

        # 4. Candidate lists of fine cells: the parts whose edges come near, every part of the grid
        # covering a crossed cell's centre, and where several grids cover a centre (overlapping grids,
        # rare) every part whose box comes near the cell: a superset is fine.
        one = np.flatnonzero(fine_crossed & (fine_status == INSIDE))
        one_slots, one_parts = _expand_ranges(one, g.grid_offsets[fine_row[one]], g.grid_offsets[fine_row[one] + 1])
        many = np.flatnonzero(fine_status == SHARED_BOUNDARY)
        many_slots, many_parts = _parts_near_cells(many, slot_i[many], slot_j[many], self.fine_box, g.part_box)
        pair_slots = np.concatenate([touch_slot, one_slots, many_slots])
        pair_parts = np.concatenate([touch_parts, one_parts, many_parts])
        left = self.fine_box[0] + (slot_i[pair_slots] - CELL_MARGIN) / self.fine_box[4]
        list_slots, list_starts, list_entries = _candidate_lists(
            pair_slots, pair_parts, slot_j[pair_slots] >> self.row_shift, left, g.part_grid, strips)
        block_values = np.where(fine_status == OUTSIDE, -1, fine_row).astype(np.int32)
        block_values[list_slots] = -2 - list_starts.astype(np.int32)
        return {"cell_values": cell_values, "block_values": block_values, "list_entries": list_entries}


def _candidate_lists(slots, parts, rows, left, part_grid, strips: _Strips):
    """Group (cell, part) pairs into candidate lists: the cells that have one, where each list starts in
    the entries, and the entries (headers and ``(grid, first edge, end edge)`` rows, by grid then part).
    ``rows`` are the cells' strip rows and ``left`` their left sides (less the margin). Parts that do
    not span the cell's row cannot cover it and are left out."""
    exists, lo, hi = strips.runs(parts, rows, left)
    slots, parts, lo, hi = slots[exists], parts[exists], lo[exists], hi[exists]
    order = np.lexsort((parts, part_grid[parts], slots))
    slots, parts, lo, hi = slots[order], parts[order], lo[order], hi[order]
    keep = np.ones(len(slots), dtype=bool)
    keep[1:] = (slots[1:] != slots[:-1]) | (parts[1:] != parts[:-1])
    slots, parts, lo, hi = slots[keep], parts[keep], lo[keep], hi[keep]
    list_slots, first, counts = np.unique(slots, return_index=True, return_counts=True)
    starts = first + np.arange(len(list_slots))  # each list is preceded by its header row
    if len(slots) + len(list_slots) >= np.iinfo(np.int32).max - 2:
        raise InvalidInput("the layer is too detailed for the cell table: split it")
    entries = np.zeros((len(slots) + len(list_slots), 3), dtype=np.int32)
    entries[starts, 0] = counts
    rows_at = np.arange(len(slots)) + np.repeat(np.arange(1, len(list_slots) + 1), counts)
    entries[rows_at, 0] = part_grid[parts]
    entries[rows_at, 1] = lo
    entries[rows_at, 2] = hi
    return list_slots, starts, entries


def _coverage_locator(g: _Geometry, fine_box, n_rows, row_shift, strips: _Strips):
    """A function ``(fine i, fine j) -> (lowest covering row, status)`` over arrays of fine cells, at
    each cell's centre, for the build.

    It is the query kernel itself, over a table with the strip rows of the index and coarse columns in
    which every cell lists the parts whose boxes overlap it: the build's coverage decisions are the
    queries' decisions.
    """
    side = 1 << row_shift
    columns = max(1, int(math.sqrt(g.n_parts)))
    box = np.array([*fine_box[:4], columns * side / (fine_box[2] - fine_box[0]), fine_box[5]])
    col_lo = kernels.strips_of(g.part_box[:, 0], box[0], box[4] / side, columns)
    col_hi = kernels.strips_of(g.part_box[:, 2], box[0], box[4] / side, columns)
    valid = g.part_box[:, 0] <= g.part_box[:, 2]
    part_ids = np.flatnonzero(valid)
    # (part, column) for every column each part spans, then (part, column, row) for each of its rows.
    col_parts, cols = _expand_ranges(part_ids, col_lo[valid], col_hi[valid] + 1)
    which, pair_rows = _expand_ranges(np.arange(len(col_parts)), strips.first_row[col_parts],
                                      strips.first_row[col_parts] + strips.n_rows[col_parts])
    pair_parts, pair_cols = col_parts[which], cols[which]
    buckets = pair_rows * columns + pair_cols
    left = box[0] + (pair_cols * side - CELL_MARGIN) / box[4]
    list_buckets, list_starts, entries = _candidate_lists(buckets, pair_parts, pair_rows, left, g.part_grid, strips)
    values = -2 - np.arange(columns * n_rows, dtype=np.int32)  # every bucket is a block of equal fine cells
    block_values = np.full((columns * n_rows, side * side), -1, dtype=np.int32)
    block_values[list_buckets] = (-2 - list_starts.astype(np.int32))[:, None]
    tables = (_frozen(box), columns, n_rows, row_shift, _frozen(values), _frozen(block_values.reshape(-1)),
              _frozen(entries), strips.segments)

    def locate(fine_i: np.ndarray, fine_j: np.ndarray):
        px = fine_box[0] + (fine_i + 0.5) / fine_box[4]
        py = fine_box[1] + (fine_j + 0.5) / fine_box[5]
        rows = np.empty(len(px), dtype=np.int32)
        status = np.empty(len(px), dtype=np.uint8)
        locate_points(_frozen(px), _frozen(py), *tables, rows, status)
        return rows, status

    return locate


def _run_coverage(crossed: np.ndarray, row_length: int, locate, evaluate_crossed: bool = False):
    """Coverage (lowest row, status) of every cell of a row-major table of ``row_length`` cells a row.

    A cell no edge comes near has its centre's coverage throughout, and so has an edge-free
    neighbour to its right (an edge crossing their common side would touch both): only the first cell
    of each edge-free run in a row is located (and, with ``evaluate_crossed``, every crossed cell,
    whose centre's coverage the candidate lists need); the rest of a run copies its first cell.
    """
    n = len(crossed)
    if n == 0:
        return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.uint8)
    run_head = np.zeros(n, dtype=bool)
    run_head[::row_length] = True
    run_head[1:] |= crossed[:-1]
    evaluate = ~crossed & run_head
    if evaluate_crossed:
        evaluate |= crossed
    at = np.flatnonzero(evaluate)
    rows, status = locate(at)
    if len(at) == 0:
        return np.full(n, -1, dtype=np.int32), np.full(n, OUTSIDE, dtype=np.uint8)
    head = np.maximum.accumulate(np.where(evaluate, np.arange(n), 0))
    slot = np.searchsorted(at, head)
    return rows[slot], status[slot]


def _expand_ranges(keys: np.ndarray, starts: np.ndarray, stops: np.ndarray):
    """``(key, value)`` for every value in ``range(start, stop)`` of each key, flattened."""
    lengths = np.maximum(stops - starts, 0)
    before = np.cumsum(lengths) - lengths
    values = np.repeat(starts - before, lengths) + np.arange(int(lengths.sum()))
    return np.repeat(keys, lengths), values.astype(np.int64)


def _parts_near_cells(slots, cell_i, cell_j, fine_box, part_box):
    """(slot, part) for every part whose box comes near each given fine cell (within the margin)."""
    if len(slots) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    size_x, size_y = 1.0 / fine_box[4], 1.0 / fine_box[5]
    x0 = fine_box[0] + cell_i * size_x - CELL_MARGIN * size_x
    y0 = fine_box[1] + cell_j * size_y - CELL_MARGIN * size_y
    x1 = x0 + size_x * (1 + 2 * CELL_MARGIN)
    y1 = y0 + size_y * (1 + 2 * CELL_MARGIN)
    out_slots, out_parts = [], []
    for slot, a, b, c, d in zip(slots, x0, y0, x1, y1):
        near = np.flatnonzero((part_box[:, 0] <= c) & (part_box[:, 2] >= a) & (part_box[:, 1] <= d)
                              & (part_box[:, 3] >= b))
        out_slots.append(np.full(len(near), slot, dtype=np.int64))
        out_parts.append(near.astype(np.int64))
    return np.concatenate(out_slots), np.concatenate(out_parts)


# ---------------------------------------------------------------------- save / load


def index_dir(version_dir: str | os.PathLike) -> Path:
    return Path(version_dir) / INDEX_DIR


def save_index(index: GridIndex, version_dir: str | os.PathLike) -> Path:
    """Write ``index`` under ``<version_dir>/index/`` (atomically: complete or absent) and return it.

    An index already there for the same layer content is kept as it is.
    """
    target = index_dir(version_dir)
    if (target / MANIFEST).is_file():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=".index.", dir=version_dir))
    try:
        files = {}
        for name, array in index.to_arrays().items():
            if name != "meta":
                files[f"{name}.arrow"] = write_arrays(tmp / f"{name}.arrow", {name: array})
        write_json(tmp / MANIFEST, {**index._meta(), "files": files})
        fsync_path(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / MANIFEST).is_file():  # another process won the race: keep its index
                raise
        fsync_path(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_index(version_dir: str | os.PathLike, layer: GridLayer | None = None) -> GridIndex:
    """Memory-map the index saved under ``<version_dir>/index/``; with ``layer``, check it belongs to it."""
    path = index_dir(version_dir)
    meta = read_json(path / MANIFEST, missing=NotFound(f"no index saved at {path}"))
    if layer is not None and meta.get("content_hash") != layer.content_hash:
        raise InvalidInput(
            f"the index at {path} was built for other content than layer {layer.version_id}; delete it to rebuild"
        )
    arrays = {name: read_array(path / f"{name}.arrow", name) for name in ARRAY_NAMES}
    return GridIndex._from_parts(meta, arrays)


def _frozen(array: np.ndarray) -> np.ndarray:
    """A read-only, C-contiguous view (one compiled kernel signature whether built or mapped)."""
    array = np.ascontiguousarray(array)
    if array.flags.writeable:
        array = array.view()
        array.flags.writeable = False
    return array
