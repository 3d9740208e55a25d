"""A re-index output read by the readers people use, each left to its defaults: the partition codes
come back as text, leading zeros kept, the rows in no street included (as null)."""

from __future__ import annotations

import json

import geopandas
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
import shapely

from citygrid.cli.main import main
from citygrid.cluster import outputs

#: The street codes of grids A, B, C (unit boxes side by side), written out: numeric-looking codes,
#: some with leading zeros (lost when read as numbers), some without (only the type would be wrong).
STREET_SETS = {"zeros": ("007", "010", "440307001"), "plain": ("440307001", "440307002", "440307003")}
#: The test points: (lng, lat) in grids A, B, C, A and outside every grid.
POINTS = [(0.5, 0.5), (1.5, 0.5), (2.5, 0.5), (0.2, 0.7), (9.0, 9.0)]
GRIDS = ["A", "B", "C", "A", None]


@pytest.fixture(scope="module", params=sorted(STREET_SETS))
def streets(request) -> tuple[str, str, str]:
    return STREET_SETS[request.param]


@pytest.fixture(scope="module")
def output(ray_session, tmp_path_factory, streets):
    root = tmp_path_factory.mktemp("outputs")
    grids = root / "grids.geojson"
    grids.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"grid_code": code, "street_code": street},
         "geometry": json.loads(shapely.to_geojson(shapely.box(x, 0.0, x + 1.0, 1.0)))}
        for x, (code, street) in enumerate(zip("ABC", streets))]}))
    lng, lat = zip(*POINTS)
    frame = geopandas.GeoDataFrame({"row_id": range(len(POINTS)), "lng": lng, "lat": lat},
                                   geometry=geopandas.points_from_xy(lng, lat), crs="OGC:CRS84")
    frame.to_parquet(root / "points.parquet")  # GeoParquet, so geopandas can read the output too
    out = root / "out"
    status = main(["--data-dir", str(root / "data"), "reindex", str(root / "points.parquet"), "--layer", str(grids),
                   "-o", str(out)])
    assert status == 0
    return out


@pytest.fixture
def expected(streets) -> list[str | None]:
    """The street of each point, from the grids as drawn."""
    return [streets["ABC".index(grid)] if grid else None for grid in GRIDS]


def as_text(values) -> list[str | None]:
    return [None if pd.isna(v) else v for v in values]


def test_the_partition_folders_are_no_hive_partitions(output, streets):
    folders = sorted(p.relative_to(output).parent.as_posix() for p in output.rglob("part-*.parquet"))
    assert folders == sorted([f"street_code/{s}" for s in streets] + ["street_code/@null"])


def test_pyarrow_dataset_with_hive_partitioning(output, expected):
    table = ds.dataset(output, format="parquet", partitioning="hive").to_table().sort_by("row_id")
    assert pa.types.is_string(table.schema.field("street_code").type.value_type)
    assert table.column("street_code").to_pylist() == expected


def test_pandas_read_parquet(output, expected):
    frame = pd.read_parquet(output).sort_values("row_id")
    assert as_text(frame["street_code"]) == expected
    assert as_text(frame["grid_code"]) == GRIDS


def test_geopandas_read_parquet(output, expected):
    frame = geopandas.read_parquet(output).sort_values("row_id")
    assert as_text(frame["street_code"]) == expected
    assert frame.geometry.x.tolist() == [lng for lng, _ in POINTS]


def test_duckdb_with_hive_partitioning(output, expected):
    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(f"SELECT row_id, street_code, typeof(street_code) FROM read_parquet('{output}/**/*.parquet', "
                      "hive_partitioning = true) ORDER BY row_id").fetchall()
    assert [street for _, street, _ in rows] == expected
    assert {kind for _, _, kind in rows} == {"VARCHAR"}


def test_open_output_and_a_filter_on_the_partition_column(output, streets):
    dataset = outputs.open_output(output)
    rows = dataset.to_table(filter=ds.field("street_code") == streets[0]).column("row_id").to_pylist()
    assert sorted(rows) == [0, 3]
