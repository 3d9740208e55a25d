"""``citygrid demo OUTDIR``: generate the demo district (a synthetic Longgang inside its real outline)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from citygrid.engine.demo import generate_demo
from citygrid.engine.demo.generator import DEFAULT_SEED, DEFAULT_SIZES, STAGES


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="generate the demo district (3,823 grids of a synthetic Longgang) into a folder",
        description="Write a deterministic demo district into OUTDIR: grids, communities and streets "
        "(GeoParquet), buildings, residents, businesses, workers, a year of events with labelled anomalies, "
        "the taxonomy and a manifest. The same seed writes the same files.",
    )
    parser.add_argument("outdir", type=Path, metavar="OUTDIR", help="folder to write into (created if needed)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    for name in ("events", "buildings", "residents", "businesses", "workers"):
        parser.add_argument(f"--{name}", type=int, metavar="N", dest=f"n_{name}",
                            help=f"number of {name} (default {DEFAULT_SIZES[name]:,})")
    parser.add_argument("--taxonomy", type=Path, metavar="PATH", help="event taxonomy file (default: the built-in one)")
    parser.add_argument("--force", action="store_true", help="overwrite demo files already in OUTDIR")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    with tqdm(total=len(STAGES), unit="stage", desc="citygrid demo", leave=False) as bar:

        def progress(stage: str, done: int, total: int) -> None:
            bar.set_postfix_str(STAGES[done] if done < total else "done")
            bar.update(done - bar.n)

        summary = generate_demo(
            args.outdir, seed=args.seed, n_events=args.n_events, n_buildings=args.n_buildings,
            n_residents=args.n_residents, n_businesses=args.n_businesses, n_workers=args.n_workers,
            taxonomy_path=args.taxonomy, overwrite=args.force, progress=progress,
        )
    print("\n".join(summary.lines()))
    return _validate(args.outdir)


def _validate(outdir: Path) -> int:
    """The demo must pass its own publish gate: cover the real outline, no overlap, nest in communities."""
    from citygrid.engine.demo.outline import load_outline
    from citygrid.engine.layers.layer import FieldMap
    from citygrid.engine.layers.sources import read_layer
    from citygrid.engine.layers.validation import validate_layer

    grids = read_layer(outdir / "grids.parquet")
    communities = read_layer(outdir / "communities.parquet", FieldMap(grid_code="community_code"))
    report = validate_layer(grids, boundary=load_outline(), parents=communities, parent_code_field="community_code")
    print("\n".join(report.lines()))
    return 0 if report.valid else 1
