"""Zero-downtime activation: versions swap repeatedly while clients hammer the server; no call fails
and every answer is the one its reported version gives."""

from __future__ import annotations

import threading
import time

import numpy as np
from grpc_env import VERSIONS, random_points

SWAP_SECONDS = 3.0
#: The longest the swapping goes on waiting for enough calls on a slow machine.
SWAP_LIMIT_SECONDS = 60.0


def test_activation_under_load_drops_nothing(env, rng):
    lng, lat = random_points(rng, 2000)
    expected = {}
    for vid in VERSIONS:
        snapshot = env.registry.get(vid)
        rows = snapshot.assigner.assign(lng, lat).grid_rows
        expected[vid] = (rows, snapshot.layer.codes[rows])
    assert not np.array_equal(expected["v1"][0][:500], expected["v3"][0][:500])

    stop = threading.Event()
    failures: list[str] = []
    seen: dict[str, set] = {"single": set(), "batch": set()}
    calls = {"single": 0, "batch": 0}

    def singles(offset: int):
        with env.client() as client:
            i = offset
            while not stop.is_set():
                k = i % len(lng)
                try:
                    answer = client.assign_point(lng[k], lat[k])
                except Exception as exc:  # noqa: BLE001 (any failure is what the test looks for)
                    failures.append(f"AssignPoint: {exc!r}")
                    return
                rows, codes = expected[answer.layer_version]
                grid = answer.grid
                if grid.code != codes[k] or grid.row != rows[k] or grid.layer_version != answer.layer_version:
                    failures.append(f"point {k}: {answer.grid.code} from {answer.layer_version}, expected {codes[k]}")
                seen["single"].add(answer.layer_version)
                calls["single"] += 1
                i += 7

    def batches():
        with env.client() as client:
            while not stop.is_set():
                try:
                    answer = client.assign_points(lng, lat)
                except Exception as exc:  # noqa: BLE001
                    failures.append(f"AssignPoints: {exc!r}")
                    return
                rows, codes = expected[answer.layer_version]
                if not np.array_equal(answer.grid_rows, rows) or not np.array_equal(answer.codes(), codes):
                    failures.append(f"batch from {answer.layer_version} differs from that version's answer")
                if {g.layer_version for g in answer.grids.values()} != {answer.layer_version}:
                    failures.append("a batch mixes grids of two versions")
                seen["batch"].add(answer.layer_version)
                calls["batch"] += 1

    workers = [threading.Thread(target=singles, args=(s,)) for s in range(2)] + [threading.Thread(target=batches)]
    for w in workers:
        w.start()
    swaps = 0
    with env.client() as admin:
        start, order = time.monotonic(), list(VERSIONS)

        def enough() -> bool:
            """Swapped for SWAP_SECONDS, and as many swaps and calls as the checks below need (a
            loaded machine gets there later), or out of time."""
            done = (time.monotonic() - start > SWAP_SECONDS and swaps >= 20 and calls["single"] > 100
                    and calls["batch"] > 5 and seen["single"] == set(VERSIONS) and len(seen["batch"]) >= 2)
            return done or time.monotonic() - start > SWAP_LIMIT_SECONDS

        while not enough() and not failures:
            admin.activate_version(order[swaps % len(order)])
            swaps += 1
            time.sleep(0.02)
        stop.set()
        for w in workers:
            w.join(30)
        admin.activate_version("v1")
    assert not failures, failures[:5]
    assert swaps >= 20
    assert calls["single"] > 100 and calls["batch"] > 5, calls
    assert seen["single"] == set(VERSIONS) and len(seen["batch"]) >= 2, seen
