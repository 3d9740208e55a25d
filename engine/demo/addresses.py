"""Addresses of the demo's buildings and units, in the form Chinese addresses take.

A building address is ``深圳市龙岗区`` + street (``布吉街道``) + community (``长龙社区``) + road and
door number (``长龙路128号``) + the place it belongs to (an estate, park, tower, campus: ``翠景花园``)
+ the building within the place (``5栋``, or ``A座`` for towers; nothing when the place is one
building). Urban-village houses (城中村自建房) are numbered along the lanes of their village
instead: ``…长龙社区长龙新村3巷12号``. A unit address adds the entrance and room: ``…5栋2单元502室``
(``房`` for village and dormitory rooms, ``铺`` for shops).

- **Places**: the buildings of a grid are grouped by family (flats into estates of up to 12
  buildings, commercial-residential towers into groups of up to 4, factories and dormitories into
  parks, offices and malls into groups of up to 3, schools and hospitals into one campus, public
  facilities one by one, village houses into lanes of up to 8), in code order (north to south).
- **Roads**: each street has its own set of made-up road names, from its communities' names (the
  trunk road 龙岗大道 is named by section, ``龙岗大道（布吉段）``, in the streets it runs through).
  The roads are straight lines across the street, alternately east-west and north-south, at even
  quantiles of its places; a place is on the nearest road. Door numbers run along the road, odd on
  one side (north or east) and even on the other, with an occasional gap.

Every building address is unique, and so is every unit address.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .hierarchy import Hierarchy
from .population import Buildings
from .units import KINDS, Units

PROVINCE_CITY_DISTRICT = "深圳市龙岗区"
#: Streets the trunk road 龙岗大道 runs through (it is named by section there).
TRUNK_STREETS = ("布吉", "南湾", "横岗", "龙城", "龙岗", "坪地")
_ROAD_SUFFIXES = ("路", "路", "街", "东路", "西路", "南路", "北路", "中路")
_WORDS = (
    "翠景", "锦绣", "碧水", "金色", "阳光", "星河", "万科", "华业", "嘉信", "富豪", "丽景", "龙珠", "海航", "宝丽",
    "君悦", "名仕", "怡景", "天安", "正中", "恒大", "中海", "水岸", "东方", "和谐", "繁华", "瑞华", "康达", "信义",
    "紫薇", "春华", "秋实", "百合", "兰亭", "桂园", "松涛", "竹苑", "荔园", "玉龙", "宏达", "永兴", "长城", "佳兆",
    "华侨", "新世纪", "大运", "半岛", "金地", "雅庭", "盛世", "中心", "聚福", "祥和", "福安", "美景", "御景", "清华",
)
#: Families of building kinds: (suffixes of the place name, buildings per place, building label).
_FAMILIES = {
    "住宅": (("花园", "苑", "名苑", "雅苑", "华庭", "豪庭", "新村", "家园"), 12, "栋"),
    "商住楼": (("大厦", "广场", "公寓", "中心"), 4, "座"),
    "产业": (("工业园", "工业区", "科技园"), 16, "栋"),
    "办公楼": (("大厦", "中心", "科技大厦"), 3, "座"),
    "商业": (("商业城", "购物广场", "市场", "商场"), 3, "栋"),
    "学校": (("小学", "中学", "学校", "实验学校"), 0, "栋"),
    "医院": (("社区健康服务中心", "医院", "中医院"), 0, "栋"),
    "公共设施": (("党群服务中心", "垃圾转运站", "公共厕所", "消防站", "文化广场", "变电站", "公园管理处"), 1, "栋"),
    "城中村自建房": (("新村", "老村", "上村", "下村", "东村", "西村", "围", "新围"), 8, ""),
}
_FAMILY_OF = {"住宅": "住宅", "商住楼": "商住楼", "厂房": "产业", "员工宿舍": "产业", "办公楼": "办公楼", "商业": "商业",
              "学校": "学校", "医院": "医院", "公共设施": "公共设施", "城中村自建房": "城中村自建房"}
_LETTERS = np.array(list("ABCDEFGHJK"), dtype=object)
_ROOM_MARKER = {"dwelling": "室", "office": "室", "workshop": "室", "dormitory": "房", "shop": "铺"}


def _village_name(stem: str, community: int, k: int) -> str:
    """The name of the ``k``-th village (from 0) of a community: its name and a village suffix
    (长龙新村, 长龙老村, …), then made-up names (翠景村, …), then numbered parts (长龙新村2区, …)."""
    suffixes = _FAMILIES["城中村自建房"][0]
    if k < len(suffixes):
        return stem + suffixes[k]
    k -= len(suffixes)
    if k < len(_WORDS):
        return _WORDS[(community * 7 + k) % len(_WORDS)] + "村"
    return f"{stem}新村{k - len(_WORDS) + 2}区"


@dataclass(frozen=True)
class BuildingAddresses:
    """Per building: the full address and its parts (``estate`` and ``building_number`` None when absent)."""

    address: np.ndarray
    road: np.ndarray
    door_number: np.ndarray
    estate: np.ndarray
    building_number: np.ndarray
    #: The road names of each street (street row -> names), for the documentation and tests.
    roads: dict[int, tuple[str, ...]]


def street_roads(h: Hierarchy) -> dict[int, tuple[str, ...]]:
    """The made-up road names of every street (see the module docstring); unique over the district."""
    roads: dict[int, tuple[str, ...]] = {}
    seen: set[str] = set()
    for s, street in enumerate(h.street_name):
        stem = street.removesuffix("街道")
        communities = [c.removesuffix("社区") for c in h.community_name[h.community_street == s]]
        names = [f"{stem}大道"]
        if stem in TRUNK_STREETS:
            names.append(f"龙岗大道（{stem}段）")
        for k, community in enumerate(communities[: max(4, len(communities) // 2 + 2)]):
            names.append(f"{community}{_ROAD_SUFFIXES[k % len(_ROAD_SUFFIXES)]}")
        names = [n for n in dict.fromkeys(names) if n not in seen]
        seen.update(names)
        roads[s] = tuple(names)
    return roads


def address_buildings(h: Hierarchy, buildings: Buildings, rng: np.random.Generator) -> BuildingAddresses:
    """The address of every building (see the module docstring)."""
    n = len(buildings)
    community = h.grid_community[buildings.grid]
    street = h.community_street[community]
    family = np.array([_FAMILY_OF[k] for k in buildings.kind], dtype=object)
    y = (buildings.lat - 22.7) * 110_574.0
    x = (buildings.lng - 114.2) * 111_320.0 * np.cos(np.radians(22.7))

    # places: (grid, family, chunk) in code order
    place_of = np.empty(n, dtype=np.int64)
    rank_in_place = np.empty(n, dtype=np.int64)
    places: list[tuple[int, str, int]] = []  # (first building, family, size)
    key = {}
    for name, (_, size, _) in _FAMILIES.items():
        rows = np.flatnonzero(family == name)
        grid = buildings.grid[rows]
        rank = np.arange(rows.size) - np.searchsorted(grid, grid)
        chunk = rank // size if size else np.zeros(rows.size, dtype=np.int64)
        for row, g, c, r in zip(rows.tolist(), grid.tolist(), chunk.tolist(), rank.tolist()):
            place = key.get((g, name, c))
            if place is None:
                place = key[(g, name, c)] = len(places)
                places.append((row, name, 0))
            place_of[row] = place
            rank_in_place[row] = r - c * size if size else r
    place_size = np.bincount(place_of, minlength=len(places))
    place_first = np.array([p[0] for p in places], dtype=np.int64)
    place_family = np.array([p[1] for p in places], dtype=object)
    place_x = np.bincount(place_of, weights=x, minlength=len(places)) / place_size
    place_y = np.bincount(place_of, weights=y, minlength=len(places)) / place_size
    place_street = street[place_first]
    place_community = community[place_first]

    # place names
    word = rng.choice(np.array(_WORDS, dtype=object), size=len(places))
    suffix_pick = rng.integers(0, 1 << 30, size=len(places))
    place_name = np.empty(len(places), dtype=object)
    stems = np.array([c.removesuffix("社区") for c in h.community_name], dtype=object)
    for name, (suffixes, _, _) in _FAMILIES.items():
        rows = np.flatnonzero(place_family == name)
        suffix = np.array(suffixes, dtype=object)[suffix_pick[rows] % len(suffixes)]
        if name in ("学校", "医院", "公共设施"):
            place_name[rows] = stems[place_community[rows]] + suffix
        elif name == "城中村自建房":
            continue  # named below, once their lanes are known
        else:
            place_name[rows] = word[rows] + suffix

    # roads and door numbers (urban-village lanes number their own houses)
    roads = street_roads(h)
    road = np.empty(len(places), dtype=object)
    door = np.zeros(len(places), dtype=np.int64)
    gap = rng.random(len(places)) < 0.25
    on_road = place_family != "城中村自建房"
    for s, names in roads.items():
        rows = np.flatnonzero((place_street == s) & on_road)
        if rows.size == 0:
            continue
        k = len(names)
        east_west = np.arange(k) % 2 == 0
        quantiles = np.empty(k)
        n_ew, n_ns = int(east_west.sum()), int((~east_west).sum())
        quantiles[east_west] = (np.arange(n_ew) + 0.5) / n_ew
        quantiles[~east_west] = (np.arange(n_ns) + 0.5) / max(n_ns, 1)
        line = np.where(east_west, np.quantile(place_y[rows], quantiles), np.quantile(place_x[rows], quantiles))
        offset = np.where(east_west[None, :], place_y[rows, None], place_x[rows, None]) - line[None, :]
        nearest = np.argmin(np.abs(offset), axis=1)
        along = np.where(east_west[nearest], place_x[rows], place_y[rows])
        side = offset[np.arange(rows.size), nearest] >= 0  # north or east: odd numbers
        for r in range(k):
            for odd in (True, False):
                mine = rows[(nearest == r) & (side == odd)]
                mine = mine[np.argsort(along[(nearest == r) & (side == odd)], kind="stable")]
                steps = 1 + gap[mine]
                door[mine] = 2 * np.cumsum(steps) - (1 if odd else 0)
                road[mine] = names[r]
    # village lanes: the k-th village of a community is named by the k-th village suffix, its lanes
    # numbered within it, so no two lanes of a community share a name
    lanes = np.flatnonzero(~on_road)
    lane_number = np.zeros(len(places), dtype=np.int64)
    if lanes.size:
        lane_grid = buildings.grid[place_first[lanes]]
        lane_number[lanes] = np.arange(lanes.size) - np.searchsorted(lane_grid, lane_grid) + 1
        first_lane = lanes[lane_number[lanes] == 1]
        village_community = place_community[first_lane]
        order = np.argsort(village_community, kind="stable")
        nth = np.empty(first_lane.size, dtype=np.int64)
        nth[order] = np.arange(first_lane.size) - np.searchsorted(village_community[order], village_community[order])
        village_names = [_village_name(stems[c], c, k) for c, k in zip(village_community.tolist(), nth.tolist())]
        village_of_grid = dict(zip(buildings.grid[place_first[first_lane]].tolist(), village_names))
        for lane, g in zip(lanes.tolist(), lane_grid.tolist()):
            place_name[lane] = village_of_grid[g]

    street_names, community_names = h.street_name, h.community_name
    address, road_of, door_of, estate, building_number = [], [], [], [], []
    for b in range(n):
        p = place_of[b]
        head = PROVINCE_CITY_DISTRICT + street_names[street[b]] + community_names[community[b]]
        if not on_road[p]:
            lane = f"{place_name[p]}{lane_number[p]}巷"
            number = str(rank_in_place[b] + 1)
            road_of.append(lane)
            door_of.append(number)
            estate.append(None)
            building_number.append(None)
            address.append(f"{head}{lane}{number}号")
            continue
        label = _FAMILIES[place_family[p]][2]
        if place_size[p] == 1:
            mark = None
        elif label == "座":
            mark = _LETTERS[min(rank_in_place[b], len(_LETTERS) - 1)]
        else:
            mark = str(rank_in_place[b] + 1)
        road_of.append(road[p])
        door_of.append(str(door[p]))
        estate.append(place_name[p])
        building_number.append(mark)
        address.append(f"{head}{road[p]}{door[p]}号{place_name[p]}" + (f"{mark}{label}" if mark else ""))
    as_array = [np.array(column, dtype=object) for column in (address, road_of, door_of, estate, building_number)]
    return BuildingAddresses(*as_array, roads)


def address_units(building_address: np.ndarray, buildings: Buildings, units: Units) -> pa.Array:
    """Unit addresses: the building's address, the entrance (``2单元``) and the room (``502室``)."""
    markers = [_ROOM_MARKER[k] for k in KINDS] + ["房"]  # the last: a dwelling of an urban-village house
    village = (buildings.kind == "城中村自建房")[units.building]
    marker = np.where(village & (units.kind == KINDS.index("dwelling")), len(KINDS), units.kind)
    entrance = pa.array(units.entrance)
    entrance_text = pc.if_else(pc.greater(entrance, 0),
                               pc.binary_join_element_wise(pc.cast(entrance, pa.string()), "单元", ""), "")
    return pc.binary_join_element_wise(
        pa.array(building_address, type=pa.string()).take(pa.array(units.building)), entrance_text,
        pc.cast(pa.array(units.number), pa.string()), pa.array(markers).take(pa.array(marker)), "")
