"""The shipped alert defaults through the service, scored against the demo's labelled anomalies.

    .venv/bin/pytest bench/test_alert_service.py --benchmark-only -s
    CITYGRID_DEMO_DIR=/path/to/a/generated/demo ...   (reuse a demo generated with the default seed)

A server (``create_server``, a real port) over a fresh data directory with the demo district active
and its intake's clock at 00:30 on 1 January 2026, the night after the demo's year (2025): the
demo's 200,000 events are reported through the intake (in batches of 10,000, as ``--events`` would
write them), then one ``RunDetection`` with no arguments, the first run ``serve --demo`` makes:
it backfills, judging every day whose baseline lies after the first event. The alerts come back
through ``ListAlerts`` and are scored (``citygrid.engine.alerts.scoring``: an alert covers an
anomaly of its category when its grid had an injected event and the windows overlap; anything
else is a false alert; an alert of a category class covers the anomalies of its categories). It runs
three times: with the shipped settings, with the category classes' series off (``classes = false``),
and with hourly judging off (``hourly = false``): the false alerts a day with and without each.
``-k "shipped or classes"`` runs the first two.
The same run scores, as a cross-check, the same detector applied directly to the demo's Parquet
events (grid x category x local day cube, alarm days joined the same way),
which must give the same alerts (the disc alerts of the run's space-time scans aside: they are
scored by the grids they hold).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

SEED = 20261130
CST = ZoneInfo("Asia/Shanghai")
YEAR_START = dt.datetime(2025, 1, 1, tzinfo=CST)
NOW = dt.datetime(2026, 1, 1, 0, 30, tzinfo=CST)
ADMIN_TOKEN = "bench-admin-token-not-a-secret-0123456789"


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    given = os.environ.get("CITYGRID_DEMO_DIR")
    if given:
        return Path(given)
    from citygrid.engine.demo import generate_demo

    root = tmp_path_factory.mktemp("bench-alert-demo")
    generate_demo(root, seed=SEED)
    return root


@pytest.mark.parametrize("changed", [{}, {"classes": False}, {"hourly": False}],
                         ids=["shipped", "classes off", "hourly off"])
def test_shipped_defaults_through_the_service(benchmark, demo_root, tmp_path, changed):
    from citygrid.cli.serve import demo_folder, prepare_demo
    from citygrid.engine.access.principals import Principal, Role
    from citygrid.engine.alerts import scoring as SC
    from citygrid.engine.alerts.series import category_classes
    from citygrid.engine.alerts.settings import AlertSettings
    from citygrid.engine.cases.model import read_reports
    from citygrid.engine.cases.taxonomy import load_taxonomy
    from citygrid.engine.cases.settings import IntakeSettings
    from citygrid.engine.times import ManualClock
    from citygrid.grpc_api.client import CityGridClient
    from citygrid.grpc_api.config import ServerConfig
    from citygrid.grpc_api.server import create_server

    shutil.copytree(demo_root, demo_folder(tmp_path))
    # The intake's clock ticks hourly: with no workers loaded, a tick over 200,000 events waiting for a
    # worker holds the database's write lock longer than a writer waits (SQLite's busy timeout, 30 s).
    config = ServerConfig(data_dir=tmp_path, host="127.0.0.1", port=0, metrics_port=None, http_port=None,
                          admin_token=ADMIN_TOKEN, intake=IntakeSettings(clock_interval=3600.0),
                          alerts=AlertSettings(**changed))
    server, port = create_server(config, clock=ManualClock(NOW))
    server.start()
    try:
        prepare_demo(server.state.registry, tmp_path)
        intake = server.state.intake.intake()
        reports = read_reports(demo_folder(tmp_path) / "events.parquet")
        loader = Principal("bench loader", Role.INTAKE)
        started = time.perf_counter()
        for lo in range(0, len(reports), 10_000):
            assert all(r.error is None for r in intake.submit(reports[lo:lo + 10_000], loader))
        load_s = time.perf_counter() - started
        with CityGridClient(f"127.0.0.1:{port}", ADMIN_TOKEN, timeout=600) as client:
            started = time.perf_counter()
            run = client.run_detection()
            run_s = time.perf_counter() - started
            alerts = list(client.list_alerts(page_size=1000))
    finally:
        server.stop(1.0).wait(30)
    first = dt.date.fromisoformat(run.first_day)
    n_days = (dt.date.fromisoformat(run.last_day) - first).days + 1

    def day(text):
        return (dt.date.fromisoformat(text) - YEAR_START.date()).days

    labelled = SC.read_labelled(demo_root, YEAR_START)
    # an area alert covers its grid, a disc alert of the scan the grids it holds
    served = SC.Alerts(categories=[a.category_code for a in alerts],
                       grids=[frozenset(a.grids) if a.level == "disc" else frozenset((a.unit_code,)) for a in alerts],
                       first_day=np.array([day(a.first_day) for a in alerts], dtype=np.int64),
                       last_day=np.array([day(a.last_day) for a in alerts], dtype=np.int64))
    classes = category_classes(load_taxonomy())
    score = SC.score(served, labelled, n_days, classes)
    of_class = [a.category_code in set(classes.values()) for a in alerts]
    class_score = SC.score(SC.Alerts([c for c, k in zip(served.categories, of_class) if k],
                                     [g for g, k in zip(served.grids, of_class) if k],
                                     served.first_day[of_class], served.last_day[of_class]), labelled, n_days, classes)
    direct = _direct(demo_root, (first - YEAR_START.date()).days, day(run.last_day) + 1)
    print(f"\n{len(reports):,} demo events through the intake in {load_s:.1f} s ({len(reports) / load_s:,.0f} a second); "
          f"first RunDetection over {run.series:,} series and {run.events:,} events: {run_s:.1f} s "
          f"(server-side {run.seconds:.1f} s), judging {run.first_day} .. {run.last_day} ({n_days} days)")
    print(f"the shipped defaults{''.join(f', {k} = {v}' for k, v in changed.items())} "
          f"({AlertSettings(**changed)}) through the service: "
          f"spikes {score.recall['spike']:.0%}, clusters {score.recall['cluster']:.0%}, {score.n_alerts} alerts, "
          f"{score.false_alerts} false ({score.false_per_day:.2f} a day), precision {score.precision:.1%}")
    print(f"class alerts: {class_score.n_alerts}, {class_score.false_alerts} false "
          f"({class_score.false_per_day:.2f} a day), finding {sum(class_score.found.values())} anomalies: "
          + ", ".join(f"{a.category_code} {a.unit_code} {a.first_day}..{a.last_day} {a.observed:g}"
                      for a, k in zip(alerts, of_class) if k))
    missed = [a for a, hit in score.found.items() if not hit]
    discs = [a for a in alerts if a.level == "disc"]
    print(f"missed: {', '.join(missed) or 'none'}; disc alerts of the scan (today's, p < {AlertSettings().scan_p}): "
          + (", ".join(f"{a.category_code} {a.first_day}..{a.last_day} {len(a.grids)} grids p {a.p:g}" for a in discs)
             or "none"))
    hourly_seen = [a for a in alerts if a.method == AlertSettings().hourly_method_name]
    print(f"alerts whose latest figures are the hourly detector's: {len(hourly_seen)}"
          + "".join(f"; {a.category_code} {a.unit_code} {a.first_day}..{a.last_day} ({a.observed:g} in its alarm hours)"
                    for a in hourly_seen))
    areas = [a for a, k in zip(alerts, of_class) if a.level != "disc" and not k]
    assert sorted((a.category_code, a.unit_code, day(a.first_day), day(a.last_day)) for a in areas) == direct, \
        "the service's alerts differ from the detector on the files"
    benchmark.extra_info.update(**changed, class_alerts=class_score.n_alerts, spike=score.recall["spike"], cluster=score.recall["cluster"],
                                false_per_day=score.false_per_day, alerts=score.n_alerts, run_s=run_s, load_s=load_s)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


def _direct(root: Path, first_judged: int, n_days: int) -> list[tuple]:
    """(category, grid, first day, last day) of the episodes the shipped detector finds on the Parquet
    events, over ``n_days`` days from the year's start (the service judges up to its today)."""
    import pyarrow.parquet as pq

    from citygrid.engine.alerts.detectors import detect
    from citygrid.engine.alerts.settings import AlertSettings

    settings = AlertSettings()
    events = pq.read_table(root / "events.parquet", columns=["grid_code", "category_code", "occurred_at"])
    grids = sorted(set(events.column("grid_code").to_pylist()))
    cats = sorted(set(events.column("category_code").to_pylist()))
    g = {c: i for i, c in enumerate(grids)}
    k = {c: i for i, c in enumerate(cats)}
    ms = events.column("occurred_at").cast("int64").to_numpy()
    days = (ms - round(YEAR_START.timestamp() * 1000)) // 86_400_000
    cube = np.zeros((len(cats), len(grids), n_days))
    np.add.at(cube, ([k[c] for c in events.column("category_code").to_pylist()],
                     [g[c] for c in events.column("grid_code").to_pylist()], days), 1)
    alarm = detect("ears", cube.reshape(len(cats) * len(grids), -1), settings.options, freq=365).alarm
    out = []
    for r, c in zip(*np.nonzero(alarm[:, first_judged:])):
        c = int(c) + first_judged
        cat, grid = cats[r // len(grids)], grids[r % len(grids)]
        if out and out[-1][:2] == (cat, grid) and c - out[-1][3] <= 2:
            out[-1] = (cat, grid, out[-1][2], c)
        else:
            out.append((cat, grid, c, c))
    return sorted(out)
