"""An in-process server of the demo district with its year of events written as history (what
``serve --demo --events`` serves), on an injected clock, for the commands that read analytics
(``citygrid stats``, ``citygrid report``)."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from citygrid.cli.main import main
from citygrid.cli.serve import prepare_demo
from citygrid.engine.demo.history import load_demo_history
from citygrid.engine.layers.registry import LayerRegistry
from citygrid.engine.cases.settings import IntakeSettings
from citygrid.engine.times import ManualClock
from citygrid.grpc_api.config import ServerConfig
from citygrid.grpc_api.server import create_server

TOKEN = "history-cli-test-admin-token-not-a-secret"
#: The present time of the server's intake: a Wednesday morning in Shenzhen.
NOW = datetime(2026, 3, 11, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture(scope="module")
def history_server(tmp_path_factory, demo_dir):
    data = tmp_path_factory.mktemp("history-cli") / "data"
    (data / "demo").mkdir(parents=True)
    for name in ("grids.parquet", "workers.parquet", "events.parquet", "residents.parquet"):
        (data / "demo" / name).symlink_to(demo_dir / name)
    registry = LayerRegistry(data)
    try:
        prepare_demo(registry, data)
    finally:
        registry.close()
    config = ServerConfig(data_dir=data, host="127.0.0.1", port=0, metrics_port=None, http_port=None, admin_token=TOKEN,
                          max_workers=8, intake=IntakeSettings(clock_interval=3600.0))
    server, port = create_server(config, clock=ManualClock(NOW))
    server.start()
    server.state.intake.load_staff(workers_path=demo_dir / "workers.parquet")
    report = load_demo_history(server.state.intake, data / "demo", data)
    yield SimpleNamespace(target=f"127.0.0.1:{port}", server=server, data=data, history=report)
    assert server.stop(0).wait(10)


def run(server, *args, token: str | None = TOKEN) -> tuple[int, str, str]:
    """``citygrid ARGS --server S --token T``: exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main([*args, "--server", server.target, *(["--token", token] if token else [])])
    return status, out.getvalue(), err.getvalue()
