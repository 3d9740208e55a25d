"""The server factory: ``create_server(config) -> (server, port)``.

What a server is made of:

- the services of :data:`SERVICE_MODULES` (a replica: :data:`REPLICA_SERVICE_MODULES`), imported here
  by name. :func:`create_server` first builds everything they use into a :class:`ServerState` (the
  registry, tokens, the intake host when IntakeService runs, the job host when JobService runs, fed
  by that intake), then each servicer from it, ready-made in its constructor (route_guide style: no
  module globals, nothing one service fills in for another); each service module's
  ``add_to_server(server, servicer)`` registers it. To add a service, write such a module, build its
  servicer in :data:`SERVICES` and its state, if any, in :func:`create_server`;
- standard health checking (``grpc.health.v1``, no token needed) and server reflection;
- the interceptors (metrics, readiness, admission, auth, errors; :mod:`citygrid.grpc_api.interceptors`),
  applied to each method's handler once, when it is registered;
- the Prometheus exporter on ``metrics_port``;
- message size limits derived from ``max_points_per_request`` (:class:`ServerConfig`).

Threading model (:mod:`citygrid.grpc_api.threads`). The server is grpcio's asyncio server
(``grpc.aio``): every call is a coroutine on one event loop (one loop thread per process, shared by
its servers), so a call that waits holds no thread. A district keeps a stream open per terminal all
day (``WatchDispatches``, thousands at once), and an open stream costs a coroutine and a little
memory, not a thread. Work that blocks runs in the server's ``max_workers`` handler threads, never on
the loop:

- a unary method is a plain ``def``, as in grpcio's synchronous API, and runs in a handler thread
  whole (auth, servicer, error mapping) with a ``context`` that offers what handlers use
  (``time_remaining``, ``add_callback``, ``is_active``, ``abort``, ``invocation_metadata``). One
  marked ``threads.on_loop`` (``AssignPoint``) runs on the loop itself when it is an in-memory read
  and the caller's token is in the token store's memory: a point takes less than a thread hop;
- a streaming method is ``async`` (an async generator) and hands its blocking steps (a SQLite read or
  commit, a kernel call) to ``state.blocking``; between them it waits on the loop: for the
  client's next message, or for news (``Intake.on_news`` wakes a watch without a thread).

Python runs one thread at a time, but the engine's Numba kernels release the GIL, so a few handler
threads per core keep the cores busy; more threads than that only queue. Unary calls running or
waiting for a thread are capped by ``max_concurrent_rpcs`` and streams per token by
``max_streams_per_token`` (beyond either: RESOURCE_EXHAUSTED at once).

The :class:`Server` object is driven from ordinary threads (``start``, ``stop``, the CLI's signal
handling); it runs what must happen on the loop there. ``start(ready=False)`` serves health checks
only (NOT_SERVING; other calls get UNAVAILABLE) until ``set_ready()``: ``serve --demo`` listens at once
and prepares the demo district meanwhile.

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

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from citygrid.engine.access.principals import Role
from citygrid.engine.access.tokens import TokenAuthority, TokenStore
from citygrid.engine.cases.host import IntakeHost
from citygrid.engine.errors import InvalidInput, PreconditionFailed
from citygrid.engine.layers.geometry import ShapeCache
from citygrid.engine.layers.registry import LayerRegistry
from citygrid.engine.times import Clock, system_clock
from citygrid.engine.alerts.host import AlertHost
from citygrid.engine.alerts.housing import group_renting_finder
from citygrid.engine.analytics.host import AnalyticsHost
from citygrid.engine.houses.host import RegistryPopulation, follow_layers, open_houses
from citygrid.engine.houses.service import HouseService
from citygrid.grpc_api import (alert_service, analytics_service, grid_service, house_service, intake_service, job_service,
                               layer_service, token_service)
from citygrid.grpc_api.config import ServerConfig
from citygrid.grpc_api.interceptors import Authenticator, Interceptors, Registrar
from citygrid.grpc_api.metrics import Metrics, MetricsExporter
from citygrid.grpc_api.threads import Blocking, HandlerThreads, event_loop, run_in_loop

log = logging.getLogger("citygrid.grpc_api")

SERVICE_MODULES = ("grid_service", "layer_service", "token_service", "intake_service", "job_service",
                   "analytics_service", "alert_service", "house_service")
REPLICA_SERVICE_MODULES = ("grid_service",)


@dataclass(frozen=True)
class ServerState:
    """What the servicers are made from, all built by :func:`create_server` before any servicer."""

    config: ServerConfig
    registry: LayerRegistry
    tokens: TokenStore
    auth: Authenticator
    metrics: Metrics
    #: Runs blocking work in the server's handler threads: ``await state.blocking(fn, *args)``
    #: (for async streaming methods; see :mod:`citygrid.grpc_api.threads`).
    blocking: Blocking
    #: The event intake (:class:`~citygrid.engine.cases.host.IntakeHost`) when the server runs IntakeService.
    intake: IntakeHost | None = None
    #: The job runner's host when the server runs JobService.
    jobs: job_service.JobHost | None = None
    #: The live dashboards' engine when the server runs IntakeService and AnalyticsService:
    #: ``state.analytics.analytics()`` is the :class:`~citygrid.engine.analytics.queries.Analytics`
    #: (built on first use, like the intake).
    analytics: AnalyticsHost | None = None
    #: The alert host (detection runs, the alert store) when the server runs AlertService.
    alerts: AlertHost | None = None
    #: The house registry's engine service when the server runs HouseService.
    houses: HouseService | None = None
    #: The areas' shapes per layer version (GridService's geometry and the HTTP gateway's maps).
    shapes: ShapeCache = field(default_factory=ShapeCache)

    def close(self) -> None:
        """Wait for the handler threads to finish their work, then close everything."""
        self.blocking.threads.shutdown()
        for host in (self.alerts, self.analytics, self.jobs, self.intake):
            if host is not None:
                host.close()
        if self.houses is not None:
            self.houses.registry.close()
        self.registry.close()
        self.tokens.close()

    def worker_chain(self, worker_id: str):
        """The grid chain of a worker of the intake (what a worker's token is bound to)."""
        if self.intake is None:
            raise PreconditionFailed("this server runs no intake, so it knows no workers to bind a token to")
        return self.intake.intake().worker_chain(worker_id)


#: Each service by module name: its servicer, made from the server's state.
SERVICES: dict[str, Callable[[ServerState], object]] = {
    "grid_service": lambda s: grid_service.GridServicer(s.registry, s.auth, s.config, s.blocking, s.shapes),
    "layer_service": lambda s: layer_service.LayerServicer(
        s.registry, s.auth, s.config, s.blocking,
        on_activate=None if s.houses is None else lambda: follow_layers(s.houses, s.registry)),
    "token_service": lambda s: token_service.TokenServicer(
        TokenAuthority(s.tokens, lambda: s.registry.snapshot().layer, s.worker_chain), s.auth),
    "intake_service": lambda s: intake_service.IntakeServicer(s.intake, s.auth, s.blocking),
    "job_service": lambda s: job_service.JobServicer(s.jobs, s.auth, s.blocking),
    "analytics_service": lambda s: analytics_service.AnalyticsServicer(s.analytics, s.auth, s.blocking,
                                                                       s.config.max_send_message_bytes),
    "alert_service": lambda s: alert_service.AlertServicer(s.alerts, s.auth, s.blocking),
    "house_service": lambda s: house_service.HouseServicer(s.houses, s.auth, s.blocking),
}
_MODULES = {"grid_service": grid_service, "layer_service": layer_service, "token_service": token_service,
            "intake_service": intake_service, "job_service": job_service, "analytics_service": analytics_service,
            "alert_service": alert_service, "house_service": house_service}


class Server:
    """A started-or-not CityGrid server: the ``grpc.aio`` server and everything it owns.

    ``stop(grace)`` first marks every service NOT_SERVING (so load balancers drain it), refuses new
    calls, lets calls in flight finish for up to ``grace`` seconds (then cancels them), waits for the
    handler threads, then closes the stores.
    """

    def __init__(self, grpc_server: grpc.aio.Server, health_servicer, interceptors: Interceptors,
                 registrar: Registrar, service_names: list[str], state: ServerState,
                 exporter: MetricsExporter | None, port: int, gateway=None):
        self.grpc_server = grpc_server
        self.interceptors = interceptors
        #: Where more handlers may be registered before ``start`` (wrapped like the services').
        self.registrar = registrar
        #: What the servicers were made from (registry, tokens, intake host, ...).
        self.state = state
        self.port = port
        self.metrics_port = exporter.port if exporter else None
        #: The HTTP/JSON gateway and map page (:mod:`citygrid.grpc_api.web`), None when ``http_port`` is off.
        self.gateway = gateway
        self.http_port = gateway.port if gateway else None
        self._health = health_servicer
        self._service_names = service_names
        self._exporter = exporter
        self._follow_stop = threading.Event()
        self._terminated = threading.Event()
        self._stopped: threading.Event | None = None
        self._stop_lock = threading.Lock()
        self._started = False

    @property
    def metrics(self) -> Metrics:
        return self.state.metrics

    def start(self, *, ready: bool = True) -> None:
        """Listen. With ``ready=False`` health checks answer NOT_SERVING and other calls UNAVAILABLE
        until :meth:`set_ready`."""
        run_in_loop(self._start(ready))
        self._started = True
        self._serve_houses_when_open()
        if self._exporter:
            self._exporter.start()
        if self.gateway:
            self.gateway.start()
        if self.state.config.replica:
            threading.Thread(
                target=self.state.registry.follow,
                args=(self._follow_stop, self.state.config.follow_interval),
                name="citygrid-follow",
                daemon=True,
            ).start()

    async def _start(self, ready: bool) -> None:
        self.interceptors.ready = ready
        await self._set_health(ready)
        await self.grpc_server.start()

    def set_ready(self) -> None:
        """Serve every call; health checks answer SERVING."""
        run_in_loop(self._set_ready())

    async def _set_ready(self) -> None:
        self.interceptors.ready = True
        await self._set_health(True)

    async def _set_health(self, serving: bool) -> None:
        for name in ("", *self._service_names):
            up = serving and not (name == house_service.SERVICE_NAME and self.state.houses.registry.opening)
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING if up
                                   else health_pb2.HealthCheckResponse.NOT_SERVING)

    def _serve_houses_when_open(self) -> None:
        """HouseService's health turns SERVING once its registry has opened (in the background)."""
        houses = self.state.houses
        if houses is None or not houses.registry.opening:
            return

        def wait() -> None:
            houses.registry.wait_open()
            if self._stopped is None:  # (after a graceful shutdown began, the health servicer ignores sets)
                asyncio.run_coroutine_threadsafe(self._set_health(self.interceptors.ready), event_loop()).result()

        threading.Thread(target=wait, name="citygrid-houses-health", daemon=True).start()

    def stop(self, grace: float | None = None) -> threading.Event:
        """Drain and stop; the returned event is set once everything is closed. Idempotent."""
        with self._stop_lock:
            if self._stopped is not None:
                return self._stopped
            self._stopped = done = threading.Event()
        self._follow_stop.set()
        stopping = asyncio.run_coroutine_threadsafe(self._stop(grace), event_loop())

        def finish():
            try:
                stopping.result()
            except Exception:  # noqa: BLE001 - the stores must be closed all the same
                log.exception("stopping the gRPC server failed")
            if self._exporter:
                self._exporter.stop()
            if self.gateway:
                self.gateway.stop()
            self.state.close()
            self._terminated.set()
            done.set()

        threading.Thread(target=finish, name="citygrid-stop", daemon=True).start()
        return done

    async def _stop(self, grace: float | None) -> None:
        await self._health.enter_graceful_shutdown()
        await self.grpc_server.stop(grace)

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped (or ``timeout``); ``True`` when it timed out."""
        return not self._terminated.wait(timeout)


def create_server(config: ServerConfig, *, service_modules: tuple[str, ...] | None = None,
                  clock: Clock | None = None) -> tuple[Server, int]:
    """Build (not start) a server for ``config``; return it and the port it bound. ``clock`` is the
    intake's present time (tests inject one; default: ``[intake] clock_start``, else the system's)."""
    if config.data_dir is None:
        raise InvalidInput("the server needs a data directory (data_dir in the config, or --data-dir)")
    modules = service_modules or (REPLICA_SERVICE_MODULES if config.replica else SERVICE_MODULES)
    unknown = sorted(set(modules) - set(SERVICES))
    if unknown:
        raise InvalidInput(f"unknown services {unknown}; services are {sorted(SERVICES)}")
    if "alert_service" in modules and "intake_service" not in modules:
        raise InvalidInput("AlertService needs IntakeService (alerts count its events and become its events)")
    registry = LayerRegistry(config.data_dir)
    tokens = TokenStore(config.data_dir)
    if config.admin_token:
        tokens.ensure(config.admin_token, "admin (config)", Role.ADMIN)
    intake = None
    if "intake_service" in modules:
        intake = IntakeHost(config.data_dir, registry, config.intake, clock=clock)
    jobs = None
    if "job_service" in modules:
        # A re-indexing job that names no events or workers files reports on the intake's.
        feeds = {} if intake is None else dict(open_events=intake.open_event_locations,
                                               grid_workers=intake.grid_workers)
        jobs = job_service.JobHost(config.data_dir, address=config.ray_address, num_cpus=config.ray_num_cpus,
                                   **feeds)
    houses = None
    if "house_service" in modules:  # on the intake's clock; reports by building or unit code are placed by it
        houses = open_houses(config.data_dir, registry, (intake.clock if intake else clock) or system_clock,
                             config.houses, background=True)  # the server listens while it opens
        if intake is not None:
            intake.use_buildings(houses.registry.positions())
    analytics = None
    if "analytics_service" in modules:
        if intake is None:
            raise InvalidInput("analytics_service counts the intake's events: run intake_service too")
        analytics = AnalyticsHost(config.data_dir, intake, config.analytics,
                                  population=None if houses is None else RegistryPopulation(houses))
    alerts = None
    if "alert_service" in modules:
        alerts = AlertHost(config.data_dir, intake, config.alerts,  # group renting (群租) is raised as alerts too
                           mirror=None if analytics is None else lambda: analytics.analytics().mirror,
                           finders=() if houses is None else (group_renting_finder(houses),))
        alerts.start()  # a detection run every [alerts] interval_seconds
    state = ServerState(config, registry, tokens, Authenticator(tokens), Metrics(),
                        Blocking(HandlerThreads(config.max_workers)), intake=intake, jobs=jobs, analytics=analytics,
                        alerts=alerts, houses=houses)
    try:
        return run_in_loop(_build(config, state, modules))
    except BaseException:
        state.close()
        raise


async def _build(config: ServerConfig, state: ServerState, modules) -> tuple[Server, int]:
    """On the event loop (where a ``grpc.aio`` server must be made)."""
    grpc_server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", config.max_receive_message_bytes),
            ("grpc.max_send_message_length", config.max_send_message_bytes),
            ("grpc.so_reuseport", 1 if config.replica else 0),
        ],
    )
    interceptors = Interceptors(state.metrics, state.auth, state.blocking,
                                max_calls=config.max_concurrent_rpcs,
                                max_streams_per_token=config.max_streams_per_token)
    registrar = Registrar(grpc_server, interceptors)
    names = [_MODULES[m].add_to_server(registrar, SERVICES[m](state)) for m in modules]

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, registrar)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection.aio.ReflectionServicer((*names, health.SERVICE_NAME, reflection.SERVICE_NAME)), registrar
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
            exporter = MetricsExporter(state.metrics, config.host, config.metrics_port)
        except OSError as exc:
            raise InvalidInput(f"cannot serve metrics on port {config.metrics_port}: {exc}") from None
    gateway = None
    if config.http_port is not None and not config.replica:
        from citygrid.grpc_api.web.gateway import gateway_for

        try:
            gateway = gateway_for(state, config.host, config.http_port)
        except BaseException:
            if exporter:
                exporter.stop()
            raise
    server = Server(grpc_server, health_servicer, interceptors, registrar, names, state, exporter, port, gateway)
    return server, port
