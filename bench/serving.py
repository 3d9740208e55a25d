"""``citygrid serve`` processes for the benchmarks that measure over loopback: over one active layer
(:func:`served_layer`), or with ``--demo`` (:func:`served_demo`); with this checkout's code, or with
an older revision's (:func:`code_of_revision`), to compare with it in the same run."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.layers.registry import LayerRegistry

TOKEN = "bench-admin-token-0123456789abcdef"
REPO = Path(__file__).resolve().parents[1]
#: Process id of the server listening on each port served here.
SERVER_PIDS: dict[int, int] = {}
#: The import packages of the repository's folders (pyproject's package-dir).
PACKAGES = ("engine", "kernels", "grpc_api", "cluster", "cli")


def server_cpu_seconds(port: int) -> float:
    """CPU time (user + system, all threads) the server on ``port`` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{SERVER_PIDS[port]}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_status(port: int) -> dict[str, str]:
    """The server's ``/proc/PID/status`` fields (``Threads``, ``VmRSS``, ...)."""
    lines = Path(f"/proc/{SERVER_PIDS[port]}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def code_of_revision(revision: str, root: Path) -> Path | None:
    """A folder to put first on ``PYTHONPATH`` so that ``citygrid`` imports ``revision``'s code (a
    ``git archive`` of it under ``root``); ``None`` when git or the revision is not there."""
    tree = root / f"tree-{revision}"
    try:
        tree.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", revision], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    path = root / f"path-{revision}"
    (path / "citygrid").mkdir(parents=True)
    for package in PACKAGES:
        (path / "citygrid" / package).symlink_to(tree / package)
    return path


def publish(data_dir: Path, layer: GridLayer) -> None:
    """Register, publish and activate ``layer`` in ``data_dir``."""
    registry = LayerRegistry(data_dir)
    registry.register(layer)
    registry.publish(layer.version_id, datetime(2026, 1, 1, tzinfo=timezone.utc))
    registry.activate(layer.version_id)
    registry.close()


@contextlib.contextmanager
def served_layer(root: Path, layer: GridLayer, *, code: Path | None = None, server: str = "") -> Iterator[int]:
    """Publish and activate ``layer`` in ``root/data``, start the server in its own process on a free
    loopback port (with the code under ``code`` when given; ``server``: more lines of its ``[server]``
    table), yield the port, stop the server afterwards."""
    publish(root / "data", layer)
    (root / "citygrid.toml").write_text(f'[server]\ndata_dir = "data"\nadmin_token = "{TOKEN}"\n{server}\n')
    with serve(["--config", str(root / "citygrid.toml"), "--metrics-port", "-1"], code=code) as (port, _):
        yield port


@contextlib.contextmanager
def serve(args: list[str], *, code: Path | None = None, ready: str = r"listening on",
          timeout: float = 600) -> Iterator[tuple[int, list[str]]]:
    """``citygrid serve ARGS`` on a free loopback port; yields (port, its output so far) once a line
    matches ``ready`` (after "listening on"), and stops the server afterwards."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "citygrid.cli.main", "serve", "--host", "127.0.0.1", "--port", "0", "--http-port", "-1", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    lines: list[str] = []
    port = None
    end = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if match:
            port = int(match.group(1))
        if port and re.search(ready, line) or time.monotonic() > end:
            break
    drain = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    drain.start()
    try:
        assert port, "the server did not start:\n" + "".join(lines)
        SERVER_PIDS[port] = proc.pid
        yield port, lines
    finally:
        SERVER_PIDS.pop(port, None)
        proc.terminate()
        proc.wait(60)
        drain.join(10)
        proc.stdout.close()
