"""Chinese map-SDK coordinates (GCJ-02, BD-09) to and from WGS84, in kernels.

GCJ-02 ("Mars coordinates", what AMap / Tencent / Apple maps in China report) shifts WGS84 by a
published non-linear offset of a few hundred metres; BD-09 (Baidu) applies a second, polar offset on
top of GCJ-02. The forward formulas are exact by definition (the widely published reference
implementation; Krasovsky ellipsoid ``a = 6378245``, ``e² = 0.00669342162296594323``; points outside
the China box are not shifted). The inverses have no closed form: they are solved here by fixed-point
iteration ``w <- w + (g - F(w))`` until ``|F(w) - g|`` is below :data:`TOLERANCE_DEG` (about 0.01
mm), which converges in a handful of steps because the offset changes slowly with position.

CRS codes: :data:`WGS84` (0, also CGCS2000: the two agree to well under a metre), :data:`GCJ02` (1),
:data:`BD09` (2). A point whose input coordinates are not finite longitude / latitude gets NaN.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from citygrid.kernels._jit import njit, pnjit

WGS84 = 0
GCJ02 = 1
BD09 = 2

#: Krasovsky 1940 semi-major axis and first eccentricity squared, as GCJ-02 defines them.
_A = 6378245.0
_EE = 0.00669342162296594323
#: BD-09's angular constant.
_X_PI = math.pi * 3000.0 / 180.0
#: Stop iterating an inverse when the forward image is this close to the target (degrees).
TOLERANCE_DEG = 1e-10
MAX_ITERATIONS = 50


@njit
def out_of_china(lng, lat):
    """True outside the rectangle in which GCJ-02 applies its offset."""
    return not (72.004 <= lng <= 137.8347 and 0.8293 <= lat <= 55.8271)


@njit
def gcj02_offset(lng, lat):
    """The GCJ-02 offset ``(dlng, dlat)`` in degrees at a WGS84 point (inside China)."""
    x = lng - 105.0
    y = lat - 35.0
    common = (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x)) + common
    dlat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    dlat += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    dlng = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x)) + common
    dlng += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    dlng += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    rad_lat = lat / 180.0 * math.pi
    magic = 1.0 - _EE * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    dlat = dlat * 180.0 / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlng = dlng * 180.0 / (_A / sqrt_magic * math.cos(rad_lat) * math.pi)
    return dlng, dlat


@njit
def wgs84_to_gcj02(lng, lat):
    if out_of_china(lng, lat):
        return lng, lat
    dlng, dlat = gcj02_offset(lng, lat)
    return lng + dlng, lat + dlat


@njit
def gcj02_to_bd09(lng, lat):
    z = math.sqrt(lng * lng + lat * lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lng) + 0.000003 * math.cos(lng * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


@njit
def from_wgs84_point(lng, lat, crs):
    """A WGS84 point in ``crs`` (exact forward formulas)."""
    if crs == WGS84:
        return lng, lat
    glng, glat = wgs84_to_gcj02(lng, lat)
    if crs == GCJ02:
        return glng, glat
    return gcj02_to_bd09(glng, glat)


@njit
def to_wgs84_point(lng, lat, crs):
    """The WGS84 point whose image in ``crs`` is ``(lng, lat)``, by fixed-point iteration."""
    if crs == WGS84:
        return lng, lat
    wlng = lng
    wlat = lat
    for _ in range(MAX_ITERATIONS):
        flng, flat = from_wgs84_point(wlng, wlat, crs)
        rlng = lng - flng
        rlat = lat - flat
        if abs(rlng) < TOLERANCE_DEG and abs(rlat) < TOLERANCE_DEG:
            break
        wlng += rlng
        wlat += rlat
    return wlng, wlat


@pnjit
def to_wgs84(lng, lat, crs, out_lng, out_lat):
    """Convert points from ``crs`` to WGS84 into ``out_lng``, ``out_lat`` (NaN for invalid input)."""
    for n in numba.prange(lng.shape[0]):
        x = lng[n]
        y = lat[n]
        if not (-180.0 <= x <= 180.0 and -90.0 <= y <= 90.0):
            out_lng[n] = np.nan
            out_lat[n] = np.nan
        else:
            out_lng[n], out_lat[n] = to_wgs84_point(x, y, crs)


@pnjit
def from_wgs84(lng, lat, crs, out_lng, out_lat):
    """Convert WGS84 points to ``crs`` into ``out_lng``, ``out_lat`` (NaN for invalid input)."""
    for n in numba.prange(lng.shape[0]):
        x = lng[n]
        y = lat[n]
        if not (-180.0 <= x <= 180.0 and -90.0 <= y <= 90.0):
            out_lng[n] = np.nan
            out_lat[n] = np.nan
        else:
            out_lng[n], out_lat[n] = from_wgs84_point(x, y, crs)
