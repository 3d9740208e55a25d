"""Protobuf's wire format written straight from arrays, where building message objects (a Python
object per value) costs more than the work the message reports: the points of an
``AssignPointsRequest`` (the client), the columns of an analytics ``Table`` (the servicer).
Tests compare the bytes with protobuf's own (tests/grpc_api/test_wire.py)."""

from __future__ import annotations

import numpy as np

#: The bit offsets of a varint's 7-bit groups (an int64 takes at most 10).
_GROUPS = np.arange(0, 70, 7, dtype=np.uint64)


def varint(value: int) -> bytes:
    """One non-negative integer as a varint."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def varints(values: np.ndarray) -> bytes:
    """int64 ``values`` as varints one after another, as a packed repeated int64 field holds them
    (negative ones as their 64-bit two's complement, 10 bytes each)."""
    bits = np.ascontiguousarray(values, dtype=np.int64).view(np.uint64)
    top = int(bits.max()) if len(bits) else 0
    if top < 0x80:  # (counts below 128: a byte each)
        return bits.astype(np.uint8).tobytes()
    shifted = bits[:, None] >> _GROUPS[: (top.bit_length() + 6) // 7]  # only the groups the largest value has
    used = shifted != 0
    used[:, 0] = True  # a group is written while bits remain above it (the first always)
    more = np.zeros_like(used)
    more[:, :-1] = used[:, 1:]
    return ((shifted & np.uint64(0x7F)).astype(np.uint8) | (more.view(np.uint8) << 7))[used].tobytes()


def field(number: int, data) -> bytes:
    """A length-delimited field (a string, bytes, a message, packed values): key, length, ``data``."""
    return bytes((number << 3 | 2,)) + varint(len(data)) + data
