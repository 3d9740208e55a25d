"""Load for unary gRPC calls from a process of its own (the client side of the benchmarks).

:func:`unary_figures` runs this file as a script: a ``grpc.aio`` client that sends prepared request
bytes to one method and prints what it measured as JSON:

- saturation: completed calls per second of a closed loop keeping :data:`DEPTH` calls in flight;
- latency: p50 / p99 of an open loop at a fixed rate (by default half the saturation), each call timed
  from when it is sent to its answer, whatever the others do.

The client runs on ``grpc.aio`` (a coroutine per call; cheaper per call than the synchronous stub's
futures), in its own process so that it competes with the server only for cores, and it skips
parsing the answers; every target measured in a run pays the same client.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: Calls kept in flight to find the saturation rate.
DEPTH = 32


def unary_figures(target: str, method: str, requests: list[bytes], token: str | None = None, *,
                  saturation_seconds: float = 5.0, latency_seconds: float = 5.0,
                  rate: float | None = None) -> dict:
    """Measure ``method`` at ``target`` from a client process: ``{"saturation", "rate", "p50_ms",
    "p99_ms", "calls", "errors"}`` (the open loop runs at ``rate``, default half the saturation;
    ``saturation_seconds=0`` with a ``rate`` measures latency only)."""
    with tempfile.NamedTemporaryFile(suffix=".pickle") as spec:
        Path(spec.name).write_bytes(pickle.dumps(dict(
            target=target, method=method, requests=requests, token=token, saturation_seconds=saturation_seconds,
            latency_seconds=latency_seconds, rate=rate)))
        out = subprocess.run([sys.executable, __file__, spec.name], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


async def _saturation(call, requests, metadata, seconds: float) -> float:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    done = 0

    async def caller(k: int) -> None:
        nonlocal done
        while loop.time() < end:
            await call(requests[k % len(requests)], metadata=metadata)
            done += 1
            k += DEPTH

    start = time.perf_counter()
    await asyncio.gather(*(caller(k) for k in range(DEPTH)))
    return done / (time.perf_counter() - start)


async def _open_loop(call, requests, metadata, rate: float, seconds: float) -> tuple[np.ndarray, int]:
    loop = asyncio.get_running_loop()
    n = int(rate * seconds)
    latencies = np.zeros(n)
    errors = 0

    async def one(k: int) -> None:
        nonlocal errors
        sent = time.perf_counter()
        try:
            await call(requests[k % len(requests)], metadata=metadata)
        except Exception:  # noqa: BLE001 - counted, and the figure is refused
            errors += 1
        latencies[k] = time.perf_counter() - sent

    tasks = []
    start = loop.time()
    while len(tasks) < n:
        due = min(n, int((loop.time() - start) * rate) + 1)
        while len(tasks) < due:
            tasks.append(asyncio.ensure_future(one(len(tasks))))
        await asyncio.sleep(max(0.0, start + len(tasks) / rate - loop.time()))
    await asyncio.gather(*tasks)
    return latencies, errors


def callers_figures(target: str, calls: dict[str, tuple[str, bytes]], token: str | None = None, *,
                    callers: int = 20, rounds: int = 10) -> dict[str, list[float]]:
    """``callers`` concurrent callers from a client process, each on its own channel, each making
    every call of ``calls`` (name -> (method, request bytes)) ``rounds`` times, interleaved (caller
    k starts at call k), each waiting for its answer before the next (a closed loop per caller):
    ``{name: [latency ms, ...], "wall_s": [seconds]}``."""
    with tempfile.NamedTemporaryFile(suffix=".pickle") as spec:
        Path(spec.name).write_bytes(pickle.dumps(dict(
            target=target, calls=calls, token=token, callers=callers, rounds=rounds)))
        out = subprocess.run([sys.executable, __file__, spec.name], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


async def _callers(spec: dict) -> dict:
    import grpc

    metadata = (("authorization", f"Bearer {spec['token']}"),) if spec["token"] else None
    names = list(spec["calls"])
    out: dict[str, list[float]] = {name: [] for name in names}
    channels = [grpc.aio.insecure_channel(spec["target"]) for _ in range(spec["callers"])]
    try:
        stubs = [{name: ch.unary_unary(method, _registered_method=True) for name, (method, _) in spec["calls"].items()}
                 for ch in channels]
        for name in names:  # warm up every channel
            await asyncio.gather(*(s[name](spec["calls"][name][1], metadata=metadata) for s in stubs))

        async def caller(k: int) -> None:
            for r in range(spec["rounds"]):
                for j in range(len(names)):
                    name = names[(j + k + r) % len(names)]
                    sent = time.perf_counter()
                    await stubs[k][name](spec["calls"][name][1], metadata=metadata)
                    out[name].append((time.perf_counter() - sent) * 1e3)

        start = time.perf_counter()
        await asyncio.gather(*(caller(k) for k in range(spec["callers"])))
        out["wall_s"] = [time.perf_counter() - start]
    finally:
        for ch in channels:
            await ch.close()
    return out


async def _main(spec: dict) -> dict:
    if "calls" in spec:
        return await _callers(spec)

    import grpc

    metadata = (("authorization", f"Bearer {spec['token']}"),) if spec["token"] else None
    async with grpc.aio.insecure_channel(spec["target"]) as channel:
        call = channel.unary_unary(spec["method"], _registered_method=True)  # bytes in, bytes out
        requests = spec["requests"]
        await _saturation(call, requests, metadata, 1.0)  # warm up
        saturation = await _saturation(call, requests, metadata, spec["saturation_seconds"]) \
            if spec["saturation_seconds"] else None
        rate = spec["rate"] or saturation / 2
        latencies, errors = await _open_loop(call, requests, metadata, rate, spec["latency_seconds"])
    p50, p99 = np.percentile(latencies, [50, 99]) * 1e3
    return dict(saturation=saturation, rate=rate, p50_ms=float(p50), p99_ms=float(p99), calls=len(latencies),
                errors=errors)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_main(pickle.loads(Path(sys.argv[1]).read_bytes())))))
