"""Crash safety of intake: a ``citygrid serve`` process is killed with SIGKILL while a client streams
reports (SubmitStream). After a restart every acknowledged report is stored exactly once, with the
dispatch its acknowledgement named, and the client's retry of the whole stream completes without a
duplicate (acknowledged and committed-but-unacknowledged reports come back as replays)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from grpc_env import ADMIN_TOKEN, LAT0, LNG0, SPAN, VERSIONS, populate, start_serve, stop_serve

from citygrid.engine.cases.taxonomy import load_taxonomy
from citygrid.grpc_api._pb import intake_pb2
from citygrid.grpc_api.client import CityGridClient

N = VERSIONS["v1"]
STEP = SPAN / N
CATEGORIES = [c.code for c in load_taxonomy().categories]
CLASSES = sorted({c.class_code for c in load_taxonomy().categories})
OCCURRED = datetime(2026, 3, 9, 1, 0, tzinfo=timezone.utc)


def reports(n: int) -> list[intake_pb2.EventReport]:
    out = []
    for k in range(n):
        i, j = k % N, (k // N) % N
        r = intake_pb2.EventReport(
            event_id=f"crash-{k:06d}", category_code=CATEGORIES[k % len(CATEGORIES)], source="video_analytics",
            lng=LNG0 + (i + 0.1 + 0.8 * ((k * 7919) % 97) / 97) * STEP,
            lat=LAT0 + (j + 0.1 + 0.8 * ((k * 104729) % 89) / 89) * STEP,
        )
        r.occurred_at.FromDatetime(OCCURRED)
        out.append(r)
    return out


def put_workers(client: CityGridClient) -> None:
    workers = [intake_pb2.Worker(worker_id=f"W{i:02d}{j:02d}", grid_code=f"G{i:03d}{j:03d}@v1", skills=CLASSES,
                                 shift="always", capacity=1_000_000) for i in range(N) for j in range(N)]
    client.intake.PutWorkers(intake_pb2.PutWorkersRequest(workers=workers), metadata=client.metadata, timeout=60)


def stored_events(client: CityGridClient) -> list[intake_pb2.Event]:
    return list(client.list_events(page_size=1000))


def run_crash(tmp_path, n: int, kill_after: int) -> None:
    data_dir = tmp_path / "data"
    populate(data_dir)
    config = tmp_path / "citygrid.toml"
    config.write_text(f'[server]\ndata_dir = "data"\nadmin_token = "{ADMIN_TOKEN}"\n'
                      f'[intake]\nclock_start = {(OCCURRED + timedelta(hours=1)).isoformat()}\n')
    sent = reports(n)

    proc, port, lines = start_serve(["--config", str(config)], tmp_path)
    acks: list[intake_pb2.Receipt] = []
    enough, killed = threading.Event(), threading.Event()
    errors: list[grpc.RpcError] = []

    def requests():
        """All reports, the last third held back until the server is killed: the kill always falls in
        the middle of the stream, however slowly the machine runs this thread."""
        held = kill_after + (n - kill_after) // 3
        yield from sent[:held]
        killed.wait(180)
        yield from sent[held:]

    try:
        with CityGridClient(f"127.0.0.1:{port}", ADMIN_TOKEN) as client:
            put_workers(client)

            def stream():
                try:
                    for receipt in client.submit_stream(requests()):
                        acks.append(receipt)
                        if len(acks) >= kill_after:
                            enough.set()
                except grpc.RpcError as exc:
                    errors.append(exc)
                finally:
                    enough.set()

            streaming = threading.Thread(target=stream)
            streaming.start()
            assert enough.wait(120)
            proc.kill()  # SIGKILL: no drain, no clean close
            killed.set()
            streaming.join(60)
    finally:
        stop_serve(proc)
    assert errors and errors[0].code() is grpc.StatusCode.UNAVAILABLE, "the stream should end with the kill"
    assert kill_after <= len(acks) < n, "the kill should come in the middle of the stream"
    assert all(not a.error.code for a in acks)
    assert [a.event_id for a in acks] == [r.event_id for r in sent[:len(acks)]]

    proc, port, lines = start_serve(["--config", str(config)], tmp_path)
    try:
        with CityGridClient(f"127.0.0.1:{port}", ADMIN_TOKEN) as client:
            events = stored_events(client)
            ids = [e.event_id for e in events]
            assert len(ids) == len(set(ids)), "an event is stored twice"
            by_id = {e.event_id: e for e in events}
            for a in acks:
                e = by_id.get(a.event_id)
                assert e is not None, f"acknowledged {a.event_id} is lost"
                assert (e.state, e.worker_id, e.grid_code, e.duplicate_of) == (
                    a.state, a.worker_id, a.grid_code, a.duplicate_of)
            # many land near an open report of their category (duplicates, linked not dispatched)
            assert sum(a.state == "dispatched" for a in acks) >= min(len(acks) // 2, 2_000)
            # the client retries everything it sent: acknowledged ones replay, the rest complete
            retried = list(client.submit_stream(iter(sent)))
            assert [r.event_id for r in retried] == [r.event_id for r in sent]
            assert all(not r.error.code for r in retried)
            acked = {a.event_id: a for a in acks}
            for r in retried:
                if r.event_id in acked:
                    assert not r.created and r.worker_id == acked[r.event_id].worker_id
            after = stored_events(client)
            assert sorted(e.event_id for e in after) == sorted(r.event_id for r in sent)
    finally:
        stop_serve(proc)
    assert "Traceback" not in "".join(lines)


def test_kill_during_stream_small(tmp_path):
    run_crash(tmp_path, n=3_000, kill_after=1_000)


@pytest.mark.slow
def test_kill_during_stream_of_tens_of_thousands(tmp_path):
    run_crash(tmp_path, n=40_000, kill_after=15_000)
