"""The demo district served in-process for the browser test, as ``citygrid serve --demo --events``
starts it (the same engine steps, cli/serve.py), on free ports and an injected clock: gRPC and the
HTTP gateway over a copy of the test session's demo folder, the demo's year of events written into
the store with their lifecycle and shifted to end at the clock's present (a Wednesday evening,
2025-12-31 22:00 +08:00), then a first detection run."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from citygrid.cli.serve import demo_folder, prepare_demo
from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.demo.history import load_demo_history
from citygrid.engine.houses.host import follow_layers, load_demo
from citygrid.engine.times import ManualClock
from citygrid.grpc_api.config import ServerConfig
from citygrid.grpc_api.server import Server, create_server

ADMIN_TOKEN = "browser-test-admin-token-0123456789"
#: The intake's present: the demo's year ends at 21:19 local on 2025-12-31.
NOW = datetime(2025, 12, 31, 14, 0, tzinfo=timezone.utc)
LOADER = Principal("demo loader", Role.ADMIN)


@dataclass
class ServedDemo:
    server: Server
    grpc_port: int
    http_port: int
    clock: ManualClock
    n_events: int
    admin_token: str = ADMIN_TOKEN

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"


def serve_demo(data_dir: Path, demo_source: Path, *, now: datetime = NOW) -> ServedDemo:
    shutil.copytree(demo_source, demo_folder(data_dir))
    config = ServerConfig(data_dir=data_dir, host="127.0.0.1", port=0, metrics_port=None, http_port=0,
                          admin_token=ADMIN_TOKEN, max_workers=8)
    clock = ManualClock(now)
    server, port = create_server(config, clock=clock)
    server.start(ready=False)
    try:
        prepare_demo(server.state.registry, data_dir)
        demo = demo_folder(data_dir)
        houses = server.state.houses
        if houses is not None:  # the house registry, as serve --demo loads it; the intake places codes through it
            follow_layers(houses, server.state.registry)
            load_demo(houses, demo)
        server.state.intake.load_staff(demo / "workers.parquet",
                                       None if houses is not None else demo / "buildings.parquet")
        history = load_demo_history(server.state.intake, demo, data_dir)
        if server.state.alerts is not None:
            server.state.alerts.run(LOADER, trigger="start-up")
    except BaseException:
        server.stop(0).wait(10)
        raise
    server.set_ready()
    return ServedDemo(server, port, server.http_port, clock, history.events)
