"""Group-renting (群租) warnings of the house registry raised as alerts.

:func:`group_renting_finder` is a finder of :class:`~citygrid.engine.alerts.host.AlertHost` (its
``finders``): each detection run asks the registry which units its group-renting rule flags
(:func:`citygrid.engine.houses.host.group_renting_warnings`: more residents than the configured
number, or less living area per person) and gives one finding per grid that has any: kind
``detector``, method :data:`METHOD`, category :data:`CATEGORY` (09 治安问题 / 0903 群租房 of the
shipped taxonomy, so the alert can become an event of that category), level ``grid`` with the grid's
chain, the run's last day, observed = the grid's flagged units, expected = 0, placed at the first
flagged unit's building. The store deduplicates it like any finding: while the grid keeps group-rented
units, each run updates its open alert instead of raising another; a dismissed one is not raised again
for the days it covered. The findings carry counts and places, no person.
"""

from __future__ import annotations

from typing import Callable

from citygrid.engine.alerts.host import RunWindow
from citygrid.engine.alerts.store import Finding
from citygrid.engine.houses.host import group_renting_warnings
from citygrid.engine.houses.service import HouseService

#: The method name group-renting alerts carry.
METHOD = "group_renting"
#: 0903 群租房 (class 09 治安问题) of the shipped taxonomy.
CATEGORY = "0903"


def group_renting_finder(houses: HouseService, category: str = CATEGORY) -> Callable[[RunWindow], list[Finding]]:
    """A finder raising one alert per grid with group-rented units (see the module docstring)."""

    def find(window: RunWindow) -> list[Finding]:
        by_grid: dict[str, list] = {}
        for warning in group_renting_warnings(houses):
            if warning.chain[0] is not None:  # a building outside every grid has no one to alert
                by_grid.setdefault(warning.chain[0], []).append(warning)
        return [Finding("detector", METHOD, category, "grid", grid, tuple(units[0].chain), window.last_day,
                        window.last_day, float(len(units)), 0.0, float(len(units)), grids=(grid,),
                        lng=units[0].lng, lat=units[0].lat)
                for grid, units in sorted(by_grid.items())]

    return find
