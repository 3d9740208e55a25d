"""``generate_demo``: a realistic, fully synthetic Longgang district inside its real outline.

Everything is drawn from ``numpy.random.Generator(PCG64)`` streams derived from the seed, one
stream per stage (:data:`STAGES`), so the same seed writes the same Parquet bytes and changing the
event count leaves the grids, buildings, people and workers unchanged. See ``SCHEMA.md`` for the files.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from citygrid.engine.errors import Conflict, InvalidInput
from citygrid.engine.cases.taxonomy import load_taxonomy

from citygrid.engine.houses.rentals import GroupRentingRule

from .addresses import BuildingAddresses, address_buildings, address_units
from .anomalies import Anomalies, anomaly_plan, inject_anomalies
from .events import EventModel, Events, EventSpace, describe
from .gridtypes import TYPE_BY_CODE, assign_grid_types
from .hierarchy import Hierarchy, build_hierarchy
from .landscape import Landscape
from .names import sequential_ids
from .occupancy import Occupancy, occupy
from .outline import DISTRICT_CODE, DISTRICT_NAME, LocalPlane, area_m2, load_outline
from .places import N_COMMUNITIES
from .population import (
    DEMO_YEAR, Buildings, Businesses, Residents, open_businesses, place_buildings, settle_residents,
)
from .rhythms import SOURCES
from .seeds import block_seeds
from .staff import Staff, hire_staff
from .tables import write_table
from .tessellation import tessellate
from .units import Units, lay_out_units

N_GRIDS = 3823
DEFAULT_SEED = 20261130
DEFAULT_SIZES = {"events": 200_000, "buildings": 60_000, "residents": 200_000, "businesses": 20_000, "workers": 4_500}
#: The stages, in order; each has its own random stream and reports progress when done.
STAGES = ("outline", "seeds", "grids", "hierarchy", "types", "buildings", "residents", "businesses", "units",
          "addresses", "occupancy", "workers", "events", "anomalies", "write")
#: The spawn key of each stage's random stream. Never renumber: a key fixes its stage's draws, so a
#: stage added later takes a new key and every earlier stage draws exactly what it drew before.
STREAM_KEYS = {"outline": 0, "seeds": 1, "grids": 2, "hierarchy": 3, "types": 4, "buildings": 5, "residents": 6,
               "businesses": 7, "workers": 8, "events": 9, "anomalies": 10, "write": 11, "units": 12,
               "addresses": 13, "occupancy": 14}
FILES = ("grids.parquet", "communities.parquet", "streets.parquet", "buildings.parquet", "units.parquet",
         "residents.parquet", "businesses.parquet", "workers.parquet", "events.parquet", "anomalies.parquet",
         "taxonomy.json", "manifest.json")
#: 2: units.parquet, building addresses, residents' and businesses' unit codes, the manifest's houses facts.
FORMAT_VERSION = 2

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Houses:
    """The houses stages' output: units, building and unit addresses, who is in which unit."""

    units: Units
    addresses: BuildingAddresses
    unit_addresses: np.ndarray
    occupancy: Occupancy


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`generate_demo` wrote: counts per level, district area, stage timings, file paths."""

    outdir: Path
    seed: int
    counts: dict[str, int]
    area_km2: float
    timings: dict[str, float] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.timings.values())

    def lines(self) -> list[str]:
        """A short human summary."""
        c = self.counts
        return [
            f"demo district 龙岗区 (seed {self.seed}) written to {self.outdir}",
            f"  {c['streets']} streets, {c['communities']} communities, {c['grids']:,} grids covering "
            f"{self.area_km2:.1f} km²",
            f"  {c['buildings']:,} buildings with {c['units']:,} units, {c['residents']:,} residents, "
            f"{c['businesses']:,} businesses, {c['workers']:,} workers",
            f"  {c['events']:,} events in {DEMO_YEAR}, of which {c['anomaly_events']:,} injected by "
            f"{c['anomalies']} labelled anomalies",
            f"  generated in {self.seconds:.1f} s ("
            + ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in self.timings.items()) + ")",
        ]


def _stream(seed: int, stage: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(STREAM_KEYS[stage],))))


def _sizes(**requested: int | None) -> dict[str, int]:
    sizes = {name: DEFAULT_SIZES[name] if value is None else value for name, value in requested.items()}
    minimum = {"events": 1_000, "buildings": N_GRIDS, "residents": 1, "businesses": 1,
               "workers": N_GRIDS + N_COMMUNITIES}
    for name, value in sizes.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum[name]:
            raise InvalidInput(f"the number of {name} must be a whole number of at least {minimum[name]:,}, "
                               f"not {value!r}")
    return {name: int(value) for name, value in sizes.items()}


def generate_demo(
    outdir: str | os.PathLike,
    seed: int = DEFAULT_SEED,
    n_events: int | None = None,
    n_buildings: int | None = None,
    n_residents: int | None = None,
    n_businesses: int | None = None,
    n_workers: int | None = None,
    *,
    taxonomy_path: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> DemoSummary:
    """Generate the demo district into ``outdir`` (created if needed) and return a summary.

    Sizes left as ``None`` take :data:`DEFAULT_SIZES`; the grid count is always 3,823. Existing demo
    files in ``outdir`` are refused (:class:`Conflict`) unless ``overwrite``. ``progress`` is called
    as ``progress(stage, done, total)`` after each of the :data:`STAGES`.
    """
    sizes = _sizes(events=n_events, buildings=n_buildings, residents=n_residents, businesses=n_businesses,
                   workers=n_workers)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise InvalidInput(f"the seed must be a whole number >= 0, not {seed!r}")
    out = Path(outdir)
    existing = [name for name in FILES if (out / name).exists()]
    if existing and not overwrite:
        raise Conflict(f"{out} already holds demo files ({', '.join(existing)}); "
                       "overwrite them (citygrid demo --force) or pick another folder")
    out.mkdir(parents=True, exist_ok=True)
    taxonomy = load_taxonomy(taxonomy_path)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def done(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = now - clock
        clock = now
        if progress is not None:
            progress(stage, STAGES.index(stage) + 1, len(STAGES))

    outline = load_outline()
    plane = LocalPlane.around(outline)
    landscape = Landscape(plane)
    done("outline")

    block_xy, grid_block = block_seeds(outline, plane, landscape, N_GRIDS, _stream(seed, "seeds"))
    done("seeds")

    block_urban = landscape.urban(*plane.to_lnglat(block_xy[:, 0], block_xy[:, 1]))
    tessellation = tessellate(outline, plane, block_xy, grid_block, roughness=0.04 + 0.06 * (1 - block_urban),
                              segment_m=15 + 30 * (1 - block_urban), rng=_stream(seed, "grids"))
    done("grids")

    h = build_hierarchy(tessellation, outline, plane, _stream(seed, "hierarchy"))
    done("hierarchy")

    urban = landscape.urban(h.label_lng, h.label_lat)
    green = landscape.green(h.label_lng, h.label_lat)
    grid_types = assign_grid_types(h.grid_area_m2, urban, landscape.industrial(h.label_lng, h.label_lat), green,
                                   _stream(seed, "types"))
    done("types")

    buildings = place_buildings(h.grids, h.grid_code, grid_types, h.grid_area_m2, urban, sizes["buildings"],
                                _stream(seed, "buildings"))
    done("buildings")
    residents = settle_residents(buildings, sizes["residents"], _stream(seed, "residents"))
    done("residents")
    businesses = open_businesses(buildings, sizes["businesses"], _stream(seed, "businesses"))
    done("businesses")
    units = lay_out_units(buildings, businesses, _stream(seed, "units"))
    done("units")
    addresses = address_buildings(h, buildings, _stream(seed, "addresses"))
    unit_addresses = address_units(addresses.address, buildings, units)
    done("addresses")
    rule = GroupRentingRule()
    occupancy = occupy(buildings, units, residents, businesses, rule, _stream(seed, "occupancy"))
    done("occupancy")

    events_rng = _stream(seed, "events")
    space = EventSpace.build(h.grids, grid_types, h.grid_area_m2, urban, green, buildings, residents, businesses,
                             events_rng)
    model = EventModel(taxonomy, DEMO_YEAR)
    staff = hire_staff(taxonomy, h.grid_community, h.grid_street, space.grid_share("street") + 1e-9,
                       sizes["workers"], _stream(seed, "workers"), neighbours=_adjacency(h))
    done("workers")

    anomalies_rng = _stream(seed, "anomalies")
    kinds, counts = anomaly_plan(sizes["events"], anomalies_rng)
    n_background = sizes["events"] - int(counts.sum())
    background = model.background(n_background, space, plane, events_rng)
    done("events")
    injected, anomalies = inject_anomalies(kinds, counts, model, space, plane, n_background, anomalies_rng)
    events = Events.concat([background, injected]).sorted()
    descriptions = describe(events, model.categories, model.profiles, anomalies_rng)
    done("anomalies")

    houses = Houses(units, addresses, unit_addresses, occupancy)
    paths = _write(out, h, grid_types, buildings, houses, residents, businesses, staff, events, descriptions,
                   anomalies, model, taxonomy_path)
    counts_by_level = {
        "streets": len(h.street_code), "communities": len(h.community_code), "grids": len(h.grid_code),
        "buildings": len(buildings), "units": len(units), "residents": len(residents.resident_id),
        "businesses": len(businesses.business_id), "workers": len(staff.worker_id), "events": len(events),
        "anomalies": len(anomalies.anomaly_id), "anomaly_events": int(anomalies.n_events.sum()),
    }
    area_km2 = float(area_m2(outline)) / 1e6
    _write_manifest(out, seed, sizes, counts_by_level, area_km2, houses_facts(buildings, houses, rule))
    paths["manifest.json"] = out / "manifest.json"
    done("write")
    return DemoSummary(out, seed, counts_by_level, area_km2, timings, paths)


def _write(
    out: Path, h: Hierarchy, grid_types: np.ndarray, buildings: Buildings, houses: Houses, residents: Residents,
    businesses: Businesses, staff: Staff, events: Events, descriptions: np.ndarray, anomalies: Anomalies,
    model: EventModel, taxonomy_path: str | os.PathLike | None,
) -> dict[str, Path]:
    """Write every table and the taxonomy copy; returns the paths by file name."""
    _write_layers(out, h, grid_types)
    _write_population(out, h, buildings, houses, residents, businesses, staff)
    _write_events(out, h, buildings, events, descriptions, anomalies, model)
    if taxonomy_path is None:
        taxonomy_bytes = resources.files("citygrid.engine").joinpath("data/taxonomy.json").read_bytes()
    else:
        taxonomy_bytes = Path(taxonomy_path).read_bytes()
    (out / "taxonomy.json").write_bytes(taxonomy_bytes)
    return {name: out / name for name in FILES if name != "manifest.json"}


def _write_layers(out: Path, h: Hierarchy, grid_types: np.ndarray) -> None:
    """grids, communities and streets (GeoParquet)."""
    district = {"district_code": DISTRICT_CODE, "district_name": DISTRICT_NAME}
    n_grids = len(h.grid_code)
    grid_street = h.grid_street
    write_table(out / "grids.parquet", "grids", {
        "grid_code": h.grid_code, "grid_name": h.grid_name, "grid_type": grid_types,
        "grid_type_name": np.array([TYPE_BY_CODE[t].name for t in grid_types], dtype=object),
        "community_code": h.community_code[h.grid_community], "community_name": h.community_name[h.grid_community],
        "street_code": h.street_code[grid_street], "street_name": h.street_name[grid_street],
        **{k: [v] * n_grids for k, v in district.items()},
        "area_m2": h.grid_area_m2,
    }, h.grids)
    n_communities = len(h.community_code)
    write_table(out / "communities.parquet", "communities", {
        "community_code": h.community_code, "community_name": h.community_name,
        "street_code": h.street_code[h.community_street], "street_name": h.street_name[h.community_street],
        **{k: [v] * n_communities for k, v in district.items()},
        "n_grids": np.bincount(h.grid_community, minlength=n_communities),
        "area_m2": np.bincount(h.grid_community, weights=h.grid_area_m2, minlength=n_communities),
    }, h.communities)
    n_streets = len(h.street_code)
    write_table(out / "streets.parquet", "streets", {
        "street_code": h.street_code, "street_name": h.street_name,
        **{k: [v] * n_streets for k, v in district.items()},
        "n_communities": np.bincount(h.community_street, minlength=n_streets),
        "n_grids": np.bincount(grid_street, minlength=n_streets),
        "area_m2": np.bincount(grid_street, weights=h.grid_area_m2, minlength=n_streets),
    }, h.streets)


def _write_population(
    out: Path, h: Hierarchy, buildings: Buildings, houses: Houses, residents: Residents, businesses: Businesses,
    staff: Staff,
) -> None:
    """buildings and businesses (GeoParquet points), units, residents and workers (Parquet)."""
    community_of_grid = h.community_code[h.grid_community]
    a = houses.addresses
    write_table(out / "buildings.parquet", "buildings", {
        "building_code": buildings.code, "grid_code": h.grid_code[buildings.grid],
        "community_code": community_of_grid[buildings.grid], "building_type": buildings.kind,
        "floors": buildings.floors, "dwellings": buildings.dwellings, "built_year": buildings.built_year,
        "lng": buildings.lng, "lat": buildings.lat, "address": a.address, "road": a.road,
        "door_number": a.door_number, "estate": a.estate, "building_number": a.building_number,
    }, shapely.points(buildings.lng, buildings.lat))
    units = houses.units
    write_table(out / "units.parquet", "units", {
        "unit_code": units.code, "building_code": buildings.code[units.building],
        "grid_code": h.grid_code[buildings.grid[units.building]], "kind": units.names("kind"),
        "entrance": pa.array(units.entrance, mask=units.entrance == 0), "floor": units.floor,
        "number": pc.cast(pa.array(units.number), pa.string()),
        "area_m2": pa.array(units.area_m2, mask=np.isnan(units.area_m2)), "rental": units.rental,
        "rental_class": units.names("rental_class"), "control_level": units.names("control_level"),
        "address": houses.unit_addresses,
    })

    def unit_codes(rows: np.ndarray) -> pa.Array:  # row -1: no unit
        return units.code.take(pa.array(rows, mask=rows < 0))

    write_table(out / "residents.parquet", "residents", {
        "resident_id": residents.resident_id, "name": residents.name, "gender": residents.gender,
        "birth_year": residents.birth_year, "population_type": residents.population_type,
        "origin_province": residents.origin_province, "building_code": buildings.code[residents.building],
        "grid_code": h.grid_code[buildings.grid[residents.building]],
        "unit_code": unit_codes(houses.occupancy.resident_unit),
    })
    b = businesses.building
    write_table(out / "businesses.parquet", "businesses", {
        "business_id": businesses.business_id, "name": businesses.name, "industry": businesses.industry,
        "business_form": businesses.business_form, "employees": businesses.employees,
        "opened_year": businesses.opened_year, "building_code": buildings.code[b],
        "grid_code": h.grid_code[buildings.grid[b]], "lng": buildings.lng[b], "lat": buildings.lat[b],
        "unit_code": unit_codes(houses.occupancy.business_unit),
    }, shapely.points(buildings.lng[b], buildings.lat[b]))
    write_table(out / "workers.parquet", "workers", {
        "worker_id": staff.worker_id, "name": staff.name, "role": staff.role, "department": staff.department,
        "grid_code": h.grid_code[staff.grid], "community_code": community_of_grid[staff.grid],
        "skills": staff.skills, "shift": staff.shift, "capacity": staff.capacity,
    })


def _write_events(
    out: Path, h: Hierarchy, buildings: Buildings, events: Events, descriptions: np.ndarray, anomalies: Anomalies,
    model: EventModel,
) -> None:
    """events and anomalies (Parquet)."""
    category_codes = np.array([c.code for c in model.categories], dtype=object)
    anomaly_ids = np.append(anomalies.anomaly_id, None)
    building_codes = np.append(buildings.code, None)
    write_table(out / "events.parquet", "events", {
        "event_id": sequential_ids("E", len(events)), "category_code": category_codes[events.category],
        "lng": events.lng, "lat": events.lat, "occurred_at": events.occurred_ms,
        "source": np.array([s.code for s in SOURCES], dtype=object)[events.source],
        "grid_code": h.grid_code[events.grid], "building_code": building_codes[events.building],
        "description": descriptions, "anomaly_id": anomaly_ids[events.anomaly],
    })
    category_names = np.array([c.name for c in model.categories], dtype=object)
    kind_names = {"spike": "激增", "cluster": "聚集"}
    write_table(out / "anomalies.parquet", "anomalies", {
        "anomaly_id": anomalies.anomaly_id, "kind": anomalies.kind,
        "category_code": category_codes[anomalies.category], "grid_code": h.grid_code[anomalies.grid],
        "center_lng": anomalies.center_lng, "center_lat": anomalies.center_lat, "radius_m": anomalies.radius_m,
        "start_at": anomalies.start_ms, "end_at": anomalies.end_ms, "n_events": anomalies.n_events,
        "expected_background": anomalies.expected_background,
        "description": [
            f"{h.grid_name[g]}{category_names[c]}{kind_names[k]}（{n}起）"
            for g, c, k, n in zip(anomalies.grid, anomalies.category, anomalies.kind, anomalies.n_events)
        ],
    })


def houses_facts(buildings: Buildings, houses: Houses, rule: GroupRentingRule) -> dict:
    """Labelled facts about the houses for tests and demos: units by kind, rentals by class and level,
    the group-renting rule and every unit it flags (planted on purpose, see :mod:`.occupancy`)."""
    units, occupancy = houses.units, houses.occupancy
    residents = np.bincount(occupancy.resident_unit, minlength=len(units))
    flagged = np.flatnonzero(rule.flags(residents, units.area_m2))
    planted = dict(occupancy.planted)

    def tally(column: str) -> dict[str, int]:
        counts = units.names(column).value_counts()
        return {str(v["values"]): int(v["counts"]) for v in counts.to_pylist() if v["values"] is not None}

    return {
        "units_by_kind": tally("kind"),
        "rental_units": int(units.rental.sum()),
        "rental_by_class": tally("rental_class"),
        "rental_by_control_level": tally("control_level"),
        "occupied_units": int((residents > 0).sum()),
        "businesses_without_unit": int((occupancy.business_unit < 0).sum()),
        "group_renting_rule": {"max_residents": rule.max_residents,
                               "min_area_per_person_m2": rule.min_area_per_person_m2},
        "group_renting": [
            {"unit_code": units.code[int(u)].as_py(), "building_code": str(buildings.code[units.building[u]]),
             "residents": int(residents[u]),
             "area_m2": None if np.isnan(units.area_m2[u]) else float(units.area_m2[u]),
             "reason": planted.get(int(u), "natural")}
            for u in flagged
        ],
    }


def _write_manifest(out: Path, seed: int, sizes: dict[str, int], counts: dict[str, int], area_km2: float,
                    houses: dict) -> None:
    files = []
    for name in FILES:
        if name == "manifest.json":
            continue
        data = (out / name).read_bytes()
        files.append({"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {
        "generator": "citygrid demo", "format_version": FORMAT_VERSION, "seed": seed, "year": DEMO_YEAR,
        "district": {"code": DISTRICT_CODE, "name": DISTRICT_NAME, "area_km2": round(area_km2, 3)},
        "sizes": sizes, "counts": counts, "houses": houses, "files": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _adjacency(h: Hierarchy) -> tuple[np.ndarray, np.ndarray]:
    """The grids' adjacency (CSR offsets, rows) by the dispatcher's own definition (a shared edge)."""
    from citygrid.engine.layers.adjacency import compute_adjacency
    from citygrid.engine.layers.layer import GridLayer

    adjacency = compute_adjacency(GridLayer.from_geometries(h.grids, {"grid_code": h.grid_code.tolist()}))
    return adjacency.offsets, adjacency.rows
