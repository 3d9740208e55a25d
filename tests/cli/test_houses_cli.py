"""``citygrid houses`` against ``citygrid serve --demo`` (a real process on a real port) whose demo folder
holds the district's grids and workers and two communities' buildings, units, residents and
businesses: the registry is loaded at the first start and only opened at the second; and
``citygrid houses load`` (local) with a report of the refused rows.

Expectations come from the Parquet files (pandas), not from the engine."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from grpc_env import start_serve, stop_serve, wait_for_line
from house_world import write_world

from citygrid.cli.main import main
from citygrid.engine.houses.codes import QrKeyring
from citygrid.engine.houses.host import GENERATED_KEY_ID, KEY_FILE



@pytest.fixture(scope="module")
def served(tmp_path_factory, demo_dir):
    root = tmp_path_factory.mktemp("houses-cli")
    demo = root / "data" / "demo"
    demo.mkdir(parents=True)
    for name in ("grids.parquet", "workers.parquet"):
        (demo / name).symlink_to(demo_dir / name)
    frames = write_world(demo_dir, demo, grids=False)
    args = ["--data-dir", str(root / "data"), "--demo"]
    proc, port, lines = start_serve(args, root)
    token = wait_for_line(proc, lines, r"admin token: (\S+)").group(1)
    wait_for_line(proc, lines, r"ready: active layer version demo-")
    yield root, proc, port, lines, token, frames, args
    stop_serve(proc)


def houses(capsys, target, token, *args) -> tuple[int, str, str]:
    status = main(["houses", *args, "--server", target, "--token", token])
    out, err = capsys.readouterr()
    return status, out, err


def test_serve_demo_loads_the_registry_and_the_cli_reads_it(served, capsys):
    root, proc, port, lines, token, frames, _ = served
    target = f"127.0.0.1:{port}"
    loaded = wait_for_line(proc, lines, r"house registry buildings: ([\d,]+) loaded; units: ([\d,]+) loaded; "
                                        r"residents: ([\d,]+) loaded")
    assert [int(g.replace(",", "")) for g in loaded.groups()] == [len(frames[n]) for n in ("buildings", "units", "residents")]
    row = frames["units"].iloc[10]
    status, out, _ = houses(capsys, target, token, "get", row.building_code)
    assert status == 0 and json.loads(out)["code"] == row.building_code
    status, out, _ = houses(capsys, target, token, "units", row.building_code)
    assert [json.loads(line)["code"] for line in out.splitlines()] == \
        sorted(frames["units"].query("building_code == @row.building_code").unit_code)
    status, out, _ = houses(capsys, target, token, "find", "--grid", row.grid_code)
    assert sorted(json.loads(line)["building"]["code"] for line in out.splitlines()) == \
        sorted(frames["buildings"].query("grid_code == @row.grid_code").building_code)
    status, out, _ = houses(capsys, target, token, "population", "--level", "grid")
    counts = {d["code"]: sum(v for k, v in d.items() if k not in ("level", "code")) for d in map(json.loads, out.splitlines())}
    assert {k: v for k, v in counts.items() if v} == frames["residents"].groupby("grid_code").size().to_dict()
    status, out, _ = houses(capsys, target, token, "residents", "grid", row.grid_code, "--reason", "核对")
    names = {d["resident_id"]: d["name"] for d in map(json.loads, out.splitlines())}
    assert names == frames["residents"].query("grid_code == @row.grid_code").set_index("resident_id").name.to_dict()
    status, out, _ = houses(capsys, target, token, "export", "grid", row.grid_code, "--reason", "统计", "--page-size", "3")
    exported = {d["resident_id"]: d["name"] for d in map(json.loads, out.splitlines())}
    assert status == 0 and exported == {k: v[0] + "*" * (len(v) - 2) + v[-1] if len(v) > 2 else v[0] + "*"
                                        for k, v in names.items()}
    someone = sorted(names)[0]
    status, out, _ = houses(capsys, target, token, "history", someone, "--reason", "核查")
    home = frames["residents"].set_index("resident_id").unit_code[someone]
    assert status == 0 and [(d["unit_code"], d["moved_out"]) for d in map(json.loads, out.splitlines())] == [(home, "")]
    keyring = QrKeyring.from_config({GENERATED_KEY_ID: (root / "data" / KEY_FILE).read_text().strip()}, GENERATED_KEY_ID)
    status, out, _ = houses(capsys, target, token, "resolve", keyring.sign(row.unit_code))
    assert status == 0 and json.loads(out)["unit"]["code"] == row.unit_code
    plate = keyring.sign(row.unit_code)
    status, _, err = houses(capsys, target, token, "resolve", plate[:-1] + ("A" if plate[-1] != "A" else "B"))
    assert status == 2 and "UNAUTHENTICATED" in err
    dwelling = frames["units"].query("kind == 'dwelling'").iloc[3].unit_code
    status, out, _ = houses(capsys, target, token, "move-in", "CLI-1", dwelling, "--name", "王小明", "--birth-year", "1990",
                            "--non-registered")
    assert status == 0 and json.loads(out)["unit_code"] == dwelling
    status, _, err = houses(capsys, target, token, "move-in", "CLI-1", dwelling)
    assert status == 2 and "ALREADY_EXISTS" in err


def test_a_second_start_opens_the_registry_without_loading_it_again(served, capsys):
    root, proc, port, lines, token, frames, args = served
    stop_serve(proc)
    proc, port, again = start_serve(args, root)
    try:
        token = wait_for_line(proc, again, r"admin token: (\S+)").group(1)
        wait_for_line(proc, again, r"ready: active layer version demo-")
        assert any("house registry already loaded" in line for line in again)
        status, out, _ = houses(capsys, f"127.0.0.1:{port}", token, "residents", "unit",
                                frames["units"].query("kind == 'dwelling'").iloc[3].unit_code, "--reason", "复查")
        assert status == 0 and "CLI-1" in out  # the move-in of the first start is there
    finally:
        stop_serve(proc)


def test_load_reports_refused_rows_and_strict_loads_nothing(demo_dir, demo_layer, tmp_path, capsys):
    from citygrid.engine.layers.registry import LayerRegistry

    data = tmp_path / "data"
    layers = LayerRegistry(data)
    layers.register(demo_layer)
    layers.publish(demo_layer.version_id)
    layers.activate(demo_layer.version_id)
    layers.close()
    files = tmp_path / "files"
    files.mkdir()
    frames = write_world(demo_dir, files, grids=False)
    buildings = pq.read_table(files / "buildings.parquet")
    bad = buildings.slice(0, 1).set_column(0, "building_code", pa.array(["44030700100100X0001"]))
    pq.write_table(pa.concat_tables([buildings, bad]), files / "buildings.parquet")
    residents = pq.read_table(files / "residents.parquet")
    lost = residents.slice(0, 1).set_column(0, "resident_id", pa.array(["LOST-1"]))
    lost = lost.set_column(lost.schema.get_field_index("unit_code"), "unit_code",
                           pa.array([frames["units"].unit_code.iloc[0][:19] + "9999"]))
    pq.write_table(pa.concat_tables([residents, lost]), files / "residents.parquet")

    status = main(["--data-dir", str(data), "houses", "load", str(files), "--strict"])
    _, err = capsys.readouterr()
    assert status == 2 and "nothing was written" in err
    status = main(["--data-dir", str(data), "houses", "load", str(files)])
    out = capsys.readouterr().out
    assert status == 1
    assert re.search(rf"buildings: {len(frames['buildings']):,} loaded", out)
    assert re.search(rf"residents: {len(frames['residents']):,} loaded", out)
    assert "refused buildings row" in out and "44030700100100X0001" in out
    assert "refused residents row" in out and "LOST-1" in out and "unknown unit" in out
