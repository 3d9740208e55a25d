"""Store scans (:mod:`citygrid.engine.analytics.store_scan`) read what the sqlite3 module reads:
integers as stored, texts through dictionaries grown past their first size (thousands of distinct
values, long and non-ASCII ones), NULL and '' both -1; and a scan says whether its read transaction
sees the commit the mirror's connection sees."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from citygrid.engine.analytics import store_scan

pytestmark = pytest.mark.skipif(not store_scan.available(), reason="no shared libsqlite3 in this process")


@pytest.fixture
def db(tmp_path, rng):
    path = tmp_path / "t.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, a INTEGER, b TEXT, c TEXT)")
    # Thousands of texts, many of one length differing after their first character (they meet in
    # the hash table, where their bytes are compared), Chinese codes, '' and long ones (one longer than
    # the dictionaries' first room for bytes, met in the middle of a row).
    words = ([("网" if g % 2 else "p") * g + chr(c) for g in range(1, 41) for c in range(33, 127)]
             + [f"网格{k:05d}" for k in range(2000)] + ["", "x" * 3000, "y" * 200_000, "é", "e"])
    n = 3 * len(words)
    rows = [(int(rng.integers(-2**62, 2**62)), None if k % 97 == 0 else words[k % len(words)],
             None if k % 5 == 0 else ["closed", "handling", ""][k % 3]) for k in range(n)]
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t (a, b, c) VALUES (?, ?, ?)", rows)
    conn.execute("COMMIT")
    yield path, conn
    conn.close()


def test_rows_are_what_the_sqlite3_module_reads(db):
    path, conn = db
    want = conn.execute("SELECT seq, a, b, c FROM t WHERE seq > 10 AND seq <= 17000 ORDER BY seq").fetchall()
    scan = store_scan.Scan(path)
    try:
        ints, ((b, b_words), (c, c_words)) = scan.rows(
            "SELECT seq, a, b, c FROM t WHERE seq > ? AND seq <= ? ORDER BY seq", (10, 17_000), 2, 2, 16_990)
    finally:
        scan.close()
    assert ints.shape == (2, len(want))
    assert ints[0].tolist() == [r[0] for r in want] and ints[1].tolist() == [r[1] for r in want]
    for ids, words, k in ((b, b_words, 2), (c, c_words, 3)):
        assert [words[i] if i >= 0 else None for i in ids.tolist()] == [r[k] or None for r in want]
        assert len(set(words)) == len(words)  # one id per distinct text
    assert len(b_words) > 4000  # the dictionary grew (it starts with room for 2,048)
    assert "x" * 3000 in b_words and "y" * 200_000 in b_words and "é" in b_words and "e" in b_words


def test_a_scan_says_whether_it_sees_the_same_commit(db):
    path, conn = db
    conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE audit (seq INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE escalations (seq INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO events (seq) VALUES (?)", [(k,) for k in range(1, 6)])
    scan = store_scan.Scan(path)
    try:
        assert scan.begin((5, 0, 0))
        conn.execute("INSERT INTO events (seq) VALUES (6)")  # committed after the scan's read began
        conn.execute("INSERT INTO audit (seq) VALUES (1)")
        assert scan.rows("SELECT seq FROM events", (), 1, 0, 10)[0][0].tolist() == [1, 2, 3, 4, 5]
        scan.end()
        assert not scan.begin((5, 0, 0))
        scan.end()
        assert scan.begin((6, 1, 0))
        scan.end()
    finally:
        scan.close()
