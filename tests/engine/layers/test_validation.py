"""Coverage validation: exact small cases against a geodesic-area oracle, the real NYC layers with
their known imperfections, a 10,000-grid layer for speed, and the demo district."""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa
import pytest
import shapely
from pyproj import Geod

from citygrid.engine.errors import InvalidInput
from citygrid.engine.layers.layer import FieldMap, GridLayer
from citygrid.engine.layers.sources import read_boundary, read_layer
from citygrid.engine.layers.validation import SCHEMA, validate_layer

GEOD = Geod(ellps="WGS84")
#: Longgang-ish origin and a 0.002° (~200 m) cell.
LNG0, LAT0, STEP = 114.05, 22.6, 0.002


def geodesic_m2(geom) -> float:
    """The oracle: the area pyproj's geodesic code gives (independent of the validator's projection)."""
    return abs(GEOD.geometry_area_perimeter(geom)[0])


def cell(i: int, j: int, n: int = 1):
    return shapely.box(LNG0 + i * STEP, LAT0 + j * STEP, LNG0 + (i + n) * STEP, LAT0 + (j + n) * STEP)


def layer_of(geoms, codes=None) -> GridLayer:
    codes = codes if codes is not None else [f"G{k:05d}" for k in range(len(geoms))]
    return GridLayer.from_geometries(geoms, {"grid_code": pa.array(codes, pa.string())})


def boxes(nx: int, ny: int, skip=()) -> list:
    return [cell(i, j) for i in range(nx) for j in range(ny) if (i, j) not in skip]


def jittered_lattice(nx: int, ny: int, rng, jitter: float = 0.3) -> np.ndarray:
    """A noded tessellation: quads over a jittered vertex lattice, every edge shared exactly."""
    gx, gy = np.meshgrid(np.arange(nx + 1.0), np.arange(ny + 1.0), indexing="ij")
    jx, jy = rng.uniform(-jitter, jitter, gx.shape), rng.uniform(-jitter, jitter, gy.shape)
    jx[[0, -1], :] = 0  # straight outer edges
    jy[:, [0, -1]] = 0
    lng, lat = LNG0 + (gx + jx) * STEP, LAT0 + (gy + jy) * STEP
    i, j = (a.ravel() for a in np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij"))
    corners = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)]
    rings = np.stack([np.column_stack([lng[a, b], lat[a, b]]) for a, b in corners], axis=1)
    return shapely.polygons(rings)


# ---------------------------------------------------------------------- small exact cases


def test_clean_tessellation_is_valid_with_its_area():
    layer = layer_of(boxes(3, 3))
    report = validate_layer(layer)
    assert report.valid
    assert report.n_slivers == 0 and not report.overlaps and not report.gaps
    assert report.union_area_m2 == pytest.approx(geodesic_m2(cell(0, 0, 3)), rel=1e-4)


def test_overlap_pair_codes_area_and_point():
    a, b = cell(0, 0), shapely.box(LNG0 + 0.5 * STEP, LAT0, LNG0 + 1.5 * STEP, LAT0 + STEP)
    report = validate_layer(layer_of([a, b], ["A", "B"]))
    assert not report.valid
    (overlap,) = report.overlaps
    assert overlap.codes == ("A", "B") and overlap.rows == (0, 1)
    assert overlap.area_m2 == pytest.approx(geodesic_m2(a & b), rel=1e-4)
    assert (a & b).contains(shapely.Point(overlap.point))


def test_hole_in_the_union_is_a_gap_with_its_neighbours():
    layer = layer_of(boxes(3, 3, skip={(1, 1)}))
    report = validate_layer(layer)
    (gap,) = report.gaps
    assert gap.kind == "hole"
    assert gap.area_m2 == pytest.approx(geodesic_m2(cell(1, 1)), rel=1e-4)
    assert cell(1, 1).contains(shapely.Point(gap.point))
    assert len(gap.codes) == 8  # every grid around the hole, corners included
    assert not report.valid


def test_island_in_a_hole_is_not_counted_as_gap():
    ring = shapely.difference(cell(0, 0, 5), cell(1, 1, 3))
    island = cell(2, 2)
    report = validate_layer(layer_of([ring, island]))
    (gap,) = report.gaps
    assert gap.area_m2 == pytest.approx(geodesic_m2(cell(1, 1, 3)) - geodesic_m2(island), rel=1e-4)
    assert not island.contains(shapely.Point(gap.point))


def test_invalid_geometry_is_reported_and_repaired_for_the_area_checks():
    bowtie = shapely.Polygon([(LNG0, LAT0), (LNG0 + STEP, LAT0 + STEP), (LNG0 + STEP, LAT0), (LNG0, LAT0 + STEP)])
    neighbour = shapely.box(LNG0 + STEP / 2, LAT0, LNG0 + 2 * STEP, LAT0 + STEP)
    report = validate_layer(layer_of([bowtie, neighbour], ["BOW", "N"]))
    (bad,) = report.invalid_geometries
    assert bad.code == "BOW" and bad.reason.startswith("Self-intersection")
    assert bad.point == pytest.approx((LNG0 + STEP / 2, LAT0 + STEP / 2))
    (overlap,) = report.overlaps  # the right lobe of the bow tie lies under the neighbour
    assert overlap.area_m2 == pytest.approx(geodesic_m2(cell(0, 0)) / 4, rel=1e-3)


def test_empty_geometry_and_duplicate_and_missing_codes():
    report = validate_layer(layer_of([cell(0, 0), None, cell(1, 0), cell(2, 0), cell(3, 0)], ["A", "B", "A", None, " "]))
    assert [(g.row, g.code) for g in report.empty_geometries] == [(1, "B")]
    assert [(d.code, d.rows) for d in report.duplicate_codes] == [("A", (0, 2))]
    assert [m.row for m in report.missing_codes] == [3, 4]
    assert not report.overlaps and not report.gaps
    assert not report.valid


def test_slivers_below_the_tolerance_do_not_invalidate():
    # a 0.1 m wide strip along a 220 m edge: about 22 m² of overlap
    a = cell(0, 0)
    b = shapely.box(LNG0 + STEP - 1e-6, LAT0, LNG0 + 2 * STEP, LAT0 + STEP)
    strip = geodesic_m2(a & b)
    assert 10 < strip < 40
    tolerant = validate_layer(layer_of([a, b]), sliver_m2=50)
    assert tolerant.valid and not tolerant.overlaps
    assert [s.area_m2 for s in tolerant.sliver_overlaps] == [pytest.approx(strip, rel=1e-3)]
    strict = validate_layer(layer_of([a, b]), sliver_m2=1)
    assert not strict.valid and len(strict.overlaps) == 1 and not strict.sliver_overlaps


@pytest.mark.parametrize("target_m2, sliver", [(0.4, True), (3.0, False), (8.0, False)])
def test_the_default_sliver_tolerance_is_one_square_metre(target_m2, sliver):
    """With no tolerance given, an overlap under 1 m² is a sliver (the layer stays valid) and one of
    3 or 8 m² is an overlap (invalid): a thin strip along the shared edge of two boxes."""
    width = target_m2 / geodesic_m2(cell(0, 0)) * STEP  # that share of a box's width
    a = cell(0, 0)
    b = shapely.box(LNG0 + STEP - width, LAT0, LNG0 + 2 * STEP, LAT0 + STEP)
    area = geodesic_m2(a & b)
    assert 0.8 * target_m2 < area < 1.2 * target_m2
    report = validate_layer(layer_of([a, b]))
    assert report.sliver_m2 == 1.0
    assert report.valid is sliver
    assert [o.area_m2 for o in (report.sliver_overlaps if sliver else report.overlaps)] == [
        pytest.approx(area, rel=1e-3)]
    assert not (report.overlaps if sliver else report.sliver_overlaps)


def test_boundary_coverage_uncovered_and_outside():
    boundary = cell(0, 0, 3)
    exact = validate_layer(layer_of(boxes(3, 3)), boundary=boundary)
    assert exact.valid and exact.boundary.coverage_pct == pytest.approx(100.0)

    short = validate_layer(layer_of(boxes(3, 2)), boundary=boundary)
    (gap,) = short.gaps
    assert gap.kind == "uncovered"
    assert gap.area_m2 == pytest.approx(geodesic_m2(cell(0, 2, 1) | cell(1, 2) | cell(2, 2)), rel=1e-4)
    assert short.boundary.coverage_pct == pytest.approx(200 / 3, rel=1e-3)
    assert not short.valid

    beyond = validate_layer(layer_of(boxes(3, 3) + [cell(3, 0)], None), boundary=boundary)
    (outside,) = beyond.outside_boundary
    assert outside.row == 9 and outside.area_m2 == pytest.approx(geodesic_m2(cell(3, 0)), rel=1e-4)
    assert not beyond.gaps and not beyond.valid


def test_long_boundary_edges_do_not_invent_gaps(rng):
    # the boundary box has 4 edges 20 km long, the grids 100 short edges each side: the topology is
    # decided in lon/lat, so the two agree exactly (projecting first would open a false 4.7 ha gap)
    layer = layer_of(jittered_lattice(100, 100, rng))
    report = validate_layer(layer, boundary=cell(0, 0, 100))
    assert report.valid
    assert report.n_slivers == 0
    assert report.boundary.coverage_pct == pytest.approx(100.0, abs=1e-9)


def test_nesting_by_area_share_and_code():
    parents = layer_of([cell(0, 0, 2), cell(2, 0, 2)], ["P1", "P2"])
    grids = boxes(4, 2)
    declared = ["P1", "P1", "P1", "P1", "P2", "P2", "P2", "WRONG"]
    straddler = shapely.box(LNG0 + 1.5 * STEP, LAT0 + 2 * STEP, LNG0 + 2.5 * STEP, LAT0 + 3 * STEP)
    child = GridLayer.from_geometries(
        grids + [straddler, cell(6, 0)],
        {"grid_code": [f"C{k}" for k in range(10)], "community_code": declared + ["P1", "P2"]},
    )
    report = validate_layer(child, parents=parents, parent_code_field="community_code")
    errors = {e.code: e for e in report.nesting_errors}
    assert errors["C7"].kind == "code_mismatch"
    assert (errors["C7"].declared_parent, errors["C7"].geometric_parent) == ("WRONG", "P2")
    assert errors["C9"].kind == "outside_parents" and errors["C9"].parents == ()
    assert errors["C8"].kind == "outside_parents"  # above both parents, touching them only
    assert set(errors) == {"C7", "C8", "C9"}
    assert report.nesting.n_nested == 8 and report.nesting.n_code_agrees == 7
    assert not report.valid

    halves = layer_of([shapely.box(LNG0 + 1.5 * STEP, LAT0, LNG0 + 2.5 * STEP, LAT0 + STEP)], ["S"])
    (straddles,) = validate_layer(halves, parents=parents).nesting_errors
    assert straddles.kind == "straddles"
    assert [p.code for p in straddles.parents] == ["P1", "P2"]
    assert [p.share for p in straddles.parents] == [pytest.approx(0.5, abs=1e-3)] * 2


def test_progress_reports_every_stage_to_completion():
    calls = []
    validate_layer(layer_of(boxes(3, 3)), boundary=cell(0, 0, 3), parents=layer_of([cell(0, 0, 3)]),
                   progress=lambda stage, done, total: calls.append((stage, done, total)))
    stages = list(dict.fromkeys(stage for stage, _, _ in calls))
    assert stages == ["codes", "geometry", "overlaps", "gaps", "boundary", "nesting"]
    assert all(0 <= done <= total for _, done, total in calls)
    last = {stage: (done, total) for stage, done, total in calls}
    assert all(done == total for done, total in last.values())


def test_json_schema_is_stable_and_free_of_geometry():
    report = validate_layer(layer_of(boxes(2, 1) + [cell(0, 0)]), boundary=cell(0, 0, 2))
    doc = json.loads(report.to_json())
    assert doc["schema"] == SCHEMA and doc["valid"] is False
    assert set(doc) == {
        "schema", "valid", "layer", "settings", "summary", "invalid_geometries", "empty_geometries",
        "duplicate_codes", "missing_codes", "overlaps", "gaps", "outside_boundary", "nesting_errors",
        "slivers", "boundary", "nesting", "notes", "timings_s",
    }
    (overlap,) = doc["overlaps"]
    assert set(overlap) == {"rows", "codes", "area_m2", "point"}
    assert overlap["codes"] == ["G00000", "G00002"] and len(overlap["point"]) == 2
    assert doc["summary"]["n_overlaps"] == 1 and doc["layer"]["n_grids"] == 3
    assert doc["boundary"]["coverage_pct"] == pytest.approx(50.0, rel=1e-3)
    assert "INVALID" in report.lines()[0]


def test_arguments_are_checked():
    layer = layer_of(boxes(1, 1))
    with pytest.raises(InvalidInput, match="parent layer"):
        validate_layer(layer, parent_code_field="community_code")
    with pytest.raises(InvalidInput, match="sliver"):
        validate_layer(layer, sliver_m2=-1)
    with pytest.raises(InvalidInput, match="polygon"):
        validate_layer(layer, boundary=shapely.Point(LNG0, LAT0))


def test_ten_thousand_grids_validate_in_seconds(rng):
    layer = layer_of(jittered_lattice(100, 100, rng))
    started = time.perf_counter()
    report = validate_layer(layer, boundary=cell(0, 0, 100))
    elapsed = time.perf_counter() - started
    assert report.valid and report.n_grids == 10_000
    assert elapsed < 20, f"10,000 grids took {elapsed:.1f} s"


# ---------------------------------------------------------------------- real NYC layers


def nyc_report(shared_data, name: str, code: str, **kwargs):
    layer = read_layer(shared_data / "nyc" / name, FieldMap(grid_code=code))
    return layer, validate_layer(layer, **kwargs)


@pytest.fixture(scope="module")
def community_districts(shared_data):
    return nyc_report(shared_data, "community_districts_chriswhong.geojson", "BoroCD")


def test_community_districts_two_overlaps_and_four_big_gaps(community_districts):
    _, report = community_districts
    assert not report.valid
    assert {frozenset(o.codes) for o in report.overlaps} == {frozenset({"409", "410"}), frozenset({"408", "413"})}
    assert sum(o.area_m2 for o in report.overlaps) == pytest.approx(186, abs=3)
    over_1ha = [g.area_m2 for g in report.gaps if g.area_m2 > 10_000]
    assert len(over_1ha) == 4  # parks and airports left out
    assert sum(over_1ha) / 1e6 == pytest.approx(11.2, abs=0.05)
    assert max(over_1ha) / 1e6 == pytest.approx(3.56, abs=0.02)
    assert all(g.kind == "hole" for g in report.gaps)
    assert not report.invalid_geometries and not report.duplicate_codes


def test_election_districts_invalid_geometries_do_not_stop_the_overlay(shared_data):
    _, report = nyc_report(shared_data, "election_districts.topojson", "ElectDist")
    assert len(report.invalid_geometries) == 34
    for bad in report.invalid_geometries:
        assert "Self-intersection" in bad.reason
        assert -74.3 < bad.point[0] < -73.7 and 40.4 < bad.point[1] < 41.0
    # after make_valid: 196 pairs overlap by 1 m² or more, 59 of them by more than 1 ha
    assert len(report.overlaps) == 196
    assert sum(o.area_m2 > 10_000 for o in report.overlaps) == 59
    # three small holes between two Brooklyn districts (and five sub-mm² slivers elsewhere)
    assert [g.area_m2 for g in report.gaps] == [pytest.approx(a, abs=0.5) for a in (154.9, 61.0, 7.4)]
    assert {frozenset(g.codes) for g in report.gaps} == {frozenset({"60075", "60079"})}


def test_tracts_are_clean_apart_from_slivers_and_nest_in_the_ntas(shared_data):
    ntas = read_layer(shared_data / "nyc" / "nynta2020.shp", FieldMap(grid_code="NTA2020"))
    layer, report = nyc_report(shared_data, "nyct2020.shp", "GEOID", parents=ntas, parent_code_field="NTA2020")
    assert report.valid, "\n".join(report.lines())
    assert 100 <= len(report.sliver_gaps) <= 400  # sub-m² slivers in the union
    assert all(s.area_m2 < 1 for s in (*report.sliver_gaps, *report.sliver_overlaps))
    assert report.nesting.n_nested == report.nesting.n_code_agrees == layer.n_grids == 2325
    assert not report.nesting_errors


def test_taxi_zones_are_almost_clean_but_reuse_two_codes(shared_data):
    _, report = nyc_report(shared_data, "taxi_zones.shp", "LocationID")
    # LocationID 56 (Corona) is two features, 103 (the islands) three: the only real problem
    assert [(d.code, len(d.rows)) for d in report.duplicate_codes] == [("56", 2), ("103", 3)]
    assert not report.overlaps and not report.gaps and not report.invalid_geometries
    # ~300 touching pairs overlap by slivers, ~780 micro-gaps; a few m² in all over 793 km²
    assert 250 <= len(report.sliver_overlaps) <= 350
    assert 700 <= len(report.sliver_gaps) <= 850
    assert sum(s.area_m2 for s in report.sliver_overlaps) < 10
    assert sum(s.area_m2 for s in report.sliver_gaps) < 10
    _, unique = nyc_report(shared_data, "taxi_zones.shp", "OBJECTID")
    assert unique.valid


def test_plot_marks_the_problems(community_districts, tmp_path):
    from matplotlib.image import imread

    from citygrid.engine.layers.plots import plot_validation

    layer, report = community_districts
    out = tmp_path / "cd.png"
    plot_validation(layer, report, out, boundary=shapely.box(*layer.bounds))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(out)
    assert image.shape[0] >= 1000 and image.shape[1] >= 1000
    # the gap and overlap colours are on the picture
    rgb = (image[..., :3] * 255).round().astype(int).reshape(-1, 3)
    assert (np.abs(rgb - [0, 114, 178]).sum(axis=1) < 10).any()  # gap marker
    assert (np.abs(rgb - [213, 94, 0]).sum(axis=1) < 10).any()  # overlap marker


# ---------------------------------------------------------------------- the demo district


def test_demo_district_covers_longgang_and_nests_in_its_communities(request):
    pytest.importorskip("citygrid.engine.demo", reason="the demo district package is not there yet")
    from citygrid.engine import demo

    if not hasattr(demo, "generate_demo"):
        pytest.skip("the demo district generator (citygrid.engine.demo.generate_demo) is not there yet")
    from importlib.resources import files

    demo_dir, demo_layer = request.getfixturevalue("demo_dir"), request.getfixturevalue("demo_layer")
    boundary = read_boundary(files("citygrid.engine.demo") / "data" / "longgang.geojson")
    communities = read_layer(demo_dir / "communities.parquet", FieldMap(grid_code="community_code"))
    report = validate_layer(demo_layer, boundary=boundary, parents=communities, parent_code_field="community_code")
    assert report.valid, "\n".join(report.lines())
    assert report.boundary.coverage_pct == pytest.approx(100.0, abs=1e-4)
    assert report.nesting.n_code_agrees == demo_layer.n_grids
