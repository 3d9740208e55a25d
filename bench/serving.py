"""A ``citygrid serve`` process over one active layer, for the benchmarks that measure over loopback."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from citygrid.engine.layers import GridLayer
from citygrid.engine.registry import LayerRegistry

TOKEN = "bench-admin-token-0123456789abcdef"
#: Process id of the server listening on each port served here.
SERVER_PIDS: dict[int, int] = {}


def server_cpu_seconds(port: int) -> float:
    """CPU time (user + system, all threads) the server on ``port`` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{SERVER_PIDS[port]}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def served_layer(root: Path, layer: GridLayer) -> Iterator[int]:
    """Publish and activate ``layer`` in ``root/data``, start the server in its own process on a free
    loopback port, yield the port, and stop the server afterwards."""
    registry = LayerRegistry(root / "data")
    registry.register(layer)
    registry.publish(layer.version_id, datetime(2026, 1, 1, tzinfo=timezone.utc))
    registry.activate(layer.version_id)
    registry.close()
    (root / "citygrid.toml").write_text(f'[server]\ndata_dir = "data"\nadmin_token = "{TOKEN}"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "citygrid.cli.main", "serve", "--config", str(root / "citygrid.toml"),
         "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    port = None
    for line in proc.stdout:
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if match:
            port = int(match.group(1))
            break
    drain = threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True)
    drain.start()
    try:
        assert port, "the server did not start"
        SERVER_PIDS[port] = proc.pid
        yield port
    finally:
        SERVER_PIDS.pop(port, None)
        proc.terminate()
        proc.wait(30)
        drain.join(10)
        proc.stdout.close()
