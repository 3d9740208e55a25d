"""The alert host: detection runs over the live counts, the alert store, and what callers may do
with alerts (the engine side of ``AlertService``).

A detection run (:meth:`AlertHost.run`) reads the events the intake committed through a columnar
mirror of the event store (:class:`~citygrid.engine.analytics.mirror.EventMirror`: the analytics'
own when the server runs them, ``mirror=``, else one of its own; caught up from the store's logs
before each run, so a relocated or re-gridded event counts where it is now),
counts them per grid x category and local day (:func:`~citygrid.engine.alerts.series.count_events`;
every report counts, duplicates included, as the dashboards' "reported" does), rolls them up to the
``levels`` configured, runs the configured EARS detector over every series at once and turns each
series' alarm days into episodes (alarm days at most :data:`~citygrid.engine.alerts.store.MERGE_GAP_DAYS`
apart are one). With ``hourly`` on (the default), the fast-moving categories are also counted per
local hour and each hour judged against the same hour of earlier days (:mod:`~citygrid.engine.alerts.hourly`),
at the same levels; an hourly and a daily finding of one area and category update one alert. With
``classes`` on (the default), each level's series are also summed by category class and judged by
the daily detector; a class episode that only repeats one category's alarm is dropped
(:func:`_class_findings`). Each episode is a :class:`~citygrid.engine.alerts.store.Finding`; the store
deduplicates them against the alerts it holds and records the run. With ``scan`` on (the default),
the run also scans each category's grid x day counts for space-time clusters ending on the last
``scan_days`` days it judges (:mod:`~citygrid.engine.alerts.discs`) and stores those with
``p < scan_p`` as disc alerts, deduplicated the same way.

Which days a run judges: from ``since`` when the caller gives it; else from the last day the
previous run judged (that day again: it may have been judged before it ended); else, on the first
run, the last ``backfill_days`` days, but none whose baseline reaches back before the first event
in the store (the days before it are unknown, not quiet: judged against zeros, the first week of
any store would alarm everywhere). Days up to today (the clock's local date, still counting)
are judged; today's count is partial, so a spike shows once enough of it has been reported.

Time is the intake's clock (an injected one in tests). :meth:`run_schedule` runs a detection every
``interval_seconds`` in a thread of the serving process (:meth:`start`); RunDetection calls
:meth:`run` on demand. Runs are serialised.

Extension point, not built: a sudden change of a grid's registered population. The house
registry (:mod:`citygrid.engine.houses`) answers the population of each area now
(``population(level)``) but keeps no daily history of it, and a change needs one. A finder is any
callable ``finder(window: RunWindow) -> list[Finding]`` passed as ``AlertHost(..., finders=[...])``;
each run calls every finder with the days it judges and stores what they find with the detectors'
findings (deduplicated and audited the same way; use ``kind="detector"``, a method name of its own
and the grid's chain). A population finder would keep the registry's daily counts per grid and
flag a day whose change exceeds what the grid's history allows.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence
from zoneinfo import ZoneInfo

import numpy as np

from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.alerts import discs
from citygrid.engine.alerts import hourly as H
from citygrid.engine.alerts import store as S
from citygrid.engine.alerts.detectors import detect
from citygrid.engine.alerts.series import EventSeries, category_classes, count_events, fast_moving, roll_up
from citygrid.engine.alerts.settings import AlertSettings
from citygrid.engine.analytics.mirror import EventMirror
from citygrid.engine.analytics.source import Vocabulary
from citygrid.engine.cases.model import EventReport
from citygrid.engine.errors import CityGridError, InvalidInput, PreconditionFailed
from citygrid.engine.hierarchy import Chains
from citygrid.engine.times import to_us

log = logging.getLogger("citygrid.engine.alerts")

#: Who may read alerts, act on them (acknowledge, dismiss, turn into an event), and run a detection
#: (admins always may).
READ_ROLES = (Role.SUPERVISOR, Role.DISPATCHER, Role.DASHBOARD)
ACT_ROLES = (Role.SUPERVISOR, Role.DISPATCHER)
RUN_ROLES = (Role.SUPERVISOR,)
#: Who the audit trail names for scheduled runs.
SCHEDULE = Principal("alert schedule", Role.ADMIN)
#: The intake channel of events made from alerts (:data:`citygrid.engine.cases.model.CHANNELS`).
SOURCE = "early_warning"
_CHAIN_INDEX = {"grid": 0, "community": 1, "street": 2, "district": 3}


@dataclass(frozen=True)
class RunWindow:
    """What a finder is asked about: the local days judged (inclusive), the clock's now, the layer."""

    first_day: dt.date
    last_day: dt.date
    now: dt.datetime
    layer: object


@dataclass(frozen=True)
class RunReport:
    run: S.RunRecord
    raised: tuple[int, ...]
    updated: tuple[int, ...]
    dropped: int


class AlertHost:
    """Detection runs and alerts of one data directory, over the intake held by ``intake_host``
    (a :class:`~citygrid.engine.cases.host.IntakeHost`: its clock, taxonomy, layer, and the intake
    that alerts become events through)."""

    def __init__(self, data_dir, intake_host, settings: AlertSettings | None = None, *,
                 finders: Sequence[Callable[[RunWindow], list[S.Finding]]] = (),
                 mirror: Callable[[], EventMirror] | None = None):
        self.settings = settings or AlertSettings()
        self.store = S.AlertStore(data_dir)
        self._data_dir = data_dir
        self._intake_host = intake_host
        self._finders = tuple(finders)
        self._mirror: EventMirror | None = None
        #: The analytics' mirror of the same store, when the server has one (one mirror, not two).
        self._shared_mirror = mirror
        self._run_lock = threading.Lock()
        self._act_lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._listen_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Grid points of the scans, per layer version.
        self._points: dict = {}

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        """Run a detection every ``interval_seconds`` in a thread until :meth:`close`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.run_schedule, args=(self._stop,), name="citygrid-alerts",
                                            daemon=True)
            self._thread.start()

    def run_schedule(self, stop: threading.Event) -> None:
        """Call :meth:`run` every ``interval_seconds`` until ``stop`` is set; a run that fails with a
        CityGrid error (no active layer yet, say) is logged and tried again at the next one."""
        while not stop.wait(self.settings.interval_seconds):
            try:
                report = self.run(SCHEDULE, trigger="schedule")
                log.info("alerts: scheduled run %d raised %d and updated %d alerts", report.run.id,
                         len(report.raised), len(report.updated))
            except CityGridError as exc:
                log.warning("alerts: scheduled detection failed, trying again in %.0f s: %s",
                            self.settings.interval_seconds, exc)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._run_lock:
            if self._mirror is not None:
                self._mirror.close()
            self.store.close()

    def on_news(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` after each commit that changes an alert, until the function returned
        is called (how a watch waits without a thread; see ``Intake.on_news``)."""
        with self._listen_lock:
            self._listeners.append(callback)

        def stop() -> None:
            with self._listen_lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return stop

    def _wake(self) -> None:
        with self._listen_lock:
            listeners = list(self._listeners)
        for callback in listeners:
            try:
                callback()
            except Exception:  # noqa: BLE001 - a watcher's bug must not fail a commit that is done
                log.warning("an alert listener failed", exc_info=True)

    # ------------------------------------------------------------------ detection

    def run(self, principal: Principal, *, trigger: str = "on demand", since: dt.date | None = None) -> RunReport:
        """One detection run (see the module docstring); durable when it returns. The report lists
        the alerts raised and updated inside the caller's jurisdiction."""
        principal.require_role(*RUN_ROLES, action="run anomaly detection")
        with self._run_lock:
            started = time.perf_counter()
            intake = self._intake_host.intake()
            now = intake.clock()
            tz = ZoneInfo(self.settings.timezone)
            today = now.astimezone(tz).date()
            last = self.store.last_run()
            if since is not None:
                first = since
            elif last is not None:
                first = min(last.last_day, today)
            else:
                first = today - dt.timedelta(days=self.settings.backfill_days - 1)
                earliest = self._first_event_day(intake, tz)
                if earliest is not None:  # no day whose baseline reaches before the first event (unknown, not 0)
                    lookback = max(self.settings.lookback_days, self.settings.hourly_lookback_days)
                    first = min(today, max(first, earliest + dt.timedelta(days=lookback)))
            if first > today:
                raise InvalidInput(f"the first day to judge ({first}) is after today ({today} in {self.settings.timezone})")
            if (today - first).days >= 3660:
                raise InvalidInput(f"judging from {first} is more than ten years; give a later day")
            start_day = first - dt.timedelta(days=self.settings.lookback_days)
            findings, n_series, n_events = self._detect(intake, start_day, first, today, tz)
            if self.settings.scan:
                findings += self._scan(intake, first, today, tz)
            window = RunWindow(first, today, now, intake.layer)
            for finder in self._finders:
                findings += list(finder(window))
            record, tally = self.store.record(
                findings, at=intake.clock(), principal=principal,
                run={"started_at": now, "trigger": trigger, "first_day": first, "last_day": today,
                     "series": n_series, "events": n_events, "seconds": time.perf_counter() - started})
        if tally.raised or tally.updated:
            self._wake()
        visible = self.store.visible(set(tally.raised) | set(tally.updated), principal)

        def mine(ids):
            return tuple(i for i in dict.fromkeys(ids) if i in visible)

        return RunReport(record, mine(tally.raised), mine(tally.updated), tally.dropped)

    def _first_event_day(self, intake, tz) -> dt.date | None:
        mirror = self._mirror_of(intake)
        mirror.catch_up()
        with mirror.lock:
            occurred = mirror.occurred[:mirror.n]
            occurred = occurred[occurred > np.iinfo(np.int64).min]
            if not len(occurred):
                return None
            return dt.datetime.fromtimestamp(int(occurred.min()) / 1e6, tz).date()

    def _mirror_of(self, intake) -> EventMirror:
        if self._shared_mirror is not None:
            return self._shared_mirror()
        if self._mirror is None:
            self._mirror = EventMirror(self._data_dir, Vocabulary(intake.taxonomy), intake.config.schedule)
        return self._mirror

    def _detect(self, intake, start_day: dt.date, first: dt.date, today: dt.date, tz) -> tuple[list[S.Finding], int, int]:
        start = dt.datetime.combine(start_day, dt.time(), tz)
        end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tz)
        grid_codes, category_codes, occurred_us = self._events_between(intake, start, end)
        occurred_ms = occurred_us // 1000
        if not len(occurred_us):
            return [], 0, 0
        chains = Chains.of_layer(intake.layer)
        grids = count_events(grid_codes, category_codes, occurred_ms, start=start, end=end, only_seen=True)
        judged_from = (first - start_day).days
        findings, n_series = [], 0
        for level in self.settings.levels:
            series = grids if level == "grid" else self._roll_up(grids, level, chains)
            if not len(series.units):
                continue
            n_series += len(series.units)
            result = detect("ears", series.counts, self.settings.options, freq=365)
            parents = _parent_chains(series.units, level, chains)
            findings += _episodes(series, result, judged_from, start_day, level, parents, self.settings.method_name,
                                  (self.settings.hourly_method_name,) if self.settings.hourly else ())
            if self.settings.classes:
                classes, n_classes = _class_findings(series, result, category_classes(intake.taxonomy), judged_from,
                                                     start_day, level, parents, self.settings)
                findings += classes
                n_series += n_classes
        if self.settings.hourly:
            hourly, n_hourly = self._hourly(intake, first, today, tz, chains)
            findings += hourly
            n_series += n_hourly
        return findings, n_series, len(occurred_us)

    def _hourly(self, intake, first: dt.date, today: dt.date, tz, chains: Chains) -> tuple[list[S.Finding], int]:
        """Findings of the fast-moving categories' hour series (:mod:`citygrid.engine.alerts.hourly`) on
        the days ``first`` .. ``today``, counted and judged ``BLOCK_DAYS`` days at a time."""
        s = self.settings
        fast = set(fast_moving(intake.taxonomy, s.hourly_handle_minutes))
        if not fast:
            return [], 0
        lookback = s.hourly_lookback_days
        start, _ = H.hour_span(first - dt.timedelta(days=lookback), 0, tz)
        _, end = H.hour_span(today, 1, tz)
        grid_codes, category_codes, occurred_us = self._events_between(intake, start, end)
        mine = np.fromiter((c in fast for c in category_codes.tolist()), dtype=bool, count=len(category_codes))
        grid_codes, category_codes, occurred_ms = grid_codes[mine], category_codes[mine], occurred_us[mine] // 1000
        findings, n_series = [], 0
        block = first
        while block <= today and len(occurred_ms):
            last = min(today, block + dt.timedelta(days=H.BLOCK_DAYS - 1))
            start_day = block - dt.timedelta(days=lookback)
            start, end = H.hour_span(start_day, (last - start_day).days + 1, tz)
            inside = (occurred_ms >= round(start.timestamp() * 1000)) & (occurred_ms < round(end.timestamp() * 1000))
            if inside.any():
                grids = count_events(grid_codes[inside], category_codes[inside], occurred_ms[inside], start=start, end=end,
                                     step="hour", only_seen=True)
                for level in s.levels:
                    series = grids if level == "grid" else self._roll_up(grids, level, chains)
                    n_series += len(series.units)
                    findings += H.hourly_findings(series, s, lookback, start_day, level,
                                                  _parent_chains(series.units, level, chains))
            block = last + dt.timedelta(days=1)
        return findings, n_series

    def _events_between(self, intake, start: dt.datetime, end: dt.datetime):
        """(grid codes, category codes, occurred_at in microseconds) of the placed events of ``[start, end)``."""
        grid, grid_codes, category, category_codes, occurred = self._coded_events_between(intake, start, end)
        return (np.array(grid_codes, dtype=object)[grid], np.array(category_codes, dtype=object)[category],
                occurred)

    def _coded_events_between(self, intake, start: dt.datetime, end: dt.datetime):
        """The placed events of ``[start, end)`` as the mirror codes them: (grid index, grid codes,
        category index, category codes, occurred_at in microseconds)."""
        mirror = self._mirror_of(intake)
        mirror.catch_up()
        with mirror.lock:
            n = mirror.n
            occurred = mirror.occurred[:n]
            category, grid = mirror.codes[0, :n], mirror.codes[5, :n]
            keep = np.flatnonzero((occurred >= to_us(start)) & (occurred < to_us(end)) & (grid >= 0) & (category >= 0))
            return (grid[keep].astype(np.int32), list(mirror.reader.codes["grid_code"]), category[keep].astype(np.int32),
                    list(mirror.reader.codes["category_code"]), occurred[keep])

    def _scan(self, intake, first: dt.date, today: dt.date, tz) -> list[S.Finding]:
        """Disc findings of the space-time permutation scans (:mod:`citygrid.engine.alerts.discs`) of
        the last ``scan_days`` days judged."""
        s = self.settings
        scanned = [d for d in range(s.scan_days) if today - dt.timedelta(days=d) >= first]
        study_start = today - dt.timedelta(days=max(scanned) + s.scan_study_days - 1)
        start = dt.datetime.combine(study_start, dt.time(), tz)
        end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tz)
        grid, grid_codes, category, category_codes, occurred_us = self._coded_events_between(intake, start, end)
        if not len(occurred_us):
            return []
        layer = intake.layer
        points = self._points.get(layer.version_id)
        if points is None:
            points = discs.grid_points(layer)
            self._points = {layer.version_id: points}  # the active layer's only
        n_days = (today - study_start).days + 1
        midnights = np.array([to_us(dt.datetime.combine(study_start + dt.timedelta(days=k), dt.time(), tz))
                              for k in range(n_days + 1)], dtype=np.int64)
        day = np.searchsorted(midnights, occurred_us, side="right") - 1  # local day of each event
        return discs.scan_findings(s, layer, points, grid, grid_codes, category, category_codes, day, study_start,
                                   [n_days - 1 - d for d in sorted(scanned, reverse=True)])

    def _roll_up(self, grids, level: str, chains: Chains):
        k = _CHAIN_INDEX[level]
        parent = {g: chains.chain_of_code(g)[k] for g in set(grids.units.tolist())}
        known = np.array([parent[g] is not None for g in grids.units.tolist()], dtype=bool)
        if not known.all():  # events in grids of an older layer version with no such parent: left out
            grids = type(grids)(grids.level, grids.units[known], grids.categories[known], grids.start_ms,
                                grids.step_ms, grids.counts[known])
        return roll_up(grids, level, unit_parent={g: p for g, p in parent.items() if p is not None})

    # ------------------------------------------------------------------ alerts

    def list(self, principal: Principal, where: S.AlertFilter = S.AlertFilter(), *, before: int | None = None,
             limit: int = 100) -> list[S.Alert]:
        principal.require_role(*READ_ROLES, action="read alerts")
        return self.store.list(principal, where, before=before, limit=limit)

    def get(self, alert_id: int, principal: Principal) -> S.Alert:
        principal.require_role(*READ_ROLES, action="read alerts")
        return self.store.get(alert_id, principal)

    def audit(self, alert_id: int, principal: Principal) -> list[S.AlertChange]:
        principal.require_role(*READ_ROLES, action="read alerts")
        return self.store.audit_trail(alert_id, principal)

    def feed(self, principal: Principal, *, after: int = 0, limit: int = 100) -> list[S.AlertChange]:
        principal.require_role(*READ_ROLES, action="watch alerts")
        return self.store.feed(principal, after=after, limit=limit)

    def acknowledge(self, alert_id: int, principal: Principal, note: str = "") -> S.Alert:
        return self._act(alert_id, "acknowledge", principal, note=note)

    def dismiss(self, alert_id: int, principal: Principal, reason: str) -> S.Alert:
        return self._act(alert_id, "dismiss", principal, note=reason)

    def _act(self, alert_id: int, action: str, principal: Principal, **kw) -> S.Alert:
        principal.require_role(*ACT_ROLES, action=f"{action.replace('_', ' ')} alerts")
        alert = self.store.transition(alert_id, action, principal, at=self._now(), **kw)
        self._wake()
        return alert

    def to_event(self, alert_id: int, principal: Principal, note: str = "") -> tuple[S.Alert, str]:
        """Turn an alert into an event (转工单) through the intake: a report of the alert's category
        at the alert's place (a disc's centre; for an area, the reported position of its window's
        events nearest their median), then the alert's transition to ``event``. The report's id is
        ``alert-<id>`` and its content depends on the alert alone, so a retry after a failure between
        the two steps finds the event already taken in and completes the transition.

        A class alert (its category code a class of the taxonomy) becomes an event of the class's
        category with the most excess in the area over the alert's window: the events of the window
        less the baseline's daily mean of the ``baseline_days`` days before it (those the detector's
        baseline holds, after C2/C3's two-day gap) times the window's days; ties go to the category
        with more events in the window, then to the lower code. The event is placed among that
        category's events of the window."""
        principal.require_role(*ACT_ROLES, action="turn alerts into events")
        with self._act_lock:
            alert = self.store.get(alert_id, principal)
            self.store.require_state(alert, "to_event")
            intake = self._intake_host.intake()
            category, (lng, lat) = self._category_and_place(alert, intake)
            kind = "类别" if category == alert.category_code else f"大类 {alert.category_code} 中增多最多的类别"
            report = EventReport(
                f"alert-{alert.id}", category, alert.raised_at, SOURCE, lng, lat, "wgs84", None,
                f"alert {alert.id}",
                f"异动预警 #{alert.id}: {alert.level} {alert.unit_code} {kind} {category} "
                f"自 {alert.first_day} 起异常增多 ({alert.method})")
            receipt = intake.submit_one(report, principal)
            done = self.store.transition(alert.id, "to_event", principal, at=self._now(), note=note,
                                         event_id=receipt.event_id)
        self._wake()
        return done, receipt.event_id

    def _category_and_place(self, alert: S.Alert, intake) -> tuple[str, tuple[float, float]]:
        """The category of the event an alert becomes, and where it is placed (see :meth:`to_event`)."""
        members = _class_members(intake.taxonomy, alert.category_code)
        if alert.lng is not None and alert.lat is not None and not members:
            return alert.category_code, (alert.lng, alert.lat)
        tz = ZoneInfo(self.settings.timezone)
        gap = 0 if self.settings.method == "C1" else 2  # C2 and C3 leave the two days before out of the baseline
        base = alert.first_day - dt.timedelta(days=gap + self.settings.baseline_days)
        lo, base_hi, first, hi = (to_us(dt.datetime.combine(day, dt.time(), tz)) for day in (
            base, alert.first_day - dt.timedelta(days=gap), alert.first_day, alert.last_day + dt.timedelta(days=1)))
        mirror = self._mirror_of(intake)
        mirror.catch_up()
        with mirror.lock:
            codes = mirror.reader.codes
            level_row = 5 + _CHAIN_INDEX[alert.level]  # an area: discs are of one category, placed at their centre
            unit_ids = [codes[f"{alert.level}_code"].index(alert.unit_code)] \
                if alert.unit_code in codes[f"{alert.level}_code"] else []
            names = codes["category_code"]
            wanted = members or [alert.category_code]
            cat_ids = [names.index(c) for c in wanted if c in names]
            n = mirror.n
            at = mirror.occurred[:n]
            rows = np.flatnonzero(np.isin(mirror.codes[level_row, :n], unit_ids) & np.isin(mirror.codes[0, :n], cat_ids)
                                  & (at >= lo) & (at < hi))
            row_cats = mirror.codes[0, rows]
            row_at = at[rows]
            category = alert.category_code
            if members:
                in_window = row_at >= first
                in_base = row_at < base_hi
                days = (alert.last_day - alert.first_day).days + 1
                best = None
                for cat in sorted(set(row_cats[in_window].tolist())):
                    observed = int(((row_cats == cat) & in_window).sum())
                    excess = observed - ((row_cats == cat) & in_base).sum() / self.settings.baseline_days * days
                    key = (-excess, -observed, names[cat])
                    if best is None or key < best[0]:
                        best = (key, cat)
                if best is None:
                    raise PreconditionFailed(f"alert {alert.id}: no event of class {alert.category_code} in its "
                                             "window to make an event of")
                category = names[best[1]]
                rows = rows[(row_cats == best[1]) & in_window]
            else:
                rows = rows[row_at >= first]
            lng, lat = mirror.positions(rows)
        placed = ~np.isnan(lng)
        if not placed.any():
            raise PreconditionFailed(f"alert {alert.id}: none of its events has a position to place an event at")
        lng, lat = lng[placed], lat[placed]
        k = int(np.argmin(np.hypot(lng - np.median(lng), lat - np.median(lat))))
        return category, (float(lng[k]), float(lat[k]))

    def _now(self) -> dt.datetime:
        return self._intake_host.intake().clock()


def _parent_chains(units: np.ndarray, level: str, chains: Chains) -> dict[str, tuple]:
    """unit code -> (grid, community, street, district) codes of the unit (None below its level)."""
    k = _CHAIN_INDEX[level]
    out: dict[str, tuple] = {}
    if level == "grid":
        return {u: chains.chain_of_code(u) for u in set(units.tolist())}
    for chain in chains.chains:
        code = chain[k]
        if code is not None and code not in out:
            out[code] = (None,) * k + tuple(chain[k:])
    return out


def _episodes(series, result, judged_from: int, start_day: dt.date, level: str, parents: dict,
              method: str, joins: tuple[str, ...] = ()) -> list[S.Finding]:
    """Each series' alarm days from ``judged_from`` on, runs of days at most MERGE_GAP_DAYS apart
    joined, as findings."""
    runs = [(r, c0 + judged_from, c1 + judged_from) for r, c0, c1 in S.alarm_runs(result.alarm[:, judged_from:])]
    return _findings(series, result, runs, start_day, level, parents, method, joins)


def _findings(series, result, runs, start_day: dt.date, level: str, parents: dict, method: str,
              joins: tuple[str, ...] = ()) -> list[S.Finding]:
    """Findings of the (row, first column, last column) alarm runs of ``series`` judged into ``result``."""
    rows = np.array([r for r, _, _ in runs], dtype=np.int64)
    expected, statistic = result.take("expected", rows), result.take("statistic", rows)
    findings: list[S.Finding] = []
    for k, (r, c0, c1) in enumerate(runs):
        unit = series.units[r]
        findings.append(S.Finding(
            "detector", method, series.categories[r], level, unit, parents.get(unit, (unit, None, None, None)),
            start_day + dt.timedelta(days=c0), start_day + dt.timedelta(days=c1),
            float(series.counts[r, c0:c1 + 1].sum()), float(np.nansum(expected[k, c0:c1 + 1])),
            float(np.nanmax(statistic[k, c0:c1 + 1])), joins=joins))
    return findings


def _class_findings(series: EventSeries, result, classes: dict[str, str], judged_from: int, start_day: dt.date,
                    level: str, parents: dict, settings: AlertSettings) -> tuple[list[S.Finding], int]:
    """Findings of the category classes' series of one level (``series``, judged into ``result``,
    rolled up by ``classes``: category -> class), without those that only repeat one category's
    alarm, and the number of class series judged.

    A class episode (alarm days of a class x area at most MERGE_GAP_DAYS apart) repeats a category
    when one category of the class alarms in the same area within the episode's days (give or take
    MERGE_GAP_DAYS: the alert it would merge with) and the class's series without that category's
    events alarms on none of the episode's days: the class rose because that category did, which
    its own alert already says. A class episode that still alarms without any one alarming
    category (two categories rising together, or several each too little to alarm alone) is an
    alert of its own. Categories the taxonomy does not name (retired since) are left out.
    """
    known = np.fromiter((c in classes for c in series.categories.tolist()), dtype=bool, count=len(series.categories))
    if not known.any():
        return [], 0
    of_class = np.array([classes[c] for c in series.categories[known].tolist()], dtype=object)
    rows = np.flatnonzero(known)
    named = series if known.all() else EventSeries(level, series.units[known], series.categories[known],
                                                   series.start_ms, series.step_ms, series.counts[known])
    sums = roll_up(named, level, category_parent=classes)
    judged = detect("ears", sums.counts, settings.class_options, freq=365)
    episodes = [(r, c0 + judged_from, c1 + judged_from) for r, c0, c1 in S.alarm_runs(judged.alarm[:, judged_from:])]
    if not episodes:
        return [], len(sums.units)
    members: dict[tuple, list[int]] = {}
    for row, unit, cls in zip(rows.tolist(), series.units[known].tolist(), of_class.tolist()):
        members.setdefault((unit, cls), []).append(row)
    # (episode, category row) pairs to judge again without the category
    pairs = []
    for e, (r, c0, c1) in enumerate(episodes):
        lo, hi = max(0, c0 - S.MERGE_GAP_DAYS), c1 + S.MERGE_GAP_DAYS + 1
        for row in members.get((sums.units[r], sums.categories[r]), ()):
            if result.alarm[row, lo:hi].any():
                pairs.append((e, row))
    repeats = set()
    if pairs:
        without = np.stack([sums.counts[episodes[e][0]] - series.counts[row] for e, row in pairs])
        still = detect("ears", without, settings.class_options, freq=365).alarm
        for k, (e, _) in enumerate(pairs):
            _, c0, c1 = episodes[e]
            if not still[k, c0:c1 + 1].any():
                repeats.add(e)
    kept = [episode for e, episode in enumerate(episodes) if e not in repeats]
    return _findings(sums, judged, kept, start_day, level, parents, settings.method_name), len(sums.units)


def _class_members(taxonomy, code: str) -> list[str]:
    """The categories of class ``code`` (none when ``code`` is a category: a category's own code
    comes first, as the store's alerts name categories and classes by their codes alone)."""
    if any(c.code == code for c in taxonomy.categories):
        return []
    return [c.code for cls in taxonomy.classes if cls.code == code for c in cls.categories]
