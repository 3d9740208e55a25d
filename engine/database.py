"""The data directory's embedded database: SQLite in WAL mode with ``synchronous=FULL``.

Why SQLite: it is a real transactional database in the standard library, durable on commit with
``synchronous=FULL`` (the WAL is fsynced before ``COMMIT`` returns), and its WAL mode lets readers run
while the one writer commits. CityGrid has one writing process (see DESIGN.md), so SQLite's single
writer is not a limit; batches share one commit to reach tens of thousands of durable rows a second.
Each store (layer registry, tokens, events, jobs) owns its tables and declares them as a list of
migrations; :func:`open_database` applies the ones not yet applied, in one transaction each.

>>> import tempfile
>>> db = open_database(tempfile.mkdtemp(), "doc", [("CREATE TABLE t (a INTEGER)",)])
>>> db.execute("SELECT count(*) FROM t").fetchone()[0]
0
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

DATABASE_FILE = "citygrid.sqlite3"


def database_path(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / DATABASE_FILE


def connect(path: str | os.PathLike) -> sqlite3.Connection:
    """A connection with CityGrid's pragmas: WAL, ``synchronous=FULL``, foreign keys, a busy timeout.

    Connections are opened with ``check_same_thread=False`` and autocommit off (``isolation_level=None``
    plus explicit transactions through :func:`transaction`); guard a shared connection with a lock.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection, *, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (durable when it returns), ``ROLLBACK`` on any exception."""
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


_migrate_lock = threading.Lock()


def open_database(
    data_dir: str | os.PathLike, store: str, migrations: Sequence[Sequence[str]]
) -> sqlite3.Connection:
    """Connect to the data directory's database and bring ``store``'s tables up to date.

    ``migrations[i]`` is a list of SQL statements that takes the store from schema version ``i`` to
    ``i + 1``; the applied version is kept in ``schema_versions``.
    """
    conn = connect(database_path(data_dir))
    with _migrate_lock:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions (store TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        with transaction(conn):
            row = conn.execute("SELECT version FROM schema_versions WHERE store = ?", (store,)).fetchone()
            applied = row[0] if row else 0
            for version in range(applied, len(migrations)):
                for statement in migrations[version]:
                    conn.execute(statement)
            if len(migrations) > applied:
                conn.execute(
                    "INSERT INTO schema_versions (store, version) VALUES (?, ?) "
                    "ON CONFLICT(store) DO UPDATE SET version = excluded.version",
                    (store, len(migrations)),
                )
    return conn
