"""``citygrid layer validate``: exit codes (0 valid, 1 invalid, 2 unreadable), JSON, plots, saved versions."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from citygrid.cli.main import main

LNG0, LAT0, STEP = 114.05, 22.6, 0.002


def write_geojson(path, geoms, codes, **columns) -> str:
    features = [
        {
            "type": "Feature",
            "properties": {"grid_code": code, **{k: v[i] for k, v in columns.items()}},
            "geometry": shapely.geometry.mapping(geom),
        }
        for i, (geom, code) in enumerate(zip(geoms, codes))
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return str(path)


def cell(i, j, n=1):
    return shapely.box(LNG0 + i * STEP, LAT0 + j * STEP, LNG0 + (i + n) * STEP, LAT0 + (j + n) * STEP)


@pytest.fixture
def clean_files(tmp_path):
    """A 3 x 3 grid layer, its outline, and two parents (left column, the rest) with parent codes."""
    grids = [cell(i, j) for i in range(3) for j in range(3)]
    codes = [f"G{i}{j}" for i in range(3) for j in range(3)]
    parent_of = ["P1" if i == 0 else "P2" for i in range(3) for j in range(3)]
    return {
        "grids": write_geojson(tmp_path / "grids.geojson", grids, codes, community_code=parent_of),
        "boundary": write_geojson(tmp_path / "outline.geojson", [cell(0, 0, 3)], ["D"]),
        "parents": write_geojson(
            tmp_path / "parents.geojson",
            [shapely.box(LNG0, LAT0, LNG0 + STEP, LAT0 + 3 * STEP), shapely.box(LNG0 + STEP, LAT0, LNG0 + 3 * STEP, LAT0 + 3 * STEP)],
            ["P1", "P2"],
            community_code=["P1", "P2"],
        ),
    }


def run(capsys, *argv):
    status = main(["layer", "validate", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


def test_clean_layer_with_boundary_and_parents_exits_0(clean_files, capsys, tmp_path):
    status, out, err = run(
        capsys, clean_files["grids"], "--boundary", clean_files["boundary"], "--parents", clean_files["parents"],
        "--parent-code-field", "community_code", "--json",
    )
    assert status == 0, out + err
    doc = json.loads(out)
    assert doc["valid"] is True
    assert doc["boundary"]["coverage_pct"] == pytest.approx(100.0)
    assert doc["nesting"]["n_code_agrees"] == 9 and doc["nesting"]["n_parents"] == 2
    assert err == ""  # no progress bar with --json


def test_text_report_and_plot(clean_files, capsys, tmp_path):
    png = tmp_path / "out.png"
    status, out, _ = run(capsys, clean_files["grids"], "--boundary", clean_files["boundary"], "--plot", png)
    assert status == 0
    assert ": VALID" in out.splitlines()[0] and "100.0000 %" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_saved_version_id_is_accepted(clean_files, capsys, tmp_path):
    data_dir = tmp_path / "data"
    assert main(["--data-dir", str(data_dir), "layer", "import", clean_files["grids"], "--version-id", "grids-v1"]) == 0
    capsys.readouterr()
    status = main(["--data-dir", str(data_dir), "layer", "validate", "grids-v1", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert status == 0 and doc["layer"]["version_id"] == "grids-v1"


def test_community_districts_are_invalid_exit_1(shared_data, capsys):
    status, out, _ = run(capsys, shared_data / "nyc" / "community_districts_chriswhong.geojson",
                         "--code-field", "BoroCD", "--json")
    assert status == 1
    doc = json.loads(out)
    assert doc["valid"] is False
    assert doc["summary"]["n_overlaps"] == 2
    assert sum(g["area_m2"] > 10_000 for g in doc["gaps"]) == 4


def test_tracts_nest_in_ntas(shared_data, capsys):
    nyc = shared_data / "nyc"
    status, out, _ = run(capsys, nyc / "nyct2020.shp", "--code-field", "GEOID", "--parents", nyc / "nynta2020.shp",
                         "--parent-code-field", "NTA2020", "--json")
    assert status == 0
    doc = json.loads(out)
    assert doc["nesting"]["n_nested"] == doc["nesting"]["n_code_agrees"] == 2325
    assert doc["summary"]["n_slivers"] > 0 and doc["nesting_errors"] == []


def test_a_gap_makes_the_exit_status_1_and_the_sliver_option_tolerates_it(tmp_path, capsys):
    grids = [cell(0, 0), shapely.box(LNG0 + STEP + 1e-6, LAT0, LNG0 + 2 * STEP, LAT0 + STEP)]  # a 0.1 m gap
    path = write_geojson(tmp_path / "gap.geojson", grids, ["A", "B"])
    boundary = write_geojson(tmp_path / "b.geojson", [cell(0, 0, 2) & shapely.box(0, 0, 200, LAT0 + STEP)], ["D"])
    assert run(capsys, path, "--boundary", boundary)[0] == 1
    status, out, _ = run(capsys, path, "--boundary", boundary, "--sliver-m2", 50, "--json")
    assert status == 0
    assert len(json.loads(out)["slivers"]["gaps"]) == 1


@pytest.mark.parametrize(
    "content",
    [b"", b"not a grid file at all", bytes(range(256)) * 8, b'{"type": "FeatureCollection", "features": [',
     b'{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"grid_code": "A"}, '
     b'"geometry": {"type": "Point", "coordinates": [114, 22]}}]}'],
    ids=["empty", "text", "binary", "truncated", "points"],
)
def test_unreadable_grid_file_exits_2_with_one_line(tmp_path, capsys, content):
    path = tmp_path / "garbage.geojson"
    path.write_bytes(content)
    status, out, err = run(capsys, path)
    assert status == 2
    assert out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("citygrid layer: ")


def test_missing_inputs_and_bad_options_exit_2(clean_files, tmp_path, capsys):
    garbage = tmp_path / "outline.geojson"
    garbage.write_bytes(b"\x00\x01garbage")
    cases = [
        [tmp_path / "nope.geojson"],
        [clean_files["grids"], "--boundary", garbage],
        [clean_files["grids"], "--parents", tmp_path / "nope.shp", "--parent-code-field", "community_code"],
        [clean_files["grids"], "--parent-code-field", "community_code"],
        [clean_files["grids"], "--code-field", "NO_SUCH_COLUMN"],
        [clean_files["grids"], "--parents", clean_files["parents"], "--parent-code-field", "NO_SUCH_COLUMN"],
        [clean_files["grids"], "--plot", tmp_path / "no" / "such" / "dir.png"],
    ]
    for argv in cases:
        status, out, err = run(capsys, *argv)
        assert status == 2, argv
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_parquet_with_broken_wkb_exits_2(tmp_path, capsys):
    path = tmp_path / "broken.parquet"
    pq.write_table(pa.table({"geometry": [b"\x01\x03garbage"], "grid_code": ["A"]}), path)
    status, _, err = run(capsys, path)
    assert status == 2 and "Traceback" not in err
