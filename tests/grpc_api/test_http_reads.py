"""The gateway's engine reads (citygrid.grpc_api.web.reads): identical reads that arrive while one
runs share the next computation, which starts after they arrived (so each sees what was written
before its request), different keys never share, failures reach every sharer, and the limits hold.
The "engine" here is a function whose calls the test counts and holds with an event."""

from __future__ import annotations

import asyncio
import threading

import pytest

from citygrid.engine.errors import DeadlineExceeded, InvalidInput, Overloaded
from citygrid.grpc_api.web.encoding import GZIP_MIN_BYTES, accepts_gzip, encode
from citygrid.grpc_api.web.reads import SharedReads


class Store:
    """A value the test writes, read by computations that it may hold at a gate."""

    def __init__(self):
        self.value = 0
        self.reads: list[int] = []
        self.gate = threading.Event()
        self.hold_first = True

    def read(self) -> int:
        value = self.value
        self.reads.append(value)
        if self.hold_first and len(self.reads) == 1:
            assert self.gate.wait(10)
        return value


async def until(condition, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.001)


def run(scenario, reads: SharedReads):
    try:
        return asyncio.run(scenario(reads))
    finally:
        reads.shutdown()


def test_reads_arriving_while_one_runs_share_the_next_which_sees_their_writes():
    store = Store()

    async def scenario(reads):
        first = asyncio.ensure_future(reads.run("heatmap", store.read))
        await until(lambda: len(store.reads) == 1)  # the first computation has read, and is held
        store.value = 1  # written (and acknowledged) before the next requests
        others = [asyncio.ensure_future(reads.run("heatmap", store.read)) for _ in range(5)]
        await asyncio.sleep(0.05)
        assert len(store.reads) == 1  # none of them started a second computation beside the first
        store.gate.set()
        return await asyncio.gather(first, *others)

    reads = SharedReads(4, 100, 10.0)
    assert run(scenario, reads) == [0, 1, 1, 1, 1, 1]
    assert store.reads == [0, 1]  # two computations for six requests
    assert (reads.computed, reads.shared) == (2, 4)


def test_different_keys_and_unkeyed_reads_never_share():
    store = Store()
    store.hold_first = False

    async def scenario(reads):
        return await asyncio.gather(*(reads.run(key, store.read) for key in ("a", "b", ("a", 1), None, None)))

    reads = SharedReads(4, 100, 10.0)
    assert run(scenario, reads) == [0] * 5
    assert len(store.reads) == 5 and reads.shared == 0


def test_a_failure_reaches_every_request_that_shared_it():
    store = Store()
    calls = []

    def failing():
        calls.append(1)
        if len(calls) == 1:
            assert store.gate.wait(10)
            return "first"
        raise InvalidInput("bad window")

    async def scenario(reads):
        first = asyncio.ensure_future(reads.run("k", failing))
        await until(lambda: len(calls) == 1)
        others = [asyncio.ensure_future(reads.run("k", failing)) for _ in range(3)]
        await asyncio.sleep(0.01)
        store.gate.set()
        return await asyncio.gather(first, *others, return_exceptions=True)

    results = run(scenario, SharedReads(2, 100, 10.0))
    assert results[0] == "first" and len(calls) == 2
    assert all(isinstance(r, InvalidInput) and "bad window" in str(r) for r in results[1:])


def test_over_the_time_is_a_deadline_and_over_the_jobs_is_overloaded():
    store = Store()

    async def scenario(reads):
        with pytest.raises(DeadlineExceeded, match="http_timeout_seconds"):
            await reads.run("slow", store.read)  # held at the gate: its computation goes on, one job
        second = asyncio.ensure_future(reads.run("slow", store.read))  # waits for its twin: two jobs
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded, match="http_max_concurrent"):
            await reads.run("third", lambda: 3)
        store.gate.set()
        assert await second == 0
        return await reads.run("third", lambda: 3)  # the jobs ended: room again

    assert run(scenario, SharedReads(2, 2, 0.5)) == 3
    assert store.reads == [0, 0]


def test_answers_are_gzipped_only_when_accepted_and_worth_it():
    big = {"grids": {f"G{k:05d}": k for k in range(400)}}
    packed = encode(big, accept_gzip=True)
    assert packed.gzipped and len(packed.body) < len(encode(big, accept_gzip=False).body)
    assert not encode({"a": 1}, accept_gzip=True).gzipped  # under GZIP_MIN_BYTES
    assert len(encode({"a": 1}, accept_gzip=False).body) < GZIP_MIN_BYTES
    assert accepts_gzip("gzip, deflate") and accepts_gzip("br;q=1.0, gzip;q=0.5") and accepts_gzip("*")
    assert not accepts_gzip(None) and not accepts_gzip("br") and not accepts_gzip("gzip;q=0")
