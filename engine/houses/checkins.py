"""Grid workers' check-ins (签到) at buildings: accepted when the terminal is near the building,
flagged otherwise, and flagged when two consecutive check-ins of a worker imply an impossible speed.

Configuration (:class:`CheckInRules`, defaults):

- ``max_distance_m`` = 50: a check-in farther than this from the building (great-circle metres
  from its registered position) is flagged ``far``;
- ``max_speed_kmh`` = 120: a check-in that, with the worker's previous one, implies a faster
  straight-line speed than this (a grid worker walks, rides or drives in town) is flagged ``speed``;
  two check-ins at the same instant more than ``max_distance_m`` apart count as infinitely fast.

A flagged check-in is still recorded (the worker was somewhere); the flags say why it is in doubt.

>>> rules = CheckInRules()
>>> rules.flags(distance_m=30.0, speed_mps=None), rules.flags(distance_m=80.0, speed_mps=40.0)
((), ('far', 'speed'))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from citygrid.engine.errors import InvalidInput

EARTH_RADIUS_M = 6371008.8


@dataclass(frozen=True)
class CheckInRules:
    max_distance_m: float = 50.0
    max_speed_kmh: float = 120.0

    def __post_init__(self):
        for name in ("max_distance_m", "max_speed_kmh"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
                raise InvalidInput(f"{name} must be a positive number, not {value!r}")

    def flags(self, *, distance_m: float, speed_mps: float | None) -> tuple[str, ...]:
        out = []
        if distance_m > self.max_distance_m:
            out.append("far")
        if speed_mps is not None and speed_mps * 3.6 > self.max_speed_kmh:
            out.append("speed")
        return tuple(out)


@dataclass(frozen=True)
class CheckIn:
    worker: str
    building_code: str
    at: str
    lng: float
    lat: float
    distance_m: float
    speed_mps: float | None
    flags: tuple[str, ...]

    @property
    def accepted(self) -> bool:
        return not self.flags


def distance_m(lng1: float, lat1: float, lng2: float, lat2: float) -> float:
    """Great-circle metres between two WGS84 points (haversine on the mean sphere)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def speed_mps(distance: float, seconds: float, rules: CheckInRules) -> float:
    """Straight-line speed between two check-ins; infinite when no time passed but they are apart."""
    if seconds <= 0:
        return math.inf if distance > rules.max_distance_m else 0.0
    return distance / seconds
