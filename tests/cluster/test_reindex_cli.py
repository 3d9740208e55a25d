"""``citygrid reindex`` on the demo district: every building lands in the grid it was generated in."""

from __future__ import annotations

import json

import pyarrow as pa

from citygrid.cli.main import main
from citygrid.cluster import outputs

from cluster_env import assert_matches_local_engine, output_files


def test_reindex_demo_buildings_by_street(ray_session, data_dir, demo_dir, demo_version, tmp_path, capsys):
    out = tmp_path / "buildings-by-street"
    status = main([
        "--data-dir", str(data_dir), "reindex", str(demo_dir / "buildings.parquet"),
        "--layer", demo_version.version_id, "-o", str(out), "--task-rows", "20000", "--json",
    ])
    record = json.loads(capsys.readouterr().out)
    assert status == 0, record
    assert record["state"] == "succeeded" and record["rows_done"] == 60_000

    table = assert_matches_local_engine(out, demo_version, demo_dir / "buildings.parquet")
    # Buildings are generated strictly inside their grid: the job agrees with the generator.
    assert table.column("grid_code").cast(pa.string()).to_pylist() == table.column("input_grid_code").to_pylist()
    assert set(table.column("status").cast(pa.string()).to_pylist()) == {"inside"}
    # Partitioned by street: the 11 streets, each file's rows in its street.
    streets = {f.parent.name for f in output_files(out)}
    assert len(streets) == 11 and all(s.startswith("street_code=440307") for s in streets)
    codes = table.column("grid_code").cast(pa.string()).to_pylist()
    assert all(g[:9] == s for g, s in zip(codes, table.column("street_code").to_pylist()))
    assert record["partitions_written"] == len(output_files(out))
    assert (out / outputs.SUCCESS_MARKER).is_file()


def test_reindex_refuses_bad_requests(ray_session, data_dir, demo_dir, tmp_path, capsys):
    assert main(["--data-dir", str(data_dir), "reindex", "--resume", "reindex-000000000000"]) == 2
    assert "no job" in capsys.readouterr().err
    assert main(["--data-dir", str(data_dir), "reindex", str(demo_dir / "buildings.parquet"), "-o", str(tmp_path / "o")]) == 2
    assert "--layer" in capsys.readouterr().err
    assert main(["--data-dir", str(data_dir), "reindex", str(demo_dir / "buildings.parquet"), "--layer", "x",
                 "-o", str(tmp_path / "o"), "--address", "auto", "--workers", "2"]) == 2
    assert "--workers" in capsys.readouterr().err
