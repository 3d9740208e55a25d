"""``citygrid serve`` as a process: it logs its address, and on SIGTERM drains calls in flight, refuses
new ones, then exits 0."""

from __future__ import annotations

import signal
import threading
import time

import grpc
import pytest
from grpc_env import ADMIN_TOKEN, LAT0, LNG0, populate, start_serve, stop_serve, wait_for_line

from citygrid.grpc_api._pb import grid_pb2
from citygrid.grpc_api.client import CityGridClient


N = 60  # calls on the stream, one every 50 ms


def test_sigterm_drains_calls_in_flight(tmp_path):
    data_dir = tmp_path / "data"
    populate(data_dir)
    config = tmp_path / "citygrid.toml"
    config.write_text(f'[server]\ndata_dir = "data"\nadmin_token = "{ADMIN_TOKEN}"\ngrace_seconds = 10\n')
    proc, port, lines = start_serve(["--config", str(config)], tmp_path)
    try:
        first_answer = threading.Event()
        answers, errors = [], []

        def slow_requests():  # about 3 s of calls, so the stream is still in flight while it drains
            for k in range(N):
                yield grid_pb2.AssignPointRequest(lng=LNG0 + 0.001 * (k + 1), lat=LAT0 + 0.001, request_id=str(k))
                time.sleep(0.05)

        def stream():
            with CityGridClient(f"127.0.0.1:{port}", ADMIN_TOKEN) as client:
                try:
                    for answer in client.assign_stream(slow_requests()):
                        answers.append(answer)
                        first_answer.set()
                except grpc.RpcError as exc:
                    errors.append(exc)
                    first_answer.set()

        streaming = threading.Thread(target=stream)
        streaming.start()
        assert first_answer.wait(30)
        proc.send_signal(signal.SIGTERM)
        wait_for_line(proc, lines, "draining calls in flight", timeout=30)
        with CityGridClient(f"127.0.0.1:{port}", ADMIN_TOKEN, timeout=2) as late:
            with pytest.raises(grpc.RpcError) as info:
                late.assign_point(LNG0 + 0.01, LAT0 + 0.01)
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE
            assert streaming.is_alive(), "refused only after the stream ended: draining was not tested"
        streaming.join(30)
        assert not errors, errors
        assert [a.request_id for a in answers] == [str(k) for k in range(N)]
        assert all(a.grid.code for a in answers)
        assert proc.wait(30) == 0
    finally:
        stop_serve(proc)
    log = "".join(lines)
    assert "draining" in log and "stopped" in log and "Traceback" not in log
