"""``citygrid query``: remote commands print JSON; failed calls print the status and exit 2."""

from __future__ import annotations

import json

from grpc_env import ADMIN_TOKEN, LAT0, LNG0

from citygrid.cli.main import main


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
