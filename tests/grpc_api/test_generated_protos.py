"""The committed generated code is what protos/generate.py makes from the protos today."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("generate", REPO / "protos" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_current(tmp_path):
    written = _generator().generate(tmp_path)
    committed = REPO / "grpc_api" / "_pb"
    fresh = {p.name: p.read_bytes() for p in written}
    current = {p.name: p.read_bytes() for p in committed.iterdir() if p.is_file() and p.suffix in (".py", ".pyi")}
    assert sorted(fresh) == sorted(current), "run python protos/generate.py"
    stale = [name for name in fresh if fresh[name] != current[name]]
    assert not stale, f"generated code is stale ({stale}): run python protos/generate.py"


def test_generated_imports_are_package_absolute():
    for path in (REPO / "grpc_api" / "_pb").glob("*_pb2*.py*"):
        text = path.read_text()
        assert "from citygrid.v1 import" not in text, path.name
        importlib.import_module(f"citygrid.grpc_api._pb.{path.name.split('.')[0]}")
