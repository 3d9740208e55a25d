"""Made-up Chinese person and business names, drawn in bulk, and sequential string ids."""

from __future__ import annotations

import numpy as np

# Common surnames with rough relative frequencies (Guangdong / migrant mix).
_SURNAMES = np.array(list("陈李黄张刘林王吴杨周郑梁谢罗何赖邓曾许钟叶彭朱冯廖蔡"))
_SURNAME_WEIGHTS = np.array([
    9, 8, 7, 7, 6, 5, 5, 4, 4, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1.5, 1.5, 1.5,
], dtype=float)
_GIVEN = np.array(list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建文辉玲晓红志海燕国俊鹏飞雪婷宇浩欣怡子轩梓涵嘉豪"))

_SHOP_WORDS = np.array([
    "鸿发", "佳美", "兴隆", "金源", "福满", "好又多", "家家乐", "顺心", "新时代", "百佳", "盛达", "客家",
    "湘味", "川香", "粤港", "天天", "乐购", "康宁", "华强", "永利", "宏图", "恒信", "龙腾", "旺角",
])


def person_names(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` names: a surname and one or two given-name characters."""
    surname = rng.choice(_SURNAMES, size=n, p=_SURNAME_WEIGHTS / _SURNAME_WEIGHTS.sum())
    first = rng.choice(_GIVEN, size=n)
    second = np.where(rng.random(n) < 0.7, rng.choice(_GIVEN, size=n), "")
    return np.char.add(np.char.add(surname, first), second).astype(object)


def business_names(suffixes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One name per entry of ``suffixes`` (the kind of shop, e.g. 餐厅): a trade word and the suffix."""
    words = rng.choice(_SHOP_WORDS, size=len(suffixes))
    return np.char.add(words, np.asarray(suffixes, dtype=str)).astype(object)


def sequential_ids(prefix: str, n: int) -> np.ndarray:
    """Sequential string ids: ``prefix`` + a zero-padded number from 1 (at least 7 digits)."""
    width = max(7, len(str(n)))
    return np.char.add(prefix, np.char.zfill(np.arange(1, n + 1).astype(str), width)).astype(object)
