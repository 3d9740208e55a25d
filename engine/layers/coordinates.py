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
"""

from __future__ import annotations

import numpy as np

from citygrid.engine.errors import InvalidInput
from citygrid.kernels import transform as kernels

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


def crs_code(crs: str) -> int:
    """The kernel code of a CRS name; :class:`InvalidInput` naming the accepted ones otherwise."""
    try:
        return CRS_CODES[str(crs).strip().lower()]
    except KeyError:
        raise InvalidInput(f"unknown coordinate system {crs!r}: use one of {', '.join(CRS_NAMES)}") from None


def is_wgs84(crs: str) -> bool:
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
