"""``citygrid serve``: run the gRPC server on a data directory until SIGTERM or Ctrl-C.

``--demo`` generates the demo district into ``<data dir>/demo`` (or reuses it), imports it as a layer
version, publishes and activates it when no version is active yet, and prints a fresh admin token
(revoking the one a previous ``--demo`` start printed). It listens on 127.0.0.1 unless ``--host``
says otherwise: a plain-text server on every interface is not a demo default. The server listens
first: while the demo is prepared (a minute on the first start) health checks answer NOT_SERVING and
other calls UNAVAILABLE; "ready" is logged when it serves. ``--demo --events`` also writes the demo's
year of events into the event store with their lifecycle, ending at the intake clock's present
(once per data directory; :mod:`citygrid.engine.demo.history`), and builds the analytics mirror
before it is ready.
On SIGTERM or SIGINT the server drains: health turns NOT_SERVING, calls in flight get
``grace_seconds`` to finish, new calls are refused, then it stops.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import threading
from pathlib import Path

from citygrid.engine.demo import generate_demo
from citygrid.engine.demo.history import load_demo_history, shift_note
from citygrid.engine.errors import CityGridError, InvalidInput
from citygrid.engine.houses.host import follow_layers, load_demo
from citygrid.engine.access.principals import Role
from citygrid.engine.cases.host import STARTUP
from citygrid.engine import runtime
from citygrid.engine.layers.registry import LayerRegistry
from citygrid.engine.layers.sources import read_layer
from citygrid.grpc_api.config import load_config
from citygrid.grpc_api.server import create_server

log = logging.getLogger("citygrid.serve")
#: Where ``--demo`` listens unless ``--host`` is given.
DEMO_HOST = "127.0.0.1"
#: The principal of the admin token ``--demo`` prints (each start revokes the previous one).
DEMO_ADMIN = "demo admin"

def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="run the gRPC server (GridService, LayerService, TokenService, IntakeService)")
    parser.add_argument("--config", type=Path, help="TOML file with [server] and [intake] tables (see citygrid.grpc_api.config)")
    parser.add_argument("--data-dir", dest="serve_data_dir", metavar="DIR", type=Path, default=argparse.SUPPRESS,
                        help="data directory (overrides the config's data_dir)")
    parser.add_argument("--demo", action="store_true",
                        help="generate or reuse the demo district, serve it, print a fresh admin token")
    parser.add_argument("--events", action="store_true",
                        help="with --demo: write the demo's year of events (with their lifecycle, ending now) into "
                             "the event store, once per data directory")
    parser.add_argument("--host", help="address to listen on (default [::], all interfaces; with --demo 127.0.0.1)")
    parser.add_argument("--port", type=int, help="gRPC port (default 50051; 0: any free port)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus metrics port (default 9464; -1: off)")
    parser.add_argument("--http-port", type=int,
                        help="HTTP/JSON gateway and map page port (default 8080; 0: any free port; -1: off)")
    parser.add_argument("--replica", action="store_true",
                        help="serve GridService read-only, following the writer's activations")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    data_dir = getattr(args, "serve_data_dir", None) or config.data_dir or args.data_dir
    host = args.host or (DEMO_HOST if args.demo else None)
    config = config.replace(data_dir=Path(data_dir), host=host, port=args.port,
                            replica=True if args.replica else None)
    if args.metrics_port is not None:
        config = dataclasses.replace(config, metrics_port=None if args.metrics_port < 0 else args.metrics_port)
    if args.events and not args.demo:
        raise InvalidInput("--events loads the demo's year of events: give --demo too")
    if args.http_port is not None:
        config = dataclasses.replace(config, http_port=None if args.http_port < 0 else args.http_port)
    if args.demo and config.replica:
        raise InvalidInput("--demo writes to the data directory; a --replica never writes")

    server, port = create_server(config)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start(ready=not args.demo)
    log.info(
        "listening on %s:%d (%s%s); metrics %s; data %s",
        config.host, port, "TLS" if config.tls else "plain text", ", replica" if config.replica else "",
        f"on port {server.metrics_port}" if server.metrics_port else "off", config.data_dir,
    )
    if server.http_port:
        log.info("map and HTTP/JSON gateway on http://%s:%d/", _url_host(config.host), server.http_port)
    if args.demo:
        try:
            version_id = prepare_demo(server.state.registry, Path(config.data_dir))
            demo_dir = demo_folder(Path(config.data_dir))
            houses = server.state.houses
            if houses is not None:  # the registry: buildings, units, residents (once per data directory)
                follow_layers(houses, server.state.registry)
                loaded = load_demo(houses, demo_dir)
                log.info("demo district: house registry %s", "already loaded" if loaded is None else loaded.summary())
            n_workers, n_buildings = server.state.intake.load_staff(
                demo_dir / "workers.parquet" if (demo_dir / "workers.parquet").exists() else None,
                None if houses is not None or not (demo_dir / "buildings.parquet").exists() else demo_dir / "buildings.parquet",
            )
            n_buildings = n_buildings or (len(houses.registry.positions()) if houses is not None else 0)
        except BaseException:
            server.stop(0).wait()
            raise
        log.info("demo district: %d workers and %d building positions loaded into the intake", n_workers, n_buildings)
        if args.events:
            history = load_demo_history(server.state.intake, demo_dir, Path(config.data_dir))
            log.info("demo district: %s", shift_note(history) if history.written else
                     "the year of events is in the store already")
            if server.state.analytics is not None:
                analytics = server.state.analytics.analytics()  # the mirror, rebuilt before the first query
                log.info("analytics: %d events mirrored in %.1f s", analytics.mirror.n, analytics.rebuild_seconds)
        if server.state.alerts is not None:  # a first detection run over the events in the store
            try:
                first = server.state.alerts.run(STARTUP, trigger="start-up").run
                log.info("alerts: first detection run judged %s .. %s (%d events): %d alerts raised, %d updated, "
                         "%.1f s", first.first_day, first.last_day, first.events, first.raised, first.updated,
                         first.seconds)
            except CityGridError as exc:  # the server serves all the same; the schedule tries again
                log.warning("alerts: the first detection run failed: %s", exc)
        secret, info = server.state.tokens.issue(DEMO_ADMIN, Role.ADMIN, replacing=True)
        log.info("demo district: layer version %s; admin token %s issued", version_id, info.token_id)
        print(f"admin token: {secret}", flush=True)

    runtime.settle()  # start-up state frozen, fewer collections (see citygrid.engine.runtime)
    server.set_ready()
    log.info("ready: active layer version %s", server.state.registry.active_version_id or "none")
    stop.wait()
    log.info("stopping: draining calls in flight for up to %.1f s", config.grace_seconds)
    server.stop(config.grace_seconds).wait()
    log.info("stopped")
    return 0


def demo_folder(data_dir: Path) -> Path:
    """Where ``--demo`` writes the demo district's files (the README tells newcomers)."""
    return data_dir / "demo"


def prepare_demo(registry: LayerRegistry, data_dir: Path) -> str:
    """Generate (once) and register the demo district as version ``demo-<content hash>``; publish it
    and, when nothing is active yet, activate it. Returns its version id."""
    demo_dir = demo_folder(data_dir)
    grids = demo_dir / "grids.parquet"
    if not grids.exists():
        log.info("generating the demo district in %s", demo_dir)
        generate_demo(demo_dir)
    layer = read_layer(grids)
    record = registry.register(dataclasses.replace(layer, version_id=f"demo-{layer.content_hash[:12]}"))
    if not record.published:
        registry.publish(record.version_id)
    if registry.active_version_id is None:
        registry.activate(record.version_id)
    return record.version_id


def _url_host(host: str) -> str:
    """The host to put in a URL for a listening address (all interfaces: localhost)."""
    return "localhost" if host in ("[::]", "0.0.0.0", "::", "") else host
