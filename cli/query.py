"""``citygrid query``: remote commands against a running server, for people and scripts.

    citygrid query point 114.25 22.72 --server localhost:50051 --token $T
    citygrid query grid 440307001001001
    citygrid query grids --community 440307001001
    citygrid query cell 8a4a...  |  citygrid query cells 440307001001001
    citygrid query layer upload grids.zip --version-id v2
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
import os
import sys
from datetime import datetime

import grpc
from google.protobuf.json_format import MessageToDict

from citygrid.grpc_api.client import CRS, CityGridClient

DEFAULT_SERVER = "localhost:50051"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("query", help="call a running CityGrid server (assign, grids, layers, tokens)",
                                   parents=[_connection_options(defaults=True)])
    remote = _connection_options(defaults=False)  # the same options after the command, as people type them
    sub = _Leaves(parser.add_subparsers(dest="query_command", metavar="QUERY_COMMAND", required=True), remote)

    p = sub.add_parser("point", help="the grid of one point")
    p.add_argument("lng", type=float)
    p.add_argument("lat", type=float)
    p.add_argument("--crs", choices=sorted(CRS), default="wgs84")
    p.add_argument("--at", type=_time, help="use the layer version valid at this ISO time (with zone)")
    p.add_argument("--fallback-m", type=float, default=0.0, help="give points this close outside every grid the nearest")
    p.set_defaults(func=_remote(_point))

    p = sub.add_parser("grid", help="one grid and its parents")
    p.add_argument("code")
    p.add_argument("--at", type=_time)
    p.set_defaults(func=_remote(lambda c, a: _print(c.get_grid(a.code, at=a.at))))

    p = sub.add_parser("grids", help="list grids (one JSON object a line)")
    p.add_argument("--community", default="")
    p.add_argument("--street", default="")
    p.add_argument("--type", dest="grid_type", default="")
    p.add_argument("--at", type=_time)
    p.set_defaults(func=_remote(_grids))

    p = sub.add_parser("cells", help="the H3 cover of a grid")
    p.add_argument("code")
    p.add_argument("--at", type=_time)
    p.set_defaults(func=_remote(lambda c, a: _print(c.get_grid_cells(a.code, at=a.at))))

    p = sub.add_parser("cell", help="the grids an H3 cell touches")
    p.add_argument("cell", type=_cell_id, help="H3 cell as hex (8a...) or integer")
    p.add_argument("--at", type=_time)
    p.set_defaults(func=_remote(lambda c, a: _print(c.locate_cell(a.cell, at=a.at))))

    layer = sub.group("layer", help="remote layer versions: upload, validate, publish, activate, versions")
    layer_sub = _Leaves(layer.add_subparsers(dest="layer_command", metavar="LAYER_COMMAND", required=True), remote)
    p = layer_sub.add_parser("upload", help="upload a grid file as a new unpublished version")
    p.add_argument("file")
    p.add_argument("--version-id", default="")
    for name in ("grid_code", "grid_name", "grid_type", "community_code", "street_code", "district_code"):
        p.add_argument(f"--{name.replace('_code', '').replace('_', '-')}-field", dest=f"field_{name}", default="",
                       metavar="COLUMN", help=f"source column of the {name.replace('_', ' ')}")
    p.set_defaults(func=_remote(_upload))
    p = layer_sub.add_parser("validate", help="coverage report of a version")
    p.add_argument("version_id")
    p.add_argument("--boundary", help="district outline file")
    p.set_defaults(func=_remote(_validate))
    p = layer_sub.add_parser("publish", help="make a version valid from a time on (default now)")
    p.add_argument("version_id")
    p.add_argument("--valid-from", type=_time)
    p.set_defaults(func=_remote(lambda c, a: _print(c.publish_layer(a.version_id, valid_from=a.valid_from))))
    p = layer_sub.add_parser("activate", help="swap the active version")
    p.add_argument("version_id")
    p.set_defaults(func=_remote(lambda c, a: _print(c.activate_version(a.version_id))))
    p = layer_sub.add_parser("versions", help="list versions")
    p.set_defaults(func=_remote(lambda c, a: _print(c.list_versions())))

    token = sub.group("token", help="issue, list and revoke tokens (admins)")
    token_sub = _Leaves(token.add_subparsers(dest="token_command", metavar="TOKEN_COMMAND", required=True), remote)
    p = token_sub.add_parser("issue", help="a new token; its secret is printed once")
    p.add_argument("principal", help="the person or system it belongs to")
    p.add_argument("role", help="admin, intake, dispatcher, verifier, supervisor, dashboard or worker")
    p.add_argument("--jurisdiction", nargs="*", default=[],
                   help="district/street/community/grid codes (default everywhere)")
    p.add_argument("--worker-id", default="")
    p.set_defaults(func=_remote(lambda c, a: _print(
        c.issue_token(a.principal, a.role, a.jurisdiction, worker_id=a.worker_id))))
    p = token_sub.add_parser("list", help="list tokens (no secrets)")
    p.add_argument("--include-revoked", action="store_true")
    p.set_defaults(func=_remote(lambda c, a: _print(c.list_tokens(include_revoked=a.include_revoked))))
    p = token_sub.add_parser("revoke", help="revoke a token by its id")
    p.add_argument("token_id")
    p.set_defaults(func=_remote(lambda c, a: _print(c.revoke_token(a.token_id))))

    p = sub.add_parser("whoami", help="the principal of --token")
    p.set_defaults(func=_remote(lambda c, a: _print(c.whoami())))
    p = sub.add_parser("health", help="the server's health status (no token needed)")
    p.set_defaults(func=_remote(lambda c, a: print(c.health())))


def _connection_options(*, defaults: bool) -> argparse.ArgumentParser:
    """--server, --token, --tls-ca, --timeout. With ``defaults=False`` an option not given sets nothing,
    so the same option given before the command (``citygrid query --server X point ...``) holds."""
    unset = argparse.SUPPRESS
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("connection")
    group.add_argument("--server", default=os.environ.get("CITYGRID_SERVER", DEFAULT_SERVER) if defaults else unset,
                       help=f"HOST:PORT of the server (default: $CITYGRID_SERVER or {DEFAULT_SERVER})")
    group.add_argument("--token", default=os.environ.get("CITYGRID_TOKEN") if defaults else unset,
                       help="bearer token (default: $CITYGRID_TOKEN)")
    group.add_argument("--tls-ca", metavar="PEM", default=None if defaults else unset,
                       help="connect with TLS, trusting this CA certificate")
    group.add_argument("--timeout", type=float, default=60.0 if defaults else unset,
                       help="seconds per call (default 60)")
    return options


class _Leaves:
    """Adds commands that take the connection options, and command groups that do not."""

    def __init__(self, subparsers: argparse._SubParsersAction, remote: argparse.ArgumentParser):
        self._subparsers = subparsers
        self._remote = remote

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        return self._subparsers.add_parser(name, parents=[self._remote], **kwargs)

    def group(self, name: str, **kwargs) -> argparse.ArgumentParser:
        return self._subparsers.add_parser(name, **kwargs)


def _remote(action):
    """A command function: connect, run ``action(client, args)``, map a failed call to exit status 2."""

    def run(args: argparse.Namespace) -> int:
        with CityGridClient(args.server, args.token, tls_ca=args.tls_ca, timeout=args.timeout) as client:
            try:
                return int(action(client, args) or 0)
            except grpc.RpcError as exc:
                print(f"citygrid query: {exc.code().name}: {exc.details()}", file=sys.stderr)
                return 2

    return run


def _point(client: CityGridClient, args) -> None:
    _print(client.assign_point(args.lng, args.lat, crs=args.crs, at=args.at, fallback_m=args.fallback_m))


def _grids(client: CityGridClient, args) -> None:
    for grid in client.list_grids(community_code=args.community, street_code=args.street,
                                  grid_type=args.grid_type, at=args.at):
        print(json.dumps(_dict(grid), ensure_ascii=False))


def _upload(client: CityGridClient, args) -> None:
    fields = {name[len("field_"):]: value for name, value in vars(args).items() if name.startswith("field_") and value}
    _print(client.upload_layer(args.file, version_id=args.version_id, fields=fields))


def _validate(client: CityGridClient, args) -> int:
    answer = client.validate_layer(args.version_id, boundary=args.boundary)
    print(answer.report_json)
    return 0 if answer.valid else 1


def _dict(message) -> dict:
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=False)


def _print(message) -> None:
    print(json.dumps(_dict(message), ensure_ascii=False, indent=2))


def _time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r} (e.g. 2026-12-01T08:00:00+08:00)") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; add one (e.g. +08:00 or Z)")
    return when


def _cell_id(text: str) -> int:
    try:
        value = int(text, 10) if text.isdigit() and len(text) > 16 else int(text, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an H3 cell id: {text!r} (hex like 8a4a... or an integer)") from None
    if not 0 < value < 1 << 64:
        raise argparse.ArgumentTypeError(f"not an H3 cell id: {text!r}")
    return value

