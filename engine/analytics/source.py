"""Everything the analytics wing takes from the rest of the engine, in one place.

The wing reads what the cases wing commits and nothing else: the events, audit and escalations
tables of the data directory's database (through a read connection of its own, in one read
transaction per catch-up, so it sees whole commits only), the taxonomy (category -> class and
responsible department), the work schedule (working minutes), the layer's hierarchy (grid ->
community -> street -> district, grid type, area) and the principals' jurisdiction. When the
engine's modules move (the restructure into wings) this module's imports are the ones to fix.

Columns reach the mirror as one text per column and read (``group_concat``): numbers parsed by
numpy, codes split and dictionary-encoded by Arrow, both in C, so a catch-up never builds a Python
object per value; only the distinct codes reach Python, as the mirror's dictionaries (dense ids in
order of first appearance). A rebuild's long reads go through
:mod:`~citygrid.engine.analytics.store_scan` instead (no text made at all), into the same
dictionaries (:meth:`StoreReader.code_ids`). Positions are read when a heatmap first needs them.

The intake's own commits are handed on after each commit (:meth:`Intake.on_inserted
<citygrid.engine.cases.intake.Intake.on_inserted>`, :class:`CommittedEvents`) as columns, and
turned into the same columns and dictionaries without reading them back
(:meth:`StoreReader.committed_rows`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import repeat
from typing import NamedTuple, Sequence

import numpy as np

from citygrid.engine.database import connect, database_path  # noqa: F401 - re-exported for the wing
from citygrid.engine.errors import Forbidden
from citygrid.engine.access.principals import Principal, Role  # noqa: F401 - re-exported for the wing
from citygrid.engine.cases.lifecycle import State
from citygrid.engine.cases.store import EVENT_TABLE, CommittedEvents, InsertColumns  # noqa: F401 - re-exported
from citygrid.engine.cases.taxonomy import Taxonomy, load_taxonomy  # noqa: F401 - re-exported for the wing
from citygrid.engine.dispatch.worktime import WorkSchedule
from citygrid.engine.hierarchy import CODE_COLUMNS as CHAIN_COLUMNS
from citygrid.engine.layers.layer import GridLayer  # noqa: F401 - re-exported for the wing
from citygrid.engine.times import Clock, from_us, system_clock, to_us  # noqa: F401 - re-exported for the wing
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
#: The lists whose entries :class:`~citygrid.engine.cases.store.InsertColumns` index.
_LISTS = ("category_codes", "worker_ids", "chains")
#: Where an event's sequence number is in a row of :attr:`CommittedEvents.events`.
_SEQ = [column for column, *_ in EVENT_TABLE].index("seq")


def _ints(text: str | None, n: int) -> np.ndarray:
    if n == 0 or text is None:
        return np.empty(0, dtype=np.int64)
    out = np.fromstring(text, dtype=np.int64, sep=",")
    if len(out) != n:
        raise RuntimeError(f"read {len(out)} values where {n} were expected")
    return out


class HandedInsert(NamedTuple):
    """What the mirror keeps of a committed insert handed on (:class:`CommittedEvents`) until a
    catch-up takes it: the sequence numbers of its events and audit rows and the columns, not the
    row tuples, which die with the intake's batch (kept, they made every young collection of the
    collector walk them: 40-50 ms in the intake bench's run of 40 batches)."""

    first_seq: int
    last_seq: int
    first_audit: int
    last_audit: int
    columns: InsertColumns

    @classmethod
    def of(cls, committed: CommittedEvents) -> "HandedInsert":
        events, n_audit = committed.events, len(committed.audit)
        if len(events) != n_audit:  # the intake writes one audit row per event: its report
            raise RuntimeError(f"an insert of {len(events)} events handed on {n_audit} audit rows")
        first, last = events[0][_SEQ], events[-1][_SEQ]
        if last - first + 1 != len(events):
            raise RuntimeError(f"an insert of {len(events)} events handed on sequence numbers {first} to {last}")
        return cls(first, last, committed.first_audit, committed.first_audit + n_audit - 1, committed.columns)

    @staticmethod
    def runs(inserts: Sequence["HandedInsert"]) -> list[list["HandedInsert"]]:
        """Inserts (in commit order) in runs that follow on each other with nothing between (no
        event or audit row of another commit) and index the same lists: each run's columns are
        made in one pass (:meth:`StoreReader.committed_rows`)."""
        runs: list[list[HandedInsert]] = []
        for h in inserts:
            if runs and (h.first_seq == runs[-1][-1].last_seq + 1 and h.first_audit == runs[-1][-1].last_audit + 1
                         and all(getattr(h.columns, name) is getattr(runs[-1][-1].columns, name) for name in _LISTS)):
                runs[-1].append(h)
            else:
                runs.append([h])
        return runs


@dataclass
class EventRows:
    """Columns of some events as read (``row``: seq - 1)."""

    row: np.ndarray
    occurred: np.ndarray
    deadline: np.ndarray  #: -1: none
    state: np.ndarray
    text_ids: np.ndarray  #: (len(TEXT_COLUMNS), n) dictionary ids, -1 for NULL

    @classmethod
    def joined(cls, parts: Sequence["EventRows"]) -> "EventRows":
        return cls(*(np.concatenate([getattr(p, name) for p in parts], axis=-1)
                     for name in ("row", "occurred", "deadline", "state", "text_ids")))


@dataclass
class AuditRows:
    row: np.ndarray
    at: np.ndarray
    to_state: np.ndarray
    rework: np.ndarray


class StoreReader:
    """A read connection to the data directory's database, with the dictionaries of the text
    columns (``codes[name]``: id -> code, in order of first appearance)."""

    def __init__(self, data_dir):
        self._conn = connect(database_path(data_dir))
        self.codes: dict[str, list[str]] = {name: [] for name in TEXT_COLUMNS}
        self._ids: dict[str, dict[str, int]] = {name: {} for name in TEXT_COLUMNS}
        #: id(list) -> (the list, ids of each entry, which entries are filled in): the tables of
        #: :meth:`_ids_through`.
        self._through: dict[int, tuple] = {}
        self._state_ids = {s.value: k for k, s in enumerate(STATES)}
        texts = ", ".join(f"group_concat(coalesce({name}, ''), '\x1f')" for name in TEXT_COLUMNS)
        self._events_sql = (
            "SELECT count(*), group_concat(seq - 1), group_concat(occurred_at), group_concat(coalesce(deadline, -1)), "
            f"group_concat(state, '\x1f'), {texts} FROM events WHERE {{where}}"
        )
        state_code = " ".join(f"WHEN '{s.value}' THEN {k}" for k, s in enumerate(STATES))
        self._audit_sql = ("SELECT count(*), group_concat(at), group_concat(((event_seq - 1) << 5) "
                           f"| ((CASE to_state {state_code} ELSE 15 END) << 1) | (action = 'rework')) "
                           "FROM {rows}")

    def close(self) -> None:
        self._conn.close()

    def begin(self) -> None:
        """Start a read transaction: every read until :meth:`end` sees the same commit."""
        self._conn.execute("BEGIN")

    def end(self) -> None:
        self._conn.execute("COMMIT")

    def data_version(self) -> int:
        """SQLite's ``data_version`` of this connection: it moves when another connection commits."""
        return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def cursors(self) -> tuple[int, int, int]:
        """(last event seq, last audit seq, last escalation seq)."""
        return self._conn.execute(
            "SELECT (SELECT coalesce(max(seq), 0) FROM events), (SELECT coalesce(max(seq), 0) FROM audit), "
            "(SELECT coalesce(max(seq), 0) FROM escalations)"
        ).fetchone()

    def events_between(self, lo: int, hi: int) -> EventRows:
        """Events with ``lo < seq <= hi``."""
        return self._events("seq > ? AND seq <= ?", (lo, hi))

    def events_of(self, seqs: Sequence[int]) -> EventRows:
        return self._events("seq IN (SELECT value FROM json_each(?))", (json.dumps([int(s) for s in seqs]),))

    def positions_of(self, seqs: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, WGS84 lng, lat) of some events (NaN where not placed)."""
        rows = self._conn.execute(
            "SELECT seq - 1, coalesce(wgs_lng, 'nan'), coalesce(wgs_lat, 'nan') FROM events "
            "WHERE seq IN (SELECT value FROM json_each(?))", (json.dumps([int(s) for s in seqs]),)).fetchall()
        if not rows:
            return np.empty(0, np.int64), np.empty(0), np.empty(0)
        row, lng, lat = zip(*rows)
        return np.array(row, np.int64), np.array(lng, np.float64), np.array(lat, np.float64)

    def _events(self, where: str, params: tuple) -> EventRows:
        n, rows, occurred, deadline, state, *texts = self._conn.execute(self._events_sql.format(where=where),
                                                                         params).fetchone()
        ids = np.array([self._encode(name, text, n) for name, text in zip(TEXT_COLUMNS, texts)],
                       dtype=np.int64).reshape(len(TEXT_COLUMNS), n)
        return EventRows(_ints(rows, n), _ints(occurred, n), _ints(deadline, n), _encode_with(self._state_ids, state, n),
                         ids)

    def _encode(self, name: str, text: str | None, n: int) -> np.ndarray:
        """Dictionary ids of ``n`` unit-separated codes ('' is NULL: -1), new codes added."""
        ids, codes = self._ids[name], self.codes[name]
        return _encode_with(ids, text, n, codes)

    def code_ids(self, name: str, distinct: Sequence[str]) -> np.ndarray:
        """The dictionary ids of a column's distinct codes as read elsewhere (in order of first
        appearance; '' is NULL: -1), new codes added: the table from their ids to the mirror's."""
        return _table(self._ids[name], distinct, self.codes[name])

    def state_ids(self, distinct: Sequence[str]) -> np.ndarray:
        """State codes of distinct state names (unknown: -1)."""
        return _table(self._state_ids, distinct)

    def committed_rows(self, inserts: Sequence[HandedInsert]) -> tuple[EventRows, AuditRows]:
        """The columns of a run of committed inserts the intake handed on (:meth:`HandedInsert.runs`),
        as :meth:`events_between` and :meth:`audit_between` would read them back (codes into the
        same dictionaries, new ones added in order of first appearance). The intake hands them as
        columns (:class:`~citygrid.engine.cases.store.InsertColumns`): numbers as they are,
        categories, workers and area chains as indices into its lists, whose ids are looked up once
        per list entry (:meth:`_ids_through`); only the sources are looked up per event (in one C
        pass)."""
        c = inserts[0].columns
        def column(name: str) -> np.ndarray:
            return getattr(c, name) if len(inserts) == 1 else np.concatenate([getattr(h.columns, name) for h in inserts])
        row = np.arange(inserts[0].first_seq - 1, inserts[-1].last_seq)
        texts = np.empty((len(TEXT_COLUMNS), len(row)), dtype=np.int64)
        texts[0] = self._ids_through(c.category_codes, column("category"), self._code_ids_of("category_code"))[:, 0]
        texts[1] = _table(self._ids["source"], [s for h in inserts for s in h.columns.source], self.codes["source"])
        texts[2] = self._ids_through(c.worker_ids, column("worker"), self._code_ids_of("worker_id"))[:, 0]
        texts[-len(CHAIN_COLUMNS):] = self._ids_through(c.chains.chains, column("grid_rows"), self._codes_of_chains,
                                                         len(CHAIN_COLUMNS)).T
        state = column("state").astype(np.int64)
        at = np.repeat(np.array([h.columns.received_us for h in inserts], dtype=np.int64),
                       [h.last_seq - h.first_seq + 1 for h in inserts])
        return (EventRows(row, column("occurred_us"), column("deadline_us"), state, texts),
                AuditRows(row, at, state, np.zeros(len(row), dtype=np.int64)))

    def _code_ids_of(self, name: str):
        """The dictionary ids (``(n, 1)``) of codes of a column: with ``grow``, new ones added in
        their order; else :data:`_UNSEEN` for those not in the dictionary."""
        return lambda codes, grow=True: self._ids_of(name, codes, grow)[:, None]

    def _codes_of_chains(self, chains: Sequence[tuple], grow: bool = True) -> np.ndarray:
        """Dictionary ids (``(n, len(CHAIN_COLUMNS))``) of distinct area chains' codes, new codes
        added column by column in the chains' order (without ``grow``: :data:`_UNSEEN`)."""
        return np.stack([self._ids_of(name, list(codes), grow) for name, codes in zip(CHAIN_COLUMNS, zip(*chains))],
                        axis=1)

    def _ids_of(self, name: str, codes: Sequence[str], grow: bool) -> np.ndarray:
        return (_table(self._ids[name], codes, self.codes[name]) if grow
                else _table(self._ids[name], codes, unknown=_UNSEEN))

    def _ids_through(self, entries: Sequence, index: np.ndarray, ids_of, width: int = 1) -> np.ndarray:
        """``ids_of`` (ids, ``(k, width)``) of ``entries[index]`` (index -1: none, ids -1), through a
        table from index to ids kept per ``entries`` (a list the intake never changes once made),
        filled for the indices not seen before, in order of first appearance (so each column's new
        codes are added in their order of first appearance, as a read of the store adds them). A
        new table is filled at once for every entry whose codes the dictionaries already hold (a
        server's mirror, rebuilt from the store, holds nearly all of them)."""
        kept = self._through.get(id(entries))
        if kept is None or kept[0] is not entries:
            if len(self._through) >= 8:  # lists of layers and rosters no longer used
                self._through.clear()
            table = np.full((len(entries) + 1, width), -1, dtype=np.int64)
            known = np.zeros(len(entries) + 1, dtype=np.bool_)
            known[-1] = True  # the last entry is index -1's: none
            if len(entries):
                ids = ids_of(list(entries), False)
                known[:-1] = (ids != _UNSEEN).all(axis=1)
                table[:-1][known[:-1]] = ids[known[:-1]]
            kept = self._through[id(entries)] = (entries, table, known)
        _, table, known = kept
        index = np.asarray(index, dtype=np.int64)
        new = index[~known[index]]
        if len(new):
            new = list(dict.fromkeys(new.tolist()))  # distinct, in order of first appearance
            table[new] = ids_of([entries[k] for k in new])
            known[new] = True
        return table[index]

    def audit_between(self, lo: int, hi: int) -> AuditRows:
        """Audit rows with ``lo < seq <= hi`` in log order. Two texts of numbers, not one per
        column: most of a rebuild is SQLite turning values into text, so the event's row, its new
        state (coded in SQL) and whether the action is a rework travel packed in one integer
        (``row << 5 | state << 1 | rework``; state 15: unknown)."""
        return self._audit(self._audit_sql.format(rows="audit WHERE seq > ? AND seq <= ?"), (lo, hi))

    def audit_of(self, seqs: Sequence[int], hi: int) -> AuditRows:
        """The audit rows with ``seq <= hi`` of some events: each event's in log order."""
        rows = ("(SELECT * FROM audit WHERE event_seq IN (SELECT value FROM json_each(?)) AND seq <= ? "
                "ORDER BY event_seq, seq)")
        return self._audit(self._audit_sql.format(rows=rows), (json.dumps([int(s) for s in seqs]), hi))

    def _audit(self, sql: str, params: tuple) -> AuditRows:
        n, at, packed = self._conn.execute(sql, params).fetchone()
        packed = _ints(packed, n)
        state = (packed >> 1) & 15
        return AuditRows(packed >> 5, _ints(at, n), np.where(state == 15, -1, state), packed & 1)

    def escalations_between(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(event row, stage index) of escalation rows with ``lo < seq <= hi``."""
        n, rows, stages = self._conn.execute(
            "SELECT count(*), group_concat(event_seq - 1), group_concat(stage, '\x1f') "
            "FROM escalations WHERE seq > ? AND seq <= ?",
            (lo, hi),
        ).fetchone()
        return _ints(rows, n), _encode_with({s: k for k, s in enumerate(STAGES)}, stages, n)


def _encode_with(ids: dict[str, int], text: str | None, n: int, grow: list[str] | None = None) -> np.ndarray:
    """Ids of ``n`` unit-separated strings under ``ids`` ('' and unknown: -1; with ``grow``, an
    unknown string gets the next id and is appended to it). Split and encoded by Arrow in C: only
    the distinct strings reach Python."""
    if n == 0 or text is None:
        return np.empty(0, dtype=np.int64)
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pc.split_pattern(pa.array([text]), "\x1f").flatten()
    if len(values) != n:
        raise RuntimeError(f"read {len(values)} values where {n} were expected")
    encoded = values.dictionary_encode()
    return _table(ids, encoded.dictionary.to_pylist(), grow)[encoded.indices.to_numpy(zero_copy_only=False)]


#: The id :func:`_table` can give a code not in its dictionary (where the caller asks to tell it from NULL).
_UNSEEN = -2
#: Strings :func:`_table` looks up one by one (fewer than numpy's per-call cost is worth).
_FEW = 32


def _id_of(ids: dict, value, grow: list | None, unknown: int) -> int:
    """:func:`_table` of one string."""
    found = ids.get(value)
    if found is not None:
        return found
    if not value:
        return -1
    if grow is None:
        return unknown
    ids[value] = len(grow)
    grow.append(value)
    return ids[value]


def _table(ids: dict, strings: Sequence, grow: list | None = None, unknown: int = -1) -> np.ndarray:
    """Ids of strings under ``ids`` (None and '': -1; unknown:
    ``unknown``; with ``grow``, an unknown one gets the next id and is appended to it, in order of
    first appearance). One C pass looks every string up; Python sees only those not found."""
    if len(strings) <= _FEW:  # a catch-up's few new entries: numpy's calls would cost more than the loop
        return np.array([_id_of(ids, value, grow, unknown) for value in strings], dtype=np.int64)
    out = np.fromiter(map(ids.get, strings, repeat(unknown)), dtype=np.int64, count=len(strings))
    if unknown != -1:
        for k in np.flatnonzero(out == unknown).tolist():
            if not strings[k]:
                out[k] = -1
    if grow is not None and (out < 0).any():
        at = np.flatnonzero(out < 0)
        missing = list(map(strings.__getitem__, at.tolist()))
        for value in dict.fromkeys(missing):
            if value and value not in ids:
                ids[value] = len(grow)
                grow.append(value)
        out[at] = np.fromiter(map(ids.get, missing, repeat(-1)), dtype=np.int64, count=len(missing))
    return out


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
