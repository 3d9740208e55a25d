"""Chinese addresses: normalisation, a parse into parts, and a search index over many addresses.

People write one address many ways: ``深圳市龙岗区布吉街道长龙社区长龙路128号翠景花园5栋2单元502室``
is also ``龙岗布吉长龙路１２８号翠景花园5号楼2单元502``, ``长龙路128号 翠景花园五栋二单元502房`` or
``翠景花园5-2-502``. :func:`normalise` maps them to one canonical form:

- Unicode NFKC (full-width ``１２８``, ``Ａ座``, ``（`` become half-width), letters upper-cased, a
  few traditional characters (號, 棟, 單, 區, 東, …) simplified;
- Chinese numerals written before a marker become digits: ``五栋`` -> ``5栋``, ``二单元`` ->
  ``2单元``, ``三巷`` -> ``3巷``, ``一百二十八号`` -> ``128号``, ``一二〇三室`` -> ``1203室``
  (numerals elsewhere are names and stay: 五和大道, 一村社区, 三联);
- building markers ``幢``, ``座``, ``号楼`` -> ``栋`` (``第`` before a number dropped); room markers
  ``房``, ``铺``, ``号房``, ``号铺`` -> ``室``; ``5-2-502`` at the end -> ``5栋2单元502室`` and
  ``5-502`` -> ``5栋502室``; a bare number after ``栋`` or ``单元`` is a room;
- whitespace and punctuation dropped (``龙岗大道（布吉段）`` -> ``龙岗大道布吉段``);
- the leading province, city and district (``广东省``, ``深圳市``, ``龙岗区``, :data:`PREFIXES`) dropped,
  so an address with and one without them are the same.

:func:`parse` cuts a canonical address into :class:`AddressParts` (street, community, road, number,
estate, building, entrance, floor, room). :class:`AddressIndex` answers free text with ranked
buildings and units:

1. **candidates**: an inverted index of character bigrams of the canonical building addresses
   (Arrow-style CSR: sorted bigram keys, posting offsets, building rows), weighted by inverse document
   frequency (bigrams in more than half the addresses weigh nothing); a query reads the postings of
   its rarest bigrams, up to :data:`POSTING_BUDGET` of them (so its cost does not grow with the
   number of addresses), and keeps the :data:`CANDIDATES` buildings with the most weight there; each
   candidate's score is then the share of the query's whole bigram weight its address holds (the
   commoner bigrams looked up in their postings by binary search);
2. **re-ranking** by the parts: each part the query names (road, door number, estate, building)
   adds its weight (:data:`PART_WEIGHTS`) when a candidate has the same (for names: one ends with the
   other), and takes it off when the candidate has another or none;
3. **units**: when the query names a room, the best buildings' units with that room number (and
   entrance, when named) are returned as unit matches, above buildings without one.

Ties keep the lower building (then unit) row. Search costs a few milliseconds over the demo's 60,000
buildings (bench/test_houses.py measures it).

>>> normalise("广东省深圳市龙岗区布吉街道 长龙路１２８号翠景花园五栋二单元502房")
'布吉街道长龙路128号翠景花园5栋2单元502室'
>>> parse("翠景花园5-2-502")
AddressParts(street=None, community=None, road=None, number=None, estate='翠景花园', building='5', entrance='2', floor=None, room='502')
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa

from citygrid.engine.errors import InvalidInput
from citygrid.kernels.postings import score_postings

#: Leading parts dropped from every address (the demo district's province, city and district).
PREFIXES = ("中华人民共和国", "中国", "广东省", "广东", "深圳市", "深圳", "龙岗区")
#: Buildings re-ranked per query.
CANDIDATES = 40
#: Postings read per query to find the candidates (from the rarest bigrams of the query on).
POSTING_BUDGET = 20_000
#: Longest query accepted (characters).
MAX_QUERY = 200
#: Weights of the parts in re-ranking (the bigram share is between 0 and 1).
PART_WEIGHTS = {"road": 0.5, "number": 1.0, "estate": 0.5, "building": 1.0}
#: A bigram in more than this share of the addresses carries no weight and is skipped.
STOP_SHARE = 0.5

_TRADITIONAL = str.maketrans("號棟單區東廣門層樓舖廈園蘭龍華灣鄉", "号栋单区东广门层楼铺厦园兰龙华湾乡")
_NUMERALS = "零〇一二两三四五六七八九十百"
_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_MARKERS = "栋|幢|座|单元|巷|号|层|楼|室|房|铺|期|区"
_NUMERAL_RE = re.compile(rf"第?([{_NUMERALS}]+)(?={_MARKERS})")
_PUNCTUATION_RE = re.compile(r"[^0-9A-Z\u3400-\u9fff-]+")
_HYPHEN3_RE = re.compile(r"(?<![0-9])([0-9A-Z]{1,3})-([0-9]{1,2})-([0-9]{3,5})$")
_HYPHEN2_RE = re.compile(r"(?<![0-9-])([0-9A-Z]{1,3})-([0-9]{3,5})$")
_PARTS_RE = re.compile(
    r"(?:(?P<street>[^0-9]+?街道))?"
    r"(?:(?P<community>[^0-9]+?社区))?"
    r"(?:(?P<road>.*?(?:大道|大街|路|街|巷|道|段))(?P<number>[0-9]+)号)?"
    r"(?P<estate>[^0-9]*?[^0-9A-Z])?"
    r"(?:(?P<building>[0-9]+|[A-Z][0-9]?)栋)?"
    r"(?:(?P<entrance>[0-9]+)单元)?"
    r"(?:(?P<floor>[0-9]+)[层楼](?=[0-9]))?"
    r"(?:(?P<room>[0-9]+)室?)?"
)


def _numeral(text: str) -> str:
    """Chinese numerals as digits: positional with 十 / 百 (一百二十八 -> 128), else digit by digit."""
    if "十" not in text and "百" not in text:
        return "".join(str(_DIGIT[c]) for c in text)
    value = 0
    number = 0
    for c in text:
        if c == "百":
            value += (number or 1) * 100
            number = 0
        elif c == "十":
            value += (number or 1) * 10
            number = 0
        else:
            number = _DIGIT[c]
    return str(value + number)


@lru_cache(maxsize=65536)
def normalise(text: str) -> str:
    """The canonical form of an address (see the module docstring)."""
    if not isinstance(text, str):
        raise InvalidInput(f"an address is text, not {type(text).__name__}")
    s = unicodedata.normalize("NFKC", text).upper().translate(_TRADITIONAL)
    s = _NUMERAL_RE.sub(lambda m: _numeral(m.group(1)), s)
    s = re.sub(r"[\u2010-\u2015\u2212~]", "-", s)
    s = _PUNCTUATION_RE.sub("", s)
    s = _HYPHEN3_RE.sub(r"\1栋\2单元\3室", s)
    s = _HYPHEN2_RE.sub(r"\1栋\2室", s)
    s = s.replace("-", "")
    s = re.sub(r"第(?=[0-9])", "", s)
    s = re.sub(r"([0-9A-Z]+)(?:号楼|幢|座)", r"\1栋", s)
    s = re.sub(r"([0-9]+)号?(?:房|铺|商铺)$", r"\1室", s)
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if s.startswith(prefix) and len(s) > len(prefix):
                s = s[len(prefix):]
                changed = True
    return s


@dataclass(frozen=True)
class AddressParts:
    """The parts of an address (None where absent). ``building`` is ``5`` for 5栋 or ``A`` for A座."""

    street: str | None = None
    community: str | None = None
    road: str | None = None
    number: str | None = None
    estate: str | None = None
    building: str | None = None
    entrance: str | None = None
    floor: str | None = None
    room: str | None = None


def parse(text: str) -> AddressParts:
    """The parts of an address (normalised first). Numbers lose leading zeros (``0502`` -> ``502``)."""
    return parse_canonical(normalise(text))


def parse_canonical(canonical: str) -> AddressParts:
    """:func:`parse` of a text :func:`normalise` made (not normalised again: a search parses up to
    :data:`CANDIDATES` addresses, and normalising one costs ten times what cutting it does)."""
    match = _PARTS_RE.fullmatch(canonical)
    if match is None:  # not in the usual order: keep what the usual markers say
        match = _PARTS_RE.match("")
        parts = {}
        for name, pattern in (("road", r"(.*?(?:大道|大街|路|街|巷|道|段))[0-9]+号"), ("number", r"([0-9]+)号"),
                              ("building", r"([0-9]+|[A-Z][0-9]?)栋"), ("entrance", r"([0-9]+)单元"),
                              ("room", r"([0-9]+)室")):
            found = re.search(pattern, canonical)
            parts[name] = found.group(1) if found else None
    else:
        parts = {k: v or None for k, v in match.groupdict().items()}
    for key in ("number", "entrance", "floor", "room"):
        if parts.get(key):
            parts[key] = parts[key].lstrip("0") or "0"
    return AddressParts(**parts)


@dataclass(frozen=True)
class AddressMatch:
    """One search result: the building row, the unit row (-1 for a building match), the score, the address."""

    building_row: int
    unit_row: int
    score: float
    address: str


def _same(part: str, have: str | None, want: str) -> bool:
    """Whether a candidate's part agrees with the query's. Names (road, estate) agree when one ends
    with the other, so words the query put before them (a street without 街道) do not count against."""
    if have is None:
        return False
    if part in ("road", "estate") and min(len(have), len(want)) >= 2:
        return have.endswith(want) or want.endswith(have)
    return have == want


def _bigram_keys(codepoints: np.ndarray) -> np.ndarray:
    return (codepoints[:-1].astype(np.uint64) << np.uint64(21)) | codepoints[1:].astype(np.uint64)


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


class AddressIndex:
    """Free-text search over building addresses (and their units), built once (see the module docstring).

    ``unit_building`` (the building row of each unit, ascending), ``unit_entrance`` (0: none),
    ``unit_number`` (room number as an integer) and ``unit_address`` describe the units; without them
    only buildings are found. Without ``unit_address`` (the registry reads a found unit's row itself)
    a unit match carries None as its address.
    """

    def __init__(self, building_addresses, *, unit_building=None, unit_entrance=None, unit_number=None,
                 unit_address=None):
        addresses = [str(a) for a in building_addresses]
        if not addresses:
            raise InvalidInput("an address index needs at least one address")
        self.addresses = addresses
        self.n_buildings = n = len(addresses)
        canonical = [normalise(a) for a in addresses]
        lengths = np.array([len(c) for c in canonical], dtype=np.int64)
        codepoints = _codepoints("".join(canonical))
        owner = np.repeat(np.arange(n, dtype=np.uint64), lengths)
        starts = np.cumsum(lengths) - lengths
        keep = np.ones(max(len(codepoints) - 1, 0), dtype=bool)
        ends = starts + lengths - 1  # the last character of each address starts no bigram
        keep[ends[(lengths > 0) & (ends < keep.size)]] = False
        keys = _bigram_keys(codepoints)[keep]
        pairs = np.unique((keys << np.uint64(21)) | owner[:-1][keep] if keys.size else keys)
        row_bits = np.uint64((1 << 21) - 1)
        pair_keys = pairs >> np.uint64(21)
        self._rows = (pairs & row_bits).astype(np.int32)
        self._keys, first = np.unique(pair_keys, return_index=True)
        self._offsets = np.append(first, len(pairs)).astype(np.int64)
        df = np.diff(self._offsets)
        self._idf = np.log1p(n / df) * (df <= STOP_SHARE * n)
        self._canonical = canonical
        #: Buildings taken out of the search since the build (demolished): never candidates.
        self._removed = np.zeros(n, dtype=bool)
        self._spare: list[tuple[np.ndarray, ...]] = []  # work buffers of finished searches, one per concurrent search
        if n >= 1 << 21:
            raise InvalidInput(f"an address index holds fewer than {1 << 21:,} buildings")
        self._parts: dict[int, AddressParts] = {}
        if unit_building is not None:
            self._unit_building = np.asarray(unit_building, dtype=np.int64)
            self._unit_offsets = np.searchsorted(self._unit_building, np.arange(n + 1))
            self._unit_entrance = np.asarray(unit_entrance, dtype=np.int64)
            self._unit_number = np.asarray(unit_number, dtype=np.int64)
            self._unit_address = None if unit_address is None else unit_address \
                if isinstance(unit_address, (pa.Array, pa.ChunkedArray)) else pa.array(list(unit_address), type=pa.string())
        else:
            self._unit_offsets = None

    def remove(self, rows) -> None:
        """Take building ``rows`` (and their units) out of the search (a demolition), without a rebuild.
        The bigram weights stay those of the build."""
        self._removed[np.asarray(rows, dtype=np.int64)] = True

    def _buffers(self) -> tuple[np.ndarray, ...]:
        """Work buffers of the candidate kernel for one search: a spare one, else new ones (a search in
        another thread holds the others; list pop and append are atomic)."""
        try:
            return self._spare.pop()
        except IndexError:
            return (np.zeros(self.n_buildings, dtype=np.float64), np.empty(self.n_buildings, dtype=np.int32),
                    np.empty(CANDIDATES, dtype=np.int64), np.empty(CANDIDATES, dtype=np.float64))

    def parts_of(self, row: int) -> AddressParts:
        """The parsed parts of building ``row``'s address (cached)."""
        parts = self._parts.get(row)
        if parts is None:
            parts = self._parts[row] = parse_canonical(self._canonical[row])
        return parts

    def search(self, query: str, limit: int = 10) -> list[AddressMatch]:
        """The best matches for ``query``, best first (at most ``limit``; none when nothing is alike)."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("an address query is non-empty text")
        if len(query) > MAX_QUERY:
            raise InvalidInput(f"an address query is at most {MAX_QUERY} characters, not {len(query)}")
        if not 1 <= int(limit) <= 100:
            raise InvalidInput(f"limit must be from 1 to 100, not {limit}")
        canonical = normalise(query)
        wanted = parse(canonical)
        keys = np.unique(_bigram_keys(_codepoints(canonical))) if len(canonical) > 1 else np.empty(0, np.uint64)
        at = np.searchsorted(self._keys, keys)
        found = (at < len(self._keys)) & (self._keys[np.minimum(at, len(self._keys) - 1)] == keys)
        at = at[found]
        weights = self._idf[at]
        # the share of the query's weight an address holds; a bigram no address holds weighs the most
        total = float(weights.sum() + (~found).sum() * np.log1p(self.n_buildings))
        at, weights = at[weights > 0], weights[weights > 0]  # stop bigrams (in most addresses) add nothing
        if at.size == 0:
            return []
        # candidates from the rarest bigrams, up to POSTING_BUDGET postings, so a query's cost does not
        # grow with the number of addresses; the candidates' full share is then counted from their own
        # (one kernel: kernels/postings.py; no array the size of the postings is made per query)
        buffers = self._buffers()
        try:
            scratch, touched, out_rows, out_scores = buffers
            n_out = score_postings(self._offsets, self._rows, at.astype(np.int64), weights, POSTING_BUDGET,
                                   CANDIDATES, self._removed, scratch, touched, out_rows, out_scores)
            rows, partial = out_rows[:n_out].copy(), out_scores[:n_out].copy()
        finally:
            self._spare.append(buffers)
        top = rows.tolist()
        score = (partial / total).tolist()
        asked = [(part, weight, getattr(wanted, part)) for part, weight in PART_WEIGHTS.items()
                 if getattr(wanted, part) is not None]
        ranked = []
        for row, value in zip(top, score):
            have = self.parts_of(row)
            for part, weight, want in asked:
                value += weight if _same(part, getattr(have, part), want) else -weight
            ranked.append((-value, row))
        ranked.sort()
        matches = []
        if wanted.room is not None and self._unit_offsets is not None:
            for negative, row in ranked[: max(limit, 10)]:
                for unit in self._units_of(row, wanted):
                    matches.append(AddressMatch(row, unit, -negative + 1.0, self.unit_address(unit)))
        taken = {m.building_row for m in matches}
        matches += [AddressMatch(row, -1, -negative, self.addresses[row]) for negative, row in ranked
                    if row not in taken]
        matches.sort(key=lambda m: (-m.score, m.building_row, m.unit_row))
        return matches[:limit]

    def unit_address(self, unit: int) -> str | None:
        """The address of unit row ``unit`` (None when the index was built without unit addresses)."""
        return None if self._unit_address is None else self._unit_address[unit].as_py()

    def _units_of(self, row: int, wanted: AddressParts) -> list[int]:
        lo, hi = self._unit_offsets[row], self._unit_offsets[row + 1]
        mine = np.flatnonzero(self._unit_number[lo:hi] == int(wanted.room))
        if wanted.entrance is not None:
            mine = mine[self._unit_entrance[lo:hi][mine] == int(wanted.entrance)]
        return (lo + mine).tolist()
