"""A server of the demo district for the CLI tests that talk to one: a fresh data directory with the
demo's grids active, on a free port, its intake's clock an injected one; and running a command
against it as a user would."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from citygrid.cli.main import main
from citygrid.cli.serve import prepare_demo
from citygrid.engine.cases.settings import IntakeSettings
from citygrid.engine.layers.registry import LayerRegistry
from citygrid.grpc_api.config import ServerConfig
from citygrid.grpc_api.server import SERVICE_MODULES, create_server


def serve_demo_district(data: Path, demo_dir: Path, token: str, clock, *, without: tuple[str, ...] = (),
                        files: tuple[str, ...] = ("grids.parquet",)):
    """Start a server over ``data`` with the demo's ``files`` (linked from ``demo_dir``; the grids
    registered and active), running every service but those named in ``without``; returns (server, target)."""
    (data / "demo").mkdir(parents=True)
    for name in files:
        (data / "demo" / name).symlink_to(demo_dir / name)
    registry = LayerRegistry(data)
    try:
        prepare_demo(registry, data)
    finally:
        registry.close()
    config = ServerConfig(data_dir=data, host="127.0.0.1", port=0, metrics_port=None, http_port=None, admin_token=token,
                          max_workers=8, intake=IntakeSettings(clock_interval=3600.0))
    server, port = create_server(config, clock=clock,
                                  service_modules=tuple(m for m in SERVICE_MODULES if m not in without))
    server.start()
    if server.state.houses is not None:  # it opens in the background after the server listens
        assert server.state.houses.registry.wait_open(120), "the house registry did not open within 2 minutes"
    return server, f"127.0.0.1:{port}"


def run_cli(target: str, token: str | None, *args) -> tuple[int, str, str]:
    """``citygrid ARGS --server TARGET --token TOKEN``: exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main([*args, "--server", target, *(["--token", token] if token else [])])
    return status, out.getvalue(), err.getvalue()
