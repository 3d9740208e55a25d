"""The output of a batch job: a Parquet dataset, one folder per partition, written so nothing lands twice.

Layout of an output directory (any Parquet reader takes it as one table: point it at ``OUTPUT``; from
Python, :func:`open_output` gives it as a ``pyarrow.dataset``)::

    OUTPUT/_citygrid_job.json                        which job owns the directory
    OUTPUT/street_code/440307001/part-00003.parquet  rows of task 3 in that street
    OUTPUT/street_code/@null/part-00003.parquet      rows in no street (outside, invalid)
    OUTPUT/_changes/report.json, transitions.parquet, events.parquet   the change report (re-indexing
                                                     with a previous version)
    OUTPUT/_SUCCESS                                  written last, when every task is done

Every file holds every column, the partition column included, as text. The folders are *not* named
Hive-style (``street_code=440307001``) on purpose: a Hive-aware reader (pyarrow with
``partitioning="hive"``, ``pandas.read_parquet``, DuckDB, Spark) types a partition value from the
folder name and reads ``440307001`` as an integer, dropping any leading zero, even when the files
hold the column as text (pyarrow then refuses the clash, DuckDB lets the folder win), and neither
reads a schema from ``_common_metadata``. A folder name that is not ``key=value`` is no partition to
them, so every reader takes the codes from the files, as text. Filters still skip whole files: each
file holds one partition value, so its statistics rule it in or out. The folder of a value is the
value percent-encoded; ``@null`` (which no encoded value can be) holds the rows without one.

Every file a task writes has a name fixed by the task number and the partition value, and appears by
an atomic rename of a finished temporary file (``.part-00003.parquet.<random>.tmp``, hidden from
readers by its leading dot). A task that dies half-way and runs again, or runs again after a resume,
writes the same names with the same rows: it replaces its own files and never adds a second copy.
A resumed job re-runs every task whose recorded files are not all there and complete (:func:`intact`),
so the files need not be flushed one by one; the job flushes them all once before it writes
``_SUCCESS``.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from citygrid.engine.errors import Conflict, NotFound
from citygrid.engine.files import fsync_path, write_json

#: The folder of the rows whose partition value is null (``@`` is always percent-encoded in a value).
NULL_FOLDER = "@null"
#: The folder of the empty string (which percent-encodes to nothing).
EMPTY_FOLDER = "@empty"
JOB_MARKER = "_citygrid_job.json"
SUCCESS_MARKER = "_SUCCESS"


def claim_output(path: str | os.PathLike, job_id: str, description: dict) -> Path:
    """Create the output directory for ``job_id`` (or take it back on a resume).

    A directory that holds anything but this job's output is refused (:class:`Conflict`), so a job
    never mixes its files with another's.
    """
    root = Path(path)
    if _owner(root) == job_id:
        return root
    check_free(root)
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / JOB_MARKER, {"job_id": job_id, **description})
    return root


def check_free(path: str | os.PathLike) -> None:
    """Refuse (:class:`Conflict`) an output path a new job cannot take: one that holds another job's
    output, a file, or a directory that is not empty. Checked when a job is submitted, before Ray
    starts, and again when it claims the directory."""
    root = Path(path)
    owner = _owner(root)
    if owner is not None:
        raise Conflict(f"{root} holds the output of job {owner} (resume that job to finish it); choose another "
                       "output directory or remove it")
    if root.exists() and not root.is_dir():
        raise Conflict(f"the output {root} is a file; give a new or empty directory")
    if root.exists() and any(root.iterdir()):
        raise Conflict(f"the output {root} exists and is not empty; give a new or empty directory")


def _owner(root: Path) -> str | None:
    """The job whose output ``root`` holds, if any."""
    marker = root / JOB_MARKER
    if not marker.is_file():
        return None
    return json.loads(marker.read_text()).get("job_id") or "(unknown)"


def open_output(path: str | os.PathLike) -> ds.Dataset:
    """The finished output at ``path`` as a pyarrow dataset (the partition column is in the files)."""
    root = Path(path)
    if _owner(root) is None:
        raise NotFound(f"{root} is not the output of a CityGrid job (no {JOB_MARKER})")
    return ds.dataset(root, format="parquet")


def partition_dir(column: str, value: str | None) -> str:
    """``column/value``, the value percent-encoded (:data:`NULL_FOLDER` for null)."""
    folder = NULL_FOLDER if value is None else quote(value, safe="") or EMPTY_FOLDER
    return f"{column}/{folder}"


def part_name(task: int) -> str:
    return f"part-{task:05d}.parquet"


def write_parquet_atomic(table: pa.Table, path: Path, *, durable: bool = True) -> None:
    """Write ``table`` to ``path`` by way of a hidden temporary file, renamed when complete.

    ``durable`` fsyncs the file before the rename and the directory after. A job's partition files
    skip it (two disk flushes per file are most of the write time, and they queue behind each other
    when several workers write): they are checked when a job resumes (:func:`intact`) and flushed
    once when it ends (:func:`flush`).

    Only string and dictionary columns are dictionary-encoded: numbers such as coordinates rarely
    repeat, and trying costs a quarter of the write time.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    encoded = [f.name for f in table.schema
               if pa.types.is_dictionary(f.type) or pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    try:
        pq.write_table(table, tmp, use_dictionary=encoded)
        if durable:
            fsync_path(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_path(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def intact(path: Path, rows: int) -> bool:
    """Whether ``path`` is a complete Parquet file of ``rows`` rows (its footer read back)."""
    try:
        return pq.read_metadata(path).num_rows == rows
    except (OSError, pa.ArrowInvalid):
        return False


def flush() -> None:
    """Flush every written file to disk (once, at the end of a job, before it is marked done)."""
    os.sync()


def write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    write_json(tmp, payload)
    os.replace(tmp, path)


def remove_temporaries(root: str | os.PathLike) -> int:
    """Delete the temporary files killed tasks left behind; return how many."""
    removed = 0
    for tmp in Path(root).rglob(".*.tmp"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def mark_succeeded(root: str | os.PathLike, summary: dict) -> None:
    write_json_atomic(Path(root) / SUCCESS_MARKER, summary)
