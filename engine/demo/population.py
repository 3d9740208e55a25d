"""Buildings, residents and businesses of the demo district.

Buildings are placed uniformly inside their grid, more of them in built-up grids and of kinds that
fit the grid type; residents live in buildings in proportion to their dwellings (about 90 % are
non-registered 流动人口); businesses sit in buildings in proportion to their commercial weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .names import business_names, person_names, sequential_ids
from .sampling import points_in_polygons

#: The year the demo's data describes (ages, opening years, events).
DEMO_YEAR = 2025
#: The share of residents who are registered (户籍人口); the rest are 流动人口.
REGISTERED_SHARE = 0.10


@dataclass(frozen=True)
class BuildingKind:
    """A building kind: floor range, dwellings per floor, people per dwelling, share of registered
    residents (relative), and relative attraction for businesses."""

    name: str
    floors: tuple[int, int]
    dwellings_per_floor: int
    people_per_dwelling: float
    registered: float
    commerce: float


BUILDING_KINDS = (
    BuildingKind("住宅", (6, 33), 4, 2.8, 1.6, 0.1),
    BuildingKind("商住楼", (6, 25), 3, 2.5, 1.0, 2.0),
    BuildingKind("城中村自建房", (4, 9), 3, 2.6, 0.5, 0.6),
    BuildingKind("员工宿舍", (5, 8), 10, 3.5, 0.2, 0.05),
    BuildingKind("厂房", (2, 6), 0, 0.0, 1.0, 1.5),
    BuildingKind("办公楼", (8, 30), 0, 0.0, 1.0, 3.0),
    BuildingKind("商业", (2, 6), 0, 0.0, 1.0, 5.0),
    BuildingKind("学校", (3, 6), 0, 0.0, 1.0, 0.05),
    BuildingKind("医院", (4, 15), 0, 0.0, 1.0, 0.2),
    BuildingKind("公共设施", (1, 3), 0, 0.0, 1.0, 0.05),
)
_KIND_INDEX = {k.name: i for i, k in enumerate(BUILDING_KINDS)}

#: Per grid type: relative building density and the mix of building kinds.
GRID_BUILDINGS = {
    "01": (1.0, {"住宅": 0.6, "商住楼": 0.15, "城中村自建房": 0.1, "办公楼": 0.05, "商业": 0.05, "公共设施": 0.05}),
    "02": (2.5, {"城中村自建房": 0.82, "商住楼": 0.08, "住宅": 0.05, "商业": 0.03, "公共设施": 0.02}),
    "03": (0.8, {"厂房": 0.55, "员工宿舍": 0.25, "办公楼": 0.1, "城中村自建房": 0.07, "公共设施": 0.03}),
    "04": (1.3, {"住宅": 0.3, "城中村自建房": 0.25, "商住楼": 0.15, "厂房": 0.1, "商业": 0.1, "办公楼": 0.05,
                 "公共设施": 0.05}),
    "05": (0.8, {"学校": 0.6, "住宅": 0.25, "公共设施": 0.15}),
    "06": (0.8, {"医院": 0.6, "住宅": 0.2, "商住楼": 0.1, "公共设施": 0.1}),
    "07": (1.5, {"商业": 0.6, "商住楼": 0.3, "城中村自建房": 0.1}),
    "08": (0.1, {"公共设施": 0.5, "城中村自建房": 0.3, "住宅": 0.2}),
}

#: Industries with the shop-name suffixes the demo uses, and the industry mix per building kind.
INDUSTRIES = {
    "餐饮": ("餐厅", "粉店", "烧烤店", "奶茶店"),
    "零售": ("便利店", "超市", "水果店", "五金店"),
    "生活服务": ("理发店", "洗衣店", "维修部", "家政服务部"),
    "娱乐": ("网吧", "KTV", "棋牌室"),
    "教育培训": ("培训中心", "托管中心"),
    "医疗": ("诊所", "药店"),
    "批发": ("批发部", "商行"),
    "制造": ("电子厂", "五金制品厂", "塑胶厂", "印刷厂"),
    "仓储物流": ("物流公司", "仓储中心"),
    "科技服务": ("科技有限公司", "信息技术有限公司"),
    "商务服务": ("商务咨询有限公司", "人力资源有限公司"),
}
_STREET_SHOPS = {"餐饮": 0.3, "零售": 0.28, "生活服务": 0.2, "娱乐": 0.05, "教育培训": 0.05, "医疗": 0.05, "批发": 0.07}
_INDUSTRY_MIX = {
    "厂房": {"制造": 0.8, "仓储物流": 0.2},
    "办公楼": {"科技服务": 0.5, "商务服务": 0.4, "教育培训": 0.1},
    "住宅": {"零售": 0.4, "生活服务": 0.4, "餐饮": 0.2},
}
_COMPANY_INDUSTRIES = ("制造", "仓储物流", "科技服务", "商务服务")

_PROVINCES = ("广东", "湖南", "广西", "江西", "湖北", "四川", "河南", "福建", "重庆", "贵州", "安徽", "其他")
_PROVINCE_WEIGHTS = np.array([22, 16, 12, 9, 8, 7, 7, 4, 4, 4, 3, 4], dtype=float)


@dataclass(frozen=True)
class Buildings:
    """Buildings sorted by code: grid row, code, kind, floors, dwellings, position."""

    grid: np.ndarray
    code: np.ndarray
    kind: np.ndarray
    floors: np.ndarray
    dwellings: np.ndarray
    built_year: np.ndarray
    lng: np.ndarray
    lat: np.ndarray

    def __len__(self) -> int:
        return len(self.code)


@dataclass(frozen=True)
class Residents:
    """Residents sorted by id: building row, name, gender, birth year, population type, origin."""

    resident_id: np.ndarray
    building: np.ndarray
    name: np.ndarray
    gender: np.ndarray
    birth_year: np.ndarray
    population_type: np.ndarray
    origin_province: np.ndarray


@dataclass(frozen=True)
class Businesses:
    """Businesses sorted by id: building row, name, industry, form, employees, opening year."""

    business_id: np.ndarray
    building: np.ndarray
    name: np.ndarray
    industry: np.ndarray
    business_form: np.ndarray
    employees: np.ndarray
    opened_year: np.ndarray


def _categorical(options: dict[str, float], n: int, rng: np.random.Generator) -> np.ndarray:
    names = np.array(list(options), dtype=object)
    weights = np.array(list(options.values()), dtype=float)
    return rng.choice(names, size=n, p=weights / weights.sum())


def place_buildings(
    grids: np.ndarray, grid_codes: np.ndarray, grid_types: np.ndarray, area_m2: np.ndarray,
    urban: np.ndarray, n: int, rng: np.random.Generator,
) -> Buildings:
    """``n`` buildings (at least one per grid when ``n`` allows), coded grid code + 4 digits.

    Buildings of a grid are numbered from north to south (by latitude).
    """
    density = np.array([GRID_BUILDINGS[t][0] for t in grid_types])
    weight = area_m2 * (0.03 + urban) * density
    base = 1 if n >= len(grids) else 0
    counts = base + rng.multinomial(n - base * len(grids), weight / weight.sum())
    if counts.max() > 9999:
        raise ValueError(f"{n} buildings put more than 9,999 in one grid: building codes have 4 digits")
    grid, lng, lat = points_in_polygons(grids, counts, rng)
    order = np.lexsort((-lat, grid))
    grid, lng, lat = grid[order], lng[order], lat[order]
    seq = np.arange(len(grid)) - np.searchsorted(grid, grid) + 1

    kind = np.empty(len(grid), dtype=object)
    for grid_type, (_, mix) in GRID_BUILDINGS.items():
        rows = np.flatnonzero(grid_types[grid] == grid_type)
        kind[rows] = _categorical(mix, rows.size, rng)
    kind_index = np.array([_KIND_INDEX[k] for k in kind], dtype=int)
    low = np.array([k.floors[0] for k in BUILDING_KINDS])[kind_index]
    high = np.array([k.floors[1] for k in BUILDING_KINDS])[kind_index]
    floors = np.round(low + (high - low) * rng.beta(1.3, 2.5, size=len(grid))).astype(np.int32)
    per_floor = np.array([k.dwellings_per_floor for k in BUILDING_KINDS])[kind_index]
    dwellings = (floors * per_floor * rng.uniform(0.7, 1.3, size=len(grid))).round().astype(np.int32)
    built_year = (DEMO_YEAR - np.minimum(rng.gamma(2.0, 8.0, size=len(grid)), 45)).astype(np.int32)
    code = np.char.add(grid_codes[grid].astype(str), np.char.zfill(seq.astype(str), 4)).astype(object)
    return Buildings(grid, code, kind, floors, dwellings, built_year, lng, lat)


def settle_residents(buildings: Buildings, n: int, rng: np.random.Generator) -> Residents:
    """``n`` residents living in buildings in proportion to their dwellings' capacity."""
    kind_index = np.array([_KIND_INDEX[k] for k in buildings.kind], dtype=int)
    capacity = buildings.dwellings * np.array([k.people_per_dwelling for k in BUILDING_KINDS])[kind_index]
    if capacity.sum() <= 0:
        raise ValueError("no building has dwellings for residents")
    building = np.sort(rng.choice(len(buildings), size=n, p=capacity / capacity.sum()))
    registered_bias = np.array([k.registered for k in BUILDING_KINDS])[kind_index][building]
    registered = rng.random(n) < REGISTERED_SHARE * registered_bias / registered_bias.mean()

    age = np.where(
        registered,
        rng.uniform(0, 88, size=n),
        np.select(
            [rng.random(n) < 0.75, rng.random(n) < 0.6],
            [rng.normal(32, 8, size=n), rng.uniform(0, 16, size=n)],
            rng.uniform(50, 80, size=n),
        ),
    )
    birth_year = (DEMO_YEAR - np.clip(age, 0, 95)).astype(np.int32)
    gender = np.where(rng.random(n) < np.where(registered, 0.5, 0.56), "男", "女").astype(object)
    origin = rng.choice(np.array(_PROVINCES, dtype=object), size=n, p=_PROVINCE_WEIGHTS / _PROVINCE_WEIGHTS.sum())
    origin[registered] = "广东"
    population_type = np.where(registered, "户籍人口", "流动人口").astype(object)
    resident_id = sequential_ids("R", n)
    return Residents(resident_id, building, person_names(n, rng), gender, birth_year, population_type, origin)


def open_businesses(buildings: Buildings, n: int, rng: np.random.Generator) -> Businesses:
    """``n`` businesses in buildings in proportion to the buildings' commercial weight."""
    kind_index = np.array([_KIND_INDEX[k] for k in buildings.kind], dtype=int)
    attraction = np.array([k.commerce for k in BUILDING_KINDS])[kind_index] * np.sqrt(buildings.floors)
    building = np.sort(rng.choice(len(buildings), size=n, p=attraction / attraction.sum()))
    kind = buildings.kind[building]
    industry = np.empty(n, dtype=object)
    for kind_name in np.unique(kind):
        rows = np.flatnonzero(kind == kind_name)
        industry[rows] = _categorical(_INDUSTRY_MIX.get(kind_name, _STREET_SHOPS), rows.size, rng)
    suffix = np.empty(n, dtype=object)
    for name, options in INDUSTRIES.items():
        rows = np.flatnonzero(industry == name)
        suffix[rows] = rng.choice(np.array(options, dtype=object), size=rows.size)
    company = np.isin(industry, _COMPANY_INDUSTRIES)
    form = np.where(company | (rng.random(n) < 0.15), "企业", "个体工商户").astype(object)
    employees = np.where(
        company, np.ceil(rng.lognormal(3.0, 1.0, size=n)), np.ceil(rng.lognormal(1.0, 0.6, size=n))
    ).astype(np.int32)
    opened_year = (DEMO_YEAR - np.minimum(rng.exponential(4.0, size=n), 25)).astype(np.int32)
    return Businesses(sequential_ids("B", n), building, business_names(suffix, rng), industry, form, employees,
                      opened_year)
