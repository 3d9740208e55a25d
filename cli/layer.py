"""``citygrid layer``: import grid files as saved versions, list and show them, validate coverage."""

from __future__ import annotations

import argparse
import json

from citygrid.cli.common import add_field_arguments, field_map
from citygrid.engine.layers import snapshots, sources
from citygrid.engine.layers.registry import LayerRegistry


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("layer", help="grid layers: import, list, show, validate")
    layer_sub = parser.add_subparsers(dest="layer_command", metavar="LAYER_COMMAND", required=True)

    imp = layer_sub.add_parser("import", help="read a grid file and save it as a layer version in --data-dir "
                               "(recorded, unpublished, in its registry)")
    imp.add_argument("grids", help="GeoJSON, TopoJSON, Shapefile (.shp or .zip), GeoPackage or GeoParquet")
    imp.add_argument("--version-id", help="name of the new version (default: derived from its content hash)")
    add_field_arguments(imp)
    imp.set_defaults(func=run_import)

    lst = layer_sub.add_parser("list", help="list the saved layer versions in --data-dir")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(func=run_list)

    show = layer_sub.add_parser("show", help="describe one layer (saved version id, version directory or file)")
    show.add_argument("layer", metavar="PATH|ID")
    add_field_arguments(show)
    show.set_defaults(func=run_show)

    from citygrid.cli import validate

    validate.register(layer_sub)


def run_import(args: argparse.Namespace) -> int:
    """Save the version and record it in the data directory's layer registry: the registry a server on
    that directory reads on every ListVersions, so a running server lists it at once (no second
    registry, no restart)."""
    layer = sources.read_layer(args.grids, field_map(args), version_id=args.version_id)
    # Recording needs no point index: none is built (the active version is only mapped).
    registry = LayerRegistry(args.data_dir, assigner_factory=lambda _: None)
    try:
        record = registry.register(layer)
    finally:
        registry.close()
    path = snapshots.version_dir(args.data_dir, record.version_id)
    print(f"saved layer version {record.version_id} ({record.n_grids} grids) at {path}")
    if record.published:
        print(f"it is already published (valid from {record.valid_from.isoformat()})")
        return 0
    print(f"recorded, unpublished, in the layer registry of {args.data_dir}; a server on this data directory "
          "lists it now (citygrid query layer versions). Publish and activate it there:")
    print(f"  citygrid query layer publish {record.version_id}")
    print(f"  citygrid query layer activate {record.version_id}")
    print("A server on another data directory takes the file itself: citygrid query layer upload "
          f"{args.grids} --version-id {record.version_id} (and the same --*-field options)")
    return 0


def run_list(args: argparse.Namespace) -> int:
    manifests = snapshots.list_versions(args.data_dir)
    if args.json:
        print(json.dumps(manifests, indent=2, ensure_ascii=False))
        return 0
    if not manifests:
        print(f"no saved layer versions in {snapshots.layers_dir(args.data_dir)}")
    for m in manifests:
        print(f"{m['version_id']:<24} {m['n_grids']:>7} grids  {m['created_at']}  {m['source']}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    layer = sources.resolve_layer(args.layer, args.data_dir, field_map(args))
    lng0, lat0, lng1, lat1 = layer.bounds
    print(f"version   {layer.version_id}")
    print(f"source    {layer.source}")
    print(f"grids     {layer.n_grids}")
    print(f"vertices  {len(layer.x)}")
    print(f"bounds    {lng0:.6f},{lat0:.6f} .. {lng1:.6f},{lat1:.6f}")
    print(f"columns   {', '.join(layer.attributes.column_names)}")
    print(f"hash      {layer.content_hash}")
    return 0
