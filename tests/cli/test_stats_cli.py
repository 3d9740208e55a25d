"""``citygrid stats`` against a real server (in this process) holding the demo's year as history:
each subcommand's table, JSON and CSV say what SQL over the store says (an independent count), the
token's jurisdiction holds, and bad input exits 2 with the precise status."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import timedelta

import pytest
from history_server import NOW, history_server, run  # noqa: F401 (the fixture)

from citygrid.engine.database import database_path

START, END = NOW - timedelta(days=7), NOW
WINDOW = ["--from", START.isoformat(), "--to", END.isoformat()]


def _us(t) -> int:
    return int(t.timestamp() * 1_000_000)


@pytest.fixture(scope="module")
def sql(history_server):
    conn = sqlite3.connect(database_path(history_server.data))
    yield lambda q, *p: conn.execute(q, p).fetchall()
    conn.close()


def test_aggregate_by_street_as_json_matches_sql(history_server, sql):
    status, out, err = run(history_server, "stats", "aggregate", *WINDOW, "--by", "street",
                           "--measure", "reported,closed", "--json")
    assert status == 0, err
    got = {r["street"]: (r["reported"], r["closed"]) for r in map(json.loads, out.splitlines())}
    expected = sql("SELECT street_code, count(*), sum(state = 'closed') FROM events WHERE occurred_at >= ? AND "
                   "occurred_at < ? GROUP BY street_code", _us(START), _us(END))
    assert got == {s: (n, c) for s, n, c in expected} and len(got) > 5


def test_aggregate_by_day_as_csv_with_a_filter(history_server, sql):
    status, out, _ = run(history_server, "stats", "aggregate", *WINDOW, "--bucket", "day",
                         "--filter", "source=hotline_12345", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    # 10:00 to 10:00 a week later: eight local days, the first and the last in part.
    assert status == 0 and list(rows[0]) == ["day", "reported"] and len(rows) == 8
    total = sql("SELECT count(*) FROM events WHERE occurred_at >= ? AND occurred_at < ? AND source = 'hotline_12345'",
                _us(START), _us(END))[0][0]
    assert sum(int(r["reported"]) for r in rows) == total


def test_top_grids_as_a_table(history_server, sql):
    status, out, _ = run(history_server, "stats", "top", *WINDOW, "--level", "grid", "-n", "5")
    lines = out.splitlines()
    assert status == 0 and lines[0].split() == ["grid", "reported", "previous", "per_1000_residents", "growth"]
    expected = sql("SELECT grid_code, count(*) AS n FROM events WHERE occurred_at >= ? AND occurred_at < ? "
                   "GROUP BY grid_code ORDER BY n DESC, grid_code LIMIT 5", _us(START), _us(END))
    assert [(line.split()[0], int(line.split()[1].replace(",", ""))) for line in lines[2:]] == expected


def test_trend_and_kpis(history_server, sql):
    status, out, _ = run(history_server, "stats", "trend", *WINDOW, "--json")
    trend = json.loads(out)
    before = sql("SELECT count(*) FROM events WHERE occurred_at >= ? AND occurred_at < ?",
                 _us(START - timedelta(days=7)), _us(START))[0][0]
    assert status == 0 and trend["previous"] == before and trend["current"] > 0
    status, out, _ = run(history_server, "stats", "kpi", *WINDOW, "--unit", "street")
    lines = out.splitlines()
    assert status == 0 and "grade" in lines[0] and "score" in lines[0] and len(lines) > 2 + 5


def test_a_street_token_counts_its_street_only(history_server, sql):
    street = sql("SELECT street_code FROM events GROUP BY street_code ORDER BY count(*) DESC LIMIT 1")[0][0]
    _, out, _ = run(history_server, "query", "token", "issue", "街道大屏", "dashboard", "--jurisdiction", street)
    secret = json.loads(out)["token"]
    status, out, _ = run(history_server, "stats", "aggregate", *WINDOW, "--by", "street", "--json", token=secret)
    assert status == 0 and [json.loads(line)["street"] for line in out.splitlines()] == [street]


@pytest.mark.parametrize("args, words", [
    (["aggregate", "--by", "planet"], "INVALID_ARGUMENT: unknown dimension"),
    (["top", "--level", "province"], "INVALID_ARGUMENT: level"),
    (["kpi", "--unit", "planet"], "INVALID_ARGUMENT: KPIs are per"),
])
def test_bad_input_exits_2_with_the_status(history_server, args, words):
    status, _, err = run(history_server, "stats", *args, *WINDOW)
    assert status == 2 and words in err
