"""``citygrid serve --demo --events`` raises the demo's anomalies as alerts: once the year of events
is in the store (moved forward by whole weeks to end at the intake clock's present, here a
``clock_start`` at 03:00 on a public holiday), the first detection run judges it, and the alerts a
supervisor lists cover the labelled anomalies (moved by the same weeks), with few false ones; the
run's space-time scan of today adds disc alerts (each covering the grids it holds)."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from grpc_env import start_serve, stop_serve, wait_for_line

from citygrid.engine.alerts import scoring as SC
from citygrid.engine.alerts.series import category_classes
from citygrid.engine.cases.taxonomy import load_taxonomy
from citygrid.grpc_api.client import CityGridClient

CST = ZoneInfo("Asia/Shanghai")
CLOCK_START = dt.datetime(2026, 5, 1, 3, 0, tzinfo=CST)  # 03:00 on Labour Day
YEAR = dt.datetime(2025, 1, 1, tzinfo=CST)


@pytest.fixture(scope="module")
def served(tmp_path_factory, demo_dir):
    root = tmp_path_factory.mktemp("serve-alerts")
    (root / "data" / "demo").mkdir(parents=True)
    for name in ("grids.parquet", "workers.parquet", "buildings.parquet", "events.parquet", "residents.parquet"):
        (root / "data" / "demo" / name).symlink_to(demo_dir / name)
    (root / "citygrid.toml").write_text(f'[server]\ndata_dir = "data"\n[intake]\nclock_start = {CLOCK_START.isoformat()}\n')
    proc, port, lines = start_serve(["--config", str(root / "citygrid.toml"), "--demo", "--events"], root)
    try:
        token = wait_for_line(proc, lines, r"admin token: (\S+)").group(1)
        wait_for_line(proc, lines, r"ready: active layer version demo-")
        with CityGridClient(f"127.0.0.1:{port}", token) as client:
            alerts = list(client.list_alerts(page_size=1000))
    finally:
        stop_serve(proc)
    return alerts, "".join(lines)


def test_the_first_run_raises_the_demo_anomalies(served, demo_dir):
    alerts, log = served
    weeks = int(re.search(r"moved (\d+) weeks forward", log).group(1))
    run = re.search(r"alerts: first detection run judged (\S+) \.\. (\S+) \((\d+) events\): (\d+) alerts raised", log)
    assert run.group(2) == CLOCK_START.date().isoformat() and int(run.group(4)) == len(alerts) > 0
    shifted_year = YEAR + dt.timedelta(weeks=weeks)
    n_days = (dt.date.fromisoformat(run.group(2)) - dt.date.fromisoformat(run.group(1))).days + 1

    def day(text):  # days since the shifted year's first day, the frame the labels are read in
        return (dt.date.fromisoformat(text) - shifted_year.date()).days

    labelled = SC.read_labelled(demo_dir, YEAR)  # the labels' days count from the year's start either way
    # the events moved past the present were left out: score the anomalies over before it
    over = np.flatnonzero(labelled.last_day < day(run.group(2)))
    labelled = SC.Labelled(*([getattr(labelled, f)[k] for k in over] if f in ("ids", "kinds", "categories", "grids")
                             else getattr(labelled, f)[over] for f in ("ids", "kinds", "categories", "grids",
                                                                         "first_day", "last_day")))
    assert len(labelled.ids) >= 30
    # an area alert covers its grid; a disc alert of the scan every grid it holds
    covered = [frozenset(a.grids) if a.level == "disc" else frozenset((a.unit_code,)) for a in alerts]
    score = SC.score(SC.Alerts([a.category_code for a in alerts], covered,
                               np.array([day(a.first_day) for a in alerts]), np.array([day(a.last_day) for a in alerts])),
                     labelled, n_days, category_classes(load_taxonomy()))  # a class alert covers its categories
    # The small demo (20,000 events): spikes of a few events, clusters scaled down to a handful
    # spread over grids and days; the full year's figures are measured in bench/test_alert_service.py.
    assert score.recall["spike"] >= 0.9, score.recall
    assert score.false_per_day <= 1.0, score.false_per_day
    assert all(a.state == "new" and a.level in ("grid", "disc") for a in alerts)
    assert all(a.kind == "scan" and a.method == "stp" and a.p < 0.005 and a.grids for a in alerts if a.level == "disc")
