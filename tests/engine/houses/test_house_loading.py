"""Bulk loads (``citygrid.engine.houses.loading`` through ``HouseRegistry.load``): planted bad rows
are refused with their reasons, the rest is loaded; a strict load or a failure part-way writes
nothing; a re-grid on a redrawn layer keeps every code and lists the moved buildings."""

from __future__ import annotations

import sqlite3

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import shapely

from citygrid.engine.houses.loading import LoadRefused
from citygrid.engine.houses.registry import HouseRegistry
from citygrid.engine.layers.layer import GridLayer

TABLES = ("buildings", "units", "residents", "businesses")


def replaced(table: pa.Table, row: int, **values) -> pa.Table:
    """``table`` with some columns of one row replaced."""
    data = table.to_pylist()
    data[row] = {**data[row], **values}
    return pa.Table.from_pylist(data, schema=table.schema)


def counts(reg: HouseRegistry) -> dict[str, int]:
    return {t: reg.connection.execute(f"SELECT count(*) FROM house_{t}").fetchone()[0]
            for t in ("buildings", "units", "residents", "residence", "businesses")}


@pytest.fixture
def empty(world_assigner, clock, tmp_path):
    reg = HouseRegistry(tmp_path / "data", world_assigner, clock)
    yield reg
    reg.close()


@pytest.fixture
def planted(houses_world):
    """The world's tables with bad rows planted, and the reasons expected per table."""
    t = {k: houses_world.tables[k].drop_columns([c for c in ("geometry",) if c in houses_world.tables[k].column_names])
         for k in TABLES}
    b, u, r = t["buildings"], t["units"], t["residents"]
    b_codes = b.column("building_code").to_pylist()
    u_rows = u.to_pylist()
    # buildings: a bad code, a duplicate, a position in the sea (outside every grid of the layer)
    bad_building = b_codes[3]
    far_building = b_codes[4]
    b = replaced(b, 3, building_code=bad_building[:-1] + "X")
    b = replaced(b, 4, lng=113.5, lat=22.2)
    b = pa.concat_tables([b, b.slice(10, 1)])
    # units: one whose code does not start with its building code, one of an unknown building
    u_stranger = 100
    u = replaced(u, u_stranger, building_code=b_codes[20])
    unknown = "4403070010010990001"
    u = replaced(u, 101, unit_code=unknown + "0001", building_code=unknown)
    # residents: one in an unknown unit, one in a shop, one born in 1850
    shop = next(row["unit_code"] for row in u_rows if row["kind"] == "shop" and
                row["building_code"] not in (bad_building, far_building))
    r = replaced(r, 0, unit_code="44030700100109800010001")
    r = replaced(r, 1, unit_code=shop)
    r = replaced(r, 2, birth_year=1850)
    units_of_refused = sum(1 for row in u_rows if row["building_code"] in (bad_building, far_building))
    people = r.to_pylist()
    refused_units = {row["unit_code"] for row in u_rows if row["building_code"] in (bad_building, far_building)}
    refused_units.add(u_rows[u_stranger]["unit_code"])
    people_of_refused = sum(1 for k, p in enumerate(people) if k > 2 and p["unit_code"] in refused_units)
    want = {
        "buildings": {"bad code": 1, "duplicate in the file": 1, "outside every grid": 1},
        "units": {"not in its building": 1, "unknown building": 1 + sum(
            1 for row in u_rows if row["building_code"] == bad_building), "building refused": sum(
            1 for row in u_rows if row["building_code"] == far_building)},
        "residents": {"unknown unit": 1, "not a residential unit": 1, "bad birth year": 1,
                      "unit refused": people_of_refused},
    }
    want = {k: {reason: n for reason, n in v.items() if n} for k, v in want.items()}
    return {"buildings": b, "units": u, "residents": r, "businesses": t["businesses"]}, want, units_of_refused


def test_planted_bad_rows_are_refused_with_their_reasons_and_the_rest_loads(empty, planted):
    tables, want, _ = planted
    report = empty.load(tables["buildings"], tables["units"], tables["residents"])
    refused = {k: v for k, v in report.refused_counts.items()}
    assert refused == want
    for table in ("buildings", "units", "residents"):
        n = tables[table].num_rows
        assert report.loaded[table] == n - sum(want.get(table, {}).values())
    assert counts(empty)["buildings"] == report.loaded["buildings"]
    assert counts(empty)["residence"] == report.loaded["residents"]
    listed = {(r.table, r.reason) for r in report.refused}
    assert ("buildings", "outside every grid") in listed and ("residents", "not a residential unit") in listed
    first = next(r for r in report.refused if r.table == "residents" and r.reason == "bad birth year")
    assert first.row == 2 and first.key == tables["residents"].column("resident_id")[2].as_py()


def test_a_strict_load_with_a_refused_row_writes_nothing(empty, planted):
    tables, want, _ = planted
    with pytest.raises(LoadRefused) as refused:
        empty.load(tables["buildings"], tables["units"], tables["residents"], strict=True)
    assert refused.value.report.refused_counts == want
    assert set(counts(empty).values()) == {0}
    assert sum(empty.population("district").totals().values()) == 0 if empty.population("district").codes else True


def test_a_failure_part_way_rolls_the_whole_load_back(empty, houses_world, tmp_path):
    # a real database failure after buildings, units and residents are written: a trigger refusing businesses
    side = sqlite3.connect(str(tmp_path / "data" / "citygrid.sqlite3"))
    side.execute("CREATE TRIGGER refuse_businesses BEFORE INSERT ON house_businesses "
                 "BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    side.commit()
    side.close()
    with pytest.raises(sqlite3.IntegrityError):
        empty.load(*(houses_world.path(t) for t in TABLES))
    assert set(counts(empty).values()) == {0}
    assert empty.population("district").codes == []
    assert len(empty.positions()) == 0
    empty.connection.execute("DROP TRIGGER refuse_businesses")
    report = empty.load_directory(houses_world.root)  # and the same load goes through afterwards
    assert report.loaded["businesses"] == houses_world.tables["businesses"].num_rows


def test_units_and_people_load_into_an_existing_registry_and_codes_are_not_reissued(empty, houses_world):
    empty.load(houses_world.path("buildings"))
    report = empty.load(units=houses_world.path("units"), residents=houses_world.path("residents"))
    assert report.n_refused == 0 and report.loaded["residents"] == houses_world.tables["residents"].num_rows
    again = empty.load(units=houses_world.path("units").as_posix())
    assert again.refused_counts == {"units": {"code already issued": houses_world.tables["units"].num_rows}}
    people = empty.load(residents=houses_world.path("residents"))
    assert people.refused_counts == {"residents": {"already registered": houses_world.tables["residents"].num_rows}}


def redrawn(layer: GridLayer) -> tuple[GridLayer, dict[str, str]]:
    """The layer with its first two neighbouring grids merged into one new grid ``…999`` and a third
    grid re-coded: what a redraw does."""
    geoms = list(layer.geometries())
    codes = layer.column("grid_code").tolist()
    first = 0
    second = next(k for k in range(1, len(geoms)) if shapely.intersection(geoms[0], geoms[k]).length > 0)
    third = next(k for k in range(1, len(geoms)) if k != second)
    merged = shapely.union(geoms[first], geoms[second])
    new_code = codes[first][:12] + "999"
    recoded = codes[third][:12] + "998"
    attrs = {c: layer.column(c).tolist() for c in ("grid_code", "community_code", "street_code", "district_code")}
    keep = [k for k in range(len(geoms)) if k not in (first, second)]
    out_geoms = [merged] + [geoms[k] for k in keep]
    out = {c: [attrs[c][first]] + [attrs[c][k] for k in keep] for c in attrs}
    out["grid_code"][0] = new_code
    out["grid_code"][1 + keep.index(third)] = recoded
    for c in ("grid_name", "grid_type", "community_name", "street_name", "district_name"):
        out[c] = ["x"] * len(out_geoms)
    return GridLayer.from_geometries(out_geoms, out, version_id="redrawn"), {
        codes[first]: new_code, codes[second]: new_code, codes[third]: recoded}


def test_regrid_on_a_redrawn_layer_keeps_every_code_and_lists_the_moved_buildings(registry, houses_world):
    from citygrid.engine.layers.assignment import Assigner

    layer, renamed = redrawn(houses_world.layer)
    b = houses_world.tables["buildings"]
    codes = b.column("building_code").to_pylist()
    old = b.column("grid_code").to_pylist()
    # the independent expectation: GEOS says which new polygon covers each building
    geoms = layer.geometries()
    points = shapely.points(b.column("lng").to_numpy(), b.column("lat").to_numpy())
    new_codes = layer.column("grid_code").tolist()
    want = []
    for p in points:
        covering = [k for k in range(len(geoms)) if shapely.covers(geoms[k], p)]
        want.append(new_codes[min(covering)])
    before = registry.population("district").totals()
    report = registry.regrid(Assigner(layer))
    assert report.version_id == "redrawn" and report.n_buildings == len(codes) and report.outside == ()
    moved = {(m.building_code, m.previous_grid, m.grid_code) for m in report.moved}
    assert moved == {(c, o, w) for c, o, w in zip(codes, old, want) if o != w}
    assert {o for _, o, _ in moved} == {g for g in renamed if g in set(old)}
    for code, w in zip(codes, want):
        got = registry.building(code)
        assert got.code == code and got.issuing_grid == code[:15] and got.grid_code == w
    assert registry.version_id == "redrawn"
    pop = registry.population("grid").as_dict()
    assert not set(renamed) & set(pop) and set(renamed.values()) & set(pop)
    assert registry.population("district").totals() == before
    assert registry.regrid(Assigner(layer)).moved == ()  # nothing moves twice
