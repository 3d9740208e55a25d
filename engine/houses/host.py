"""The house registry of a server's data directory: its settings (the ``[houses]`` table of the server's
config), opening it on the active layer version, following activations, and the demo load.

``[houses]`` keys (all optional; these are the defaults)::

    [houses]
    qr_keys = { K1 = "base64url..." }   # QR signing keys by id (codes.generate_key() makes one); unset: a
                                        # key generated once and kept in <data dir>/houses-qr.key (0600)
    qr_current = "K1"                   # the key new plates are signed with (default: the only/first key)
    qr_retired = []                     # key ids whose plates are refused as retired
    group_max_residents = 8             # 群租: a unit with more residents than this ...
    group_min_area_per_person_m2 = 6.0  # ... or less living area per person than this
    checkin_max_distance_m = 50.0       # 签到 farther than this from the building: flagged
    checkin_max_speed_kmh = 120.0       # two check-ins implying a faster speed: flagged

:func:`open_houses` opens the registry (its counts are rebuilt from the database at open) on the
layer registry's active version, or with no version when none is active yet (``serve --demo``
activates one after the server is built): then :func:`follow_layers` places it when a version is
activated. :func:`follow_layers` re-grids when the active version is not the one the registry's current
grids were computed on and returns the :class:`~.records.RegridReport` (None when nothing changed).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from citygrid.engine.errors import InvalidInput
from citygrid.engine.houses.checkins import CheckInRules
from citygrid.engine.houses.codes import QrKeyring, generate_key
from citygrid.engine.houses.loading import LoadReport
from citygrid.engine.houses.records import RegridReport
from citygrid.engine.houses.registry import HouseRegistry
from citygrid.engine.houses.rentals import GroupRentingRule
from citygrid.engine.houses.service import HouseService

log = logging.getLogger("citygrid.houses")

#: The file a generated QR key is kept in (inside the data directory) when the config gives none.
KEY_FILE = "houses-qr.key"
#: The id of that generated key.
GENERATED_KEY_ID = "K1"


@dataclass(frozen=True)
class HouseSettings:
    """The ``[houses]`` table (see the module docstring)."""

    qr_keys: dict[str, str] = field(default_factory=dict)
    qr_current: str | None = None
    qr_retired: tuple[str, ...] = ()
    group_max_residents: int = 8
    group_min_area_per_person_m2: float = 6.0
    checkin_max_distance_m: float = 50.0
    checkin_max_speed_kmh: float = 120.0

    @classmethod
    def from_table(cls, table: dict) -> "HouseSettings":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(table) - known)
        if unknown:
            raise InvalidInput(f"unknown [houses] keys {unknown}; known keys are {sorted(known)}")
        values = dict(table)
        if not isinstance(values.get("qr_keys", {}), dict):
            raise InvalidInput("[houses] qr_keys must be a table of key id = base64url key")
        values["qr_retired"] = tuple(values.get("qr_retired", ()))
        settings = cls(**values)
        settings.rule(), settings.checkin_rules()  # precise errors at start-up, not at the first call
        return settings

    def rule(self) -> GroupRentingRule:
        return GroupRentingRule(self.group_max_residents, float(self.group_min_area_per_person_m2))

    def checkin_rules(self) -> CheckInRules:
        return CheckInRules(float(self.checkin_max_distance_m), float(self.checkin_max_speed_kmh))

    def keyring(self, data_dir: Path) -> QrKeyring:
        """The configured keys, or the data directory's generated key (made on first use)."""
        if self.qr_keys:
            return QrKeyring.from_config(self.qr_keys, self.qr_current or next(iter(self.qr_keys)), self.qr_retired)
        path = Path(data_dir) / KEY_FILE
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(generate_key() + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        return QrKeyring.from_config({GENERATED_KEY_ID: path.read_text().strip()}, GENERATED_KEY_ID, self.qr_retired)


def open_houses(data_dir, layers, clock, settings: HouseSettings | None = None, *,
                background: bool = False) -> HouseService:
    """The house service of ``data_dir`` over the layer registry ``layers`` (its active version, if any).
    With ``background`` the registry reads its counts (and is placed on the active version) in a
    thread, so a server can listen meanwhile (:attr:`HouseRegistry.opening`)."""
    settings = settings or HouseSettings()
    registry = HouseRegistry(data_dir, None, clock, rule=settings.rule(), background=background,
                             then=lambda opened: _follow(opened, layers))
    return HouseService(registry, settings.keyring(Path(data_dir)), checkin_rules=settings.checkin_rules())


def follow_layers(service: HouseService, layers) -> RegridReport | None:
    """Place the registry on ``layers``' active version: re-grid when the current grids were computed on
    another version (the report lists the moved buildings), else just take its assigner. None when no
    version is active or nothing was re-gridded."""
    return _follow(service.registry, layers)


def _follow(registry: HouseRegistry, layers) -> RegridReport | None:
    if layers.active_version_id is None:
        return None
    snapshot = layers.snapshot()
    if registry.version_id == snapshot.version_id:
        registry.assigner = snapshot.assigner
        return None
    report = registry.regrid(snapshot.assigner)
    log.info("houses: %d buildings re-placed on layer version %s (was %s): %d changed grid, %d outside every grid",
             report.n_buildings, report.version_id, report.previous_version_id, len(report.moved), len(report.outside))
    return report


def load_demo(service: HouseService, directory) -> LoadReport | None:
    """Load the demo district's buildings, units, residents and businesses once per data directory:
    None (nothing read) when the registry already holds buildings."""
    registry = service.registry
    if len(registry.positions()) or registry.n_buildings:
        return None
    return registry.load_directory(directory)


class RegistryPopulation:
    """Residents per current grid from the registry's counts: the dashboards' population (a
    :class:`~citygrid.engine.analytics.population.PopulationProvider`, for rates per 1,000 residents).
    Every grid of the registry's layer version without residents counts 0; an empty registry knows no
    grid's population (an empty mapping: rates are then unknown, not infinite)."""

    def __init__(self, service: HouseService):
        self._registry = service.registry

    def generation(self) -> int:
        """Changes when the counts do (a move in or out, a load, a re-grid): the dashboards then recount."""
        return self._registry.population_generation

    def residents_by_grid(self) -> dict[str, int]:
        registry = self._registry
        if not registry.n_buildings:
            return {}
        out = {}
        if registry.assigner is not None:
            out = dict.fromkeys(registry.assigner.layer.column("grid_code").tolist(), 0)
        counts = registry.population("grid")
        out.update((code, int(row.sum())) for code, row in zip(counts.codes, counts.counts) if code is not None)
        return out


@dataclass(frozen=True)
class GroupRentingWarning:
    """A unit the group-renting rule flags (群租), with what an alert needs: where it is (its building's
    position and current chain) and why (``residents`` above the rule's number, or ``area`` per person
    below the rule's)."""

    unit_code: str
    building_code: str
    #: Current grid, community, street, district of the building.
    chain: tuple[str | None, str | None, str | None, str | None]
    lng: float
    lat: float
    residents: int
    area_m2: float | None
    reason: str


def group_renting_warnings(service: HouseService) -> list[GroupRentingWarning]:
    """Every group-renting unit of the registry as a warning (no person in it).

    The hook for the alerts wing: its detection runs take extra finders (``AlertHost(...,
    finders=[...])``, issue 13's alert host); a finder that maps each warning to a ``Finding`` of the
    unit's grid (chain, the building's position, observed = residents, expected = the rule's limit)
    raises these as alerts, deduplicated across runs by the alert store. Listed per grid by
    HouseService.GroupRenting either way."""
    registry = service.registry
    out = []
    for row in registry.group_renting():
        building = registry.building(row["building_code"])
        out.append(GroupRentingWarning(row["unit_code"], building.code, building.chain, building.lng, building.lat,
                                       row["residents"], row["area_m2"], row["reason"]))
    return out
