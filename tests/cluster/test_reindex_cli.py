"""``citygrid reindex`` on the demo district: every building lands in the grid it was generated in."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pyarrow as pa
import pytest
import pyarrow.parquet as pq
import shapely

from citygrid.cli.main import main
from citygrid.cluster import outputs
from citygrid.cluster.jobs import JobStore

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
    folders = {f.relative_to(out).parent for f in output_files(out)}
    assert len(folders) == 11 and all(f.parent.name == "street_code" and f.name.startswith("440307") for f in folders)
    assert all(pq.read_table(f).column("street_code").unique().to_pylist() == [f.parent.name]
               for f in output_files(out))
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


def test_rays_driver_log_keeps_its_errors_only(ray_session):
    """Ray's own warnings stay off the console (the slow test below shows it in a fresh process); its
    errors still come through."""
    ray_log = logging.getLogger("ray._private.worker")
    assert not ray_log.isEnabledFor(logging.WARNING) and ray_log.isEnabledFor(logging.ERROR)


def job_ids(data_dir) -> list[str]:
    store = JobStore(data_dir)
    try:
        return [job.job_id for job in store.list(limit=1_000_000)]
    finally:
        store.close()


def test_an_output_that_is_taken_is_refused_before_a_job_or_ray_starts(data_dir, demo_dir, demo_version, tmp_path,
                                                                        capsys):
    """A non-empty directory, a file, another job's output: exit 2 with the reason at once, no job
    recorded (so no Ray started for it) and no --resume offered."""
    jobs_before = job_ids(data_dir)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    (tmp_path / "file").write_text("a file")
    other = tmp_path / "other"
    other.mkdir()
    (other / outputs.JOB_MARKER).write_text(json.dumps({"job_id": "reindex-0123456789ab"}))
    for output, reason in ((taken, "exists and is not empty"), (tmp_path / "file", "is a file"),
                           (other, "holds the output of job reindex-0123456789ab")):
        status = main(["--data-dir", str(data_dir), "reindex", str(demo_dir / "buildings.parquet"),
                       "--layer", demo_version.version_id, "-o", str(output)])
        out, err = capsys.readouterr()
        assert status == 2 and reason in err and out == "", err
    assert (taken / "notes.txt").read_text() == "mine" and sorted(p.name for p in taken.iterdir()) == ["notes.txt"]
    assert job_ids(data_dir) == jobs_before


@pytest.mark.slow  # a fresh process starts its own Ray: most of a minute on a busy machine
def test_the_command_shows_no_log_lines_of_ray(tmp_path):
    """A fresh process starts its own local Ray: stderr holds the command's own line, not Ray's INFO and
    WARNING lines (token authentication, SIGTERM handler, "Started a local Ray instance")."""
    grids = tmp_path / "grids.geojson"
    grids.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"grid_code": code, "street_code": "007"},
         "geometry": json.loads(shapely.to_geojson(shapely.box(x, 0.0, x + 1.0, 1.0)))}
        for code, x in (("A", 0.0), ("B", 1.0))]}))
    points = tmp_path / "points.parquet"
    pq.write_table(pa.table({"lng": [0.5, 1.5, 1.7, 5.0], "lat": [0.5, 0.5, 0.2, 0.5]}), points)
    proc = subprocess.run(
        [sys.executable, "-m", "citygrid.cli.main", "--data-dir", str(tmp_path / "data"), "reindex", str(points),
         "--layer", str(grids), "-o", str(tmp_path / "out"), "--workers", "1"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "succeeded: 4 rows" in proc.stdout and "inside 3, outside 1" in proc.stdout
    assert [line for line in proc.stderr.splitlines() if not line.startswith("citygrid reindex: job ")] == []
