"""Fixtures of the gRPC tests: a module-scoped in-process server (see grpc_env)."""

from __future__ import annotations

import pytest
from grpc_env import populate, start_server


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("grpc-data")
    layers = populate(data_dir)
    env = start_server(data_dir)
    env.layers = layers
    yield env
    assert env.server.stop(1.0).wait(10)


@pytest.fixture
def admin(env):
    with env.client() as client:
        yield client
