"""Fixtures of the gRPC tests: a module-scoped in-process server (``env``, declared in grpc_env)."""

from __future__ import annotations

import pytest
from grpc_env import env  # noqa: F401 (the fixture)


@pytest.fixture
def admin(env):
    with env.client() as client:
        yield client
