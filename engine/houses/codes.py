"""Building and unit codes (一楼一码、一房一码) and the signed QR payloads of their door plates.

**Codes** are strings of digits that nest like the grid codes they start with:

========== ====== ============================================================
level      digits made of
========== ====== ============================================================
district   6      ``440307``
street     9      district + 3
community  12     street + 3
grid       15     community + 3 (the *issuing* grid)
building   19     issuing grid + 4-digit sequence ``0001``-``9999``
unit       23     building + 4-digit unit part ``0001``-``9999``
========== ====== ============================================================

A building code keeps the grid that issued it for good: when grids are redrawn the building's
*current* grid is an attribute, never a change of code. The **unit part** is a sequence within the
building, not a room number: the demo numbers the units of a building in entrance, floor, room
order when it creates them (``0001`` is the lowest room of the first entrance), and a unit added
later takes the next number after the highest ever issued in that building (:func:`next_sequence`),
so a code is never reused after a unit is merged, split or demolished. The room number people use
(``1203室``) is an attribute of the unit and part of its address, and may change without changing
the code.

**QR payloads** (门牌二维码) name a code and are signed with a server key::

    CG1.K1.4403070030010010010001.MFRGGZDFMZTWQ2LK
    |  |  |                       +-- first 80 bits of HMAC-SHA256(key K1, "CG1.K1.<code>"), base32
    |  |  +-- the building (19 digits) or unit (23 digits) code
    |  +-- key id: 1-4 of 0-9 A-Z, so keys can rotate (old plates verify while their key is kept)
    +-- scheme CG, payload format 1

Every character is in the QR *alphanumeric* set (0-9, A-Z, ``.``), which packs 5.5 bits a
character: a unit payload is 47 characters, a QR code of version 3 at error-correction level M
(29 x 29 modules, capacity 61). The MAC is truncated to 80 bits: forging a payload means guessing
it online, one ``ResolveCode`` at a time, against odds of 2^-80.

Resolving (:meth:`QrKeyring.resolve`) refuses, in this order:

=========================================== ================== ========================
what                                        error              gRPC status
=========================================== ================== ========================
not a payload of this shape, or a bad code  :class:`InvalidInput` ``INVALID_ARGUMENT``
a newer payload format                      :class:`InvalidInput` ``INVALID_ARGUMENT``
a key id this server does not hold, or one  :class:`Unauthorized` ``UNAUTHENTICATED``
  it has retired
a signature that does not verify (tampered, :class:`Unauthorized` ``UNAUTHENTICATED``
  or signed by another server)
=========================================== ================== ========================

The signature is the payload's credential, so a payload that cannot be verified is
``Unauthorized`` (like an unknown or revoked token) rather than ``NotFound``; ``NotFound`` is left to
the registry for a genuine payload whose building or unit it does not hold.

>>> keyring = QrKeyring({"K1": b"0123456789abcdef0123456789abcdef"}, current="K1")
>>> payload = keyring.sign("44030700300100100100012")
>>> payload, len(payload)
('CG1.K1.44030700300100100100012.5GTBUBVI7SUTDQAC', 47)
>>> keyring.resolve(payload).code.building_code
'4403070030010010010'
>>> keyring.resolve(payload.replace(".4403070030", ".4403070040"))
Traceback (most recent call last):
...
citygrid.engine.errors.Unauthorized: the QR payload's signature does not verify: it was altered or not issued by this server
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from citygrid.engine.errors import InvalidInput, Unauthorized

DISTRICT_DIGITS = 6
STREET_DIGITS = 9
COMMUNITY_DIGITS = 12
GRID_DIGITS = 15
BUILDING_DIGITS = 19
#: Digits of the unit part (a sequence within the building, from 0001).
UNIT_PART_DIGITS = 4
UNIT_DIGITS = BUILDING_DIGITS + UNIT_PART_DIGITS
#: Largest building sequence within a grid and unit sequence within a building.
MAX_SEQUENCE = 10**UNIT_PART_DIGITS - 1

_BUILDING_RE = re.compile(r"[0-9]{19}")
_UNIT_RE = re.compile(r"[0-9]{23}")


@dataclass(frozen=True)
class BuildingCode:
    """A valid building code; its parts are read from the digits."""

    code: str

    @property
    def district_code(self) -> str:
        return self.code[:DISTRICT_DIGITS]

    @property
    def street_code(self) -> str:
        return self.code[:STREET_DIGITS]

    @property
    def community_code(self) -> str:
        return self.code[:COMMUNITY_DIGITS]

    @property
    def grid_code(self) -> str:
        """The grid that issued the code (not necessarily the building's current grid)."""
        return self.code[:GRID_DIGITS]

    @property
    def sequence(self) -> int:
        return int(self.code[GRID_DIGITS:])


@dataclass(frozen=True)
class UnitCode:
    """A valid unit code: its building's code and the unit part."""

    code: str

    @property
    def building(self) -> BuildingCode:
        return BuildingCode(self.code[:BUILDING_DIGITS])

    @property
    def building_code(self) -> str:
        return self.code[:BUILDING_DIGITS]

    @property
    def unit_part(self) -> str:
        return self.code[BUILDING_DIGITS:]

    @property
    def sequence(self) -> int:
        return int(self.unit_part)


def _text(code) -> str:
    if not isinstance(code, str):
        raise InvalidInput(f"a code is a string of digits, not {type(code).__name__} {code!r}")
    return code.strip()


def parse_building_code(code: str) -> BuildingCode:
    """A building code (19 digits: grid code + a sequence from 0001); :class:`InvalidInput` otherwise.

    >>> parse_building_code(" 4403070030010010003 ").grid_code
    '440307003001001'
    """
    text = _text(code)
    if not _BUILDING_RE.fullmatch(text):
        raise InvalidInput(f"{code!r} is not a building code: it must be {BUILDING_DIGITS} digits "
                           f"(the {GRID_DIGITS}-digit grid code and a {UNIT_PART_DIGITS}-digit sequence)")
    if text[GRID_DIGITS:] == "0" * UNIT_PART_DIGITS:
        raise InvalidInput(f"{code!r} is not a building code: its sequence {text[GRID_DIGITS:]} must start at 0001")
    return BuildingCode(text)


def parse_unit_code(code: str) -> UnitCode:
    """A unit code (23 digits: building code + a unit part from 0001); :class:`InvalidInput` otherwise.

    >>> parse_unit_code("44030700300100100030012").unit_part
    '0012'
    """
    text = _text(code)
    if not _UNIT_RE.fullmatch(text):
        raise InvalidInput(f"{code!r} is not a unit code: it must be {UNIT_DIGITS} digits "
                           f"(the {BUILDING_DIGITS}-digit building code and a {UNIT_PART_DIGITS}-digit unit part)")
    parse_building_code(text[:BUILDING_DIGITS])
    if text[BUILDING_DIGITS:] == "0" * UNIT_PART_DIGITS:
        raise InvalidInput(f"{code!r} is not a unit code: its unit part must start at 0001")
    return UnitCode(text)


def parse_code(code: str) -> BuildingCode | UnitCode:
    """A building or a unit code, told apart by length; :class:`InvalidInput` for anything else."""
    text = _text(code)
    if len(text) == BUILDING_DIGITS:
        return parse_building_code(text)
    if len(text) == UNIT_DIGITS:
        return parse_unit_code(text)
    raise InvalidInput(f"{code!r} is not a building code ({BUILDING_DIGITS} digits) or a unit code "
                       f"({UNIT_DIGITS} digits)")


def _sequence(sequence: int, what: str) -> str:
    if isinstance(sequence, bool) or not isinstance(sequence, (int, np.integer)) or not 1 <= sequence <= MAX_SEQUENCE:
        raise InvalidInput(f"a {what} sequence is a whole number from 1 to {MAX_SEQUENCE}, not {sequence!r}")
    return f"{int(sequence):0{UNIT_PART_DIGITS}d}"


def building_code(grid_code: str, sequence: int) -> str:
    """The code of building ``sequence`` issued by grid ``grid_code``.

    >>> building_code("440307003001001", 3)
    '4403070030010010003'
    """
    grid = _text(grid_code)
    if not re.fullmatch(r"[0-9]{15}", grid):
        raise InvalidInput(f"{grid_code!r} is not a grid code ({GRID_DIGITS} digits)")
    return grid + _sequence(sequence, "building")


def unit_part(sequence: int) -> str:
    """The unit part of unit ``sequence`` of a building (``12`` -> ``'0012'``)."""
    return _sequence(sequence, "unit")


def unit_code(building: str, sequence: int) -> str:
    """The code of unit ``sequence`` of ``building``.

    >>> unit_code("4403070030010010003", 12)
    '44030700300100100030012'
    """
    return parse_building_code(building).code + unit_part(sequence)


def next_sequence(issued: Iterable[int]) -> int:
    """The sequence of the next unit (or building) after those ever ``issued`` (retired ones included):
    one past the highest, so no code is reused. :class:`InvalidInput` when the 4 digits are used up."""
    highest = max((int(s) for s in issued), default=0)
    if highest >= MAX_SEQUENCE:
        raise InvalidInput(f"every sequence up to {MAX_SEQUENCE} is issued: no code is left to give")
    return highest + 1


def valid_building_codes(codes) -> np.ndarray:
    """Whether each of ``codes`` (strings or None) is a valid building code (bool array), for bulk loads."""
    return _valid(codes, r"^[0-9]{15}(?:0{3}[1-9]|0{2}[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})$")


def valid_unit_codes(codes) -> np.ndarray:
    """Whether each of ``codes`` is a valid unit code (bool array), for bulk loads."""
    part = r"(?:0{3}[1-9]|0{2}[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
    return _valid(codes, rf"^[0-9]{{15}}{part}{part}$")


def _valid(codes, pattern: str) -> np.ndarray:
    array = codes if isinstance(codes, (pa.Array, pa.ChunkedArray)) else pa.array(list(codes), type=pa.string())
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        raise InvalidInput(f"codes must be strings, not {array.type}")
    return pc.fill_null(pc.match_substring_regex(array, pattern), False).to_numpy(zero_copy_only=False)


# ---------------------------------------------------------------------- QR payloads (门牌二维码)

QR_SCHEME = "CG"
QR_FORMAT = 1
#: Bytes of the HMAC-SHA256 kept in a payload (80 bits: 16 base32 characters).
MAC_BYTES = 10
#: Shortest server key accepted.
MIN_KEY_BYTES = 16
#: The QR alphanumeric character set (a payload uses only these).
QR_ALPHANUMERIC = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")

_KEY_ID_RE = re.compile(r"[0-9A-Z]{1,4}")
_PAYLOAD_RE = re.compile(r"CG([0-9])\.([0-9A-Z]{1,4})\.([0-9]{19}|[0-9]{23})\.([A-Z2-7]{16})")


@dataclass(frozen=True)
class ResolvedPayload:
    """A verified payload: the code it names, the key that signed it, and whether that key is the
    current signing key (``False``: the plate verifies but should be reprinted with the current key)."""

    code: BuildingCode | UnitCode
    key_id: str
    current_key: bool


def generate_key() -> str:
    """A fresh random server key (32 bytes) as base64url text, for the configuration."""
    return secrets.token_urlsafe(32)


def decode_key(text: str) -> bytes:
    """A key written as base64url (what :func:`generate_key` makes); :class:`InvalidInput` otherwise."""
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError, AttributeError):
        raise InvalidInput("a QR key must be base64url text (make one with citygrid.engine.houses.codes."
                           "generate_key())") from None
    return key


class QrKeyring:
    """The server keys that sign and verify QR payloads: one current signing key, older keys kept for
    verifying plates already printed, and the ids of retired keys (refused with a message saying so).

    ``keys`` maps a key id (1-4 of ``0-9A-Z``) to its secret bytes (at least :data:`MIN_KEY_BYTES`).
    To rotate: add a new key, make it ``current``, reprint plates, then move the old id to
    ``retired``.
    """

    def __init__(self, keys: Mapping[str, bytes], current: str, retired: Iterable[str] = ()):
        self._keys: dict[str, bytes] = {}
        for key_id, secret in keys.items():
            kid = self._key_id(key_id)
            if not isinstance(secret, (bytes, bytearray)) or len(secret) < MIN_KEY_BYTES:
                raise InvalidInput(f"QR key {kid} must be at least {MIN_KEY_BYTES} bytes")
            self._keys[kid] = bytes(secret)
        self.current = self._key_id(current)
        if self.current not in self._keys:
            raise InvalidInput(f"the current QR key {self.current} is not among the keys ({', '.join(self._keys)})")
        self.retired = frozenset(self._key_id(k) for k in retired)
        if self.retired & set(self._keys):
            raise InvalidInput(f"QR keys {', '.join(sorted(self.retired & set(self._keys)))} are both kept and retired")

    @classmethod
    def from_config(cls, keys: Mapping[str, str], current: str, retired: Iterable[str] = ()) -> "QrKeyring":
        """A keyring from configuration text: key id -> base64url key."""
        return cls({kid: decode_key(text) for kid, text in keys.items()}, current, retired)

    @staticmethod
    def _key_id(key_id) -> str:
        kid = str(key_id).strip().upper()
        if not _KEY_ID_RE.fullmatch(kid):
            raise InvalidInput(f"a QR key id is 1 to 4 of 0-9 A-Z, not {key_id!r}")
        return kid

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def sign(self, code: str) -> str:
        """The payload naming ``code`` (a building or unit code), signed with the current key."""
        parsed = parse_code(code)
        head = f"{QR_SCHEME}{QR_FORMAT}.{self.current}.{parsed.code}"
        return f"{head}.{self._mac(self.current, head)}"

    def resolve(self, payload: str) -> ResolvedPayload:
        """The code a payload names, after checking its shape and signature (see the module docstring
        for what is refused with which error). Letter case and surrounding blanks are ignored."""
        if not isinstance(payload, str):
            raise InvalidInput(f"a QR payload is text, not {type(payload).__name__}")
        text = payload.strip().upper()
        match = _PAYLOAD_RE.fullmatch(text)
        if match is None:
            raise InvalidInput(self._malformed(text))
        version, kid, code, mac = match.groups()
        if int(version) != QR_FORMAT:
            raise InvalidInput(f"QR payload format {version} is not one this server reads (it reads {QR_FORMAT})")
        parsed = parse_code(code)
        if kid not in self._keys:
            if kid in self.retired:
                raise Unauthorized(f"the QR payload is signed with key {kid}, which is retired: reprint the plate")
            raise Unauthorized(f"the QR payload is signed with key {kid}, which this server does not hold")
        head = text[: match.start(4) - 1]
        if not hmac.compare_digest(self._mac(kid, head), mac):
            raise Unauthorized("the QR payload's signature does not verify: it was altered or not issued by this server")
        return ResolvedPayload(parsed, kid, kid == self.current)

    def _mac(self, key_id: str, head: str) -> str:
        digest = hmac.new(self._keys[key_id], head.encode("ascii"), hashlib.sha256).digest()[:MAC_BYTES]
        return base64.b32encode(digest).decode("ascii")

    @staticmethod
    def _malformed(text: str) -> str:
        parts = text.split(".")
        if not text.startswith(QR_SCHEME):
            return "not a CityGrid door-plate payload: it must start with CG"
        if len(parts) != 4:
            return f"a QR payload has 4 parts separated by '.', this one has {len(parts)}"
        if not _KEY_ID_RE.fullmatch(parts[1]):
            return f"the QR payload's key id {parts[1]!r} is not 1 to 4 of 0-9 A-Z"
        if not re.fullmatch(r"[0-9]{19}|[0-9]{23}", parts[2]):
            return f"the QR payload's code {parts[2]!r} is not a building code (19 digits) or a unit code (23 digits)"
        if not re.fullmatch(r"[A-Z2-7]{16}", parts[3]):
            return "the QR payload's signature is not 16 base32 characters"
        return f"the QR payload's header {parts[0]!r} is not CG and a format digit"
