"""The houses service's rules (``citygrid.engine.houses.service``): privacy (a rule per test),
self-declaration and its check, worker check-ins, counts bounded by jurisdiction. Principals come
from real tokens (``citygrid.engine.access.tokens``)."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

from citygrid.engine.layers.coordinates import from_wgs84
from citygrid.engine.errors import Forbidden, InvalidInput, PreconditionFailed, Unauthorized
from citygrid.engine.houses.checkins import distance_m
from citygrid.engine.access.principals import Role
from citygrid.engine.access.tokens import TokenStore

from two_communities import COMMUNITIES


@pytest.fixture
def tokens(tmp_path):
    store = TokenStore(tmp_path / "tokens")
    yield store
    store.close()


def principal(tokens, name, role, jurisdiction=()):
    secret, _ = tokens.issue(name, role, list(jurisdiction))
    return tokens.authenticate(secret)


def audit_rows(registry) -> list[tuple]:
    # a separate connection: what is durable in the file, not what one connection holds
    path = registry.connection.execute("PRAGMA database_list").fetchone()[2]
    with sqlite3.connect(path) as side:
        return side.execute("SELECT principal, role, action, reason, n_records, records FROM house_audit "
                            "ORDER BY id").fetchall()


def a_building_with_people(registry, community):
    rows = registry.connection.execute(
        "SELECT b.code, u.code FROM house_residence h JOIN house_units u ON u.id = h.unit_id JOIN house_buildings b "
        "ON b.id = u.building_id WHERE b.community_code = ? AND h.moved_out IS NULL ORDER BY b.code LIMIT 1",
        (community,)).fetchone()
    return rows


def test_a_dashboard_token_cannot_read_a_name_but_reads_counts(service, registry, tokens):
    screen = principal(tokens, "大屏", Role.DASHBOARD)
    building, unit = a_building_with_people(registry, COMMUNITIES[0])
    for call in (lambda: service.list_residents(screen, "unit", unit, reason="screen"),
                 lambda: service.list_residents(screen, "building", building, reason="screen"),
                 lambda: service.export_residents(screen, "community", COMMUNITIES[0], reason="screen")):
        with pytest.raises(Forbidden):
            call()
    stats = service.population_stats(screen, "community")
    assert set(stats.codes) == set(COMMUNITIES) and stats.counts.sum() > 0
    assert all(isinstance(v, int) for row in stats.as_dict().values() for v in row.values())
    assert audit_rows(registry) == []  # nothing personal was read


def test_a_community_officer_cannot_read_another_communitys_residents(service, registry, tokens):
    mine, theirs = COMMUNITIES
    officer = principal(tokens, "社区专干", Role.WORKER, [mine])
    own_building, own_unit = a_building_with_people(registry, mine)
    other_building, other_unit = a_building_with_people(registry, theirs)
    people = service.list_residents(officer, "building", own_building, reason="入户走访")
    assert people and all(p.building_code == own_building for p in people)
    assert service.list_residents(officer, "community", mine, reason="核查")
    for level, code in (("building", other_building), ("unit", other_unit), ("community", theirs)):
        with pytest.raises(Forbidden):
            service.list_residents(officer, level, code, reason="核查")
    someone = registry.residents("unit", other_unit)[0].resident_id
    with pytest.raises(Forbidden):
        service.resident_history(officer, someone, reason="核查")
    with pytest.raises(Forbidden):
        service.move_out(officer, someone)
    grid = registry.building(other_building).grid_code
    with pytest.raises(Forbidden):
        service.pending_declarations(officer, grid, reason="核验")
    assert set(service.population_stats(officer, "community").codes) == {mine}


def test_every_read_of_personal_data_leaves_an_audit_row_before_it_returns(service, registry, tokens, clock):
    worker = principal(tokens, "网格员甲", Role.WORKER, [COMMUNITIES[0]])
    building, unit = a_building_with_people(registry, COMMUNITIES[0])
    grid = registry.building(building).grid_code
    reads = [
        ("list_residents", lambda: service.list_residents(worker, "unit", unit, reason="r1")),
        ("list_residents", lambda: service.list_residents(worker, "grid", grid, reason="r2")),
        ("export_residents", lambda: service.export_residents(worker, "building", building, reason="r3")),
        ("resident_history", lambda: service.resident_history(
            worker, registry.residents("unit", unit)[0].resident_id, reason="r4")),
        ("pending_declarations", lambda: service.pending_declarations(worker, grid, reason="r5")),
    ]
    for k, (action, read) in enumerate(reads):
        got = read()
        rows = audit_rows(registry)
        assert len(rows) == k + 1
        who, role, what, why, n, records = rows[-1]
        assert (who, role, why) == ("网格员甲", "worker", f"r{k + 1}") and what.startswith(action)
        ids = [getattr(x, "resident_id", None) for x in got]
        if action != "resident_history":
            assert json.loads(records) == ids and n == len(ids)
        else:
            assert n == 1
    with pytest.raises(InvalidInput):
        service.list_residents(worker, "unit", unit, reason="  ")
    assert len(audit_rows(registry)) == len(reads)


def test_exports_mask_names(service, registry, tokens, houses_world):
    admin = principal(tokens, "admin", Role.ADMIN)
    out = service.export_residents(admin, "community", COMMUNITIES[1], reason="统计核对")
    names = {r["resident_id"]: r["name"] for r in houses_world.tables["residents"].select(
        ["resident_id", "name"]).to_pylist()}
    assert out
    for row in out:
        real = names[row.resident_id]
        assert row.name == (real[0] + "*" * (len(real) - 2) + real[-1] if len(real) > 2 else real[0] + "*")
        assert row.name != real and row.age_band in ("0-14", "15-59", "60+")


def test_self_declaration_waits_for_the_workers_check(service, registry, tokens, keyring, houses_world):
    units = houses_world.tables["units"].to_pylist()
    unit = next(u for u in units if u["kind"] == "dwelling" and u["building_code"][:12] == COMMUNITIES[0])
    building = registry.building(unit["building_code"])
    plate = keyring.sign(building.code)
    declared = service.declare(plate, "房东刘", "move_in", unit["unit_code"], "P7001", name="陈一二",
                               birth_year=1995, registered=False, moved_on="2026-09-20")
    assert declared.status == "pending" and declared.grid_code == building.grid_code
    assert "P7001" not in {p.resident_id for p in registry.residents("unit", unit["unit_code"])}  # not counted yet
    worker = principal(tokens, "网格员乙", Role.WORKER, [COMMUNITIES[0]])
    pending = service.pending_declarations(worker, building.grid_code, reason="核验")
    assert [d.declaration_id for d in pending] == [declared.declaration_id]
    checked = service.review_declaration(worker, declared.declaration_id, accept=True)
    assert checked.status == "accepted" and checked.reviewed_by == "网格员乙"
    assert "P7001" in {p.resident_id for p in registry.residents("unit", unit["unit_code"])}
    assert registry.history("P7001")[0].moved_in == "2026-09-20"
    with pytest.raises(PreconditionFailed):
        service.review_declaration(worker, declared.declaration_id, accept=False)
    other = service.declare(plate, "房东刘", "move_out", unit["unit_code"], "P7001")
    assert service.review_declaration(worker, other.declaration_id, accept=False, note="本人仍在住").status == "rejected"
    assert service.pending_declarations(worker, building.grid_code, reason="核验") == []
    with pytest.raises(Unauthorized):
        service.declare(plate[:-2] + ("AA" if not plate.endswith("AA") else "BB"), "x", "move_in", unit["unit_code"],
                        "P7002", name="x", birth_year=2000, registered=True)
    elsewhere = next(u for u in units if u["building_code"] != building.code)
    with pytest.raises(InvalidInput):
        service.declare(plate, "x", "move_in", elsewhere["unit_code"], "P7002")


def test_check_in_near_far_and_too_fast(service, registry, tokens, clock, houses_world):
    worker = tokens.authenticate(tokens.issue("网格员丙", Role.WORKER, [COMMUNITIES[0]])[0])
    b = [x for x in houses_world.tables["buildings"].to_pylist() if x["community_code"] == COMMUNITIES[0]]
    here, there = b[0], max(b, key=lambda x: distance_m(b[0]["lng"], b[0]["lat"], x["lng"], x["lat"]))
    first = service.check_in(worker, here["building_code"], here["lng"] + 0.0002, here["lat"])  # ~20 m east
    assert first.accepted and 15 < first.distance_m < 25
    clock.advance(minutes=1)
    far = service.check_in(worker, here["building_code"], here["lng"] + 0.0008, here["lat"])  # ~80 m
    assert far.flags == ("far",)
    apart = distance_m(here["lng"], here["lat"], there["lng"], there["lat"])
    assert apart / 60 * 3.6 > 120  # over 2 km in one minute: faster than 120 km/h
    clock.advance(minutes=1)
    fast = service.check_in(worker, there["building_code"], there["lng"], there["lat"])
    assert fast.flags == ("speed",) and fast.speed_mps > 120 / 3.6
    clock.advance(hours=2)
    x, y = from_wgs84([there["lng"]], [there["lat"]], "gcj02")
    phone = service.check_in(worker, there["building_code"], float(x[0]), float(y[0]), crs="gcj02")
    assert phone.accepted and phone.distance_m < 1.0
    screen = tokens.authenticate(tokens.issue("大屏", Role.DASHBOARD)[0])
    with pytest.raises(Forbidden):
        service.check_in(screen, there["building_code"], there["lng"], there["lat"])


def test_the_registry_is_the_dashboards_population(service, houses_world, world_assigner):
    from citygrid.engine.houses.host import RegistryPopulation

    people = houses_world.tables["residents"].to_pandas()
    expected = dict.fromkeys(world_assigner.layer.column("grid_code").tolist(), 0)
    expected.update(people.groupby("grid_code").size().to_dict())
    population = RegistryPopulation(service)
    assert population.residents_by_grid() == expected
    before = population.generation()
    unit = houses_world.tables["units"].to_pandas().query("kind == 'dwelling'")["unit_code"].iloc[3]
    service.registry.move_in("NEW-1", unit, recorded_by="test", name="新住户", birth_year=1990, registered=False)
    assert population.generation() != before  # the dashboards recount their rates
    after = population.residents_by_grid()
    grid = unit[:15]  # the unit's issuing grid (code = grid + 4 digits + 4 digits), also its current one here
    assert {g: after[g] - expected[g] for g in after if after[g] != expected[g]} == {grid: 1}


def test_group_renting_warnings_carry_the_units_place_for_the_alerts_wing(service, houses_world):
    from citygrid.engine.houses.host import group_renting_warnings

    units = houses_world.tables["units"].to_pandas().set_index("unit_code")
    people = houses_world.tables["residents"].to_pandas().groupby("unit_code").size()
    buildings = houses_world.tables["buildings"].to_pandas().set_index("building_code")
    rule = service.registry.rule
    crowded = units.query("kind == 'dwelling'").index[7]  # the demo's world has no group-renting unit: make one
    for k in range(rule.max_residents + 1):
        service.registry.move_in(f"GR-{k}", crowded, recorded_by="test", name="租客", birth_year=1995, registered=False)
    people = people.add(pd.Series({crowded: rule.max_residents + 1}), fill_value=0).astype(int)
    expected = {u for u, n in people.items() if units.loc[u, "kind"] == "dwelling" and (
        n > rule.max_residents or units.loc[u, "area_m2"] / n < rule.min_area_per_person_m2)}
    warnings = group_renting_warnings(service)
    assert crowded in expected and {w.unit_code for w in warnings} == expected
    for w in warnings:
        b = buildings.loc[w.building_code]
        assert (w.chain[:2], w.lng, w.lat) == ((b.grid_code, b.community_code), b.lng, b.lat)
        assert w.residents == people[w.unit_code]
