"""Server plumbing: Prometheus metrics, TLS, configuration, AssignStream, cells."""

from __future__ import annotations

import shutil
import threading
import time
import subprocess
import urllib.request

import grpc
import pytest
from grpc_env import ADMIN_TOKEN, LAT0, LNG0, SPAN, T0, populate, start_server, wait_until

from citygrid.engine.errors import InvalidInput
from citygrid.grpc_api._pb import grid_pb2
from citygrid.grpc_api.client import CityGridClient, points_request
from citygrid.grpc_api.config import ServerConfig, load_config


def test_metrics_count_errors_and_time_each_method(env, admin):
    admin.assign_point(LNG0 + 0.01, LAT0 + 0.01)
    with pytest.raises(grpc.RpcError):
        admin.get_grid("NOPE")
    text = urllib.request.urlopen(f"http://127.0.0.1:{env.server.metrics_port}/metrics", timeout=5).read().decode()
    assert 'citygrid_grpc_requests_total{method="/citygrid.v1.GridService/AssignPoint",code="OK"}' in text
    assert 'citygrid_grpc_errors_total{method="/citygrid.v1.GridService/GetGrid",code="NOT_FOUND"}' in text
    assert 'citygrid_grpc_request_duration_seconds_bucket{method="/citygrid.v1.GridService/AssignPoint",le="+Inf"}' in text
    ok = [line for line in text.splitlines()
          if line.startswith('citygrid_grpc_requests_total{method="/citygrid.v1.GridService/AssignPoint",code="OK"}')]
    assert int(ok[0].split()[-1]) >= 1


def test_assign_stream_answers_each_point_in_order(admin):
    requests = [grid_pb2.AssignPointRequest(lng=LNG0 + 0.001 * k, lat=LAT0 + 0.001, request_id=f"e{k}")
                for k in range(1, 50)]
    requests.insert(10, grid_pb2.AssignPointRequest(lng=999, lat=0, request_id="bad"))
    answers = list(admin.assign_stream(requests))
    assert [a.request_id for a in answers] == [r.request_id for r in requests]
    assert answers[10].status == grid_pb2.POINT_STATUS_INVALID
    assert all(a.grid.code for i, a in enumerate(answers) if i != 10)


def test_cells_round_trip(admin):
    cells = admin.get_grid_cells("G005005@v1")
    assert len(cells.cell_ids) == len(cells.interior) > 0
    located = admin.locate_cell(cells.cell_ids[len(cells.cell_ids) // 2])
    assert "G005005@v1" in {g.code for g in located.grids}
    with pytest.raises(grpc.RpcError) as info:
        admin.locate_cell(0x8A2A1072B59FFFF)  # a cell in New York
    assert info.value.code() is grpc.StatusCode.NOT_FOUND


def test_list_grids_pages_stay_on_one_version(env, admin):
    codes = [g.code for g in admin.list_grids(page_size=150)]
    assert len(codes) == len(set(codes)) == env.layers["v1"].n_grids
    with pytest.raises(grpc.RpcError) as info:
        admin.grids.ListGrids(grid_pb2.ListGridsRequest(page_token="garbage!"), metadata=admin.metadata)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls_when_certificate_and_key_are_configured(tmp_path, env):
    key, cert = tmp_path / "server.key", tmp_path / "server.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    secure = start_server(env.data_dir, tls_cert=cert, tls_key=key, metrics_port=None)
    try:
        with CityGridClient(f"localhost:{secure.port}", ADMIN_TOKEN, tls_ca=cert) as client:
            assert client.assign_point(LNG0 + SPAN / 2, LAT0 + SPAN / 2).grid.code
        with CityGridClient(f"localhost:{secure.port}", ADMIN_TOKEN, timeout=2) as plain:
            with pytest.raises(grpc.RpcError) as info:
                plain.whoami()
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        secure.server.stop(0).wait(10)


def test_config_from_toml(tmp_path):
    path = tmp_path / "citygrid.toml"
    path.write_text('[server]\ndata_dir = "data"\nport = 6001\nmetrics_port = -1\nmax_points_per_request = 1000\n')
    config = load_config(path)
    assert config.data_dir == tmp_path / "data" and config.port == 6001 and config.metrics_port is None
    assert config.max_receive_message_bytes == 16 * 1000 + (1 << 20)
    with pytest.raises(InvalidInput, match="unknown"):
        ServerConfig.from_toml('[server]\nprot = 1\n')
    with pytest.raises(InvalidInput, match="both"):
        ServerConfig.from_toml('[server]\ntls_cert = "a.crt"\n')
    assert ServerConfig().max_streams_per_token == 100
    assert ServerConfig.from_toml('[server]\nmax_streams_per_token = 5\n').max_streams_per_token == 5
    with pytest.raises(InvalidInput, match="max_streams_per_token must be at least 1"):
        ServerConfig.from_toml('[server]\nmax_streams_per_token = 0\n')


def test_a_replica_serves_grids_only_and_follows_activations(env, admin):
    replica = start_server(env.data_dir, replica=True, follow_interval=0.05, metrics_port=None)
    try:
        with replica.client() as client:
            point = (LNG0 + SPAN / 3, LAT0 + SPAN / 3)
            assert client.assign_point(*point).layer_version == "v1"
            admin.activate_version("v3")
            deadline = time.monotonic() + 5
            while client.assign_point(*point).layer_version != "v3" and time.monotonic() < deadline:
                time.sleep(0.02)
            assert client.assign_point(*point).grid.code.endswith("@v3")
            with pytest.raises(grpc.RpcError) as info:
                client.list_versions()
            assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED
    finally:
        admin.activate_version("v1")
        replica.server.stop(0).wait(10)


def test_the_client_encodes_batches_as_protobuf_would(rng):
    for n in (1, 16, 100_000):
        lng, lat = rng.uniform(114, 115, n), rng.uniform(22, 23, n)
        raw = points_request(lng, lat, crs=grid_pb2.COORDINATE_SYSTEM_GCJ02, fallback_m=5.0, rows_only=True)
        expected = grid_pb2.AssignPointsRequest(lng=lng.tobytes(), lat=lat.tobytes(), fallback_m=5.0, rows_only=True,
                                                crs=grid_pb2.COORDINATE_SYSTEM_GCJ02)
        assert grid_pb2.AssignPointsRequest.FromString(raw) == expected


def test_unary_calls_beyond_max_concurrent_rpcs_are_refused_at_once(tmp_path):
    """Unary calls running or waiting for a handler thread are capped: beyond max_concurrent_rpcs a
    call gets RESOURCE_EXHAUSTED at once (not after a queue), and health checks still answer."""
    populate(tmp_path)
    release = threading.Event()

    def wait(request, context):
        release.wait(30)
        return b"done"

    env = start_server(tmp_path, max_workers=1, max_concurrent_rpcs=2, metrics_port=None)
    handlers = {"Wait": grpc.unary_unary_rpc_method_handler(wait)}
    env.server.registrar.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Slow", handlers)])
    try:
        with env.client(timeout=10) as client:
            slow = client.channel.unary_unary("/test.Slow/Wait")
            held = [slow.future(b"", metadata=client.metadata, timeout=30) for _ in range(2)]  # one runs, one waits
            assert wait_until(lambda: env.server.metrics.in_flight("/test.Slow/Wait") == 2, 10)
            start = time.monotonic()
            with pytest.raises(grpc.RpcError) as info:
                client.assign_point(LNG0 + 0.012, LAT0 + 0.012)
            assert time.monotonic() - start < 5
            assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_concurrent_rpcs" in info.value.details()
            assert client.health() == "SERVING"
            release.set()
            assert [f.result() for f in held] == [b"done", b"done"]
            assert client.assign_point(LNG0 + 0.012, LAT0 + 0.012).grid.code == "G002002@v1"
    finally:
        release.set()
        assert env.server.stop(0).wait(30)


def test_assign_point_runs_on_the_event_loop_when_it_is_an_in_memory_read(env, admin, monkeypatch):
    """A plain AssignPoint (no event_time) of a caller the token store knows runs on the event loop;
    one with an event_time (a version to look up) runs in a handler thread, as every other unary call."""
    from citygrid.engine.layers.assignment import Assigner

    where = []
    real = Assigner.assign_one

    def spy(self, *args, **kwargs):
        where.append(threading.current_thread().name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Assigner, "assign_one", spy)
    for _ in range(5):
        assert admin.assign_point(LNG0 + 0.012, LAT0 + 0.012).grid.code == "G002002@v1"
    assert "citygrid-aio" in where, where
    where.clear()
    for _ in range(3):
        assert admin.assign_point(LNG0 + 0.012, LAT0 + 0.012, at=T0).layer_version == "v1"
    assert where and all(name.startswith("citygrid-grpc") for name in where), where


def test_an_answer_at_hand_comes_from_the_event_loop_and_each_call_is_counted_once(env, admin):
    """A unary method marked ``threads.at_hand``: when its answer is at hand it comes from the event
    loop and the method does not run; when there is none the method runs in a handler thread; an
    error the answer raises ends the call with its status code; every call is counted once by the
    metrics, whichever way it went. (The loop is asked only while the caller's token is known without
    the database, so a call may go to a thread instead: hence the repeats.)"""
    from citygrid.grpc_api.threads import at_hand

    class Servicer:
        def __init__(self):
            self.ready = {b"kept": b"remembered"}
            self.where = []

        def answer(self, request):
            self.where.append(("answer", threading.current_thread().name))
            if request == b"bad":
                raise InvalidInput("a bad request")
            return self.ready.get(request)

        @at_hand(lambda servicer, request: servicer.answer(request))
        def Get(self, request, context):
            self.where.append(("method", threading.current_thread().name))
            return b"counted " + request

    servicer = Servicer()
    handlers = {"Get": grpc.unary_unary_rpc_method_handler(servicer.Get)}
    env.server.registrar.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Hand", handlers)])
    get = admin.channel.unary_unary("/test.Hand/Get")
    before = {code: env.server.metrics.count("/test.Hand/Get", code) for code in ("OK", "INVALID_ARGUMENT")}
    answers = [get(b"kept", metadata=admin.metadata) for _ in range(5)]
    assert set(answers) <= {b"remembered", b"counted kept"} and b"remembered" in answers
    assert ("answer", "citygrid-aio") in servicer.where
    assert all(name.startswith("citygrid-grpc") for kind, name in servicer.where if kind == "method"), servicer.where
    assert answers.count(b"counted kept") == [kind for kind, _ in servicer.where].count("method")
    servicer.where.clear()
    assert get(b"other", metadata=admin.metadata) == b"counted other"  # not at hand: in a thread
    assert [name.startswith("citygrid-grpc") for kind, name in servicer.where if kind == "method"] == [True]
    refused = 0
    for _ in range(5):
        try:
            assert get(b"bad", metadata=admin.metadata) == b"counted bad"  # (the caller was not known at once)
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.INVALID_ARGUMENT and "a bad request" in exc.details()
            refused += 1
    assert refused
    assert env.server.metrics.count("/test.Hand/Get", "OK") - before["OK"] == 5 + 1 + 5 - refused
    assert env.server.metrics.count("/test.Hand/Get", "INVALID_ARGUMENT") - before["INVALID_ARGUMENT"] == refused
    assert env.server.metrics.in_flight("/test.Hand/Get") == 0
