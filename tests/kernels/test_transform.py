"""GCJ-02 / BD-09 conversions: the published forward formulas bit for bit, and inverses within 1 cm."""

from __future__ import annotations

import numpy as np
import pyarrow.csv as pv
import pytest

from citygrid.kernels.transform import BD09, GCJ02, WGS84, from_wgs84, from_wgs84_point, to_wgs84

#: (wgs lng, wgs lat, gcj lng, gcj lat): googollee/eviltransform's test vectors.
EVILTRANSFORM = [
    (121.5272106, 31.1774276, 121.531541859215, 31.17530398364597),  # Shanghai
    (113.912316, 22.543847, 113.9171764808363, 22.540796131694766),  # Shenzhen
    (116.377817, 39.911954, 116.38404722455657, 39.91334545536069),  # Beijing
]
#: wandergis/coordtransform's README example at (116.404, 39.915).
COORDTRANSFORM = {
    GCJ02: (116.41024449916938, 39.91640428150164),
    BD09: (116.41662724378733, 39.922699552216216),
}
METRES_PER_DEGREE = 111_195.0


def convert(kernel, lng, lat, crs):
    lng = np.ascontiguousarray(lng, dtype=np.float64)
    lat = np.ascontiguousarray(lat, dtype=np.float64)
    out_lng, out_lat = np.empty_like(lng), np.empty_like(lat)
    kernel(lng, lat, crs, out_lng, out_lat)
    return out_lng, out_lat


def error_m(lng, lat, ref_lng, ref_lat):
    return np.hypot((lng - ref_lng) * np.cos(np.radians(ref_lat)), lat - ref_lat) * METRES_PER_DEGREE


@pytest.mark.parametrize("wgs_lng,wgs_lat,gcj_lng,gcj_lat", EVILTRANSFORM)
def test_gcj02_forward_matches_published_vectors(wgs_lng, wgs_lat, gcj_lng, gcj_lat):
    assert from_wgs84_point(wgs_lng, wgs_lat, GCJ02) == (gcj_lng, gcj_lat)


@pytest.mark.parametrize("crs", [GCJ02, BD09])
def test_forward_matches_coordtransform(crs):
    assert from_wgs84_point(116.404, 39.915, crs) == COORDTRANSFORM[crs]


@pytest.mark.parametrize("wgs_lng,wgs_lat,gcj_lng,gcj_lat", EVILTRANSFORM)
def test_gcj02_inverse_recovers_the_wgs84_point(wgs_lng, wgs_lat, gcj_lng, gcj_lat):
    lng, lat = convert(to_wgs84, [gcj_lng], [gcj_lat], GCJ02)
    assert error_m(lng, lat, wgs_lng, wgs_lat)[0] < 0.001


@pytest.mark.parametrize("crs", [GCJ02, BD09])
def test_inverse_within_a_centimetre_on_shenzhen_taxi_points(shared_data, crs):
    """Every real pick-up and drop-off point, taken as WGS84, sent forward and brought back."""
    table = pv.read_csv(shared_data / "shenzhen" / "sz_taxi_trips_pygeo_tutorial_taxi-price.csv")
    lng = np.concatenate([table.column("Lng").to_numpy(), table.column("ELng").to_numpy()]).astype(float)
    lat = np.concatenate([table.column("Lat").to_numpy(), table.column("ELat").to_numpy()]).astype(float)
    ok = np.isfinite(lng) & np.isfinite(lat)
    lng, lat = lng[ok], lat[ok]
    assert len(lng) > 20_000
    shifted = convert(from_wgs84, lng, lat, crs)
    assert np.median(error_m(*shifted, lng, lat)) > 300  # the offset is real: hundreds of metres
    back_lng, back_lat = convert(to_wgs84, *shifted, crs)
    assert error_m(back_lng, back_lat, lng, lat).max() < 0.01


def test_gcj02_leaves_points_outside_china_and_invalid_ones_become_nan():
    lng = [2.35, -74.0, np.nan, 200.0, 114.0]
    lat = [48.85, 40.7, 22.5, 22.5, -95.0]
    out_lng, out_lat = convert(to_wgs84, lng, lat, GCJ02)
    assert out_lng[:2].tolist() == lng[:2] and out_lat[:2].tolist() == lat[:2]
    assert np.isnan(out_lng[2:]).all() and np.isnan(out_lat[2:]).all()


def test_wgs84_is_passed_through():
    lng, lat = convert(to_wgs84, [114.1, 114.2], [22.6, 22.7], WGS84)
    assert lng.tolist() == [114.1, 114.2] and lat.tolist() == [22.6, 22.7]
