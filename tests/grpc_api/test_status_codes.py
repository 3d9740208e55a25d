"""One test per status code: each bad input gets its precise code and a message a person can act on."""

from __future__ import annotations

import logging
from datetime import timedelta

import grpc
import numpy as np
import pytest

from citygrid.engine.errors import DeadlineExceeded, InvalidInput, NotFound, Unavailable
from citygrid.grpc_api._pb import grid_pb2
from citygrid.grpc_api.errors import STATUS_CODES, status_of
from citygrid.grpc_api.server import create_server
from citygrid.grpc_api.config import ServerConfig

from grpc_env import ADMIN_TOKEN, LAT0, LNG0, MAX_POINTS, T0, box_layer, wait_until

ASSIGN_POINTS = "/citygrid.v1.GridService/AssignPoints"
#: UTF-8 bytes of a message that fit a client's 8 KiB trailer limit even percent-encoded (3 characters a byte).
MESSAGE_BUDGET = 1024


def code_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_the_table_covers_every_error_class():
    assert len(STATUS_CODES) == 9
    assert status_of(NotFound("x")) is grpc.StatusCode.NOT_FOUND
    assert status_of(Unavailable("x")) is grpc.StatusCode.UNAVAILABLE
    assert status_of(DeadlineExceeded("x")) is grpc.StatusCode.DEADLINE_EXCEEDED
    assert status_of(ValueError("x")) is None


BAD_POINTS = [(200.0, 22.7), (114.2, -91.0), (float("nan"), 22.7), (114.2, float("inf")), (float("-inf"), 0.0)]


def test_a_bad_point_gets_status_invalid_in_every_method(admin):
    """NaN, infinite or out-of-range coordinates: status INVALID and no grid, whether sent alone, in a
    stream or in a batch (the README's promise), and the good points around them are answered."""
    for lng, lat in BAD_POINTS:
        answer = admin.assign_point(lng, lat)
        assert answer.status == grid_pb2.POINT_STATUS_INVALID and not answer.grid.code, (lng, lat)
    good = (LNG0 + 0.001, LAT0 + 0.001)
    points = [good, *BAD_POINTS, good]
    streamed = list(admin.assign_stream(grid_pb2.AssignPointRequest(lng=x, lat=y) for x, y in points))
    batch = admin.assign_points([x for x, _ in points], [y for _, y in points])
    invalid = [False] + [True] * len(BAD_POINTS) + [False]
    assert [a.status == grid_pb2.POINT_STATUS_INVALID for a in streamed] == invalid
    assert [s == grid_pb2.POINT_STATUS_INVALID for s in batch.statuses] == invalid
    assert streamed[0].grid.code and streamed[-1].grid.code and batch.grid_rows[0] >= 0


def test_invalid_argument_empty_or_ragged_batch(admin):
    code, details = code_of(lambda: admin.assign_points([], []))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "empty" in details
    code, details = code_of(lambda: admin.assign_points([114.2, 114.3], [22.7]))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "2 values and lat 1" in details


def test_a_bad_point_in_a_batch_gets_its_own_status(admin):
    result = admin.assign_points([LNG0 + 0.001, np.nan, 500.0, LNG0 + 0.05], [LAT0 + 0.001, 22.7, 22.7, LAT0 + 0.05])
    assert result.statuses.tolist()[1:3] == [5, 5]  # POINT_STATUS_INVALID
    assert result.grid_rows[1] == -1 and result.grid_rows[2] == -1
    assert result.grid_rows[0] >= 0 and result.grid_rows[3] >= 0


@pytest.mark.parametrize("unit", ["X", "网"], ids=["ascii", "chinese"])
def test_a_huge_echoed_input_is_cut_from_the_message_not_the_answer(admin, unit):
    """A megabyte-long grid code is NOT_FOUND with a message bounded at the server (the client's
    metadata limit would otherwise turn it into RESOURCE_EXHAUSTED), keeping its start and its end."""
    code, details = code_of(lambda: admin.get_grid(unit * 1_000_000))
    assert code is grpc.StatusCode.NOT_FOUND
    assert len(details.encode()) <= MESSAGE_BUDGET
    assert details.startswith("no grid") and unit * 50 in details and "bytes left out" in details


def test_not_found_unknown_code_and_missing_version(admin):
    code, details = code_of(lambda: admin.get_grid("NO-SUCH-GRID"))
    assert code is grpc.StatusCode.NOT_FOUND and "NO-SUCH-GRID" in details
    code, details = code_of(lambda: admin.activate_version("v404"))
    assert code is grpc.StatusCode.NOT_FOUND and "v404" in details
    code, details = code_of(lambda: admin.assign_point(LNG0 + 0.01, LAT0 + 0.01, at=T0 - timedelta(days=1)))
    assert code is grpc.StatusCode.NOT_FOUND and "no published layer version is valid" in details


def test_already_exists_other_content_under_an_existing_version_id(admin, tmp_path):
    path = tmp_path / "v1.geojson"
    _write_geojson(box_layer("v1", 3), path)
    code, details = code_of(lambda: admin.upload_layer(path, version_id="v1"))
    assert code is grpc.StatusCode.ALREADY_EXISTS and "v1" in details


def test_failed_precondition_unpublished_version_and_early_valid_from(env, admin, tmp_path):
    path = tmp_path / "draft.geojson"
    _write_geojson(box_layer("draft", 4), path)
    assert admin.upload_layer(path, version_id="draft").published is False
    code, details = code_of(lambda: admin.activate_version("draft"))
    assert code is grpc.StatusCode.FAILED_PRECONDITION and "not published" in details
    code, details = code_of(lambda: admin.publish_layer("draft", valid_from=T0))
    assert code is grpc.StatusCode.FAILED_PRECONDITION and "not after" in details
    code, details = code_of(lambda: admin.publish_layer("v2"))
    assert code is grpc.StatusCode.FAILED_PRECONDITION and "already published" in details


def test_resource_exhausted_oversized_batch(admin):
    n = MAX_POINTS + 1
    code, details = code_of(lambda: admin.assign_points(np.full(n, LNG0), np.full(n, LAT0)))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED and f"{MAX_POINTS:,}" in details


def test_resource_exhausted_over_the_message_size_limit(env, admin):
    n = env.server.state.config.max_receive_message_bytes // 16 + 1
    code, _ = code_of(lambda: admin.assign_points(np.zeros(n), np.zeros(n)))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_unauthenticated(env):
    for token in (None, "wrong-token"):
        with env.client(token) as client:
            code, details = code_of(lambda: client.assign_point(LNG0, LAT0))
            assert code is grpc.StatusCode.UNAUTHENTICATED
            assert "token" in details


def test_permission_denied_for_a_non_admin_change(env, admin):
    secret = admin.issue_token("大屏", "dashboard").token
    with env.client(secret) as client:
        code, details = code_of(lambda: client.activate_version("v2"))
        assert code is grpc.StatusCode.PERMISSION_DENIED and "admin" in details


def test_deadline_exceeded_long_batch(env, admin, rng):
    """A long batch with a short deadline stops between kernel chunks; no work is left running."""
    n = MAX_POINTS
    lng, lat = rng.uniform(LNG0, LNG0 + 0.1, n), rng.uniform(LAT0, LAT0 + 0.1, n)
    metrics = env.server.metrics
    admin.assign_points(lng, lat, crs="gcj02", rows_only=True)  # compile the kernels first
    full = sorted(time_call(lambda: admin.assign_points(lng, lat, crs="gcj02", rows_only=True)) for _ in range(3))[1]
    before = metrics.count(ASSIGN_POINTS, "DEADLINE_EXCEEDED")
    for fraction in (0.5, 0.3, 0.7, 0.2, 0.8):
        code, _ = code_of(lambda: admin.assign_points(lng, lat, crs="gcj02", rows_only=True, timeout=full * fraction))
        assert code is grpc.StatusCode.DEADLINE_EXCEEDED
        if wait_until(lambda: metrics.in_flight(ASSIGN_POINTS) == 0 and metrics.count(ASSIGN_POINTS) > 0, 2.0):
            if metrics.count(ASSIGN_POINTS, "DEADLINE_EXCEEDED") > before:
                break
    assert metrics.count(ASSIGN_POINTS, "DEADLINE_EXCEEDED") > before, "the server never stopped a batch on its deadline"
    assert wait_until(lambda: metrics.in_flight(ASSIGN_POINTS) == 0, 2.0), "a batch is still running after its deadline"


def test_internal_errors_send_no_traceback(caplog, tmp_path):
    """Anything but a CityGrid error is INTERNAL with a reference; the traceback is logged, not sent;
    in a plain unary method (run in a handler thread) and in an async streaming one (on the loop)."""

    def broken(request, context):
        raise KeyError("secret internals")

    def invalid(request, context):
        raise InvalidInput("bad thing; do this instead")

    async def broken_stream(request, context):
        yield b"first"
        raise KeyError("secret stream internals")

    handlers = {"Broken": grpc.unary_unary_rpc_method_handler(broken),
                "Invalid": grpc.unary_unary_rpc_method_handler(invalid),
                "BrokenStream": grpc.unary_stream_rpc_method_handler(broken_stream)}
    config = ServerConfig(data_dir=tmp_path, host="127.0.0.1", port=0, metrics_port=None, http_port=None, admin_token=ADMIN_TOKEN)
    server, port = create_server(config, service_modules=("token_service",))
    server.registrar.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Broken", handlers)])
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, caplog.at_level(logging.ERROR):
            md = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
            code, details = code_of(lambda: channel.unary_unary("/test.Broken/Broken")(b"", metadata=md))
            assert code is grpc.StatusCode.INTERNAL
            assert "secret internals" not in details and "Traceback" not in details
            reference = details.split("reference ")[1].split(")")[0]
            assert any(reference in r.getMessage() and r.exc_info for r in caplog.records)
            code, details = code_of(lambda: channel.unary_unary("/test.Broken/Invalid")(b"", metadata=md))
            assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "bad thing; do this instead")
            answers = []
            code, details = code_of(lambda: answers.extend(channel.unary_stream("/test.Broken/BrokenStream")(b"", metadata=md)))
            assert answers == [b"first"] and code is grpc.StatusCode.INTERNAL and "secret" not in details
            reference = details.split("reference ")[1].split(")")[0]
            assert any(reference in r.getMessage() and r.exc_info for r in caplog.records)
    finally:
        assert server.stop(None).wait(10)


def time_call(call) -> float:
    import time

    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _write_geojson(layer, path) -> None:
    import json

    import shapely

    features = [
        {"type": "Feature", "geometry": json.loads(shapely.to_geojson(g)), "properties": {"grid_code": c}}
        for g, c in zip(layer.geometries(), layer.codes)
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
