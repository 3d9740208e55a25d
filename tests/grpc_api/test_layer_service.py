"""LayerService end to end: upload (zipped Shapefile), validate, publish with dates, activate, and
answers by time."""

from __future__ import annotations

import json
import tempfile
import zipfile
from datetime import timedelta

import geopandas as gpd
import grpc
import pytest
import shapely
from grpc_env import LAT0, LNG0, SPAN, T0, box_layer, start_server

from citygrid.grpc_api._pb import layer_pb2


@pytest.fixture
def fresh(tmp_path):
    data_dir = tmp_path / "data"
    env = start_server(data_dir)
    yield env
    env.server.stop(0).wait(10)


def zipped_shapefile(layer, folder):
    frame = gpd.GeoDataFrame(
        {"CODE": list(layer.codes), "COMM": layer.column("community_code").tolist()},
        geometry=list(layer.geometries()),
        crs="EPSG:4326",
    )
    frame.to_crs("EPSG:4547").to_file(folder / "grids.shp")  # CGCS2000 / 3-degree Gauss-Kruger CM 114E
    path = folder / "grids.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for part in folder.glob("grids.*"):
            if part.suffix != ".zip":
                zf.write(part, part.name)
    return path


def test_upload_publish_activate_and_answer_by_time(fresh, tmp_path):
    layer = box_layer("s1", 8)
    path = zipped_shapefile(layer, tmp_path)
    with fresh.client() as admin:
        uploaded = admin.upload_layer(path, version_id="s1", fields={"grid_code": "CODE", "community_code": "COMM"})
        assert (uploaded.version_id, uploaded.n_grids, uploaded.published) == ("s1", 64, False)
        report = admin.validate_layer("s1")
        assert report.valid and json.loads(report.report_json)["valid"] is True
        published = admin.publish_layer("s1", valid_from=T0)
        assert published.published and published.valid_from.ToDatetime().year == 2026
        assert not published.HasField("valid_to")
        activated = admin.activate_version("s1")
        assert activated.active.active and activated.previous_version_id == ""

        answer = admin.assign_point(LNG0 + 0.001, LAT0 + 0.001)
        assert answer.layer_version == "s1" and answer.grid.code == "G000000@s1"

        admin.upload_layer(_geojson(box_layer("s2", 4), tmp_path / "s2.geojson"), version_id="s2")
        admin.publish_layer("s2", valid_from=T0 + timedelta(days=30))
        versions = {v.version_id: v for v in admin.list_versions().versions}
        assert versions["s1"].valid_to == versions["s2"].valid_from
        # no time: the active version; a time: the version valid then
        assert admin.assign_point(LNG0 + 0.001, LAT0 + 0.001).layer_version == "s1"
        later = admin.assign_point(LNG0 + 0.001, LAT0 + 0.001, at=T0 + timedelta(days=31))
        assert later.layer_version == "s2" and later.grid.code == "G000000@s2"
        assert admin.get_grid("G000000@s2", at=T0 + timedelta(days=40)).layer_version == "s2"
        assert admin.activate_version("s2").previous_version_id == "s1"
        assert admin.list_versions().active_version_id == "s2"


def test_unreadable_and_invalid_uploads_are_invalid_argument(fresh, tmp_path):
    garbage = tmp_path / "grids.geojson"
    garbage.write_text("this is not GeoJSON")
    no_code = _geojson(box_layer("x", 2), tmp_path / "nocode.geojson", code_field="name")
    points = tmp_path / "points.geojson"
    points.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [114.2, 22.7]},
         "properties": {"grid_code": "A"}}]}))
    with fresh.client() as admin:
        for path in (garbage, no_code, points):
            with pytest.raises(grpc.RpcError) as info:
                admin.upload_layer(path)
            assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT, path.name
            assert path.name in info.value.details() or "grid" in info.value.details()


def test_an_invalid_upload_says_what_was_sent_not_where_the_server_put_it(fresh, tmp_path):
    garbage = tmp_path / "grids.geojson"
    garbage.write_text("this is not GeoJSON")
    zipped = tmp_path / "grids.zip"
    zipped.write_bytes(b"PK not really a zip")
    with fresh.client() as admin:
        for path in (garbage, zipped):
            with pytest.raises(grpc.RpcError) as info:
                admin.upload_layer(path)
            details = info.value.details()
            assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT and details.startswith(path.name), details
            assert "citygrid-upload" not in details and tempfile.gettempdir() not in details, details


@pytest.mark.parametrize("filename", ["..", ".", "", "a/..", "x\x00y.geojson", "\u00e9" * 200 + ".geojson"])
def test_an_upload_name_that_names_no_file_is_invalid_argument(fresh, tmp_path, filename):
    """``..`` was INTERNAL (the server opened its temporary folder's parent as the file)."""
    def messages():
        yield layer_pb2.UploadLayerRequest(header=layer_pb2.UploadHeader(filename=filename))
        yield layer_pb2.UploadLayerRequest(chunk=b'{"type": "FeatureCollection", "features": []}')

    with fresh.client() as admin:
        with pytest.raises(grpc.RpcError) as info:
            admin.layers.UploadLayer(messages(), metadata=admin.metadata)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
        assert "file name" in info.value.details()
        admin.upload_layer(_geojson(box_layer("n1", 2), tmp_path / "n1.geojson"), version_id="n1")
        request = layer_pb2.ValidateLayerRequest(version_id="n1", boundary=b"{}", boundary_filename=filename)
        with pytest.raises(grpc.RpcError) as info:
            admin.layers.ValidateLayer(request, metadata=admin.metadata)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT, info.value.details()


def test_an_overlapping_layer_is_not_published(fresh, tmp_path):
    layer = box_layer("o1", 3)
    geoms = list(layer.geometries())
    geoms[0] = shapely.box(LNG0, LAT0, LNG0 + SPAN / 2, LAT0 + SPAN / 2)  # overlaps its neighbours
    path = tmp_path / "overlap.geojson"
    _write(geoms, list(layer.codes), path)
    with fresh.client() as admin:
        admin.upload_layer(path, version_id="o1")
        assert admin.validate_layer("o1").valid is False
        with pytest.raises(grpc.RpcError) as info:
            admin.publish_layer("o1")
        assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "n_overlaps" in info.value.details()


def test_no_active_version_is_failed_precondition(fresh):
    with fresh.client() as admin:
        with pytest.raises(grpc.RpcError) as info:
            admin.assign_point(LNG0, LAT0)
        assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION and "activate" in info.value.details()


def _geojson(layer, path, code_field="grid_code"):
    _write(list(layer.geometries()), list(layer.codes), path, code_field)
    return path


def _write(geoms, codes, path, code_field="grid_code"):
    features = [{"type": "Feature", "geometry": json.loads(shapely.to_geojson(g)), "properties": {code_field: c}}
                for g, c in zip(geoms, codes)]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
