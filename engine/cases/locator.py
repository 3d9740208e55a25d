"""How the intake places a report: a :class:`Locator` places points on one layer version
(:class:`AssignerLocator`: the exact assigner, after converting GCJ-02 / BD-09 to WGS84), and
:func:`read_buildings` gives the positions of building codes."""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

from citygrid.engine.layers import coordinates
from citygrid.engine.layers.assignment import Assigner
from citygrid.engine.files import read_table
from citygrid.engine.layers.layer import GridLayer




class Located(NamedTuple):
    grid_rows: np.ndarray  #: int32, -1 where no grid
    status: np.ndarray  #: uint8 :class:`citygrid.engine.layers.assignment.Status`
    lng: np.ndarray  #: WGS84 longitude of each point
    lat: np.ndarray


class Locator(Protocol):
    """Places points on one layer version: ``locate(lng, lat, crs)`` for one coordinate system."""

    layer: GridLayer

    def locate(self, lng: np.ndarray, lat: np.ndarray, crs: str) -> Located: ...


class AssignerLocator:
    """Places points with the exact assigner of a layer version (:mod:`citygrid.engine.layers.assignment`):
    converted to WGS84 first (GCJ-02 and BD-09 reports), then one grid per point; ``fallback_m``
    places a point just outside every grid in the nearest one within that distance (属地兜底)."""

    def __init__(self, assigner: Assigner, *, fallback_m: float = 0.0):
        self.assigner = assigner
        self.layer = assigner.layer
        self.fallback_m = fallback_m

    @classmethod
    def for_layer(cls, layer: GridLayer, *, fallback_m: float = 0.0) -> "AssignerLocator":
        return cls(Assigner.for_layer(layer), fallback_m=fallback_m)

    def locate(self, lng: np.ndarray, lat: np.ndarray, crs: str) -> Located:
        if not coordinates.is_wgs84(crs):
            lng, lat = coordinates.to_wgs84(lng, lat, crs)
        assignment = self.assigner.assign(lng, lat, fallback_m=self.fallback_m)
        return Located(assignment.grid_rows, assignment.status, np.asarray(lng, float), np.asarray(lat, float))


def read_buildings(path) -> dict[str, tuple[float, float]]:
    """Building positions (WGS84) by building code from a Parquet table with ``building_code``,
    ``lng``, ``lat`` columns (the demo's ``buildings.parquet``)."""
    table = read_table(path, what="building positions", columns=["building_code", "lng", "lat"], errors=(KeyError,))
    codes = table.column("building_code").to_pylist()
    return dict(zip(codes, zip(table.column("lng").to_pylist(), table.column("lat").to_pylist())))
