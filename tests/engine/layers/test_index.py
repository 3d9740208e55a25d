"""The point-location index and H3 cover: built from the layer's buffers, saved with the version as
Arrow IPC, memory-mapped on load; build time and size on the demo district and the NYC tracts."""

from __future__ import annotations


import h3
import numpy as np
import pytest
import shapely

from citygrid.engine.layers import index as index_module
from citygrid.engine.layers.assignment import Assigner
from citygrid.engine.errors import InvalidInput, NotFound
from citygrid.engine.layers.index import ARRAY_NAMES, GridIndex, build_index, index_dir, load_index, save_index
from citygrid.engine.layers.layer import FieldMap, GridLayer
from citygrid.engine.layers.snapshots import load_layer, save_layer
from citygrid.engine.layers.sources import read_layer


@pytest.fixture(scope="module")
def tracts(shared_data) -> GridLayer:
    return read_layer(shared_data / "nyc" / "nyct2020.shp", FieldMap(grid_code="GEOID"))


@pytest.fixture(scope="module")
def small_layer() -> GridLayer:
    rng = np.random.default_rng(5)
    box = shapely.box(114.25, 22.70, 114.26, 22.71)
    seeds = shapely.multipoints(np.column_stack([rng.uniform(114.25, 114.26, 30), rng.uniform(22.70, 22.71, 30)]))
    cells = [shapely.intersection(c, box) for c in shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=box))]
    return GridLayer.from_geometries(cells, {"grid_code": [f"G{i:02d}" for i in range(len(cells))]})


def assert_same_index(a: GridIndex, b: GridIndex):
    scalars = ("content_hash", "nx", "ny", "shift", "h3_resolution")
    assert [getattr(a, k) for k in scalars] == [getattr(b, k) for k in scalars]
    for name in ARRAY_NAMES:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), name


def test_saved_index_is_memory_mapped_and_identical(small_layer, tmp_path):
    version = save_layer(small_layer, tmp_path)
    built = build_index(small_layer)
    assert save_index(built, version) == index_dir(version)
    loaded = load_index(version, small_layer)
    assert_same_index(built, loaded)
    for name in ARRAY_NAMES:
        array = getattr(loaded, name)
        if array.size:
            assert not array.flags.writeable and not array.flags.owndata, name
    assert sorted(p.name for p in index_dir(version).iterdir()) == sorted(
        ["manifest.json"] + [f"{name}.arrow" for name in ARRAY_NAMES])


def test_arrays_round_trip_without_copies(small_layer):
    built = build_index(small_layer)
    arrays = built.to_arrays()
    rebuilt = GridIndex.from_arrays(arrays)
    assert_same_index(built, rebuilt)
    assert np.shares_memory(rebuilt.strip_segments, arrays["strip_segments"])


def test_index_of_other_content_is_refused(small_layer, tmp_path):
    version = save_layer(small_layer, tmp_path)
    save_index(build_index(small_layer), version)
    other = GridLayer.from_geometries([shapely.box(114.25, 22.70, 114.26, 22.71)], {"grid_code": ["X"]})
    with pytest.raises(InvalidInput, match="other content"):
        load_index(version, other)
    with pytest.raises(InvalidInput, match="other content"):
        Assigner(other, load_index(version))
    with pytest.raises(NotFound):
        load_index(tmp_path / "nowhere")


def test_for_layer_builds_once_then_maps(small_layer, tmp_path, monkeypatch):
    layer = load_layer(save_layer(small_layer, tmp_path))
    first = Assigner.for_layer(layer)
    assert (index_dir(layer.extra["path"]) / "manifest.json").is_file()

    def no_build(*args, **kwargs):
        raise AssertionError("the saved index should have been loaded")

    monkeypatch.setattr("citygrid.engine.layers.assignment.build_index", no_build)
    second = Assigner.for_layer(layer)
    assert not second.index.cell_values.flags.owndata
    lng, lat = np.array([114.251, 114.255, 114.259]), np.array([22.701, 22.705, 22.709])
    assert np.array_equal(first.assign(lng, lat).grid_rows, second.assign(lng, lat).grid_rows)


def test_for_layer_works_when_the_version_directory_is_read_only(small_layer, tmp_path, monkeypatch):
    layer = load_layer(save_layer(small_layer, tmp_path))

    def read_only(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr("citygrid.engine.layers.assignment.save_index", read_only)
    assigner = Assigner.for_layer(layer)
    assert assigner.assign([114.255], [22.705]).grid_rows[0] >= 0
    assert not index_dir(layer.extra["path"]).exists()


def test_h3_cover_matches_h3_and_geos(small_layer):
    assigner = Assigner(small_layer)
    geoms = small_layer.geometries()
    resolution = assigner.h3_resolution
    assert resolution == index_module.DEFAULT_H3_RESOLUTION
    for row in range(small_layer.n_grids):
        cells, interior = assigner.cells_of_grid(row)
        assert cells.dtype == np.uint64 and interior.dtype == bool and len(cells) == len(interior)
        assert np.all(np.diff(cells.astype(np.float64)) > 0) or len(cells) < 2
        # The cell of a point inside the grid, as h3-py numbers it, is in the cover.
        inside = shapely.get_coordinates(shapely.point_on_surface(geoms[row]))[0]
        assert h3.str_to_int(h3.latlng_to_cell(inside[1], inside[0], resolution)) in set(cells.tolist())
        for cell, whole in zip(cells.tolist(), interior.tolist()):
            polygon = shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(h3.int_to_str(cell))])
            assert shapely.intersects(geoms[row], polygon)
            assert bool(shapely.covers(geoms[row], polygon)) == whole
            assert row in assigner.grids_of_cell(cell).tolist()
    assert any(assigner.cells_of_grid(row)[1].any() for row in range(small_layer.n_grids))
    assert len(assigner.grids_of_cell(h3.str_to_int(h3.latlng_to_cell(0.0, 0.0, resolution)))) == 0
    coarser = h3.str_to_int(h3.latlng_to_cell(22.705, 114.255, resolution - 1))
    assert len(assigner.grids_of_cell(coarser)) == 0


def test_h3_resolution_is_checked_and_huge_covers_refused(small_layer):
    with pytest.raises(InvalidInput, match="out of range"):
        build_index(small_layer, h3_resolution=16)
    huge = GridLayer.from_geometries([shapely.box(100, 20, 120, 40)], {"grid_code": ["province"]})
    with pytest.raises(InvalidInput, match="coarser resolution"):
        build_index(huge, h3_resolution=10)


@pytest.mark.parametrize("which", ["demo", "tracts"])
def test_index_size(request, which):
    """The index of the demo district and of the NYC tracts stays under 100 MB. Its build time is a
    figure of bench/test_locate.py::test_index_build (beside shapely's STRtree), not asserted here."""
    layer = request.getfixturevalue("demo_layer" if which == "demo" else "tracts")
    figures = build_index(layer).describe()
    print(f"\n{which}: {figures['nbytes'] / 1e6:.1f} MB (locate {figures['locate_nbytes'] / 1e6:.1f} MB), {figures}")
    assert figures["nbytes"] < 100e6
