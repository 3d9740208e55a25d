"""How the service's detection runs are set up: the ``[alerts]`` table of the server's config.

::

    [alerts]
    interval_seconds = 3600.0   # a detection run over the live counts this often (and RunDetection on demand)
    method = "C3"               # EARS C1, C2 or C3 (the published C3) on every grid x category daily series
    alpha = 0.025               # one-sided level of the EARS bound (unset: the CDC's, 0.001 for C1 and
                                # C2, 0.025 for C3)
    baseline_days = 7           # days of the EARS baseline
    min_sigma = 0.7             # floor of the baseline's standard deviation
    levels = ["grid"]           # also "community", "street", "district": the series rolled up
    classes = true              # also each category class's series (its categories summed), at the same levels
    class_min_sigma = 1.0       # floor of a class series' baseline standard deviation (the detector's otherwise)
    backfill_days = 365         # how far back the first run (no run stored yet) judges
    timezone = "Asia/Shanghai"  # of the local days counted
    scan = true                 # also the prospective space-time permutation scan of each category
    scan_days = 1               # the last days of a run that the scan judges (1: today)
    scan_study_days = 365       # days of the scan's study, up to the day judged
    scan_radius_km = 1.0        # largest cylinder radius
    scan_max_days = 7           # longest cylinder window
    scan_min_cases = 2          # fewest events in a cluster
    scan_reps = 999             # Monte Carlo replications
    scan_p = 0.005              # clusters with p below this become disc alerts
    hourly = true               # also judge the fast-moving categories' hourly series
    hourly_handle_minutes = 120 # fast-moving: categories the taxonomy wants handled within this many minutes
    hourly_method = "C2"        # EARS C1 or C2 over each hour of the day against the same hour of earlier days
    hourly_alpha = 0.001        # one-sided level of the hourly bound (unset: the CDC's for the method)
    hourly_baseline_days = 7    # earlier days (of the same hour) in the hourly baseline
    hourly_min_sigma = 0.7      # floor of the hourly baseline's standard deviation

The scan's parameters are the demo analysis' (issue 13: 1 km, 7 days, 999 replications). ``scan_p``:
a scan of each of the taxonomy's ~50 categories every day would raise about 50 x 0.005 = 0.25 false
disc alerts a day under no clustering at all (a p-value is uniform there), within the one a day the
district can bear beside the detectors' 0.39 (0.54 with class rollups); 0.005 is a recurrence interval of 200 days. Replayed
day by day over the demo year (``bench/test_scan_replay.py``, days 7 .. 364), these settings found
all 24 spikes and 16 clusters at 0.14 false disc alerts a day after deduplication (0.04 at
p < 0.002, same recall). The sweep replayed over the same days at 199 replications found every
spike and cluster at every threshold with 1 km and with 0.5 km (0.16 and 0.15 false alerts a day at
p < 0.01, 1.23 and 1.27 at 0.05): the threshold, not the radius, sets the false alerts, and 999
replications are what decide p < 0.005. A run's scans stop their replications once
``p < scan_p`` is decided (exact for the clusters kept), so ``scan_reps`` costs little on quiet days.

Hourly judging (``hourly``; :mod:`citygrid.engine.alerts.hourly`): the fast-moving categories
(the taxonomy handles them within ``hourly_handle_minutes``: 12 of the default 50, e.g. 道路积水,
火情, 噪音扰民) are also counted per grid x category and local hour, rolled up to the same
``levels``, and each hour of the day is judged against the same hour of earlier days: EARS C2
over the hour's own series (hour h of day d against hour h of days d-3 .. d-9), so the day/night
cycle (the demo has ten times as many reports at 17:00 as at 03:00) is in the baseline and never an
alarm, and a run at the end of an hour judges the hour (a burst is an alert within the hour, the
scheduled run being hourly). C2, not C3: C3's added excess of the two periods before would be the
same hour on the two days before, which says nothing about a burst now; C2's two-day gap keeps
yesterday's burst at that hour out of today's baseline. ``alpha`` 0.001 (the CDC's for C2) and the
same 0.7 floor as the daily detector: a grid x category hour with no event at that hour all week
alarms at three events in the hour. Hourly alarms of one series at most one quiet day apart are
one finding (its days those of its alarm hours), and update the daily detector's alert of the
same grid (or rollup) x category, and vice versa (:class:`~citygrid.engine.alerts.store.Finding`
``joins``): one rise, one alert. On the demo year (``bench/test_alert_service.py``) the hourly
detector alone raises 3 alarms, all on labelled spikes, and with it on the service's false
alerts a day stay those of the daily detector (figures in the README).

Category classes (``classes``): each level's category series are also summed by the taxonomy's
class (:func:`~citygrid.engine.alerts.series.category_classes`) and judged by the same daily
detector, so a rise spread over several categories of one class (three kinds of 市容环境 in one
grid, each below its own bound) is an alert of the class. Not the hourly series (a class holds
fast-moving and slow categories; its hours would mostly repeat the day) and not the scans (one per
category). A class alarm that only repeats one category's alarm is no second alert (the rule is in
:func:`citygrid.engine.alerts.host._class_findings`), and a class alert becomes an event of its
category with the most excess (:meth:`~citygrid.engine.alerts.host.AlertHost.to_event`).
``class_min_sigma`` 1.0, not the detector's 0.7: a class sums up to six categories, and at 0.7 a
grid's class alarms at two reports after a quiet week (on the demo year 627 class alerts, 1.76 false
alerts a day on top of the categories' 0.39); at 1.0, 55 (0.15 a day, 0.54 in all), while still
finding 74 of 80 rises planted as one extra report in each of three categories of a class (which
no category alert finds); at 1.5, none of them. Figures in the README's alerts section.

Why these defaults (scored through the service, ``bench/test_alert_service.py``, and on the same
series directly, against the demo's 24 labelled spikes and 16 clusters; alarm days of a series at
most one quiet day apart are one alert): the published EARS C3 with a 0.7 floor on the baseline's
standard deviation finds every spike and every cluster of the default demo year (200,000 events)
at 0.39 false alerts a day (0.54 with class rollups) across the district's 3,823 grids, and every spike and 13 of 16 of the
smaller clusters of a 100,000-event year at 0.06 a day. A floor of 0.7 needs three events in a
grid that saw none all week (0.5 alarms on two: 3.7 false alerts a day with C2); C3 adds the
excess of the two days before, so a cluster that spreads a few events a day over several grids
and days still sounds. C2 at 0.7 is quieter (0.05 a day) but finds 94 % and 44 % of the clusters
of those two years; C1 at 0.7 88 %; R's C3 rule misses a fifth of the spikes; community
rollups at a floor of 1 find everything at 0.76 false alerts a day; Bayes at alpha 0.001 finds
31 % of the clusters. The figures are in the README's alerts section.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from citygrid.engine.alerts.detectors import EarsOptions
from citygrid.engine.errors import InvalidInput

LEVEL_NAMES = ("grid", "community", "street", "district")


@dataclass(frozen=True)
class AlertSettings:
    interval_seconds: float = 3600.0
    method: str = "C3"
    #: None: the CDC's level for the method (0.001 for C1 and C2, 0.025 for C3).
    alpha: float | None = None
    baseline_days: int = 7
    min_sigma: float = 0.7
    levels: tuple[str, ...] = ("grid",)
    classes: bool = True
    class_min_sigma: float = 1.0
    backfill_days: int = 365
    timezone: str = "Asia/Shanghai"
    scan: bool = True
    scan_days: int = 1
    scan_study_days: int = 365
    scan_radius_km: float = 1.0
    scan_max_days: int = 7
    scan_min_cases: int = 2
    scan_reps: int = 999
    scan_p: float = 0.005
    hourly: bool = True
    hourly_handle_minutes: int = 120
    hourly_method: str = "C2"
    hourly_alpha: float | None = 0.001
    hourly_baseline_days: int = 7
    hourly_min_sigma: float = 0.7

    def __post_init__(self):
        if not isinstance(self.interval_seconds, (int, float)) or not math.isfinite(self.interval_seconds) \
                or self.interval_seconds <= 0:
            raise InvalidInput(f"[alerts] interval_seconds must be a positive number, got {self.interval_seconds!r}")
        if self.method not in ("C1", "C2", "C3"):
            raise InvalidInput(f"[alerts] method must be C1, C2 or C3, got {self.method!r}")
        if self.alpha is not None and (not isinstance(self.alpha, float) or not 0 < self.alpha < 0.5):
            raise InvalidInput(f"[alerts] alpha must be a number between 0 and 0.5, got {self.alpha!r}")
        for name in ("scan", "hourly", "classes"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInput(f"[alerts] {name} must be true or false, got {getattr(self, name)!r}")
        if self.hourly_method not in ("C1", "C2"):
            raise InvalidInput(f"[alerts] hourly_method must be C1 or C2 (C3's excess of the periods before is "
                               f"not defined over one hour of the day), got {self.hourly_method!r}")
        if self.hourly_alpha is not None and (not isinstance(self.hourly_alpha, float) or not 0 < self.hourly_alpha < 0.5):
            raise InvalidInput(f"[alerts] hourly_alpha must be a number between 0 and 0.5, got {self.hourly_alpha!r}")
        if isinstance(self.class_min_sigma, bool) or not isinstance(self.class_min_sigma, (int, float)) \
                or not self.class_min_sigma >= 0:
            raise InvalidInput(f"[alerts] class_min_sigma must be a number >= 0, got {self.class_min_sigma!r}")
        if isinstance(self.hourly_min_sigma, bool) or not isinstance(self.hourly_min_sigma, (int, float)) \
                or not self.hourly_min_sigma >= 0:
            raise InvalidInput(f"[alerts] hourly_min_sigma must be a number >= 0, got {self.hourly_min_sigma!r}")
        for name, low in (("scan_radius_km", 0.0), ("scan_p", 0.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low < value < math.inf):
                raise InvalidInput(f"[alerts] {name} must be a number above {low:g}, got {value!r}")
        if not self.scan_p <= 1:
            raise InvalidInput(f"[alerts] scan_p must be at most 1, got {self.scan_p!r}")
        for name, low in (("baseline_days", 3), ("backfill_days", 1), ("scan_days", 1), ("scan_study_days", 1),
                          ("scan_max_days", 1), ("scan_min_cases", 1), ("scan_reps", 1),
                          ("hourly_handle_minutes", 1), ("hourly_baseline_days", 3)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidInput(f"[alerts] {name} must be a whole number >= {low}, got {value!r}")
        if not isinstance(self.min_sigma, (int, float)) or not self.min_sigma >= 0:
            raise InvalidInput(f"[alerts] min_sigma must be a number >= 0, got {self.min_sigma!r}")
        levels = self.levels
        if isinstance(levels, str) or not levels or any(level not in LEVEL_NAMES for level in levels):
            raise InvalidInput(f"[alerts] levels must be a list of {', '.join(LEVEL_NAMES)}, got {levels!r}")
        object.__setattr__(self, "levels", tuple(dict.fromkeys(levels)))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise InvalidInput(f"[alerts] timezone must be an IANA name like Asia/Shanghai, got {self.timezone!r}") from None

    @property
    def options(self) -> EarsOptions:
        return EarsOptions(method=self.method, baseline=self.baseline_days, alpha=self.alpha, min_sigma=self.min_sigma)

    @property
    def class_options(self) -> EarsOptions:
        """The detector on the category classes' series: the daily one with ``class_min_sigma``."""
        return EarsOptions(method=self.method, baseline=self.baseline_days, alpha=self.alpha,
                           min_sigma=self.class_min_sigma)

    @property
    def method_name(self) -> str:
        """The method as alerts name it (``ears C2``)."""
        return f"ears {self.method}"

    @property
    def lookback_days(self) -> int:
        """Days counted before the first day judged: the baseline and C2/C3's two-day gap."""
        return self.baseline_days + 2 + (2 if self.method == "C3" else 0)

    @property
    def hourly_options(self) -> EarsOptions:
        return EarsOptions(method=self.hourly_method, baseline=self.hourly_baseline_days, alpha=self.hourly_alpha,
                           min_sigma=self.hourly_min_sigma)

    @property
    def hourly_method_name(self) -> str:
        """The hourly method as alerts name it (``ears C2 hourly``)."""
        return f"ears {self.hourly_method} hourly"

    @property
    def hourly_lookback_days(self) -> int:
        """Days counted hour by hour before the first day judged: the baseline and C2's two-day gap."""
        return self.hourly_baseline_days + (2 if self.hourly_method == "C2" else 0)

    @classmethod
    def from_table(cls, table: dict) -> "AlertSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise InvalidInput(f"[alerts] unknown keys {unknown}; the keys are {sorted(known)}")
        values = dict(table)
        if "levels" in values and isinstance(values["levels"], list):
            values["levels"] = tuple(values["levels"])
        return cls(**values)
