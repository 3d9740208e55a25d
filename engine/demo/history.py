"""A history of events written into an event store in bulk: each event's lifecycle up to a present
time, as the intake would have recorded it (the ``events``, ``audit`` and ``escalations`` tables).

``serve --demo --events`` writes the demo's year (``events.parquet``, shifted so the year ends at the
server clock's present) with :func:`load_demo_history`; the analytics benchmark writes its scaled
events with :func:`plan` and :func:`write`, so both use this one writer.

The lifecycle (闭环) of each event, in working minutes of the work schedule from the report:

- 3 % of the reports repeat the previous report of the same category in the same grid less than a
  day before and are linked to its first report (``duplicate``); 2 % of the rest are rejected
  (不予立案) within the hour;
- the others are registered at once (auto-registration); 60 % are dispatched at once, the rest
  after a wait of about 15 % of the category's dispatch limit; the worker is the grid's 网格员, or for
  40 % of the matters of another department an officer of it in the same street;
- handling takes about 35 % of the handle limit (times a pace of the worker: some are slower and
  rework more), verification about 30 % of the verify limit (times a pace of the street); lognormal,
  so some run past their limit and are escalated (督办) to the community at the deadline, and to the
  street when late by the limit again; 6 % fail verification once and are handled again (返工);
  closing follows verification within ten minutes.

An event whose next step falls after the present time stays in the state it has reached, with its
stage's start and deadline, so the recent days hold open cases and the older ones are closed.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from citygrid.engine.cases.lifecycle import State
from citygrid.engine.cases.store import _INSERT, _INSERT_AUDIT
from citygrid.engine.cases.taxonomy import Taxonomy
from citygrid.engine.database import connect, database_path
from citygrid.engine.dispatch.worktime import WorkSchedule
from citygrid.engine.times import US_PER_MINUTE, to_us

log = logging.getLogger("citygrid.engine.demo")

STAGES = ("register", "dispatch", "handle", "verify")
DUPLICATE_SHARE, REJECT_SHARE, AT_ONCE_SHARE, OFFICER_SHARE, REWORK_SHARE = 0.03, 0.02, 0.6, 0.4, 0.06
#: Spread (lognormal sigma) of the pace of streets (dispatch, verification) and workers (handling, rework).
STREET_PACE, WORKER_PACE = 0.25, 0.35
#: Median share of a stage's limit each stage takes, and the spread (lognormal sigma).
DISPATCH_SHARE, HANDLE_SHARE, VERIFY_SHARE = (0.15, 1.0), (0.35, 0.7), (0.3, 0.8)
DAY_US = 86_400_000_000
#: SQLite page cache (KiB) while writing a history: a year's pages stay in memory until the commit.
BULK_CACHE_KIB = 512 * 1024
WEEK_US = 7 * DAY_US
#: Who the audit trail names for the steps a person took in the history.
DISPATCHER, VERIFIER, SYSTEM = ("调度员", "dispatcher"), ("核查员", "verifier"), ("citygrid", "system")
#: The steps an event may go through, in order: (action, state reached).
_STEPS = (("report", State.REGISTERED), ("dispatch", State.DISPATCHED), ("handle", State.HANDLING),
          ("feedback", State.FED_BACK), ("rework", State.DISPATCHED), ("handle", State.HANDLING),
          ("feedback", State.FED_BACK), ("verify", State.VERIFIED), ("close", State.CLOSED))


@dataclass
class History:
    """Events with their lifecycle up to ``now_us``, ready to write (numpy columns; codes as object
    arrays; step times UTC µs, -1 where not reached)."""

    now_us: int
    event_id: np.ndarray
    category: np.ndarray
    occurred: np.ndarray
    source: np.ndarray
    lng: np.ndarray
    lat: np.ndarray
    chain: np.ndarray  #: (n, 4) grid, community, street, district codes
    description: np.ndarray
    building: np.ndarray
    state: np.ndarray  #: State values (str)
    worker: np.ndarray  #: None where never dispatched
    duplicate_of: np.ndarray
    steps: np.ndarray  #: (n, len(_STEPS)) time of each step, -1 where not taken (yet)
    stage_started: np.ndarray
    deadline: np.ndarray
    escalation: np.ndarray  #: present stage's escalation level
    escalations: list  #: (row, at, level, stage index, deadline, overdue minutes)
    stage_minutes: np.ndarray  #: (4, n) working minutes spent in each finished stage

    def __len__(self) -> int:
        return len(self.occurred)

    @property
    def reworked(self) -> np.ndarray:
        return self.steps[:, 4] >= 0

    def escalated_in(self, stage: int) -> np.ndarray:
        out = np.zeros(len(self), bool)
        rows = [r for r, _, _, s, _, _ in self.escalations if s == stage]
        out[rows] = True
        return out


def plan(columns: dict, now: datetime, *, taxonomy: Taxonomy, schedule: WorkSchedule, workers,
         rng: np.random.Generator, street_after_minutes: float | None = None) -> History:
    """The lifecycle of events up to ``now``. ``columns``: ``event_id``, ``category``, ``occurred``
    (UTC µs, sorted, none after ``now``), ``source``, ``lng``, ``lat``, ``chain`` ((n, 4) codes),
    optional ``description`` and ``building``; ``workers``: a table (``worker_id``, ``role``,
    ``department``, ``grid_code``) such as the demo's ``workers.parquet``; ``street_after_minutes``:
    the intake's escalation to the street (``None``: the stage's limit again)."""
    now_us = int(to_us(now))
    t0 = np.asarray(columns["occurred"], np.int64)
    n = len(t0)
    if n and t0.max() > now_us:
        raise ValueError("an event occurs after the present time of its history")
    category = np.asarray(columns["category"], object)
    chain = np.asarray(columns["chain"], object)
    cats = {c.code: c for c in taxonomy.categories}
    limit = np.array([[float(getattr(cats[c].limits, s)) for s in STAGES] for c in category.tolist()]).reshape(n, 4)
    department = np.array([cats[c].department for c in category.tolist()], object)

    duplicate_of = _duplicates(columns["event_id"], category, chain[:, 0], t0, rng)
    dup = duplicate_of != None  # noqa: E711 - elementwise
    rejected = ~dup & (rng.random(n) < REJECT_SHARE)
    live = ~dup & ~rejected
    worker = _workers(workers, chain, department, rng)

    steps = np.full((n, len(_STEPS)), -1, np.int64)
    add = schedule.add_working_us
    steps[:, 0] = t0
    at_once = rng.random(n) < AT_ONCE_SHARE
    # Some streets and workers are slower than others (the KPIs then differ, as they do).
    street_pace = _pace(chain[:, 2], STREET_PACE, rng)
    worker_pace = _pace(worker, WORKER_PACE, rng)
    d_dispatch = np.where(at_once, 0.0, limit[:, 1] * DISPATCH_SHARE[0] * street_pace
                          * rng.lognormal(0, DISPATCH_SHARE[1], n))
    t_dispatch = np.where(at_once, t0, add(t0, d_dispatch))
    d_handle = limit[:, 2] * HANDLE_SHARE[0] * worker_pace * rng.lognormal(0, HANDLE_SHARE[1], (2, n))
    d_verify = limit[:, 3] * VERIFY_SHARE[0] * street_pace * rng.lognormal(0, VERIFY_SHARE[1], (2, n))
    accept = rng.uniform(0.02, 0.2, (2, n))
    steps[:, 1] = t_dispatch
    steps[:, 2] = add(t_dispatch, d_handle[0] * accept[0])
    steps[:, 3] = t_fed = add(t_dispatch, d_handle[0])
    rework = rng.random(n) < REWORK_SHARE * worker_pace
    t_rework = add(t_fed, d_verify[1])
    t_fed2 = add(t_rework, d_handle[1])
    steps[:, 4] = np.where(rework, t_rework, -1)
    steps[:, 5] = np.where(rework, add(t_rework, d_handle[1] * accept[1]), -1)
    steps[:, 6] = np.where(rework, t_fed2, -1)
    steps[:, 7] = t_verified = add(np.where(rework, t_fed2, t_fed), d_verify[0])
    steps[:, 8] = t_verified + rng.integers(0, 10 * US_PER_MINUTE, n)
    steps[~live, 1:] = -1
    steps[steps > now_us] = -1  # each step comes after the one before it: what remains is a prefix
    last = np.where(steps >= 0, np.arange(len(_STEPS)), -1).max(axis=1)
    state = np.array([_STEPS[k][1].value for k in last.tolist()], object)
    state[dup] = State.DUPLICATE.value
    rejected_at = t0 + rng.integers(5, 60, n) * US_PER_MINUTE
    rejected_now = rejected & (rejected_at <= now_us)
    state[rejected_now] = State.REJECTED.value
    state[rejected & ~rejected_now] = State.REPORTED.value
    steps[rejected_now, 1] = rejected_at[rejected_now]  # the reject step, in the dispatch column

    # Stages: (start, end or -1, stage index) of each event's stages so far.
    minutes = np.zeros((4, n))
    escalations: list = []
    stage_started = np.full(n, -1, np.int64)
    deadline = np.full(n, -1, np.int64)
    escalation = np.zeros(n, np.int64)
    worked = schedule.worked_until
    spans = [(live, steps[:, 0], steps[:, 1], 1), (live, steps[:, 1], steps[:, 3], 2),
             (live & ~rework, steps[:, 3], steps[:, 8], 3), (live & rework, steps[:, 3], steps[:, 4], 3),
             (live & rework, steps[:, 4], steps[:, 6], 2), (live & rework, steps[:, 6], steps[:, 8], 3)]
    for mask, start, end, stage in spans:
        rows = np.flatnonzero(mask & (start >= 0))
        if not len(rows):
            continue
        s, e, lim = start[rows], end[rows], limit[rows, stage]
        due = add(s, lim)
        open_now = e < 0
        until = np.where(open_now, now_us, e)
        done = ~open_now
        minutes[stage, rows[done]] += (worked(e[done]) - worked(s[done])) / US_PER_MINUTE
        # The intake's policy: the community once overdue at all (in working minutes), the street
        # once overdue by the stage's limit again.
        overdue = (worked(until) - worked(due)) / US_PER_MINUTE
        street = lim if street_after_minutes is None else np.full(len(rows), float(street_after_minutes))
        level = (overdue > 0).astype(np.int64) + (overdue >= street)
        for lv, when in ((1, due), (2, add(due, street))):
            late = np.flatnonzero(level >= lv)
            escalations.extend(zip(rows[late].tolist(), when[late].tolist(), [lv] * len(late), [stage] * len(late),
                                   due[late].tolist(), np.where(lv == 2, street[late], 0.0).tolist()))
        now_rows = rows[open_now]
        stage_started[now_rows] = s[open_now]
        deadline[now_rows] = due[open_now]
        escalation[now_rows] = level[open_now]
    reported = state == State.REPORTED.value
    stage_started[reported] = t0[reported]
    deadline[reported] = add(t0[reported], limit[reported, 0])
    escalation[reported] = 0
    escalations.sort(key=lambda x: x[1])
    return History(now_us, np.asarray(columns["event_id"], object), category, t0, np.asarray(columns["source"], object),
                   np.asarray(columns["lng"], float), np.asarray(columns["lat"], float), chain,
                   np.asarray(columns.get("description", np.full(n, "", object)), object),
                   np.asarray(columns.get("building", np.full(n, None, object)), object),
                   state, np.where(live & (steps[:, 1] >= 0), worker, None), duplicate_of, steps, stage_started,
                   deadline, escalation, escalations, minutes)


def _pace(keys: np.ndarray, sigma: float, rng) -> np.ndarray:
    """A lognormal factor per distinct key (None: 1), for each entry of ``keys``."""
    names = sorted({k for k in keys.tolist() if k is not None})
    factor = dict(zip(names, rng.lognormal(0, sigma, len(names)).tolist()))
    return np.array([factor.get(k, 1.0) for k in keys.tolist()])


def _duplicates(event_id, category, grid, t0, rng) -> np.ndarray:
    """The first report each duplicate repeats (None for the others)."""
    n = len(t0)
    out = np.full(n, None, object)
    order = np.lexsort((t0, category, grid))
    same = np.zeros(n, bool)
    same[1:] = (grid[order][1:] == grid[order][:-1]) & (category[order][1:] == category[order][:-1]) & \
        (np.diff(t0[order]) < DAY_US)
    pick = same & (rng.random(n) < DUPLICATE_SHARE / max(same.mean(), 1e-9))
    ids = np.asarray(event_id, object)
    for k in np.flatnonzero(pick).tolist():
        first = order[k - 1]
        out[order[k]] = out[first] if out[first] is not None else ids[first]
    return out


def _workers(workers, chain: np.ndarray, department: np.ndarray, rng) -> np.ndarray:
    """The worker each event goes to: its grid's 网格员, or for 40 % of another department's matters
    an officer of that department based in the same street."""
    ids, roles, departments, grids = (workers.column(c).to_pylist() for c in ("worker_id", "role", "department",
                                                                              "grid_code"))
    street_of = {g: s for g, s in zip(chain[:, 0].tolist(), chain[:, 2].tolist())}
    grid_worker: dict[str, str] = {}
    officers: dict[tuple, list[str]] = {}
    for w, role, dept, g in zip(ids, roles, departments, grids):
        if role == "网格员":
            grid_worker.setdefault(g, w)
        elif dept != "网格员":
            officers.setdefault((dept, street_of.get(g)), []).append(w)
    out = np.array([grid_worker.get(g) for g in chain[:, 0].tolist()], object)
    u = rng.random(len(out))
    for k in np.flatnonzero((department != "网格员") & (u < OFFICER_SHARE)).tolist():
        pool = officers.get((department[k], chain[k, 2]))
        if pool:
            out[k] = pool[int(u[k] * 1e6) % len(pool)]
    return out


# ---------------------------------------------------------------------- writing


def write(conn: sqlite3.Connection, history: History, *, layer_version: str, first_seq: int) -> None:
    """Insert the events, their audit rows (in time order) and escalations in one transaction (the
    tables exist). Rows are built column-wise: a Python object per value only at the insert."""
    h = history
    n = len(h)
    seq = np.arange(first_seq, first_seq + n)
    t0 = h.occurred
    steps = h.steps
    state = h.state
    live = ~np.isin(state, [State.DUPLICATE.value, State.REJECTED.value, State.REPORTED.value])
    at_once = live & (steps[:, 1] == t0)
    first = np.where(state == State.DUPLICATE.value, State.DUPLICATE.value,
                     np.where(~live, State.REPORTED.value,
                              np.where(at_once, State.DISPATCHED.value, State.REGISTERED.value))).astype(object)
    intake_worker = np.where(at_once, h.worker, None)
    none = np.full(n, None, object)
    # Audit: (event seq, at, principal, role, action, from, to, notify), one block per kind of step.
    blocks = [(seq, t0, h.source, np.full(n, "intake", object), "report", none, first, intake_worker)]
    rejected = np.flatnonzero(state == State.REJECTED.value)
    blocks.append((seq[rejected], steps[rejected, 1], *DISPATCHER, "reject", State.REPORTED.value,
                   State.REJECTED.value, None))
    for j in range(1, len(_STEPS)):
        rows = np.flatnonzero(live & (steps[:, j] >= 0) & (~at_once if j == 1 else True))
        action, reached = _STEPS[j]
        before = _STEPS[j - 1][1] if j != 7 else State.FED_BACK
        principal, role = (h.worker[rows], "worker") if action in ("handle", "feedback") else \
            VERIFIER if action in ("verify", "rework") else DISPATCHER
        blocks.append((seq[rows], steps[rows, j], principal, role, action, before.value, reached.value,
                       h.worker[rows] if reached is State.DISPATCHED else None))
    columns = [[] for _ in range(8)]
    for block in blocks:
        size = len(block[0])
        for c, value in enumerate(block):
            columns[c].append(value if isinstance(value, np.ndarray) else np.full(size, value, object))
    audit = [np.concatenate(c) for c in columns]
    order = np.lexsort((audit[0], audit[1]))
    audit = [c[order].tolist() for c in audit]
    k = len(order)
    audit_rows = zip(audit[0], audit[1], audit[2], audit[3], audit[4], audit[5], audit[6], [""] * k, audit[7],
                     [None] * k)
    updated = steps.max(axis=1)
    chain = h.chain
    lng, lat = h.lng.tolist(), h.lat.tolist()
    event_rows = zip(
        seq.tolist(), h.event_id.tolist(), h.category.tolist(), t0.tolist(), (t0 + 1_000_000).tolist(),
        h.source.tolist(), [""] * n, h.description.tolist(), ["[]"] * n, lng, lat, ["wgs84"] * n, h.building.tolist(),
        lng, lat, *(chain[:, c].tolist() for c in range(4)), [0] * n, [layer_version] * n, state.tolist(),
        h.worker.tolist(), h.duplicate_of.tolist(), _nullable(h.stage_started), _nullable(h.deadline),
        h.escalation.tolist(), updated.tolist(), first.tolist(), intake_worker.tolist(),
    )
    escal = [(first_seq + row, at, level, chain[row, 1] if level == 1 else chain[row, 2], STAGES[stage], due, overdue)
             for row, at, level, stage, due, overdue in h.escalations]
    conn.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(_INSERT, event_rows)
        conn.executemany(_INSERT_AUDIT, audit_rows)
        conn.executemany("INSERT INTO escalations (event_seq, at, level, unit_code, stage, deadline, overdue_minutes) "
                         "VALUES (?,?,?,?,?,?,?)", escal)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _nullable(values: np.ndarray) -> list:
    return [None if v < 0 else v for v in values.tolist()]


# ---------------------------------------------------------------------- the demo's year


@dataclass(frozen=True)
class HistoryReport:
    events: int
    open: int
    escalations: int
    #: Whole weeks the demo's year was moved forward (weekdays and hours keep their rhythm).
    shift_weeks: int
    seconds: float
    #: False when the data directory had the history already (nothing written).
    written: bool


def load_demo_history(host, demo_dir: Path, data_dir: Path, *, seed: int = 20261206) -> HistoryReport:
    """Write the demo's year of events (``demo_dir/events.parquet``) into the store of ``host`` (an
    :class:`~citygrid.engine.cases.host.IntakeHost`) with their lifecycle up to the intake clock's
    present, once per data directory; then the host builds its intake anew from the store (who holds
    what, the duplicate index), so the intake, the analytics mirror and the store agree.

    The year is moved forward by whole weeks (weekdays and hours of day keep the demo's rhythm) until
    its end reaches the present; the events that would fall after the present (the last few days of
    the demo's year) are left out, so the history ends now and today has events."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t_start = time.perf_counter()
    intake = host.intake()
    table = pq.read_table(Path(demo_dir) / "events.parquet", columns=[
        "event_id", "category_code", "lng", "lat", "occurred_at", "source", "grid_code", "building_code", "description"])
    ids = table.column("event_id")
    conn = connect(database_path(data_dir))
    try:
        if conn.execute("SELECT 1 FROM events WHERE event_id = ?", (ids[0].as_py(),)).fetchone():
            return HistoryReport(0, 0, 0, 0, time.perf_counter() - t_start, False)
        now_us = int(to_us(intake.clock()))
        occurred = pc.cast(table.column("occurred_at"), "int64").to_numpy() * 1000
        weeks = -(-(now_us - int(occurred.max())) // WEEK_US)
        occurred = occurred + weeks * WEEK_US
        keep = occurred <= now_us
        layer = intake.layer
        chains = {g: (g, c, s, d) for g, c, s, d in zip(*(layer.column(x).tolist() for x in (
            "grid_code", "community_code", "street_code", "district_code")))}
        grid = table.column("grid_code").to_numpy(zero_copy_only=False)
        keep &= np.array([g in chains for g in grid.tolist()])
        columns = {
            "event_id": ids.to_numpy(zero_copy_only=False)[keep],
            "category": table.column("category_code").to_numpy(zero_copy_only=False)[keep],
            "occurred": occurred[keep],
            "source": table.column("source").to_numpy(zero_copy_only=False)[keep],
            "lng": table.column("lng").to_numpy()[keep], "lat": table.column("lat").to_numpy()[keep],
            "chain": np.array([chains[g] for g in grid[keep].tolist()], dtype=object).reshape(-1, 4),
            "description": table.column("description").to_numpy(zero_copy_only=False)[keep],
            "building": table.column("building_code").to_numpy(zero_copy_only=False)[keep],
        }
        workers = pq.read_table(Path(demo_dir) / "workers.parquet",
                                columns=["worker_id", "role", "department", "grid_code"])
        history = plan(columns, intake.clock(), taxonomy=intake.taxonomy, schedule=intake.config.schedule,
                       workers=workers, rng=np.random.default_rng(seed),
                       street_after_minutes=intake.config.escalation.street_after_minutes)
        first_seq = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM events").fetchone()[0]
        write(conn, history, layer_version=layer.version_id, first_seq=first_seq)
    finally:
        conn.close()
    host.rebuild()
    n_open = int(np.isin(history.state, [s.value for s in State if s.is_open]).sum())
    return HistoryReport(len(history), n_open, len(history.escalations), int(weeks), time.perf_counter() - t_start, True)


def shift_note(report: HistoryReport) -> str:
    return (f"{report.events:,} events ({report.open:,} open, {report.escalations:,} escalations) moved "
            f"{report.shift_weeks} weeks forward, written in {report.seconds:.1f} s")

