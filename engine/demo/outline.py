"""The real Longgang district outline and the planar frames the demo generator works in.

The outline ships as package data (``data/longgang.geojson``, see ``data/ATTRIBUTION.md``).
Shapes are drawn in a local metric plane (:class:`LocalPlane`, an equirectangular approximation
that is good enough for drawing) and converted back to lon/lat before they are noded against the
outline, so the outline's own coordinates are never changed. Areas are measured in a Lambert
azimuthal equal-area projection centred on the district (:func:`area_m2`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import pyproj
import shapely

DISTRICT_CODE = "440307"
DISTRICT_NAME = "龙岗区"

_EQUAL_AREA = "+proj=laea +lat_0=22.70 +lon_0=114.20 +datum=WGS84 +units=m +no_defs"
_METRES_PER_DEGREE_LAT = 110_574.0
_METRES_PER_DEGREE_LNG_EQUATOR = 111_320.0


@lru_cache(maxsize=1)
def load_outline() -> shapely.Polygon:
    """Return the Longgang outline as a lon/lat (WGS84) shapely Polygon.

    >>> outline = load_outline()
    >>> outline.geom_type, len(outline.exterior.coords)  # the closing vertex repeats the first
    ('Polygon', 1608)
    """
    text = resources.files(__package__).joinpath("data/longgang.geojson").read_text("utf-8")
    (feature,) = json.loads(text)["features"]
    polygon = shapely.geometry.shape(feature["geometry"])
    shapely.prepare(polygon)
    return polygon


@dataclass(frozen=True)
class LocalPlane:
    """Equirectangular metres around (lng0, lat0): x east, y north. Used only to draw shapes."""

    lng0: float
    lat0: float

    @classmethod
    def around(cls, polygon: shapely.Polygon) -> LocalPlane:
        """The plane centred on the middle of ``polygon``'s bounds."""
        min_lng, min_lat, max_lng, max_lat = polygon.bounds
        return cls((min_lng + max_lng) / 2.0, (min_lat + max_lat) / 2.0)

    @property
    def _mx(self) -> float:
        return _METRES_PER_DEGREE_LNG_EQUATOR * float(np.cos(np.radians(self.lat0)))

    def to_xy(self, lng: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Convert lon/lat degrees to plane metres."""
        return (np.asarray(lng) - self.lng0) * self._mx, (np.asarray(lat) - self.lat0) * _METRES_PER_DEGREE_LAT

    def to_lnglat(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Convert plane metres to lon/lat degrees."""
        return self.lng0 + np.asarray(x) / self._mx, self.lat0 + np.asarray(y) / _METRES_PER_DEGREE_LAT

    def metres_to_degrees(self, dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Convert east / north offsets in metres to longitude / latitude offsets in degrees."""
        return np.asarray(dx) / self._mx, np.asarray(dy) / _METRES_PER_DEGREE_LAT


@lru_cache(maxsize=1)
def _equal_area_transformer() -> pyproj.Transformer:
    return pyproj.Transformer.from_crs("EPSG:4326", _EQUAL_AREA, always_xy=True)


def area_m2(geometries) -> np.ndarray:
    """Areas in square metres of lon/lat geometries, measured in a district-centred LAEA projection."""
    transformer = _equal_area_transformer()

    def project(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.area(shapely.transform(geometries, project))
