"""Building and unit codes and the signed QR payloads of door plates (``citygrid.engine.houses.codes``)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from citygrid.engine.errors import InvalidInput, Unauthorized
from citygrid.engine.houses import codes
from citygrid.engine.houses.codes import (
    QR_ALPHANUMERIC, BuildingCode, QrKeyring, UnitCode, building_code, next_sequence, parse_building_code,
    parse_code, parse_unit_code, unit_code, valid_building_codes, valid_unit_codes,
)

KEY_1 = bytes(range(32))
KEY_2 = bytes(range(100, 132))

grid_codes = st.integers(0, 10**9 - 1).map(lambda n: f"440307{n:09d}")
sequences = st.integers(1, 9999)


@st.composite
def unit_codes(draw) -> str:
    return unit_code(building_code(draw(grid_codes), draw(sequences)), draw(sequences))


@st.composite
def any_codes(draw) -> str:
    return draw(st.one_of(unit_codes(), st.builds(building_code, grid_codes, sequences)))


def test_codes_nest_and_parse():
    b = parse_building_code("4403070030010010003")
    assert (b.district_code, b.street_code, b.community_code, b.grid_code, b.sequence) == (
        "440307", "440307003", "440307003001", "440307003001001", 3)
    u = parse_unit_code("44030700300100100030012")
    assert (u.building_code, u.unit_part, u.sequence) == ("4403070030010010003", "0012", 12)
    assert u.building == b
    assert parse_code(" 4403070030010010003\n") == b and parse_code("44030700300100100030012") == u
    assert building_code("440307003001001", 3) == "4403070030010010003"
    assert unit_code("4403070030010010003", 12) == "44030700300100100030012"


@pytest.mark.parametrize("bad", ["", "440307003001001000", "44030700300100100031", "4403070030010010000",
                                 "44030700300100100030000", "4403070030010010O03", "４４０３０７００３００１００１０００３",
                                 "440307003001001000300120", "44030700300100100000012"])
def test_malformed_codes_are_invalid_input(bad):
    with pytest.raises(InvalidInput):
        parse_code(bad)


def test_non_strings_and_bad_sequences_are_refused():
    with pytest.raises(InvalidInput, match="string of digits"):
        parse_code(4403070030010010003)
    for bad in (0, 10_000, -1, True, 1.0):
        with pytest.raises(InvalidInput, match="sequence"):
            unit_code("4403070030010010003", bad)
    with pytest.raises(InvalidInput, match="grid code"):
        building_code("44030700300100", 1)


def test_next_sequence_never_reuses_a_retired_one():
    assert next_sequence([]) == 1
    assert next_sequence([1, 2, 7]) == 8  # 3..6 were retired: never given again
    with pytest.raises(InvalidInput, match="no code is left"):
        next_sequence([9999])


@settings(deadline=None)  # the shared machine's first regex compile can be slow
@given(st.lists(st.one_of(st.none(), st.integers(0, 10**25).map(str), any_codes()), max_size=10))
def test_bulk_validity_agrees_with_the_parsers(values):
    def accepted(parse, v) -> bool:
        try:
            parse(v)
            return v is not None
        except (InvalidInput, TypeError):
            return False

    assert valid_building_codes(values).tolist() == [v is not None and accepted(parse_building_code, v) for v in values]
    assert valid_unit_codes(values).tolist() == [v is not None and accepted(parse_unit_code, v) for v in values]


# ---------------------------------------------------------------------- QR payloads


def keyring() -> QrKeyring:
    return QrKeyring({"K1": KEY_1, "K2": KEY_2}, current="K2", retired=["K0"])


@settings(deadline=None)
@given(any_codes())
@example("4403070010010010001")
@example("44030701101601609999999")
def test_payloads_round_trip_and_are_short_qr_alphanumeric(code):
    ring = keyring()
    payload = ring.sign(code)
    resolved = ring.resolve(payload)
    assert resolved.code == parse_code(code) and resolved.key_id == "K2" and resolved.current_key
    assert set(payload) <= QR_ALPHANUMERIC
    assert len(payload) <= 47  # QR version 3 at level M holds 61 alphanumeric characters
    assert ring.resolve(f"  {payload.lower()} ").code.code == code  # case and blanks do not matter
    # the signature is the first 80 bits of HMAC-SHA256 over the header and code, base32
    head, mac = payload.rsplit(".", 1)
    expected = base64.b32encode(hmac.new(KEY_2, head.encode(), hashlib.sha256).digest()[:10]).decode()
    assert mac == expected and head == f"CG1.K2.{code}"


ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ."


@settings(deadline=None)
@given(any_codes(), st.data())
def test_any_single_character_change_is_refused(code, data):
    ring = keyring()
    payload = ring.sign(code)
    at = data.draw(st.integers(0, len(payload) - 1))
    other = data.draw(st.sampled_from(ALPHABET).filter(lambda c: c != payload[at]))
    tampered = payload[:at] + other + payload[at + 1:]
    with pytest.raises((InvalidInput, Unauthorized)):
        ring.resolve(tampered)


def test_a_changed_code_with_a_valid_shape_fails_the_signature():
    ring = keyring()
    payload = ring.sign("44030700300100100030012")
    forged = payload.replace("0030012.", "0030013.")
    with pytest.raises(Unauthorized, match="signature does not verify"):
        ring.resolve(forged)
    other_server = QrKeyring({"K2": KEY_1}, current="K2")
    with pytest.raises(Unauthorized, match="signature does not verify"):
        ring.resolve(other_server.sign("44030700300100100030012"))


def test_keys_rotate_old_plates_verify_until_their_key_is_retired():
    old = QrKeyring({"K1": KEY_1}, current="K1")
    plate = old.sign("4403070030010010003")
    rotated = QrKeyring({"K1": KEY_1, "K2": KEY_2}, current="K2")
    resolved = rotated.resolve(plate)
    assert resolved.key_id == "K1" and not resolved.current_key  # verifies, but should be reprinted
    assert rotated.sign("4403070030010010003").startswith("CG1.K2.")
    retired = QrKeyring({"K2": KEY_2}, current="K2", retired=["K1"])
    with pytest.raises(Unauthorized, match="key K1, which is retired"):
        retired.resolve(plate)
    with pytest.raises(Unauthorized, match="key K1, which this server does not hold"):
        QrKeyring({"K2": KEY_2}, current="K2").resolve(plate)


@pytest.mark.parametrize("payload, message", [
    ("", "must start with CG"),
    ("https://example.org/4403070030010010003", "must start with CG"),
    ("CG1.K1.4403070030010010003", "4 parts"),
    ("CG1.K1.4403070030010010003.AAAA.BBBB", "4 parts"),
    ("CG1.KEY12.4403070030010010003.AAAAAAAAAAAAAAAA", "key id"),
    ("CG1.K1.440307003001001000.AAAAAAAAAAAAAAAA", "not a building code"),
    ("CG1.K1.4403070030010010003.AAAAAAAAAAAAAAA1", "16 base32"),
    ("CG1.K1.4403070030010010003.AAAAAAAAAAAAAAA", "16 base32"),
    ("CX1.K1.4403070030010010003.AAAAAAAAAAAAAAAA", "must start with CG"),
    ("CG2.K1.4403070030010010003.AAAAAAAAAAAAAAAA", "format 2"),
    ("CG1.K1.4403070030010010000.AAAAAAAAAAAAAAAA", "sequence"),
])
def test_malformed_payloads_are_invalid_input(payload, message):
    with pytest.raises(InvalidInput, match=message):
        keyring().resolve(payload)


def test_keyring_configuration_is_checked():
    with pytest.raises(InvalidInput, match="at least 16 bytes"):
        QrKeyring({"K1": b"short"}, current="K1")
    with pytest.raises(InvalidInput, match="not among the keys"):
        QrKeyring({"K1": KEY_1}, current="K2")
    with pytest.raises(InvalidInput, match="both kept and retired"):
        QrKeyring({"K1": KEY_1}, current="K1", retired=["k1"])
    with pytest.raises(InvalidInput, match="key id"):
        QrKeyring({"K-1": KEY_1}, current="K-1")
    ring = QrKeyring.from_config({"k3": codes.generate_key()}, current="K3")
    assert ring.key_ids == ("K3",) and ring.resolve(ring.sign("4403070030010010003")).code == BuildingCode(
        "4403070030010010003")
    with pytest.raises(InvalidInput, match="base64url"):
        QrKeyring.from_config({"K3": "not base64 !"}, current="K3")
    with pytest.raises(InvalidInput):
        keyring().resolve(None)
    assert isinstance(keyring().resolve(keyring().sign("44030700300100100030012")).code, UnitCode)
