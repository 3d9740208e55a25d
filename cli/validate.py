"""``citygrid layer validate``: the publish gate (全覆盖、无交叉) on the command line.

Exit status: 0 the layer is valid, 1 it is not (the report says why), 2 an input could not be read
(one line on stderr, from :mod:`citygrid.cli.main`).

    citygrid layer validate grids.geojson --boundary district.geojson \\
        --parents communities.parquet --parent-code-field community_code --plot problems.png
"""

from __future__ import annotations

import argparse
import sys

from citygrid.cli.common import add_field_arguments, field_map
from citygrid.engine.layers import sources
from citygrid.engine.errors import InvalidInput
from citygrid.engine.layers.layer import FieldMap
from citygrid.engine.layers.validation import DEFAULT_MIN_PARENT_SHARE, DEFAULT_SLIVER_M2, validate_layer


def register(layer_subparsers: argparse._SubParsersAction) -> None:
    parser = layer_subparsers.add_parser(
        "validate",
        help="check that a layer covers its district with no gap or overlap (and nests in its parents)",
        description="Report invalid geometries, duplicate or missing codes, overlaps, gaps, parts outside "
        "the boundary and nesting errors. Exit 0 when valid, 1 when not, 2 when an input cannot be read.",
    )
    parser.add_argument("grids", metavar="GRIDS", help="grid file, saved version directory or saved version id")
    parser.add_argument("--boundary", metavar="FILE", help="district outline the grids must cover exactly")
    parser.add_argument("--parents", metavar="FILE|ID", help="parent layer every grid must lie inside (e.g. communities)")
    parser.add_argument("--parent-code-field", metavar="COLUMN",
                        help="column of GRIDS holding each grid's parent code, checked against the geometric parent")
    parser.add_argument("--parent-layer-code-field", metavar="COLUMN",
                        help="code column of the parents file (default: --parent-code-field, else grid_code)")
    parser.add_argument("--sliver-m2", type=float, default=DEFAULT_SLIVER_M2, metavar="M2",
                        help=f"overlaps and gaps smaller than this are tolerated slivers (default: {DEFAULT_SLIVER_M2:g})")
    parser.add_argument("--min-parent-share", type=float, default=DEFAULT_MIN_PARENT_SHARE, metavar="SHARE",
                        help=f"share of a grid's area its parent must hold (default: {DEFAULT_MIN_PARENT_SHARE:g})")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (no progress bar)")
    parser.add_argument("--plot", metavar="PNG", help="also draw the layer with its problems marked into this PNG")
    add_field_arguments(parser)
    parser.set_defaults(func=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    if args.parent_code_field and not args.parents:
        raise InvalidInput("--parent-code-field needs --parents (the layer to check the codes against)")
    layer = sources.resolve_layer(args.grids, args.data_dir, field_map(args))
    boundary = sources.read_boundary(args.boundary) if args.boundary else None
    parents = None
    if args.parents:
        parent_code = args.parent_layer_code_field or args.parent_code_field or FieldMap().grid_code
        parents = sources.resolve_layer(args.parents, args.data_dir, FieldMap(grid_code=parent_code))

    with _ProgressBars(enabled=not args.json and sys.stderr.isatty()) as progress:
        report = validate_layer(
            layer,
            boundary=boundary,
            parents=parents,
            parent_code_field=args.parent_code_field,
            sliver_m2=args.sliver_m2,
            min_parent_share=args.min_parent_share,
            progress=progress,
        )
    if args.json:
        print(report.to_json())
    else:
        print("\n".join(report.lines()))
    if args.plot:
        from citygrid.engine.layers.plots import plot_validation

        try:
            plot_validation(layer, report, args.plot, boundary=boundary)
        except OSError as exc:
            raise InvalidInput(f"cannot write the plot to {args.plot}: {exc.strerror or exc}") from None
        if not args.json:
            print(f"plot written to {args.plot}")
    return 0 if report.valid else 1


class _ProgressBars:
    """A tqdm bar per validation stage on stderr; a no-op when disabled."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.stage = None

    def __enter__(self):
        return self if self.enabled else None

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            if self.bar is not None:
                self.bar.close()
            self.stage = stage
            unit = {"geometry": "grid", "boundary": "grid", "overlaps": "pair", "nesting": "pair"}.get(stage, "step")
            self.bar = tqdm(total=total, desc=f"validate: {stage}", file=sys.stderr, leave=False, unit=unit)
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()
