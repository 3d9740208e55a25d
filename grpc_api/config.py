"""Server configuration: a TOML file's ``[server]`` and ``[intake]`` tables; the command line
overrides some ``[server]`` keys.

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

    [[intake.routing]]                # more rules beyond the taxonomy's category -> department; the
    category_class = "08"             # most specific match wins (category > area > grid type > class)
    grid_type = "03"                  # optional: only in grids of this type ...
    area = "440307001"                # ... or inside this grid, community or street
    departments = ["消防"]             # who may take it
    skill = "08"                      # optional: a skill they need

Relative paths (``data_dir``, ``tls_*``, ``*_file``) are taken from the config file's folder. A round-the-clock
schedule is ``working_hours = ["00:00-24:00"]`` with a calendar file of ``{"weekend": []}``.

>>> config = ServerConfig.from_toml(b'[server]\\nport = 6000\\nmetrics_port = -1')
>>> config.port, config.metrics_port, config.max_receive_message_bytes
(6000, None, 33048576)
>>> config = ServerConfig.from_toml('[intake]\\nduplicate_distance_m = 10\\nmax_hops = 2\\nclock_interval = 5')
>>> intake = config.intake.intake_config
>>> intake.duplicates.distance_m, intake.duplicates.window_minutes, intake.max_hops, config.intake.clock_interval
(10.0, 1440.0, 2, 5.0)
"""

from __future__ import annotations

import dataclasses
import math
from datetime import timedelta
import os
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from citygrid.engine.times import Clock, StartedClock, aware
from citygrid.engine.dispatch.dispatcher import Route, RoutingRule, RoutingRules
from citygrid.engine.cases.duplicates import DuplicatePolicy
from citygrid.engine.errors import InvalidInput, NotFound
from citygrid.engine.cases.model import CHANNELS
from citygrid.engine.cases.intake import MAX_REPORT_AGE, MAX_REPORT_AHEAD, IntakeConfig
from citygrid.engine.cases.lifecycle import EscalationPolicy
from citygrid.engine.cases.taxonomy import Taxonomy, load_taxonomy
from citygrid.engine.dispatch.workers import DEFAULT_DEPARTMENT
from citygrid.engine.dispatch.worktime import DEFAULT_PERIODS, DEFAULT_TIMEZONE, HolidayCalendar, WorkSchedule

#: Bytes of a message besides the point arrays (headers, other fields), with room to spare.
MESSAGE_OVERHEAD_BYTES = 1 << 20
#: Seconds between two ticks of the intake's clock (dispatch waiting events, escalate overdue ones).
CLOCK_INTERVAL_S = 60.0
#: The tables of a config file.
TABLES = ("server", "intake")


@dataclass(frozen=True)
class IntakeSettings:
    """The ``[intake]`` table: how the server's event intake runs.

    Checked when made, files included (the taxonomy and calendar are read then), so a bad value
    stops the server at start-up with :class:`InvalidInput` naming the key. The defaults are the
    engine's.
    """

    #: Categories and their stage time limits (:func:`~citygrid.engine.cases.taxonomy.load_taxonomy`);
    #: ``None``: the taxonomy shipped with CityGrid.
    taxonomy_file: Path | None = None
    #: Local working periods of a working day, ``"HH:MM-HH:MM"`` (:class:`WorkSchedule`).
    working_hours: tuple[str, ...] = DEFAULT_PERIODS
    timezone: str = DEFAULT_TIMEZONE
    #: Holidays, make-up working days and weekend (:meth:`HolidayCalendar.from_file`); ``None``:
    #: the official Chinese calendar.
    calendar_file: Path | None = None
    duplicate_distance_m: float = DuplicatePolicy.distance_m
    duplicate_window_minutes: float = DuplicatePolicy.window_minutes
    #: Working minutes overdue before the street is told (:class:`EscalationPolicy`); ``None``: the
    #: stage's own limit again.
    street_escalation_after_minutes: float | None = None
    max_hops: int = IntakeConfig.max_hops
    auto_register: bool = IntakeConfig.auto_register
    max_batch: int = IntakeConfig.max_batch
    clock_interval: float = CLOCK_INTERVAL_S
    #: The time the intake's clock reads when the server starts (it runs on from there,
    #: :class:`~citygrid.engine.times.StartedClock`): a TOML date-time with an offset, or the same as
    #: an ISO 8601 string. ``None``: the system clock. Shifts, deadlines, escalation and the
    #: duplicate window all follow the intake's clock.
    clock_start: datetime | None = None
    #: Departments whose grid workers (网格员) take any matter of their own grid.
    first_responders: tuple[str, ...] = (DEFAULT_DEPARTMENT,)
    #: The channels a report's ``source`` may name; a report from another is refused.
    sources: tuple[str, ...] = tuple(CHANNELS)
    #: How long before the server's clock a report may say it occurred (days) ...
    max_report_age_days: float = MAX_REPORT_AGE / timedelta(days=1)
    #: ... and how long after it (minutes); a report outside the window is refused.
    max_report_ahead_minutes: float = MAX_REPORT_AHEAD / timedelta(minutes=1)
    #: Routing rules beyond the taxonomy's category -> department (``[[intake.routing]]`` tables:
    #: ``category`` or ``category_class``, optionally ``grid_type`` and ``area``, -> ``departments``
    #: and an optional ``skill``); the most specific matching rule wins.
    routing: tuple[dict, ...] = field(default=(), hash=False)
    #: What :class:`~citygrid.engine.cases.intake.Intake` takes (``config=``), made from the settings above.
    intake_config: IntakeConfig = field(init=False, repr=False, compare=False)
    #: The taxonomy of ``taxonomy_file`` (``None``: the intake takes the shipped one).
    taxonomy: Taxonomy | None = field(init=False, repr=False, compare=False)
    #: The routing rules the intake dispatches by (``routing=``): the taxonomy's, then ``routing``.
    routing_rules: RoutingRules = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        _check_number(self, "duplicate_distance_m", minimum=0.0)
        _check_number(self, "duplicate_window_minutes", minimum=0.0)
        if self.street_escalation_after_minutes is not None:
            _check_number(self, "street_escalation_after_minutes", minimum=0.0)
        _check_number(self, "clock_interval", minimum=0.0, inclusive=False)
        _check_number(self, "max_report_age_days", minimum=0.0, maximum=36500.0)
        _check_number(self, "max_report_ahead_minutes", minimum=0.0, maximum=525600.0)
        _check_whole("max_hops", self.max_hops, minimum=0)
        _check_whole("max_batch", self.max_batch, minimum=1)
        if not isinstance(self.auto_register, bool):
            raise InvalidInput(f"[intake] auto_register must be true or false, got {self.auto_register!r}")
        hours = self.working_hours
        if isinstance(hours, str) or not all(isinstance(h, str) for h in hours):
            raise InvalidInput(f'[intake] working_hours must be a list of "HH:MM-HH:MM" strings, got {hours!r}')
        object.__setattr__(self, "working_hours", tuple(hours))
        if self.clock_start is not None:
            object.__setattr__(self, "clock_start", _instant("clock_start", self.clock_start))
        if not isinstance(self.timezone, str):
            raise InvalidInput(f"[intake] timezone must be an IANA name like Asia/Shanghai, got {self.timezone!r}")
        # Built now, so that a bad schedule, calendar or taxonomy file stops the server at start-up.
        try:
            calendar = (HolidayCalendar.china() if self.calendar_file is None
                        else HolidayCalendar.from_file(self.calendar_file))
            sources = _strings("sources", self.sources)
            config = IntakeConfig(
                schedule=WorkSchedule(periods=self.working_hours, timezone=self.timezone, calendar=calendar),
                duplicates=DuplicatePolicy(self.duplicate_distance_m, self.duplicate_window_minutes),
                escalation=EscalationPolicy(self.street_escalation_after_minutes),
                max_hops=self.max_hops,
                auto_register=self.auto_register,
                max_batch=self.max_batch,
                sources=frozenset(sources),
                max_report_age=timedelta(days=self.max_report_age_days),
                max_report_ahead=timedelta(minutes=self.max_report_ahead_minutes),
            )
            taxonomy = None if self.taxonomy_file is None else load_taxonomy(self.taxonomy_file)
            responders = _strings("first_responders", self.first_responders)
            categories = taxonomy or load_taxonomy()  # what the routing rules name
            extra = [_routing_rule(k, rule, categories) for k, rule in enumerate(self.routing, 1)]
            routing = RoutingRules.from_taxonomy(categories, first_responders=responders, extra=extra)
        except InvalidInput as exc:
            raise InvalidInput(str(exc) if str(exc).startswith("[intake]") else f"[intake] {exc}") from None
        object.__setattr__(self, "intake_config", config)
        object.__setattr__(self, "taxonomy", taxonomy)
        object.__setattr__(self, "first_responders", responders)
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "routing", tuple(dict(rule) for rule in self.routing))
        object.__setattr__(self, "routing_rules", routing)

    def clock(self) -> Clock | None:
        """A fresh clock for an intake: started at ``clock_start``, or ``None`` (the system clock)."""
        return None if self.clock_start is None else StartedClock(self.clock_start)

    @classmethod
    def from_table(cls, table: dict, *, base: Path | None = None) -> "IntakeSettings":
        """From the ``[intake]`` table of a TOML document; relative files are taken from ``base``."""
        known = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise InvalidInput(f"unknown [intake] keys {unknown}; known keys are {sorted(known)}")
        values = dict(table)
        for key in ("taxonomy_file", "calendar_file"):
            if key in values:
                if not isinstance(values[key], str) or not values[key]:
                    raise InvalidInput(f"[intake] {key} must be a file path, got {values[key]!r}")
                values[key] = _path(values[key], base)
        return cls(**values)


def _check_number(settings: IntakeSettings, key: str, *, minimum: float, inclusive: bool = True,
                  maximum: float = math.inf) -> None:
    """Check a number of the settings and store it as a float."""
    value = getattr(settings, key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum or (not inclusive and value == minimum) or value > maximum:
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        if maximum < math.inf:
            bound += f" and <= {maximum:g}"
        raise InvalidInput(f"[intake] {key} must be a number {bound}, got {value!r}")
    object.__setattr__(settings, key, float(value))


_RULE_KEYS = ("category", "category_class", "grid_type", "area", "departments", "skill")


def _routing_rule(k: int, rule, taxonomy: Taxonomy) -> RoutingRule:
    """The ``k``-th ``[[intake.routing]]`` table as a rule, its codes checked against the taxonomy."""
    where = f"[[intake.routing]] rule {k}"
    if not isinstance(rule, dict):
        raise InvalidInput(f"[intake] {where} must be a table")
    unknown = sorted(set(rule) - set(_RULE_KEYS))
    if unknown:
        raise InvalidInput(f"[intake] {where}: unknown keys {unknown}; known keys are {list(_RULE_KEYS)}")
    for key in ("category", "category_class", "grid_type", "area", "skill"):
        if key in rule and (not isinstance(rule[key], str) or not rule[key]):
            raise InvalidInput(f"[intake] {where}: {key} must be a code, got {rule[key]!r}")
    if not any(key in rule for key in ("category", "category_class", "grid_type", "area")):
        raise InvalidInput(f"[intake] {where} needs a category, category_class, grid_type or area to match")
    if "category" in rule and rule["category"] not in {c.code for c in taxonomy.categories}:
        raise InvalidInput(f"[intake] {where}: no category {rule['category']!r} in taxonomy {taxonomy.name}")
    if "category_class" in rule and rule["category_class"] not in {c.code for c in taxonomy.classes}:
        raise InvalidInput(f"[intake] {where}: no category class {rule['category_class']!r} in taxonomy {taxonomy.name}")
    departments = _strings(f"{where} departments", rule.get("departments", ()))
    return RoutingRule(Route(frozenset(departments), rule.get("skill")), category=rule.get("category"),
                       category_class=rule.get("category_class"), grid_type=rule.get("grid_type"), area=rule.get("area"))


def _instant(key: str, value) -> datetime:
    """An aware datetime from a TOML offset date-time or an ISO 8601 string."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"[intake] {key} must be a date and time like 2026-12-07T03:05:00+08:00, "
                               f"got {value!r}") from None
    return aware(value, f"[intake] {key}")


def _strings(key: str, values) -> tuple[str, ...]:
    """A non-empty list of non-empty strings, as a tuple."""
    if isinstance(values, str) or not isinstance(values, (list, tuple)) or not values or not all(
        isinstance(v, str) and v for v in values
    ):
        raise InvalidInput(f"[intake] {key} must be a non-empty list of names, got {values!r}")
    return tuple(values)


def _check_whole(key: str, value, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidInput(f"[intake] {key} must be a whole number >= {minimum}, got {value!r}")


def _path(value: str | os.PathLike, base: Path | None) -> Path:
    """``value`` with ``~`` expanded, taken from ``base`` when relative."""
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() or base is None else base / path


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
    #: The ``[intake]`` table.
    intake: IntakeSettings = field(default_factory=IntakeSettings)

    def __post_init__(self):
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidInput("TLS needs both tls_cert and tls_key (or neither)")
        for name in ("max_workers", "max_concurrent_rpcs", "max_streams_per_token", "max_points_per_request",
                     "max_upload_bytes", "chunk_size"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.port < 0:
            raise InvalidInput(f"port must be 0 (any free port) or a port number, got {self.port}")

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
        """Parse the ``[server]`` and ``[intake]`` tables; relative paths are taken from ``base`` (the
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
        known = [f.name for f in dataclasses.fields(cls) if f.name != "intake"]
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise InvalidInput(f"unknown [server] keys {unknown}; known keys are {sorted(known)}")
        values = dict(table)
        for key in ("data_dir", "tls_cert", "tls_key"):
            if key in values:
                values[key] = _path(values[key], base)
        if values.get("metrics_port", 0) is not None and values.get("metrics_port", 0) < 0:
            values["metrics_port"] = None
        return cls(**values, intake=IntakeSettings.from_table(doc.get("intake", {}), base=base))


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
