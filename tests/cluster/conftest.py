"""Fixtures of the cluster tests: one local Ray of 2 CPUs for the session, the NYC tracts and the demo
district saved as layer versions, and a point file with hard points (vertices, edge midpoints, NaN)
among random ones."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from citygrid.cluster.tasks import FAULT_DIR_ENV
from citygrid.cluster.session import RaySession
from citygrid.engine.layers import snapshots, sources
from citygrid.engine.layers.layer import GridLayer

from cluster_env import TRACT_FIELDS, hard_points, write_points


@pytest.fixture(scope="session")
def fault_dir(tmp_path_factory) -> Path:
    """Where a test arms a worker kill (``kill-assign-<task>``); Ray's workers see it in their environment."""
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="session")
def ray_session(fault_dir):
    """A local Ray with 2 CPUs for every cluster test (started once: it takes seconds)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(FAULT_DIR_ENV, str(fault_dir))  # the raylet and its workers inherit it
        session = RaySession.open(num_cpus=2)
    assert session.started, "Ray was already initialised in this test process"
    yield session
    session.close()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def tracts(shared_data, data_dir) -> GridLayer:
    """The 2,325 NYC census tracts, saved as version ``tracts`` in ``data_dir``."""
    layer = sources.read_layer(shared_data / "nyc" / "nyct2020.shp", TRACT_FIELDS, version_id="tracts")
    return snapshots.load_layer(snapshots.save_layer(layer, data_dir))


@pytest.fixture(scope="session")
def demo_version(demo_layer, data_dir) -> GridLayer:
    """The demo district saved as version ``demo-2025`` in ``data_dir`` (its index built once, then mapped)."""
    return snapshots.load_layer(snapshots.save_layer(replace(demo_layer, version_id="demo-2025"), data_dir))


@pytest.fixture(scope="session")
def tract_points(tracts, tmp_path_factory) -> Path:
    rng = np.random.default_rng(20261130)
    lng, lat = hard_points(tracts, rng, 120_000)
    out = tmp_path_factory.mktemp("points") / "points.parquet"
    ids = np.arange(len(lng))
    return write_points(out, lng, lat, label=pa.array([f"p{i}" for i in ids]))

