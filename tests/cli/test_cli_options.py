"""The ``citygrid`` command tree speaks one language: the same option names for the same things in
every command, the coordinate systems of one declaration, and a README that lists them."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from citygrid.cli.main import build_parser
from citygrid.cli.serve import demo_folder
from citygrid.engine.layers.coordinates import CRS_CODES, CRS_NAMES

README = Path(__file__).resolve().parents[2] / "README.md"
#: The field options, written out here (not taken from the code) and what each names.
FIELD_FLAGS = {"--code-field": "field_grid_code", "--name-field": "field_grid_name", "--type-field": "field_grid_type",
               "--community-field": "field_community_code", "--street-field": "field_street_code",
               "--district-field": "field_district_code"}
#: Options of ``layer validate`` about its parents file: other things, other names.
PARENT_FLAGS = {"--parent-code-field", "--parent-layer-code-field"}


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser) of every leaf command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for sub in subs:
        for name, child in sub.choices.items():
            yield from commands(child, path + (name,))


def visible_options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions if a.help is not argparse.SUPPRESS for s in a.option_strings}


LEAVES = dict(commands(build_parser()))


def test_every_command_names_the_grid_fields_alike():
    with_fields = []
    for path, parser in LEAVES.items():
        fields = {s for s in visible_options(parser) if s.endswith("-field")} - PARENT_FLAGS
        if fields:
            with_fields.append(" ".join(path))
            assert fields == set(FIELD_FLAGS), f"citygrid {' '.join(path)}: {sorted(fields)}"
    assert {"query layer upload", "layer import", "assign", "reindex"} <= set(with_fields)


def test_the_old_upload_spellings_still_work_hidden_and_deprecated(capsys):
    argv = ["query", "layer", "upload", "g.geojson", "--grid-field", "ID", "--grid-name-field", "N",
            "--grid-type-field", "T"]
    args = build_parser().parse_args(argv)
    assert (args.field_grid_code, args.field_grid_name, args.field_grid_type) == ("ID", "N", "T")
    err = capsys.readouterr().err
    assert "--grid-field is deprecated, use --code-field" in err and "use --type-field" in err
    upload = build_parser().parse_args(["query", "layer", "upload", "g.geojson"])
    assert upload.field_grid_code == "" and upload.field_community_code == ""  # the server's defaults apply
    assert "--grid-field" not in LEAVES[("query", "layer", "upload")].format_help()


@pytest.mark.parametrize("path", [("assign",), ("reindex",), ("query", "point"), ("events", "relocate")])
def test_every_crs_option_takes_the_same_names(path):
    crs = next(a for a in LEAVES[path]._actions if "--crs" in a.option_strings)
    assert tuple(crs.choices) == CRS_NAMES
    assert set(CRS_NAMES) == {"wgs84", "cgcs2000", "gcj02", "bd09"} and set(CRS_NAMES) <= set(CRS_CODES)


def test_reindex_and_assign_take_cgcs2000_in_any_case():
    reindex = build_parser().parse_args(["reindex", "in.parquet", "--layer", "v", "-o", "out", "--crs", "CGCS2000"])
    assign = build_parser().parse_args(["assign", "in.csv", "--layer", "v", "-o", "o.csv", "--crs", "cgcs2000"])
    assert reindex.crs == assign.crs == "cgcs2000"


def test_the_readme_lists_the_coordinate_systems_of_assign_and_reindex():
    text = README.read_text(encoding="utf-8")
    listed = "--crs " + "|".join(CRS_NAMES)
    for command in ("citygrid assign", "citygrid reindex"):
        lines = [line for line in text.splitlines() if line.startswith(command) and "--crs" in line]
        assert lines and all(listed in line for line in lines), f"{command}: {lines}"
    assert re.search(r"`cgcs2000`.*EPSG:4490", text)


def test_the_readme_says_where_the_demo_files_are(demo_dir):
    """A newcomer finds the demo's events, workers and buildings from the README: the folder
    ``serve --demo`` writes them to, and every file the generator writes is named there."""
    text = README.read_text(encoding="utf-8")
    folder = demo_folder(Path("DIR"))
    assert f"`{folder.as_posix()}/`" in text
    for name in ("events.parquet", "workers.parquet", "buildings.parquet"):
        assert f"{folder.as_posix()}/{name}" in text or f"demo/{name}" in text, name
    written = {p.name for p in demo_dir.iterdir()}
    assert {"events.parquet", "workers.parquet", "buildings.parquet"} <= written
    assert not [name for name in written if f"`{name}`" not in text and f"/{name}" not in text]
