"""Two communities of the demo district as the houses tests' world: their buildings, units, residents
and businesses (and, when asked, their grids) written as Parquet files, returned as pandas frames."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

COMMUNITIES = ("440307001001", "440307001002")


def write_world(demo_dir, out, *, grids: bool = True) -> dict:
    """Write the world's files into ``out`` (``grids.parquet`` too when ``grids``); return their frames."""
    wanted = pa.array(COMMUNITIES)
    if grids:
        table = pq.read_table(demo_dir / "grids.parquet")
        pq.write_table(table.filter(pc.is_in(table.column("community_code"), value_set=wanted)), out / "grids.parquet")
    buildings = pq.read_table(demo_dir / "buildings.parquet")
    buildings = buildings.filter(pc.is_in(buildings.column("community_code"), value_set=wanted))
    tables = {"buildings": buildings}
    for name in ("units", "residents", "businesses"):
        table = pq.read_table(demo_dir / f"{name}.parquet")
        tables[name] = table.filter(pc.is_in(table.column("building_code"), value_set=buildings.column("building_code")))
    for name, table in tables.items():
        pq.write_table(table, out / f"{name}.parquet")
    return {name: table.to_pandas() for name, table in tables.items()}
