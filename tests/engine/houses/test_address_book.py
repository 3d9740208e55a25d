"""The registry's address index built in its own thread (``citygrid.engine.houses.address_book``): calls
do not wait behind its build, searches wait for the index of the last load, demolitions leave it at
once. The expectations are the world's own building codes and addresses."""

from __future__ import annotations

import threading

import pytest

from citygrid.engine.errors import NotFound, Unavailable
from citygrid.engine.houses import address_book
from citygrid.engine.houses.registry import HouseRegistry


def _gate_reads(monkeypatch) -> tuple[threading.Event, list]:
    """Builds read the database for real, then wait at a gate the test opens."""
    gate, reads, real = threading.Event(), [], address_book.read_index

    def gated(conn):
        built = real(conn)
        reads.append(0 if built is None else len(built.building_ids))
        assert gate.wait(60)
        return built

    monkeypatch.setattr(address_book, "read_index", gated)
    return gate, reads


def _code_of_address(registry, address):
    return registry.search_address(address.replace("深圳市", ""), 1)[0][0].code


def test_calls_do_not_wait_for_the_address_index_and_a_search_waits_for_it(registry, houses_world, world_assigner,
                                                                            clock, monkeypatch):
    buildings = houses_world.tables["buildings"]
    code, address = buildings.column("building_code")[9].as_py(), buildings.column("address")[9].as_py()
    data_dir = registry.connection.execute("PRAGMA database_list").fetchone()[2].rsplit("/", 1)[0]
    registry.addresses.current(30)  # the fixture's own build is done (it does not pass the gate)
    gate, reads = _gate_reads(monkeypatch)
    again = HouseRegistry(data_dir, world_assigner, clock)
    try:
        found = {}
        searcher = threading.Thread(target=lambda: found.update(code=_code_of_address(again, address)))
        searcher.start()
        searcher.join(0.3)
        assert searcher.is_alive() and not found  # waiting for the index ...
        answer = {}
        caller = threading.Thread(target=lambda: answer.update(building=again.building(code)))
        caller.start()
        caller.join(10)
        assert answer["building"] == registry.building(code)  # ... while the registry answers
        monkeypatch.setattr(address_book, "WAIT_SECONDS", 0.1)
        with pytest.raises(Unavailable, match="being built"):
            again.search_address(address)
        gate.set()
        searcher.join(30)
        assert found == {"code": code} and reads == [buildings.num_rows]
    finally:
        gate.set()
        again.close()


def test_a_load_during_a_build_is_in_the_index_a_search_uses(houses_world, world_assigner, clock, tmp_path,
                                                             monkeypatch):
    buildings = houses_world.tables["buildings"]
    n = buildings.num_rows
    registry = HouseRegistry(tmp_path / "data", world_assigner, clock)
    try:
        with pytest.raises(NotFound):  # the build at open is done: nothing to search yet
            registry.addresses.current(10)
        gate, reads = _gate_reads(monkeypatch)
        registry.load(buildings=buildings.slice(0, n - 20))
        while not reads:  # the build after the first load has read it and waits at the gate
            threading.Event().wait(0.01)
        registry.load(buildings=buildings.slice(n - 20))  # committed while that build runs
        gate.set()
        late = buildings.slice(n - 3, 1)
        assert _code_of_address(registry, late.column("address")[0].as_py()) == late.column("building_code")[0].as_py()
        assert reads[0] == n - 20 and reads[-1] == n  # the first build was read again, not swapped in
    finally:
        registry.close()


def test_a_demolished_building_leaves_the_index_at_once(registry, houses_world):
    buildings = houses_world.tables["buildings"]
    code, address = buildings.column("building_code")[9].as_py(), buildings.column("address")[9].as_py()
    assert _code_of_address(registry, address) == code
    built = registry.addresses.last_build
    registry.demolish(code, "2026-09-30")
    assert code not in [b.code for b, _ in registry.search_address(address.replace("深圳市", ""), 10)]
    assert registry.addresses.last_build == built  # taken out, not built again
