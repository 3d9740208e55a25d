"""A small houses world cut from the session's demo district: two communities of 平湖街道 (their
grids as the layer, their buildings, units, residents and businesses), and a registry loaded from
it at 03:05 on a night of the National Day holiday (an injected clock)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from two_communities import COMMUNITIES

CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 10, 2, 3, 5, tzinfo=CST)


class World:
    def __init__(self, root, layer, tables):
        self.root = root
        self.layer = layer
        self.tables = tables

    def path(self, name: str):
        return self.root / f"{name}.parquet"


@pytest.fixture(scope="session")
def houses_world(demo_dir, tmp_path_factory):
    from citygrid.engine.layers.sources import read_layer

    root = tmp_path_factory.mktemp("houses-world")
    wanted = pa.array(COMMUNITIES)
    grids = pq.read_table(demo_dir / "grids.parquet")
    grids = grids.filter(pc.is_in(grids.column("community_code"), value_set=wanted))
    pq.write_table(grids, root / "grids.parquet")
    buildings = pq.read_table(demo_dir / "buildings.parquet")
    buildings = buildings.filter(pc.is_in(buildings.column("community_code"), value_set=wanted))
    codes = buildings.column("building_code").combine_chunks()
    tables = {"buildings": buildings}
    for name in ("units", "residents", "businesses"):
        table = pq.read_table(demo_dir / f"{name}.parquet")
        tables[name] = table.filter(pc.is_in(table.column("building_code"), value_set=codes))
    for name, table in tables.items():
        pq.write_table(table, root / f"{name}.parquet")
    layer = read_layer(root / "grids.parquet", version_id="houses-world")
    return World(root, layer, tables)


@pytest.fixture(scope="session")
def world_assigner(houses_world):
    from citygrid.engine.layers.assignment import Assigner

    return Assigner(houses_world.layer)


@pytest.fixture
def clock():
    from citygrid.engine.times import ManualClock

    return ManualClock(NOW)


@pytest.fixture
def registry(houses_world, world_assigner, clock, tmp_path):
    from citygrid.engine.houses.registry import HouseRegistry

    reg = HouseRegistry(tmp_path / "data", world_assigner, clock)
    report = reg.load(*(houses_world.path(n) for n in ("buildings", "units", "residents", "businesses")))
    assert report.n_refused == 0, report.summary()
    yield reg
    reg.close()


@pytest.fixture
def keyring():
    from citygrid.engine.houses.codes import QrKeyring

    return QrKeyring({"K1": bytes(range(32))}, current="K1")


@pytest.fixture
def service(registry, keyring):
    from citygrid.engine.houses.service import HouseService

    return HouseService(registry, keyring)
