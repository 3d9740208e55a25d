"""GridService's geometry (issue 12's map part): GetGrid's WKB and GeoJSON, GetLayerGeometry's areas
per level, simplified without gaps, within the caller's jurisdiction, with precise status codes."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
import shapely


@pytest.fixture(scope="module")
def community_token(env):
    with env.client() as admin:
        return admin.issue_token("C00 大屏", "dashboard", ["C00"]).token


def test_get_grid_sends_its_shape(env, admin):
    layer = env.layers["v1"]
    code = layer.codes[7]
    grid = admin.get_grid(code)
    assert shapely.equals_exact(shapely.from_wkb(grid.wkb), layer.geometries()[7], tolerance=0)
    assert grid.geojson == ""
    with_json = admin.get_grid(code, geojson=True)
    assert shapely.equals_exact(shapely.from_geojson(with_json.geojson), layer.geometries()[7], tolerance=6e-7)  # rounded to 1e-6


def test_layer_geometry_of_every_level_matches_geos(env, admin):
    layer = env.layers["v1"]
    grids = list(admin.get_layer_geometry("grid", page_size=37))
    assert [a.code for a in grids] == list(layer.codes)
    assert all(shapely.from_wkb(a.wkb).equals(g) for a, g in zip(grids, layer.geometries()))
    communities = list(admin.get_layer_geometry("community", fmt="geojson"))
    column = np.asarray(layer.column("community_code"))
    assert sorted(a.code for a in communities) == sorted(set(column))
    for area in communities:
        expected = shapely.union_all(layer.geometries()[column == area.code])
        assert shapely.symmetric_difference(shapely.from_geojson(area.geojson), expected).area < 1e-9
        assert area.level == "community" and area.wkb == b""
    district = list(admin.get_layer_geometry("district"))
    assert [a.code for a in district] == ["440307"]


def test_simplified_layer_has_no_gap_or_overlap(env, admin):
    shapes = np.array([shapely.from_wkb(a.wkb) for a in admin.get_layer_geometry("street", tolerance=0.001)])
    union = shapely.union_all(shapes)
    assert shapely.area(shapes).sum() == pytest.approx(union.area, rel=1e-9)
    assert len(shapely.get_parts(union)) == 1 and shapely.get_num_interior_rings(union) == 0


def test_a_community_token_gets_its_community_only(env, community_token):
    with env.client(community_token) as client:
        grids = list(client.get_layer_geometry("grid"))
        communities = list(client.get_layer_geometry("community"))
        streets = list(client.get_layer_geometry("street"))
    column = np.asarray(env.layers["v1"].column("community_code"))
    assert len(grids) == (column == "C00").sum()
    assert [a.code for a in communities] == ["C00"] and streets == []


@pytest.mark.parametrize("kwargs, code, message", [
    (dict(level="block"), grpc.StatusCode.INVALID_ARGUMENT, "unknown level 'block'"),
    (dict(tolerance=0.5), grpc.StatusCode.INVALID_ARGUMENT, "tolerance must be between 0 and 0.01"),
    (dict(fmt="kml"), grpc.StatusCode.INVALID_ARGUMENT, "unknown geometry format 99"),
    (dict(page_size=-1), grpc.StatusCode.INVALID_ARGUMENT, "page_size must not be negative"),
    (dict(layer_version="v9"), grpc.StatusCode.NOT_FOUND, "no layer version 'v9'"),
])
def test_bad_requests_get_precise_codes(admin, kwargs, code, message):
    with pytest.raises(grpc.RpcError) as err:
        list(admin.get_layer_geometry(**kwargs))
    assert err.value.code() == code and message in err.value.details()


def test_without_a_token_it_is_unauthenticated(env):
    with env.client(None) as client, pytest.raises(grpc.RpcError) as err:
        list(client.get_layer_geometry())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_geojson_of_another_version(env, admin):
    areas = list(admin.get_layer_geometry("grid", fmt="geojson", layer_version="v3"))
    assert len(areas) == env.layers["v3"].n_grids
    assert json.loads(areas[0].geojson)["type"] == "MultiPolygon"
