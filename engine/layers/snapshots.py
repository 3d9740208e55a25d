"""Saved layer versions: Arrow IPC files in a version directory, memory-mapped on load.

A version directory ``<data_dir>/layers/<version_id>/`` holds one Arrow IPC file per buffer
(``x.arrow``, ``y.arrow``, ``ring_offsets.arrow``, …), ``attributes.arrow``, any derived artefacts a
later step adds under subdirectories (``index/``), and ``manifest.json``::

    {"format": "citygrid-layer", "format_version": 1, "version_id": "...", "content_hash": "...",
     "source": "...", "n_grids": 3823, "files": {"x.arrow": "<sha256>", ...}, "created_at": "..."}

Files are written to a temporary directory and renamed into place, so a version directory either is
complete or does not exist. Loading maps every file (``pyarrow.memory_map``); the numpy arrays are views
of the mapped pages, so every process that loads a version shares one copy of it in the page cache.
The files are never changed after they are written; validity dates and the active version are kept by
the layer registry, not here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

import numpy as np
import pyarrow as pa

from citygrid.engine.files import check_format, fsync_path, read_json, write_json
from citygrid.engine.errors import Conflict, InvalidInput, NotFound
from citygrid.engine.layers.layer import BUFFER_NAMES, GridLayer, content_hash

FORMAT = "citygrid-layer"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def layers_dir(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / "layers"


def version_dir(data_dir: str | os.PathLike, version_id: str) -> Path:
    _check_version_id(version_id)
    return layers_dir(data_dir) / version_id


def save_layer(layer: GridLayer, data_dir: str | os.PathLike) -> Path:
    """Save ``layer`` as a version directory under ``data_dir`` and return its path.

    Saving the same content again is a no-op; another content under an existing version id is a
    :class:`Conflict`.
    """
    target = version_dir(data_dir, layer.version_id)
    if target.exists():
        existing = read_manifest(target)
        if existing["content_hash"] == layer.content_hash:
            return target
        raise Conflict(
            f"layer version {layer.version_id} already exists with other content; choose another version id"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{layer.version_id}.", dir=target.parent))
    try:
        files = {}
        for name, array in layer.buffers().items():
            files[f"{name}.arrow"] = write_arrays(tmp / f"{name}.arrow", {name: array})
        files["attributes.arrow"] = write_table(tmp / "attributes.arrow", layer.attributes)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "version_id": layer.version_id,
            "content_hash": layer.content_hash,
            "source": layer.source,
            "n_grids": layer.n_grids,
            "n_vertices": int(len(layer.x)),
            "bounds": list(layer.bounds) if layer.n_grids else None,
            "files": files,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_json(tmp / MANIFEST, manifest)
        fsync_path(tmp)
        os.rename(tmp, target)
        fsync_path(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_layer(path: str | os.PathLike, *, verify: bool = False) -> GridLayer:
    """Map a saved version directory. ``verify`` re-hashes the content against the manifest."""
    path = Path(path)
    manifest = read_manifest(path)
    buffers = {name: read_array(path / f"{name}.arrow", name) for name in BUFFER_NAMES}
    attributes = read_table(path / "attributes.arrow")
    if verify:
        digest = content_hash(buffers, attributes)
        if digest != manifest["content_hash"]:
            raise InvalidInput(
                f"layer version at {path} is corrupt: content hash {digest[:12]} does not match "
                f"the manifest's {manifest['content_hash'][:12]}"
            )
    return GridLayer(
        **buffers,
        attributes=attributes,
        version_id=manifest["version_id"],
        source=manifest.get("source", ""),
        content_hash=manifest["content_hash"],
        extra={"path": str(path), "manifest": manifest},
    )


def list_versions(data_dir: str | os.PathLike) -> list[dict]:
    """Manifests of every saved version under ``data_dir``, oldest first."""
    root = layers_dir(data_dir)
    if not root.is_dir():
        return []
    manifests = [read_manifest(p) for p in root.iterdir() if (p / MANIFEST).is_file()]
    return sorted(manifests, key=lambda m: (m.get("created_at", ""), m["version_id"]))


def read_manifest(path: str | os.PathLike) -> dict:
    path = Path(path)
    manifest = read_json(path / MANIFEST, missing=NotFound(f"{path} is not a saved layer version (no {MANIFEST})"))
    check_format(manifest, FORMAT, FORMAT_VERSION, what=str(path), kind="layer version", fix="upgrade CityGrid")
    return manifest


# ---------------------------------------------------------------------- Arrow IPC helpers


def write_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> str:
    """Write equal-length numpy arrays as one Arrow IPC file (one record batch); return its SHA-256."""
    return write_table(path, pa.table({name: pa.array(np.asarray(a)) for name, a in arrays.items()}))


def write_table(path: Path, table: pa.Table) -> str:
    """Write ``table`` as one Arrow IPC file with a single record batch, fsync it; return its SHA-256."""
    table = table.combine_chunks()
    with pa.OSFile(str(path), "wb") as sink:
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=max(table.num_rows, 1))
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())
        return hashlib.file_digest(fh, "sha256").hexdigest()


def read_table(path: Path) -> pa.Table:
    """Memory-map an Arrow IPC file written by :func:`write_table` (no copy)."""
    try:
        source = pa.memory_map(str(path), "r")
    except FileNotFoundError:
        raise NotFound(f"missing file {path}: the layer version is incomplete") from None
    return pa.ipc.open_file(source).read_all()


def read_array(path: Path, column: str) -> np.ndarray:
    """One column of a mapped Arrow IPC file as a read-only numpy view."""
    col = read_table(path).column(column)
    if col.num_chunks == 0:
        return np.empty(0, dtype=col.type.to_pandas_dtype())
    return col.chunk(0).to_numpy(zero_copy_only=True)


def _check_version_id(version_id: str) -> None:
    ok = version_id and len(version_id) <= 64 and all(c.isalnum() or c in "-_." for c in version_id)
    if not ok or version_id.startswith("."):
        raise InvalidInput(
            f"bad layer version id {version_id!r}: use 1-64 letters, digits, '-', '_' or '.'"
        )
