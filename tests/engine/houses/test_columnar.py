"""Rows written from columns (``citygrid.engine.houses.columnar``) read back exactly as the same rows
written by ``executemany``: values, nulls and SQLite types, reals to the bit."""

from __future__ import annotations

import sqlite3

import numpy as np
import pyarrow as pa
import pytest

from citygrid.engine.houses.columnar import Constant, Ints, Table

DDL = ("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, m INTEGER, x REAL, y REAL, s TEXT, u TEXT, k TEXT, c TEXT, "
       "e TEXT, z REAL)")
NAMES = ("id", "n", "m", "x", "y", "s", "u", "k", "c", "e", "z")


def _columns(rng, n: int):
    ints = rng.integers(-10**15, 10**15, n)
    small = rng.integers(-3, 4, n)
    valid = rng.random(n) < 0.8
    reals = np.concatenate([rng.uniform(113, 115, n // 4), rng.lognormal(4, 2, n // 4), rng.normal(0, 1e-12, n // 4),
                            rng.normal(0, 1e20, n - 3 * (n // 4))])
    reals[rng.random(n) < 0.1] = np.nan
    reals[:4] = [0.0, -1.5, 2.0 ** -70, 2.0 ** 110][:n]
    lng = rng.uniform(113, 115, n)  # every batch in the short form (m / d)
    lng[rng.random(n) < 0.1] = np.nan
    words = ["", "长龙路128号", "A'\"\\,;", "翠景花园5栋2单元502室", "x" * 300, None, "𠀀 emoji 🏠", "0"]
    texts = [words[k] for k in rng.integers(0, len(words), n)]
    codes = [f"44030700{k:015d}" for k in range(n)]
    return {"id": range(7, 7 + n), "n": ints, "m": Ints(small, valid), "x": reals, "y": pa.array(reals[::-1].copy()),
            "s": pa.array(texts, type=pa.string()), "u": texts[::-1], "k": pa.array(codes), "c": Constant("bulk load"), "e": pa.nulls(n, pa.string()), "z": lng}


def _plain(columns, n: int) -> list[tuple]:
    def values(name, v):
        if name == "m":
            valid = v.valid if v.valid is not None else np.ones(n, dtype=bool)  # all valid: no mask kept
            return [int(a) if ok else None for a, ok in zip(v.values, valid)]
        if name == "c":
            return [v.value] * n
        if name == "y":
            return [None if a is None or a != a else a for a in v.to_pylist()]
        if isinstance(v, pa.Array):
            return v.to_pylist()
        if isinstance(v, np.ndarray):
            return [None if isinstance(a, float) and a != a else a for a in v.tolist()]
        return list(v)

    return list(zip(*(values(name, v) for name, v in columns.items())))


@pytest.mark.parametrize("n, batch", [(1, 10), (2_500, 1_000), (0, 10)])
def test_rows_from_columns_equal_the_same_rows_bound_one_by_one(n, batch):
    columns = _columns(np.random.default_rng(n), n)
    a, b = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
    for conn in (a, b):
        conn.execute(DDL)
    Table("t", columns).insert(a, batch=batch)
    b.executemany(f"INSERT INTO t VALUES ({','.join('?' * len(NAMES))})", _plain(columns, n))
    query = f"SELECT {', '.join(f'{c}, typeof({c})' for c in NAMES)} FROM t ORDER BY id"
    got, want = a.execute(query).fetchall(), b.execute(query).fetchall()
    assert len(got) == n and got == want


def test_columns_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        Table("t", {"id": range(3), "n": np.arange(4)})
