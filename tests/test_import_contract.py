"""The import contract (issue 11): the direction cli -> grpc_api -> cluster -> engine -> kernels, the
engine's wings over its shared modules, kernels without the heavy dependencies, an engine without grpc
or ray, as declared in pyproject's ``[tool.importlinter]`` and checked by import-linter over the
installed (editable) package. A wrong import anywhere fails this test, and the output names the chain."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Every contract in pyproject, by name: a contract dropped from the file fails the test too.
CONTRACTS = (
    "Packages: cli -> grpc_api -> cluster -> engine -> kernels",
    "Engine wings: each uses the shared modules and the wings below it",
    "Houses use the layers and access wings, not cases or dispatch",
    "The engine imports neither grpc nor ray",
    "Kernels import numpy, numba and math only (of the project's dependencies)",
)


def test_imports_follow_the_declared_layers():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    for name in CONTRACTS:
        assert f"{name} KEPT" in report, report
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in report, report
