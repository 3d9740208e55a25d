"""``citygrid serve --demo`` on the demo district: it listens on loopback at once and answers health
checks NOT_SERVING while it prepares the district, then prints a fresh admin token (the previous
start's no longer works), serves the 3,823 grids, and a community's dashboard sees its own grids only."""

from __future__ import annotations

import re

import grpc
import numpy as np
import pytest
import shapely
from grpc_env import start_serve, stop_serve, wait_for_line

from citygrid.grpc_api.client import CityGridClient


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory, demo_dir, demo_layer):
    """The demo served on a data directory for the second time (no ``--host``): the address, the
    admin token, the log, the admin token of the first start, and what health and a call answered
    right after the first start began listening, while it imported the layer (index, cover) and
    loaded the 4,500 workers (the demo's files are there, reused, not regenerated)."""
    root = tmp_path_factory.mktemp("serve-demo")
    (root / "data" / "demo").mkdir(parents=True)
    for name in ("grids.parquet", "workers.parquet", "buildings.parquet"):
        (root / "data" / "demo" / name).symlink_to(demo_dir / name)
    args = ["--data-dir", str(root / "data"), "--demo"]
    proc, port, lines = start_serve(args, root, host=None)
    with CityGridClient(f"127.0.0.1:{port}", timeout=5) as early:
        starting = early.health()
        with pytest.raises(grpc.RpcError) as refused:
            early.list_versions()
    first = _token(proc, lines)
    with CityGridClient(f"127.0.0.1:{port}", timeout=5) as late:
        ready = late.health()
    stop_serve(proc)
    proc, port, again = start_serve(args, root, host=None)
    yield f"127.0.0.1:{port}", _token(proc, again), again, first, (starting, refused.value, ready)
    stop_serve(proc)


def _token(proc, lines: list[str]) -> str:
    """The admin token a start printed, once it is ready."""
    token = wait_for_line(proc, lines, r"admin token: (\S+)").group(1)
    wait_for_line(proc, lines, r"ready: active layer version demo-")
    return token


def test_health_says_not_serving_while_the_demo_is_prepared(demo_server):
    """Not a timeout: the server listens first, answers NOT_SERVING (other calls UNAVAILABLE with a
    reason) while it imports the demo district, and SERVING once it is ready."""
    *_, (starting, refused, ready) = demo_server
    assert starting == "NOT_SERVING"
    assert refused.code() is grpc.StatusCode.UNAVAILABLE and "starting" in refused.details()
    assert ready == "SERVING"


def test_the_demo_listens_on_loopback_only(demo_server):
    _, _, lines, *_ = demo_server
    [listening] = [line for line in lines if "listening on" in line]
    assert re.search(r"listening on 127\.0\.0\.1:\d+ \(plain text\)", listening), listening


def test_a_new_demo_start_revokes_the_previous_demo_admin_token(demo_server):
    target, token, _, earlier, _ = demo_server
    assert token != earlier
    with CityGridClient(target, token) as admin:
        assert admin.whoami().principal == "demo admin"
        assert [t.principal for t in admin.list_tokens().tokens].count("demo admin") == 1
    with CityGridClient(target, earlier) as old:
        with pytest.raises(grpc.RpcError) as info:
            old.whoami()
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED and "revoked" in info.value.details()


def test_demo_serves_the_district_with_a_fresh_admin_token(demo_server, demo_layer, rng):
    target, token, lines, *_ = demo_server
    assert len(token) >= 40
    assert "generating the demo district" not in "".join(lines)  # the symlinked grids were reused
    grids = demo_layer.geometries()
    rows = rng.choice(demo_layer.n_grids, 200, replace=False)
    points = shapely.point_on_surface(grids[rows])
    with CityGridClient(target, token) as admin:
        versions = admin.list_versions()
        assert versions.active_version_id.startswith("demo-")
        batch = admin.assign_points(shapely.get_x(points), shapely.get_y(points))
        assert np.array_equal(batch.codes(), demo_layer.codes[rows])
        one = admin.assign_point(shapely.get_x(points[0]), shapely.get_y(points[0]))
        record = demo_layer.record(int(rows[0]))
        assert (one.grid.code, one.grid.community_code, one.grid.street_code, one.grid.district_code) == (
            record["grid_code"], record["community_code"], record["street_code"], record["district_code"])


def test_a_community_dashboard_sees_only_its_community(demo_server, demo_layer):
    target, token, *_ = demo_server
    community = demo_layer.record(0)["community_code"]
    own = set(demo_layer.codes[demo_layer.column("community_code") == community])
    with CityGridClient(target, token) as admin:
        dashboard_token = admin.issue_token(f"{community} 大屏", "dashboard", [community]).token
    with CityGridClient(target, dashboard_token) as dashboard:
        assert {g.code for g in dashboard.list_grids()} == own
        foreign = next(code for code in demo_layer.codes if code not in own)
        with pytest.raises(grpc.RpcError) as info:
            dashboard.get_grid(foreign)
        assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED



def test_each_demo_start_makes_a_detection_run(demo_server):
    """Without ``--events`` the store holds no events: the run judges from where the first start's
    run left off (today, on the server's clock) and raises nothing."""
    log = demo_server[2]
    runs = [re.search(r"alerts: first detection run judged (\S+) \.\. (\S+) \((\d+) events\): (\d+) alerts raised",
                      line) for line in log]
    [run] = [r for r in runs if r]
    assert run.group(1) == run.group(2) and run.group(3) == "0" and run.group(4) == "0"
