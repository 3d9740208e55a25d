"""``citygrid assign``: real point files (Shenzhen taxi trips, NYC 311) in, every row out in order with
its grid and parents; the answers are the engine's."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq
import pytest
import shapely

from citygrid.cli.main import main
from citygrid.engine.layers.assignment import Assigner, Status
from citygrid.engine.layers.coordinates import to_wgs84
from citygrid.engine.layers.layer import FieldMap, GridLayer
from citygrid.engine.layers.snapshots import save_layer
from citygrid.engine.layers.sources import read_layer

ADDED = ["grid_code", "status", "grid_row", "community_code", "community_name", "street_code", "street_name",
         "district_code", "district_name"]


@pytest.fixture(scope="module")
def taxi_csv(shared_data):
    return shared_data / "shenzhen" / "sz_taxi_trips_pygeo_tutorial_taxi-price.csv"


def test_taxi_trips_in_gcj02_against_a_saved_demo_version(demo_layer, taxi_csv, tmp_path, capsys):
    save_layer(demo_layer, tmp_path / "data")
    out = tmp_path / "taxi.parquet"
    code = main(["--data-dir", str(tmp_path / "data"), "assign", "--layer", demo_layer.version_id, str(taxi_csv),
                 "-o", str(out), "--crs", "gcj02"])
    assert code == 0
    assert "assigned 10,619 points" in capsys.readouterr().out
    source = pv.read_csv(taxi_csv)
    result = pq.read_table(out)
    assert result.column_names == source.column_names + ADDED
    # Numeric columns stay numeric (as pyarrow's own reader types them); other text is kept as written.
    for field in source.schema:
        if pa.types.is_integer(field.type) or pa.types.is_floating(field.type):
            assert result.schema.field(field.name).type == field.type, field.name
            assert result.column(field.name).equals(source.column(field.name)), field.name
    assert result.column("Stime").to_pylist()[0] == "2020-01-20 00:01:04"

    lng, lat = to_wgs84(source.column("Lng").to_numpy(), source.column("Lat").to_numpy(), "gcj02")
    expected = Assigner(demo_layer).assign(lng, lat)
    assert result.column("grid_row").to_numpy().tolist() == expected.grid_rows.tolist()
    assert (expected.status == Status.INSIDE).sum() > 1000  # trips start all over Shenzhen; many in Longgang
    inside = np.flatnonzero(expected.grid_rows >= 0)
    codes = demo_layer.codes
    assert result.column("grid_code").to_numpy(zero_copy_only=False)[inside].tolist() == codes[
        expected.grid_rows[inside]].tolist()
    assert set(result.column("district_name").to_pylist()) == {None, "龙岗区"}
    assert set(result.column("status").to_pylist()) <= {"inside", "shared_boundary", "outside"}


def test_nyc_311_with_the_tracts_file_to_csv(shared_data, tmp_path, capsys):
    """99.9 % of the 311 requests with coordinates fall in a tract; rows without coordinates are
    invalid, counted, and kept."""
    requests = shared_data / "nyc" / "nyc311_animals_2025_plotly.csv"
    out = tmp_path / "requests.csv"
    code = main(["assign", "--layer", str(shared_data / "nyc" / "nyct2020.shp"), "--code-field", "GEOID",
                 "--community-field", "NTA2020", str(requests), "-o", str(out)])
    assert code == 0
    summary = capsys.readouterr().out
    result = pv.read_csv(out, convert_options=pv.ConvertOptions(strings_can_be_null=True))
    assert result.num_rows == 4_969
    status = np.array(result.column("status").to_pylist())
    assert (status == "invalid").sum() == 4_969 - 4_907
    assert (status == "inside").sum() / 4_907 > 0.998
    assert "invalid 62" in summary
    tracts = read_layer(shared_data / "nyc" / "nyct2020.shp", FieldMap(grid_code="GEOID", community_code="NTA2020"))
    rows = result.column("grid_row").to_numpy()
    inside = rows >= 0
    assert np.array_equal(result.column("community_code").to_numpy(zero_copy_only=False)[inside].astype(str),
                          tracts.column("community_code")[rows[inside]].astype(str))


def test_parquet_in_with_named_columns_and_fallback(demo_layer, taxi_csv, tmp_path):
    table = pv.read_csv(taxi_csv).select(["orderid", "ELng", "ELat"])
    pq.write_table(table, tmp_path / "drops.parquet")
    grids = tmp_path / "grids.parquet"
    out = tmp_path / "drops-out.parquet"
    pq.write_table(pq.read_table(demo_layer.source), grids)
    code = main(["assign", "--layer", str(grids), str(tmp_path / "drops.parquet"), "-o", str(out),
                 "--lng-col", "ELng", "--lat-col", "ELat", "--fallback-m", "300"])
    assert code == 0
    statuses = set(pq.read_table(out).column("status").to_pylist())
    assert {"inside", "outside", "fallback"} <= statuses


@pytest.mark.parametrize(
    "args,output,message",
    [
        (["--lng-col", "nope"], "out.csv", "no longitude column 'nope'"),
        ([], "out.xlsx", "use .parquet, .pq, .csv"),
        (["--fallback-m", "-5"], "out.csv", "fallback_m"),
    ],
)
def test_bad_requests_exit_2_with_a_message(demo_layer, taxi_csv, tmp_path, capsys, args, output, message):
    argv = ["assign", "--layer", str(demo_layer.source), str(taxi_csv), "-o", str(tmp_path / output), *args]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.csv.partial").exists()


# ---------------------------------------------------------------------- small synthetic files


@pytest.fixture
def boxes(tmp_path):
    """Two unit boxes side by side (codes A and B) saved as version ``boxes`` in a data directory."""
    layer = GridLayer.from_geometries([shapely.box(114.0, 22.0, 114.1, 22.1), shapely.box(114.1, 22.0, 114.2, 22.1)],
                                      {"grid_code": ["A", "B"]}, version_id="boxes")
    save_layer(layer, tmp_path / "data")
    return tmp_path / "data"


def assign(data_dir, points, out, *args) -> int:
    return main(["--data-dir", str(data_dir), "assign", "--layer", "boxes", str(points), "-o", str(out), *args])


def test_unparsable_coordinates_become_invalid_rows_and_the_rest_is_assigned(boxes, tmp_path, capsys):
    points = tmp_path / "points.csv"
    points.write_text("id,lng,lat\n1,114.05,22.05\n2,abc,22.05\n3,114.15,22.05\n4,,22.05\n5,114.15,2x2\n"
                      "6, 114.05 ,+22.05\n")
    out = tmp_path / "out.parquet"
    assert assign(boxes, points, out) == 0
    assert "invalid 3" in capsys.readouterr().out
    table = pq.read_table(out)
    assert table.column("status").to_pylist() == ["inside", "invalid", "inside", "invalid", "invalid", "inside"]
    assert table.column("grid_code").to_pylist() == ["A", None, "B", None, None, "A"]
    # A column with a cell that is no number is kept as written; the ids stay numbers.
    assert table.column("lng").to_pylist() == ["114.05", "abc", "114.15", "", "114.15", " 114.05 "]
    assert table.column("id").type == pa.int64()


def test_unknown_output_suffixes_are_refused_with_the_accepted_ones(boxes, tmp_path, capsys):
    points = tmp_path / "points.csv"
    points.write_text("lng,lat\n114.05,22.05\n")
    assert assign(boxes, points, tmp_path / "x.txt") == 2
    err = capsys.readouterr().err
    assert "'.txt'" in err and ".parquet, .pq, .csv" in err
    assert not (tmp_path / "x.txt").exists() and not (tmp_path / "x.txt.partial").exists()


def test_csv_output_keeps_numbers_numeric_and_codes_as_written(boxes, tmp_path):
    points = tmp_path / "points.csv"
    points.write_text("id,code,price,big,note,odd,lng,lat\n"
                      "1,007,1.5,123456789012345678901,x,1,114.05,22.05\n"
                      "2,010,NA,5,\"a, b\",inf,114.15,22.05\n"
                      "-3,3,2e3,6,7,0x1F,114.15,22.05\n")
    out = tmp_path / "out.csv"
    assert assign(boxes, points, out) == 0
    lines = out.read_text().splitlines()
    assert lines[1].startswith('1,"007",1.5,"123456789012345678901","x","1",114.05,22.05,"A","inside",0,')
    assert ',"inf",' in lines[2] and ',"0x1F",' in lines[3]
    back = pv.read_csv(out)  # pyarrow's own inference reads the numbers back as numbers
    assert back.schema.field("id").type == pa.int64() and back.column("id").to_pylist() == [1, 2, -3]
    assert back.schema.field("price").type == pa.float64()
    assert back.column("price").to_pylist() == [1.5, None, 2000.0]
    assert back.schema.field("grid_row").type == pa.int64()
    codes = pv.read_csv(out, convert_options=pv.ConvertOptions(column_types={"code": pa.string()}))
    assert codes.column("code").to_pylist() == ["007", "010", "3"]
