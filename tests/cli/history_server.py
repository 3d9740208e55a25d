"""An in-process server of the demo district with its year of events written as history (what
``serve --demo --events`` serves), on an injected clock, for the commands that read analytics
(``citygrid stats``, ``citygrid report``)."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from demo_server import run_cli, serve_demo_district

from citygrid.engine.demo.history import load_demo_history
from citygrid.engine.times import ManualClock

TOKEN = "history-cli-test-admin-token-not-a-secret"
#: The present time of the server's intake: a Wednesday morning in Shenzhen.
NOW = datetime(2026, 3, 11, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture(scope="module")
def history_server(tmp_path_factory, demo_dir):
    data = tmp_path_factory.mktemp("history-cli") / "data"
    server, target = serve_demo_district(data, demo_dir, TOKEN, ManualClock(NOW), files=(
        "grids.parquet", "workers.parquet", "events.parquet", "residents.parquet"))
    server.state.intake.load_staff(workers_path=demo_dir / "workers.parquet")
    report = load_demo_history(server.state.intake, data / "demo", data)
    yield SimpleNamespace(target=target, server=server, data=data, history=report)
    assert server.stop(0).wait(10)


def run(server, *args, token: str | None = TOKEN) -> tuple[int, str, str]:
    """``citygrid ARGS --server S --token T``: exit status, stdout, stderr."""
    return run_cli(server.target, token, *args)
