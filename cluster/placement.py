"""A layer version in Ray's object store, put there once and read zero-copy by every task.

:func:`place_layer` puts one dict of numpy arrays (the layer's geometry buffers, its attributes as an
Arrow IPC stream, and the point-location index) into the object store with a single ``ray.put``, and
returns a :class:`PlacedLayer`: a small handle holding the object reference that tasks receive instead
of the layer. Ray keeps numpy arrays in shared memory (plasma) and gives every worker on a node
read-only views of the same pages, so a node holds one copy of the index however many tasks and
workers use it, and no task re-builds it.

In a task, :func:`attach` turns the handle into an assigner over those views and keeps it for the
worker's next tasks (a few versions at most, so the store can free old ones). Nothing with Numba or
jitclass state is ever pickled: the object store holds plain arrays, and the assigner is rebuilt around
them in each worker process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import ray

from citygrid.engine.layers.assignment import Assigner
from citygrid.engine.layers.index import GridIndex
from citygrid.engine.layers.layer import BUFFER_NAMES, GridLayer

#: How many placed versions a worker keeps attached (the current and the previous one, with room).
ATTACHED_VERSIONS = 4

_LAYER = "layer."
_INDEX = "index."
_ATTRIBUTES = "attributes"


@dataclass(frozen=True)
class PlacedLayer:
    """A layer version in the object store: what tasks receive (cheap to pickle)."""

    version_id: str
    content_hash: str
    source: str
    ref: ray.ObjectRef
    #: Bytes of the placed arrays (geometry, attributes and index).
    nbytes: int


def layer_payload(assigner: Assigner) -> dict[str, np.ndarray]:
    """The arrays that stand for an assigner's layer and index, by name."""
    payload = {_LAYER + name: np.ascontiguousarray(array) for name, array in assigner.layer.buffers().items()}
    payload[_ATTRIBUTES] = _ipc_bytes(assigner.layer.attributes)
    payload.update({_INDEX + name: np.ascontiguousarray(array) for name, array in assigner.index.to_arrays().items()})
    return payload


def place_layer(layer: GridLayer, assigner: Assigner | None = None) -> PlacedLayer:
    """Put ``layer`` and its index into the object store once; return the handle to pass to tasks.

    ``assigner`` is the layer's (default :meth:`Assigner.for_layer`: the saved index, mapped, or a
    new one): its index is placed as it is, never rebuilt in a worker.
    """
    assigner = assigner or Assigner.for_layer(layer)
    payload = layer_payload(assigner)
    ref = ray.put(payload)
    return PlacedLayer(
        version_id=layer.version_id,
        content_hash=layer.content_hash,
        source=layer.source,
        ref=ref,
        nbytes=int(sum(a.nbytes for a in payload.values())),
    )


_attached: OrderedDict[tuple[str, str], Assigner] = OrderedDict()
_attach_lock = threading.Lock()


def attach(placed: PlacedLayer) -> Assigner:
    """The assigner of a placed layer in this worker, over read-only views of the object store
    (built on the first call in a worker process, then reused)."""
    key = (placed.version_id, placed.content_hash)
    with _attach_lock:
        assigner = _attached.get(key)
        if assigner is not None:
            _attached.move_to_end(key)
            return assigner
        assigner = assigner_from_payload(ray.get(placed.ref), placed)
        _attached[key] = assigner
        while len(_attached) > ATTACHED_VERSIONS:
            _attached.popitem(last=False)
        return assigner


def assigner_from_payload(payload: dict[str, np.ndarray], placed: PlacedLayer) -> Assigner:
    """Rebuild the layer and its assigner around the arrays of :func:`layer_payload`, without copying."""
    layer = GridLayer(
        **{name: payload[_LAYER + name] for name in BUFFER_NAMES},
        attributes=_table_from_ipc(payload[_ATTRIBUTES]),
        version_id=placed.version_id,
        source=placed.source,
        content_hash=placed.content_hash,
    )
    index = GridIndex.from_arrays({k[len(_INDEX):]: v for k, v in payload.items() if k.startswith(_INDEX)})
    return Assigner(layer, index)


def _ipc_bytes(table: pa.Table) -> np.ndarray:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return np.frombuffer(sink.getvalue(), dtype=np.uint8)


def _table_from_ipc(data: np.ndarray) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
