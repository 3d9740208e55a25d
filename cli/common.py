"""Arguments several commands share: the grid field names and the coordinate system of points."""

from __future__ import annotations

import argparse
import sys

from citygrid.engine.layers.coordinates import CRS_NAMES
from citygrid.engine.layers.layer import FieldMap

_FIELD_FLAGS = {
    "grid_code": "--code-field",
    "grid_name": "--name-field",
    "grid_type": "--type-field",
    "community_code": "--community-field",
    "street_code": "--street-field",
    "district_code": "--district-field",
}
#: Spellings ``citygrid query layer upload`` once had, still taken (hidden from --help, with a warning).
_DEPRECATED_FIELD_FLAGS = {
    "--grid-field": "--code-field",
    "--grid-name-field": "--name-field",
    "--grid-type-field": "--type-field",
}


def add_field_arguments(parser: argparse.ArgumentParser, *, defaults: bool = True) -> None:
    """``--code-field`` and friends: which source columns hold the grid attributes.

    With ``defaults=False`` (a file sent to a server) an option not given is ``""``: the server
    applies its own defaults."""
    fallback = FieldMap()
    group = parser.add_argument_group("field names (for grid files; defaults are the demo district's columns)")
    for name, flag in _FIELD_FLAGS.items():
        default = getattr(fallback, name)
        group.add_argument(flag, dest=f"field_{name}", default=default if defaults else "", metavar="COLUMN",
                           help=f"column with the {name.replace('_', ' ')} (default: {default})")
    for old, new in _DEPRECATED_FIELD_FLAGS.items():
        name = next(n for n, f in _FIELD_FLAGS.items() if f == new)
        group.add_argument(old, dest=f"field_{name}", action=_DeprecatedFlag, const=new, help=argparse.SUPPRESS)


def field_map(args: argparse.Namespace) -> FieldMap:
    return FieldMap(**{name: getattr(args, f"field_{name}") for name in _FIELD_FLAGS})


def given_fields(args: argparse.Namespace) -> dict[str, str]:
    """The field names given on the command line (those of ``add_field_arguments(defaults=False)``)."""
    return {name: value for name in _FIELD_FLAGS if (value := getattr(args, f"field_{name}"))}


def add_crs_argument(parser: argparse.ArgumentParser, *, of: str) -> None:
    """``--crs``: the coordinate system of the points (one of :data:`citygrid.engine.layers.coordinates.CRS_NAMES`)."""
    parser.add_argument("--crs", default="wgs84", choices=CRS_NAMES, type=str.lower,
                        help=f"coordinate system of {of}: {', '.join(CRS_NAMES)} (default: wgs84)")


class _DeprecatedFlag(argparse.Action):
    """Stores the value like the flag in ``const`` and says on stderr which flag to use instead."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: {option_string} is deprecated, use {self.const}", file=sys.stderr)
        setattr(namespace, self.dest, values)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" after an option's help, except for flags and options without a default."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)
