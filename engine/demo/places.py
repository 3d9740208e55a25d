"""The 11 streets (街道) of Longgang with their real names and rough real positions.

Street codes are ``440307`` + the 3-digit position of the street in :data:`STREETS` (001 平湖 …
011 宝龙). This order runs roughly west to east and is the demo's own numbering, not the official
statistical code list. ``anchor`` is a point near the street's real centre; ``area_km2`` a rough
target area (they add up to the district's 388.5 km²). The generator grows each street from its
anchor over the grid adjacency graph and tunes the growth towards the target areas.

``community_names`` are plausible community (社区) names modelled on real ones in or near each
street; they are not an authoritative list. The generator uses the first *n* names of each street,
where *n* is the number of communities it gives that street.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Street:
    """A street: its name (without the 街道 suffix), anchor point, target area, community names."""

    name: str
    anchor_lng: float
    anchor_lat: float
    area_km2: float
    community_names: tuple[str, ...]

    @property
    def full_name(self) -> str:
        return f"{self.name}街道"


STREETS = (
    Street("平湖", 114.118, 22.690, 42.0, (
        "平湖", "山厦", "辅城坳", "新木", "上木古", "良安田", "力昌", "凤凰",
        "禾花", "鹅公岭", "白坭坑", "新南", "华南", "平安", "木古", "双拥",
    )),
    Street("坂田", 114.066, 22.640, 28.5, (
        "坂田", "岗头", "马安堂", "杨美", "五和", "象角塘", "南坑", "大发埔",
        "雪象", "新雪", "万科城", "扬马", "第五园", "四季花城", "禾坪", "上雪",
    )),
    Street("布吉", 114.125, 22.603, 15.0, (
        "布吉", "罗岗", "长龙", "大芬", "木棉湾", "南三", "西环", "龙珠",
        "景芬", "德兴", "可园", "文景", "金排", "布吉圩", "一村", "中兴",
    )),
    Street("南湾", 114.165, 22.625, 27.0, (
        "南岭村", "沙湾", "丹竹头", "南龙", "下李朗", "吉厦", "宝岭", "樟树布",
        "沙平", "厦村", "康乐", "上李朗", "南湾", "沙塘布", "丹平", "南岭",
    )),
    Street("吉华", 114.108, 22.636, 20.0, (
        "甘坑", "水径", "丽湖", "三联", "上水径", "中海怡翠", "光华", "翠湖",
        "吉华", "吉华新村", "布龙", "信义", "华城", "怡翠", "金园", "湖贝",
    )),
    Street("横岗", 114.215, 22.632, 36.0, (
        "横岗", "六约", "四联", "华侨新村", "振兴", "六约北", "松柏", "红棉",
        "银荷", "茂盛", "横坪", "富康", "大福", "志健", "塘坑", "力嘉",
    )),
    Street("园山", 114.195, 22.680, 48.0, (
        "保安", "大康", "西坑", "安良", "荷坳", "园山", "简龙", "沙荷",
        "上中", "坳背", "大坑", "新围", "山子下", "樟树", "银湖", "清林",
    )),
    Street("龙城", 114.228, 22.722, 36.0, (
        "龙西", "五联", "愉园", "回龙埔", "尚景", "盛平", "龙腾", "吉祥",
        "紫薇", "黄阁坑", "中心城", "爱联", "嶂背", "新联", "龙红格", "大运",
    )),
    Street("龙岗", 114.262, 22.770, 40.0, (
        "龙岗", "南联", "新生", "平南", "龙岗墟", "瓦窑坪", "红花岭", "大围",
        "圳埔", "赤石岗", "麻岭", "格坑", "田段心", "老围", "鹤湖", "南联北",
    )),
    Street("坪地", 114.325, 22.765, 46.0, (
        "坪地", "坪西", "六联", "年丰", "坪东", "中心", "高桥", "四方埔",
        "怡心", "香元", "丁山", "黄沙", "岳湖", "西湖塘", "坪环", "富地岗",
    )),
    Street("宝龙", 114.300, 22.705, 50.0, (
        "宝龙", "同乐", "南约", "龙东", "龙新", "同心", "岗贝", "大埔",
        "吓坑", "沙背坜", "新布", "田祖上", "炳坑", "浪背", "宝南", "宝东",
    )),
)

#: Number of communities (社区) the generator creates across the district.
N_COMMUNITIES = 110
#: Bounds on the number of communities of one street.
MIN_COMMUNITIES_PER_STREET = 6
MAX_COMMUNITIES_PER_STREET = 16


def street_code(district_code: str, street_index: int) -> str:
    """The 9-digit street code of the street at 0-based ``street_index`` in :data:`STREETS`."""
    return f"{district_code}{street_index + 1:03d}"
