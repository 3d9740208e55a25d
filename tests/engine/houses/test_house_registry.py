"""The building and unit registry (``citygrid.engine.houses.registry``) loaded from a piece of the
demo district, checked against the demo's own files counted with pandas."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from citygrid.engine.layers.coordinates import from_wgs84
from citygrid.engine.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from citygrid.engine.houses.census import POPULATION_COLUMNS
from citygrid.engine.houses.registry import HouseRegistry
from citygrid.engine.houses.rentals import CONTROL_LEVELS, RENTAL_CLASSES

YEAR = 2026


def frame(world, name):
    return world.tables[name].drop_columns(
        [c for c in ("geometry",) if c in world.tables[name].column_names]).to_pandas()


def expected_population(world, group_by="grid_code") -> dict[str, dict[str, int]]:
    people = frame(world, "residents")
    buildings = frame(world, "buildings")[["building_code", "grid_code", "community_code"]]
    people = people.drop(columns=["grid_code"]).merge(buildings, on="building_code")
    age = YEAR - people["birth_year"]
    band = np.where(age >= 60, "60+", np.where(age >= 15, "15-59", "0-14"))
    kind = np.where(people["population_type"] == "户籍人口", "registered", "non_registered")
    people["column"] = [f"{k}_{b}" for k, b in zip(kind, band)]
    table = people.groupby([group_by, "column"]).size().unstack(fill_value=0)
    return {code: {c: int(row.get(c, 0)) for c in POPULATION_COLUMNS} for code, row in table.iterrows()}


def test_load_holds_every_row_and_lookups_return_the_files_values(registry, houses_world):
    b = frame(houses_world, "buildings").iloc[17]
    got = registry.building(b.building_code)
    assert (got.code, got.kind, got.floors, got.address) == (b.building_code, b.building_type, b.floors, b.address)
    assert (got.lng, got.lat) == (b.lng, b.lat)
    assert got.issuing_grid == b.building_code[:15]
    assert got.grid_code == b.grid_code and got.community_code == b.community_code
    assert got.street_code == b.grid_code[:9] and got.district_code == "440307"
    units = frame(houses_world, "units")
    mine = units[units.building_code == b.building_code]
    assert got.n_units == len(mine)
    u = units.iloc[1234]
    unit = registry.unit(u.unit_code)
    assert (unit.building_code, unit.kind, unit.floor, unit.number, unit.address) == (
        u.building_code, u.kind, u.floor, u.number, u.address)
    # (a missing class is None in the registry; pandas 3 reads a null string as NaN, pandas 2 as None)
    assert unit.rental == bool(u.rental) and unit.rental_class == (None if pd.isna(u.rental_class) else u.rental_class)
    people = frame(houses_world, "residents")
    assert unit.residents == int((people.unit_code == u.unit_code).sum())
    assert [x.code for x in registry.units_of(u.building_code)] == sorted(units[units.building_code == u.building_code].unit_code)
    with pytest.raises(NotFound):
        registry.building("4403070990010010001")
    with pytest.raises(InvalidInput):
        registry.unit("4403070010010010001")  # a building code where a unit code is wanted


def test_population_per_grid_and_community_equals_the_files_counted(registry, houses_world):
    for level, column in (("grid", "grid_code"), ("community", "community_code")):
        got = registry.population(level).as_dict()
        want = expected_population(houses_world, column)
        assert {k: v for k, v in got.items() if sum(v.values())} == want
    total = registry.population("district").totals()
    assert sum(total.values()) == houses_world.tables["residents"].num_rows


def test_rentals_and_group_renting_equal_the_files_counted(registry, houses_world):
    units = frame(houses_world, "units").merge(frame(houses_world, "buildings")[["building_code", "community_code"]],
                                               on="building_code")
    got = registry.rentals("community").as_dict()
    let = units[units.rental]
    for community, rows in let.groupby("community_code"):
        assert got[community]["rental_units"] == len(rows)
        for c in RENTAL_CLASSES:
            assert got[community][f"class_{c}"] == int((rows.rental_class == c).sum())
        for c in CONTROL_LEVELS:
            assert got[community][f"level_{c}"] == int((rows.control_level == c).sum())
    people = frame(houses_world, "residents").groupby("unit_code").size()
    units["residents"] = units.unit_code.map(people).fillna(0).astype(int)
    residential = units[units.kind.isin(["dwelling", "dormitory"])]
    crowded = (residential.residents > 8) | ((residential.residents > 0) & (residential.area_m2 < 6 * residential.residents))
    want = sorted(residential[crowded].unit_code)
    assert sorted(g["unit_code"] for g in registry.group_renting()) == want
    for grid in frame(houses_world, "buildings").grid_code.unique()[:20]:
        listed = registry.group_renting("grid", grid)
        assert all(g["grid_code"] == grid for g in listed)
        assert sorted(g["unit_code"] for g in listed) == sorted(
            residential[crowded & (residential.grid_code == grid)].unit_code)


def haversine(lng1, lat1, lng2, lat2):
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(np.asarray(lng2) - lng1) / 2) ** 2
    return 2 * 6371008.8 * np.arcsin(np.sqrt(a))


def test_nearest_building_against_brute_force_and_from_gcj02_phones(registry, houses_world, rng):
    b = frame(houses_world, "buildings")
    for _ in range(30):
        k = rng.integers(len(b))
        lng, lat = b.lng[k] + rng.normal(0, 0.0004), b.lat[k] + rng.normal(0, 0.0004)
        d = haversine(lng, lat, b.lng.to_numpy(), b.lat.to_numpy())
        found = registry.nearest(lng, lat, radius_m=150)
        if d.min() > 150:
            assert found is None
        else:
            assert found is not None and abs(found[1] - d.min()) < 1e-6
            assert d[b.building_code.tolist().index(found[0].code)] == pytest.approx(d.min(), abs=1e-6)
    k = 42
    x, y = from_wgs84([b.lng[k]], [b.lat[k]], "gcj02")
    found, metres = registry.nearest(float(x[0]), float(y[0]), radius_m=20, crs="gcj02")
    assert found.code == b.building_code[k] and metres < 1.0
    assert registry.nearest(0.0, 0.0, radius_m=100) is None
    with pytest.raises(InvalidInput):
        registry.nearest(float("nan"), 22.6)


def test_buildings_in_a_grid_and_by_address(registry, houses_world):
    b = frame(houses_world, "buildings")
    grid = b.grid_code[5]
    assert [x.code for x in registry.buildings_in("grid", grid)] == sorted(b[b.grid_code == grid].building_code)
    u = frame(houses_world, "units").iloc[777]
    variant = u.address.replace("深圳市龙岗区", "").replace("室", "房")
    best, score = registry.search_address(variant, 3)[0]
    assert best.code == u.unit_code
    building = registry.search_address(b.address[9].replace("深圳市", ""), 1)[0][0]
    assert building.code == b.building_code[9]


def test_moves_keep_one_unit_at_a_time_and_history(registry, houses_world, clock):
    units = frame(houses_world, "units")
    dwellings = units[units.kind == "dwelling"].unit_code.tolist()
    a, b = dwellings[0], dwellings[1]
    before = registry.population("district").totals()
    registry.move_in("P0001", a, "2026-03-01", recorded_by="w1", name="王小明", birth_year=1990, registered=False)
    assert registry.unit(a).residents == int((frame(houses_world, "residents").unit_code == a).sum()) + 1
    registry.move_in("P0001", b, "2026-06-01", recorded_by="w1")
    history = registry.history("P0001")
    assert [(h.unit_code, h.moved_in, h.moved_out) for h in history] == [
        (a, "2026-03-01", "2026-06-01"), (b, "2026-06-01", None)]
    after = registry.population("district").totals()
    assert after["non_registered_15-59"] == before["non_registered_15-59"] + 1
    with pytest.raises(Conflict):
        registry.move_in("P0001", b, "2026-07-01", recorded_by="w1")
    with pytest.raises(InvalidInput):
        registry.move_in("P0001", a, "2026-05-01", recorded_by="w1")  # before the present stay began
    with pytest.raises(InvalidInput):
        registry.move_in("P0002", a, "2026-10-03", recorded_by="w1", name="李四", birth_year=1980, registered=True)
    with pytest.raises(InvalidInput):
        registry.move_in("P0003", a, recorded_by="w1")  # new to the registry: name etc. needed
    shop = units[units.kind == "shop"].unit_code.iloc[0]
    with pytest.raises(PreconditionFailed):
        registry.move_in("P0001", shop, recorded_by="w1")
    out = registry.move_out("P0001", recorded_by="w1")
    assert out.moved_out == "2026-10-02" and out.unit_code == b  # today on the injected clock
    with pytest.raises(PreconditionFailed):
        registry.move_out("P0001", recorded_by="w1")
    assert registry.population("district").totals() == before


def test_counts_are_rebuilt_from_the_database_on_reopen(registry, world_assigner, clock, houses_world):
    units = frame(houses_world, "units")
    registry.move_in("P0009", units[units.kind == "dwelling"].unit_code.iloc[3], recorded_by="w1", name="赵六",
                     birth_year=2020, registered=True)
    people = frame(houses_world, "residents")
    registry.move_out(people.resident_id.iloc[5], recorded_by="w1")
    registry.demolish(people.building_code.iloc[-1], "2026-09-30")  # standing flags, removed units
    again = HouseRegistry(registry.connection.execute("PRAGMA database_list").fetchone()[2].rsplit("/", 1)[0],
                          world_assigner, clock)
    try:
        assert again.population("grid").as_dict() == registry.population("grid").as_dict()
        assert again.rentals("grid").as_dict() == registry.rentals("grid").as_dict()
        assert again.group_renting() == registry.group_renting()
        for code in people.building_code.iloc[::50]:
            assert again.building(code) == registry.building(code)
        assert dict(again.positions()) == dict(registry.positions())
    finally:
        again.close()


def test_a_background_open_holds_every_call_until_its_counts_are_read(registry, world_assigner, clock, houses_world):
    """Opened in the background, the registry says it is opening, and a call made meanwhile waits for
    the counts (it never sees an empty registry); ``then`` runs after the read, under the same lock."""
    import threading

    people = frame(houses_world, "residents")
    code = people.building_code.iloc[0]
    gate, placed, answers = threading.Event(), [], {}
    data_dir = registry.connection.execute("PRAGMA database_list").fetchone()[2].rsplit("/", 1)[0]

    def then(opened):
        assert gate.wait(30)
        placed.append(opened.n_buildings)

    again = HouseRegistry(data_dir, world_assigner, clock, background=True, then=then)
    try:
        assert again.opening and not again.wait_open(0.05)
        caller = threading.Thread(target=lambda: answers.update(
            building=again.building(code), n=len(again.positions()), population=again.population("grid").as_dict()))
        caller.start()
        caller.join(0.2)
        assert caller.is_alive() and not answers  # waiting for the open, not answering from empty counts
        gate.set()
        caller.join(30)
        assert not again.opening and again.open_error is None
        assert placed == [registry.n_buildings]
        assert answers == {"building": registry.building(code), "n": len(registry.positions()),
                           "population": registry.population("grid").as_dict()}
    finally:
        gate.set()
        again.close()


def test_a_demolished_building_keeps_its_code_and_it_is_never_issued_again(registry, houses_world):
    people = frame(houses_world, "residents")
    code = people.building_code.iloc[0]
    living = int((people.building_code == code).sum())
    before = sum(registry.population("district").totals().values())
    gone = registry.demolish(code, "2026-09-30")
    assert gone.demolished_on == "2026-09-30" and gone.code == code
    assert sum(registry.population("district").totals().values()) == before - living
    assert all(u.removed_on == "2026-09-30" for u in registry.units_of(code))
    assert code not in registry.positions()
    row = houses_world.tables["buildings"].filter(
        __import__("pyarrow.compute").compute.equal(houses_world.tables["buildings"].column("building_code"), code))
    report = registry.load(buildings=row)
    assert report.loaded["buildings"] == 0
    assert report.refused_counts == {"buildings": {"code already issued": 1}}
    with pytest.raises(PreconditionFailed):
        registry.demolish(code)
    assert math.isfinite(registry.building(code).lng)


@pytest.mark.slow
def test_the_whole_demo_district_loads_and_agrees_with_its_manifest(demo_dir, demo_layer, clock, tmp_path):
    import json

    from citygrid.engine.layers.assignment import Assigner

    facts = json.loads((demo_dir / "manifest.json").read_text())["houses"]
    registry = HouseRegistry(tmp_path / "data", Assigner(demo_layer), clock)
    try:
        report = registry.load_directory(demo_dir, strict=True)
        assert report.loaded["units"] == sum(facts["units_by_kind"].values())
        rentals = registry.rentals("district").totals()
        assert rentals["rental_units"] == facts["rental_units"]
        assert {c: rentals[f"class_{c}"] for c in RENTAL_CLASSES} == facts["rental_by_class"]
        assert {c: rentals[f"level_{c}"] for c in CONTROL_LEVELS} == facts["rental_by_control_level"]
        got = {g["unit_code"]: (g["residents"], g["reason"]) for g in registry.group_renting()}
        assert got == {g["unit_code"]: (g["residents"], g["reason"]) for g in facts["group_renting"]}
        occupied = registry.connection.execute(
            "SELECT count(DISTINCT unit_id) FROM house_residence WHERE moved_out IS NULL").fetchone()[0]
        assert occupied == facts["occupied_units"]
        assert registry.connection.execute(
            "SELECT count(*) FROM house_businesses WHERE unit_id IS NULL").fetchone()[0] == facts["businesses_without_unit"]
    finally:
        registry.close()
