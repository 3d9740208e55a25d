"""Everything the analytics wing takes from the rest of the engine, in one place.

The wing reads what the cases wing commits and nothing else: the events, audit and escalations
tables of the data directory's database (through a read connection of its own, in one read
transaction per catch-up, so it sees whole commits only), the taxonomy (category -> class and
responsible department), the work schedule (working minutes), the layer's hierarchy (grid ->
community -> street -> district, grid type, area) and the principals' jurisdiction. When the
engine's modules move (the restructure into wings) this module's imports are the ones to fix.

Text columns reach the mirror as dense integer ids: the read connection keeps a temporary
dictionary table per column, and each read asks SQLite for the ids, as comma-separated text
(``group_concat``) that numpy parses in C, so a rebuild never builds a Python object per value.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from citygrid.engine.clock import Clock, system_clock  # noqa: F401 - re-exported for the wing
from citygrid.engine.database import connect, database_path
from citygrid.engine.errors import Forbidden
from citygrid.engine.jurisdiction import CHAIN_COLUMNS
from citygrid.engine.layers import GridLayer  # noqa: F401 - re-exported for the wing
from citygrid.engine.lifecycle import State
from citygrid.engine.principals import Principal, Role  # noqa: F401 - re-exported for the wing
from citygrid.engine.taxonomy import Taxonomy, load_taxonomy  # noqa: F401 - re-exported for the wing
from citygrid.engine.worktime import DEFAULT_TIMEZONE, WorkSchedule, from_us, to_us  # noqa: F401
from citygrid.kernels import tally

#: State codes of the mirror, in the order the kernels know them.
STATES: tuple[State, ...] = tuple(State)
assert [s.value for s in STATES] == ["reported", "registered", "dispatched", "handling", "fed_back", "verified",
                                     "closed", "parked", "rejected", "duplicate"]
assert STATES.index(State.CLOSED) == tally.CLOSED and STATES.index(State.DUPLICATE) == tally.DUPLICATE
#: Stage names of the taxonomy's limits, in the kernels' stage order.
STAGES = ("register", "dispatch", "handle", "verify")
#: Dictionary-coded text columns of the events table, in the mirror's code rows (after class, which
#: the mirror derives from the category).
TEXT_COLUMNS = ("category_code", "source", "worker_id") + CHAIN_COLUMNS
#: Rows of the mirror's code matrix.
CODE_ROWS = ("category", "class", "source", "state", "worker", "grid", "community", "street", "district")
#: Events per read while rebuilding.
CHUNK = 250_000


def _case(column: str, names: Sequence[str]) -> str:
    return f"CASE {column} " + " ".join(f"WHEN '{n}' THEN {i}" for i, n in enumerate(names)) + " ELSE -1 END"


_STATE_CASE = _case("e.state", [s.value for s in STATES])


def _ints(text: str | None, n: int) -> np.ndarray:
    if n == 0 or text is None:
        return np.empty(0, dtype=np.int64)
    out = np.fromstring(text, dtype=np.int64, sep=",")
    if len(out) != n:
        raise RuntimeError(f"read {len(out)} values where {n} were expected")
    return out


def _floats(text: str | None, n: int) -> np.ndarray:
    if n == 0 or text is None:
        return np.empty(0, dtype=np.float64)
    return np.array(text.split(","), dtype=np.float64)


@dataclass
class EventRows:
    """Columns of some events as read (``row``: seq - 1)."""

    row: np.ndarray
    occurred: np.ndarray
    deadline: np.ndarray  #: -1: none
    state: np.ndarray
    text_ids: np.ndarray  #: (len(TEXT_COLUMNS), n) dictionary ids, -1 for NULL
    lng: np.ndarray  #: WGS84, NaN when not placed
    lat: np.ndarray


@dataclass
class AuditRows:
    row: np.ndarray
    at: np.ndarray
    from_state: np.ndarray
    to_state: np.ndarray
    rework: np.ndarray


class StoreReader:
    """A read connection to the data directory's database, with the dictionaries of the text
    columns (``codes[name]``: id -> code, in order of first appearance)."""

    def __init__(self, data_dir):
        self._conn = connect(database_path(data_dir))
        self.codes: dict[str, list[str]] = {name: [] for name in TEXT_COLUMNS}
        for name in TEXT_COLUMNS:
            self._conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS d_{name} (id INTEGER PRIMARY KEY, code TEXT UNIQUE)")
        joins = " ".join(f"LEFT JOIN temp.d_{name} d{k} ON d{k}.code = e.{name}" for k, name in enumerate(TEXT_COLUMNS))
        ids = ", ".join(f"group_concat(coalesce(d{k}.id - 1, -1))" for k in range(len(TEXT_COLUMNS)))
        self._events_sql = (
            "SELECT count(*), group_concat(e.seq - 1), group_concat(e.occurred_at), "
            f"group_concat(coalesce(e.deadline, -1)), group_concat({_STATE_CASE}), {ids}, "
            "group_concat(coalesce(printf('%.17g', e.wgs_lng), 'nan')), "
            "group_concat(coalesce(printf('%.17g', e.wgs_lat), 'nan')) "
            f"FROM events e {joins} WHERE {{where}}"
        )

    def close(self) -> None:
        self._conn.close()

    def begin(self) -> None:
        """Start a read transaction: every read until :meth:`end` sees the same commit."""
        self._conn.execute("BEGIN")

    def end(self) -> None:
        self._conn.execute("COMMIT")

    def cursors(self) -> tuple[int, int, int]:
        """(last event seq, last audit seq, last escalation seq)."""
        return self._conn.execute(
            "SELECT (SELECT coalesce(max(seq), 0) FROM events), (SELECT coalesce(max(seq), 0) FROM audit), "
            "(SELECT coalesce(max(seq), 0) FROM escalations)"
        ).fetchone()

    def events_between(self, lo: int, hi: int) -> EventRows:
        """Events with ``lo < seq <= hi``."""
        return self._events("e.seq > ? AND e.seq <= ?", (lo, hi))

    def events_of(self, seqs: Sequence[int]) -> EventRows:
        return self._events("e.seq IN (SELECT value FROM json_each(?))", (json.dumps([int(s) for s in seqs]),))

    def _events(self, where: str, params: tuple) -> EventRows:
        for name in TEXT_COLUMNS:
            self._conn.execute(
                f"INSERT OR IGNORE INTO temp.d_{name} (code) SELECT DISTINCT e.{name} FROM events e "
                f"WHERE {where} AND e.{name} IS NOT NULL",
                params,
            )
            known = self.codes[name]
            known += [code for (code,) in self._conn.execute(
                f"SELECT code FROM temp.d_{name} WHERE id > ? ORDER BY id", (len(known),))]
        n, rows, occurred, deadline, state, *rest = self._conn.execute(self._events_sql.format(where=where),
                                                                        params).fetchone()
        text = np.array([_ints(t, n) for t in rest[: len(TEXT_COLUMNS)]], dtype=np.int64).reshape(len(TEXT_COLUMNS), n)
        return EventRows(_ints(rows, n), _ints(occurred, n), _ints(deadline, n), _ints(state, n), text,
                         _floats(rest[-2], n), _floats(rest[-1], n))

    def audit_between(self, lo: int, hi: int) -> AuditRows:
        """Audit rows with ``lo < seq <= hi`` in log order."""
        n, rows, at, fs, ts, rework = self._conn.execute(
            "SELECT count(*), group_concat(event_seq - 1), group_concat(at), "
            f"group_concat({_case('from_state', [s.value for s in STATES])}), "
            f"group_concat({_case('to_state', [s.value for s in STATES])}), group_concat(action = 'rework') "
            "FROM (SELECT * FROM audit WHERE seq > ? AND seq <= ? ORDER BY seq)",
            (lo, hi),
        ).fetchone()
        return AuditRows(_ints(rows, n), _ints(at, n), _ints(fs, n), _ints(ts, n), _ints(rework, n))

    def escalations_between(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(event row, stage index) of escalation rows with ``lo < seq <= hi``."""
        n, rows, stages = self._conn.execute(
            f"SELECT count(*), group_concat(event_seq - 1), group_concat({_case('stage', STAGES)}) "
            "FROM escalations WHERE seq > ? AND seq <= ?",
            (lo, hi),
        ).fetchone()
        return _ints(rows, n), _ints(stages, n)


class Vocabulary:
    """What the taxonomy says of categories: class and responsible department of each, by id."""

    def __init__(self, taxonomy: Taxonomy):
        self.taxonomy = taxonomy
        self.classes = [c.code for c in taxonomy.classes]
        self.class_names = {c.code: c.name for c in taxonomy.classes}
        self.departments = sorted({c.department for c in taxonomy.categories})
        self._of = {c.code: (c.class_code, c.department) for c in taxonomy.categories}
        self.category_names = {c.code: c.name for c in taxonomy.categories}

    def class_of(self, category_code: str) -> str | None:
        entry = self._of.get(category_code)
        return None if entry is None else entry[0]

    def department_of(self, category_code: str) -> str | None:
        entry = self._of.get(category_code)
        return None if entry is None else entry[1]


class Hierarchy:
    """One layer version's areas: each grid's community, street and district codes, grid type and
    area (km², where the layer has ``area_m2``)."""

    def __init__(self, layer: GridLayer):
        self.version_id = layer.version_id
        names = layer.attributes.column_names
        columns = [layer.column(c).tolist() if c in names else [None] * layer.n_grids for c in CHAIN_COLUMNS]
        self.chain = {row[0]: tuple(row) for row in zip(*columns)}
        self.grid_type = dict(zip(columns[0], layer.column("grid_type").tolist())) if "grid_type" in names else {}
        self.area_km2 = (dict(zip(columns[0], (np.asarray(layer.column("area_m2"), float) / 1e6).tolist()))
                         if "area_m2" in names else {})


def allowed_codes(principal: Principal) -> tuple[str, ...] | None:
    """The area codes a principal sees (``None``: everywhere)."""
    return None if principal.everywhere else tuple(principal.jurisdiction)


def require_reader(principal: Principal, *, what: str) -> None:
    """Dashboards, dispatchers, supervisors, verifiers and admins read aggregates inside their
    jurisdiction; grid workers read only their own KPIs (checked by the KPI query)."""
    principal.require_role(Role.DASHBOARD, Role.DISPATCHER, Role.SUPERVISOR, Role.VERIFIER, action=what)


def worker_of(principal: Principal) -> str | None:
    """The worker id of a grid worker principal (``None`` for any other role)."""
    if principal.role is Role.WORKER:
        if principal.worker_id is None:
            raise Forbidden(f"{principal.name} is a worker without a worker id")
        return principal.worker_id
    return None


def worked_us(schedule: WorkSchedule, at_us: np.ndarray) -> np.ndarray:
    """Working µs of the schedule up to each time."""
    return np.asarray(schedule.worked_until(np.asarray(at_us, dtype=np.int64)), dtype=np.int64)


def utc_offset_us(timezone_name: str, t_us: int) -> int:
    """The zone's UTC offset (µs) at a time."""
    from zoneinfo import ZoneInfo

    offset = from_us(int(t_us)).astimezone(ZoneInfo(timezone_name)).utcoffset()
    return int(offset.total_seconds() * 1_000_000) if offset is not None else 0


def check_finite(x: float) -> bool:
    return math.isfinite(x)
