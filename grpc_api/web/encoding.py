"""An answer's JSON bytes, gzipped when the client accepts it and it is worth it, made in the
worker thread that computed the answer (the event loop only writes bytes: encoding and compressing
an H3 heat map on the loop held it for milliseconds a request, and every other request waited)."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass

#: Answers shorter than this are sent as they are (a gzip header and a round of zlib cost more).
GZIP_MIN_BYTES = 1024
#: zlib's own default level: about as small as 9 for JSON at a third of the time.
GZIP_LEVEL = 6


@dataclass(frozen=True)
class Encoded:
    body: bytes
    gzipped: bool

    def ByteSize(self) -> int:  # noqa: N802 - weighed as a message is by the analytics' answer memory
        return len(self.body)


@dataclass(frozen=True)
class Prepared:
    """An answer's JSON bytes (and their gzip) made once, for an answer many requests ask for as it is."""

    raw: bytes
    packed: bytes | None  # None: too short to be worth it

    @classmethod
    def of(cls, content) -> Prepared:
        raw = json_bytes(content)
        packed = gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0) if len(raw) >= GZIP_MIN_BYTES else None
        return cls(raw, packed)


def json_bytes(content) -> bytes:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def encode(content, *, accept_gzip: bool) -> Encoded:
    if isinstance(content, Prepared):
        return Encoded(content.packed, True) if accept_gzip and content.packed else Encoded(content.raw, False)
    body = json_bytes(content)
    if accept_gzip and len(body) >= GZIP_MIN_BYTES:
        return Encoded(gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0), True)
    return Encoded(body, False)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header accepts gzip (``gzip;q=0`` refuses it)."""
    for part in (accept_encoding or "").split(","):
        name, _, rest = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            q = rest.strip()
            return not (q.startswith("q=") and _q(q[2:]) == 0)
    return False


def _q(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 1.0
