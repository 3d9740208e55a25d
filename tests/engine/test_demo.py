"""The demo district: an exact tessellation of the real Longgang outline, its hierarchy and codes,
and realistic, deterministic people and events (``citygrid.engine.demo``, ``citygrid demo``)."""

from __future__ import annotations

import doctest
import importlib
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyproj
import pytest
import shapely

from citygrid.cli.main import main as cli_main
from citygrid.engine.demo import generate_demo
from citygrid.engine.demo.outline import load_outline
from citygrid.engine.errors import Conflict, InvalidInput
from citygrid.engine.cases.taxonomy import load_taxonomy

REPO = Path(__file__).resolve().parents[2]
STREET_NAMES = {"平湖", "坂田", "布吉", "南湾", "吉华", "横岗", "园山", "龙城", "龙岗", "坪地", "宝龙"}
SMALL = dict(n_events=1_000, n_buildings=3_823, n_residents=2_000, n_businesses=500)
TABLES = ("grids", "communities", "streets", "buildings", "units", "residents", "businesses", "workers", "events",
          "anomalies")


def _read(folder: Path, name: str):
    return pq.read_table(folder / f"{name}.parquet")


def _geometries(table) -> np.ndarray:
    return shapely.from_wkb(np.asarray(table.column("geometry").to_pylist(), dtype=object))


def _strings(table, column: str) -> np.ndarray:
    return np.asarray(table.column(column).to_pylist(), dtype=object)


def _band_order(points: np.ndarray, north: float) -> np.ndarray:
    """The documented numbering order: 0.004° latitude bands north to south, then west to east."""
    lng, lat = shapely.get_x(points), shapely.get_y(points)
    return np.lexsort((lng, np.floor((north - lat) / 0.004)))


def _metres2(geometries) -> np.ndarray:
    """Areas in m² in the equal-area EPSG:6933, independently of the generator's own projection."""
    transformer = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:6933", always_xy=True)
    projected = shapely.transform(geometries, lambda c: np.column_stack(transformer.transform(c[:, 0], c[:, 1])))
    return shapely.area(projected)


@pytest.fixture(scope="module")
def grids(demo_dir):
    table = _read(demo_dir, "grids")
    return table, _geometries(table)


@pytest.fixture(scope="module")
def outline():
    return load_outline()


# ---------------------------------------------------------------------- grids, codes, hierarchy


def test_grid_codes_nest_in_communities_and_streets(grids):
    table, _ = grids
    codes = _strings(table, "grid_code")
    assert len(codes) == 3823 and len(set(codes)) == 3823
    assert all(isinstance(c, str) and len(c) == 15 and c.isdigit() and c.startswith("440307") for c in codes)
    community, street = _strings(table, "community_code"), _strings(table, "street_code")
    assert all(c[:12] == m and c[:9] == s and len(m) == 12 and len(s) == 9 for c, m, s in zip(codes, community, street))
    assert set(_strings(table, "district_code")) == {"440307"} and set(_strings(table, "district_name")) == {"龙岗区"}
    assert {n.removesuffix("街道") for n in _strings(table, "street_name")} == STREET_NAMES
    assert sorted(set(street)) == [f"440307{i:03d}" for i in range(1, 12)]
    assert 100 <= len(set(community)) <= 120
    assert all(n.endswith("社区") for n in _strings(table, "community_name"))
    types = _strings(table, "grid_type")
    assert sorted(set(types)) == [f"{i:02d}" for i in range(1, 9)]
    assert len(set(zip(types, _strings(table, "grid_type_name")))) == 8


def test_grids_are_numbered_in_band_order_within_communities(grids, outline):
    table, geoms = grids
    codes, community = _strings(table, "grid_code"), _strings(table, "community_code")
    north = outline.bounds[3]
    labels = shapely.point_on_surface(geoms)
    for code in sorted(set(community)):
        rows = np.flatnonzero(community == code)
        expected = [f"{code}{i:03d}" for i in range(1, rows.size + 1)]
        assert list(codes[rows][_band_order(labels[rows], north)]) == expected


def test_communities_are_numbered_in_band_order_within_streets(demo_dir, outline):
    table = _read(demo_dir, "communities")
    codes, street = _strings(table, "community_code"), _strings(table, "street_code")
    labels = shapely.point_on_surface(_geometries(table))
    for code in sorted(set(street)):
        rows = np.flatnonzero(street == code)
        ordered = codes[rows][_band_order(labels[rows], outline.bounds[3])]
        assert list(ordered) == [f"{code}{i:03d}" for i in range(1, rows.size + 1)]


def test_grids_cover_the_outline_exactly(grids, outline):
    table, geoms = grids
    assert shapely.is_valid(geoms).all()
    assert (shapely.get_type_id(geoms) == shapely.GeometryType.POLYGON).all()
    union = shapely.coverage_union_all(geoms)
    # planar lon/lat areas: the union is the outline and the grids do not overlap
    assert union.area == pytest.approx(outline.area, rel=1e-9)
    assert shapely.area(geoms).sum() == pytest.approx(union.area, rel=1e-9)
    assert shapely.area(shapely.symmetric_difference(union, outline)) < 1e-9 * outline.area
    # the outline's own vertices are all kept
    outline_vertices = {tuple(c) for c in shapely.get_coordinates(outline)}
    assert outline_vertices <= {tuple(c) for c in shapely.get_coordinates(geoms)}
    total_km2 = _metres2(geoms).sum() / 1e6
    assert total_km2 == pytest.approx(388.6, abs=0.5)
    assert table.column("area_m2").to_numpy().sum() / 1e6 == pytest.approx(total_km2, rel=1e-5)


def test_no_two_grids_overlap_and_neighbours_share_exact_edges(grids):
    _, geoms = grids
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    common = shapely.intersection(geoms[left], geoms[right])
    assert _metres2(common).max() < 1e-6
    edge = shapely.length(common) > 0
    assert edge.sum() > 2.5 * len(geoms)
    assert set(shapely.get_type_id(common[edge]).tolist()) <= {
        shapely.GeometryType.LINESTRING, shapely.GeometryType.MULTILINESTRING, shapely.GeometryType.GEOMETRYCOLLECTION,
    }
    assert (shapely.area(common) == 0).all()
    # vertex for vertex: every vertex of one grid on its neighbour's boundary is a vertex of the neighbour
    for a, b in list(zip(left[edge], right[edge]))[::25]:
        for one, other in ((geoms[a], geoms[b]), (geoms[b], geoms[a])):
            coords = shapely.get_coordinates(one)
            on = shapely.intersects(other.boundary, shapely.points(coords))
            assert {tuple(c) for c in coords[on]} <= {tuple(c) for c in shapely.get_coordinates(other)}


def test_grids_look_like_blocks(grids):
    table, geoms = grids
    vertices = shapely.get_num_coordinates(geoms)
    assert 20 <= np.median(vertices) <= 400
    convexity = shapely.area(geoms) / shapely.area(shapely.convex_hull(geoms))
    assert (convexity < 0.98).mean() > 0.9
    area = table.column("area_m2").to_numpy()
    street = _strings(table, "street_name")
    types = _strings(table, "grid_type")
    # small in the dense south-west, large in the hills; dedicated grids small, parks large
    assert np.median(area[street == "布吉街道"]) * 3 < np.median(area[street == "坪地街道"])
    for dedicated in ("05", "06", "07"):
        assert np.median(area[types == dedicated]) < np.median(area[types == "01"])
    assert np.median(area[types == "08"]) > 3 * np.median(area[types == "01"])
    assert (types == "01").mean() > 0.3 and ((types == "05") | (types == "06") | (types == "07")).mean() < 0.1


def test_communities_and_streets_are_unions_of_whole_grids(demo_dir, grids):
    table, geoms = grids
    for level, key in (("communities", "community_code"), ("streets", "street_code")):
        parents = _read(demo_dir, level)
        shapes = _geometries(parents)
        assert (shapely.get_type_id(shapes) == shapely.GeometryType.POLYGON).all()
        assert shapely.is_valid(shapes).all()
        of_grid = _strings(table, key)
        for code, shape, n in zip(_strings(parents, key), shapes, parents.column("n_grids").to_pylist()):
            members = geoms[of_grid == code]
            assert len(members) == n
            assert shapely.area(shapely.symmetric_difference(shape, shapely.coverage_union_all(members))) < 1e-12
    assert len(_read(demo_dir, "streets")) == 11


# ---------------------------------------------------------------------- buildings, people, workers


def test_buildings_stand_inside_their_grid(demo_dir, grids):
    table, geoms = grids
    buildings = _read(demo_dir, "buildings")
    assert len(buildings) == 60_000
    row_of = {code: i for i, code in enumerate(_strings(table, "grid_code"))}
    grid_codes = _strings(buildings, "grid_code")
    rows = np.array([row_of[c] for c in grid_codes])
    lng, lat = buildings.column("lng").to_numpy(), buildings.column("lat").to_numpy()
    assert shapely.contains_xy(geoms[rows], lng, lat).all()
    codes = _strings(buildings, "building_code")
    assert len(set(codes)) == len(codes)
    assert all(len(c) == 19 and c.startswith(g) for c, g in zip(codes, grid_codes))
    assert len(set(grid_codes)) == 3823  # every grid has a building
    counts = np.bincount(rows, minlength=3823) / table.column("area_m2").to_numpy()
    types = _strings(table, "grid_type")
    assert np.median(counts[types == "02"]) > 5 * np.median(counts[types == "08"])


def test_residents_businesses_and_workers_link_to_real_rows(demo_dir):
    buildings = set(_strings(_read(demo_dir, "buildings"), "building_code"))
    residents = _read(demo_dir, "residents")
    assert len(residents) == 200_000 and set(_strings(residents, "building_code")) <= buildings
    floating = (_strings(residents, "population_type") == "流动人口").mean()
    assert floating == pytest.approx(0.9, abs=0.02)
    businesses = _read(demo_dir, "businesses")
    assert len(businesses) == 20_000 and set(_strings(businesses, "building_code")) <= buildings
    workers = _read(demo_dir, "workers")
    assert len(workers) == 4_500 and len(set(_strings(workers, "worker_id"))) == 4_500
    grid_workers = _strings(workers, "grid_code")[_strings(workers, "role") == "网格员"]
    assert len(set(grid_workers)) == 3823
    classes = {c.code for c in load_taxonomy().classes}
    assert all(skills and set(skills) <= classes for skills in workers.column("skills").to_pylist())
    departments = {c.department for c in load_taxonomy().categories} | {"网格员"}
    assert set(_strings(workers, "department")) <= departments


# ---------------------------------------------------------------------- units, addresses, occupancy


@pytest.fixture(scope="module")
def houses(demo_dir):
    """buildings, units, residents and businesses as pandas frames, and the manifest's houses facts."""
    frames = {name: _read(demo_dir, name).to_pandas() for name in ("buildings", "units", "residents", "businesses")}
    manifest = json.loads((demo_dir / "manifest.json").read_text("utf-8"))
    return frames, manifest


def test_units_are_coded_within_their_building(houses):
    (frames, manifest) = houses
    buildings, units = frames["buildings"], frames["units"]
    codes = units["unit_code"]
    assert codes.is_unique and len(units) == manifest["counts"]["units"]
    assert codes.str.fullmatch(r"[0-9]{23}").all()
    assert (codes.str[:19] == units["building_code"]).all()
    by_code = buildings.set_index("building_code")
    assert units["building_code"].isin(by_code.index).all()
    assert (by_code.loc[units["building_code"], "grid_code"].to_numpy() == units["grid_code"].to_numpy()).all()
    # the unit part is a sequence 0001, 0002, ... within each building, in code order
    sequence = codes.str[19:].astype(int).to_numpy()
    rank = units.groupby("building_code").cumcount().to_numpy() + 1
    assert (sequence == rank).all()
    # every dwelling of buildings.parquet is a unit (a dormitory room in a staff dormitory)
    homes = units[units["kind"].isin(["dwelling", "dormitory"])].groupby("building_code").size()
    expected = by_code["dwellings"][by_code["dwellings"] > 0]
    assert homes.reindex(expected.index, fill_value=0).equals(expected.astype(homes.dtype))
    kinds = set(units["kind"])
    assert kinds == {"dwelling", "dormitory", "shop", "workshop", "office"}
    assert manifest["houses"]["units_by_kind"] == units["kind"].value_counts().to_dict()
    # room numbers: floor x 100 + a door number 1..99, floors within the building's
    number = units["number"].astype(int)
    assert ((number // 100 == units["floor"]) & (number % 100 >= 1)).all()
    assert (units["floor"] >= 1).all()
    assert (units["floor"].to_numpy() <= by_code.loc[units["building_code"], "floors"].to_numpy()).all()
    none = {"学校", "医院", "公共设施"}
    assert not by_code.loc[units["building_code"], "building_type"].isin(none).any()
    assert (units["area_m2"].dropna() > 0).all() and units["area_m2"].isna().any()


def test_rental_attributes_are_set_exactly_for_let_units(houses):
    frames, manifest = houses
    units = frames["units"]
    let = units["rental"]
    assert units.loc[let, "rental_class"].notna().all() and units.loc[~let, "rental_class"].isna().all()
    assert units.loc[let, "control_level"].notna().all() and units.loc[~let, "control_level"].isna().all()
    assert set(units["control_level"].dropna()) == {"绿色", "黄色", "红色"}
    assert set(units["rental_class"].dropna()) == {"整租", "合租", "城中村出租房", "集体宿舍", "商铺出租", "厂房出租",
                                                   "办公出租"}
    residential = {"整租", "合租", "城中村出租房", "集体宿舍"}
    kind_of_class = units.loc[let].groupby("rental_class")["kind"].agg(set)
    assert all(kinds <= {"dwelling", "dormitory"} for c, kinds in kind_of_class.items() if c in residential)
    assert manifest["houses"]["rental_units"] == int(let.sum())
    assert manifest["houses"]["rental_by_class"] == units["rental_class"].value_counts().to_dict()
    assert 0.4 < let.mean() < 0.9  # Longgang rents out most of its housing


def test_addresses_take_the_chinese_form_and_are_unique(houses, demo_dir):
    frames, _ = houses
    buildings, units = frames["buildings"], frames["units"]
    grids = _read(demo_dir, "grids").to_pandas().set_index("grid_code")
    address = buildings["address"]
    assert address.is_unique and units["address"].is_unique
    head = ("深圳市龙岗区" + grids.loc[buildings["grid_code"], "street_name"].to_numpy()
            + grids.loc[buildings["grid_code"], "community_name"].to_numpy())
    assert all(a.startswith(h) for a, h in zip(address, head))
    rest = [a[len(h):] for a, h in zip(address, head)]
    label = np.where(buildings["building_number"].str.fullmatch("[A-Z]").fillna(False), "座", "栋")
    def text(v) -> str:
        return v if isinstance(v, str) else ""

    expected = [f"{r}{n}号{text(e)}{text(b) and text(b) + l}" for r, n, e, b, l in zip(
        buildings["road"], buildings["door_number"], buildings["estate"], buildings["building_number"], label)]
    assert rest == expected
    assert buildings["road"].str.contains(r"(?:路|街|大道|巷|段）)$").all()
    village = buildings["building_type"] == "城中村自建房"
    assert buildings.loc[village, "road"].str.endswith("巷").all() and buildings.loc[village, "estate"].isna().all()
    assert buildings.loc[~village, "estate"].notna().all()
    # door numbers: odd on one side, even on the other, one number per place on a road
    places = buildings.loc[~village].groupby(["road", "door_number"])["estate"].nunique()
    assert (places == 1).all()
    # a unit's address is its building's, then the entrance and the room
    of_unit = buildings.set_index("building_code").loc[units["building_code"], "address"].to_numpy()
    entrance = units["entrance"].map(lambda e: "" if pd.isna(e) else f"{int(e)}单元")
    room = [f"{b}{e}{n}" for b, e, n in zip(of_unit, entrance, units["number"])]
    assert all(a.startswith(r) and a[len(r):] in {"室", "房", "铺"} for a, r in zip(units["address"], room))
    assert units["entrance"].notna().any()


def test_every_resident_lives_in_one_home_of_their_building(houses):
    frames, _ = houses
    buildings, units, residents = frames["buildings"], frames["units"], frames["residents"]
    assert len(residents) == 200_000 and residents["unit_code"].notna().all()
    unit = units.set_index("unit_code").loc[residents["unit_code"]]
    assert (unit["building_code"].to_numpy() == residents["building_code"].to_numpy()).all()
    assert unit["kind"].isin(["dwelling", "dormitory"]).all()
    kinds = buildings.set_index("building_code").loc[residents["building_code"], "building_type"]
    assert kinds.isin(["住宅", "商住楼", "城中村自建房", "员工宿舍"]).all()
    # residents' own columns are as settle_residents made them: ids in order, sorted by building
    assert residents["resident_id"].is_monotonic_increasing
    assert residents["building_code"].is_monotonic_increasing
    businesses = frames["businesses"]
    placed = businesses["unit_code"].notna()
    assert placed.mean() > 0.99
    unit = units.set_index("unit_code").loc[businesses.loc[placed, "unit_code"]]
    assert (unit["building_code"].to_numpy() == businesses.loc[placed, "building_code"].to_numpy()).all()
    assert unit["kind"].isin(["shop", "workshop", "office"]).all()
    unplaced = buildings.set_index("building_code").loc[businesses.loc[~placed, "building_code"], "building_type"]
    assert unplaced.isin(["学校", "医院", "公共设施", "员工宿舍"]).all()


def test_the_planted_group_renting_units_are_exactly_the_ones_the_rule_flags(houses):
    frames, manifest = houses
    units, residents = frames["units"], frames["residents"]
    facts = manifest["houses"]
    rule = facts["group_renting_rule"]
    assert rule == {"max_residents": 8, "min_area_per_person_m2": 6.0}
    heads = residents.groupby("unit_code").size().reindex(units["unit_code"], fill_value=0).to_numpy()
    area = units["area_m2"].to_numpy()
    crowded = heads > 8
    cramped = (heads > 0) & (area < 6.0 * heads)  # NaN area: never cramped
    flagged = set(units["unit_code"][crowded | cramped])
    listed = {g["unit_code"]: g for g in facts["group_renting"]}
    assert flagged == set(listed)
    assert {g["reason"] for g in listed.values()} == {"residents", "area"}  # both kinds planted, none natural
    assert sum(g["reason"] == "residents" for g in listed.values()) >= 5
    assert sum(g["reason"] == "area" for g in listed.values()) >= 3
    by_code = units.set_index("unit_code")
    for code, fact in listed.items():
        assert fact["residents"] == heads[units["unit_code"].to_numpy() == code][0]
        assert by_code.loc[code, "rental"] and by_code.loc[code, "kind"] == "dwelling"
        if fact["reason"] == "area":
            assert fact["residents"] <= 8 and fact["area_m2"] < 6.0 * fact["residents"]
    assert facts["occupied_units"] == int((heads > 0).sum())


# ---------------------------------------------------------------------- events and anomalies


@pytest.fixture(scope="module")
def events(demo_dir):
    return _read(demo_dir, "events")


def test_events_lie_in_the_grid_their_truth_names(events, grids, outline):
    table, geoms = grids
    assert len(events) == 20_000
    ids = _strings(events, "event_id")
    assert len(set(ids)) == len(ids)
    lng, lat = events.column("lng").to_numpy(), events.column("lat").to_numpy()
    points = shapely.points(lng, lat)
    assert shapely.covers(outline, points).all()
    row_of = {code: i for i, code in enumerate(_strings(table, "grid_code"))}
    rows = np.array([row_of[c] for c in _strings(events, "grid_code")])
    assert shapely.covers(geoms[rows], points).all()
    taxonomy_codes = {c.code for c in load_taxonomy().categories}
    assert set(_strings(events, "category_code")) <= taxonomy_codes
    occurred = events.column("occurred_at")
    assert str(occurred.type) == "timestamp[ms, tz=UTC]"
    assert (np.diff(occurred.cast("int64").to_numpy()) >= 0).all()


def test_events_follow_daily_weekly_and_festival_rhythms(events):
    local_ms = events.column("occurred_at").cast("int64").to_numpy() + 8 * 3_600_000
    local = local_ms.astype("datetime64[ms]")
    assert local.min() >= np.datetime64("2025-01-01") and local.max() < np.datetime64("2026-01-01")
    hour = (local_ms // 3_600_000) % 24
    by_hour = np.bincount(hour, minlength=24)
    assert by_hour[10] > 5 * by_hour[3]
    day = (local.astype("datetime64[D]") - np.datetime64("2025-01-01")).astype(int)
    # Spring Festival (29 January 2025) week versus a March week
    assert ((day >= 26) & (day < 33)).sum() < 0.6 * ((day >= 70) & (day < 77)).sum()
    sources = _strings(events, "source")
    weekday = (day + 2) % 7  # 2025-01-01 was a Wednesday (Monday = 0)
    inspector = sources == "inspector_terminal"
    assert (inspector & (weekday < 5)).sum() / 5 > 1.5 * (inspector & (weekday >= 5)).sum() / 2
    categories = _strings(events, "category_code")
    month = local.astype("datetime64[M]").astype(int) % 12
    sanitation = categories == "0101"
    assert (sanitation & (month == 6)).sum() > 1.5 * (sanitation & (month == 1)).sum()


def test_every_anomaly_has_its_events(events, demo_dir, grids):
    anomalies = _read(demo_dir, "anomalies")
    assert set(_strings(anomalies, "kind")) == {"spike", "cluster"}
    labels = _strings(events, "anomaly_id")
    background = np.array([a is None for a in labels])
    assert background.mean() > 0.95
    occurred = events.column("occurred_at").cast("int64").to_numpy()
    lng, lat = events.column("lng").to_numpy(), events.column("lat").to_numpy()
    categories, grid_codes = _strings(events, "category_code"), _strings(events, "grid_code")
    for row in anomalies.to_pylist():
        mine = labels == row["anomaly_id"]
        assert mine.sum() == row["n_events"] >= 6
        assert (categories[mine] == row["category_code"]).all()
        start, end = (int(row[k].timestamp() * 1000) for k in ("start_at", "end_at"))
        assert ((occurred[mine] >= start) & (occurred[mine] <= end)).all()
        assert row["expected_background"] < row["n_events"] / 3
        if row["kind"] == "spike":
            assert (grid_codes[mine] == row["grid_code"]).all()
        else:
            assert 100 <= row["radius_m"] <= 300
            dx = (lng[mine] - row["center_lng"]) * 111_320 * np.cos(np.radians(row["center_lat"]))
            dy = (lat[mine] - row["center_lat"]) * 110_574
            assert (np.hypot(dx, dy) <= row["radius_m"] * 1.01).all()


# ---------------------------------------------------------------------- files and schema


def test_files_are_geoparquet_with_described_fields(demo_dir):
    schema_doc = (REPO / "engine" / "demo" / "SCHEMA.md").read_text("utf-8")
    for name in TABLES:
        schema = pq.read_schema(demo_dir / f"{name}.parquet")
        for field in schema:
            assert field.metadata and field.metadata.get(b"description"), f"{name}.{field.name}"
            assert f"`{field.name}`" in schema_doc, f"{name}.{field.name} is not in SCHEMA.md"
        if "geometry" in schema.names:
            geo = json.loads(schema.metadata[b"geo"])
            assert geo["version"].startswith("1.") and geo["primary_column"] == "geometry"
            column = geo["columns"]["geometry"]
            assert column["encoding"] == "WKB"
            assert pyproj.CRS.from_json_dict(column["crs"]) == pyproj.CRS("OGC:CRS84")
    manifest = json.loads((demo_dir / "manifest.json").read_text("utf-8"))
    assert manifest["seed"] == 20261130 and manifest["counts"]["grids"] == 3823
    assert {f["name"] for f in manifest["files"]} == {f"{n}.parquet" for n in TABLES} | {"taxonomy.json"}
    assert json.loads((demo_dir / "taxonomy.json").read_text("utf-8"))["name"] == load_taxonomy().name


def test_same_seed_same_bytes_other_seed_other_district(demo_dir, tmp_path):
    first, again = tmp_path / "first", tmp_path / "again"
    summary = generate_demo(first, seed=7, **SMALL)
    assert summary.counts["grids"] == 3823 and summary.counts["events"] == 1_000
    status = cli_main(["demo", str(again), "--seed", "7", "--events", "1000", "--buildings", "3823",
                       "--residents", "2000", "--businesses", "500"])
    assert status == 0
    hashes = [{f["name"]: f["sha256"] for f in json.loads((d / "manifest.json").read_text("utf-8"))["files"]}
              for d in (first, again)]
    assert hashes[0] == hashes[1]
    assert (first / "manifest.json").read_bytes() == (again / "manifest.json").read_bytes()
    for name in TABLES:
        assert _read(first, name).equals(_read(again, name))
    # another seed (the session's run; grids do not depend on the sizes) gives another district
    other = _read(demo_dir, "grids")
    assert not _read(first, "grids").equals(other)
    assert not shapely.equals_exact(_geometries(_read(first, "grids")), _geometries(other), 0).any()


def test_existing_output_and_bad_sizes_are_refused(demo_dir, tmp_path):
    with pytest.raises(Conflict, match="already holds demo files"):
        generate_demo(demo_dir, n_events=1_000)
    with pytest.raises(InvalidInput, match="events"):
        generate_demo(tmp_path / "x", n_events=10)
    with pytest.raises(InvalidInput, match="workers"):
        generate_demo(tmp_path / "x", n_workers=100)


# ---------------------------------------------------------------------- taxonomy


def test_default_taxonomy_has_unique_string_codes():
    taxonomy = load_taxonomy()
    codes = [c.code for c in taxonomy.categories]
    assert 30 <= len(codes) <= 50 and len(set(codes)) == len(codes)
    assert all(isinstance(c, str) for c in codes)
    assert {c.name for c in taxonomy.classes} >= {"市容环境", "宣传广告", "施工管理", "突发事件", "街面秩序",
                                                   "矛盾纠纷", "安全隐患", "治安问题", "民生服务"}
    for c in taxonomy.categories:
        assert c.code.startswith(c.class_code) and c.weight > 0 and c.department
        assert 0 < c.limits.register <= c.limits.handle
    assert taxonomy.category("0801").name == "消防通道堵塞"


def test_taxonomy_refuses_duplicate_codes(tmp_path):
    payload = json.loads(resources.files("citygrid.engine").joinpath("data/taxonomy.json").read_text("utf-8"))
    payload["classes"][1]["categories"][0]["code"] = "0101"
    path = tmp_path / "taxonomy.json"
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(InvalidInput, match="duplicate category codes"):
        load_taxonomy(path)


@pytest.mark.parametrize("name", ["citygrid.engine.cases.taxonomy", "citygrid.engine.demo.outline", "citygrid.engine.demo.staff"])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------------- night duty (值班)


def test_night_duty_leaves_no_grid_without_an_urgent_responder(demo_dir, demo_layer):
    """At every hour of the week (and at 12:30, the lunch break) every grid has a worker on shift whom the route of each urgent category (class 04, 突发事件: its department or the grid
    workers, with skill 04) admits, in the grid or a neighbouring one: within the dispatcher's
    default reach of one hop. Counted from the workers file's shifts and skills."""
    from citygrid.engine.layers.adjacency import compute_adjacency
    from citygrid.engine.dispatch.routing import RoutingRules
    from citygrid.engine.dispatch.workers import read_workers, shift_of

    taxonomy = load_taxonomy()
    routing = RoutingRules.from_taxonomy(taxonomy)
    workers = read_workers(demo_dir / "workers.parquet")
    row_of = {code: row for row, code in enumerate(demo_layer.codes.tolist())}
    adjacency = compute_adjacency(demo_layer)
    times = [(day, hour * 60) for day in range(7) for hour in range(24)] + [(day, 12 * 60 + 30) for day in range(7)]
    for category in (c for c in taxonomy.categories if c.class_code == "04"):
        route = routing.route(category.code, category.class_code)
        admitted = [w for w in workers if route.admits(w)]
        for day, at in times:
            minute = day * 1440 + at
            staffed = np.zeros(demo_layer.n_grids, dtype=bool)
            staffed[[row_of[w.grid_code] for w in admitted if shift_of(w.shift).minutes[minute]]] = True
            reached = staffed.copy()
            for row in np.flatnonzero(staffed):
                reached[adjacency.neighbours(row)] = True
            assert reached.all(), (f"{category.code} {category.name}, day {day} {at // 60:02d}:{at % 60:02d}: "
                                   f"{np.count_nonzero(~reached)} grids without a responder")
    duty = [len(clause.split()[0].split(",")) for w in workers for clause in w.shift.split("; ")[1:]]
    night = [w for w in workers if "18:00-08:30" in w.shift]
    assert len(night) > demo_layer.n_grids // 2  # the duties go round ...
    assert sum(duty) / len(night) < 4  # ... a few a week each
