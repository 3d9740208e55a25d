"""The ``citygrid`` command: one argparse tree, one module per command group.

Each command module has ``register(subparsers)`` that adds its parser and sets ``func`` to a
function ``(args) -> int`` (the exit status). Errors CityGrid raises on purpose become a one-line
message on stderr and exit status 2; nothing prints a traceback at a user. Output cut short by its
reader (``citygrid query grids | head -3``) ends the command quietly with status 141, as a program
killed by SIGPIPE would.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from citygrid.engine.errors import CityGridError

#: Exit status when the reader of stdout went away (128 + SIGPIPE, what a shell shows for ``yes | head``).
EXIT_BROKEN_PIPE = 141

#: Where saved layer versions and the databases live unless --data-dir or $CITYGRID_DATA_DIR says.
DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "citygrid"

COMMAND_MODULES = ("demo", "layer", "assign", "serve", "query", "events", "reindex", "detect", "scan", "stats",
                   "alerts", "houses", "report")


def default_data_dir() -> Path:
    return Path(os.environ.get("CITYGRID_DATA_DIR") or DEFAULT_DATA_DIR)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citygrid",
        description="CityGrid: exact point-in-grid, coverage validation and dispatch for city grid management.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help=f"where saved layer versions and databases live (default: $CITYGRID_DATA_DIR or {DEFAULT_DATA_DIR})",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"citygrid.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a pipe closed early fails here, inside the handler, not at exit
        return status
    except BrokenPipeError:
        _drop_stdout()
        return EXIT_BROKEN_PIPE
    except CityGridError as exc:
        print(f"citygrid {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"citygrid {args.command}: interrupted", file=sys.stderr)
        return 130


def _drop_stdout() -> None:
    """Point stdout at /dev/null: the reader is gone, and the interpreter's last flush at exit would
    otherwise raise BrokenPipeError again (as "Exception ignored ... BrokenPipeError")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError and a ValueError
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
