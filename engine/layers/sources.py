"""Reading grid layers from the files people have: GeoJSON, TopoJSON, Shapefile (also zipped),
GeoPackage and GeoParquet.

Vector formats go through pyogrio (GDAL); GeoParquet through pyarrow. A declared CRS is transformed to
WGS84 longitude / latitude with pyproj; no declared CRS means the file already is lon/lat. Which
source column holds the grid code, type and parents is a :class:`~citygrid.engine.layers.layer.FieldMap`.

``resolve_layer(spec, data_dir)`` is what every command's ``--layer PATH|ID`` goes through: a saved
version id, a version directory, or a grid file.

A file a client uploads is kept under :func:`upload_name` in a temporary folder and read with
``shown_as`` that name, so an error says what the client sent, never where the server put it.

>>> upload_name("C:\\data\\grids.geojson"), upload_name("../../etc/grids.zip")
('grids.geojson', 'grids.zip')
>>> upload_name("..")
Traceback (most recent call last):
...
citygrid.engine.errors.InvalidInput: the upload's file name '..' names no file; send the name of the file (its suffix says the format)
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa
import shapely

from citygrid.engine.errors import CityGridError, InvalidInput, NotFound
from citygrid.engine.files import read_table
from citygrid.engine.layers.layer import GRID_COLUMNS, FieldMap, GridLayer

WGS84 = "OGC:CRS84"
VECTOR_SUFFIXES = {".geojson", ".json", ".topojson", ".shp", ".zip", ".gpkg", ".fgb", ".gml", ".kml"}
PARQUET_SUFFIXES = {".parquet", ".geoparquet", ".pq"}
#: Longest file name (bytes of UTF-8) an upload may have: what file systems allow.
MAX_NAME_BYTES = 255


@dataclass
class Features:
    """What a file holds: geometries in lon/lat, their attributes, and the CRS they came in."""

    geometries: np.ndarray
    attributes: pa.Table
    crs: str | None
    path: str


def read_features(path: str | os.PathLike, *, layer: str | int | None = None) -> Features:
    """Read every feature of a vector file, transformed to lon/lat. Raises :class:`InvalidInput`
    with a person-readable reason when the file cannot be read."""
    path = Path(path)
    if not path.exists():
        raise NotFound(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        geoms, table, crs = _read_geoparquet(path)
    elif suffix in VECTOR_SUFFIXES or path.is_dir():
        geoms, table, crs = _read_ogr(path, layer)
    else:
        raise InvalidInput(
            f"{path}: unknown file type {suffix!r}; CityGrid reads GeoJSON, TopoJSON, Shapefile "
            "(.shp or zipped), GeoPackage and GeoParquet"
        )
    geoms = to_lonlat(geoms, crs)
    return Features(geometries=geoms, attributes=table, crs=crs, path=str(path))


def read_layer(
    path: str | os.PathLike,
    fields: FieldMap | None = None,
    *,
    version_id: str | None = None,
    layer: str | int | None = None,
    shown_as: str | None = None,
) -> GridLayer:
    """Read a grid file into a :class:`GridLayer` (codes from ``fields.grid_code``, as strings).
    ``shown_as``: the name errors give the file instead of its path (an upload's)."""
    fields = fields or FieldMap()
    with _named(path, shown_as):
        features = read_features(path, layer=layer)
        return layer_from_features(features, fields, version_id=version_id)


def layer_from_features(
    features: Features, fields: FieldMap, *, version_id: str | None = None
) -> GridLayer:
    table = features.attributes
    if fields.grid_code not in table.column_names:
        raise InvalidInput(
            f"{features.path}: no grid code column {fields.grid_code!r}; the file has "
            f"{table.column_names}: name the code column (for example --code-field)"
        )
    columns = {}
    for name in GRID_COLUMNS:
        src = fields.source_of(name)
        if src is not None and src in table.column_names:
            columns[name] = _as_strings(table.column(src))
    used = {fields.source_of(n) for n in GRID_COLUMNS}
    for name in table.column_names:
        if name not in used and name not in columns:
            columns[name] = table.column(name)
    return GridLayer.from_geometries(
        features.geometries, pa.table(columns), version_id=version_id, source=features.path
    )


def read_boundary(path: str | os.PathLike, *, shown_as: str | None = None) -> shapely.Geometry:
    """The union of every polygon in a file, in lon/lat (for ``--boundary``); ``shown_as`` as for
    :func:`read_layer`."""
    with _named(path, shown_as):
        features = read_features(path)
        polys = [g for g in features.geometries if g is not None and not g.is_empty]
        if not polys:
            raise InvalidInput(f"{path}: the boundary file holds no polygon")
    return shapely.union_all(shapely.make_valid(np.asarray(polys, dtype=object)))


def upload_name(filename: str) -> str:
    """The name an uploaded file is kept under: the last part of the name the client sent (after
    ``/`` or ``\\``). :class:`InvalidInput` when that names no file (empty, ``.``, ``..``), holds
    control characters or is longer than :data:`MAX_NAME_BYTES` bytes."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    if name in ("", ".", ".."):
        raise InvalidInput(f"the upload's file name {filename[:80]!r} names no file; send the name of the file "
                           "(its suffix says the format)")
    if not name.isprintable() or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise InvalidInput(f"the upload's file name {name[:80]!r} must be printable and at most {MAX_NAME_BYTES} "
                           "bytes long")
    return name


@contextmanager
def _named(path: str | os.PathLike, shown_as: str | None):
    """Errors raised inside name the file ``shown_as`` instead of by its path (its folder left out)."""
    if shown_as is None:
        yield
        return
    try:
        yield
    except CityGridError as exc:
        path = Path(path)
        text = str(exc)
        for form in (f"/vsizip/{path}", str(path)):
            text = text.replace(form, shown_as)
        text = text.replace(str(path.parent) + os.sep, "").replace(str(path.parent), "the upload")
        raise type(exc)(text) from None


def resolve_layer(spec: str | os.PathLike, data_dir: str | os.PathLike | None, fields: FieldMap | None = None) -> GridLayer:
    """``--layer PATH|ID``: a saved version id under ``data_dir``, a version directory, or a grid file."""
    from citygrid.engine.layers import snapshots

    path = Path(spec)
    if data_dir is not None and os.sep not in str(spec):
        # A bare name is a version id first, so a folder of that name here does not shadow it.
        candidate = snapshots.layers_dir(data_dir) / str(spec)
        if (candidate / snapshots.MANIFEST).is_file():
            return snapshots.load_layer(candidate)
    if path.is_dir() and (path / snapshots.MANIFEST).is_file():
        return snapshots.load_layer(path)
    if path.exists():
        return read_layer(path, fields)
    raise NotFound(
        f"no layer {str(spec)!r}: not a file, not a version directory, and no saved version with that id"
        + (f" in {snapshots.layers_dir(data_dir)}" if data_dir is not None else "")
    )


def to_lonlat(geoms: np.ndarray, crs: str | None) -> np.ndarray:
    """Transform geometries from ``crs`` to lon/lat (a no-op for ``None`` and lon/lat CRSs)."""
    if crs is None:
        return geoms
    from pyproj import CRS, Transformer

    try:
        source = CRS.from_user_input(crs)
    except Exception as exc:  # pyproj raises its own CRSError
        raise InvalidInput(f"unreadable coordinate reference system {crs!r}: {exc}") from None
    target = CRS.from_user_input(WGS84)
    if source == target or (source.is_geographic and source.equals(CRS.from_epsg(4326), ignore_axis_order=True)):
        return geoms
    transformer = Transformer.from_crs(source, target, always_xy=True)

    def transform(coords: np.ndarray) -> np.ndarray:
        lng, lat = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([lng, lat])

    return shapely.transform(geoms, transform)


# ---------------------------------------------------------------------- format readers


def _read_ogr(path: Path, layer) -> tuple[np.ndarray, pa.Table, str | None]:
    import pyogrio
    from pyogrio.errors import DataSourceError, DataLayerError

    uri = f"/vsizip/{path}" if path.suffix.lower() == ".zip" else str(path)
    try:
        meta, table = pyogrio.read_arrow(uri, layer=layer)
    except (DataSourceError, DataLayerError) as exc:
        raise InvalidInput(f"{path}: cannot read it as a vector file ({exc})") from None
    geometry_name = meta.get("geometry_name") or "wkb_geometry"
    if geometry_name not in table.column_names:
        raise InvalidInput(f"{path}: the file has no geometry column")
    wkb = table.column(geometry_name).to_pylist()
    table = table.drop_columns([geometry_name])
    try:
        geoms = shapely.from_wkb(np.asarray(wkb, dtype=object))
    except shapely.errors.GEOSException as exc:
        raise InvalidInput(f"{path}: unreadable geometry ({exc})") from None
    return geoms, table, meta.get("crs")


def _read_geoparquet(path: Path) -> tuple[np.ndarray, pa.Table, str | None]:
    table = read_table(path, what="a layer", message="{path}: cannot read it as Parquet ({error})")
    meta = json.loads((table.schema.metadata or {}).get(b"geo", b"{}") or b"{}")
    column = meta.get("primary_column") or ("geometry" if "geometry" in table.column_names else None)
    if column is None or column not in table.column_names:
        raise InvalidInput(f"{path}: a Parquet file without GeoParquet 'geo' metadata or a 'geometry' column")
    info = meta.get("columns", {}).get(column, {})
    if info.get("encoding", "WKB").upper() != "WKB":
        raise InvalidInput(f"{path}: geometry encoding {info['encoding']!r} is not supported; write WKB")
    crs = info.get("crs", WGS84)
    if isinstance(crs, dict):
        crs = json.dumps(crs)
    try:
        geoms = shapely.from_wkb(np.asarray(table.column(column).to_pylist(), dtype=object))
    except shapely.errors.GEOSException as exc:
        raise InvalidInput(f"{path}: unreadable geometry in column {column!r} ({exc})") from None
    return geoms, table.drop_columns([column]), crs


def _as_strings(column: pa.ChunkedArray) -> pa.Array:
    """Codes and names as strings; integral floats lose their ``.0`` (``101.0`` -> ``"101"``)."""
    values = column.to_pylist()
    out = []
    for v in values:
        if v is None:
            out.append(None)
        elif isinstance(v, float):
            out.append(None if v != v else (str(int(v)) if v.is_integer() else repr(v)))
        else:
            out.append(str(v))
    return pa.array(out, pa.string())
