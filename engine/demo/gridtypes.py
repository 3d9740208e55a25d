"""The 8 grid types (网格类型) and how the demo assigns them.

Dedicated grids (学校, 医院, 市场) are a small minority picked among the small grids of built-up
areas; park / hill-forest grids among the large green ones; industrial grids in the industrial
parks; urban-village and mixed grids in built-up areas; the rest are urban-community grids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GridType:
    """A grid type: string code, Chinese name, English gloss, and its share of the demo's grids."""

    code: str
    name: str
    gloss: str
    share: float


GRID_TYPES = (
    GridType("01", "城市社区网格", "urban community", 0.0),  # the rest
    GridType("02", "城中村网格", "urban village", 0.17),
    GridType("03", "工业园区网格", "industrial park", 0.14),
    GridType("04", "混合网格", "mixed", 0.13),
    GridType("05", "学校专属网格", "school", 0.04),
    GridType("06", "医院专属网格", "hospital", 0.008),
    GridType("07", "市场专属网格", "market", 0.016),
    GridType("08", "公园/山林专属网格", "park / hill forest", 0.06),
)
TYPE_BY_CODE = {t.code: t for t in GRID_TYPES}

#: Order in which the types pick their grids (``01`` takes what is left).
_PICK_ORDER = ("08", "06", "05", "07", "03", "02", "04")


def assign_grid_types(
    area_m2: np.ndarray, urban: np.ndarray, industrial: np.ndarray, green: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Type code (string) of every grid from its area and the landscape at its label point."""
    n = len(area_m2)
    small = np.median(area_m2) / area_m2
    preference = {
        "08": (green + 0.05) ** 2 * area_m2 * (1.0 - urban) ** 2,
        "06": urban * small**1.5,
        "05": (urban + 0.1) * small**1.5,
        "07": urban * small**1.5,
        "03": (industrial + 0.02) ** 3 * (1.0 - green),
        "02": (urban + 0.05) * (1.0 - 0.5 * industrial) * (1.0 - green),
        "04": (urban + 0.05) * (industrial + 0.2),
    }
    types = np.full(n, "01", dtype=object)
    free = np.ones(n, dtype=bool)
    for code in _PICK_ORDER:
        k = int(round(TYPE_BY_CODE[code].share * n))
        candidates = np.flatnonzero(free)
        weight = preference[code][candidates] + 1e-12
        chosen = rng.choice(candidates, size=k, replace=False, p=weight / weight.sum())
        types[chosen] = code
        free[chosen] = False
    return types
