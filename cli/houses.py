"""``citygrid houses``: the building and unit registry (一楼一码、一房一码) and its people, against a running
server (HouseService), and the bulk load of a data directory's registry from Parquet files (local).

    citygrid houses get 4403070010010010001           # a building
    citygrid houses find --near 114.25 22.72 --crs gcj02 --radius-m 50
    citygrid houses find --grid 440307001001001       |  citygrid houses find --address 龙岗大道8号
    citygrid houses unit 44030700100100100010001      |  citygrid houses units 4403070010010010001
    citygrid houses resolve CG1.K1.4403070010010010001.ABCDEFGHIJKLMNOP
    citygrid houses move-in R123 44030700100100100010001 --name 王小明 --birth-year 1990 --non-registered
    citygrid houses move-out R123 --on 2026-12-01
    citygrid houses declare PAYLOAD --by 房东刘 --kind move_in --unit 4403... --resident R9 --name 陈一
    citygrid houses review 17 --accept  |  citygrid houses review 18 --reject --note 查无此人
    citygrid houses declarations 440307001001001 --reason 核验     # pending, then new ones (Ctrl-C stops)
    citygrid houses residents grid 440307001001001 --reason 入户走访
    citygrid houses history R123 --reason 核查                           # every stay of one resident
    citygrid houses export community 440307001001 --reason 统计核对 [--page-size 1000 --limit N --after C]
    citygrid houses check-in 4403070010010010001 114.25 22.72
    citygrid houses population --level community  |  citygrid houses rentals  |  citygrid houses group-renting GRID
    citygrid houses load DIR [--strict]               # local: buildings/units/residents/businesses.parquet

Answers print as JSON (lists as one JSON object a line); a failed call prints ``STATUS: message`` on
stderr and exits with status 2. ``load`` writes the registry of ``--data-dir`` (stop the server on it
first: one process writes a data directory) and prints the report of refused rows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from citygrid.cli.common import add_crs_argument
from citygrid.cli.remote import Leaves, connection_options, message_dict, print_message, remote


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("houses", help="buildings, units and residents (一楼一码、以房管人)",
                                   parents=[connection_options(defaults=True)])
    after = connection_options(defaults=False)
    sub = Leaves(parser.add_subparsers(dest="houses_command", metavar="HOUSES_COMMAND", required=True), after)

    p = sub.add_parser("get", help="a building by code")
    p.add_argument("code")
    p.set_defaults(func=remote(lambda c, a: print_message(c.get_building(a.code))))

    p = sub.add_parser("find", help="buildings near a point, in an area, or by address")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--near", nargs=2, type=float, metavar=("LNG", "LAT"))
    where.add_argument("--grid")
    where.add_argument("--community")
    where.add_argument("--street")
    where.add_argument("--address")
    add_crs_argument(p, of="--near")
    p.add_argument("--radius-m", type=float, default=0.0, help="with --near (default 100)")
    p.add_argument("--limit", type=int, default=0)
    p.set_defaults(func=remote(_find))

    p = sub.add_parser("unit", help="a unit by code")
    p.add_argument("code")
    p.set_defaults(func=remote(lambda c, a: print_message(c.get_unit(a.code))))

    p = sub.add_parser("units", help="the units of a building")
    p.add_argument("building_code")
    p.set_defaults(func=remote(lambda c, a: _lines(c.list_units(a.building_code))))

    p = sub.add_parser("resolve", help="the building or unit a door plate's QR payload names")
    p.add_argument("payload")
    p.set_defaults(func=remote(lambda c, a: print_message(c.resolve_code(a.payload))))

    p = sub.add_parser("move-in", help="入住登记: a resident moves into a unit")
    p.add_argument("resident_id")
    p.add_argument("unit_code")
    _person(p)
    p.add_argument("--on", default="", help="date YYYY-MM-DD (default today)")
    p.set_defaults(func=remote(lambda c, a: print_message(c.move_in(
        a.resident_id, a.unit_code, on=a.on, name=a.name, gender=a.gender, birth_year=a.birth_year,
        registered=a.registered))))

    p = sub.add_parser("move-out", help="迁出: a resident's present stay ends")
    p.add_argument("resident_id")
    p.add_argument("--on", default="")
    p.set_defaults(func=remote(lambda c, a: print_message(c.move_out(a.resident_id, on=a.on))))

    p = sub.add_parser("declare", help="自主申报 with a scanned plate's payload (pending until reviewed)")
    p.add_argument("payload")
    p.add_argument("--by", dest="declared_by", required=True, help="who declares")
    p.add_argument("--kind", choices=("move_in", "move_out"), required=True)
    p.add_argument("--unit", dest="unit_code", required=True)
    p.add_argument("--resident", dest="resident_id", required=True)
    p.add_argument("--moved-on", default="")
    _person(p)
    p.set_defaults(func=remote(lambda c, a: print_message(c.declare(
        a.payload, a.declared_by, a.kind, a.unit_code, a.resident_id, moved_on=a.moved_on, name=a.name,
        gender=a.gender, birth_year=a.birth_year, registered=a.registered))))

    p = sub.add_parser("review", help="核验: accept or reject a pending declaration")
    p.add_argument("declaration_id", type=int)
    verdict = p.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--accept", action="store_true")
    verdict.add_argument("--reject", action="store_true")
    p.add_argument("--note", default="")
    p.set_defaults(func=remote(lambda c, a: print_message(c.review_declaration(a.declaration_id, accept=a.accept,
                                                                                note=a.note))))

    p = sub.add_parser("declarations", help="a grid's pending declarations, then new ones as they come")
    p.add_argument("grid_code")
    p.add_argument("--reason", required=True, help="why you read these people (audited)")
    p.add_argument("--after", type=int, default=0, help="resume after this declaration id")
    p.set_defaults(func=remote(lambda c, a: _lines(c.watch_declarations(a.grid_code, reason=a.reason, after=a.after))))

    p = sub.add_parser("residents", help="residents living now in an area, with names (restricted, audited)")
    p.add_argument("level", choices=("unit", "building", "grid", "community", "street"))
    p.add_argument("code")
    p.add_argument("--reason", required=True, help="why you read these people (audited)")
    p.add_argument("--limit", type=int, default=0)
    p.set_defaults(func=remote(lambda c, a: _lines(c.list_residents(a.level, a.code, reason=a.reason, limit=a.limit))))

    p = sub.add_parser("history", help="every stay of one resident (restricted, audited)")
    p.add_argument("resident_id")
    p.add_argument("--reason", required=True, help="why you read this person (audited)")
    p.set_defaults(func=remote(lambda c, a: _lines(c.resident_history(a.resident_id, reason=a.reason))))

    p = sub.add_parser("export", help="residents living now in an area, names masked (张*三), paged (audited)")
    p.add_argument("level", choices=("unit", "building", "grid", "community", "street"))
    p.add_argument("code")
    p.add_argument("--reason", required=True, help="why you export these people (audited)")
    p.add_argument("--page-size", type=int, default=0, help="residents per page, at most 10,000 (default 1,000)")
    p.add_argument("--limit", type=int, default=0, help="most residents in all (default every one)")
    p.add_argument("--after", default="", help="resume after this cursor (UNIT_CODE/RESIDENT_ID of the last line)")
    p.set_defaults(func=remote(lambda c, a: _lines(r for page in c.export_residents(
        a.level, a.code, reason=a.reason, page_size=a.page_size, limit=a.limit, after=a.after)
        for r in page.residents)))

    p = sub.add_parser("check-in", help="签到 at a building from the terminal's position")
    p.add_argument("building_code")
    p.add_argument("lng", type=float)
    p.add_argument("lat", type=float)
    add_crs_argument(p, of="LNG LAT")
    p.set_defaults(func=remote(lambda c, a: print_message(c.check_in(a.building_code, a.lng, a.lat, crs=a.crs))))

    for name, what in (("population", "population per area by registration and age band"),
                       ("rentals", "let units per area by class and control level")):
        p = sub.add_parser(name, help=what)
        p.add_argument("--level", choices=("grid", "community", "street", "district"), default="grid")
        if name == "population":
            p.add_argument("--year", type=int, default=0)
            p.set_defaults(func=remote(lambda c, a: _counts(c.population_stats(a.level, year=a.year))))
        else:
            p.set_defaults(func=remote(lambda c, a: _counts(c.rental_stats(a.level))))

    p = sub.add_parser("group-renting", help="units of a grid the group-renting rule flags (群租)")
    p.add_argument("grid_code")
    p.set_defaults(func=remote(lambda c, a: _lines(c.group_renting(a.grid_code))))

    p = sub.group("load", help="bulk-load buildings, units, residents, businesses Parquet files into --data-dir "
                               "(local; the server on it must be stopped)")
    p.add_argument("directory", type=Path, help="folder with buildings/units/residents/businesses.parquet")
    p.add_argument("--strict", action="store_true", help="refuse the whole load if any row is refused")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run_load)


def _person(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default="")
    p.add_argument("--gender", default="")
    p.add_argument("--birth-year", type=int)
    registered = p.add_mutually_exclusive_group()
    registered.add_argument("--registered", dest="registered", action="store_true", default=None, help="户籍")
    registered.add_argument("--non-registered", dest="registered", action="store_false", help="流动")


def _find(client, args) -> None:
    for level in ("grid", "community", "street"):
        if getattr(args, level):
            return _lines(client.find_buildings(level=level, code=getattr(args, level), limit=args.limit))
    if args.near:
        return _lines(client.find_buildings(near=tuple(args.near), crs=args.crs, radius_m=args.radius_m))
    return _lines(client.find_buildings(address=args.address, limit=args.limit))


def _lines(messages) -> None:
    for m in messages:
        print(json.dumps(message_dict(m), ensure_ascii=False), flush=True)


def _counts(counts) -> None:
    """One JSON object a line: the area code and its count per column."""
    for area in counts.areas:
        print(json.dumps({"level": counts.level, "code": area.code, **dict(zip(counts.columns, map(int, area.counts)))},
                         ensure_ascii=False))


def run_load(args: argparse.Namespace) -> int:
    """Load the directory's files into the registry of ``--data-dir``, placed on its active layer version."""
    from citygrid.engine.houses.host import open_houses
    from citygrid.engine.layers.registry import LayerRegistry
    from citygrid.engine.times import system_clock

    layers = LayerRegistry(args.data_dir)
    try:
        houses = open_houses(args.data_dir, layers, system_clock)
        try:
            report = houses.registry.load_directory(args.directory, strict=args.strict)
        finally:
            houses.registry.close()
    finally:
        layers.close()
    if args.json:
        print(json.dumps({"loaded": report.loaded, "refused": report.refused_counts}, ensure_ascii=False, indent=2))
    else:
        print(report.summary())
        for row in report.refused:
            print(f"  refused {row.table} row {row.row} ({row.key}): {row.reason}")
    return 0 if not report.n_refused else 1
