"""The registry's tables in the data directory's embedded database (store ``houses``).

The only module of the wing that opens the database (:mod:`citygrid.engine.database`: WAL,
``synchronous=FULL``, foreign keys, migrations); every other module gets the connection from here.

Rows are numbered from 0 in the order they are added (``id``), and the in-memory counts
(:mod:`.census`) are arrays indexed by those ids. Codes are ``UNIQUE`` and rows are never deleted:
a demolished building or a removed unit keeps its row with a date (``demolished_on``,
``removed_on``), so its code can never be issued again.

========================== ==================================================================
table                      what
========================== ==================================================================
``house_buildings``        code, kind, floors, address, position, issuing grid, current grid,
                           community, street and district (recomputed on layer activation)
``house_units``            code, building, kind, entrance, floor, room number, area, rental
                           flag, class and control level, address
``house_residents``        the people: resident id, name, gender, birth year, registered
                           (户籍 1) or not (流动 0)
``house_residence``        who lived where from when to when: one open row (``moved_out``
                           null) per resident at most (a partial unique index)
``house_businesses``       businesses (法人) in a unit or in a building
``house_declarations``     self-declarations (实有信息自主申报) and their check (核验)
``house_checkins``         grid workers' check-ins (签到) at buildings and their flags
``house_audit``            every read of personal data: who, when, which records, why
``house_meta``             the layer version the current grids were computed on
========================== ==================================================================
"""

from __future__ import annotations

import os
import sqlite3

from citygrid.engine.database import connect, database_path, open_database, transaction  # noqa: F401  (transaction re-exported for the wing)

STORE = "houses"

#: The current-area columns of ``house_buildings`` by area level.
AREA_COLUMNS = {"grid": "grid_code", "community": "community_code", "street": "street_code",
                "district": "district_code"}

#: Secondary indexes of the tables a bulk load fills: a load into an empty table drops them and
#: builds them again after its rows, in the same transaction (one sorted build instead of millions
#: of random inserts).
BULK_INDEXES = {
    "house_buildings_grid": "CREATE INDEX house_buildings_grid ON house_buildings (grid_code)",
    "house_buildings_community": "CREATE INDEX house_buildings_community ON house_buildings (community_code)",
    "house_buildings_street": "CREATE INDEX house_buildings_street ON house_buildings (street_code)",
    "house_units_building": "CREATE INDEX house_units_building ON house_units (building_id)",
    "house_residence_current": "CREATE UNIQUE INDEX house_residence_current ON house_residence (resident) "
                               "WHERE moved_out IS NULL",
    "house_residence_unit": "CREATE INDEX house_residence_unit ON house_residence (unit_id) WHERE moved_out IS NULL",
    "house_residence_history": "CREATE INDEX house_residence_history ON house_residence (resident, moved_in)",
    "house_businesses_building": "CREATE INDEX house_businesses_building ON house_businesses (building_id)",
}

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE house_buildings (
            id INTEGER PRIMARY KEY,
            code TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            floors INTEGER NOT NULL,
            address TEXT NOT NULL,
            lng REAL NOT NULL,
            lat REAL NOT NULL,
            issuing_grid TEXT NOT NULL,
            grid_code TEXT,
            community_code TEXT,
            street_code TEXT,
            district_code TEXT,
            demolished_on TEXT
        )""",
        BULK_INDEXES["house_buildings_grid"],
        BULK_INDEXES["house_buildings_community"],
        BULK_INDEXES["house_buildings_street"],
        """CREATE TABLE house_units (
            id INTEGER PRIMARY KEY,
            code TEXT NOT NULL UNIQUE,
            building_id INTEGER NOT NULL REFERENCES house_buildings (id),
            kind TEXT NOT NULL,
            entrance INTEGER,
            floor INTEGER NOT NULL,
            number TEXT NOT NULL,
            area_m2 REAL,
            rental INTEGER NOT NULL,
            rental_class TEXT,
            control_level TEXT,
            address TEXT NOT NULL,
            removed_on TEXT
        )""",
        BULK_INDEXES["house_units_building"],
        """CREATE TABLE house_residents (
            id INTEGER PRIMARY KEY,
            resident_id TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            gender TEXT,
            birth_year INTEGER NOT NULL,
            registered INTEGER NOT NULL
        )""",
        """CREATE TABLE house_residence (
            id INTEGER PRIMARY KEY,
            resident INTEGER NOT NULL REFERENCES house_residents (id),
            unit_id INTEGER NOT NULL REFERENCES house_units (id),
            moved_in TEXT NOT NULL,
            moved_out TEXT,
            recorded_by TEXT NOT NULL
        )""",
        BULK_INDEXES["house_residence_current"],
        BULK_INDEXES["house_residence_unit"],
        BULK_INDEXES["house_residence_history"],
        """CREATE TABLE house_businesses (
            id INTEGER PRIMARY KEY,
            business_id TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            industry TEXT,
            building_id INTEGER NOT NULL REFERENCES house_buildings (id),
            unit_id INTEGER REFERENCES house_units (id)
        )""",
        BULK_INDEXES["house_businesses_building"],
        """CREATE TABLE house_declarations (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            unit_id INTEGER NOT NULL REFERENCES house_units (id),
            grid_code TEXT,
            resident_id TEXT NOT NULL,
            name TEXT,
            gender TEXT,
            birth_year INTEGER,
            registered INTEGER,
            moved_on TEXT NOT NULL,
            declared_by TEXT NOT NULL,
            declared_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            reviewed_by TEXT,
            reviewed_at TEXT,
            note TEXT
        )""",
        "CREATE INDEX house_declarations_pending ON house_declarations (grid_code, id) WHERE status = 'pending'",
        """CREATE TABLE house_checkins (
            id INTEGER PRIMARY KEY,
            worker TEXT NOT NULL,
            building_id INTEGER NOT NULL REFERENCES house_buildings (id),
            at TEXT NOT NULL,
            lng REAL NOT NULL,
            lat REAL NOT NULL,
            distance_m REAL NOT NULL,
            speed_mps REAL,
            flags TEXT NOT NULL
        )""",
        "CREATE INDEX house_checkins_worker ON house_checkins (worker, at)",
        """CREATE TABLE house_audit (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            principal TEXT NOT NULL,
            role TEXT NOT NULL,
            action TEXT NOT NULL,
            reason TEXT NOT NULL,
            n_records INTEGER NOT NULL,
            records TEXT NOT NULL
        )""",
        "CREATE TABLE house_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ],
]


def open_store(data_dir: str | os.PathLike) -> sqlite3.Connection:
    """The connection to the data directory's database with the houses tables up to date."""
    return open_database(data_dir, STORE, MIGRATIONS)


def open_reader(data_dir: str | os.PathLike) -> sqlite3.Connection:
    """A second connection to the data directory's database, for a thread that reads without the
    registry's lock (WAL: it reads the last commit while the registry writes). Its tables exist: the
    registry's connection was opened first."""
    return connect(database_path(data_dir))


def bulk_indexes(table: str) -> dict[str, str]:
    """The secondary indexes of ``table`` that a bulk load may drop and build again."""
    return {name: sql for name, sql in BULK_INDEXES.items() if sql.split(" ON ")[1].startswith(table + " ")}


def next_id(conn: sqlite3.Connection, table: str) -> int:
    """The id the next row of ``table`` takes (ids run from 0 without gaps)."""
    return int(conn.execute(f"SELECT coalesce(max(id) + 1, 0) FROM {table}").fetchone()[0])
