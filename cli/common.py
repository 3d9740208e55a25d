"""Arguments several commands share."""

from __future__ import annotations

import argparse

from citygrid.engine.layers import FieldMap

_FIELD_FLAGS = {
    "grid_code": "--code-field",
    "grid_name": "--name-field",
    "grid_type": "--type-field",
    "community_code": "--community-field",
    "street_code": "--street-field",
    "district_code": "--district-field",
}


def add_field_arguments(parser: argparse.ArgumentParser) -> None:
    """``--code-field`` and friends: which source columns hold the grid attributes."""
    defaults = FieldMap()
    group = parser.add_argument_group("field names (for grid files; defaults are the demo district's columns)")
    for name, flag in _FIELD_FLAGS.items():
        group.add_argument(flag, dest=f"field_{name}", default=getattr(defaults, name), metavar="COLUMN",
                           help=f"column with the {name.replace('_', ' ')} (default: {getattr(defaults, name)})")


def field_map(args: argparse.Namespace) -> FieldMap:
    return FieldMap(**{name: getattr(args, f"field_{name}") for name in _FIELD_FLAGS})
