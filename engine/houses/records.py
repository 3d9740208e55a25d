"""What the registry returns: buildings, units, residents and their residence records, businesses,
re-grid reports. Plain frozen dataclasses, so a servicer maps them field by field to messages."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Building:
    code: str
    kind: str
    floors: int
    address: str
    lng: float
    lat: float
    #: The grid that issued the code (the code's first 15 digits); never changes.
    issuing_grid: str
    #: The grid, community, street and district the building stands in on the registry's layer version.
    grid_code: str | None
    community_code: str | None
    street_code: str | None
    district_code: str | None
    demolished_on: str | None
    n_units: int = 0
    residents: int = 0

    @property
    def chain(self) -> tuple[str | None, ...]:
        """The parent chain jurisdiction is checked on (current areas, smallest first)."""
        return (self.grid_code, self.community_code, self.street_code, self.district_code)


@dataclass(frozen=True)
class Unit:
    code: str
    building_code: str
    kind: str
    entrance: int | None
    floor: int
    number: str
    area_m2: float | None
    rental: bool
    rental_class: str | None
    control_level: str | None
    address: str
    removed_on: str | None
    #: Residents living there now (a count, not personal data).
    residents: int = 0


@dataclass(frozen=True)
class Residence:
    """One stay of a resident in a unit: from ``moved_in`` (入住登记) to ``moved_out`` (迁出; None
    while living there). Dates are ISO ``YYYY-MM-DD`` (local, Asia/Shanghai)."""

    resident_id: str
    unit_code: str
    moved_in: str
    moved_out: str | None
    recorded_by: str


@dataclass(frozen=True)
class Resident:
    """A resident as a reader with the right to see people sees them (personal data: read only
    through :class:`~citygrid.engine.houses.service.HouseService`, which audits the read)."""

    resident_id: str
    name: str
    gender: str | None
    birth_year: int
    registered: bool
    unit_code: str | None
    building_code: str | None
    grid_code: str | None
    moved_in: str | None


@dataclass(frozen=True)
class Business:
    business_id: str
    name: str
    industry: str | None
    building_code: str
    unit_code: str | None


@dataclass(frozen=True)
class Moved:
    """A building whose current grid changed in a re-grid."""

    building_code: str
    previous_grid: str | None
    grid_code: str | None


@dataclass(frozen=True)
class RegridReport:
    """What a re-grid on a new layer version changed: the buildings that moved grid (codes unchanged)
    and the buildings that no grid of the new version holds (their current grid becomes None)."""

    version_id: str
    previous_version_id: str | None
    n_buildings: int
    moved: tuple[Moved, ...]
    outside: tuple[str, ...]
