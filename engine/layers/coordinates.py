"""The coordinate systems callers send points in, and their conversion to WGS84.

Grid layers are WGS84 longitude / latitude. Callers may send:

- ``wgs84`` (GPS; EPSG:4326) or ``cgcs2000`` (China's geodetic datum, EPSG:4490): the same to well
  under a metre, taken as they are;
- ``gcj02``: what AMap, Tencent and Apple maps report in China, offset by up to ~700 m (about 500 m
  in Shenzhen, more than a grid is wide);
- ``bd09``: what Baidu maps report, GCJ-02 with a further offset.

Conversion runs in a kernel (:mod:`citygrid.kernels.transform`); the inverses are iterated to under
0.01 mm of the published forward formulas.

>>> lng, lat = from_wgs84([114.25], [22.70], "gcj02")
>>> back_lng, back_lat = to_wgs84(lng, lat, "gcj02")
>>> round(float(lng[0] - 114.25) * 1e3, 2), abs(float(back_lng[0]) - 114.25) < 1e-9
(4.83, True)
>>> CoordinateSystem.of(0), CoordinateSystem.of("CGCS2000").stored_name, bool(lnglat_valid(181.0, 0.0))
(<CoordinateSystem.WGS84: 1>, 'wgs84', False)
"""

from __future__ import annotations

import enum

import numpy as np

from citygrid.engine.errors import InvalidInput
from citygrid.kernels import transform as kernels

class CoordinateSystem(enum.IntEnum):
    """The coordinate systems, numbered as the API's ``citygrid.v1.CoordinateSystem`` (whose 0,
    unspecified, means WGS84): the servicers turn the message's number into this directly."""

    WGS84 = 1
    CGCS2000 = 2
    GCJ02 = 3
    BD09 = 4

    @classmethod
    def of(cls, value: "CoordinateSystem | int | str") -> "CoordinateSystem":
        """The system of an API number (0: WGS84), a member, or a name of :data:`CRS_CODES`."""
        if isinstance(value, cls):
            return value
        if isinstance(value, int):
            if value == 0:
                return cls.WGS84
            try:
                return cls(value)
            except ValueError:
                raise InvalidInput(f"unknown coordinate system {value}; use WGS84, CGCS2000, GCJ02 or BD09") from None
        return _BY_NAME[crs_code(value), str(value).strip().lower() == "cgcs2000"]

    @property
    def kernel(self) -> int:
        """The conversion kernel's code (CGCS2000 is WGS84 to well under a metre)."""
        return _KERNEL[self]

    @property
    def stored_name(self) -> str:
        """The name an event keeps (``wgs84`` for CGCS2000, as the service has always stored it)."""
        return _STORED[self]


#: Accepted names (case-insensitive) and the kernel's code for each.
CRS_CODES = {
    "wgs84": kernels.WGS84,
    "cgcs2000": kernels.WGS84,
    "epsg:4326": kernels.WGS84,
    "epsg:4490": kernels.WGS84,
    "gcj02": kernels.GCJ02,
    "bd09": kernels.BD09,
}
#: The names to offer a person (CLI choices, messages).
CRS_NAMES = ("wgs84", "cgcs2000", "gcj02", "bd09")


_KERNEL = {CoordinateSystem.WGS84: kernels.WGS84, CoordinateSystem.CGCS2000: kernels.WGS84,
           CoordinateSystem.GCJ02: kernels.GCJ02, CoordinateSystem.BD09: kernels.BD09}
_STORED = {CoordinateSystem.WGS84: "wgs84", CoordinateSystem.CGCS2000: "wgs84",
           CoordinateSystem.GCJ02: "gcj02", CoordinateSystem.BD09: "bd09"}
_BY_NAME = {(kernels.WGS84, False): CoordinateSystem.WGS84, (kernels.WGS84, True): CoordinateSystem.CGCS2000,
            (kernels.GCJ02, False): CoordinateSystem.GCJ02, (kernels.BD09, False): CoordinateSystem.BD09}


def lnglat_valid(lng, lat):
    """The longitude / latitude range rule, declared once: -180..180 and -90..90 degrees (NaN fails);
    scalars give a bool, arrays a boolean array."""
    return (lng >= -180.0) & (lng <= 180.0) & (lat >= -90.0) & (lat <= 90.0)


def crs_code(crs: "CoordinateSystem | str") -> int:
    """The kernel code of a coordinate system (a :class:`CoordinateSystem`, or a name, parsed here);
    :class:`InvalidInput` naming the accepted ones otherwise."""
    if isinstance(crs, CoordinateSystem):
        return _KERNEL[crs]
    try:
        return CRS_CODES[str(crs).strip().lower()]
    except KeyError:
        raise InvalidInput(f"unknown coordinate system {crs!r}: use one of {', '.join(CRS_NAMES)}") from None


def is_wgs84(crs: "CoordinateSystem | str") -> bool:
    return crs_code(crs) == kernels.WGS84


def to_wgs84(lng, lat, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Points in ``crs`` as WGS84 float64 arrays (new arrays; NaN where the input is not a valid
    longitude / latitude)."""
    code = crs_code(crs)
    lng, lat = _pair(lng, lat)
    out_lng, out_lat = np.empty_like(lng), np.empty_like(lat)
    kernels.to_wgs84(lng, lat, code, out_lng, out_lat)
    return out_lng, out_lat


def from_wgs84(lng, lat, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 points in ``crs`` (new float64 arrays; NaN where the input is not valid)."""
    code = crs_code(crs)
    lng, lat = _pair(lng, lat)
    out_lng, out_lat = np.empty_like(lng), np.empty_like(lat)
    kernels.from_wgs84(lng, lat, code, out_lng, out_lat)
    return out_lng, out_lat


def _pair(lng, lat) -> tuple[np.ndarray, np.ndarray]:
    lng = np.ascontiguousarray(lng, dtype=np.float64)
    lat = np.ascontiguousarray(lat, dtype=np.float64)
    if lng.ndim != 1 or lat.ndim != 1 or lng.shape != lat.shape:
        raise InvalidInput(
            f"lng and lat must be one-dimensional and of equal length (got shapes {lng.shape} and {lat.shape})"
        )
    return lng, lat
