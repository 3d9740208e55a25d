"""Grid layers: reading every supported format, CRS handling, saved versions round-trip exactly."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely

from citygrid.engine.layers import snapshots, sources
from citygrid.engine.errors import Conflict, InvalidInput, NotFound
from citygrid.engine.layers.layer import GRID_COLUMNS, FieldMap, GridLayer

TRACTS = FieldMap(grid_code="GEOID", grid_name="CTLabel", community_code="NTA2020", district_code="BoroCode")


@pytest.fixture(scope="module")
def tracts(shared_data) -> GridLayer:
    return sources.read_layer(shared_data / "nyc" / "nyct2020.shp", TRACTS)


def _same_layer(a: GridLayer, b: GridLayer) -> None:
    assert a.n_grids == b.n_grids
    for name, buf in a.buffers().items():
        np.testing.assert_array_equal(buf, b.buffers()[name], err_msg=name)
    assert a.attributes.equals(b.attributes)
    assert a.content_hash == b.content_hash
    assert shapely.equals_exact(a.geometries(), b.geometries(), 0).all()


def test_tracts_read_in_lonlat_with_string_codes(tracts):
    # 2,325 tracts: 2,281 Polygons and 44 MultiPolygons (README facts), projected from EPSG:2263.
    assert tracts.n_grids == 2325
    parts = np.diff(tracts.grid_offsets)
    assert (parts == 1).sum() == 2281 and (parts > 1).sum() == 44
    lng0, lat0, lng1, lat1 = tracts.bounds
    assert -74.26 < lng0 < -74.25 and 40.49 < lat0 < 40.50 and -73.71 < lng1 < -73.69 and 40.91 < lat1 < 40.92
    assert tracts.attributes.column_names[: len(GRID_COLUMNS)] == list(GRID_COLUMNS)
    assert pa.types.is_string(tracts.attributes.column("grid_code").type)
    assert len(set(tracts.codes)) == 2325 and all(len(c) == 11 for c in tracts.codes)
    assert tracts.record(tracts.row_of(tracts.codes[7]))["grid_code"] == tracts.codes[7]
    for row in (0, 7, 2324):  # every column, as Arrow's own scalars give it
        assert tracts.record(row) == {name: tracts.attributes.column(name)[row].as_py()
                                      for name in tracts.attributes.column_names}
    with pytest.raises(NotFound, match="no grid row 2325"):
        tracts.record(2325)
    assert "BoroName" in tracts.attributes.column_names  # unmapped source columns are kept


def test_saved_version_round_trips_exactly(tracts, tmp_path):
    path = snapshots.save_layer(tracts, tmp_path)
    loaded = snapshots.load_layer(path, verify=True)
    _same_layer(tracts, loaded)
    assert loaded.version_id == tracts.version_id
    # Loading maps the files: the buffers are read-only views, not copies.
    assert not loaded.x.flags.writeable
    # Saving the same content again is a no-op; other content under that id is a conflict.
    assert snapshots.save_layer(tracts, tmp_path) == path
    other = GridLayer.from_geometries([shapely.box(0, 0, 1, 1)], {"grid_code": ["x"]}, version_id=tracts.version_id)
    with pytest.raises(Conflict):
        snapshots.save_layer(other, tmp_path)
    assert [m["version_id"] for m in snapshots.list_versions(tmp_path)] == [tracts.version_id]
    assert sources.resolve_layer(tracts.version_id, tmp_path).content_hash == tracts.content_hash


def test_corrupt_version_is_detected(tracts, tmp_path):
    path = snapshots.save_layer(tracts, tmp_path)
    x = path / "x.arrow"
    data = bytearray(x.read_bytes())
    data[-200] ^= 0xFF  # flip a byte inside the coordinate buffer, not the footer
    x.chmod(0o644)
    x.write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match="corrupt"):
        snapshots.load_layer(path, verify=True)


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp", "zip", "parquet"])
def test_every_format_round_trips(tracts, tmp_path, fmt):
    """file -> layer -> saved version -> layer gives identical geometry and attributes."""
    subset = GridLayer.from_geometries(
        tracts.geometries()[:200], tracts.attributes.slice(0, 200).select(list(GRID_COLUMNS))
    )
    # Shapefile field names stop at 10 characters: name the short columns, as a user would.
    fields = FieldMap(community_code="comm_code", district_code="dist_code") if fmt in ("shp", "zip") else FieldMap()
    path = _write(subset, tmp_path, fmt, fields)
    read = sources.read_layer(path, fields)
    assert read.n_grids == 200
    assert read.codes.tolist() == subset.codes.tolist()
    for name in ("grid_code", "community_code", "district_code"):
        assert read.column(name).tolist() == subset.column(name).tolist()
    # Geometry is preserved up to the format's own precision (exact for binary formats).
    same = shapely.equals_exact(read.geometries(), subset.geometries(), tolerance=1e-9 if fmt == "geojson" else 0)
    assert same.all()
    saved = snapshots.load_layer(snapshots.save_layer(read, tmp_path / "data"), verify=True)
    _same_layer(read, saved)


def _write(layer: GridLayer, tmp_path, fmt, fields: FieldMap):
    geoms = layer.geometries()
    columns = {fields.source_of(name): layer.column(name) for name in ("grid_code", "community_code", "district_code")}
    if fmt == "parquet":
        path = tmp_path / "grids.parquet"
        table = pa.table({**columns, "geometry": shapely.to_wkb(geoms)})
        geo = {"version": "1.0.0", "primary_column": "geometry",
               "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["MultiPolygon"]}}}
        pq.write_table(table.replace_schema_metadata({"geo": json.dumps(geo)}), path)
        return path
    if fmt in ("shp", "zip"):
        path = tmp_path / "grids.shp"
        pyogrio.write_dataframe(_frame(columns, geoms), path)
        if fmt == "zip":
            zipped = tmp_path / "grids.zip"
            with zipfile.ZipFile(zipped, "w") as zf:
                for part in tmp_path.glob("grids.*"):
                    if part.suffix != ".zip":
                        zf.write(part, part.name)
            return zipped
        return path
    path = tmp_path / f"grids.{fmt}"
    pyogrio.write_dataframe(_frame(columns, geoms), path)
    return path


def _frame(columns, geoms):
    geopandas = pytest.importorskip("geopandas")
    return geopandas.GeoDataFrame(columns, geometry=list(geoms), crs="EPSG:4326")


def test_topojson_without_crs_is_lonlat(shared_data):
    layer = sources.read_layer(shared_data / "nyc" / "election_districts.topojson", FieldMap(grid_code="ElectDist"))
    assert layer.n_grids == 5199
    lng0, lat0, lng1, lat1 = layer.bounds
    assert -74.3 < lng0 and lng1 < -73.6 and 40.4 < lat0 and lat1 < 41.0


def test_integer_codes_become_strings(shared_data):
    layer = sources.read_layer(shared_data / "nyc" / "community_districts_chriswhong.geojson", FieldMap(grid_code="BoroCD"))
    assert layer.n_grids == 60
    assert all(isinstance(c, str) and c.isdigit() for c in layer.codes)


def test_bad_inputs_raise_clear_errors(tmp_path, shared_data):
    with pytest.raises(NotFound, match="no such file"):
        sources.read_layer(tmp_path / "missing.geojson")
    garbage = tmp_path / "garbage.geojson"
    garbage.write_text("this is not json")
    with pytest.raises(InvalidInput, match="cannot read"):
        sources.read_layer(garbage)
    with pytest.raises(InvalidInput, match="unknown file type"):
        sources.read_layer(garbage.rename(tmp_path / "grids.xyz"))
    with pytest.raises(InvalidInput, match="no grid code column 'grid_code'.*GEOID"):
        sources.read_layer(shared_data / "nyc" / "nyct2020.shp")
    with pytest.raises(InvalidInput, match="must be a Polygon or MultiPolygon, got Point"):
        GridLayer.from_geometries([shapely.Point(0, 0)], {"grid_code": ["p"]})
    with pytest.raises(InvalidInput, match="bad layer version id"):
        snapshots.version_dir(tmp_path, "../escape")
    with pytest.raises(NotFound, match="no layer"):
        sources.resolve_layer("no-such-version", tmp_path)


@pytest.mark.parametrize("name, content", [
    ("grids.geojson", b"this is not json"),
    ("grids.zip", b"PK not a zip"),
    ("grids.parquet", b"PAR1 not parquet"),
    ("nocode.geojson", b'{"type": "FeatureCollection", "features": []}'),
])
def test_an_uploads_errors_name_the_file_as_sent_not_its_folder(tmp_path, name, content):
    folder = tmp_path / "citygrid-upload-x1y2"
    folder.mkdir()
    (folder / name).write_bytes(content)
    with pytest.raises(InvalidInput) as info:
        sources.read_layer(folder / name, shown_as=name)
    message = str(info.value)
    assert message.startswith(name) and str(tmp_path) not in message and "citygrid-upload" not in message
    with pytest.raises(InvalidInput) as info:
        sources.read_layer(folder / name)
    assert str(folder) in str(info.value)  # a local file keeps its path in the message


@pytest.mark.parametrize("sent, kept", [("grids.geojson", "grids.geojson"), ("a/b/../grids.zip", "grids.zip"),
                                        ("C:\\x\\grids.gpkg", "grids.gpkg"), ("格网.geojson", "格网.geojson")])
def test_an_upload_is_kept_under_the_last_part_of_its_name(sent, kept):
    assert sources.upload_name(sent) == kept


@pytest.mark.parametrize("sent", ["", ".", "..", "x/..", "a\x00.geojson", "tab\t.geojson", "e" * 256])
def test_an_upload_name_that_names_no_file_is_invalid(sent):
    with pytest.raises(InvalidInput, match="file name"):
        sources.upload_name(sent)


def test_empty_and_null_geometries_are_kept_as_empty_grids():
    layer = GridLayer.from_geometries(
        [shapely.box(0, 0, 1, 1), None, shapely.Polygon()], {"grid_code": ["a", "b", "c"]}
    )
    assert layer.n_grids == 3
    geoms = layer.geometries()
    assert not geoms[0].is_empty and geoms[1].is_empty and geoms[2].is_empty
