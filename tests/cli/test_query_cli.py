"""``citygrid query``: remote commands print JSON; failed calls print the status and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import shapely
from grpc_env import ADMIN_TOKEN, LAT0, LNG0

from citygrid.cli.main import EXIT_BROKEN_PIPE, main


def run(env, capsys, *args, token=ADMIN_TOKEN) -> tuple[int, str, str]:
    """``citygrid query ARGS --server S --token T`` (the connection options after the command)."""
    status = main(["query", *args, "--server", env.target, *(["--token", token] if token else [])])
    out, err = capsys.readouterr()
    return status, out, err


def test_point_grid_and_grids(env, capsys):
    status, out, _ = run(env, capsys, "point", str(LNG0 + 0.001), str(LAT0 + 0.001))
    answer = json.loads(out)
    assert status == 0 and answer["grid"]["code"] == "G000000@v1" and answer["layer_version"] == "v1"
    status, out, _ = run(env, capsys, "grid", "G000000@v1")
    assert status == 0 and json.loads(out)["community_code"] == "C00"
    status, out, _ = run(env, capsys, "grids", "--community", "C00")
    codes = [json.loads(line)["code"] for line in out.splitlines()]
    assert status == 0 and len(codes) == 25 and "G004004@v1" in codes


def test_layer_versions_and_token_from_the_environment(env, capsys, monkeypatch):
    monkeypatch.setenv("CITYGRID_TOKEN", ADMIN_TOKEN)
    status, out, _ = run(env, capsys, "layer", "versions", token=None)
    listed = json.loads(out)
    assert status == 0 and listed["active_version_id"] == "v1"
    assert [v["version_id"] for v in listed["versions"]][:3] == ["v1", "v2", "v3"]


def test_connection_options_before_the_command(env, capsys):
    status = main(["query", "--server", env.target, "--token", ADMIN_TOKEN, "whoami"])
    assert status == 0 and json.loads(capsys.readouterr().out)["role"] == "admin"


def test_failures_exit_2_with_the_status(env, capsys):
    status, _, err = run(env, capsys, "grid", "NOPE")
    assert status == 2 and err.startswith("citygrid query: NOT_FOUND:") and "NOPE" in err
    status, _, err = run(env, capsys, "whoami", token="bad-token")
    assert status == 2 and "UNAUTHENTICATED" in err


def test_json_prints_every_field_zeros_and_empty_strings_included(env, capsys):
    status, out, _ = run(env, capsys, "grid", "G000000@v1")
    grid = json.loads(out)
    assert status == 0 and grid["row"] == 0 and grid["name"] == "" and grid["street_name"] == ""
    status, out, _ = run(env, capsys, "grids", "--community", "C00")
    assert status == 0 and [json.loads(line)["row"] for line in out.splitlines()].count(0) == 1


def _grid_file(path, code_field: str, type_field: str):
    features = [{"type": "Feature", "properties": {code_field: f"U{i}", type_field: "park"},
                 "geometry": json.loads(shapely.to_geojson(shapely.box(LNG0 + i * 0.01, LAT0, LNG0 + (i + 1) * 0.01,
                                                                       LAT0 + 0.01)))}
                for i in range(3)]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def test_upload_names_the_fields_as_every_other_command_does(env, capsys, tmp_path):
    path = _grid_file(tmp_path / "grids.geojson", "ID", "KIND")
    status, out, err = run(env, capsys, "layer", "upload", str(path), "--version-id", "up-common",
                           "--code-field", "ID", "--type-field", "KIND")
    assert status == 0, err
    assert json.loads(out)["n_grids"] == 3
    layer = env.registry.get_layer("up-common")
    assert list(layer.codes) == ["U0", "U1", "U2"] and layer.column("grid_type").tolist() == ["park"] * 3
    status, out, err = run(env, capsys, "layer", "upload", str(path), "--version-id", "up-old", "--grid-field", "ID")
    assert status == 0 and "--grid-field is deprecated, use --code-field" in err


def test_a_layer_imported_into_the_servers_data_directory_is_listed_by_the_running_server(env, capsys, tmp_path):
    path = _grid_file(tmp_path / "imported.geojson", "ID", "KIND")
    status = main(["--data-dir", str(env.data_dir), "layer", "import", str(path), "--version-id", "imported",
                   "--code-field", "ID", "--type-field", "KIND"])
    out = capsys.readouterr().out
    assert status == 0 and "citygrid query layer publish imported" in out and "query layer upload" in out
    status, out, _ = run(env, capsys, "layer", "versions")
    listed = {v["version_id"]: v for v in json.loads(out)["versions"]}
    assert status == 0 and listed["imported"]["n_grids"] == 3 and listed["imported"]["published"] is False
    status, out, _ = run(env, capsys, "layer", "validate", "imported")  # the server loads it from its registry
    assert status == 0 and json.loads(out)["layer"]["n_grids"] == 3


def test_output_cut_short_by_its_reader_ends_quietly(env, tmp_path):
    """``citygrid … | head``: the reader goes away; no traceback, the status a SIGPIPE would give."""
    remote = ["query", "grids", "--server", env.target, "--token", ADMIN_TOKEN]
    local = ["--data-dir", str(env.data_dir), "layer", "list"]
    for argv in (remote, local):
        proc = subprocess.Popen([sys.executable, "-m", "citygrid.cli.main", *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        proc.stdout.close()  # the reader is gone before the first line
        with proc.stderr:
            err = proc.stderr.read()
        assert proc.wait(60) == EXIT_BROKEN_PIPE, err
        assert err == "", argv
