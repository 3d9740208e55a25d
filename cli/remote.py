"""What the commands that call a running server share: the connection options (``--server``,
``--token``, ``--tls-ca``, ``--timeout``), command groups whose leaves take them, the wrapper that
connects and turns a failed call into ``STATUS: message`` and exit status 2, and JSON output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime

import grpc
from google.protobuf.json_format import MessageToDict

from citygrid.grpc_api.client import CityGridClient

DEFAULT_SERVER = "localhost:50051"


def connection_options(*, defaults: bool) -> argparse.ArgumentParser:
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


class Leaves:
    """Adds commands that take the connection options, and command groups that do not."""

    def __init__(self, subparsers: argparse._SubParsersAction, remote: argparse.ArgumentParser):
        self._subparsers = subparsers
        self._remote = remote

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        return self._subparsers.add_parser(name, parents=[self._remote], **kwargs)

    def group(self, name: str, **kwargs) -> argparse.ArgumentParser:
        return self._subparsers.add_parser(name, **kwargs)


def remote(action):
    """A command function: connect, run ``action(client, args)``, map a failed call to exit status 2."""

    def run(args: argparse.Namespace) -> int:
        with CityGridClient(args.server, args.token, tls_ca=args.tls_ca, timeout=args.timeout) as client:
            try:
                return int(action(client, args) or 0)
            except grpc.RpcError as exc:
                print(f"citygrid {args.command}: {exc.code().name}: {exc.details()}", file=sys.stderr)
                return 2

    return run


def message_dict(message) -> dict:
    """``message`` as JSON-able data with every field: a zero, an empty string or list and the first
    enum value are printed (``"row": 0``, ``"max_load": 0``, ``"moves": []``), not left out as
    protobuf's JSON mapping does by default, so a script reads each field it knows. Only fields with
    presence (messages, ``optional``) that are unset stay out: "not set" is what they say."""
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def print_message(message) -> None:
    print(json.dumps(message_dict(message), ensure_ascii=False, indent=2))


def parse_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r} (e.g. 2026-12-01T08:00:00+08:00)") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; add one (e.g. +08:00 or Z)")
    return when
