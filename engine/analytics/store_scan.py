"""Long reads of the store (a rebuild) without a Python object per value: a compiled loop steps a
SQLite statement through the C library the ``sqlite3`` module itself uses, and puts each row's
integers into numpy columns and each text into a dictionary of its column (exact: bytes compared,
not only hashed), so only the distinct texts ever reach Python.

The mirror reads events and audit rows this way when a catch-up has many of them (a rebuild); the
few rows of an ordinary catch-up still come through :class:`~citygrid.engine.analytics.source.StoreReader`.
A :class:`Scan` is a read-only connection of its own; :meth:`Scan.begin` opens its read transaction
and says whether it sees the same commit as the mirror's connection (the same last sequence number
of events, audit and escalations: every commit that changes an event appends audit rows), so a
rebuild read on several connections in parallel threads is still one commit's data.

When the process's ``sqlite3`` module is not linked to a shared ``libsqlite3`` (a second copy of the
library in one process would break SQLite's file locks), :func:`available` is False and the mirror
reads everything through the ``sqlite3`` module.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
from numba import njit

from citygrid.engine.analytics import source

_ROW, _DONE = 100, 101
_OPEN_READONLY, _OPEN_NOMUTEX = 0x1, 0x8000
#: Scan statuses besides a row count.
_GROW, _FAILED, _GROW_ROW = -1, -2, -3


def _library_path() -> str | None:
    """Path of the shared libsqlite3 the ``sqlite3`` module is linked to (None: none mapped)."""
    import sqlite3  # noqa: F401 - maps the library into the process

    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                parts = line.split()
                if len(parts) >= 6 and Path(parts[-1]).name.startswith("libsqlite3.so"):
                    return parts[-1]
    except OSError:
        return None
    return None


_PATH = _library_path()
_lib = ctypes.CDLL(_PATH) if _PATH else None


def available() -> bool:
    return _lib is not None


if _lib is not None:
    _c = ctypes
    _lib.sqlite3_open_v2.argtypes = [_c.c_char_p, _c.POINTER(_c.c_void_p), _c.c_int, _c.c_char_p]
    _lib.sqlite3_close_v2.argtypes = [_c.c_void_p]
    _lib.sqlite3_busy_timeout.argtypes = [_c.c_void_p, _c.c_int]
    _lib.sqlite3_errmsg.argtypes = [_c.c_void_p]
    _lib.sqlite3_errmsg.restype = _c.c_char_p
    _lib.sqlite3_prepare_v2.argtypes = [_c.c_void_p, _c.c_char_p, _c.c_int, _c.POINTER(_c.c_void_p),
                                        _c.POINTER(_c.c_void_p)]
    _lib.sqlite3_bind_int64.argtypes = [_c.c_void_p, _c.c_int, _c.c_int64]
    _lib.sqlite3_finalize.argtypes = [_c.c_void_p]
    _step = _lib.sqlite3_step
    _step.argtypes, _step.restype = [_c.c_void_p], _c.c_int
    _int64 = _lib.sqlite3_column_int64
    _int64.argtypes, _int64.restype = [_c.c_void_p, _c.c_int], _c.c_int64
    _text = _lib.sqlite3_column_blob  # no copy to end the text with a NUL
    _text.argtypes, _text.restype = [_c.c_void_p, _c.c_int], _c.POINTER(_c.c_uint8)
    _bytes = _lib.sqlite3_column_bytes
    _bytes.argtypes, _bytes.restype = [_c.c_void_p, _c.c_int], _c.c_int

    @njit(nogil=True)
    def _scan(stmt, n_ints, ints, texts, table, offs, lens, count, buf, used, start, stepped):
        """Step ``stmt`` from row ``start`` (``stepped``: that row is already stepped to, and read again):
        its first ``n_ints`` columns into ``ints``, the next ``texts.shape[0]`` as dictionary ids into
        ``texts`` (-1: NULL or empty). Each text column's dictionary is an open-addressing ``table`` of
        ids (-1: empty) over the ids' bytes in ``buf``. Returns the rows done, :data:`_GROW` (after
        ``start`` + rows done, stored in ``count[n_texts]``) when a dictionary is full,
        :data:`_GROW_ROW` when a text of the current row (of ``count[n_texts + 1]`` bytes) does not fit
        (the row is read again once grown), :data:`_FAILED` when SQLite failed."""
        n = start
        n_texts = texts.shape[0]
        mask = table.shape[1] - 1
        cap_ids = offs.shape[1]
        cap_bytes = buf.shape[1]
        while True:
            for c in range(n_texts):
                if count[c] * 2 >= table.shape[1] or count[c] >= cap_ids or used[c] + 4096 > cap_bytes:
                    count[n_texts] = n
                    return _GROW
            if stepped:
                stepped = False
                rc = _ROW
            else:
                rc = _step(stmt)
            if rc == _DONE:
                return n
            if rc != _ROW:
                return _FAILED
            for j in range(n_ints):
                ints[j, n] = _int64(stmt, j)
            for c in range(n_texts):
                col = n_ints + c
                p = _text(stmt, col)
                k = _bytes(stmt, col)
                if k == 0:  # NULL or '', as the mirror takes both
                    texts[c, n] = -1
                    continue
                if used[c] + k > cap_bytes:  # a long text: grow, then read this row again
                    count[n_texts] = n
                    count[n_texts + 1] = k
                    return _GROW_ROW
                h = np.uint64(14695981039346656037)
                for i in range(k):
                    h = (h ^ np.uint64(p[i])) * np.uint64(1099511628211)
                slot = np.int64(h & np.uint64(mask))
                while True:
                    found = table[c, slot]
                    if found < 0:
                        found = count[c]
                        at = used[c]
                        for i in range(k):
                            buf[c, at + i] = p[i]
                        offs[c, found] = at
                        lens[c, found] = k
                        used[c] = at + k
                        count[c] = found + 1
                        table[c, slot] = found
                        break
                    if lens[c, found] == k:
                        at = offs[c, found]
                        same = True
                        for i in range(k):
                            if buf[c, at + i] != p[i]:
                                same = False
                                break
                        if same:
                            break
                    slot = (slot + 1) & mask
                texts[c, n] = found
            n += 1


class _Dictionaries:
    """The per-column dictionaries of one scan (grown by re-hashing when full)."""

    def __init__(self, n_texts: int, slots: int = 4096, ids: int = 2048, nbytes: int = 1 << 16):
        self.table = np.full((n_texts, slots), -1, np.int32)
        self.offs = np.zeros((n_texts, ids), np.int64)
        self.lens = np.zeros((n_texts, ids), np.int32)
        # then where a scan stopped to grow, and the length of the text it could not fit
        self.count = np.zeros(n_texts + 2, np.int64)
        self.buf = np.zeros((n_texts, nbytes), np.uint8)
        self.used = np.zeros(n_texts, np.int64)

    def values(self, c: int) -> list[str]:
        """Column ``c``'s distinct texts, by id (order of first appearance)."""
        buf, offs, lens = self.buf[c], self.offs[c], self.lens[c]
        return [bytes(buf[offs[i] : offs[i] + lens[i]]).decode() for i in range(int(self.count[c]))]

    def grow(self, text: int = 0) -> None:
        """Four times the room, and room for a text of ``text`` bytes besides the margin a row needs."""
        n_texts = self.table.shape[0]
        slots, ids, nbytes = self.table.shape[1] * 4, self.offs.shape[1] * 4, self.buf.shape[1] * 4
        while nbytes < int(self.used.max()) + text + 4096:
            nbytes *= 2
        table = np.full((n_texts, slots), -1, np.int32)
        for c in range(n_texts):
            for i, value in enumerate(self.values(c)):
                slot = _fnv(value.encode()) & (slots - 1)
                while table[c, slot] >= 0:
                    slot = (slot + 1) & (slots - 1)
                table[c, slot] = i
        self.table = table
        self.offs = _widened(self.offs, ids)
        self.lens = _widened(self.lens, ids)
        self.buf = _widened(self.buf, nbytes)


def _widened(a: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((a.shape[0], width), a.dtype)
    out[:, : a.shape[1]] = a
    return out


def _fnv(data: bytes) -> int:
    h = 14695981039346656037
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


class Scan:
    """A read-only connection to a store's database for long reads (see the module's notes)."""

    def __init__(self, db_path):
        if _lib is None:
            raise RuntimeError("no shared libsqlite3 in this process")
        handle = ctypes.c_void_p()
        rc = _lib.sqlite3_open_v2(str(db_path).encode(), ctypes.byref(handle), _OPEN_READONLY | _OPEN_NOMUTEX, None)
        self._db = handle.value
        if rc != 0:
            message = self._error()
            self.close()
            raise RuntimeError(f"cannot open {db_path}: {message}")
        _lib.sqlite3_busy_timeout(self._db, 30_000)

    def _error(self) -> str:
        return (_lib.sqlite3_errmsg(self._db) or b"").decode(errors="replace") if self._db else "out of memory"

    def close(self) -> None:
        if self._db:
            _lib.sqlite3_close_v2(self._db)
            self._db = None

    def _statement(self, sql: str, params: tuple = ()) -> int:
        stmt = ctypes.c_void_p()
        if _lib.sqlite3_prepare_v2(self._db, sql.encode(), -1, ctypes.byref(stmt), None) != 0:
            raise RuntimeError(f"{self._error()} in {sql}")
        for k, value in enumerate(params, start=1):
            _lib.sqlite3_bind_int64(stmt, k, int(value))
        return stmt.value

    def _run(self, sql: str) -> None:
        stmt = self._statement(sql)
        try:
            if _step(stmt) not in (_ROW, _DONE):
                raise RuntimeError(f"{self._error()} in {sql}")
        finally:
            _lib.sqlite3_finalize(stmt)

    def begin(self, cursors: tuple[int, int, int]) -> bool:
        """Open a read transaction; whether it sees the commit whose last (event, audit, escalation)
        sequence numbers are ``cursors`` (if not, :meth:`end` it and read another way)."""
        self._run("BEGIN")
        ints, _ = self.rows("SELECT (SELECT coalesce(max(seq), 0) FROM events), (SELECT coalesce(max(seq), 0) FROM "
                            "audit), (SELECT coalesce(max(seq), 0) FROM escalations)", (), 3, 0, 1)
        return tuple(int(x) for x in ints[:, 0]) == tuple(int(x) for x in cursors)

    def end(self) -> None:
        self._run("COMMIT")

    def rows(self, sql: str, params: tuple, n_ints: int, n_texts: int, most: int) -> tuple[np.ndarray, list]:
        """At most ``most`` rows of ``sql``: its first ``n_ints`` columns as int64 rows of a
        ``(n_ints, n)`` array, then ``n_texts`` text columns, each as (ids: int32, -1 NULL; the distinct
        texts by id; NULL and '' both -1, as the mirror takes them)."""
        ints = np.empty((n_ints, most), np.int64)
        texts = np.empty((n_texts, most), np.int32)
        words = _Dictionaries(n_texts)
        stmt = self._statement(sql, params)
        try:
            n, stepped = 0, False
            while True:
                n = _scan(stmt, n_ints, ints, texts, words.table, words.offs, words.lens, words.count, words.buf,
                          words.used, n, stepped)
                if n in (_GROW, _GROW_ROW):
                    stepped = n == _GROW_ROW
                    n = int(words.count[n_texts])
                    words.grow(int(words.count[n_texts + 1]) if stepped else 0)
                    continue
                if n == _FAILED:
                    raise RuntimeError(f"{self._error()} in {sql}")
                break
        finally:
            _lib.sqlite3_finalize(stmt)
        return ints[:, :n], [(texts[c, :n], words.values(c)) for c in range(n_texts)]


_EVENTS_SQL = ("SELECT seq - 1, occurred_at, coalesce(deadline, -1), state, "
               + ", ".join(source.TEXT_COLUMNS) + " FROM events WHERE seq > ? AND seq <= ? ORDER BY seq")
_AUDIT_SQL = "SELECT event_seq - 1, at, to_state, action FROM audit WHERE seq > ? AND seq <= ? ORDER BY seq"


def events_between(scan: Scan, reader: source.StoreReader, lo: int, hi: int) -> source.EventRows:
    """Events with ``lo < seq <= hi``, their codes in ``reader``'s dictionaries (grown as
    :meth:`~citygrid.engine.analytics.source.StoreReader.events_between` grows them)."""
    ints, texts = scan.rows(_EVENTS_SQL, (lo, hi), 3, 1 + len(source.TEXT_COLUMNS), hi - lo)
    (state, state_names), *codes = texts
    ids = np.empty((len(source.TEXT_COLUMNS), ints.shape[1]), np.int64)
    for k, (name, (local, distinct)) in enumerate(zip(source.TEXT_COLUMNS, codes)):
        ids[k] = _mapped(reader.code_ids(name, distinct), local)
    return source.EventRows(ints[0], ints[1], ints[2], _mapped(reader.state_ids(state_names), state), ids)


def audit_between(scan: Scan, lo: int, hi: int) -> source.AuditRows:
    """Audit rows with ``lo < seq <= hi`` in log order (as
    :meth:`~citygrid.engine.analytics.source.StoreReader.audit_between` reads them)."""
    ints, ((state, state_names), (action, actions)) = scan.rows(_AUDIT_SQL, (lo, hi), 2, 2, hi - lo)
    states = {s.value: k for k, s in enumerate(source.STATES)}
    rework = np.array([a == "rework" for a in actions] + [False], dtype=np.int8)
    return source.AuditRows(ints[0], ints[1], _mapped(np.array([states.get(s, -1) for s in state_names], np.int8), state),
                            rework[action])


def _mapped(table: np.ndarray, local: np.ndarray) -> np.ndarray:
    """``table[local]``, -1 where ``local`` is -1 (NULL)."""
    return np.append(table, -1)[local]


def escalations_between(scan: Scan, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """(event row, stage index) of escalation rows with ``lo < seq <= hi`` (as
    :meth:`~citygrid.engine.analytics.source.StoreReader.escalations_between` reads them)."""
    ints, ((stage, names),) = scan.rows("SELECT event_seq - 1, stage FROM escalations WHERE seq > ? AND seq <= ? "
                                        "ORDER BY seq", (lo, hi), 1, 1, hi - lo)
    index = {s: k for k, s in enumerate(source.STAGES)}
    return ints[0], _mapped(np.array([index.get(s, -1) for s in names], np.int64), stage)
