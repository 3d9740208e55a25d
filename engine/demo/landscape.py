"""Smooth fields that describe the demo district: how urban, how industrial, how green a place is.

Each field is a capped sum of Gaussian bumps placed on real places of Longgang (town centres,
industrial parks, reservoirs and hills). The values are in [0, 1]; the generator derives grid sizes,
grid types, building density and event intensity from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .outline import LocalPlane


@dataclass(frozen=True)
class Bump:
    """A Gaussian bump of height ``weight`` and spread ``sigma_m`` metres centred on a place."""

    place: str
    lng: float
    lat: float
    sigma_m: float
    weight: float


URBAN_CORES = (
    Bump("布吉", 114.124, 22.604, 1600, 1.00),
    Bump("坂田", 114.066, 22.636, 1700, 0.95),
    Bump("吉华 水径", 114.103, 22.626, 1400, 0.85),
    Bump("龙城 中心城", 114.245, 22.720, 2000, 1.00),
    Bump("龙岗墟", 114.272, 22.733, 1400, 0.70),
    Bump("横岗", 114.212, 22.640, 1700, 0.80),
    Bump("南湾 李朗 丹竹头", 114.150, 22.614, 1700, 0.80),
    Bump("平湖", 114.128, 22.686, 1800, 0.75),
    Bump("大运", 114.215, 22.700, 1500, 0.55),
    Bump("坪地", 114.310, 22.766, 1500, 0.50),
    Bump("宝龙", 114.296, 22.713, 1500, 0.45),
    Bump("园山 保安 大康", 114.190, 22.664, 1300, 0.40),
)

INDUSTRIAL_PARKS = (
    Bump("坂田 华为基地", 114.058, 22.652, 1300, 1.00),
    Bump("平湖 物流园", 114.115, 22.700, 1600, 0.90),
    Bump("宝龙 工业城", 114.305, 22.720, 1700, 1.00),
    Bump("坪地 低碳城", 114.315, 22.782, 1600, 0.80),
    Bump("横岗 六约", 114.230, 22.655, 1200, 0.80),
    Bump("南湾 李朗", 114.155, 22.626, 1100, 0.75),
    Bump("龙岗 南联", 114.258, 22.752, 1200, 0.70),
    Bump("园山 荷坳", 114.200, 22.672, 1100, 0.60),
    Bump("吉华 甘坑", 114.090, 22.648, 1100, 0.60),
)

GREEN_AREAS = (
    Bump("清林径水库", 114.205, 22.745, 2600, 1.00),
    Bump("园山风景区", 114.228, 22.662, 1500, 0.90),
    Bump("平湖 北部山地", 114.100, 22.716, 1400, 0.80),
    Bump("坂田 雪象 山地", 114.072, 22.668, 900, 0.60),
    Bump("南湾 梧桐山北麓", 114.188, 22.598, 1100, 0.80),
    Bump("龙岗 北部山地", 114.268, 22.800, 1800, 0.90),
    Bump("坪地 北部山地", 114.335, 22.800, 1400, 0.90),
    Bump("宝龙 东部山地", 114.330, 22.735, 1200, 0.80),
    Bump("银湖山", 114.085, 22.600, 900, 0.60),
    Bump("大运 神仙岭", 114.200, 22.710, 900, 0.60),
)


_RURAL_GRID_DENSITY = 0.06
MAX_GRID_DENSITY = _RURAL_GRID_DENSITY + 1.0


@dataclass(frozen=True)
class Landscape:
    """Evaluates the urban / industrial / green fields at lon/lat points."""

    plane: LocalPlane

    def _field(self, bumps: tuple[Bump, ...], lng: np.ndarray, lat: np.ndarray) -> np.ndarray:
        x, y = self.plane.to_xy(lng, lat)
        total = np.zeros(np.shape(x))
        for bump in bumps:
            bx, by = self.plane.to_xy(bump.lng, bump.lat)
            total += bump.weight * np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2.0 * bump.sigma_m**2))
        return np.minimum(total, 1.0)

    def urban(self, lng: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """How built-up a place is, 0 (countryside) … 1 (town centre); reduced in green areas."""
        return self._field(URBAN_CORES, lng, lat) * (1.0 - 0.8 * self.green(lng, lat))

    def industrial(self, lng: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """How much a place is an industrial park, 0 … 1."""
        return self._field(INDUSTRIAL_PARKS, lng, lat)

    def green(self, lng: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """How much a place is hills, forest or reservoir, 0 … 1."""
        return self._field(GREEN_AREAS, lng, lat)

    def grid_density(self, lng: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Relative number of base grids per km²: high in town centres, low in the hills (at most
        :data:`MAX_GRID_DENSITY`)."""
        return _RURAL_GRID_DENSITY + self.urban(lng, lat) ** 1.2
