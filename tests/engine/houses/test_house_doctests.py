"""The runnable examples in the docstrings of the houses registry's modules stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["citygrid.engine.houses.census", "citygrid.engine.houses.privacy", "citygrid.engine.houses.checkins"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
