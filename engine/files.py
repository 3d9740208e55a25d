"""Files, declared once: fsynced JSON, the saved-file format check, and reading a table file.

- :func:`write_json` / :func:`read_json` / :func:`fsync_path`: what a saved layer version, an index
  and a job's output folder write durably;
- :func:`check_format`: the ``format`` / ``format_version`` check of every saved file CityGrid reads
  back (a layer version's manifest, an index);
- :func:`read_table`: a Parquet table into Arrow, or :class:`InvalidInput` naming the file and what it
  holds, the one way a table file is read (reports, workers, building positions, layers).

>>> check_format({"format": "citygrid-layer", "format_version": 2}, "citygrid-layer", 1, what="v1",
...              kind="layer version", fix="upgrade CityGrid")
Traceback (most recent call last):
...
citygrid.engine.errors.InvalidInput: v1 has layer version format version 2, newer than this CityGrid reads (1): upgrade CityGrid
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from citygrid.engine.errors import InvalidInput


def check_format(payload: dict, format: str, version: int, *, what: str, kind: str, fix: str) -> None:
    """Refuse a saved file that is not of ``format`` or is of a newer ``format_version`` than
    ``version``; ``what`` names the file, ``kind`` what it should be, ``fix`` what the user can do."""
    if payload.get("format") != format:
        raise InvalidInput(f"{what} is not a CityGrid {kind} (format {payload.get('format')!r})")
    if payload.get("format_version", 0) > version:
        raise InvalidInput(
            f"{what} has {kind} format version {payload['format_version']}, newer than this CityGrid reads "
            f"({version}): {fix}"
        )


#: How :func:`read_table` says a file cannot be read, unless the caller words it otherwise.
CANNOT_READ = "cannot read {what} from {path}: {error}"


def read_table(path, *, what: str, columns=None, errors: tuple = (), message: str = CANNOT_READ):
    """The Parquet table at ``path`` (``columns``: only those); a file that cannot be read is an
    :class:`InvalidInput` worded by ``message`` (``{what}``, ``{path}``, ``{error}``; an uploaded
    layer's starts with the file's name as sent). ``errors``: more exception types that mean a bad
    file (``KeyError`` for a missing column). Point files (Parquet or CSV, streamed in batches) are
    the CLI's ``point_files``."""
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=columns)
    except (OSError, ValueError, *errors) as exc:
        raise InvalidInput(message.format(what=what, path=path, error=exc)) from None


def write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` as JSON and fsync the file (values JSON has no type for are written as text)."""
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=2, ensure_ascii=False, default=str)
        fh.flush()
        os.fsync(fh.fileno())


def read_json(path: Path, *, missing: Exception) -> dict:
    """The JSON object in ``path``; ``missing`` is raised when there is no such file."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise missing from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path} is not valid JSON: {exc}") from None


def fsync_path(path: str | os.PathLike) -> None:
    """fsync a file or a directory (a directory: so a rename into it is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_path(value: str | os.PathLike, base: Path | None) -> Path:
    """``value`` with ``~`` expanded, taken from ``base`` when relative."""
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() or base is None else base / path
