"""Helpers of the cluster tests: the NYC tracts' field map, hard points, point files, a layer redrawn
(grids split, merged, re-coded), and the check of a job's output against the local engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from citygrid.cluster import outputs
from citygrid.cluster.columns import STATUS_NAMES
from citygrid.engine.layers.assignment import Assigner
from citygrid.engine.layers.layer import FieldMap, GridLayer

TRACT_FIELDS = FieldMap(grid_code="GEOID", community_code="NTA2020", district_code="BoroCode")


def hard_points(layer: GridLayer, rng: np.random.Generator, n_random: int) -> tuple[np.ndarray, np.ndarray]:
    """Random points over the layer's box, every 7th vertex, edge midpoints and a few invalid ones."""
    x0, y0, x1, y1 = layer.bounds
    lng = [rng.uniform(x0, x1, n_random)]
    lat = [rng.uniform(y0, y1, n_random)]
    lng.append(layer.x[::7])
    lat.append(layer.y[::7])
    lng.append((layer.x[:-1:11] + layer.x[1::11]) / 2)
    lat.append((layer.y[:-1:11] + layer.y[1::11]) / 2)
    lng.append(np.array([np.nan, np.inf, 0.0, 500.0]))
    lat.append(np.array([1.0, 2.0, np.nan, 40.0]))
    lng, lat = np.concatenate(lng), np.concatenate(lat)
    order = rng.permutation(len(lng))
    return lng[order], lat[order]


def write_points(path: Path, lng: np.ndarray, lat: np.ndarray, *, row_group_size: int = 40_000, **extra) -> Path:
    """A Parquet file of points (row groups small enough for several slices)."""
    pq.write_table(pa.table({"lng": lng, "lat": lat, **extra}), path, row_group_size=row_group_size)
    return path


def redraw(layer: GridLayer, *, split: list[int], merge: list[int], recode: list[int], version_id: str) -> tuple[GridLayer, dict]:
    """A new version of ``layer``: each ``split`` grid cut west / east at its box's middle (codes
    ``+W`` / ``+E``), each ``merge`` grid united with the neighbour it shares most edge with (code
    ``a+b``), each ``recode`` grid given the code ``+new``. Returns the layer and
    ``{"split": {old: (west, east)}, "merged": {new: (a, b)}, "recoded": {old: new}}``."""
    geoms = layer.geometries()
    codes = list(layer.codes)
    tree = shapely.STRtree(geoms)
    taken = set(split) | set(recode)
    pairs = []
    for a in merge:
        neighbours = [int(j) for j in tree.query(geoms[a], predicate="touches") if int(j) not in taken and j != a]
        shared = [shapely.length(shapely.intersection(geoms[a].boundary, geoms[j].boundary)) for j in neighbours]
        b = neighbours[int(np.argmax(shared))]
        pairs.append((a, b))
        taken |= {a, b}
    gone = set(split) | {r for pair in pairs for r in pair}
    keep = [r for r in range(layer.n_grids) if r not in gone]
    columns = [c for c in ("community_code", "street_code", "district_code") if c in layer.attributes.column_names]
    values = {c: layer.column(c) for c in columns}
    new_geoms = [geoms[r] for r in keep]
    new_codes = [codes[r] + "+new" if r in recode else codes[r] for r in keep]
    new_attrs = {c: [values[c][r] for r in keep] for c in columns}
    changes = {"split": {}, "merged": {}, "recoded": {codes[r]: codes[r] + "+new" for r in recode}}
    for r in split:
        x0, y0, x1, y1 = geoms[r].bounds
        mid = (x0 + x1) / 2
        for side, box in (("W", (x0 - 1, y0 - 1, mid, y1 + 1)), ("E", (mid, y0 - 1, x1 + 1, y1 + 1))):
            new_geoms.append(shapely.clip_by_rect(geoms[r], *box))
            new_codes.append(f"{codes[r]}+{side}")
            for c in columns:
                new_attrs[c].append(values[c][r])
        changes["split"][codes[r]] = (f"{codes[r]}+W", f"{codes[r]}+E")
    for a, b in pairs:
        new_geoms.append(shapely.union(geoms[a], geoms[b]))
        new_codes.append(f"{codes[a]}+{codes[b]}")
        for c in columns:
            new_attrs[c].append(values[c][a])
        changes["merged"][f"{codes[a]}+{codes[b]}"] = (codes[a], codes[b])
    redrawn = GridLayer.from_geometries(new_geoms, {"grid_code": new_codes, **new_attrs}, version_id=version_id)
    return redrawn, changes


def read_output(path: Path) -> pa.Table:
    """Every row of an output dataset (partition column included), by row id."""
    return outputs.open_output(path).to_table().sort_by("row_id")


def output_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*.parquet") if not any(s.startswith(("_", ".")) for s in p.relative_to(path).parts))


def expected_rows(layer: GridLayer, points: pa.Table) -> dict[str, list]:
    """What the local single-process engine says for every input row, in input order."""
    result = Assigner.for_layer(layer).assign(points.column("lng").to_numpy(), points.column("lat").to_numpy())
    rows = result.grid_rows
    def attribute(name):
        values = layer.column(name)
        return [values[r] if r >= 0 else None for r in rows]
    return {
        "grid_code": attribute("grid_code"),
        "community_code": attribute("community_code"),
        "district_code": attribute("district_code"),
        "status": [STATUS_NAMES[s] for s in result.status],
    }


def assert_matches_local_engine(out: Path, layer: GridLayer, points_path: Path) -> pa.Table:
    points = pq.read_table(points_path)
    table = read_output(out)
    ids = table.column("row_id").to_numpy()
    # Every input row exactly once: nothing lost, nothing written twice.
    np.testing.assert_array_equal(ids, np.arange(points.num_rows))
    np.testing.assert_array_equal(table.column("lng").to_numpy(), points.column("lng").to_numpy())
    np.testing.assert_array_equal(table.column("lat").to_numpy(), points.column("lat").to_numpy())
    if "label" in points.column_names:
        assert table.column("label").to_pylist() == points.column("label").to_pylist()
    expected = expected_rows(layer, points)
    for name, values in expected.items():
        got = table.column(name).cast(pa.string()).to_pylist()
        mismatches = sum(a != b for a, b in zip(got, values))
        assert mismatches == 0, f"{name}: {mismatches} rows differ from the local engine"
    return table
