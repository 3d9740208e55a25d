"""IntakeService benchmarks: the server (``citygrid serve``) in its own process over the demo district
with its workers, this process the client, on loopback. The throughput tests send the demo's events
in arrival order, the workload of ``bench/test_intake.py``, so the two compare (the difference is
the gRPC service: conversions, transport, the client on the same two cores).

- ``SubmitStream``: per-event latency p50 / p99, one report in flight (the client waits for each
  acknowledgement, so each is its own durable commit);
- ``SubmitEvents``: durable events per second with batches of 1,000 (one client, and two in parallel,
  whose batches share commits), and the CPU each side spent per event: client and server share this
  2-core machine, so "server alone" (a second of server CPU over its CPU per event) is what the
  server reaches with a core of its own;
- ``SubmitStream`` as a feed: reports streamed without waiting for their acknowledgements (the
  server commits whatever has arrived together); bounded by grpcio's cost per streamed message in
  each direction, which is why bulk senders should use ``SubmitEvents``.

Goal (issue 5): >= 20,000 durable events/s. Run::

    pytest bench/test_intake_grpc.py -s
"""

from __future__ import annotations

import os
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import numpy as np
import pyarrow.parquet as pq
import pytest

from citygrid.engine.demo import generate_demo
from citygrid.engine.cases.model import read_reports
from citygrid.engine.layers.sources import read_layer
from citygrid.engine.dispatch.workers import read_workers
from citygrid.grpc_api._pb import intake_pb2
from citygrid.grpc_api.client import CityGridClient

from serving import TOKEN, served_layer, server_cpu_seconds

BATCH = 1000
BATCHES = 50
#: Rounds of BATCHES batches each (the store keeps growing across them).
ROUNDS = int(os.environ.get("CITYGRID_BENCH_INTAKE_ROUNDS", "3"))
STREAM_EVENTS = 500
#: Demo events generated: a warm-up batch, then ROUNDS rounds for each throughput test.
DEMO_EVENTS = BATCH + 3 * ROUNDS * BATCHES * BATCH
NOW = datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A ``citygrid serve`` process over the demo district, the demo's workers loaded through the API,
    and the demo's events (a year of them, in arrival order) to send: the engine benchmark's workload."""
    root = tmp_path_factory.mktemp("bench-intake")
    generate_demo(root / "demo", seed=20261130, n_events=DEMO_EVENTS)
    layer = read_layer(root / "demo" / "grids.parquet", version_id="bench-demo")
    buildings = pq.read_table(root / "demo" / "buildings.parquet", columns=["lng", "lat"])
    places = np.column_stack([buildings.column("lng").to_numpy(), buildings.column("lat").to_numpy()])
    events = DemoEvents(read_reports(root / "demo" / "events.parquet"))
    with served_layer(root, layer) as port, CityGridClient(f"127.0.0.1:{port}", TOKEN, timeout=120) as client:
        workers = [intake_pb2.Worker(worker_id=w.worker_id, grid_code=w.grid_code, name=w.name,
                                     department=w.department, skills=sorted(w.skills), shift=w.shift,
                                     capacity=w.capacity, on_duty=w.on_duty, active=w.active)
                   for w in read_workers(root / "demo" / "workers.parquet")]
        client.intake.PutWorkers(intake_pb2.PutWorkersRequest(workers=workers), metadata=client.metadata,
                                 timeout=120)
        client.submit_events(events.take(BATCH))  # warm
        yield client, places, port, events


class DemoEvents:
    """The demo's reports as messages, handed out in file (arrival) order, each once."""

    def __init__(self, reports):
        self._reports = reports
        self._next = 0

    def take(self, n: int) -> list[intake_pb2.EventReport]:
        chunk = self._reports[self._next : self._next + n]
        assert len(chunk) == n, "not enough demo events: raise DEMO_EVENTS"
        self._next += n
        out = []
        for r in chunk:
            m = intake_pb2.EventReport(event_id=r.event_id, category_code=r.category_code, source=r.source,
                                       lng=r.lng, lat=r.lat, building_code=r.building_code or "",
                                       reporter=r.reporter, description=r.description)
            m.occurred_at.FromDatetime(r.occurred_at)
            out.append(m)
        return out


def reports(places: np.ndarray, prefix: str, n: int, seed: int = 0) -> list[intake_pb2.EventReport]:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(places), n)
    categories = ["0101", "0103", "0201", "0501", "1001"]
    out = []
    for k, p in enumerate(picks.tolist()):
        r = intake_pb2.EventReport(event_id=f"{prefix}-{k:07d}", category_code=categories[k % len(categories)],
                                   source="bench", lng=float(places[p, 0]), lat=float(places[p, 1]))
        r.occurred_at.FromDatetime(NOW)
        out.append(r)
    return out


def test_submit_stream_latency(served):
    client, places, _, _ = served
    inbox: queue.Queue = queue.Queue()

    def requests():
        for r in reports(places, "stream", STREAM_EVENTS, seed=1):
            yield r
            inbox.get()  # one report in flight: wait for its acknowledgement

    latencies = []
    sent = time.perf_counter()
    for receipt in client.submit_stream(requests()):
        now = time.perf_counter()
        assert not receipt.error.code, receipt.error.message
        latencies.append(now - sent)
        sent = time.perf_counter()
        inbox.put(None)
    ms = np.array(latencies) * 1e3
    print(f"\nSubmitStream, one in flight, {len(ms)} events: p50 {np.percentile(ms, 50):.2f} ms, "
          f"p99 {np.percentile(ms, 99):.2f} ms")
    assert len(ms) == STREAM_EVENTS


@pytest.mark.parametrize("clients", [1, 2])
def test_submit_events_throughput(served, clients):
    client, _, port, events = served

    def send(batch):
        receipts = client.submit_events(batch)
        assert not any(r.error.code for r in receipts)
        return len(receipts)

    rates = []
    for round_ in range(ROUNDS):
        batches = [events.take(BATCH) for _ in range(BATCHES)]
        server_cpu, client_cpu = server_cpu_seconds(port), time.process_time()
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            done = sum(pool.map(send, batches))
        elapsed = time.perf_counter() - start
        assert done == BATCH * BATCHES
        server_us = (server_cpu_seconds(port) - server_cpu) / done * 1e6
        client_us = (time.process_time() - client_cpu) / done * 1e6
        rates.append(done / elapsed)
        print(f"\nSubmitEvents, batches of {BATCH}, {clients} client(s), round {round_ + 1}: {done / elapsed:,.0f} "
              f"durable events/s ({done} events in {elapsed:.2f} s); CPU per event: server {server_us:.1f} us, "
              f"client {client_us:.1f} us (server alone: {1e6 / server_us:,.0f} events/s)")
    print(f"SubmitEvents, {clients} client(s): best {max(rates):,.0f}, median {float(np.median(rates)):,.0f} "
          f"durable events/s over {ROUNDS} rounds of {BATCH * BATCHES:,} (goal 20,000)")


def test_submit_stream_throughput(served):
    """A feed (video analytics, a partner system) streams reports without waiting for their
    acknowledgements: the server commits whatever has arrived together (up to 1,000 a commit) and
    acknowledges each report once it is durable."""
    client, _, port, events = served
    rates = []
    for round_ in range(ROUNDS):
        messages = events.take(BATCH * BATCHES)
        server_cpu = server_cpu_seconds(port)
        start = time.perf_counter()
        done = 0
        for receipt in client.submit_stream(iter(messages)):
            assert not receipt.error.code, receipt.error.message
            done += 1
        elapsed = time.perf_counter() - start
        assert done == len(messages)
        server_us = (server_cpu_seconds(port) - server_cpu) / done * 1e6
        rates.append(done / elapsed)
        print(f"\nSubmitStream feed, round {round_ + 1}: {done / elapsed:,.0f} durable events/s ({done} events in "
              f"{elapsed:.2f} s); server CPU per event {server_us:.1f} us")
    print(f"SubmitStream feed: best {max(rates):,.0f}, median {float(np.median(rates)):,.0f} durable events/s "
          f"over {ROUNDS} rounds of {BATCH * BATCHES:,} (goal 20,000)")
