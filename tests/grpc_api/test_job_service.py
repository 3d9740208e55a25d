"""JobService over gRPC: a re-indexing job submitted, watched to the end and checked row for row
against the local engine, and the status codes of the calls that must fail."""

from __future__ import annotations

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from grpc_env import LAT0, LNG0, NOW, SPAN, VERSIONS, random_points

from citygrid.cluster import outputs
from citygrid.cluster.columns import STATUS_NAMES
from citygrid.cluster.session import RaySession
from citygrid.engine.layers.assignment import Assigner
from citygrid.grpc_api._pb import intake_pb2

N_POINTS = 30_000


@pytest.fixture(scope="module")
def ray_session():
    """Ray with 2 CPUs (the one already running in this process, if any: the runner joins it)."""
    session = RaySession.open(num_cpus=2)
    yield session
    session.close()


@pytest.fixture(scope="module")
def job_env(ray_session, env):
    """The server (torn down before Ray: its runner is closed first)."""
    return env


@pytest.fixture(scope="module")
def points(job_env, tmp_path_factory):
    """Random points over the test square and a margin outside it (so some rows get no grid)."""
    lng, lat = random_points(np.random.default_rng(6), N_POINTS, margin=0.01)
    path = tmp_path_factory.mktemp("job-input") / "points.parquet"
    pq.write_table(pa.table({"x": lng, "y": lat, "label": [f"p{i}" for i in range(N_POINTS)]}), path,
                   row_group_size=10_000)
    return path


@pytest.fixture(scope="module")
def finished(job_env, points, tmp_path_factory):
    """A job of v2 with v1 as the previous version, watched over gRPC until it settled."""
    output = tmp_path_factory.mktemp("job-output") / "out"
    with job_env.client() as client:
        job_id = client.submit_reindex(str(points), "v2", str(output), previous="v1",
                                       lng_column="x", lat_column="y", partition_by="community")
        updates = list(client.watch_job(job_id, timeout=120))
        final = client.get_job(job_id)
    return job_id, output, updates, final


def test_job_runs_to_the_end_and_matches_the_local_engine(job_env, points, finished):
    job_id, output, updates, final = finished
    assert [u.job_id for u in updates] == [job_id] * len(updates)
    assert updates[-1].state == "succeeded", updates[-1].error
    assert all(u.state in ("queued", "running") for u in updates[:-1])
    done = [u.rows_done for u in updates]
    assert done == sorted(done), "progress never goes back"

    assert final.state == "succeeded" and final.progress == 1.0
    assert final.rows_done == final.rows_total == N_POINTS
    assert final.output == str(output) and final.layer == "v2" and final.previous == "v1"
    assert final.partitions_written >= 2
    assert final.finished_at.ToDatetime() >= final.started_at.ToDatetime() >= final.created_at.ToDatetime()
    assert final.changes.version == "v2" and final.changes.previous_version == "v1"
    assert final.changes.rows == N_POINTS and 0 < final.changes.rows_moved < N_POINTS

    table = outputs.open_output(output).to_table().sort_by("row_id")
    source = pq.read_table(points)
    np.testing.assert_array_equal(table.column("row_id").to_numpy(), np.arange(N_POINTS))
    assert table.column("label").to_pylist() == source.column("label").to_pylist()
    layer = job_env.layers["v2"]
    result = Assigner.for_layer(layer).assign(source.column("x").to_numpy(), source.column("y").to_numpy())
    codes, communities = layer.column("grid_code"), layer.column("community_code")
    assert table.column("grid_code").to_pylist() == [codes[r] if r >= 0 else None for r in result.grid_rows]
    assert table.column("community_code").cast(pa.string()).to_pylist() == [
        communities[r] if r >= 0 else None for r in result.grid_rows]
    assert table.column("status").cast(pa.string()).to_pylist() == [STATUS_NAMES[s] for s in result.status]
    assert 0 < sum(r < 0 for r in result.grid_rows) < N_POINTS, "the margin puts some points outside"


def test_cancelling_a_finished_job_is_a_failed_precondition(admin, finished):
    with pytest.raises(grpc.RpcError) as caught:
        admin.cancel_job(finished[0])
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "succeeded" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        admin.resume_job(finished[0])
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION


def test_unknown_job_is_not_found(admin):
    for call in (admin.get_job, admin.cancel_job, admin.resume_job, lambda j: list(admin.watch_job(j, timeout=10))):
        with pytest.raises(grpc.RpcError) as caught:
            call("reindex-000000000000")
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND


def test_dashboard_may_read_but_not_submit_or_cancel(job_env, admin, points, finished, tmp_path):
    secret = admin.issue_token("wall screen", "dashboard").token
    with job_env.client(secret) as dashboard:
        with pytest.raises(grpc.RpcError) as caught:
            dashboard.submit_reindex(str(points), "v2", str(tmp_path / "out"))
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as caught:
            dashboard.cancel_job(finished[0])
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert dashboard.get_job(finished[0]).state == "succeeded"
        assert [j.state for j in dashboard.watch_job(finished[0], timeout=10)] == ["succeeded"]
    with job_env.client(None) as anonymous, pytest.raises(grpc.RpcError) as caught:
        anonymous.get_job(finished[0])
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_a_token_of_one_area_may_not_read_a_district_wide_job(job_env, admin, finished):
    """A job reads and writes whole files of the district; its progress, paths and counts are not
    one community's to see."""
    secret = admin.issue_token("C00 大屏", "dashboard", ["C00"]).token
    with job_env.client(secret) as community:
        for call in (community.get_job, lambda j: list(community.watch_job(j, timeout=10))):
            with pytest.raises(grpc.RpcError) as caught:
                call(finished[0])
            assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
            assert "district-wide" in caught.value.details()


def test_bad_requests_are_refused_at_submission(admin, points, tmp_path):
    out = str(tmp_path / "out")
    cases = [
        (("", "v2", out), {}, grpc.StatusCode.INVALID_ARGUMENT),
        ((str(points), "v2", ""), {}, grpc.StatusCode.INVALID_ARGUMENT),
        ((str(points), "v2", out), {"partition_by": "planet"}, grpc.StatusCode.INVALID_ARGUMENT),
        ((str(tmp_path / "nothing.parquet"), "v2", out), {}, grpc.StatusCode.NOT_FOUND),
        ((str(points), "no-such-version", out), {}, grpc.StatusCode.NOT_FOUND),
    ]
    for args, options, code in cases:
        with pytest.raises(grpc.RpcError) as caught:
            admin.submit_reindex(*args, **options)
        assert caught.value.code() is code, (args, options, caught.value.details())


def test_cancel_then_resume(job_env, admin, points, finished, tmp_path):
    output = tmp_path / "out"
    job_id = admin.submit_reindex(str(points), "v1", str(output), lng_column="x", lat_column="y")
    cancelled = admin.cancel_job(job_id)
    assert cancelled.state == "cancelled" or cancelled.cancel_requested
    assert [j.state for j in admin.watch_job(job_id, timeout=60)][-1] == "cancelled"

    assert admin.resume_job(job_id).state == "queued"
    final = list(admin.watch_job(job_id, timeout=120))[-1]
    assert final.state == "succeeded", final.error
    assert final.rows_done == N_POINTS and not final.changes.version  # no previous: no change report
    rows = outputs.open_output(output).to_table(columns=["row_id"]).column("row_id").to_numpy()
    np.testing.assert_array_equal(np.sort(rows), np.arange(N_POINTS))


def test_change_report_lists_the_intakes_open_events_and_workers(job_env, admin, points, tmp_path):
    """A job naming no events or workers files reports on the intake's: three open events and one
    worker in v1's box (0, 0), which v2 (bigger boxes) merges with its neighbours."""
    step = SPAN / VERSIONS["v1"]
    worker = intake_pb2.Worker(worker_id="W-job", grid_code="G000000@v1", name="网格员", skills=["01"],
                               shift="always", capacity=10)
    admin.intake.PutWorkers(intake_pb2.PutWorkersRequest(workers=[worker]), metadata=admin.metadata)
    reports = []
    for k, (i, j) in enumerate([(0, 0), (7, 3), (12, 18)]):
        message = intake_pb2.EventReport(event_id=f"job-{k}", category_code="0101", source="hotline_12345",
                                         lng=LNG0 + (i + 0.5) * step, lat=LAT0 + (j + 0.5) * step)
        message.occurred_at.FromDatetime(NOW)
        reports.append(message)
    request = intake_pb2.SubmitEventsRequest(events=reports)
    receipts = admin.intake.SubmitEvents(request, metadata=admin.metadata).receipts
    assert [r.grid_code for r in receipts] == ["G000000@v1", "G007003@v1", "G012018@v1"]

    job_id = admin.submit_reindex(str(points), "v2", str(tmp_path / "out"), previous="v1",
                                  lng_column="x", lat_column="y")
    final = list(admin.watch_job(job_id, timeout=120))[-1]
    assert final.state == "succeeded", final.error
    assert final.changes.events_changed == 3  # every code of v2 differs from v1's
    assert final.changes.workers_to_confirm == 1
