"""``citygrid assign``: assign every row of a Parquet or CSV file of points to its grid, in batch.

The output holds the input rows in their order, with ``grid_code``, ``status`` (``inside``,
``shared_boundary``, ``fallback``, ``outside`` or ``invalid``), ``grid_row`` and the parents
(``community_code``, ``community_name``, ``street_code``, ``street_name``, ``district_code``,
``district_name``) added; Parquet (``.parquet``, ``.pq``) or CSV (``.csv``) by the output's suffix, any
other suffix refused. The file is streamed in batches, so its size is bounded by the disk, not the
memory, and written to ``OUT.partial`` then renamed: an interrupted run leaves no half-written ``OUT``.

A coordinate that is missing, not a number or out of range makes its row ``invalid``; the other rows
are assigned. A CSV file's numeric columns stay numeric (see :mod:`citygrid.cli.point_files`).

    citygrid assign --layer demo-v1 events.csv -o events-assigned.parquet --crs gcj02
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq
from tqdm import tqdm

from citygrid.cli import point_files
from citygrid.cli.common import add_crs_argument, add_field_arguments, field_map
from citygrid.engine.layers import sources
from citygrid.engine.hierarchy import PARENTS
from citygrid.engine.layers.assignment import Assigner, Status
from citygrid.engine.errors import InvalidInput, NotFound

#: Column names tried (case-insensitive) when --lng-col / --lat-col are not given.
LNG_NAMES = ("lng", "lon", "long", "longitude", "x")
LAT_NAMES = ("lat", "latitude", "y")
STATUS_NAMES = np.array([s.name.lower() for s in Status], dtype=object)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "assign",
        help="assign the points of a Parquet or CSV file to grids",
        description="Assign every row of a Parquet or CSV file to the grid holding its point; write the rows "
        "in order with grid_code, status, grid_row and the parent community, street and district added.",
    )
    parser.add_argument("points", type=Path, help="Parquet or CSV file with one point per row")
    parser.add_argument("--layer", required=True, metavar="PATH|ID",
                        help="saved layer version id, version directory, or grid file")
    parser.add_argument("-o", "--output", required=True, type=Path,
                        help=f"output file: {', '.join(point_files.OUTPUT_FORMATS)} (Parquet or CSV by its suffix)")
    parser.add_argument("--lng-col", help=f"longitude column (default: the first of {', '.join(LNG_NAMES)})")
    parser.add_argument("--lat-col", help=f"latitude column (default: the first of {', '.join(LAT_NAMES)})")
    add_crs_argument(parser, of="the points")
    parser.add_argument("--fallback-m", type=float, default=0.0, metavar="M",
                        help="give a point outside every grid the nearest grid within M metres (default: 0, off)")
    parser.add_argument("--prefix", default="", help="prefix for the added column names (default: none)")
    add_field_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    points = Path(args.points)
    if not points.is_file():
        raise NotFound(f"no such file: {points}")
    out_format = point_files.format_of(args.output, "output")
    in_format = point_files.format_of(points, "input")
    lng_col, lat_col = _coordinate_columns(point_files.column_names(points, in_format), args.lng_col, args.lat_col)
    layer = sources.resolve_layer(args.layer, args.data_dir, field_map(args))
    assigner = Assigner.for_layer(layer)
    batches, schema, total = point_files.read_points(points, in_format)
    added = _added_names(args.prefix)
    clash = sorted(set(added) & set(schema.names))
    if clash:
        raise InvalidInput(f"{points} already has column(s) {', '.join(clash)}: pass --prefix to name the added ones")

    out_schema = schema
    for out_name, name in added.items():
        out_schema = out_schema.append(pa.field(out_name, pa.int32() if name == "grid_row" else pa.string()))
    partial = args.output.with_name(args.output.name + ".partial")
    counts = dict.fromkeys((s.name.lower() for s in Status), 0)
    try:
        with _writer(partial, out_format, out_schema) as writer, \
                tqdm(total=total, unit="pts", disable=None) as progress:
            for batch in batches:
                lng = point_files.coordinate_values(batch.column(lng_col))
                lat = point_files.coordinate_values(batch.column(lat_col))
                result = assigner.assign(lng, lat, crs=args.crs, fallback_m=args.fallback_m)
                for name, n in result.counts().items():
                    counts[name] += n
                writer.write_table(_with_grids(batch, result, assigner, added).cast(out_schema))
                progress.update(batch.num_rows)
        os.replace(partial, args.output)
    finally:
        partial.unlink(missing_ok=True)
    n = sum(counts.values())
    summary = ", ".join(f"{name} {value:,}" for name, value in counts.items())
    print(f"assigned {n:,} points to layer {layer.version_id}: {summary}; wrote {args.output}")
    return 0


def _coordinate_columns(names: list[str], lng_col: str | None, lat_col: str | None) -> tuple[str, str]:
    lower = {name.lower(): name for name in reversed(names)}

    def pick(given, candidates, what, flag):
        if given is not None:
            if given not in names:
                raise InvalidInput(f"no {what} column {given!r}; the file has {names}")
            return given
        for candidate in candidates:
            if candidate in lower:
                return lower[candidate]
        raise InvalidInput(f"no {what} column found among {names}: name it with {flag}")

    return pick(lng_col, LNG_NAMES, "longitude", "--lng-col"), pick(lat_col, LAT_NAMES, "latitude", "--lat-col")


def _added_names(prefix: str) -> dict[str, str]:
    """Added column -> its name in the output."""
    base = ["grid_code", "status", "grid_row"] + [c for _, code, name in PARENTS for c in (code, name)]
    return {prefix + name: name for name in base}


def _with_grids(batch: pa.RecordBatch, result, assigner: Assigner, added: dict[str, str]) -> pa.Table:
    rows = result.grid_rows
    values = {
        "grid_code": pa.array(assigner.codes_of(rows), pa.string()),
        "status": pa.array(STATUS_NAMES[result.status], pa.string()),
        "grid_row": pa.array(rows, pa.int32()),
    }
    for _, code, name in PARENTS:
        values[code] = pa.array(assigner.column_of(code, rows), pa.string())
        values[name] = pa.array(assigner.column_of(name, rows), pa.string())
    table = pa.Table.from_batches([batch])
    for out_name, name in added.items():
        table = table.append_column(out_name, values[name])
    return table


def _writer(path: Path, fmt: str, schema: pa.Schema):
    """A streaming Parquet or CSV writer (a context manager with ``write_table``)."""
    if fmt == "parquet":
        return pq.ParquetWriter(path, schema)
    return pv.CSVWriter(path, schema)
