"""``citygrid query``: remote commands against a running server, for people and scripts.

    citygrid query point 114.25 22.72 --server localhost:50051 --token $T
    citygrid query grid 440307001001001
    citygrid query grids --community 440307001001
    citygrid query cell 8a4a...  |  citygrid query cells 440307001001001
    citygrid query layer upload grids.zip --version-id v2 --code-field GRID_ID
    citygrid query layer publish v2 --valid-from 2027-01-01T00:00:00+08:00
    citygrid query layer activate v2  |  citygrid query layer versions
    citygrid query token issue 市民热线 intake --jurisdiction 440307001
    citygrid query whoami  |  citygrid query health

The server is ``--server`` (default ``$CITYGRID_SERVER`` or ``localhost:50051``), the token ``--token``
(default ``$CITYGRID_TOKEN``). Answers print as JSON (lists as one JSON object a line); a failed call
prints ``STATUS: message`` on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json

from citygrid.cli.common import add_crs_argument, add_field_arguments, given_fields
from citygrid.cli.remote import Leaves, connection_options, message_dict, parse_time, print_message, remote
from citygrid.grpc_api.client import CityGridClient

def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("query", help="call a running CityGrid server (assign, grids, layers, tokens)",
                                   parents=[connection_options(defaults=True)])
    after = connection_options(defaults=False)  # the same options after the command, as people type them
    sub = Leaves(parser.add_subparsers(dest="query_command", metavar="QUERY_COMMAND", required=True), after)

    p = sub.add_parser("point", help="the grid of one point")
    p.add_argument("lng", type=float)
    p.add_argument("lat", type=float)
    add_crs_argument(p, of="LNG LAT")
    p.add_argument("--at", type=parse_time, help="use the layer version valid at this ISO time (with zone)")
    p.add_argument("--fallback-m", type=float, default=0.0, help="give points this close outside every grid the nearest")
    p.set_defaults(func=remote(_point))

    p = sub.add_parser("grid", help="one grid and its parents")
    p.add_argument("code")
    p.add_argument("--at", type=parse_time)
    p.set_defaults(func=remote(lambda c, a: print_message(c.get_grid(a.code, at=a.at))))

    p = sub.add_parser("grids", help="list grids (one JSON object a line)")
    p.add_argument("--community", default="")
    p.add_argument("--street", default="")
    p.add_argument("--type", dest="grid_type", default="")
    p.add_argument("--at", type=parse_time)
    p.set_defaults(func=remote(_grids))

    p = sub.add_parser("cells", help="the H3 cover of a grid")
    p.add_argument("code")
    p.add_argument("--at", type=parse_time)
    p.set_defaults(func=remote(lambda c, a: print_message(c.get_grid_cells(a.code, at=a.at))))

    p = sub.add_parser("cell", help="the grids an H3 cell touches")
    p.add_argument("cell", type=_cell_id, help="H3 cell as hex (8a...) or integer")
    p.add_argument("--at", type=parse_time)
    p.set_defaults(func=remote(lambda c, a: print_message(c.locate_cell(a.cell, at=a.at))))

    layer = sub.group("layer", help="remote layer versions: upload, validate, publish, activate, versions")
    layer_sub = Leaves(layer.add_subparsers(dest="layer_command", metavar="LAYER_COMMAND", required=True), after)
    p = layer_sub.add_parser("upload", help="upload a grid file as a new unpublished version")
    p.add_argument("file")
    p.add_argument("--version-id", default="")
    add_field_arguments(p, defaults=False)
    p.set_defaults(func=remote(_upload))
    p = layer_sub.add_parser("validate", help="coverage report of a version")
    p.add_argument("version_id")
    p.add_argument("--boundary", help="district outline file")
    p.set_defaults(func=remote(_validate))
    p = layer_sub.add_parser("publish", help="make a version valid from a time on (default now)")
    p.add_argument("version_id")
    p.add_argument("--valid-from", type=parse_time)
    p.set_defaults(func=remote(lambda c, a: print_message(c.publish_layer(a.version_id, valid_from=a.valid_from))))
    p = layer_sub.add_parser("activate", help="swap the active version")
    p.add_argument("version_id")
    p.set_defaults(func=remote(lambda c, a: print_message(c.activate_version(a.version_id))))
    p = layer_sub.add_parser("versions", help="list versions")
    p.set_defaults(func=remote(lambda c, a: print_message(c.list_versions())))

    token = sub.group("token", help="issue, list and revoke tokens (admins)")
    token_sub = Leaves(token.add_subparsers(dest="token_command", metavar="TOKEN_COMMAND", required=True), after)
    p = token_sub.add_parser("issue", help="a new token; its secret is printed once")
    p.add_argument("principal", help="the person or system it belongs to")
    p.add_argument("role", help="admin, intake, dispatcher, verifier, supervisor, dashboard or worker")
    p.add_argument("--jurisdiction", nargs="*", default=[],
                   help="district/street/community/grid codes (default everywhere)")
    p.add_argument("--worker-id", default="")
    p.set_defaults(func=remote(lambda c, a: print_message(
        c.issue_token(a.principal, a.role, a.jurisdiction, worker_id=a.worker_id))))
    p = token_sub.add_parser("list", help="list tokens (no secrets)")
    p.add_argument("--include-revoked", action="store_true")
    p.set_defaults(func=remote(lambda c, a: print_message(c.list_tokens(include_revoked=a.include_revoked))))
    p = token_sub.add_parser("revoke", help="revoke a token by its id")
    p.add_argument("token_id")
    p.set_defaults(func=remote(lambda c, a: print_message(c.revoke_token(a.token_id))))

    p = sub.add_parser("whoami", help="the principal of --token")
    p.set_defaults(func=remote(lambda c, a: print_message(c.whoami())))
    p = sub.add_parser("health", help="the server's health status (no token needed)")
    p.set_defaults(func=remote(lambda c, a: print(c.health())))


def _point(client: CityGridClient, args) -> None:
    print_message(client.assign_point(args.lng, args.lat, crs=args.crs, at=args.at, fallback_m=args.fallback_m))


def _grids(client: CityGridClient, args) -> None:
    for grid in client.list_grids(community_code=args.community, street_code=args.street,
                                  grid_type=args.grid_type, at=args.at):
        print(json.dumps(message_dict(grid), ensure_ascii=False))


def _upload(client: CityGridClient, args) -> None:
    print_message(client.upload_layer(args.file, version_id=args.version_id, fields=given_fields(args)))


def _validate(client: CityGridClient, args) -> int:
    answer = client.validate_layer(args.version_id, boundary=args.boundary)
    print(answer.report_json)
    return 0 if answer.valid else 1


def _cell_id(text: str) -> int:
    try:
        value = int(text, 10) if text.isdigit() and len(text) > 16 else int(text, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an H3 cell id: {text!r} (hex like 8a4a... or an integer)") from None
    if not 0 < value < 1 << 64:
        raise argparse.ArgumentTypeError(f"not an H3 cell id: {text!r}")
    return value

