"""The columnar mirror of the event store: one row per event (row = seq - 1), numpy columns the
tally kernels read.

It is derived state. It is rebuilt from the store when made and caught up from the store's own
logs before every query (:meth:`EventMirror.catch_up`): the audit log (every lifecycle action,
relocation, re-grid and intake writes a row, with a global sequence number) says which events
changed since the last catch-up, those events' present columns are read again, and the new audit
rows are folded into the lifecycle columns (registered, dispatched, reworked, working time per
stage, receipt to closure); the escalations log gives the 督办 of each stage. One read transaction
per catch-up, so a query sees whole commits, and a query that starts after a commit returned sees
it. Nothing is ever written back.

A rebuild (a long catch-up) reads through :mod:`~citygrid.engine.analytics.store_scan` where it
can: the events on a scan whose read transaction sees the same commit as the mirror's connection,
the audit log (only ever appended) in chunks on a thread of its own, and on the catching-up thread
too once the events are read, so both cores read; each chunk is folded into the new events'
lifecycle columns (in log order) as soon as it and those before it are read, and let go.

The columns are as narrow as their values allow, checked as they are written: code rows int16
while every dictionary's ids fit (int32 after), deadlines only for the open events that have one
(the only ones a count reads), receipt to closure and the four stages as int64 working µs; what a
replay needs of an event between audit rows (first and last working µs, last state) is kept only
while replaying, and an older event with new audit rows has its lifecycle made again from its whole
history. Positions are not kept: a heatmap reads them from the store and keeps a bounded number of
H3 cells. At 10 M events of the bench the columns take 649 MiB (68 bytes an event).

With a day cube (``cube_offset_us``, :mod:`~citygrid.engine.analytics.cube`), every catch-up takes
the events about to change out of their slots before their columns are read again and puts them
(and the new events) back after, so the cube's sums stay those of the events as they are now.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from citygrid.engine.analytics import source, store_scan
from citygrid.engine.analytics.cube import DayCube, Numbering, distinct, room_for
from citygrid.kernels import tally

#: Events per block of the report-time zone map (a query skips blocks outside its window).
BLOCK = 4096
#: Audit rows beyond which a catch-up (a rebuild) reads the log on a second connection and thread
#: (and, once the events are read, on the catching-up thread too), and audit rows per read.
ASIDE_AUDIT_ROWS = AUDIT_CHUNK = 4 * source.CHUNK
#: New events beyond which a catch-up (a rebuild) reads them through a Scan, and how many per read.
SCAN_EVENTS, SCAN_CHUNK = source.CHUNK, 1_000_000
#: Escalation rows beyond which a catch-up reads them through a Scan.
SCAN_ESCALATIONS = 10_000
#: Most events of handed inserts kept waiting for a catch-up (beyond: dropped, read from the store then).
HANDED_EVENTS = 200_000
#: Longest a catch-up waits for an insert it sees committed to be handed over (seconds), in polls.
HAND_OVER_WAIT, HAND_OVER_POLLS = 0.01, 20
_NEVER = np.iinfo(np.int64).min
#: Events whose H3 cells are kept, per resolution (12 bytes each: about a month of the 10 M bench's events).
H3_KEPT = 200_000
_NO_ROWS, _NO_NUMBERS = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int32)
#: A kept H3 cell of an event without a position (no H3 index is 1: its mode bits are never 0).
_UNPLACED = np.uint64(1)
#: An audit chunk already folded (and let go).
_FOLDED = source.AuditRows(*(np.empty(0, np.int64),) * 4)


def _outside(rows: np.ndarray, ranges: list[tuple[int, int]]) -> np.ndarray:
    """The rows outside every range ``lo <= row < hi``."""
    keep = np.ones(len(rows), dtype=np.bool_)
    for lo, hi in ranges:
        keep &= (rows < lo) | (rows >= hi)
    return rows[keep]


def _read_audit(reader: source.StoreReader, lo: int, hi: int) -> list[source.AuditRows]:
    """Audit rows with ``lo < seq <= hi``, in log order, in chunks."""
    return [reader.audit_between(a, min(a + AUDIT_CHUNK, hi)) for a in range(lo, hi, AUDIT_CHUNK)]


def _rows_of(audit: source.AuditRows, keep: np.ndarray) -> source.AuditRows:
    """The audit rows where ``keep``."""
    return source.AuditRows(audit.row[keep], audit.at[keep], audit.to_state[keep], audit.rework[keep])


class _Replay:
    """Folds audit rows (each event's in log order) into the mirror's lifecycle columns of some events:
    the rows ``lo`` … ``lo + n - 1`` (``rows`` None) or the sorted ``rows``. What a replay needs of an
    event (its first and last working µs and last state) is kept only while replaying: 17 bytes an
    event that no count reads."""

    def __init__(self, mirror: "EventMirror", lo: int, n: int, rows: np.ndarray | None = None):
        self.mirror, self.lo, self.rows = mirror, lo, rows
        self.first, self.last = np.zeros(n, np.int64), np.zeros(n, np.int64)
        self.last_state = np.full(n, -1, np.int8)

    def fold(self, audit: source.AuditRows) -> None:
        if not len(audit.row):
            return
        m = self.mirror
        at = audit.row - self.lo if self.rows is None else np.searchsorted(self.rows, audit.row)
        tally.replay_audit(audit.row, at, source.worked_us(m.schedule, audit.at),
                           audit.to_state.astype(np.int8, copy=False), audit.rework.astype(np.int8, copy=False),
                           self.first, self.last, self.last_state, m.flags, m.stage_us, m.close_us)


class _AuditAside:
    """The audit rows with ``lo < seq <= hi`` read in chunks on a thread and a read connection of its
    own (a :class:`~citygrid.engine.analytics.store_scan.Scan` where there is one) while the caller
    reads the events; :meth:`result` has the caller read the chunks not yet taken on a connection of
    its own too. Audit rows are only ever appended, so those up to ``hi`` are the same on any read.

    The rows of the events ``events`` (``(lo, hi)``: rows ``lo <= row < hi``) are folded into their
    lifecycle columns by ``fold`` (a :class:`_Replay`'s, whose columns the caller does not write
    meanwhile) as soon as the chunks before theirs are, by whichever thread read the last of them (the
    replay's kernel runs without the GIL beside the other thread's reading), and each chunk is let go
    once folded; :meth:`result` returns the rows of other events, whose columns changed."""

    def __init__(self, data_dir, lo: int, hi: int, events: tuple[int, int], fold):
        self._data_dir = data_dir
        self._chunks = [(a, min(a + AUDIT_CHUNK, hi)) for a in range(lo, hi, AUDIT_CHUNK)]
        self._rows: list[source.AuditRows | None] = [None] * len(self._chunks)
        self._events, self._fold = events, fold
        self._folded = 0
        self._others: list[np.ndarray] = []
        self._taken = 0
        self._lock = threading.Lock()
        self._fold_lock = threading.Lock()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="analytics-audit", daemon=True)
        self._thread.start()

    def _take(self) -> int | None:
        with self._lock:
            k, self._taken = self._taken, self._taken + 1
        return k if k < len(self._chunks) else None

    def _fold_read(self, wait: bool = False) -> None:
        """Fold the chunks read, in order, up to the first not yet read; a thread that finds another
        folding leaves it to that one (or to :meth:`result`)."""
        if not self._fold_lock.acquire(blocking=wait):
            return
        try:
            lo, hi = self._events
            while self._folded < len(self._chunks) and self._rows[self._folded] is not None:
                audit = self._rows[self._folded]
                inside = (audit.row >= lo) & (audit.row < hi)
                self._others.append(audit.row[~inside])
                self._fold(audit if inside.all() else _rows_of(audit, inside))
                self._rows[self._folded] = _FOLDED
                self._folded += 1
        finally:
            self._fold_lock.release()

    def _work(self) -> None:
        """Read chunks until none is left."""
        k = self._take()
        if k is None:
            return
        if store_scan.available():
            scan = store_scan.Scan(source.database_path(self._data_dir))
            read, close = (lambda a, b: store_scan.audit_between(scan, a, b)), scan.close
        else:
            reader = source.StoreReader(self._data_dir)
            read, close = reader.audit_between, reader.close
        try:
            while k is not None:
                self._rows[k] = read(*self._chunks[k])
                self._fold_read()
                k = self._take()
        finally:
            close()

    def _run(self) -> None:
        try:
            self._work()
        except BaseException as error:  # handed to the caller of result()
            self._error = error

    def result(self) -> list[np.ndarray]:
        """The rows (of audit rows) of events outside ``events``, once every chunk is read and folded."""
        try:
            self._work()
        finally:
            self._thread.join()
        if self._error is not None:
            raise self._error
        self._fold_read(wait=True)
        return self._others


class EventMirror:
    """Columns of every event of a data directory's store, kept current by :meth:`catch_up`."""

    def __init__(self, data_dir, vocabulary: source.Vocabulary, schedule: source.WorkSchedule, *,
                 cube_offset_us: int | None = None):
        self.vocabulary = vocabulary
        self.schedule = schedule
        self.data_dir = data_dir
        self.reader = source.StoreReader(data_dir)
        self._class_table = np.empty(0, dtype=np.int32)
        self.lock = threading.RLock()
        self.n = 0
        self._cursor = (0, 0, 0)
        self._data_version = None
        #: Grows with every catch-up that changed the columns (an answer counted at another is stale).
        self.generation = 0
        #: resolution -> kept (rows, the numbers of their cells), and the cells met so far
        self._h3: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._h3_met: dict[int, H3Cells] = {}
        #: Width of the code rows: int16 while every dictionary's ids fit, widened when one outgrows it.
        self.code_dtype = np.dtype(np.int16)
        #: Rows of the open events with a deadline (sorted) and their deadlines: the only events whose
        #: deadline a count reads ("overdue now"), a few next to all.
        self.open_rows = np.empty(0, dtype=np.int64)
        self.open_due = np.empty(0, dtype=np.int64)
        #: The arrays :attr:`open_rows` and :attr:`open_due` are the first entries of (room to append).
        self._open_room = (self.open_rows, self.open_due)
        self._allocate(0)
        self.rebuild_seconds = 0.0
        #: Inserts handed on by the intake since the last catch-up (:meth:`hand_over`), and their events.
        self._handed: list[source.HandedInsert] = []
        self._handed_events = 0
        self._handed_lock = threading.Lock()
        #: Whether an intake hands its inserts over (:meth:`hand_over` is its listener).
        self.follows_intake = False
        #: Per-day sums kept at catch-up (local days under this UTC offset), None: none kept.
        self.cube = None if cube_offset_us is None else DayCube(cube_offset_us)

    # ------------------------------------------------------------------ storage

    def _allocate(self, capacity: int) -> None:
        self.capacity = capacity
        self.occurred = np.full(capacity, _NEVER, dtype=np.int64)
        self.codes = np.full((len(source.CODE_ROWS), capacity), -1, dtype=self.code_dtype)
        self.flags = np.zeros(capacity, dtype=np.uint16)
        self.close_us = np.zeros(capacity, dtype=np.int64)
        self.stage_us = np.zeros((4, capacity), dtype=np.int64)
        n_blocks = -(-capacity // BLOCK)
        self.block_lo = np.full(n_blocks, np.iinfo(np.int64).max, dtype=np.int64)
        self.block_hi = np.full(n_blocks, _NEVER, dtype=np.int64)

    def _grow(self, n: int) -> None:
        if n <= self.capacity:
            return
        old = {name: getattr(self, name) for name in self._COLUMNS}
        self._allocate(room_for(n, self.capacity, 16 * BLOCK))
        for name, values in old.items():
            getattr(self, name)[..., : values.shape[-1]] = values

    _COLUMNS = ("occurred", "codes", "flags", "close_us", "stage_us", "block_lo", "block_hi")

    @property
    def nbytes(self) -> int:
        """Memory of the columns (allocated capacity included), the kept H3 cells and the day cube."""
        return (sum(getattr(self, name).nbytes for name in self._COLUMNS) + sum(r.nbytes + c.nbytes for r, c in self._h3.values())
                + sum(met.nbytes for met in self._h3_met.values())
                + sum(a.nbytes for a in self._open_room)
                + (self.cube.nbytes if self.cube else 0))

    def _fit_codes(self) -> None:
        """Widen the code rows to int32 before an id that int16 cannot hold is written (ids run from
        -1 to the longest dictionary's length - 1; the class ids are the vocabulary's)."""
        longest = max(max(len(codes) for codes in self.reader.codes.values()), len(self.vocabulary.classes))
        if longest - 1 > np.iinfo(self.code_dtype).max:
            self.code_dtype = np.dtype(np.int32)
            self.codes = self.codes.astype(self.code_dtype)

    # ------------------------------------------------------------------ reading the store

    def current(self) -> bool:
        """Whether no other connection has committed since the last catch-up (SQLite's ``data_version``
        has not moved), so :meth:`catch_up` would read nothing; asks the store nothing else. Under
        :attr:`lock`."""
        return self._data_version is not None and self.reader.data_version() == self._data_version

    def hand_over(self, committed: source.CommittedEvents) -> None:
        """Keep the rows of a committed insert (the intake's :meth:`on_inserted
        <citygrid.engine.cases.intake.Intake.on_inserted>`, called in commit order by the committing
        thread) for the next catch-up (a query's, a refresh's), which takes them from memory instead
        of reading them back where they follow on from what it has. Never waits for the mirror's
        lock, and leaves the catch-up's work off the committing thread.
        """
        handed = source.HandedInsert.of(committed)
        with self._handed_lock:
            if self._handed_events + len(committed.events) > HANDED_EVENTS:  # no catch-up for long: read them then
                self._handed, self._handed_events = [], 0
            self._handed.append(handed)
            self._handed_events += len(committed.events)

    def _await_hand_over(self, last_event: int) -> None:
        """When the mirror follows an intake and this read sees events no insert has handed over
        yet, wait a little (without the GIL) for the hand-over: the intake hands an insert on just
        after its commit, and a catch-up that reads in between would read the insert back from the
        store (about 5 ms of the GIL a time in the intake bench). Events of another writer are read
        after the wait (:data:`HAND_OVER_WAIT`)."""
        if not self.follows_intake:
            return
        for _ in range(HAND_OVER_POLLS):
            with self._handed_lock:
                handed_until = self._handed[-1].last_seq if self._handed else self.n
            if handed_until >= last_event:
                return
            time.sleep(HAND_OVER_WAIT / HAND_OVER_POLLS)

    def _take_handed(self, cursor: tuple) -> list[source.HandedInsert]:
        """The handed inserts this catch-up takes, in order: those inside this read's commit and after
        what the mirror has (each after the one before; the events and audit rows between them are
        read from the store). Those committed after this read began are kept for the next one, those
        the mirror already has are dropped."""
        last_event, last_audit, _ = cursor
        with self._handed_lock:
            pending, self._handed, self._handed_events = self._handed, [], 0
        taken, later = [], []
        event, audit = self.n, self._cursor[1]
        for handed in pending:
            if handed.last_seq > last_event or handed.last_audit > last_audit:
                later.append(handed)
            elif handed.first_seq > event and handed.first_audit > audit:
                taken.append(handed)
                event, audit = handed.last_seq, handed.last_audit
        if later:
            with self._handed_lock:
                self._handed[:0] = later
                self._handed_events += sum(h.last_seq - h.first_seq + 1 for h in later)
        return taken

    def catch_up(self) -> bool:
        """Bring the mirror to the store's last commit; returns whether anything changed. When no
        other connection has committed since the last catch-up (SQLite's ``data_version`` of the
        mirror's connection has not moved) there is nothing to read and the store is not asked.
        The intake's inserts handed on (:meth:`hand_over`) are taken from memory; everything else
        in the commit (other writers, lifecycle actions, relocations, escalations) is read."""
        with self.lock:
            r = self.reader
            version = r.data_version()
            if version == self._data_version:
                return False
            r.begin()
            try:
                cursor = tuple(r.cursors())
                self._data_version = version
                if cursor == self._cursor:
                    return False
                last_event, last_audit, last_escalation = cursor
                known = self.n
                first_block = known // BLOCK
                self._await_hand_over(last_event)
                handed = self._take_handed(cursor)
                new = None
                placed: list[tuple[np.ndarray, np.ndarray]] = []  # (rows, slots) of new events placed as read
                if last_audit - self._cursor[1] > ASIDE_AUDIT_ROWS:
                    # A long stretch of the log (a rebuild) is read on a connection of its own while this
                    # one reads the events: SQLite makes its texts without the GIL, and audit rows are
                    # only ever appended, so those up to this read's last one are the same on any later read.
                    # The new events' rows are folded into their lifecycle as they come.
                    self._grow(last_event)
                    if self.cube is not None:
                        self.cube.placing = True
                    new = _Replay(self, known, last_event - known)
                    aside = _AuditAside(self.data_dir, self._cursor[1], last_audit, (known, last_event), new.fold)
                    if last_event > known:
                        self._read_new_events(known, last_event, cursor, placed)
                        self.n = last_event
                    others = aside.result()
                    audit_rows = []
                    changed = distinct(np.concatenate(others)) if others else np.empty(0, np.int64)
                else:
                    audit_rows, read, read_events = self._take_in(handed, cursor)
                    # Events that changed since their columns were set: those of audit rows read from the
                    # store, except the events read from the store in this catch-up (as they are now).
                    changed = distinct(np.concatenate([_outside(a.row, read_events) for a in read])) if read else \
                        np.empty(0, np.int64)
                escalated = (self._read_escalations(self._cursor[2], last_escalation)
                             if last_escalation > self._cursor[2] else None)
                if self.cube is not None:
                    moved = changed[changed < known]
                    if escalated is not None:
                        moved = np.union1d(moved, escalated[0][escalated[0] < known])
                    self.cube.withdraw(moved, self)
                for lo in range(0, len(changed), source.CHUNK):
                    self._set_events(r.events_of((changed[lo : lo + source.CHUNK] + 1).tolist()))
                # New events (handed ones read again included) have their whole history in audit_rows.
                self._replay(audit_rows, known, changed[changed < known], last_audit, new)
                if escalated is not None:
                    tally.mark_escalations(*escalated, self.flags)
                tally.block_ranges(self.occurred, self.n, BLOCK, self.block_lo, self.block_hi, first_block)
                if self.cube is not None:
                    self._deposit(moved, known, placed)
                self._cursor = cursor
                self.generation += 1
                return True
            finally:
                r.end()

    def _take_in(self, handed: list, cursor: tuple):
        """Set the columns of the new events up to ``cursor``: the handed inserts' from memory, the
        others read from the store. Returns the audit rows up to ``cursor`` in log order (handed
        and read), those read, and the event ranges ``(lo, hi)`` (rows ``lo <= row < hi``) read."""
        r = self.reader
        last_event, last_audit, _ = cursor
        event, audit = self.n, self._cursor[1]
        audit_rows, read, read_events = [], [], []
        self._grow(last_event)

        def read_up_to(event_hi: int, audit_hi: int) -> None:
            if event_hi > event:
                self._read_new_events(event, event_hi, cursor)
                read_events.append((event, event_hi))
            if audit_hi > audit:
                between = _read_audit(r, audit, audit_hi)
                read.extend(between)
                audit_rows.extend(between)

        taken = []  # the handed inserts' columns, set together (one pass over the open list)
        for run in source.HandedInsert.runs(handed):  # an insert's audit rows are its events' reports only
            read_up_to(run[0].first_seq - 1, run[0].first_audit - 1)
            events, own = r.committed_rows(run)  # after the reads before it: codes added in store order
            taken.append(events)
            audit_rows.append(own)
            event, audit = run[-1].last_seq, run[-1].last_audit
        if taken:
            self._set_events(taken[0] if len(taken) == 1 else source.EventRows.joined(taken))
        read_up_to(last_event, last_audit)
        self.n = max(self.n, last_event)
        return audit_rows, read, read_events

    def _read_new_events(self, known: int, last_event: int, cursor: tuple, placed: list | None = None) -> None:
        """Columns of the events after ``known``. Many (a rebuild) are read through a
        :class:`~citygrid.engine.analytics.store_scan.Scan` that sees the same commit as the
        mirror's connection (when it sees another, through the mirror's connection). With
        ``placed``, each read's events are placed in the day cube's slots as they come (their
        placing columns are final: they are new), their (rows, slots) appended to it."""
        r = self.reader

        def take(rows: source.EventRows) -> None:
            self._set_events(rows)
            if placed is not None and self.cube is not None and len(rows.row):
                slots = self.cube.place(rows.row, self)
                if slots is not None:
                    placed.append((rows.row, slots))

        if last_event - known > SCAN_EVENTS and store_scan.available():
            scan = store_scan.Scan(source.database_path(self.data_dir))
            try:
                if scan.begin(cursor):
                    for lo in range(known, last_event, SCAN_CHUNK):
                        take(store_scan.events_between(scan, r, lo, min(lo + SCAN_CHUNK, last_event)))
                    scan.end()
                    return
                scan.end()
            finally:
                scan.close()
        for lo in range(known, last_event, source.CHUNK):
            take(r.events_between(lo, min(lo + source.CHUNK, last_event)))

    def _deposit(self, moved: np.ndarray, known: int, placed: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Put the events that moved and the new ones (rows ``known`` on) into the day cube's slots,
        with the slots the new ones were placed in as they were read when that placed them all."""
        new = np.arange(known, self.n, dtype=np.int64)
        rows = np.concatenate([p[0] for p in placed]) if placed else new[:0]
        if len(new) and np.array_equal(rows, new):
            self.cube.deposit(moved, self)
            self.cube.deposit(new, self, np.concatenate([p[1] for p in placed]))
        else:
            self.cube.deposit(np.concatenate([moved, new]), self)
        if self.cube.placing:
            self.cube.trim()  # the room its growing by half left

    def _read_escalations(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Escalation rows with ``lo < seq <= hi``; many through a Scan (they are only ever appended,
        so those up to this read's last one are the same on any later read)."""
        if hi - lo > SCAN_ESCALATIONS and store_scan.available():
            scan = store_scan.Scan(source.database_path(self.data_dir))
            try:
                return store_scan.escalations_between(scan, lo, hi)
            finally:
                scan.close()
        return self.reader.escalations_between(lo, hi)

    def _set_events(self, rows: source.EventRows) -> None:
        i = rows.row
        if not len(i):
            return
        self._fit_codes()
        self.occurred[i] = rows.occurred
        self._follow_open(i, rows.state, rows.deadline)
        codes = self.codes
        t = rows.text_ids
        codes[0, i] = t[0]
        codes[1, i] = self._class_ids()[t[0] + 1]
        codes[2, i] = t[1]
        codes[3, i] = rows.state
        codes[4, i] = t[2]
        codes[5:9, i] = t[3:7]
        for resolution, (kept_rows, kept_numbers) in list(self._h3.items()):
            keep = ~np.isin(kept_rows, i)
            self._h3[resolution] = (kept_rows[keep], kept_numbers[keep])

    def _follow_open(self, rows: np.ndarray, state: np.ndarray, due: np.ndarray) -> None:
        """Keep :attr:`open_rows` and :attr:`open_due` as events are read: of ``rows`` (distinct),
        drop those listed and list those open with a deadline (-1: none)."""
        n = len(self.open_rows)
        if n and len(rows) and rows.min() <= self.open_rows[-1]:  # events listed or before them: one merge
            self.open_rows, self.open_due = tally.follow_open(self.open_rows, self.open_due, rows, state, due)
            self._open_room = (self.open_rows, self.open_due)
            return
        # New events after every one listed (the intake's): their open ones appended, into room kept
        # for them (the list is not copied at every catch-up).
        added, added_due = tally.follow_open(self.open_rows[:0], self.open_due[:0], rows, state, due)
        room_rows, room_due = self._open_room
        if n + len(added) > len(room_rows):
            size = room_for(n + len(added), len(room_rows), 4096)
            room_rows, room_due = np.empty(size, np.int64), np.empty(size, np.int64)
            room_rows[:n], room_due[:n] = self.open_rows, self.open_due
            self._open_room = (room_rows, room_due)
        room_rows[n : n + len(added)], room_due[n : n + len(added)] = added, added_due
        self.open_rows, self.open_due = room_rows[: n + len(added)], room_due[: n + len(added)]

    def _class_ids(self) -> np.ndarray:
        """Class id (index into the vocabulary's classes) of each category id, shifted by one (-1 first);
        made again only when the category dictionary has grown (it only ever grows)."""
        categories = self.reader.codes["category_code"]
        if len(self._class_table) != len(categories) + 1:
            classes = {code: k for k, code in enumerate(self.vocabulary.classes)}
            self._class_table = np.array([-1] + [classes.get(self.vocabulary.class_of(c), -1) for c in categories],
                                         dtype=np.int32)
        return self._class_table

    def _replay(self, audit_rows: list[source.AuditRows], known: int, changed: np.ndarray, last_audit: int,
                new: _Replay | None = None) -> None:
        """Fold the audit log into the lifecycle columns of the new events (rows from ``known`` on:
        all their audit rows are in this catch-up's ``audit_rows``, or were folded by ``new``) and
        make those of the ``changed`` older ones again from their whole history up to ``last_audit``."""
        if len(changed):
            self.flags[changed] &= tally.F_ESCALATIONS  # the escalations log's bits stay
            self.stage_us[:, changed] = 0
            self.close_us[changed] = 0
            again = _Replay(self, 0, len(changed), changed)
            for lo in range(0, len(changed), source.CHUNK):
                again.fold(self.reader.audit_of((changed[lo : lo + source.CHUNK] + 1).tolist(), last_audit))
        new = new or _Replay(self, known, self.n - known)
        for audit in audit_rows:
            new.fold(audit if known == 0 else _rows_of(audit, audit.row >= known))

    def positions(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 (lng, lat) of some events (NaN: not placed), read from the store (under the lock,
        after a catch-up; kept as no column: a heatmap keeps the H3 cells it made)."""
        distinct, back = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
        lng, lat = np.full(len(distinct), np.nan), np.full(len(distinct), np.nan)
        if len(distinct):
            self.reader.begin()
            try:
                for lo in range(0, len(distinct), source.CHUNK):
                    at, x, y = self.reader.positions_of((distinct[lo : lo + source.CHUNK] + 1).tolist())
                    k = np.searchsorted(distinct, at)
                    lng[k], lat[k] = x, y
            finally:
                self.reader.end()
        back = back.reshape(-1)
        return lng[back], lat[back]

    def h3_cells(self, rows: np.ndarray, resolution: int) -> tuple[np.ndarray, "H3Cells"]:
        """H3 cells of some events at a resolution: the numbers of their cells among the cells met
        (:class:`H3Cells`, also returned), made once per event and kept until the event moves, for
        at most :data:`H3_KEPT` events per resolution (sorted rows and their numbers; when a query's
        new cells do not fit beside those kept, those are forgotten; cells that alone exceed the
        budget are made and not kept). Under the lock, after a catch-up."""
        import h3

        rows = np.asarray(rows, dtype=np.int64)
        met = self._h3_met.setdefault(resolution, H3Cells())
        kept_rows, kept_numbers = self._h3.get(resolution, (_NO_ROWS, _NO_NUMBERS))
        if not len(rows):
            return _NO_NUMBERS, met
        lo = int(np.searchsorted(kept_rows, rows[0]))
        if lo + len(rows) <= len(kept_rows) and np.array_equal(kept_rows[lo : lo + len(rows)], rows):
            return kept_numbers[lo : lo + len(rows)], met  # a window's rows as a run of those kept: no search each
        at = np.minimum(np.searchsorted(kept_rows, rows), max(len(kept_rows) - 1, 0))
        known = kept_rows[at] == rows if len(kept_rows) else np.zeros(len(rows), np.bool_)
        if known.all():
            return kept_numbers[at], met
        missing = np.unique(rows[~known])
        lng, lat = self.positions(missing)
        to_cell = h3.api.basic_int.latlng_to_cell
        made = met.number(np.array([_UNPLACED if x != x else to_cell(y, x, resolution)
                                    for x, y in zip(lng.tolist(), lat.tolist())], dtype=np.uint64))
        found = np.empty(len(rows), dtype=np.int32)
        found[known] = kept_numbers[at[known]]
        found[~known] = made[np.searchsorted(missing, rows[~known])]
        if len(missing) <= H3_KEPT:
            if len(kept_rows) + len(missing) > H3_KEPT:
                kept_rows, kept_numbers = _NO_ROWS, _NO_NUMBERS
            where = np.searchsorted(kept_rows, missing)
            self._h3[resolution] = (np.insert(kept_rows, where, missing), np.insert(kept_numbers, where, made))
        return found, met

    def close(self) -> None:
        with self.lock:
            self.reader.close()


class H3Cells:
    """The distinct H3 cells of one resolution met so far (a district has a few thousand, tens of
    thousands at resolution 10), numbered densely in order of first meeting, with h3-py's string id
    of each and the numbers of the placed ones in cell order: a heatmap counts an event's number,
    where sorting the window's cells took most of its time."""

    def __init__(self):
        self._numbering = Numbering(np.uint64)
        self.cells = np.empty(0, dtype=np.uint64)  #: by number (:data:`_UNPLACED`: events without a position)
        self.labels: list[str] = []  #: by number: the cell's integer in lower-case hex (h3.int_to_str)
        self.order = np.empty(0, dtype=np.int64)  #: numbers of the placed cells, in cell order

    def number(self, cells: np.ndarray) -> np.ndarray:
        """The numbers of cells (any order, repeats allowed; new ones numbered next, in cell order)."""
        numbers, fresh = self._numbering.number(cells)
        if len(fresh):
            new = cells[fresh]  # each new cell once, in cell order: the order of their numbers
            self.cells = np.concatenate([self.cells, new])
            self.labels += [f"{c:x}" for c in new.tolist()]
            placed = np.flatnonzero(self.cells != _UNPLACED)
            self.order = placed[np.argsort(self.cells[placed])]
        return numbers.astype(np.int32)

    @property
    def nbytes(self) -> int:
        return self._numbering.nbytes + self.cells.nbytes + self.order.nbytes + 64 * len(self.labels)
