"""Fixtures of the CLI tests. The commands that talk to a server use the gRPC tests' in-process server
(``env``) and helpers (``grpc_env``), from tests/grpc_api."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "grpc_api"))

from grpc_env import env  # noqa: E402,F401 (the fixture)
