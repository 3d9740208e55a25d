"""A layer version in the object store: put once, read zero-copy by every task, no per-task copy.

The figures: the object store grows by the placed bytes once and not again however many tasks run;
in a worker every array of the layer and its index lies in the object store's shared mapping
(``/dev/shm/plasma…``), read-only and not owned by the array; a worker's private memory does not grow
with the number of tasks it runs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import ray

from citygrid.cluster.placement import PlacedLayer, attach, place_layer
from citygrid.engine.layers.assignment import Assigner

# Ray's workers cannot import this test module: ship the probe task by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc")


def object_store_used() -> float:
    return ray.cluster_resources()["object_store_memory"] - ray.available_resources().get("object_store_memory", 0)


def wait_for_store_change(before: float, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    used = object_store_used()
    while used == before and time.monotonic() < deadline:
        time.sleep(0.1)
        used = object_store_used()
    return used


def private_bytes() -> int:
    """This process's unique set size: pages no other process shares (Private_Clean + Private_Dirty)."""
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) * 1024
    return fields["Private_Clean"] + fields["Private_Dirty"]


def mapping_of(address: int) -> str:
    """The file behind the memory mapping that holds ``address``."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split()
        lo, hi = (int(v, 16) for v in parts[0].split("-"))
        if lo <= address < hi:
            return parts[5] if len(parts) > 5 else "[anonymous]"
    return "[unmapped]"


@ray.remote
def probe(placed: PlacedLayer) -> dict:
    assigner = attach(placed)
    arrays = {f"layer.{k}": v for k, v in assigner.layer.buffers().items()}
    arrays.update({f"index.{k}": v for k, v in assigner.index.to_arrays().items() if k != "meta" and len(v)})
    # Use it, so the pages are touched as a task would touch them.
    assigner.assign(np.array([-73.95, -73.9]), np.array([40.75, 40.7]))
    return {
        "pid": os.getpid(),
        "private": private_bytes(),
        "arrays": {
            name: (mapping_of(a.ctypes.data), bool(a.flags.owndata), bool(a.flags.writeable))
            for name, a in arrays.items()
        },
    }


def test_layer_is_placed_once_and_read_zero_copy(ray_session, tracts):
    assigner = Assigner.for_layer(tracts)
    before = object_store_used()
    placed = place_layer(tracts, assigner)
    after = wait_for_store_change(before)
    assert placed.nbytes > 1_000_000
    assert abs((after - before) - placed.nbytes) < 256 * 1024, (after - before, placed.nbytes)

    results = ray.get([probe.remote(placed) for _ in range(40)])
    assert object_store_used() == after  # 40 tasks, no copy of the layer in the store

    for r in results:
        for name, (mapping, owndata, writeable) in r["arrays"].items():
            assert "plasma" in mapping, f"{name} is not in the object store's shared memory: {mapping}"
            assert not owndata and not writeable, name

    # Memory per worker does not grow with the tasks it runs (each task reuses the attached views).
    # A worker that kept a private copy per task would grow by the layer's size a task; allocator
    # noise (seen up to 4.6 MB over a worker's tasks on a busy machine) stays far below half that.
    by_worker: dict[int, list[int]] = {}
    for r in results:
        by_worker.setdefault(r["pid"], []).append(r["private"])
    for pid, sizes in by_worker.items():
        if len(sizes) >= 5:
            kept_copies = (len(sizes) - 2) * placed.nbytes
            assert sizes[-1] - sizes[1] < kept_copies / 2, (pid, sizes, placed.nbytes)
