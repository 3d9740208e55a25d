"""``citygrid serve --demo --events``: the demo's year of events is written into the event store at
start, ending at the intake clock's present (``[intake] clock_start`` here, so the test does not
depend on when it runs), so today has events and AnalyticsService counts them; a second start on
the same data directory writes nothing more."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pyarrow.parquet as pq
import pytest
from grpc_env import start_serve, stop_serve, wait_for_line

from citygrid.grpc_api.client import CityGridClient

#: The intake clock's start: a Wednesday morning in Shenzhen.
CLOCK_START = datetime.fromisoformat("2026-03-11T10:00:00+08:00")


def _start(root, lines_of):
    proc, port, lines = start_serve(["--config", str(root / "citygrid.toml"), "--demo", "--events"], root)
    token = wait_for_line(proc, lines, r"admin token: (\S+)").group(1)
    wait_for_line(proc, lines, r"ready: active layer version demo-")
    lines_of.append(lines)
    return proc, f"127.0.0.1:{port}", token


@pytest.fixture(scope="module")
def served(tmp_path_factory, demo_dir):
    root = tmp_path_factory.mktemp("serve-events")
    (root / "data" / "demo").mkdir(parents=True)
    for name in ("grids.parquet", "workers.parquet", "buildings.parquet", "events.parquet", "residents.parquet"):
        (root / "data" / "demo" / name).symlink_to(demo_dir / name)
    (root / "citygrid.toml").write_text(f'[server]\ndata_dir = "data"\n[intake]\nclock_start = {CLOCK_START.isoformat()}\n')
    logs: list = []
    proc, target, token = _start(root, logs)
    with CityGridClient(target, token) as client:
        first = client.aggregate(CLOCK_START - timedelta(days=400), CLOCK_START + timedelta(hours=1),
                                 measures=["reported", "closed"]).to_pylist()[0]
        today = client.aggregate(CLOCK_START.replace(hour=0), CLOCK_START + timedelta(hours=1),
                                 dimensions=["state"]).to_pydict()
    stop_serve(proc)
    proc, target, token = _start(root, logs)
    with CityGridClient(target, token) as client:
        second = client.aggregate(CLOCK_START - timedelta(days=400), CLOCK_START + timedelta(hours=1),
                                  measures=["reported", "closed"]).to_pylist()[0]
    stop_serve(proc)
    return first, today, second, logs


def test_the_year_is_in_the_store_ending_now(served, demo_dir):
    first, today, _, logs = served
    written = int(re.search(r"demo district: ([\d,]+) events", "".join(logs[0])).group(1).replace(",", ""))
    n_demo = pq.read_metadata(demo_dir / "events.parquet").num_rows
    assert first["reported"] == written and 0.95 * n_demo < written <= n_demo
    assert 0.8 * written < first["closed"] < written
    # Today (local) has reports, some still open.
    assert sum(today["reported"]) > 0 and set(today["state"]) - {"closed", "rejected", "duplicate"}


def test_a_second_start_writes_nothing_more(served):
    first, _, second, logs = served
    assert second == first
    assert any("in the store already" in line for line in logs[1])
