"""Map tiles of a layer's areas (engine/layers/tiles.py), read back with Google's protobuf runtime
over the MVT 2.1 schema (``vector_tile.proto``, compiled here with grpc_tools' protoc) and the
spec's geometry commands, and compared with GEOS's clip of the shapes projected by PROJ
(EPSG:3857): every shape that reaches a tile is in it with its code, its rings wound as the spec
says, and its area within the tile's rounding of GEOS's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from mvt_reader import compile_schema, read

from citygrid.engine.errors import InvalidInput
from citygrid.engine.layers.tiles import BUFFER, EXTENT, MAX_ZOOM, TileSet

#: Half the circumference of the Web Mercator sphere, metres (EPSG:3857's x and y run -R..R).
HALF = math.pi * 6378137.0


@pytest.fixture(scope="module")
def vector_tile(tmp_path_factory):
    return compile_schema(tmp_path_factory.mktemp("vector-tile-pb"))


def expected_in_tile(shapes_lnglat: np.ndarray, z: int, x: int, y: int) -> np.ndarray:
    """GEOS's clip of the shapes to the tile and its buffer, in tile units (y down), projected by PROJ."""
    from pyproj import Transformer

    to_3857 = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    size = 2 * HALF / 2 ** z

    def to_tile(coords):
        mx, my = to_3857.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([((mx + HALF) / size - x) * EXTENT, ((HALF - my) / size - y) * EXTENT])

    projected = shapely.transform(shapes_lnglat, to_tile)
    return shapely.clip_by_rect(projected, -BUFFER, -BUFFER, EXTENT + BUFFER, EXTENT + BUFFER)


def tile_of(lng: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    x = int((lng + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def check_tile(vector_tile, tiles: TileSet, level: str, codes, shapes, z: int, x: int, y: int, ids=None) -> int:
    """Compare tile z/x/y's ``level`` layer with GEOS; the number of areas in it."""
    layers = read(vector_tile, tiles.tile(z, x, y))
    expected = expected_in_tile(np.asarray(shapes, dtype=object), z, x, y)
    # a shape reaching further than a tile unit into the tile and its buffer must be in it
    present = {codes[k]: k for k, shape in enumerate(expected)
               if not shape.is_empty and shapely.area(shape) > 4 * shapely.length(shape) + 4}
    features = layers.get(level, {"features": {}})["features"]
    if features:
        assert layers[level]["version"] == 2 and layers[level]["extent"] == EXTENT
        assert layers[level]["keys"] == ["code"]
    assert set(present) <= set(features)
    for code, (feature_id, drawn) in features.items():
        k = codes.index(code)
        assert feature_id == (k if ids is None else ids[k])
        want = expected[k]
        # rounding each vertex to the tile's integers moves an edge by at most half a unit (and can
        # make a thin part touch itself: GEOS compares the repaired polygon)
        assert shapely.area(shapely.symmetric_difference(shapely.make_valid(drawn), want)) <= shapely.length(want) + 4
    return len(features)


def boxes_layer(n: int = 6, lng0: float = 114.0, lat0: float = 22.5, step: float = 0.01):
    codes = [f"G{i}{j}" for i in range(n) for j in range(n)]
    shapes = [shapely.box(lng0 + i * step, lat0 + j * step, lng0 + (i + 1) * step, lat0 + (j + 1) * step)
              for i in range(n) for j in range(n)]
    return codes, shapes


def test_every_box_is_in_the_tiles_it_reaches_with_its_code_and_area(vector_tile):
    codes, shapes = boxes_layer()
    tiles = TileSet({"grid": (codes, np.arange(len(codes)), np.array(shapes, dtype=object))})
    for z in (8, 11, 13, 15):
        x0, y1 = tile_of(114.0, 22.5, z)
        x1, y0 = tile_of(114.06, 22.56, z)
        seen = set()
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                check_tile(vector_tile, tiles, "grid", codes, shapes, z, x, y)
                seen |= set(read(vector_tile, tiles.tile(z, x, y)).get("grid", {"features": {}})["features"])
        assert seen == set(codes), f"zoom {z}: every box is in some tile"


def test_a_hole_is_wound_the_other_way_and_a_tile_far_away_is_empty(vector_tile):
    ring = shapely.Polygon(shapely.box(114.0, 22.5, 114.1, 22.6).exterior.coords,
                           [shapely.box(114.03, 22.53, 114.07, 22.57).exterior.coords])
    tiles = TileSet({"street": (["S1"], np.array([7]), np.array([ring], dtype=object))})
    z = 11
    x, y = tile_of(114.05, 22.55, z)
    layers = read(vector_tile, tiles.tile(z, x, y))
    feature_id, drawn = layers["street"]["features"]["S1"]
    assert feature_id == 7
    assert sum(len(p.interiors) for p in drawn.geoms) == 1
    check_tile(vector_tile, tiles, "street", ["S1"], [ring], z, x, y, ids=[7])
    assert tiles.tile(z, x + 5, y) == b""


def test_the_demo_districts_tiles_hold_every_grid_at_the_maps_zooms(vector_tile, demo_layer):
    from citygrid.engine.layers.geometry import LayerShapes

    shapes = LayerShapes(demo_layer)
    grids = shapes.geometries("grid", 0.0001)
    codes = list(demo_layer.codes)
    streets = shapes.areas("street")
    tiles = TileSet({"grid": (codes, np.arange(len(codes)), grids),
                     "street": (streets.codes, np.arange(len(streets.codes)), shapes.geometries("street", 0.0001))})
    west, south, east, north = shapely.total_bounds(grids)
    assert tiles.bounds() == pytest.approx((west, south, east, north), abs=1e-9)
    z = 11
    x0, y1 = tile_of(west, south, z)
    x1, y0 = tile_of(east, north, z)
    seen = set()
    for x in range(x0, x1 + 1):
        for y in range(y0, y1 + 1):
            check_tile(vector_tile, tiles, "grid", codes, grids, z, x, y)
            check_tile(vector_tile, tiles, "street", streets.codes, shapes.geometries("street", 0.0001), z, x, y)
            seen |= set(read(vector_tile, tiles.tile(z, x, y)).get("grid", {"features": {}})["features"])
    assert seen == set(codes)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=MAX_ZOOM), st.floats(114.0, 114.05), st.floats(22.5, 22.55),
       st.floats(1e-4, 0.05), st.floats(1e-4, 0.05))
def test_any_box_at_any_zoom_matches_geos(vector_tile, z, lng, lat, width, height):
    box = shapely.box(lng, lat, lng + width, lat + height)
    tiles = TileSet({"grid": (["B"], np.array([0]), np.array([box], dtype=object))})
    x, y = tile_of(lng + width / 2, lat + height / 2, z)
    check_tile(vector_tile, tiles, "grid", ["B"], [box], z, x, y)


@pytest.mark.parametrize(("z", "x", "y", "message"), [
    (-1, 0, 0, "zoom must be between 0 and 16"),
    (17, 0, 0, "zoom must be between 0 and 16"),
    (3, 8, 0, "outside zoom 3's tiles"),
    (3, 0, -1, "outside zoom 3's tiles"),
    ("a", 0, 0, "three integers"),
])
def test_a_tile_outside_the_pyramid_is_refused(z, x, y, message):
    codes, shapes = boxes_layer(1)
    with pytest.raises(InvalidInput, match=message):
        TileSet({"grid": (codes, np.arange(1), np.array(shapes, dtype=object))}).tile(z, x, y)
