"""The server factory: ``create_server(config) -> (server, port)``.

What a server is made of:

- the services of :data:`SERVICE_MODULES` (a replica: :data:`REPLICA_SERVICE_MODULES`). Each module of
  ``citygrid.grpc_api`` named there has ``add_to_server(server, resources) -> full service name``; its
  servicer takes what it needs from :class:`Resources` in its constructor (no module globals). To add
  a service, write such a module and add its name to the tuple; a service with stores of its own opens
  them from ``resources.config.data_dir`` and registers their ``close`` with ``resources.on_close``;
- standard health checking (``grpc.health.v1``, no token needed) and server reflection;
- the interceptors (metrics, errors, auth; :mod:`citygrid.grpc_api.interceptors`);
- the Prometheus exporter on ``metrics_port``;
- a thread pool of ``max_workers`` handler threads. Python runs one handler at a time, but the engine's
  Numba kernels release the GIL, so a few threads per core keep both busy; more threads only help
  callers that hold a stream open (``AssignStream``) while others call;
- message size limits derived from ``max_points_per_request`` (:class:`ServerConfig`).

Deployment shape. One process owns every write: it serves every service, publishes and activates
layer versions and issues tokens (``citygrid serve``). To use every core for the read-only assignment
path, start further processes with ``replica = true`` (``citygrid serve --replica``) on the same data
directory and their own port, shared between them: replicas set ``SO_REUSEPORT``, so N replicas
listening on one port take connections in turn (the writer does not, so a second writer on its port
fails to start). A replica serves ``GridService`` (and health) only; it maps the same saved version
files, so the pages of a layer are in memory once, and it follows the writer's activations by polling
the registry's active pointer every ``follow_interval`` seconds (an activation is a swap of one
reference there too, so no call fails). Its tokens are read from the same database on every call, so a
revocation holds on the next call everywhere. Clients send assignment traffic to the replicas' port
and everything else to the writer's.
"""

from __future__ import annotations

import importlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from citygrid.engine.clock import Clock
from citygrid.engine.errors import InvalidInput
from citygrid.engine.principals import Role
from citygrid.engine.registry import LayerRegistry
from citygrid.engine.tokens import TokenStore
from citygrid.grpc_api.config import ServerConfig
from citygrid.grpc_api.interceptors import Authenticator, server_interceptors
from citygrid.grpc_api.metrics import Metrics, MetricsExporter

log = logging.getLogger("citygrid.grpc_api")

SERVICE_MODULES = ("grid_service", "layer_service", "token_service", "intake_service", "job_service")
REPLICA_SERVICE_MODULES = ("grid_service",)


@dataclass
class Resources:
    """What servicers may take in their constructors."""

    config: ServerConfig
    registry: LayerRegistry
    tokens: TokenStore
    auth: Authenticator
    metrics: Metrics
    #: The event intake (:class:`citygrid.grpc_api.intake_service.IntakeHost`), set by its service.
    intake: object | None = None
    #: The intake's clock (:mod:`citygrid.engine.clock`); ``None``: ``[intake] clock_start``'s, else the system's.
    clock: Clock | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def on_close(self, close: Callable[[], None]) -> None:
        """Call ``close`` when the server has stopped (after the registry's and tokens' own)."""
        self._closers.append(close)

    def close(self) -> None:
        for close in reversed(self._closers):
            close()
        self.registry.close()
        self.tokens.close()


class Server:
    """A started-or-not CityGrid server: the ``grpc.Server`` and everything it owns.

    ``stop(grace)`` first marks every service NOT_SERVING (so load balancers drain it), lets calls in
    flight finish for up to ``grace`` seconds, refuses new ones, then closes the stores.
    """

    def __init__(self, grpc_server: grpc.Server, health_servicer: health.HealthServicer,
                 resources: Resources, exporter: MetricsExporter | None, port: int):
        self.grpc_server = grpc_server
        self.resources = resources
        self.port = port
        self.metrics_port = exporter.port if exporter else None
        self._health = health_servicer
        self._exporter = exporter
        self._follow_stop = threading.Event()
        self._stopped: threading.Event | None = None
        self._stop_lock = threading.Lock()

    @property
    def metrics(self) -> Metrics:
        return self.resources.metrics

    def start(self) -> None:
        self.grpc_server.start()
        if self._exporter:
            self._exporter.start()
        if self.resources.config.replica:
            threading.Thread(
                target=self.resources.registry.follow,
                args=(self._follow_stop, self.resources.config.follow_interval),
                name="citygrid-follow",
                daemon=True,
            ).start()

    def stop(self, grace: float | None = None) -> threading.Event:
        """Drain and stop; the returned event is set once everything is closed. Idempotent."""
        with self._stop_lock:
            if self._stopped is not None:
                return self._stopped
            self._stopped = done = threading.Event()
        self._health.enter_graceful_shutdown()
        self._follow_stop.set()
        grpc_done = self.grpc_server.stop(grace)

        def finish():
            grpc_done.wait()
            if self._exporter:
                self._exporter.stop()
            self.resources.close()
            done.set()

        threading.Thread(target=finish, name="citygrid-stop", daemon=True).start()
        return done

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self.grpc_server.wait_for_termination(timeout)


def create_server(config: ServerConfig, *, service_modules: tuple[str, ...] | None = None,
                  clock: Clock | None = None) -> tuple[Server, int]:
    """Build (not start) a server for ``config``; return it and the port it bound. ``clock`` is the
    intake's present time (tests inject one; default: ``[intake] clock_start``, else the system's)."""
    if config.data_dir is None:
        raise InvalidInput("the server needs a data directory (data_dir in the config, or --data-dir)")
    registry = LayerRegistry(config.data_dir)
    tokens = TokenStore(config.data_dir)
    if config.admin_token:
        tokens.ensure(config.admin_token, "admin (config)", Role.ADMIN)
    auth = Authenticator(tokens)
    resources = Resources(config, registry, tokens, auth, Metrics(), clock=clock)
    try:
        return _build(config, resources, service_modules)
    except BaseException:
        resources.close()
        raise


def _build(config: ServerConfig, resources: Resources, service_modules) -> tuple[Server, int]:
    modules = service_modules or (REPLICA_SERVICE_MODULES if config.replica else SERVICE_MODULES)
    grpc_server = grpc.server(
        ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="citygrid-grpc"),
        interceptors=server_interceptors(resources.metrics, resources.auth),
        options=[
            ("grpc.max_receive_message_length", config.max_receive_message_bytes),
            ("grpc.max_send_message_length", config.max_send_message_bytes),
            ("grpc.so_reuseport", 1 if config.replica else 0),
        ],
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
    )
    names = [importlib.import_module(f"citygrid.grpc_api.{m}").add_to_server(grpc_server, resources) for m in modules]

    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    for name in ("", *names):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*names, health.SERVICE_NAME, reflection.SERVICE_NAME), grpc_server
    )

    address = f"{config.host}:{config.port}"
    try:
        if config.tls:
            credentials = grpc.ssl_server_credentials(
                [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())]
            )
            port = grpc_server.add_secure_port(address, credentials)
        else:
            port = grpc_server.add_insecure_port(address)
    except RuntimeError as exc:
        raise InvalidInput(f"cannot listen on {address}: {exc}; is another server using the port?") from None
    except FileNotFoundError as exc:
        raise InvalidInput(f"cannot read the TLS certificate or key: {exc}") from None
    exporter = None
    if config.metrics_port is not None:
        try:
            exporter = MetricsExporter(resources.metrics, config.host, config.metrics_port)
        except OSError as exc:
            raise InvalidInput(f"cannot serve metrics on port {config.metrics_port}: {exc}") from None
    return Server(grpc_server, health_servicer, resources, exporter, port), port
