"""``citygrid events`` and ``citygrid workers`` against a real server (in this process, on a free port)
serving the demo district: the demo's workers and events go in through the commands, in batches,
idempotently; refused reports are listed and exit 1; get / list / act / relocate / rebalance / duty
answer what the server holds; failed calls exit 2 with the status. The server's intake runs on an
injected clock (:data:`NOW`, a working Monday morning), so what is dispatched does not depend on the
hour the tests run at."""

from __future__ import annotations

import json
import re
from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from demo_server import run_cli, serve_demo_district

from citygrid.engine.times import ManualClock

TOKEN = "events-cli-test-admin-token-not-a-secret"
#: Demo events sent by the module's submission (three batches of 1,000).
SENT = 3000
#: The present time of the server's intake.
NOW = datetime(2026, 3, 9, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_dir):
    """The demo district served from a fresh data directory without the house registry, its building
    positions loaded into the intake from the demo's file, no workers and no events yet."""
    data = tmp_path_factory.mktemp("events-cli") / "data"
    grpc_server, target = serve_demo_district(data, demo_dir, TOKEN, ManualClock(NOW), without=("house_service",))
    grpc_server.state.intake.load_staff(buildings_path=demo_dir / "buildings.parquet")
    yield SimpleNamespace(target=target, server=grpc_server, demo=demo_dir)
    assert grpc_server.stop(0).wait(10)


def run(server, *args, token: str | None = TOKEN) -> tuple[int, str, str]:
    """``citygrid ARGS --server S --token T``: exit status, stdout, stderr."""
    return run_cli(server.target, token, *args)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def submit_calls(server) -> int:
    """SubmitEvents calls the server has answered OK so far (its metrics)."""
    line = r'citygrid_grpc_requests_total\{method="/citygrid.v1.IntakeService/SubmitEvents",code="OK"\} (\d+)'
    match = re.search(line, server.server.metrics.render())
    return int(match.group(1)) if match else 0


@pytest.fixture(scope="module")
def staffed(server):
    status, out, err = run(server, "workers", "load", str(server.demo / "workers.parquet"), "--json")
    assert status == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def submitted(server, staffed):
    calls = submit_calls(server)
    status, out, err = run(server, "events", "submit", str(server.demo / "events.parquet"), "--limit", str(SENT),
                           "--json")
    assert status == 0, err
    return json.loads(out), submit_calls(server) - calls


def demo_events(server):
    return pq.read_table(server.demo / "events.parquet").slice(0, SENT)


# ---------------------------------------------------------------------- workers


def test_workers_load_list_get_and_duty(server, staffed):
    workers = pq.read_table(server.demo / "workers.parquet")
    assert staffed == {"file": str(server.demo / "workers.parquet"), "workers": workers.num_rows}

    grid_code = workers.column("grid_code")[0].as_py()
    of_grid = pc.filter(workers, pc.equal(workers.column("grid_code"), grid_code))
    expected = sorted(of_grid.column("worker_id").to_pylist())
    status, out, _ = run(server, "workers", "list", "--grid", grid_code, "--json")
    listed = json_lines(out)
    assert status == 0 and [w["worker_id"] for w in listed] == expected and len(expected) >= 1
    assert all(w["grid_code"] == grid_code for w in listed)
    status, out, _ = run(server, "workers", "list", "--limit", "1500")
    assert status == 0 and out.splitlines()[-1] == "1,500 workers"  # two pages of at most 1,000

    worker_id = expected[0]
    status, out, _ = run(server, "workers", "get", worker_id)
    assert status == 0 and out.startswith(f"{worker_id}  grid {grid_code}") and "on duty" in out
    status, out, _ = run(server, "workers", "duty", worker_id, "off", "--json")
    assert status == 0 and json.loads(out)["on_duty"] is False
    status, out, _ = run(server, "workers", "duty", worker_id, "on")
    assert status == 0 and "  on duty" in out


# ---------------------------------------------------------------------- events submit


def test_submit_sends_batches_of_1000_and_is_idempotent(server, submitted):
    first, calls = submitted
    assert calls == SENT // 1000
    assert (first["reports"], first["new"], first["already_received"], first["refused"]) == (SENT, SENT, 0, 0)
    assert sum(first["states"].values()) == SENT
    assert set(first["states"]) <= {"dispatched", "registered", "duplicate"}

    before = submit_calls(server)
    status, out, _ = run(server, "events", "submit", str(server.demo / "events.parquet"), "--limit", str(SENT),
                         "--json")
    again = json.loads(out)
    assert status == 0 and submit_calls(server) - before == SENT // 1000
    assert (again["new"], again["already_received"], again["refused"]) == (0, SENT, 0)
    assert again["states"] == first["states"]  # the first receipts, not new ones

    status, out, _ = run(server, "events", "submit", str(server.demo / "events.parquet"), "--limit", "10")
    assert status == 0
    path = server.demo / "events.parquet"
    assert out.splitlines()[0] == f"10 reports from {path}: 0 new, 10 already received, 0 refused"
    status, out, _ = run(server, "events", "list", "--limit", "0", "--json")
    assert len(json_lines(out)) == SENT  # nothing was stored twice


def test_refused_reports_exit_1_and_are_listed(server, submitted, tmp_path):
    rows = pq.read_table(server.demo / "events.parquet").slice(SENT, 5).to_pylist()
    for k, row in enumerate(rows):
        row["event_id"] = f"cli-bad-{k}"
    rows[1]["category_code"] = "9999"
    rows[2]["lng"] = 200.0
    rows[3]["source"] = ""
    rows[4] = {**pq.read_table(server.demo / "events.parquet").slice(0, 1).to_pylist()[0], "description": "changed"}
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(server.demo / "events.parquet")), path)

    status, out, _ = run(server, "events", "submit", str(path), "--json")
    summary = json.loads(out)
    assert status == 1
    assert (summary["new"], summary["refused"]) == (1, 4)
    assert summary["errors"] == {"INVALID_ARGUMENT": 3, "ALREADY_EXISTS": 1}
    assert [(r["event_id"], r["code"]) for r in summary["refusals"]] == [
        ("cli-bad-1", "INVALID_ARGUMENT"), ("cli-bad-2", "INVALID_ARGUMENT"), ("cli-bad-3", "INVALID_ARGUMENT"),
        (rows[4]["event_id"], "ALREADY_EXISTS")]
    assert "9999" in summary["refusals"][0]["message"]

    status, out, _ = run(server, "events", "submit", str(path))
    assert status == 1
    assert "refused: INVALID_ARGUMENT 3, ALREADY_EXISTS 1" in out
    assert re.search(r"^  cli-bad-1  INVALID_ARGUMENT  .*9999", out, re.MULTILINE)


# ---------------------------------------------------------------------- get, list, act, relocate


def test_get_list_act_and_relocate(server, submitted):
    events = demo_events(server)
    buildings = pq.read_table(server.demo / "buildings.parquet", columns=["building_code", "grid_code"])
    status, out, _ = run(server, "events", "list", "--state", "registered", "--state", "dispatched", "--limit", "1",
                         "--json")
    [event] = json_lines(out)
    event_id, grid_code = event["event_id"], event["grid_code"]
    truth = events.column("grid_code").to_pylist()[events.column("event_id").to_pylist().index(event_id)]
    assert grid_code == truth  # placed where the demo's ground truth says

    status, out, _ = run(server, "workers", "list", "--grid", grid_code, "--json")
    worker_id = json_lines(out)[0]["worker_id"]
    status, out, _ = run(server, "events", "act", event_id, "dispatch", "--worker", worker_id, "--note", "by hand")
    assert status == 0 and f"worker {worker_id}" in out and "dispatched (已派遣)" in out
    status, out, _ = run(server, "events", "act", event_id, "handle", "--json")
    assert status == 0 and json.loads(out)["state"] == "handling"
    status, _, err = run(server, "events", "act", event_id, "close")
    assert status == 2 and err.startswith("citygrid events: FAILED_PRECONDITION:") and "handling" in err

    status, out, _ = run(server, "events", "get", event_id, "--json")
    answer = json.loads(out)
    assert answer["event"]["state"] == "handling" and answer["event"]["worker_id"] == worker_id
    assert [a["action"] for a in answer["audit"]][-2:] == ["dispatch", "handle"]
    status, out, _ = run(server, "events", "get", event_id)
    assert status == 0 and "audit trail:" in out and re.search(r"  dispatch  \S+ -> dispatched  worker .*by hand", out)

    community = answer["event"]["community_code"]
    status, out, _ = run(server, "events", "list", "--area", community, "--limit", "0", "--json")
    in_community = json_lines(out)
    assert all(e["community_code"] == community for e in in_community)
    expected = {e for e, g in zip(events.column("event_id").to_pylist(), events.column("grid_code").to_pylist())
                if g.startswith(community)}
    assert {e["event_id"] for e in in_community} == expected
    status, out, _ = run(server, "events", "list", "--worker", worker_id, "--state", "handling")
    assert status == 0 and out.splitlines()[0].startswith(f"{event_id}  handling") and out.endswith("1 events\n")

    other = next(row for row in buildings.to_pylist() if not row["grid_code"].startswith(community))
    status, out, _ = run(server, "events", "relocate", event_id, "--building", other["building_code"], "--json")
    assert status == 0 and json.loads(out)["grid_code"] == other["grid_code"]
    codes = events.column("grid_code").to_pylist()
    k = next(k for k, g in enumerate(codes) if g not in (grid_code, other["grid_code"]))
    status, out, _ = run(server, "events", "relocate", event_id, "--lng", str(events.column("lng")[k].as_py()),
                         "--lat", str(events.column("lat")[k].as_py()), "--note", "corrected on site")
    assert status == 0 and f"grid {events.column('grid_code')[k].as_py()}" in out
    status, _, err = run(server, "events", "relocate", event_id, "--lng", "114.2")
    assert status == 2 and "give --lng and --lat, or --building" in err


# ---------------------------------------------------------------------- rebalance and failures


def test_rebalance_is_a_dry_run_until_applied(server, submitted):
    status, out, _ = run(server, "events", "rebalance", "--max-hops", "2", "--json")
    plan = json.loads(out)
    assert status == 0 and not plan.get("applied", False) and plan["events"] > 0 and plan["moved"] > 0
    assert plan["after"]["max_load"] <= plan["before"]["max_load"]
    status, out, _ = run(server, "events", "rebalance", "--max-hops", "2", "--apply", "--json")
    applied = json.loads(out)
    assert applied["applied"] is True and applied.get("moved", 0) == plan.get("moved", 0)
    assert applied.get("moves", []) == plan.get("moves", [])
    status, out, _ = run(server, "events", "rebalance", "--max-hops", "2")
    assert status == 0 and ", 0 to move (dry run: --apply moves them)" in out.splitlines()[0]


def test_failures_exit_2_with_the_status(server, tmp_path):
    status, _, err = run(server, "events", "get", "no-such-event")
    assert status == 2 and err.startswith("citygrid events: NOT_FOUND:") and "no-such-event" in err
    status, _, err = run(server, "workers", "list", token="not-a-token")
    assert status == 2 and err.startswith("citygrid workers: UNAUTHENTICATED:")
    status, _, err = run(server, "events", "submit", str(tmp_path / "missing.parquet"))
    assert status == 2 and "cannot read events from" in err
