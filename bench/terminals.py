"""A district's terminals in one process: hold thousands of streams open against a server.

    python bench/terminals.py HOST:PORT SPEC.json STREAMS_PER_CONNECTION

``SPEC.json``: ``{"watch": [[token, worker_id], ...], "idle": [token, ...]}``: a ``WatchDispatches``
stream per worker (a worker terminal, its own token), and an ``AssignStream`` per idle entry that
never sends a point (a dashboard left open). Streams share a connection ``STREAMS_PER_CONNECTION`` at
a time. Prints a JSON line ``{"streams", "connections"}`` once every call is started, then one
``{"notices", "refused"}`` whenever the watches' total of notices or of refusals by status code has
changed (a refused watch is opened again after a backoff of 0.2 s doubling to 5 s, as a terminal app
would); ends every stream and exits when stdin closes.
Runs on ``grpc.aio``, so holding the streams costs this process no thread each either.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys

import grpc

from citygrid.grpc_api._pb import grid_pb2_grpc, intake_pb2, intake_pb2_grpc


async def main(target: str, spec_path: str, per_connection: int) -> None:
    spec = json.loads(open(spec_path, encoding="utf-8").read())
    channels: list[grpc.aio.Channel] = []
    used = per_connection

    def channel() -> grpc.aio.Channel:
        nonlocal used
        if used >= per_connection:
            # A subchannel pool of its own: a connection of its own (channels to one target share one otherwise).
            channels.append(grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]))
            used = 0
        used += 1
        return channels[-1]

    received = 0
    refused: dict[str, int] = {}

    async def watch(token: str, worker_id: str) -> None:
        """Watch, and open the stream again after a refusal (with backoff), as a terminal app does."""
        nonlocal received
        ch = channel()
        backoff = 0.2
        while True:
            call = intake_pb2_grpc.IntakeServiceStub(ch).WatchDispatches(
                intake_pb2.WatchDispatchesRequest(worker_id=worker_id),
                metadata=(("authorization", f"Bearer {token}"),))
            try:
                async for _ in call:
                    received += 1
                return
            except grpc.aio.AioRpcError as exc:
                refused[exc.code().name] = refused.get(exc.code().name, 0) + 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def hold(token: str) -> None:
        """An AssignStream that never sends a point (opened again after a refusal, like a watch)."""
        ch = channel()
        backoff = 0.2
        while True:
            call = grid_pb2_grpc.GridServiceStub(ch).AssignStream(metadata=(("authorization", f"Bearer {token}"),))
            try:
                await call.read()  # nothing comes until the call ends
                return
            except grpc.aio.AioRpcError as exc:
                refused[exc.code().name] = refused.get(exc.code().name, 0) + 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    tasks = [asyncio.ensure_future(hold(token)) for token in spec["idle"]]
    tasks += [asyncio.ensure_future(watch(token, worker_id)) for token, worker_id in spec["watch"]]
    await asyncio.sleep(0)
    print(json.dumps({"streams": len(tasks), "connections": len(channels)}), flush=True)

    async def report() -> None:
        told = None
        while True:
            await asyncio.sleep(0.5)
            state = {"notices": received, "refused": dict(refused)}
            if state != told:
                told = state
                print(json.dumps(state), flush=True)

    reporter = asyncio.ensure_future(report())
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the bench closes stdin
    reporter.cancel()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for ch in channels:
        await ch.close()


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
