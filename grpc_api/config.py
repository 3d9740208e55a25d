"""Server configuration: a TOML file's ``[server]`` table (this module), ``[intake]`` table (the
engine's :class:`~citygrid.engine.cases.settings.IntakeSettings`, which parses it), ``[analytics]``
table (:class:`~citygrid.engine.analytics.config.AnalyticsConfig`) and ``[houses]`` table
(:class:`~citygrid.engine.houses.host.HouseSettings`: QR keys, the group-renting and check-in rules; its
keys are listed there); the command line overrides some ``[server]`` keys.

Example ``citygrid.toml`` (every key optional; these are the defaults but for the paths, the token and
clock_start)::

    [server]
    data_dir = "/var/lib/citygrid"
    host = "[::]"
    port = 50051                      # 0: any free port (logged at start-up)
    metrics_port = 9464               # Prometheus text at http://host:9464/metrics; -1: off
    max_workers = 32                  # handler threads for blocking work (unary calls, streams' engine steps)
    max_concurrent_rpcs = 256         # unary calls running or waiting for a thread; beyond: RESOURCE_EXHAUSTED
    max_streams_per_token = 100       # open streams (watches, AssignStream, SubmitStream, uploads) per token;
                                      # beyond: RESOURCE_EXHAUSTED. Streams hold no thread: thousands may be open
    max_points_per_request = 2000000  # AssignPoints limit; sets the message size limits too
    max_upload_bytes = 536870912      # UploadLayer limit (512 MiB)
    chunk_size = 262144               # points per kernel chunk: deadlines are checked between chunks
    grace_seconds = 10.0              # SIGTERM: calls in flight get this long to finish
    admin_token = "..."               # the first admin token (>= 20 characters; issue more through the API)
    tls_cert = "/etc/citygrid/server.crt"   # TLS when both are set
    tls_key = "/etc/citygrid/server.key"
    replica = false                   # serve GridService read-only, following the writer's activations
    follow_interval = 1.0             # seconds between a replica's checks of the active version
    ray_address = "ray://head:10001"  # the Ray cluster of JobService; unset: a local one started on first use
    ray_num_cpus = 2                  # CPUs of that local Ray (unset: all of them)
    http_port = 8080                  # the HTTP/JSON gateway and the map page (citygrid.grpc_api.web); -1: off;
                                      # 0: any free port. It listens on host, as gRPC does
    http_cors_origins = []            # origins allowed to call the gateway from other pages ("*": any); none: off
    http_max_concurrent = 64          # HTTP requests running at once; beyond: 503 with a problem body
    http_timeout_seconds = 10.0       # a request's engine work gets this long; beyond: 504
    http_max_streams = 200            # open Server-Sent Events streams; beyond: 503

    [intake]                          # the event intake behind IntakeService (:class:`IntakeSettings`)
    taxonomy_file = "taxonomy.json"   # categories, departments, stage time limits; unset: the shipped taxonomy
    working_hours = ["08:00-12:00", "14:00-18:00"]  # local working periods of a working day
    timezone = "Asia/Shanghai"        # of working_hours and of the workers' shifts
    calendar_file = "calendar.json"   # holidays, 调休 working days, weekend (HolidayCalendar JSON);
                                      # unset: the official Chinese calendar shipped with CityGrid
    duplicate_distance_m = 50.0       # a report of the same category this close to an open one ...
    duplicate_window_minutes = 1440.0 # ... and this close in time is linked to it, not dispatched; 0 m: off
    street_escalation_after_minutes = 240.0  # overdue this long (working minutes) -> the street (督办);
                                      # unset: the stage's own time limit again
    max_hops = 1                      # grids away from an event's own that dispatch looks for workers
    auto_register = true              # register (立案) placed reports automatically
    max_batch = 10000                 # most reports in one SubmitEvents call
    clock_interval = 60.0             # seconds between ticks of the intake's clock (dispatch waiting
                                      # events, escalate overdue ones)
    clock_start = 2026-12-07T03:05:00+08:00  # the intake's clock reads this when the server starts and
                                      # runs on from it (tests, rehearsals of a night or a holiday);
                                      # unset: the system clock
    first_responders = ["网格员"]      # departments whose grid workers take any matter of their grid
    sources = ["inspector_terminal", "hotline_12345", "video_analytics", "citizen_app", "iot_sensor"]
                                      # the channels a report's source may name
    max_report_age_days = 3650.0      # a report may say it occurred this long before the server's clock ...
    max_report_ahead_minutes = 10.0   # ... and this long after it; outside: refused (INVALID_ARGUMENT)

    [alerts]                          # detection runs (:mod:`citygrid.engine.alerts.settings`)
    interval_seconds = 3600.0         # a detection run over the live counts this often
    method = "C3"                     # EARS C1, C2 or C3 over every grid x category daily series
    min_sigma = 0.7                   # floor of the baseline's standard deviation
    hourly = true                     # also the fast-moving categories hour by hour (EARS C2, same hour of earlier days)

    [[intake.routing]]                # more rules beyond the taxonomy's category -> department; the
    category_class = "08"             # most specific match wins (category > area > grid type > class)
    grid_type = "03"                  # optional: only in grids of this type ...
    area = "440307001"                # ... or inside this grid, community or street
    departments = ["消防"]             # who may take it
    skill = "08"                      # optional: a skill they need

    [analytics]                       # AnalyticsService's KPIs (考核) and buckets (:class:`AnalyticsConfig`)
    timezone = "Asia/Shanghai"        # local time of day, week and month buckets, hours of day, weekdays
    [analytics.weights]               # each rate's weight in the composite score (0-100); >= 0, not all 0
    on_time_disposal = 0.4            # 按期处置率: handled_on_time / handled
    closure = 0.3                     # 结案率: closed / registered
    rework = 0.15                     # 返工率 (counted as 1 - rate): reworked / closed
    timely_dispatch = 0.15            # 及时派遣率: dispatched_on_time / dispatched
    [analytics.grades]                # the least score of each grade, falling from A to D; below D: E
    A = 90
    B = 75
    C = 60
    D = 40
    [analytics.denominators]          # each rate's denominator (the first listed is the default)
    on_time_disposal = "handled"      # or "dispatched"
    closure = "registered"            # or "reported", "dispatched"
    rework = "closed"                 # or "handled"
    timely_dispatch = "dispatched"    # or "registered"

Relative paths (``data_dir``, ``tls_*``, ``*_file``) are taken from the config file's folder. A round-the-clock
schedule is ``working_hours = ["00:00-24:00"]`` with a calendar file of ``{"weekend": []}``.

>>> config = ServerConfig.from_toml(b'[server]\\nport = 6000\\nmetrics_port = -1')
>>> config.port, config.metrics_port, config.max_receive_message_bytes
(6000, None, 33048576)
>>> config = ServerConfig.from_toml('[intake]\\nduplicate_distance_m = 10\\nmax_hops = 2\\nclock_interval = 5')
>>> intake = config.intake.intake_config
>>> intake.duplicates.distance_m, intake.duplicates.window_minutes, intake.max_hops, config.intake.clock_interval
(10.0, 1440.0, 2, 5.0)
>>> config = ServerConfig.from_toml('[analytics.weights]\\nrework = 0\\n[analytics.grades]\\nA = 95')
>>> config.analytics.weights["rework"], config.analytics.grade(92.0)
(0.0, 'B')
"""


from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from citygrid.engine.analytics.config import AnalyticsConfig
from citygrid.engine.alerts.settings import AlertSettings
from citygrid.engine.cases.settings import IntakeSettings
from citygrid.engine.errors import InvalidInput, NotFound
from citygrid.engine.houses.host import HouseSettings
from citygrid.engine.files import file_path

#: Bytes of a message besides the point arrays (headers, other fields), with room to spare.
MESSAGE_OVERHEAD_BYTES = 1 << 20
#: The tables of a config file.
TABLES = ("server", "intake", "analytics", "alerts", "houses")


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path | None = None
    host: str = "[::]"
    port: int = 50051
    metrics_port: int | None = 9464
    max_workers: int = 32
    max_concurrent_rpcs: int = 256
    max_streams_per_token: int = 100
    max_points_per_request: int = 2_000_000
    max_upload_bytes: int = 512 << 20
    chunk_size: int = 1 << 18
    grace_seconds: float = 10.0
    admin_token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    replica: bool = False
    follow_interval: float = 1.0
    ray_address: str | None = None
    ray_num_cpus: int | None = None
    http_port: int | None = 8080
    http_cors_origins: tuple[str, ...] = ()
    http_max_concurrent: int = 64
    http_timeout_seconds: float = 10.0
    http_max_streams: int = 200
    #: The ``[intake]`` table.
    intake: IntakeSettings = field(default_factory=IntakeSettings)
    #: The ``[analytics]`` table.
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)
    #: The ``[alerts]`` table (detection runs; :mod:`citygrid.engine.alerts.settings`).
    alerts: AlertSettings = field(default_factory=AlertSettings)
    #: The ``[houses]`` table (:class:`~citygrid.engine.houses.host.HouseSettings`).
    houses: HouseSettings = field(default_factory=HouseSettings)

    def __post_init__(self):
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidInput("TLS needs both tls_cert and tls_key (or neither)")
        for name in ("max_workers", "max_concurrent_rpcs", "max_streams_per_token", "max_points_per_request",
                     "max_upload_bytes", "chunk_size", "http_max_concurrent", "http_max_streams"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.port < 0:
            raise InvalidInput(f"port must be 0 (any free port) or a port number, got {self.port}")
        if not self.http_timeout_seconds > 0:
            raise InvalidInput(f"http_timeout_seconds must be positive, got {self.http_timeout_seconds}")
        if isinstance(self.http_cors_origins, str) or not all(isinstance(o, str) for o in self.http_cors_origins):
            raise InvalidInput("http_cors_origins must be a list of origins, e.g. [\"https://screen.example\"]")

    @property
    def max_receive_message_bytes(self) -> int:
        """Two float64 arrays (lng, lat) at the point limit, plus overhead (32 MiB by default)."""
        return 16 * self.max_points_per_request + MESSAGE_OVERHEAD_BYTES

    @property
    def max_send_message_bytes(self) -> int:
        """int32 rows and one status byte per point at the limit, every grid's record, overhead."""
        return 5 * self.max_points_per_request + 16 * MESSAGE_OVERHEAD_BYTES

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def replace(self, **changes) -> "ServerConfig":
        """A copy with the given fields changed (``None`` values are ignored: "not given")."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_toml(cls, text: bytes | str, *, base: Path | None = None) -> "ServerConfig":
        """Parse the ``[server]``, ``[intake]`` and ``[analytics]`` tables; relative paths are taken from ``base`` (the
        file's folder)."""
        try:
            doc = tomllib.loads(text.decode() if isinstance(text, bytes) else text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"the config is not valid TOML: {exc}") from None
        tables = sorted(set(doc) - set(TABLES))
        if tables:
            raise InvalidInput(f"unknown config tables or keys {tables}; the config has the tables {list(TABLES)}")
        for name in TABLES:
            if not isinstance(doc.get(name, {}), dict):
                raise InvalidInput(f"[{name}] must be a table")
        table = doc.get("server", {})
        known = [f.name for f in dataclasses.fields(cls) if f.name not in TABLES]
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise InvalidInput(f"unknown [server] keys {unknown}; known keys are {sorted(known)}")
        values = dict(table)
        for key in ("data_dir", "tls_cert", "tls_key"):
            if key in values:
                values[key] = file_path(values[key], base)
        for key in ("metrics_port", "http_port"):
            if values.get(key, 0) is not None and values.get(key, 0) < 0:
                values[key] = None
        if "http_cors_origins" in values and isinstance(values["http_cors_origins"], list):
            values["http_cors_origins"] = tuple(values["http_cors_origins"])
        return cls(**values, intake=IntakeSettings.from_table(doc.get("intake", {}), base=base),
                   analytics=AnalyticsConfig.from_table(doc.get("analytics", {})),
                   alerts=AlertSettings.from_table(doc.get("alerts", {})),
                   houses=HouseSettings.from_table(doc.get("houses", {})))


def load_config(path: str | os.PathLike | None) -> ServerConfig:
    """The configuration in ``path`` (the defaults when ``None``)."""
    if path is None:
        return ServerConfig()
    path = Path(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"no config file {path}") from None
    return ServerConfig.from_toml(text, base=path.parent.resolve())
