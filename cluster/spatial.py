"""Splitting points spatially: a 16-bit Z-order key per point, and key ranges of equal weight.

A re-indexing job cuts its input into tasks by where the points are, not by where they sit in the
files: every point gets the Morton (Z-order) key of its cell in a 256 x 256 frame over the layers'
bounds, the job counts points per key, and the key line is cut into contiguous ranges holding the same
number of points. A task then holds one compact region (its points touch few grids and few index
cells, so the index stays in cache), the tasks are balanced whatever the density, and sorting by the
key inside a task is a radix sort (16-bit keys).

>>> frame = KeyFrame(0.0, 0.0, 256.0, 256.0)
>>> frame.keys(np.array([0.5, 1.5, 0.5, 255.9, np.nan]), np.array([0.5, 0.5, 1.5, 255.9, 1.0])).tolist()
[0, 1, 2, 65535, 65535]
>>> balanced_boundaries(np.bincount([1, 1, 2, 3, 3, 3, 9, 9], minlength=N_KEYS), 2).tolist()
[0, 3, 65536]
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

#: Cells per axis of the key frame (8 bits), and the number of distinct keys (16 bits).
CELLS_PER_AXIS = 256
N_KEYS = CELLS_PER_AXIS * CELLS_PER_AXIS
#: The key of a point with a NaN or infinite coordinate (sorted last, with the frame's corner cell).
INVALID_KEY = N_KEYS - 1


@dataclass(frozen=True)
class KeyFrame:
    """The lng/lat box the key cells divide (points outside it take the nearest edge cell)."""

    lng0: float
    lat0: float
    lng1: float
    lat1: float

    @classmethod
    def around(cls, *bounds: tuple[float, float, float, float]) -> "KeyFrame":
        """The box around every ``(min lng, min lat, max lng, max lat)`` given (layer bounds)."""
        finite = [b for b in bounds if all(math.isfinite(v) for v in b)]
        if not finite:
            return cls(-180.0, -90.0, 180.0, 90.0)
        lng0, lat0 = min(b[0] for b in finite), min(b[1] for b in finite)
        lng1, lat1 = max(b[2] for b in finite), max(b[3] for b in finite)
        if lng1 <= lng0:
            lng1 = lng0 + 1e-9
        if lat1 <= lat0:
            lat1 = lat0 + 1e-9
        return cls(lng0, lat0, lng1, lat1)

    def keys(self, lng: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """The uint16 Morton key of each point's cell (:data:`INVALID_KEY` for a non-finite one)."""
        lng = np.asarray(lng, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        valid = np.isfinite(lng)
        valid &= np.isfinite(lat)
        invalid = None if valid.all() else ~valid
        cx = _cells(lng, self.lng0, self.lng1, invalid)
        cy = _cells(lat, self.lat0, self.lat1, invalid)
        keys = _spread(cx)
        keys |= _spread(cy) << np.uint16(1)
        if invalid is not None:
            keys[invalid] = INVALID_KEY
        return keys

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "KeyFrame":
        return cls(**{k: float(values[k]) for k in ("lng0", "lat0", "lng1", "lat1")})


def key_histogram(keys: np.ndarray) -> np.ndarray:
    """Points per key (int64, :data:`N_KEYS` long)."""
    return np.bincount(keys, minlength=N_KEYS).astype(np.int64, copy=False)


def balanced_boundaries(histogram: np.ndarray, n_tasks: int) -> np.ndarray:
    """``n_tasks + 1`` key boundaries: task ``k`` takes the keys ``[b[k], b[k+1])``, and each task
    holds as near ``total / n_tasks`` points as whole keys allow (a task can be empty only when one
    key holds more than a task's share)."""
    if n_tasks < 1:
        raise ValueError("n_tasks must be at least 1")
    cumulative = np.cumsum(histogram)
    total = int(cumulative[-1]) if len(cumulative) else 0
    targets = np.array([total * k / n_tasks for k in range(1, n_tasks)], dtype=np.float64)
    # The first key whose running count reaches the target; cut before or after it, whichever lands
    # nearer the target.
    reach = np.searchsorted(cumulative, targets, side="left")
    before = np.where(reach > 0, cumulative[np.maximum(reach - 1, 0)], 0)
    after = cumulative[np.minimum(reach, len(cumulative) - 1)]
    inner = np.where(targets - before < after - targets, reach, reach + 1)
    inner = np.maximum.accumulate(np.minimum(inner, N_KEYS))
    return np.concatenate([[0], inner, [N_KEYS]]).astype(np.int64)


def task_of_keys(keys: np.ndarray, boundaries: np.ndarray) -> np.ndarray:
    """The task number of each key under ``boundaries``."""
    return (np.searchsorted(boundaries, keys, side="right") - 1).astype(np.int32)


def choose_task_count(n_rows: int, task_rows: int, parallelism: int) -> int:
    """How many spatial tasks for ``n_rows`` points: about ``task_rows`` each, rounded up to a whole
    number of waves over ``parallelism`` workers as long as tasks keep at least half that size."""
    if task_rows < 1:
        raise ValueError("task_rows must be at least 1")
    n_tasks = max(1, math.ceil(n_rows / task_rows))
    balanced = math.ceil(n_tasks / max(parallelism, 1)) * max(parallelism, 1)
    if n_rows / balanced >= task_rows / 2:
        n_tasks = balanced
    return n_tasks


def _cells(v: np.ndarray, v0: float, v1: float, invalid: np.ndarray | None) -> np.ndarray:
    """The cell column or row of each coordinate (in place on one temporary: this runs on every row)."""
    scaled = np.subtract(v, v0)
    scaled *= CELLS_PER_AXIS / (v1 - v0)
    np.clip(scaled, 0, CELLS_PER_AXIS - 1, out=scaled)
    if invalid is not None:
        scaled[invalid] = 0  # NaN has no cell (its key is replaced after)
    return scaled.astype(np.uint16)


def _spread(c: np.ndarray) -> np.ndarray:
    """Interleave zeros between the 8 low bits: ``abcdefgh`` -> ``0a0b0c0d0e0f0g0h``."""
    c = (c | (c << np.uint16(4))) & np.uint16(0x0F0F)
    c = (c | (c << np.uint16(2))) & np.uint16(0x3333)
    c = (c | (c << np.uint16(1))) & np.uint16(0x5555)
    return c
