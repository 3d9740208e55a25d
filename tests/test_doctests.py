"""The runnable examples in module docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "citygrid.engine.layers.layer",
    "citygrid.engine.layers.geometry",
    "citygrid.grpc_api.web.openapi",
    "citygrid.cluster.jobs",
    "citygrid.cluster.changes",
    "citygrid.cluster.spatial",
    "citygrid.engine.database",
    "citygrid.engine.access.principals",
    "citygrid.engine.layers.validation",
    "citygrid.engine.layers.assignment",
    "citygrid.engine.layers.coordinates",
    "citygrid.kernels.predicates",
    "citygrid.engine.dispatch.worktime",
    "citygrid.engine.times",
    "citygrid.engine.hierarchy",
    "citygrid.engine.files",
    "citygrid.engine.dispatch.workers",
    "citygrid.engine.cases.lifecycle",
    "citygrid.engine.cases.duplicates",
    "citygrid.engine.layers.adjacency",
    "citygrid.engine.layers.registry",
    "citygrid.engine.access.tokens",
    "citygrid.engine.houses.codes",
    "citygrid.engine.analytics.config",
    "citygrid.engine.houses.rentals",
    "citygrid.engine.houses.address",
    "citygrid.engine.houses.spatial",
    "citygrid.grpc_api.errors",
    "citygrid.grpc_api.config",
    "citygrid.engine.cases.settings",
    "citygrid.grpc_api.metrics",
    "citygrid.cli.point_files",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
