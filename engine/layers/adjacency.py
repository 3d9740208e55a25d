"""Which grids are neighbours: two grids are adjacent when they share an edge of positive length.

Dispatch falls back to the workers of neighbouring grids when a grid's own workers are busy or off
duty, and rebalancing looks ``k`` hops out. Adjacency comes from the geometry of a layer version:
candidate pairs from an STRtree (bounding boxes that meet), then one vectorised DE-9IM ``relate`` per
pair: neighbours when their boundaries meet in a line (``B∩B`` of dimension 1) or, in a layer with
overlaps, their interiors meet. Grids touching at a corner only are not neighbours.

It is stored as CSR arrays (``offsets``, ``rows``) and cached per layer version: in memory by content
hash, and for a saved version directory also as ``adjacency/neighbours.arrow`` inside it (a derived
artefact, written atomically, checked against the version's content hash when read).

>>> import shapely
>>> from citygrid.engine.layers.layer import GridLayer
>>> boxes = [shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), shapely.box(2, 1, 3, 2)]
>>> adj = compute_adjacency(GridLayer.from_geometries(boxes, {"grid_code": ["A", "B", "C"]}))
>>> adj.neighbours(0).tolist(), adj.neighbours(2).tolist()  # B and C touch at a corner only
([1], [])
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import shapely

from citygrid.engine.errors import InvalidInput
from citygrid.engine.layers.layer import GridLayer

CACHE_DIR = "adjacency"
CACHE_FILE = "neighbours.arrow"
_MEMORY_CACHE_SIZE = 8


@dataclass(frozen=True, eq=False)
class Adjacency:
    """Neighbours of every grid row: ``rows[offsets[g]:offsets[g+1]]``, sorted ascending."""

    offsets: np.ndarray
    rows: np.ndarray
    content_hash: str = ""

    @property
    def n_grids(self) -> int:
        return len(self.offsets) - 1

    def neighbours(self, row: int) -> np.ndarray:
        return self.rows[self.offsets[row] : self.offsets[row + 1]]

    def degree(self) -> np.ndarray:
        return np.diff(self.offsets)

    def rings(self, max_hops: int) -> tuple[np.ndarray, np.ndarray]:
        """Grids by hop distance: for grid ``g`` and hop ``h`` (0 … ``max_hops``), the grids exactly
        ``h`` steps away are ``ring_rows[ring_offsets[g*(k+1)+h] : ring_offsets[g*(k+1)+h+1]]``,
        sorted ascending (hop 0 is ``g`` itself)."""
        if max_hops < 0:
            raise InvalidInput("max_hops must be >= 0")
        tiers = max_hops + 1
        counts = np.zeros(self.n_grids * tiers, dtype=np.int64)
        chunks: list[np.ndarray] = []
        for g in range(self.n_grids):
            seen = {g}
            frontier = [g]
            for h in range(tiers):
                if h:
                    nxt = set()
                    for f in frontier:
                        nxt.update(self.rows[self.offsets[f] : self.offsets[f + 1]].tolist())
                    nxt -= seen
                    seen |= nxt
                    frontier = sorted(nxt)
                counts[g * tiers + h] = len(frontier)
                chunks.append(np.asarray(frontier, dtype=np.int32))
        ring_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        ring_rows = np.concatenate(chunks).astype(np.int32) if chunks else np.empty(0, np.int32)
        return ring_offsets, ring_rows


def compute_adjacency(layer: GridLayer) -> Adjacency:
    """Adjacency of a layer's grids from their geometry (no cache)."""
    n = layer.n_grids
    geoms = layer.geometries()
    if n == 0:
        return Adjacency(np.zeros(1, np.int64), np.empty(0, np.int32), layer.content_hash)
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    matrices = shapely.relate(geoms[left], geoms[right]) if len(left) else np.empty(0, dtype=object)
    touching = np.fromiter(
        (m[4] == "1" or m[0] == "2" for m in matrices), dtype=bool, count=len(matrices)
    )
    a = np.concatenate([left[touching], right[touching]])
    b = np.concatenate([right[touching], left[touching]])
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(a, minlength=n))]).astype(np.int64)
    return Adjacency(offsets, b.astype(np.int32), layer.content_hash)


_cache: OrderedDict[str, Adjacency] = OrderedDict()
_cache_lock = threading.Lock()


def adjacency_of(layer: GridLayer) -> Adjacency:
    """The adjacency of a layer version, computed once per content hash (and, for a saved version,
    once per version directory across processes)."""
    key = layer.content_hash
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    path = _cache_path(layer)
    adjacency = _read_cached(path, key) if path is not None else None
    if adjacency is None:
        adjacency = compute_adjacency(layer)
        if path is not None:
            _write_cached(path, adjacency)
    with _cache_lock:
        _cache[key] = adjacency
        while len(_cache) > _MEMORY_CACHE_SIZE:
            _cache.popitem(last=False)
    return adjacency


def _cache_path(layer: GridLayer) -> Path | None:
    directory = layer.extra.get("path") if layer.extra else None
    return Path(directory) / CACHE_DIR / CACHE_FILE if directory else None


def _read_cached(path: Path, content_hash: str) -> Adjacency | None:
    if not path.is_file():
        return None
    with pa.memory_map(str(path), "r") as source:
        table = pa.ipc.open_file(source).read_all()
    meta = table.schema.metadata or {}
    if meta.get(b"content_hash", b"").decode() != content_hash:
        return None
    n_grids = int(meta[b"n_grids"])
    grids = table.column("grid").to_numpy()
    offsets = np.concatenate([[0], np.cumsum(np.bincount(grids, minlength=n_grids))]).astype(np.int64)
    return Adjacency(offsets, table.column("neighbour").to_numpy().astype(np.int32), content_hash)


def _write_cached(path: Path, adjacency: Adjacency) -> None:
    """Write the cache file atomically; a read-only version directory just means no file cache."""
    grids = np.repeat(np.arange(adjacency.n_grids, dtype=np.int32), adjacency.degree())
    table = pa.table({"grid": grids, "neighbour": adjacency.rows})
    table = table.replace_schema_metadata(
        {"content_hash": adjacency.content_hash, "n_grids": str(adjacency.n_grids)}
    )
    try:
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".neighbours.", dir=path.parent)
        os.close(fd)
        with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(tmp, path)
    except PermissionError:
        return
