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


def pytest_configure(config) -> None:
    """Under Debian's ``faketime`` (``faketime '2026-12-06 19:05:00' pytest``), run the suite again
    with the same shifted wall clock through the ``libfaketime`` build from PyPI, which fakes only
    the clock reads. Debian's 0.9.10 build also shifts the monotonic deadlines of the C library's
    waits, so a ``Condition.wait(timeout)`` sleeps for the whole shift (hours) and ``time.sleep``
    fails with EINVAL when monotonic is left unshifted (see tests/at_any_hour.sh); the shifted
    wall clock, which is all the tests' time handling reads, stays the one asked for."""
    preload = os.environ.get("LD_PRELOAD", "")
    if "faketime" not in preload or os.environ.get("CITYGRID_FAKETIME_REEXEC"):
        return
    import importlib.util
    import sys

    spec = importlib.util.find_spec("libfaketime")
    if spec is None:
        raise pytest.UsageError("under faketime the suite needs the libfaketime package from PyPI "
                                "(pip install libfaketime); see tests/at_any_hour.sh")
    library = Path(spec.origin).parent / "vendor" / "libfaketime" / "src" / "libfaketime.so.1"
    env = {k: v for k, v in os.environ.items() if k != "FAKETIME_SHARED"}
    env.update(LD_PRELOAD=str(library), FAKETIME_DONT_FAKE_MONOTONIC="1", CITYGRID_FAKETIME_REEXEC="1")
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.stop_global_capturing()  # give the new process the terminal, not pytest's capture files
    os.execve(sys.executable, sys.orig_argv, env)


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
