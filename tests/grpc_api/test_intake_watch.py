"""IntakeService over gRPC with the intake set up by the config's ``[intake]`` table:

- ``WatchOverdue``: on a round-the-clock schedule with 1-minute stage limits, late events escalate to
  their community, then their street; the stream delivers each escalation once, resumable from a
  cursor across a reconnect, and a caller with a jurisdiction sees only its own area's. The fast test
  moves the server's own intake clock with ``Intake.tick(now)`` (the engine's clock seam: a tick at a
  given time, nothing mocked); the slow one waits for the server's clock thread, its intake's clock
  running in real time from a fixed start.
- A layer activation through ``LayerService`` while events are open: new reports go on the new
  version, open events in a redrawn grid move and are dispatched again (``WatchDispatches`` shows the
  revocation and the new dispatch), everything else stays as it was.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from importlib import resources

import grpc
import pytest
import shapely
from grpc_env import LAT0, LNG0, NOW, SPAN, box_layer, start_server

from citygrid.engine.times import StartedClock
from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.layers.registry import LayerRegistry
from citygrid.grpc_api._pb import intake_pb2
from citygrid.grpc_api.client import CityGridClient
from citygrid.engine.cases.settings import IntakeSettings

N = 8
STEP = SPAN / N
#: Boxes in three different communities and streets of the 8 x 8 layer.
BOXES = {(1, 1): ("C00", "S00"), (6, 6): ("C33", "S11"), (1, 6): ("C03", "S01")}
ROUND_THE_CLOCK = ("00:00-24:00",)


def grid(i: int, j: int, version: str) -> str:
    return f"G{i:03d}{j:03d}@{version}"


def worker_of(i: int, j: int) -> str:
    return f"W{i:02d}{j:02d}"


def report(event_id: str, i: int, j: int, *, dx: float = 0.0, dy: float = 0.0) -> intake_pb2.EventReport:
    message = intake_pb2.EventReport(event_id=event_id, category_code="0101", source="inspector_terminal",
                                     lng=LNG0 + (i + 0.5) * STEP + dx, lat=LAT0 + (j + 0.5) * STEP + dy)
    message.occurred_at.FromDatetime(NOW)
    return message


def data_dir_with(root, layer: GridLayer):
    """A data directory whose active version is ``layer``."""
    registry = LayerRegistry(root / "data")
    try:
        registry.register(layer)
        registry.publish(layer.version_id)
        registry.activate(layer.version_id)
    finally:
        registry.close()
    return root / "data"


def one_minute_settings(root, **overrides) -> IntakeSettings:
    """Every working minute counts (no weekend, no holidays, all day) and every stage of category
    0101 has a 1-minute limit; the street is told 2 working minutes after the deadline."""
    taxonomy = json.loads(resources.files("citygrid.engine").joinpath("data/taxonomy.json").read_text("utf-8"))
    taxonomy["classes"] = taxonomy["classes"][:1]
    for category in taxonomy["classes"][0]["categories"]:
        category["time_limits"] = {stage: 1 for stage in category["time_limits"]}
    (root / "taxonomy.json").write_text(json.dumps(taxonomy, ensure_ascii=False), encoding="utf-8")
    (root / "calendar.json").write_text(json.dumps({"name": "every day", "weekend": []}))
    values = dict(taxonomy_file=root / "taxonomy.json", calendar_file=root / "calendar.json",
                  working_hours=ROUND_THE_CLOCK, street_escalation_after_minutes=2.0)
    values.update(overrides)
    return IntakeSettings(**values)


def staff(admin: CityGridClient, version: str, extra: list[intake_pb2.Worker] = ()) -> None:
    """A grid worker per box, always on shift, able to take class 01."""
    workers = [intake_pb2.Worker(worker_id=worker_of(i, j), grid_code=grid(i, j, version), skills=["01"],
                                 shift="always", capacity=100) for i in range(N) for j in range(N)]
    admin.intake.PutWorkers(intake_pb2.PutWorkersRequest(workers=workers + list(extra)), metadata=admin.metadata)


def client_as(env, admin: CityGridClient, name: str, role: str, jurisdiction=(), worker_id: str = "") -> CityGridClient:
    return env.client(admin.issue_token(name, role, jurisdiction, worker_id=worker_id).token)


def watch_overdue(client: CityGridClient, after: int, timeout: float):
    return client.intake.WatchOverdue(intake_pb2.WatchOverdueRequest(after=after), metadata=client.metadata,
                                      timeout=timeout)


def drain(stream) -> list:
    """What a stream delivers until its deadline."""
    out = []
    try:
        for message in stream:
            out.append(message)
    except grpc.RpcError as exc:
        assert exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED, exc
    return out


# ---------------------------------------------------------------------- WatchOverdue


@pytest.fixture
def late_env(tmp_path):
    """A server whose [intake] table makes category 0101 late after one minute; its clock thread
    ticks hourly, so only the test moves the clock."""
    env = start_server(data_dir_with(tmp_path, box_layer("o1", N)),
                       intake=one_minute_settings(tmp_path, clock_interval=3600.0))
    with env.client() as admin:
        staff(admin, "o1")
    yield env
    assert env.server.stop(0).wait(10)


def test_watch_overdue_escalates_to_community_then_street_resumably_by_jurisdiction(late_env):
    env = late_env
    intake = env.server.state.intake.intake()  # the server's own intake
    with env.client() as admin:
        receipts = admin.submit_events([report(f"late-{i}{j}", i, j) for i, j in BOXES])
        assert [r.state for r in receipts] == ["dispatched"] * 3
        events = [admin.get_event(r.event_id).event for r in receipts]
        received = events[0].received_at.ToDatetime(tzinfo=timezone.utc)
        deadline = max(e.deadline.ToDatetime(tzinfo=timezone.utc) for e in events)
        # the 1-minute limit of the handling stage, counted on the round-the-clock schedule
        assert timedelta(minutes=1) <= deadline - received < timedelta(minutes=1, milliseconds=1)

        assert intake.tick(deadline - timedelta(seconds=1)).escalated == 0
        assert intake.tick(deadline + timedelta(seconds=30)).escalated == 3  # overdue: the communities

        stream = watch_overdue(admin, 0, timeout=30)
        first = [next(stream) for _ in range(3)]
        stream.cancel()  # the watcher goes away ...
        assert [(n.event_id, n.level, n.unit_code) for n in first] == [
            (e.event_id, 1, community) for e, (community, _) in zip(events, BOXES.values())]
        assert all(n.stage == "handle" and n.state == "dispatched" for n in first)
        assert [n.worker_id for n in first] == [worker_of(i, j) for i, j in BOXES]
        assert [n.grid_code for n in first] == [grid(i, j, "o1") for i, j in BOXES]
        assert all(0.4 < n.overdue_minutes < 0.6 for n in first)

        # ... the streets are told while nobody watches (2 working minutes past the deadline) ...
        assert intake.tick(deadline + timedelta(minutes=2, seconds=30)).escalated == 3
        assert intake.tick(deadline + timedelta(minutes=10)).escalated == 0  # nothing is escalated twice

        # ... and the watcher resumes after its last cursor: nothing missed, nothing repeated.
        resumed = drain(watch_overdue(admin, first[-1].cursor, timeout=1))
        assert [(n.event_id, n.level, n.unit_code) for n in resumed] == [
            (e.event_id, 2, street) for e, (_, street) in zip(events, BOXES.values())]
        cursors = [n.cursor for n in first + resumed]
        assert cursors == sorted(set(cursors))
        assert [admin.get_event(e.event_id).event.escalation for e in events] == [2, 2, 2]

        (i, j), (community, street) = next(iter(BOXES.items()))
        street_dispatcher = client_as(env, admin, "街道调度", "dispatcher", [street])
        community_screen = client_as(env, admin, "社区大屏", "dashboard", [community])
        worker = client_as(env, admin, "网格员", "worker", [grid(i, j, "o1")], worker_id=worker_of(i, j))
    with street_dispatcher, community_screen, worker:
        for client in (street_dispatcher, community_screen):
            own = drain(watch_overdue(client, 0, timeout=1))
            assert [(n.event_id, n.level, n.unit_code) for n in own] == [
                (events[0].event_id, 1, community), (events[0].event_id, 2, street)]
        with pytest.raises(grpc.RpcError) as info:
            next(watch_overdue(worker, 0, timeout=5))
        assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.slow
def test_the_server_clock_escalates_in_real_time(tmp_path):
    """No seam at all: the server's clock thread (every 0.5 s) finds the events late after their
    1-minute limit and tells the street 6 seconds later; a reconnecting watcher misses nothing."""
    env = start_server(data_dir_with(tmp_path, box_layer("o1", N)), clock=StartedClock(NOW),
                       intake=one_minute_settings(tmp_path, clock_interval=0.5, street_escalation_after_minutes=0.1))
    try:
        with env.client() as admin:
            staff(admin, "o1")
            boxes = list(BOXES)[:2]
            receipts = admin.submit_events([report(f"real-{i}{j}", i, j) for i, j in boxes])
            submitted = time.monotonic()
            deadline = max(admin.get_event(r.event_id).event.deadline.ToDatetime(tzinfo=timezone.utc)
                           for r in receipts)
            stream = watch_overdue(admin, 0, timeout=120)
            first = [next(stream) for _ in range(2)]
            stream.cancel()
            assert time.monotonic() - submitted >= 59
            assert [(n.event_id, n.level) for n in first] == [(r.event_id, 1) for r in receipts]
            assert all(n.at.ToDatetime(tzinfo=timezone.utc) > deadline for n in first)
            resumed = watch_overdue(admin, first[-1].cursor, timeout=60)
            second = [next(resumed) for _ in range(2)]
            resumed.cancel()
            assert [(n.event_id, n.level, n.unit_code) for n in second] == [
                (r.event_id, 2, BOXES[box][1]) for r, box in zip(receipts, boxes)]
            assert drain(watch_overdue(admin, second[-1].cursor, timeout=1.5)) == []
    finally:
        assert env.server.stop(0).wait(10)


# ---------------------------------------------------------------------- layer activation

SPLIT = (2, 2)
WEST, EAST = "G002002W@a2", "G002002E@a2"


def redrawn(layer: GridLayer, path) -> None:
    """``layer`` with box SPLIT cut into a west and an east half (new codes), as GeoJSON for
    UploadLayer; every other box keeps its geometry and code."""
    features = []
    x0, y0 = LNG0 + SPLIT[0] * STEP, LAT0 + SPLIT[1] * STEP
    for row, geometry in enumerate(layer.geometries()):
        record = layer.record(row)
        properties = {k: record[k] for k in ("grid_code", "grid_type", "community_code", "street_code",
                                             "district_code")}
        if record["grid_code"] == grid(*SPLIT, "a1"):
            halves = ((WEST, shapely.box(x0, y0, x0 + STEP / 2, y0 + STEP)),
                      (EAST, shapely.box(x0 + STEP / 2, y0, x0 + STEP, y0 + STEP)))
        else:
            halves = ((record["grid_code"], geometry),)
        for code, shape in halves:
            features.append({"type": "Feature", "geometry": json.loads(shapely.to_geojson(shape)),
                             "properties": {**properties, "grid_code": code}})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))


@pytest.fixture
def open_events_env(tmp_path):
    layer = box_layer("a1", N)
    env = start_server(data_dir_with(tmp_path, layer), intake=IntakeSettings(clock_interval=3600.0))
    env.layers = {"a1": layer}
    yield env
    assert env.server.stop(0).wait(10)


def test_activation_through_layer_service_moves_open_events_and_redispatches(open_events_env, tmp_path):
    env = open_events_env
    old_worker = worker_of(*SPLIT)
    with env.client() as admin:
        # the halves' workers are staffed before the switch (their grids do not exist yet)
        halves = [intake_pb2.Worker(worker_id=f"W{side}", grid_code=code, skills=["01"], shift="always", capacity=100)
                  for side, code in (("west", WEST), ("east", EAST))]
        staff(admin, "a1", halves)
        west, east, done, other = admin.submit_events([
            report("west", *SPLIT, dx=-STEP / 4), report("east", *SPLIT, dx=STEP / 4),
            report("done", *SPLIT, dx=-STEP / 4, dy=STEP / 4), report("other", 5, 5)])
        assert [(r.grid_code, r.worker_id) for r in (west, east, done)] == [(grid(*SPLIT, "a1"), old_worker)] * 3
        for action in ("handle", "feedback", "verify", "close"):
            admin.update_status("done", action)
        before = {e: admin.get_event(e, include_audit=True) for e in ("done", "other")}

        redrawn(env.layers["a1"], tmp_path / "a2.geojson")
        uploaded = admin.upload_layer(tmp_path / "a2.geojson", version_id="a2")
        assert uploaded.n_grids == N * N + 1
        admin.publish_layer("a2")
        assert admin.activate_version("a2").previous_version_id == "a1"

        [fresh] = admin.submit_events([report("fresh", *SPLIT, dx=STEP / 3)])
        assert (fresh.grid_code, fresh.worker_id, fresh.state) == (EAST, "Weast", "dispatched")
        assert admin.get_event("fresh").event.layer_version == "a2"

        for event_id, code, worker in (("west", WEST, "Wwest"), ("east", EAST, "Weast")):
            answer = admin.get_event(event_id, include_audit=True)
            event = answer.event
            assert (event.grid_code, event.worker_id, event.state, event.layer_version) == (
                code, worker, "dispatched", "a2")
            assert (event.community_code, event.street_code) == ("C11", "S00")
            assert [(a.action, a.principal, a.worker_id) for a in answer.audit[1:]] == [
                ("relocate", "layer-activation", ""), ("redispatch", "citygrid", worker)]
            assert "a1 -> a2" in answer.audit[1].note
        for event_id in ("done", "other"):  # closed, or in a grid that did not change: untouched
            assert admin.get_event(event_id, include_audit=True) == before[event_id]
        assert before["other"].event.layer_version == "a1" and before["other"].event.worker_id == worker_of(5, 5)

        feeds = {w: drain(admin.watch_dispatches(w, timeout=1)) for w in (old_worker, "Wwest", "Weast")}
    assert [(n.event_id, n.kind) for n in feeds[old_worker]] == [
        ("west", "dispatched"), ("east", "dispatched"), ("done", "dispatched"), ("west", "revoked"),
        ("east", "revoked")]
    assert [(n.event_id, n.kind, n.grid_code) for n in feeds["Wwest"]] == [("west", "dispatched", WEST)]
    assert [(n.event_id, n.kind) for n in feeds["Weast"]] == [("east", "dispatched"), ("fresh", "dispatched")]
