"""Live aggregate queries over the event mirror: the engine behind ``AnalyticsService``.

One method per RPC, each taking the caller's principal (jurisdiction bounds every answer) and
returning plain columns a servicer translates (or sends as Arrow IPC, :meth:`Table.to_arrow`):

=====================  ===============================================================================
``aggregate``          measures by any dimensions over a window, bucketed in local time
``trend``              a window against the previous one and the same window a year before
``top_areas``          the first N areas of a level by count, rate per 1,000 residents, or growth
``heatmap``            counts per grid, or per H3 cell (resolution 7-10, h3-py's ids)
``kpis``               考核 per worker, department, grid, community or street, with score and grade
=====================  ===============================================================================

Counting is a *cohort*: the events reported (``occurred_at``) in the window ``[start, end)``,
bucketed by that time; each measure counts how many of them have reached it by now (registered,
dispatched, closed, …; overdue: open with its stage deadline past the clock's present time).
Before every query the mirror catches up with the store, so a query that starts after a commit
returned counts it.

Answers are remembered (:data:`KEPT_ANSWERS` of them, :data:`KEPT_VALUES` values in all): a big screen's callers ask the same questions
again and again, and an answer stays exact while the mirror has not changed (nothing committed, no
other layer version, the same residents) and the clock has not passed the earliest deadline that
would make one of its open events overdue (:func:`~citygrid.kernels.tally.tally_cells` says which).
Every query still catches up first, and any change forgets every answer.

Counted afresh, a query reads the mirror's day cube (:mod:`~citygrid.engine.analytics.cube`: sums per
area chain, category, worker and local day, kept exact at every catch-up) when it can answer it: every
window from local midnight to local midnight, dimensions and filters among the area levels, grid type,
category, class, department, worker, day, week, month and weekday, and no p50/p90. "Overdue now" is
then counted over the window's open events only. Anything else is counted over the window's events.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Mapping, Sequence

import numpy as np

from citygrid.engine.analytics import source
from citygrid.engine.analytics import cube as day_cube
from citygrid.engine.analytics.config import RATES, AnalyticsConfig
from citygrid.engine.analytics.mirror import BLOCK, EventMirror
from citygrid.engine.analytics.population import PopulationProvider
from citygrid.engine.errors import Forbidden, InvalidInput
from citygrid.kernels import tally

#: Most cells (product of the dimensions' sizes) one query may ask for.
MAX_CELLS = 2_000_000
#: Most rows of a top-N answer.
MAX_TOP = 1000
H3_RESOLUTIONS = range(7, 11)
AREA_LEVELS = ("grid", "community", "street", "district")
TIME_DIMENSIONS = {"hour": tally.HOUR, "day": tally.DAY, "week": tally.WEEK, "month": tally.MONTH,
                   "hour_of_day": tally.HOUR_OF_DAY, "weekday": tally.WEEKDAY}
COLUMN_DIMENSIONS = ("grid", "community", "street", "district", "grid_type", "category", "class", "source", "state",
                     "stage", "worker", "department")
DIMENSIONS = COLUMN_DIMENSIONS + tuple(TIME_DIMENSIONS)
COUNTS = {"reported": tally.M_REPORTED, "registered": tally.M_REGISTERED, "dispatched": tally.M_DISPATCHED,
          "closed": tally.M_CLOSED, "closed_on_time": tally.M_CLOSED_ON_TIME, "overdue_now": tally.M_OVERDUE_NOW,
          "reworked": tally.M_REWORKED, "duplicates": tally.M_DUPLICATES, "escalated": tally.M_ESCALATED,
          "handled": tally.M_HANDLED, "handled_on_time": tally.M_HANDLED_ON_TIME,
          "dispatched_on_time": tally.M_DISPATCHED_ON_TIME}
#: Durations in working minutes: receipt to closure, and each stage.
DURATIONS = {"close_minutes": 4, **{f"{stage}_minutes": s for s, stage in enumerate(source.STAGES)}}
STATISTICS = ("mean", "p50", "p90")
_RANKS = np.array([0.5, 0.9])
MEASURES = (tuple(COUNTS) + tuple(f"{d}_{s}" for d in DURATIONS for s in STATISTICS)
            + tuple(f"{c}_per_1000_residents" for c in COUNTS) + tuple(f"{c}_per_km2" for c in COUNTS))
_STAGE_LABELS = source.STAGES + ("closed", "parked", "rejected", "duplicate")
_STAGE_OF_STATE = [0, 1, 2, 2, 3, 3, 4, 5, 6, 7]
_US_PER_MINUTE = 60_000_000
#: Answers remembered for callers asking the same question (least recently asked forgotten first).
KEPT_ANSWERS = 256
#: Values (table cells; a message's bytes / 8) all remembered answers may hold together (about 32 MiB);
#: an answer larger than a tenth of it is not remembered.
KEPT_VALUES = 4_000_000


@dataclass
class Table:
    """A columnar answer: ``columns`` in order (dimension labels first, then measures), one entry
    per non-empty cell."""

    columns: dict[str, list | np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def rows(self) -> list[dict]:
        names = list(self.columns)
        return [dict(zip(names, values)) for values in zip(*(list(self.columns[n]) for n in names))]

    def to_arrow(self):
        """The table as a ``pyarrow.Table`` (a servicer sends it as Arrow IPC bytes)."""
        import pyarrow as pa

        return pa.table({k: (v if isinstance(v, np.ndarray) else pa.array(v)) for k, v in self.columns.items()})


@dataclass(frozen=True)
class Trend:
    measure: str
    current: int
    previous: int
    year_before: int

    @property
    def vs_previous(self) -> float:
        """Relative change against the previous window (NaN when it had none)."""
        return _change(self.current, self.previous)

    @property
    def vs_year_before(self) -> float:
        return _change(self.current, self.year_before)


@dataclass(frozen=True)
class AreaRank:
    code: str
    count: int
    previous: int
    per_1000_residents: float
    growth: float


def _change(now: int, before: int) -> float:
    return (now - before) / before if before else math.nan


class _Plan:
    """The dimensions of one query as the kernels take them."""

    def __init__(self):
        self.kind: list[int] = []
        self.col: list[int] = []
        self.lut_lo: list[int] = []
        self.origin: list[int] = []
        self.size: list[int] = []
        self.labels: list[list] = []
        self.names: list[str] = []
        self.luts: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
        self.lut_len = 1
        self._arrays = None

    def add(self, name: str | None, kind: int, col: int, lut: np.ndarray | None, origin: int, labels: list) -> None:
        self.kind.append(kind)
        self.col.append(col)
        self.origin.append(origin)
        self.size.append(len(labels))
        self.labels.append(labels)
        self.names.append(name or "")
        self._arrays = None
        if lut is None:
            self.lut_lo.append(0)
        else:
            self.lut_lo.append(self.lut_len)
            self.luts.append(lut.astype(np.int64))
            self.lut_len += len(lut)

    def arrays(self):
        if self._arrays is None:
            self._arrays = self._make_arrays()
        return self._arrays

    def _make_arrays(self):
        sizes = np.array(self.size, dtype=np.int64)
        strides = np.ones(len(sizes), dtype=np.int64)
        for d in range(len(sizes) - 2, -1, -1):
            strides[d] = strides[d + 1] * sizes[d + 1]
        n_cells = int(np.prod(sizes)) if len(sizes) else 1
        return (np.array(self.kind, np.int64), np.array(self.col, np.int64), np.array(self.lut_lo, np.int64),
                np.array(self.origin, np.int64), sizes, strides, np.concatenate(self.luts), n_cells)


class Analytics:
    """Live aggregates of one data directory's events. Thread-safe; one per writer process.

    ``layer`` gives the hierarchy (grid type, area, parents) of the active layer version; call
    :meth:`use_layer` when another version is activated. ``population`` gives residents per grid
    (rates per 1,000 residents). ``clock`` is the present time of "overdue now" (the intake's).
    ``kept_answers``: how many answers to remember (0: count every query afresh, as the benchmark's
    comparison with DuckDB does). ``day_cube``: keep the day cube and count from it what it can
    answer (False: count every query over events; the attribute of the same name switches counting
    from it off and on, as the benchmark's before/after does).
    """

    def __init__(self, data_dir, *, layer: source.GridLayer, taxonomy: source.Taxonomy | None = None,
                 schedule: source.WorkSchedule | None = None, population: PopulationProvider | None = None,
                 config: AnalyticsConfig | None = None, clock: source.Clock | None = None,
                 kept_answers: int = KEPT_ANSWERS, day_cube: bool = True):
        self.config = config or AnalyticsConfig()
        self.vocabulary = source.Vocabulary(taxonomy or source.load_taxonomy())
        self.clock = clock or source.system_clock
        self.population = population
        self.hierarchy = source.Hierarchy(layer)
        self._follow = None
        self._stop_following: Callable[[], None] = lambda: None
        self._residents: dict[str, int] | None = None
        self._residents_generation = None
        self._area_cache: dict[tuple, dict] = {}
        self._allowed_cache: dict[tuple, tuple] = {}
        self._column_cache: dict[tuple, tuple] = {}
        self._label_arrays: dict[int, tuple[list, np.ndarray]] = {}
        #: key -> (answer, clock µs it was counted at, last clock µs it holds for)
        self._answers: OrderedDict[tuple, tuple] = OrderedDict()
        self._kept_answers = kept_answers
        self._kept_values = 0
        self._counted_at = 0
        self._next_due = tally.NEVER_DUE
        self.day_cube = day_cube
        offset = source.utc_offset_us(self.config.timezone, source.to_us(self.clock())) if day_cube else None
        self.mirror = EventMirror(data_dir, self.vocabulary, schedule or source.WorkSchedule(), cube_offset_us=offset)
        t0 = time.perf_counter()
        self.mirror.catch_up()
        self.rebuild_seconds = time.perf_counter() - t0
        #: The mirror's generation the remembered answers were counted at.
        self._generation = self.mirror.generation

    @classmethod
    def for_intake(cls, intake, data_dir, **kw) -> "Analytics":
        """Analytics over an intake's store, with its taxonomy, work schedule and clock, following
        the layer version it places reports on (grid types, areas and populations of parents)."""
        analytics = cls(data_dir, layer=intake.layer, taxonomy=intake.taxonomy, schedule=intake.config.schedule,
                        clock=intake.clock, **kw)
        analytics._follow = intake
        if _same_file(getattr(intake.store, "path", None), source.database_path(data_dir)):
            # The intake's own inserts come from memory; the catch-up still reads all else from the store.
            analytics._stop_following = intake.on_inserted(analytics.mirror.hand_over)
            analytics.mirror.follows_intake = True
        return analytics

    def use_layer(self, layer: source.GridLayer) -> None:
        """Areas (grid types, areas, populations of parents) follow another layer version."""
        with self.mirror.lock:
            self.hierarchy = source.Hierarchy(layer)
            self._residents = None
            self._area_cache = {}
            self._forget()

    def close(self) -> None:
        self._stop_following()
        self.mirror.close()

    # ------------------------------------------------------------------ the queries

    def aggregate(self, principal: source.Principal, *, start: datetime, end: datetime,
                  dimensions: Sequence[str] = (), measures: Sequence[str] = ("reported",),
                  filters: Mapping[str, Sequence[str]] | None = None, layer: source.GridLayer | None = None) -> Table:
        """Measures of the events reported in ``[start, end)`` by ``dimensions`` (area levels, grid
        type, category, class, source, state, stage, worker, department; time buckets hour, day,
        week (ISO), month, hour_of_day, weekday in local time), inside the caller's jurisdiction
        and ``filters`` (dimension -> the codes kept). Only cells with events are returned.
        Grids are the events' present grids; communities, streets and districts are those stored
        with the event, or with ``layer`` those of its grid in that layer version."""
        source.require_reader(principal, what="read aggregates")
        compute = lambda: self._aggregate(principal, start, end, dimensions, measures, filters, layer=layer)  # noqa: E731
        if layer is not None:
            with self.mirror.lock:
                return compute()
        return self.remembered(("aggregate", _when(start), _when(end), tuple(dimensions), tuple(measures),
                                 _filters_key(filters)), principal, compute)

    def trend(self, principal: source.Principal, *, start: datetime, end: datetime, measure: str = "reported",
              filters: Mapping[str, Sequence[str]] | None = None) -> Trend:
        """``measure`` over ``[start, end)``, over the window just before it of the same length and
        over the same local dates a year before."""
        source.require_reader(principal, what="read trends")
        if measure not in COUNTS:
            raise InvalidInput(f"a trend is of a count: {', '.join(COUNTS)}")
        windows = [(start, end), (start - (end - start), start), (_year_before(start), _year_before(end))]

        def compute() -> Trend:
            _, outs, _ = self._count(principal, windows, (), (measure,), filters, True)
            return Trend(measure, *(int(out[0, COUNTS[measure]]) for out in outs))

        return self.remembered(("trend", _when(start), _when(end), measure, _filters_key(filters)), principal,
                                compute)

    def top_areas(self, principal: source.Principal, *, level: str, start: datetime, end: datetime, by: str = "count",
                  n: int = 20, measure: str = "reported",
                  filters: Mapping[str, Sequence[str]] | None = None) -> list[AreaRank]:
        """The first ``n`` areas of ``level`` by ``count``, ``rate`` (per 1,000 residents; areas
        without a known population last) or ``growth`` (against the previous window of the same
        length; an area without events then ranks by its count after those with a growth).
        Ties go to the smaller code."""
        source.require_reader(principal, what="read top areas")
        if level not in AREA_LEVELS:
            raise InvalidInput(f"level {level!r}: choose one of {', '.join(AREA_LEVELS)}")
        if by not in ("count", "rate", "growth"):
            raise InvalidInput(f"rank by {by!r}: choose count, rate or growth")
        if not 0 < n <= MAX_TOP:
            raise InvalidInput(f"n must be 1-{MAX_TOP}")
        if measure not in COUNTS:
            raise InvalidInput(f"rank by a count: {', '.join(COUNTS)}")
        return self.remembered(("top_areas", level, _when(start), _when(end), by, n, measure, _filters_key(filters)),
                                principal, lambda: self._top_areas(principal, level, start, end, by, n, measure,
                                                                   filters))

    def _top_areas(self, principal, level, start, end, by, n, measure, filters) -> list[AreaRank]:
        plan, (now, before), _ = self._count(principal, [(start, end), (start - (end - start), start)], (level,),
                                             (measure,), filters, True)
        labels = plan.labels[0]
        count, previous = now[:, COUNTS[measure]], before[:, COUNTS[measure]]
        keep = np.flatnonzero(now[:, tally.M_REPORTED])
        if by == "count" and len(keep) > n:  # only areas counting at least the n-th greatest count can rank
            kept = count[keep]
            keep = keep[kept >= _nth_greatest(kept, n)]
        people, code_rank = self._residents_of(level, labels)
        people, names = people[keep], code_rank[keep]
        count, previous = count[keep], previous[keep]
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(people > 0, count * 1000 / np.where(people > 0, people, 1), np.nan)
            growth = np.where(previous > 0, (count - previous) / np.where(previous > 0, previous, 1), np.nan)
        if by == "count":
            keys = (names, -count)
        else:
            value = rate if by == "rate" else growth
            keys = (names, -count, -np.nan_to_num(value), np.isnan(value)) if by == "growth" else \
                (names, -np.nan_to_num(value), np.isnan(value))
        order = np.lexsort(keys)[:n]
        return [AreaRank(labels[keep[k]], int(count[k]), int(previous[k]), float(rate[k]), float(growth[k]))
                for k in order.tolist()]

    def heatmap(self, principal: source.Principal, *, start: datetime, end: datetime, h3_resolution: int | None = None,
                filters: Mapping[str, Sequence[str]] | None = None) -> Table:
        """Events reported in the window per grid (``h3_resolution`` None) or per H3 cell of their
        WGS84 position (ids as h3-py gives them, for placed events)."""
        source.require_reader(principal, what="read heatmaps")
        if h3_resolution is None:
            return self.remembered(("heatmap", _when(start), _when(end), None, _filters_key(filters)), principal,
                                    lambda: self._aggregate(principal, start, end, ("grid",), ("reported",), filters))
        if h3_resolution not in H3_RESOLUTIONS:
            raise InvalidInput(f"H3 resolution {h3_resolution}: choose {H3_RESOLUTIONS.start}-{H3_RESOLUTIONS.stop - 1}")

        def compute() -> Table:
            numbers, met = self.mirror.h3_cells(self._select(principal, start, end, filters), h3_resolution)
            counts = np.bincount(numbers, minlength=len(met.cells))[met.order]  # placed cells, in cell order
            some = counts > 0
            return Table({"h3_cell": [met.labels[k] for k in met.order[some].tolist()],
                          "reported": counts[some].astype(np.int64)})

        return self.remembered(("heatmap", _when(start), _when(end), h3_resolution, _filters_key(filters)),
                                principal, compute)

    def kpis(self, principal: source.Principal, *, unit: str, start: datetime, end: datetime,
             filters: Mapping[str, Sequence[str]] | None = None) -> Table:
        """考核 of the events reported in the window per ``unit`` (worker, department, grid,
        community, street): the counts behind the rates, each rate (``<rate>_rate``; NaN without a
        denominator), mean working minutes per stage, overdue count, composite ``score`` (0-100:
        the weighted mean of the rates that have a denominator, rework counted as 1 - rate) and
        ``grade``. A grid worker gets their own row only."""
        if unit not in ("worker", "department", "grid", "community", "street"):
            raise InvalidInput(f"KPIs are per worker, department, grid, community or street, not {unit!r}")
        own = source.worker_of(principal)
        filters = dict(filters or {})
        if own is not None:
            if unit != "worker":
                raise Forbidden(f"{principal.name} may read only their own KPIs (unit worker)")
            filters["worker"] = [own]
        else:
            source.require_reader(principal, what="read KPIs")
        return self.remembered(("kpis", unit, _when(start), _when(end), _filters_key(filters)), principal,
                                lambda: self._kpis(principal, unit, start, end, filters, own))

    def _kpis(self, principal, unit, start, end, filters, own) -> Table:
        counts = sorted({m for num, dens, _ in RATES.values() for m in (num, *dens)} | {"overdue_now"})
        measures = counts + [f"{stage}_minutes_mean" for stage in source.STAGES]
        columns = self._aggregate(principal, start, end, (unit,), measures, filters, jurisdiction=own is None).columns
        cfg = self.config
        n = len(columns[unit])
        weighted, weights = np.zeros(n), np.zeros(n)
        for name, (numerator, _, higher) in RATES.items():
            den = columns[cfg.denominators[name]]
            rate = columns[f"{name}_rate"] = _ratio(columns[numerator], den)
            w = cfg.weights.get(name, 0.0)
            if w > 0:
                has = den > 0
                np.add(weighted, w * 100 * (rate if higher else 1 - rate), out=weighted, where=has)
                np.add(weights, w, out=weights, where=has)
        score = columns["score"] = _ratio(weighted, weights)
        columns["grade"] = cfg.grades_of(score)
        return Table(columns)

    def refresh(self) -> bool:
        """Catch up with the store now (every query does it first anyway); returns whether
        anything changed (a big screen's tallies poll this)."""
        with self.mirror.lock:
            return self._sync()

    def _sync(self) -> bool:
        """Catch up with the store and, when following an intake, with its layer version and the
        population's residents; any change forgets the remembered answers."""
        changed = self.mirror.catch_up()
        if self.mirror.generation != self._generation:  # caught up here or elsewhere (the intake, the alerts)
            self._generation = self.mirror.generation
            changed = True
        if self._follow is not None and self._follow.layer.version_id != self.hierarchy.version_id:
            self.use_layer(self._follow.layer)
            changed = True
        if self._follow_population():
            changed = True
        if changed:
            self._forget()
        return changed

    def _forget(self) -> None:
        self._answers.clear()
        self._kept_values = 0

    def remembered(self, question: tuple, principal: source.Principal, compute):
        """The answer to ``question`` (a hashable key naming everything the answer depends on besides
        the store, the layer, the residents, the clock and the caller) asked by ``principal``: the
        remembered one while it holds (see the module's notes), else ``compute()``'s, remembered (all
        under the mirror lock, after a catch-up). Callers get their own copy of a table or a list. The
        key holds what of the principal an answer depends on (role, jurisdiction, worker id); the
        role's rights are checked before this. ``compute`` may ask remembered questions itself (a
        servicer remembers its messages built from the engine's answers): an answer holds only while
        every answer it was made of holds."""
        key = _answer_key(question, principal)
        with self.mirror.lock:
            self._sync()
            now_us = int(source.to_us(self.clock()))
            hit = self._hit(key, now_us)
            if hit is not None:
                return hit
            outer = self._counted_at, self._next_due
            self._counted_at, self._next_due = now_us, tally.NEVER_DUE
            try:
                answer = compute()
                holds = self._counted_at, self._next_due
            finally:
                self._counted_at, self._next_due = max(outer[0], self._counted_at), min(outer[1], self._next_due)
            weight = _weight(answer)
            if not (self._kept_answers and weight <= KEPT_VALUES // 10):
                return answer  # not remembered: the caller's own already
            self._answers[key] = (answer, *holds, weight)
            self._kept_values += weight
            while len(self._answers) > self._kept_answers or self._kept_values > KEPT_VALUES:
                self._kept_values -= self._answers.popitem(last=False)[1][3]
            return _own_copy(answer)

    def at_hand(self, question: tuple, principal: source.Principal):
        """What :meth:`remembered` would answer to ``question`` when that takes no waiting and no
        counting, else ``None`` (ask :meth:`remembered` then, in a thread). ``None`` when another
        thread holds the mirror (a catch-up, a count), when a commit of another connection, a new layer
        version or a change of the residents has come since the last catch-up (the catch-up is a
        thread's work), or when the answer is not remembered or no longer holds. Never waits, so an
        event loop may ask it: the mirror's lock is only tried, and the store is asked only for
        SQLite's ``data_version`` (a look at the WAL index in shared memory; a WAL reader does not wait
        for writers)."""
        lock = self.mirror.lock
        if not lock.acquire(blocking=False):
            return None
        try:
            if not self.mirror.current() or self.mirror.generation != self._generation or (
                    self._follow is not None and self._follow.layer.version_id != self.hierarchy.version_id):
                return None
            generation = getattr(self.population, "generation", None)
            if generation is not None and generation() != self._residents_generation:
                return None
            return self._hit(_answer_key(question, principal), int(source.to_us(self.clock())))
        finally:
            lock.release()

    def _hit(self, key: tuple, now_us: int):
        """The caller's copy of the remembered answer of ``key`` when it holds at ``now_us``, else
        ``None`` (under the mirror lock, the mirror caught up)."""
        hit = self._answers.get(key)
        if hit is None or not hit[1] <= now_us <= hit[2]:
            return None
        self._answers.move_to_end(key)
        self._counted_at, self._next_due = max(self._counted_at, hit[1]), min(self._next_due, hit[2])
        return _own_copy(hit[0])

    # ------------------------------------------------------------------ planning

    def _window(self, start: datetime, end: datetime) -> tuple[int, int, int]:
        for t, what in ((start, "start"), (end, "end")):
            if not isinstance(t, datetime) or t.tzinfo is None:
                raise InvalidInput(f"the window's {what} must be a time with a time zone, got {t!r}")
        t_lo, t_hi = int(source.to_us(start)), int(source.to_us(end))
        if not t_lo < t_hi:
            raise InvalidInput(f"the window {start.isoformat()} to {end.isoformat()} is empty; end must be after start")
        offset = source.utc_offset_us(self.config.timezone, t_lo)
        if source.utc_offset_us(self.config.timezone, t_hi - 1) != offset:
            raise InvalidInput(f"the window crosses a change of {self.config.timezone}'s UTC offset; split it there")
        return t_lo, t_hi, offset

    def _plan(self, dimensions: Sequence[str], filters: Mapping[str, Sequence[str]], t_lo: int, t_hi: int,
              offset: int, hierarchy: source.Hierarchy | None = None) -> _Plan:
        plan = _Plan()
        dims = list(dimensions)
        for d in dims:
            if d not in DIMENSIONS:
                raise InvalidInput(f"unknown dimension {d!r}; dimensions are {', '.join(DIMENSIONS)}")
        if len(set(dims)) != len(dims):
            raise InvalidInput("a dimension is named twice")
        for d in filters:
            if d not in COLUMN_DIMENSIONS:
                raise InvalidInput(f"cannot filter by {d!r}; filters are by {', '.join(COLUMN_DIMENSIONS)}")
        for d in dims:
            if d in TIME_DIMENSIONS:
                kind = TIME_DIMENSIONS[d]
                if kind in (tally.HOUR_OF_DAY, tally.WEEKDAY):
                    origin, size = 0, (24 if kind == tally.HOUR_OF_DAY else 7)
                else:
                    origin = int(tally.time_code(kind, t_lo + offset))
                    size = int(tally.time_code(kind, t_hi - 1 + offset)) - origin + 1
                plan.add(d, kind, 0, None, origin, [_time_label(kind, origin + k) for k in range(size)])
            else:
                col, lut, labels = self._column(d, hierarchy)
                keep = filters.get(d)
                if keep is not None:
                    keep = set(keep)
                    lut = np.where([v >= 0 and labels[v] in keep for v in lut.tolist()], lut, -1)
                plan.add(d, tally.BY_COLUMN, col, lut, 0, labels)
        for d, keep in filters.items():
            if d in dims:
                continue
            col, lut, labels = self._column(d, hierarchy)
            keep = set(keep)
            plan.add(None, tally.BY_COLUMN, col,
                     np.array([0 if v >= 0 and labels[v] in keep else -1 for v in lut.tolist()], np.int64), 0, [None])
        return plan

    def _column(self, d: str, hierarchy: source.Hierarchy | None = None) -> tuple[int, np.ndarray, list]:
        """The code row, the lookup table (id + 1 -> code) and the labels (code -> label) of a
        column dimension; the last label is None (no value). With ``hierarchy``, communities,
        streets and districts are those of the event's grid in that layer version."""
        codes = self.mirror.reader.codes
        voc = self.vocabulary
        if hierarchy is not None and d in ("community", "street", "district"):
            level = AREA_LEVELS.index(d)
            labels = sorted({chain[level] for chain in hierarchy.chain.values() if chain[level] is not None})
            index = {code: k for k, code in enumerate(labels)}
            none = len(labels)
            lut = [none] + [index.get((hierarchy.chain.get(g) or (None,) * 4)[level], none) for g in codes["grid_code"]]
            return 5, np.array(lut, np.int64), labels + [None]
        if d in _CODE_COLUMNS:
            # Dictionaries only grow (ids in order of first appearance): kept per dictionary size, as
            # building them again took a top 20 grids a twentieth of its time.
            col, name = _CODE_COLUMNS[d]
            key = (d, len(codes[name]))
            if key not in self._column_cache:
                if len(self._column_cache) > 64:
                    self._column_cache.clear()
                labels = list(codes[name]) + [None]
                self._column_cache[key] = col, np.arange(-1, len(labels) - 1) % len(labels), labels
            return self._column_cache[key]
        if d == "class":
            labels = list(voc.classes) + [None]
            return 1, np.arange(-1, len(labels) - 1) % len(labels), labels
        if d == "state":
            labels = [s.value for s in source.STATES] + [None]
            return 3, np.arange(-1, len(labels) - 1) % len(labels), labels
        if d == "stage":
            labels = list(_STAGE_LABELS) + [None]
            return 3, np.array([len(labels) - 1] + _STAGE_OF_STATE, np.int64), labels
        if d == "department":
            labels = list(voc.departments) + [None]
            index = {v: k for k, v in enumerate(labels[:-1])}
            lut = [len(labels) - 1] + [index.get(voc.department_of(c), len(labels) - 1) for c in codes["category_code"]]
            return 0, np.array(lut, np.int64), labels
        # grid_type, from the active layer's hierarchy
        types = sorted({t for t in self.hierarchy.grid_type.values() if t is not None})
        labels = types + [None]
        index = {v: k for k, v in enumerate(types)}
        lut = [len(types)] + [index.get(self.hierarchy.grid_type.get(g), len(types)) for g in codes["grid_code"]]
        return 5, np.array(lut, np.int64), labels

    def _allowed(self, principal: source.Principal, jurisdiction: bool) -> tuple[np.ndarray, np.ndarray, bool]:
        scope = source.allowed_codes(principal) if jurisdiction else None
        codes = self.mirror.reader.codes
        if scope is None:
            return np.zeros(1, np.bool_), np.zeros(4, np.int64), False
        key = (scope, tuple(len(codes[name]) for name in source.CHAIN_COLUMNS))
        if key in self._allowed_cache:
            return self._allowed_cache[key]
        if len(self._allowed_cache) > 64:
            self._allowed_cache.clear()
        scope = set(scope)
        parts, lo, at = [], [], 0
        for name in source.CHAIN_COLUMNS:
            mask = np.array([c in scope for c in codes[name]], dtype=np.bool_)
            parts.append(mask)
            lo.append(at)
            at += len(mask)
        allowed = self._allowed_cache[key] = (np.concatenate(parts + [np.zeros(1, np.bool_)]), np.array(lo, np.int64),
                                              True)
        return allowed

    # ------------------------------------------------------------------ running

    def _aggregate(self, principal, start, end, dimensions, measures, filters, *, jurisdiction: bool = True,
                   layer: source.GridLayer | None = None) -> Table:
        filters = dict(filters or {})
        measures = list(measures)
        for m in measures:
            if m not in MEASURES:
                raise InvalidInput(f"unknown measure {m!r}; measures are {', '.join(MEASURES)}")
        rated = [m for m in measures if m.endswith(("_per_1000_residents", "_per_km2"))]
        areas = [d for d in dimensions if d in AREA_LEVELS]
        if rated and len(areas) != 1:
            raise InvalidInput("rates per 1,000 residents or per km² need exactly one area dimension "
                               "(grid, community, street or district)")
        hierarchy = None if layer is None else source.Hierarchy(layer)
        plan, [out], [quantiles] = self._count(principal, [(start, end)], dimensions, measures, filters,
                                               jurisdiction, hierarchy)
        *_, size, stride, _, _ = plan.arrays()
        nonempty = np.flatnonzero(out[:, tally.M_REPORTED])
        columns: dict[str, list | np.ndarray] = {}
        for d in range(len(plan.names)):
            if plan.names[d]:
                codes = (nonempty // stride[d]) % size[d]
                columns[plan.names[d]] = self._label_array(plan.labels[d])[codes].tolist()
        rows = out[nonempty]
        for name in measures:
            columns[name] = self._measure(name, rows, nonempty, quantiles, columns, areas)
        return Table(columns)

    def _label_array(self, labels: list) -> np.ndarray:
        """``labels`` as an object array, kept while the list is (a column's labels are kept per
        dictionary size; making the array again took a KPIs by worker 40 µs of its 1.5 ms)."""
        kept = self._label_arrays.get(id(labels))
        if kept is None or kept[0] is not labels:
            if len(self._label_arrays) > 64:
                self._label_arrays.clear()
            array = np.empty(len(labels), dtype=object)
            array[:] = labels
            kept = self._label_arrays[id(labels)] = labels, array
        return kept[1]

    def _count(self, principal, windows, dimensions, measures, filters, jurisdiction, hierarchy=None):
        """(plan, [dense counts table by cell], [quantiles by duration]) of a query over one or more
        windows ``[(start, end), …]`` (more than one only without time dimensions), counted at one
        catch-up with one plan."""
        filters = dict(filters or {})
        bounds = [self._window(start, end) for start, end in windows]
        with self.mirror.lock:
            self._sync()
            now_us = int(source.to_us(self.clock()))
            self._counted_at = max(self._counted_at, now_us)
            plan = self._plan(dimensions, filters, *bounds[0], hierarchy)
            *_, size, stride, _, n_cells = plan.arrays()
            if n_cells > MAX_CELLS:
                raise InvalidInput(f"the query has {n_cells:,} cells (the product of its dimensions' sizes); at most "
                                   f"{MAX_CELLS:,}: narrow the window, the buckets or the dimensions")
            m = self.mirror
            cube = m.cube if self.day_cube and m.cube is not None and m.cube.answers(bounds) else None
            if cube is not None and not _cube_answers(plan, measures):
                cube = None
            outs, quantiles = [], []
            read = _read_columns(measures)
            for t_lo, t_hi, offset in bounds:
                out = np.zeros((n_cells, tally.N_MEASURES), dtype=np.int64)
                if cube is not None:  # the slots' sums, and "overdue now" of the open events
                    self._tally_cube(plan, principal, jurisdiction, t_lo, t_hi, offset, cube, read, out)
                    due = tally.NEVER_DUE  # an answer without "overdue now" does not depend on the clock
                    if any(name.startswith("overdue_now") for name in measures):
                        rows, cells = self._scan(plan, principal, jurisdiction, t_lo, t_hi, offset, some=m.open_rows)
                        due = tally.add_overdue(rows, cells, m.open_rows, m.open_due, now_us,
                                                out[:, tally.M_OVERDUE_NOW])
                else:
                    rows, cells = self._scan(plan, principal, jurisdiction, t_lo, t_hi, offset)
                    due = _tally(m, rows, cells, now_us, out)
                self._next_due = min(self._next_due, int(due))
                outs.append(out)
                quantiles.append({})
                for name, which in DURATIONS.items():  # never with the cube (it keeps no order)
                    if any(x in measures for x in (f"{name}_p50", f"{name}_p90")):
                        d_cells = np.empty(len(rows), np.int64)
                        d_values = np.empty(len(rows), np.int64)
                        k = tally.collect_durations(rows, cells, m.codes, m.flags, m.close_us, m.stage_us, which,
                                                    d_cells, d_values)
                        q = np.empty((n_cells, len(_RANKS)), np.int64)
                        tally.quantiles_by_cell(d_cells[:k], d_values[:k], n_cells, _RANKS, q)
                        quantiles[-1][name] = q
        return plan, outs, quantiles

    def _measure(self, name, rows, cells, quantiles, columns, areas):
        if name in COUNTS:
            return rows[:, COUNTS[name]]
        for duration, which in DURATIONS.items():
            if name.startswith(duration + "_"):
                stat = name[len(duration) + 1 :]
                if stat == "mean":
                    s_col, n_col = ((tally.M_CLOSE_US, tally.M_CLOSED) if which == 4
                                    else (tally.M_STAGE_US0 + which, tally.M_STAGE_N0 + which))
                    return _ratio(rows[:, s_col], rows[:, n_col]) / _US_PER_MINUTE
                q = quantiles[duration][cells, 1 if stat == "p90" else 0]
                return np.where(q >= 0, q / _US_PER_MINUTE, np.nan)
        count, per = name.split("_per_")
        level = areas[0]
        values = rows[:, COUNTS[count]].astype(np.float64)
        known = self._area_residents(level) if per == "1000_residents" else self._area_km2(level)
        base = np.array([known.get(code, 0) or math.nan for code in columns[level]], dtype=np.float64)
        return values * (1000.0 if per == "1000_residents" else 1.0) / base

    def _scan(self, plan: _Plan, principal, jurisdiction: bool, t_lo: int, t_hi: int, offset: int, some=None):
        """(rows, cells) of the window's events (with ``some``: of those listed events only, sorted)
        inside jurisdiction and the plan's dimensions (under the mirror lock)."""
        kind, col, lut_lo, origin, size, stride, luts, _ = plan.arrays()
        allowed, allowed_lo, check = self._allowed(principal, jurisdiction)
        m = self.mirror
        block, times = BLOCK, m.occurred
        meets = (m.block_hi >= t_lo) & (m.block_lo < t_hi)
        bound = min(int(meets.sum()) * block, m.n if some is None else len(some))
        rows = np.empty(bound, np.int64)
        cells = np.empty(bound, np.int64)
        k = tally.cells_in_window(m.block_lo, m.block_hi, block, times, m.codes, t_lo, t_hi, offset, kind, col,
                                  lut_lo, origin, size, stride, luts, allowed, allowed_lo, check, m.n,
                                  _NONE if some is None else some, some is not None, rows, cells, _NONE, _NO_COUNTS,
                                  _NO_SUMS, _NO_SUMS)
        return rows[:k], cells[:k]

    def _tally_cube(self, plan: _Plan, principal, jurisdiction: bool, t_lo: int, t_hi: int, offset: int, cube,
                    read: np.ndarray, out: np.ndarray) -> None:
        """Add the columns ``read`` of the window's day-cube slots inside jurisdiction and the plan's
        dimensions into ``out`` (under the mirror lock)."""
        kind, col, lut_lo, origin, size, stride, luts, _ = plan.arrays()
        allowed, allowed_lo, check = self._allowed(principal, jurisdiction)
        if not check and len(read) == 1 and read[0] < tally.N_COUNTS and (kind == tally.BY_COLUMN).all():
            # The plain case (a top-N by a count, a trend): a leaner loop, and of a street's slots only
            order, street_lo = cube.slots_by_street()
            streets = _kept_streets(plan, street_lo.shape[1] - 1)
            tally.add_slot_count(cube.block_lo, cube.block_hi, day_cube.BLOCK, cube.day_us, cube.codes, t_lo, t_hi, col,
                                 lut_lo, stride, luts, cube.n, streets is not None, order, street_lo,
                                 _NONE if streets is None else streets, cube.counts[:, read[0]], out[:, read[0]])
            return
        if not check and len(read) == tally.N_MEASURES and len(kind) == 1 and kind[0] == tally.BY_COLUMN:
            # One column's dimension and every measure (a KPI table): whole rows, in a loop that does only that
            tally.add_slot_rows(cube.block_lo, cube.block_hi, day_cube.BLOCK, cube.day_us, cube.codes[col[0]], t_lo, t_hi,
                                luts[lut_lo[0] :], cube.n, cube.counts, cube.sums, out)
            return
        tally.cells_in_window(cube.block_lo, cube.block_hi, day_cube.BLOCK, cube.day_us, cube.codes, t_lo, t_hi, offset,
                              kind, col, lut_lo, origin, size, stride, luts, allowed, allowed_lo, check, cube.n, _NONE,
                              False, _NONE, _NONE, read, cube.counts, cube.sums, out)

    def _select(self, principal, start, end, filters) -> np.ndarray:
        """Rows of the events of the window inside jurisdiction and filters (under the mirror lock)."""
        t_lo, t_hi, offset = self._window(start, end)
        plan = self._plan((), dict(filters or {}), t_lo, t_hi, offset)
        return self._scan(plan, principal, True, t_lo, t_hi, offset)[0]

    # ------------------------------------------------------------------ areas

    def _grid_residents(self) -> dict[str, int]:
        if self._residents is None:
            self._residents = dict(self.population.residents_by_grid()) if self.population is not None else {}
        return self._residents

    def _follow_population(self) -> bool:
        """Forget the residents counted when the population provider says they changed (a move in the
        house registry), so the next rate uses the counts of now (under the mirror lock); returns
        whether they did."""
        generation = getattr(self.population, "generation", None)
        if generation is None:
            return False
        now = generation()
        if now != self._residents_generation:
            self._residents = None
            self._area_cache = {k: v for k, v in self._area_cache.items() if k[0] not in ("residents", "labels")}
            self._residents_generation = now
            return True
        return False

    def _area_residents(self, level: str) -> dict[str, int]:
        self._follow_population()
        key = ("residents", level, self.hierarchy.version_id)
        if key not in self._area_cache:
            self._area_cache[key] = self._sum_over_grids(level, self._grid_residents())
        return self._area_cache[key]

    def _residents_of(self, level: str, labels: list) -> tuple[np.ndarray, np.ndarray]:
        """Residents of each area label (0: unknown) and each label's rank in code order (None
        first), cached per dictionary size."""
        key = ("labels", level, self.hierarchy.version_id, len(labels))
        if key not in self._area_cache:
            residents = self._area_residents(level)
            people = np.array([residents.get(c, 0) for c in labels], dtype=np.float64)
            rank = np.empty(len(labels), np.int64)
            rank[sorted(range(len(labels)), key=lambda k: labels[k] or "")] = np.arange(len(labels))
            self._area_cache[key] = (people, rank)
        return self._area_cache[key]

    def _area_km2(self, level: str) -> dict[str, float]:
        key = ("km2", level, self.hierarchy.version_id)
        if key not in self._area_cache:
            self._area_cache[key] = self._sum_over_grids(level, self.hierarchy.area_km2)
        return self._area_cache[key]

    def _sum_over_grids(self, level: str, per_grid: Mapping[str, float]) -> dict:
        """Sums of a per-grid quantity over the areas of ``level`` of the active layer version (an
        area with a grid of unknown value: unknown)."""
        k = AREA_LEVELS.index(level)
        out: dict = {}
        unknown = set()
        for grid, chain in self.hierarchy.chain.items():
            code = chain[k]
            value = per_grid.get(grid)
            if value is None:
                unknown.add(code)
            else:
                out[code] = out.get(code, 0) + value
        return {code: v for code, v in out.items() if code not in unknown}


_NONE = np.empty(0, np.int64)
#: The counts and sums tables an event scan passes (it writes rows and cells, it adds no measures).
_NO_COUNTS = np.zeros((0, tally.N_COUNTS), np.int16)
_NO_SUMS = np.zeros((0, tally.N_MEASURES - tally.N_COUNTS), np.int64)
#: Column dimensions that are a dictionary of the mirror as they are: code row and dictionary name.
_CODE_COLUMNS = {"category": (0, "category_code"), "source": (2, "source"), "worker": (4, "worker_id"),
                 "grid": (5, "grid_code"), "community": (6, "community_code"), "street": (7, "street_code"),
                 "district": (8, "district_code")}
_CUBE_KINDS = (tally.BY_COLUMN, tally.DAY, tally.WEEK, tally.MONTH, tally.WEEKDAY)


def _tally(m, rows, cells, now_us, out):
    """Count the measures of the mirror's events ``rows`` into the cells of ``out``; returns
    :func:`~citygrid.kernels.tally.tally_cells`' next deadline."""
    return tally.tally_cells(rows, cells, m.codes, m.flags, m.open_rows, m.open_due, m.close_us, m.stage_us, now_us, 1,
                             out[:, : tally.N_COUNTS], out[:, tally.N_COUNTS :])


def _read_columns(measures) -> np.ndarray:
    """The columns of a counts table that the answers of ``measures`` read (:meth:`Analytics._measure`,
    and "reported", which tells the cells with events): the day cube adds only these, or all of them
    when more than a third are read (the kernel adds whole rows faster than picked columns)."""
    read = {tally.M_REPORTED}
    for name in measures:
        count = name.split("_per_")[0]
        if count in COUNTS:
            read.add(COUNTS[count])
        for duration, which in DURATIONS.items():
            if name == f"{duration}_mean":
                read.update((tally.M_CLOSE_US, tally.M_CLOSED) if which == 4
                            else (tally.M_STAGE_US0 + which, tally.M_STAGE_N0 + which))
    return np.array(sorted(read) if len(read) * 3 <= tally.N_MEASURES else range(tally.N_MEASURES), dtype=np.int64)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` as floats where the denominator is above 0, else NaN; divides
    only there (np.where of a guarded division took a third more time in a KPIs answer)."""
    out = np.full(len(denominator), np.nan)
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


def _nth_greatest(counts: np.ndarray, n: int) -> int:
    """The ``n``-th greatest of non-negative counts (``n`` at most their number): read off their
    histogram when they are small against how many there are (np.partition took 95 µs over the
    1,281 grids of the 10 M bench's week, counts of 1-100 with many ties; this 5 µs)."""
    top = int(counts.max())
    if top > 4 * len(counts) + 1024:
        return int(np.partition(counts, len(counts) - n)[len(counts) - n])
    at_least = np.cumsum(np.bincount(counts)[::-1])  # at_least[j]: how many count top - j or more
    return top - int(np.searchsorted(at_least, n))


def _kept_streets(plan: _Plan, n_codes: int) -> np.ndarray | None:
    """The streets (id + 1, below ``n_codes``) a street dimension or filter of the plan keeps,
    when it keeps at most a third of them (None: read the slots of every street)."""
    kind, col, lut_lo, *_, luts, _ = plan.arrays()
    for k in np.flatnonzero((kind == tally.BY_COLUMN) & (col == 7)).tolist():
        kept = np.flatnonzero(luts[lut_lo[k] : lut_lo[k] + n_codes] >= 0)
        return kept if 3 * len(kept) <= n_codes else None
    return None


def _cube_answers(plan: _Plan, measures) -> bool:
    """Whether the day cube has what a plan's dimensions and the measures need (its windows checked
    apart): whole local days, the code rows a slot keeps, no order statistics."""
    return (all(kind in _CUBE_KINDS for kind in plan.kind)
            and all(col in day_cube.KEPT_ROWS for kind, col in zip(plan.kind, plan.col) if kind == tally.BY_COLUMN)
            and not any(m.endswith(("_p50", "_p90")) for m in measures))


def _same_file(a, b) -> bool:
    """Whether two paths name the same existing file."""
    try:
        return a is not None and os.path.samefile(a, b)
    except OSError:
        return False


def _when(t: datetime):
    """A window bound as a cache key: the instant and its zone (a trend's year before is in local
    wall-clock time of the bound's zone)."""
    return t, getattr(t, "tzinfo", None) and str(t.tzinfo), isinstance(t, datetime) and t.utcoffset()


def _filters_key(filters) -> tuple:
    return tuple(sorted((d, tuple(codes)) for d, codes in (filters or {}).items()))


def _answer_key(question: tuple, principal: source.Principal) -> tuple:
    """What a remembered answer is kept under: the question and what of the principal an answer
    depends on (role, jurisdiction, worker id)."""
    return question, principal.role, source.allowed_codes(principal), principal.worker_id


def _weight(answer) -> int:
    """What a remembered answer holds, in values (see :data:`KEPT_VALUES`)."""
    if isinstance(answer, Table):
        return len(answer) * max(1, len(answer.columns))
    if isinstance(answer, list):
        return len(answer)
    if isinstance(answer, bytes):  # a servicer's serialised message
        return len(answer) // 8 + 1
    size = getattr(answer, "ByteSize", None)  # a servicer's message
    return size() // 8 + 1 if size is not None else 1


def _own_copy(answer):
    """A caller's own copy of a remembered answer (tables' columns copied; ranks and trends are frozen)."""
    if isinstance(answer, Table):
        return Table({k: (v.copy() if isinstance(v, np.ndarray) else list(v)) for k, v in answer.columns.items()})
    if isinstance(answer, list):
        return list(answer)
    return answer


@functools.lru_cache(maxsize=65536)
def _time_label(kind: int, code: int):
    from datetime import date, timedelta

    if kind == tally.HOUR_OF_DAY or kind == tally.WEEKDAY:
        return code
    if kind == tally.HOUR:
        day = date(1970, 1, 1) + timedelta(days=code // 24)
        return f"{day.isoformat()}T{code % 24:02d}:00"
    if kind == tally.DAY:
        return (date(1970, 1, 1) + timedelta(days=code)).isoformat()
    if kind == tally.WEEK:
        monday = date(1970, 1, 1) + timedelta(days=code * 7 - 3)
        year, week, _ = monday.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{code // 12:04d}-{code % 12 + 1:02d}"


def _year_before(t: datetime) -> datetime:
    """The same local wall-clock time a year earlier (29 February: the 28th)."""
    try:
        return t.replace(year=t.year - 1)
    except ValueError:
        return t.replace(year=t.year - 1, day=28)
