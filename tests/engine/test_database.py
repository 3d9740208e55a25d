"""Every SQLite connection CityGrid opens is durable on commit: WAL journal and ``synchronous=FULL``.

A SIGKILL test cannot see ``synchronous=NORMAL`` (the operating system's page cache outlives a killed
process; only a power cut loses the last commits), so the pragmas themselves are checked, on every
connection the product opens: each store's own, the event store's reader, and everything a whole
server opens. ``sqlite3.connect`` is wrapped to record the connections (each one real and used; a
connection closed early, such as a migration's, tells its pragmas as it closes).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

import pytest
import shapely
from intake_world import CST

from citygrid.engine.times import ManualClock
from citygrid.engine.cases.store import SqliteEventStore
from citygrid.cluster.jobs import JobStore
from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.layers.registry import LayerRegistry
from citygrid.engine.access.tokens import TokenStore
from citygrid.grpc_api.config import ServerConfig
from citygrid.grpc_api.server import create_server

#: ``PRAGMA synchronous`` values.
FULL = 2


def pragmas(conn: sqlite3.Connection) -> tuple[str, int]:
    """(journal mode, synchronous) of a connection: as it closed, or now."""
    if getattr(conn, "at_close", None) is not None:
        return conn.at_close
    return conn.execute("PRAGMA journal_mode").fetchone()[0], conn.execute("PRAGMA synchronous").fetchone()[0]


class Recorded(sqlite3.Connection):
    """A real connection that keeps its pragmas when it is closed."""

    at_close = None

    def close(self):
        if self.at_close is None:
            self.at_close = pragmas(self)
        super().close()


@pytest.fixture
def opened(monkeypatch):
    """The connections ``sqlite3.connect`` hands out while the test runs, with their paths."""
    connections: list[tuple[str, sqlite3.Connection]] = []
    real = sqlite3.connect

    def recording(database, *args, **kwargs):
        conn = real(database, *args, factory=Recorded, **kwargs)
        connections.append((str(database), conn))
        return conn

    monkeypatch.setattr(sqlite3, "connect", recording)
    return connections


def test_every_store_connection_is_wal_and_synchronous_full(tmp_path, opened):
    stores = [LayerRegistry(tmp_path), TokenStore(tmp_path), SqliteEventStore(tmp_path), JobStore(tmp_path)]
    try:
        # at least one each, the event store's second (reader) connection and the workers' migration
        assert len(opened) >= len(stores) + 2
        for path, conn in opened:
            assert pragmas(conn) == ("wal", FULL), path
    finally:
        for store in stores:
            store.close()


def test_every_connection_of_a_whole_server_is_wal_and_synchronous_full(tmp_path, opened):
    """A server with its intake built opens its stores itself: the same pragmas on each."""
    registry = LayerRegistry(tmp_path)
    layer = GridLayer.from_geometries([shapely.box(114.2, 22.7, 114.21, 22.71)], {"grid_code": ["G1"]},
                                      version_id="one")
    registry.register(layer)
    registry.publish("one")
    registry.activate("one")
    registry.close()
    opened.clear()
    server, _ = create_server(ServerConfig(data_dir=tmp_path, host="127.0.0.1", port=0, metrics_port=None, http_port=None),
                              clock=ManualClock(datetime(2026, 12, 7, 3, 5, tzinfo=CST)))
    try:
        server.state.intake.intake()  # the event store, built on first use
        assert len(opened) >= 5  # registry, tokens, events (writer and reader), the workers' migration ...
        for path, conn in opened:
            assert pragmas(conn) == ("wal", FULL), path
    finally:
        server.stop(0).wait(10)
