"""Fixtures shared by every test package.

- ``shared_data``: the folder of real public city data (``../shared/data``), or a skip when absent;
- ``rng``: a seeded numpy Generator, so a failure reproduces;
- ``demo_dir``: the demo district generated once per session (default grid count, fewer events);
- ``demo_layer``: its grids as a :class:`GridLayer`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CITYGRID_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared public data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261130)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    from citygrid.engine.demo import generate_demo

    out = tmp_path_factory.mktemp("demo")
    generate_demo(out, seed=20261130, n_events=20_000)
    return out


@pytest.fixture(scope="session")
def demo_layer(demo_dir):
    from citygrid.engine.layers.sources import read_layer

    return read_layer(demo_dir / "grids.parquet", version_id="demo-test")
