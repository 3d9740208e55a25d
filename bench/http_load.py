"""Load from a process of its own: ``CLIENTS`` threads, each with its own keep-alive HTTP
connection (or gRPC channel), calling one request after another (closed loop) or one every
``pace`` seconds, for ``seconds``; gRPC calls are ``(service, method, request type, bytes)``. Before
the clients start, one request of the work from one client, timed apart (``first_ms``): the first
ask of a question may count it afresh (and compile a kernel), which the 20 clients' first burst
would otherwise all wait for, 20 of the ~800 samples a paced run has, so its p99 would be the
cold start's and not the steady load's. Prints ``{"calls", "errors", "p50_ms", "p99_ms", "rate",
"first_ms"}`` as JSON. Run by bench/test_http.py."""

from __future__ import annotations

import http.client
import json
import pickle
import sys
import threading
import time

import numpy as np


def paced(pace: float | None):
    """A sleep before each call: none (closed loop), or to keep one call every ``pace`` seconds."""
    state = {"next": time.perf_counter()}

    def wait():
        if pace:
            state["next"] += pace
            delay = state["next"] - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    return wait


def going(k: int, end: float | None) -> bool:
    """Whether a client sends its next request: until ``end``, or (end None) its first one only."""
    return k == 0 if end is None else time.perf_counter() < end


def http_worker(port, token, paths, end, out, errors, pace=None):
    wait = paced(pace)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}
    k = 0
    while going(k, end):
        wait()
        t0 = time.perf_counter()
        connection.request("GET", paths[k % len(paths)], headers=headers)
        response = connection.getresponse()
        response.read()
        out.append(time.perf_counter() - t0)
        if response.status != 200:
            errors.append(response.status)
        k += 1


def grpc_worker(port, token, calls, end, out, errors, pace=None):
    wait = paced(pace)
    import grpc

    from citygrid.grpc_api._pb import analytics_pb2, grid_pb2
    from citygrid.grpc_api.client import CityGridClient

    client = CityGridClient(f"127.0.0.1:{port}", token)
    stubs = {"grids": (client.grids, grid_pb2), "analytics": (client.analytics, analytics_pb2)}
    calls = [(getattr(stubs[service][0], method), getattr(stubs[service][1], kind).FromString(data))
             for service, method, kind, data in calls]
    k = 0
    while going(k, end):
        method, request = calls[k % len(calls)]
        wait()
        t0 = time.perf_counter()
        try:
            method(request, metadata=client.metadata, timeout=30)
        except grpc.RpcError as exc:
            errors.append(str(exc.code()))
        out.append(time.perf_counter() - t0)
        k += 1
    client.close()


def main(spec_path: str) -> None:
    spec = pickle.loads(open(spec_path, "rb").read())
    target = http_worker if spec["kind"] == "http" else grpc_worker
    first, errors, threads = [], [], []
    target(spec["port"], spec["token"], spec["work"], None, first, errors)
    latencies = []
    end = time.perf_counter() + spec["seconds"]
    for _ in range(spec["clients"]):
        threads.append(threading.Thread(target=target, args=(spec["port"], spec["token"], spec["work"], end,
                                                              latencies, errors, spec.get("pace"))))
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    print(json.dumps({"calls": len(ms), "errors": len(errors), "p50_ms": float(np.percentile(ms, 50)),
                      "p99_ms": float(np.percentile(ms, 99)), "rate": len(ms) / seconds, "first_ms": first[0] * 1000}))


if __name__ == "__main__":
    main(sys.argv[1])
