"""The runnable examples in module docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "citygrid.engine.layers",
    "citygrid.engine.jobs",
    "citygrid.engine.changes",
    "citygrid.cluster.spatial",
    "citygrid.engine.database",
    "citygrid.engine.principals",
    "citygrid.engine.validation",
    "citygrid.engine.assignment",
    "citygrid.engine.coordinates",
    "citygrid.kernels.predicates",
    "citygrid.engine.worktime",
    "citygrid.engine.clock",
    "citygrid.engine.workers",
    "citygrid.engine.lifecycle",
    "citygrid.engine.duplicates",
    "citygrid.engine.adjacency",
    "citygrid.engine.registry",
    "citygrid.engine.tokens",
    "citygrid.engine.houses.codes",
    "citygrid.engine.houses.rentals",
    "citygrid.engine.houses.address",
    "citygrid.engine.houses.spatial",
    "citygrid.grpc_api.errors",
    "citygrid.grpc_api.config",
    "citygrid.grpc_api.metrics",
    "citygrid.cli.point_files",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
