"""``citygrid layer``: import grid files as saved versions, list and show them, validate coverage."""

from __future__ import annotations

import argparse
import json

from citygrid.cli.common import add_field_arguments, field_map
from citygrid.engine import snapshots, sources


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("layer", help="grid layers: import, list, show, validate")
    layer_sub = parser.add_subparsers(dest="layer_command", metavar="LAYER_COMMAND", required=True)

    imp = layer_sub.add_parser("import", help="read a grid file and save it as a layer version in --data-dir")
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
    layer = sources.read_layer(args.grids, field_map(args), version_id=args.version_id)
    path = snapshots.save_layer(layer, args.data_dir)
    print(f"saved layer version {layer.version_id} ({layer.n_grids} grids) at {path}")
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
