"""Open streams do not stop the server (issue 10).

A district keeps a ``WatchDispatches`` stream open per worker terminal all day. Streams are
coroutines on the server's event loop, not handler threads, so 500 terminals watching (far past the
old limit of one thread per stream: 8 threads in these tests, 32 by default) leave unary calls and
health checks answering, and each stream still gets its dispatches. One token holds at most
``max_streams_per_token`` streams: beyond that RESOURCE_EXHAUSTED with a message that says what to
do, and other tokens are not affected.
"""

from __future__ import annotations

import threading

import grpc
import pytest
from grpc_env import ADMIN_TOKEN, LAT0, LNG0, NOW, SPAN, VERSIONS, populate, start_server, wait_until

from citygrid.engine.access.tokens import TokenStore
from citygrid.grpc_api._pb import grid_pb2, grid_pb2_grpc, intake_pb2, intake_pb2_grpc

#: Worker terminals, each watching its own dispatches with its own token.
TERMINALS = 500
#: Channels (connections) the terminals' streams are spread over.
CHANNELS = 10
SIDE = VERSIONS["v1"]
STEP = SPAN / SIDE
WATCH = "/citygrid.v1.IntakeService/WatchDispatches"
ASSIGN_STREAM = "/citygrid.v1.GridService/AssignStream"
CLASSES = ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13"]
#: The default of ``max_streams_per_token``.
DEFAULT_STREAM_CAP = 100


def box(k: int) -> tuple[int, int]:
    """The box of v1 terminal ``k`` works in (boxes 100-399 have one terminal, 0-99 two)."""
    return divmod(k % (SIDE * SIDE), SIDE)


def terminal(k: int) -> str:
    return f"T{k:03d}"


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    """A server (8 handler threads) over layer v1 with a worker per terminal, each with its own token."""
    data_dir = tmp_path_factory.mktemp("streams")
    populate(data_dir)
    store = TokenStore(data_dir)
    try:
        tokens = [store.issue(f"terminal {k}", "worker", worker_id=terminal(k))[0] for k in range(TERMINALS)]
    finally:
        store.close()
    env = start_server(data_dir)
    with env.client() as admin:
        workers = [intake_pb2.Worker(worker_id=terminal(k), grid_code="G{:03d}{:03d}@v1".format(*box(k)),
                                     skills=CLASSES, shift="always", capacity=1000) for k in range(TERMINALS)]
        admin.intake.PutWorkers(intake_pb2.PutWorkersRequest(workers=workers), metadata=admin.metadata)
    yield env, tokens
    assert env.server.stop(1.0).wait(60)


@pytest.fixture
def channels(district):
    env, _ = district
    opened = [grpc.insecure_channel(env.target) for _ in range(CHANNELS)]
    yield opened
    for channel in opened:
        channel.close()


@pytest.fixture
def idle():
    """``idle()``: a request stream that sends nothing until the test ends (an idle terminal)."""
    done = threading.Event()

    def requests():
        done.wait()
        yield from ()

    yield requests
    done.set()


def report_in(k: int, event_id: str) -> intake_pb2.EventReport:
    i, j = box(k)
    message = intake_pb2.EventReport(event_id=event_id, category_code="0101", source="hotline_12345",
                                     lng=LNG0 + (i + 0.5) * STEP, lat=LAT0 + (j + 0.5) * STEP)
    message.occurred_at.FromDatetime(NOW)  # the server's intake clock (grpc_env)
    return message


def test_500_open_watch_streams_leave_unary_calls_and_health_answering(district, channels):
    env, tokens = district
    metrics = env.server.metrics
    streams = []
    try:
        for k, token in enumerate(tokens):
            stub = intake_pb2_grpc.IntakeServiceStub(channels[k % CHANNELS])
            streams.append(stub.WatchDispatches(intake_pb2.WatchDispatchesRequest(), metadata=bearer(token),
                                                timeout=300))
        assert wait_until(lambda: metrics.in_flight(WATCH) == TERMINALS, 90), (
            f"{metrics.in_flight(WATCH)} of {TERMINALS} watch streams are open on the server")
        with env.client(timeout=5) as admin:
            for k in range(20):
                answer = admin.assign_point(LNG0 + (k + 0.5) * STEP, LAT0 + 0.5 * STEP)
                assert answer.grid.code == f"G{k:03d}000@v1"
                assert admin.health() == "SERVING"
                assert admin.whoami().principal == "admin (config)"
            # A report placed in terminal 250's box is dispatched to its worker; its open stream has it.
            [receipt] = admin.submit_events([report_in(250, "streams-250")])
        assert receipt.worker_id == terminal(250)
        notice = next(streams[250])
        assert (notice.event_id, notice.worker_id, notice.kind) == ("streams-250", terminal(250), "dispatched")
        assert metrics.in_flight(WATCH) == TERMINALS
    finally:
        for stream in streams:
            stream.cancel()
    assert wait_until(lambda: metrics.in_flight(WATCH) == 0, 60), "cancelled watch streams stay open on the server"


def test_one_token_holds_at_most_max_streams_per_token(district, channels, idle):
    env, tokens = district
    cap = DEFAULT_STREAM_CAP
    metrics = env.server.metrics
    mine = intake_pb2_grpc.IntakeServiceStub(channels[0])
    held = []
    try:
        # One dashboard token, idle AssignStreams (a request stream that never sends) up to the cap.
        for k in range(cap):
            stub = grid_pb2_grpc.GridServiceStub(channels[k % CHANNELS])
            held.append(stub.AssignStream(idle(), metadata=bearer(tokens[0]), timeout=300))
        assert wait_until(lambda: metrics.in_flight(ASSIGN_STREAM) == cap, 60), metrics.in_flight(ASSIGN_STREAM)
        over = mine.WatchDispatches(intake_pb2.WatchDispatchesRequest(), metadata=bearer(tokens[0]), timeout=20)
        with pytest.raises(grpc.RpcError) as info:
            next(over)
        assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_streams_per_token" in info.value.details() and f"{cap} streams open" in info.value.details()
        # Another token is not affected, and neither are unary calls of the full token.
        other = mine.WatchDispatches(intake_pb2.WatchDispatchesRequest(), metadata=bearer(tokens[1]), timeout=300)
        assert wait_until(lambda: metrics.in_flight(WATCH) == 1, 30)
        other.cancel()
        with env.client(tokens[0], timeout=5) as full:
            assert full.whoami().worker_id == terminal(0)
        # Closing one of its streams makes room for one more.
        held.pop().cancel()
        assert wait_until(lambda: metrics.in_flight(ASSIGN_STREAM) == cap - 1, 30)
        again = mine.WatchDispatches(intake_pb2.WatchDispatchesRequest(), metadata=bearer(tokens[0]), timeout=300)
        assert wait_until(lambda: metrics.in_flight(WATCH) == 1, 30)
        again.cancel()
    finally:
        for stream in held:
            stream.cancel()
    assert wait_until(lambda: metrics.in_flight(ASSIGN_STREAM) == 0, 30)


def test_the_stream_limit_is_configurable(tmp_path, idle):
    populate(tmp_path)
    env = start_server(tmp_path, max_streams_per_token=2, metrics_port=None)
    try:
        with grpc.insecure_channel(env.target) as channel:
            stub = grid_pb2_grpc.GridServiceStub(channel)
            md = bearer(ADMIN_TOKEN)
            first = stub.AssignStream(iter([grid_pb2.AssignPointRequest(lng=LNG0 + 0.012, lat=LAT0 + 0.012)]),
                                      metadata=md, timeout=30)
            assert [a.grid.code for a in first] == ["G002002@v1"]  # a finished stream no longer counts
            held = [stub.AssignStream(idle(), metadata=md, timeout=30) for _ in range(2)]
            assert wait_until(lambda: env.server.metrics.in_flight(ASSIGN_STREAM) == 2, 30)
            third = stub.AssignStream(idle(), metadata=md, timeout=30)
            with pytest.raises(grpc.RpcError) as info:
                next(third)
            assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "2 streams open" in info.value.details()
            for stream in held:
                stream.cancel()
    finally:
        assert env.server.stop(0).wait(30)
