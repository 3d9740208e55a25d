"""Chinese address normalisation, parsing and search (``citygrid.engine.houses.address``), on
hand-written variants of real-form addresses and on the demo district's."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from citygrid.engine.errors import InvalidInput
from citygrid.engine.houses.address import AddressIndex, AddressParts, normalise, parse

FULL = "深圳市龙岗区布吉街道长龙社区长龙路128号翠景花园5栋2单元502室"


@pytest.mark.parametrize("variant", [
    FULL,
    "广东省深圳市龙岗区布吉街道长龙社区长龙路128号翠景花园5栋2单元502室",
    "布吉街道长龙社区长龙路128号翠景花园5栋2单元502室",          # no city or district
    "深圳市 龙岗区 布吉街道 长龙社区 长龙路128号 翠景花园 5栋 2单元 502室",  # blanks
    "深圳市龙岗区布吉街道长龙社区长龙路１２８号翠景花园５栋２单元５０２室",  # full-width digits
    "深圳市龙岗区布吉街道长龙社区长龙路128号翠景花园5号楼2单元502房",     # 号楼, 房
    "深圳市龙岗区布吉街道长龙社区长龙路128號翠景花園5棟2單元502室",       # traditional characters
    "深圳市龙岗区布吉街道长龙社区长龙路一百二十八号翠景花园五栋二单元五〇二室",  # Chinese numerals
    "深圳市龙岗区布吉街道长龙社区长龙路128号翠景花园第5幢2单元502室",     # 第…幢
    "深圳市龙岗区，布吉街道、长龙社区（长龙路128号）翠景花园5栋-2单元-502室。",  # punctuation
    "深圳市龙岗区布吉街道长龙社区长龙路128号翠景花园5-2-502",            # hyphen shorthand
])
def test_variants_normalise_to_one_form(variant):
    assert normalise(variant) == "布吉街道长龙社区长龙路128号翠景花园5栋2单元502室"


@pytest.mark.parametrize("text, expected", [
    ("龙岗大道（布吉段）1092号宏达大厦A座1203", "龙岗大道布吉段1092号宏达大厦A栋1203"),
    ("龙岗大道(布吉段)1092号宏达大厦ａ座1203号房", "龙岗大道布吉段1092号宏达大厦A栋1203室"),
    ("坂田街道五和大道8号", "坂田街道五和大道8号"),        # 五 in a name stays
    ("布吉街道一村社区三联路6号", "布吉街道一村社区三联路6号"),  # so does 一 and 三
    ("长龙新村三巷十二号502房", "长龙新村3巷12号502室"),
    ("长龙新村3巷12号一楼101铺", "长龙新村3巷12号1楼101室"),
    ("翠景花园5-502", "翠景花园5栋502室"),
    ("深圳龙岗区横岗街道四联社区力嘉路20号", "横岗街道四联社区力嘉路20号"),
])
def test_normalise_cases(text, expected):
    assert normalise(text) == expected


@pytest.mark.parametrize("text, parts", [
    (FULL, AddressParts("布吉街道", "长龙社区", "长龙路", "128", "翠景花园", "5", "2", None, "502")),
    ("长龙新村3巷12号502房", AddressParts(None, None, "长龙新村3巷", "12", None, None, None, None, "502")),
    ("龙岗大道（布吉段）1092号宏达大厦A座1203",
     AddressParts(None, None, "龙岗大道布吉段", "1092", "宏达大厦", "A", None, None, "1203")),
    ("长龙路128号", AddressParts(road="长龙路", number="128")),
    ("翠景花园5栋0502", AddressParts(estate="翠景花园", building="5", room="502")),
    ("华强大厦12楼1203", AddressParts(estate="华强大厦", floor="12", room="1203")),
])
def test_parse(text, parts):
    assert parse(text) == parts


HAND = [
    "深圳市龙岗区布吉街道长龙社区长龙路128号翠景花园5栋",
    "深圳市龙岗区布吉街道长龙社区长龙路128号翠景花园6栋",
    "深圳市龙岗区布吉街道长龙社区长龙路130号锦绣苑1栋",
    "深圳市龙岗区布吉街道长龙社区长龙路182号翠景花园5栋",
    "深圳市龙岗区布吉街道大芬社区大芬东路12号翠景花园5栋",
    "深圳市龙岗区布吉街道长龙社区长龙新村3巷12号",
    "深圳市龙岗区布吉街道长龙社区长龙新村3巷21号",
    "深圳市龙岗区布吉街道长龙社区龙岗大道（布吉段）1092号宏达大厦A座",
    "深圳市龙岗区布吉街道长龙社区龙岗大道（布吉段）1092号宏达大厦B座",
    "深圳市龙岗区横岗街道四联社区力嘉路20号力嘉工业园3栋",
]


@pytest.fixture(scope="module")
def hand_index():
    # units: building 0 has entrances 1-2 with rooms 501, 502; building 5 has room 502 (no entrance)
    unit_building = [0, 0, 0, 0, 5]
    unit_entrance = [1, 1, 2, 2, 0]
    unit_number = [501, 502, 501, 502, 502]
    unit_address = [HAND[0] + "1单元501室", HAND[0] + "1单元502室", HAND[0] + "2单元501室", HAND[0] + "2单元502室",
                    HAND[5] + "502房"]
    return AddressIndex(HAND, unit_building=unit_building, unit_entrance=unit_entrance, unit_number=unit_number,
                        unit_address=unit_address)


@pytest.mark.parametrize("query, building, unit", [
    ("长龙路128号翠景花园5栋", 0, -1),
    ("长龙路128号翠景花园六栋", 1, -1),
    ("龙岗布吉长龙路１２８号翠景花园5号楼", 0, -1),       # street without 街道, full width, 号楼
    ("长龙路182号翠景花园5栋", 3, -1),                     # the same estate name at another number
    ("大芬东路12号翠景花园5栋", 4, -1),
    ("长龙新村三巷12号", 5, -1),
    ("长龙新村3巷21号", 6, -1),
    ("龙岗大道布吉段1092号宏达大厦B座", 8, -1),
    ("宏达大厦a座", 7, -1),
    ("力嘉工业园3栋", 9, -1),
    ("长龙路128号翠景花园5栋2单元502室", 0, 3),
    ("长龙路128号翠景花园5-2-501", 0, 2),
    ("长龙新村3巷12号502房", 5, 4),
])
def test_search_ranks_the_meant_address_first(hand_index, query, building, unit):
    best = hand_index.search(query, limit=3)[0]
    assert (best.building_row, best.unit_row) == (building, unit)
    assert best.address == (HAND[building] if unit < 0 else hand_index._unit_address[unit].as_py())


def test_a_room_without_entrance_returns_every_entrance_and_results_are_ordered(hand_index):
    matches = hand_index.search("长龙路128号翠景花园5栋502室", limit=5)
    assert [(m.building_row, m.unit_row) for m in matches[:2]] == [(0, 1), (0, 3)]
    scores = [m.score for m in matches]
    assert scores == sorted(scores, reverse=True)
    assert hand_index.search("完全无关的文字") == []


def test_bad_queries_are_refused(hand_index):
    for bad in ("", "   ", "长" * 201):
        with pytest.raises(InvalidInput):
            hand_index.search(bad)
    with pytest.raises(InvalidInput, match="limit"):
        hand_index.search("长龙路", limit=0)
    with pytest.raises(InvalidInput, match="at least one"):
        AddressIndex([])


FULL_WIDTH = str.maketrans("0123456789ABCDEFGHJK", "０１２３４５６７８９ＡＢＣＤＥＦＧＨＪＫ")


def _variant(address: str, k: int) -> str:
    """Ways people write an address (hand-written rules, cycled by k)."""
    if k % 2:
        address = address.removeprefix("深圳市龙岗区")
    if k % 3 == 0:
        address = address.translate(FULL_WIDTH)
    if k % 4 == 1:
        address = address.replace("栋", "号楼").replace("座", "栋")
    if k % 5 == 2:
        address = address.replace("室", "").replace("房", "").replace("铺", "")
    if k % 7 == 3:
        address = " ".join([address[:6], address[6:12], address[12:]])
    return address


def test_demo_unit_addresses_are_found_from_their_variants(demo_dir, rng):
    buildings = pq.read_table(demo_dir / "buildings.parquet", columns=["building_code", "address"])
    units = pq.read_table(demo_dir / "units.parquet", columns=["building_code", "entrance", "number", "address"])
    codes = buildings.column("building_code").to_numpy(zero_copy_only=False)
    index = AddressIndex(buildings.column("address").to_pylist(),
                         unit_building=np.searchsorted(codes, units.column("building_code").to_numpy(
                             zero_copy_only=False)),
                         unit_entrance=units.column("entrance").fill_null(0).to_numpy(),
                         unit_number=np.asarray(units.column("number").to_pylist(), dtype=np.int64),
                         unit_address=units.column("address"))
    picked = rng.choice(len(units), 200, replace=False)
    for k, (row, address) in enumerate(zip(picked, units.column("address").take(picked).to_pylist())):
        best = index.search(_variant(address, k), limit=3)[0]
        assert best.unit_row == row and best.address == address, (_variant(address, k), best)
    for k, row in enumerate(rng.choice(len(codes), 100, replace=False)):
        address = buildings.column("address")[int(row)].as_py()
        best = index.search(_variant(address, k))[0]
        assert (best.building_row, best.unit_row) == (row, -1), (_variant(address, k), best)
