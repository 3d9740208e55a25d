"""The ``[intake]`` table of the server's config: how the event intake runs (taxonomy, working
hours and calendar, duplicates, escalation, routing, the clock). :class:`IntakeSettings` checks every
key (and reads the taxonomy and calendar files) when made, so a bad value stops the server at start-up
with an :class:`InvalidInput` naming the key; the keys and an example are in
:mod:`citygrid.grpc_api.config`, which reads the rest of the file (the ``[server]`` table).

>>> settings = IntakeSettings.from_table({"duplicate_distance_m": 10, "max_hops": 2, "clock_interval": 5})
>>> settings.intake_config.duplicates.distance_m, settings.intake_config.max_hops, settings.clock_interval
(10.0, 2, 5.0)
"""
from __future__ import annotations

import dataclasses
import math
from datetime import timedelta
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from citygrid.engine.times import Clock, StartedClock, aware
from citygrid.engine.dispatch.routing import Route, RoutingRule, RoutingRules
from citygrid.engine.cases.duplicates import DuplicatePolicy
from citygrid.engine.errors import InvalidInput
from citygrid.engine.files import file_path
from citygrid.engine.cases.model import CHANNELS
from citygrid.engine.cases.intake import MAX_REPORT_AGE, MAX_REPORT_AHEAD, IntakeConfig
from citygrid.engine.cases.lifecycle import EscalationPolicy
from citygrid.engine.cases.taxonomy import Taxonomy, load_taxonomy
from citygrid.engine.dispatch.workers import DEFAULT_DEPARTMENT
from citygrid.engine.dispatch.worktime import DEFAULT_PERIODS, DEFAULT_TIMEZONE, HolidayCalendar, WorkSchedule

#: Seconds between two ticks of the intake's clock (dispatch waiting events, escalate overdue ones).
CLOCK_INTERVAL_S = 60.0


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
                values[key] = file_path(values[key], base)
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
