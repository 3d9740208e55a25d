"""A layer version's areas as Mapbox Vector Tiles (MVT 2.1), so a map draws them without cutting
GeoJSON into tiles itself.

The page's map (MapLibre) given the layer as GeoJSON spends about a second of its worker's CPU
indexing 3,823 grids (geojson-vt) before the first tile, on every page load; the tiles it cuts are
the same for every load of a layer version. Here they are cut once per version, level set,
tolerance, jurisdiction and tile, and cached by the caller (:class:`TileSet` holds what every tile
of one version shares: the shapes projected to Web Mercator and their spatial index).

A tile holds one MVT layer per level asked for (``grid``, ``community``, ``street``), each feature
with its ``code`` (string) property and, for grids, the grid's row as the feature id. The shapes are
the level's coverage-simplified shapes (:meth:`LayerShapes.geometries`: neighbours keep the same
vertices, so no gap opens), projected to Web Mercator, clipped to the tile plus a buffer
(:data:`BUFFER` of :data:`EXTENT` units, so lines drawn across a tile edge have their other half
in the tile), and rounded to the tile's integer grid: the same vertex rounds to the same integer in
every shape that shares it. Rings that collapse to fewer than three distinct points or to no area
at the tile's resolution are dropped (a grid smaller than a tile unit at low zoom); MVT's winding
rule is applied (exterior rings clockwise with y down, i.e. positive shoelace area; holes the
other way).

The protobuf wire format is written here (the MVT schema is four messages; the geometry is packed
varints of zig-zag deltas), tested by decoding with an independent reader (mapbox-vector-tile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely

from citygrid.engine.errors import InvalidInput

#: Tile units per tile side (the MVT default) and the clipping buffer around a tile, in those units.
EXTENT = 4096
BUFFER = 64
#: The deepest zoom served: tiles of a deeper zoom would hold a fraction of a grid (maps overzoom).
MAX_ZOOM = 16
#: Web Mercator's latitude limit.
MAX_LAT = 85.0511287798066

# protobuf wire types and the MVT commands (vector_tile.proto, spec 2.1)
_VARINT, _LEN = 0, 2
_MOVE_TO, _LINE_TO, _CLOSE_PATH = 1, 2, 7
_POLYGON = 3


def check_tile(z: int, x: int, y: int) -> tuple[int, int, int]:
    """``(z, x, y)`` as ints inside the tile pyramid, or :class:`InvalidInput` saying what is allowed."""
    try:
        z, x, y = int(z), int(x), int(y)
    except (TypeError, ValueError):
        raise InvalidInput(f"a tile is three integers z/x/y, got {z!r}/{x!r}/{y!r}") from None
    if not 0 <= z <= MAX_ZOOM:
        raise InvalidInput(f"tile zoom must be between 0 and {MAX_ZOOM}, got {z}")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise InvalidInput(f"tile {z}/{x}/{y} is outside zoom {z}'s tiles (x and y from 0 to {n - 1})")
    return z, x, y


def tile_at(lng: float, lat: float, z: int) -> tuple[int, int]:
    """The ``(x, y)`` of zoom ``z``'s tile holding the point (on an edge: the tile east and south)."""
    (wx, wy), = mercator(np.array([[lng, lat]], dtype=float))
    n = 1 << z
    return min(n - 1, max(0, int(wx * n))), min(n - 1, max(0, int(wy * n)))


def mercator(coords: np.ndarray) -> np.ndarray:
    """lng/lat (degrees, ``(n, 2)``) to Web Mercator world units: x and y in [0, 1], y down."""
    lng = coords[:, 0]
    lat = np.clip(coords[:, 1], -MAX_LAT, MAX_LAT)
    x = lng / 360.0 + 0.5
    y = 0.5 - np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) / (2 * np.pi)
    return np.column_stack([x, y])


@dataclass
class TileLevel:
    """One level's shapes in world units, their codes and spatial index."""

    name: str
    codes: list[str]
    ids: np.ndarray
    world: np.ndarray
    tree: shapely.STRtree


class TileSet:
    """The tiles of one layer version's levels: ``levels`` maps a level name to ``(codes, ids,
    shapes)``, the shapes in lng/lat (already simplified and limited to what the caller may see)."""

    def __init__(self, levels: dict[str, tuple[list[str], np.ndarray, np.ndarray]]):
        self.levels = []
        for name, (codes, ids, shapes) in levels.items():
            world = shapely.transform(np.asarray(shapes, dtype=object), mercator)
            self.levels.append(TileLevel(name, list(codes), np.asarray(ids, dtype=np.int64), world,
                                         shapely.STRtree(world)))

    def bounds(self) -> tuple[float, float, float, float]:
        """West, south, east, north (degrees) of every shape: the map's tile source bounds."""
        boxes = [shapely.total_bounds(level.world) for level in self.levels if len(level.codes)]
        if not boxes:
            return (0.0, 0.0, 0.0, 0.0)
        x0, y1 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x1, y0 = max(b[2] for b in boxes), max(b[3] for b in boxes)
        return (_lng(x0), _lat(y0), _lng(x1), _lat(y1))

    def tile(self, z: int, x: int, y: int) -> bytes:
        """The MVT bytes of tile ``z/x/y`` (empty bytes when no shape reaches it)."""
        z, x, y = check_tile(z, x, y)
        scale = float(1 << z)
        pad = BUFFER / EXTENT
        box = ((x - pad) / scale, (y - pad) / scale, (x + 1 + pad) / scale, (y + 1 + pad) / scale)
        out = bytearray()
        for level in self.levels:
            hits = np.sort(level.tree.query(shapely.box(*box)))
            if not len(hits):
                continue
            clipped = shapely.clip_by_rect(level.world[hits], *box)
            layer = _layer(level, hits, clipped, z, x, y)
            if layer:
                out += _field(3, _LEN) + _varint(len(layer)) + layer
        return bytes(out)


def _lng(wx: float) -> float:
    return (wx - 0.5) * 360.0


def _lat(wy: float) -> float:
    return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * wy))))


def _layer(level: TileLevel, hits: np.ndarray, clipped: np.ndarray, z: int, x: int, y: int) -> bytes:
    """One MVT layer of the clipped shapes (world units) at rows ``hits`` of ``level``."""
    scale = float(1 << z) * EXTENT
    rows, stream, bounds = _polygon_commands(clipped, scale, (x * EXTENT, y * EXTENT))
    if not len(rows):
        return b""
    packed, ends = _varints(stream)
    byte_bounds = np.concatenate([[0], ends])[bounds]
    features = bytearray()
    values = bytearray()
    for n, (k, start, stop) in enumerate(zip(rows.tolist(), byte_bounds[:-1].tolist(), byte_bounds[1:].tolist())):
        row = int(hits[k])
        value = level.codes[row].encode()
        values += _message(4, _field(1, _LEN) + _varint(len(value)) + value)  # Value.string_value
        tags = _varint(0) + _varint(n)  # key 0 ("code"), value n
        features += _message(2, _field(1, _VARINT) + _varint(int(level.ids[row]))
                             + _field(2, _LEN) + _varint(len(tags)) + tags
                             + _field(3, _VARINT) + _varint(_POLYGON)
                             + _field(4, _LEN) + _varint(stop - start) + packed[start:stop])
    name = level.name.encode()
    return bytes(_field(15, _VARINT) + _varint(2)  # version
                 + _field(1, _LEN) + _varint(len(name)) + name
                 + features
                 + _field(3, _LEN) + _varint(4) + b"code"
                 + values
                 + _field(5, _VARINT) + _varint(EXTENT))


def _polygon_commands(shapes: np.ndarray, scale: float, origin: tuple[float, float]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The MVT geometry commands of ``shapes``' polygons (world units) in tile units: (the indices
    of the shapes with something left, one command stream for them all, and where each one's
    commands start in it, with the end last)."""
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64), np.zeros(1, dtype=np.int64))
    parts, shape_of_part = shapely.get_parts(shapes, return_index=True)
    polygon = shapely.get_type_id(parts) == 3  # clipping can leave lines or points on the tile's edge
    parts, shape_of_part = parts[polygon], shape_of_part[polygon]
    if not len(parts):
        return empty
    rings, part_of_ring = shapely.get_rings(parts, return_index=True)
    exterior = np.ones(len(rings), dtype=bool)
    exterior[1:] = part_of_ring[1:] != part_of_ring[:-1]
    coords, ring_of_point = shapely.get_coordinates(rings, return_index=True)
    points = np.rint(coords * scale - origin).astype(np.int64)
    # a ring's points without its closing point and without repeats in a row
    last = np.ones(len(points), dtype=bool)
    last[:-1] = ring_of_point[1:] != ring_of_point[:-1]
    keep = ~last
    keep[1:] &= np.any(points[1:] != points[:-1], axis=1) | (ring_of_point[1:] != ring_of_point[:-1])
    points, ring_of_point = points[keep], ring_of_point[keep]
    n = np.bincount(ring_of_point, minlength=len(rings))
    first = np.concatenate([[0], np.cumsum(n)[:-1]])
    # the shoelace area of each ring (twice the area; positive: clockwise with y down)
    following = np.arange(len(points)) + 1
    ends = first + n - 1
    following[ends[n > 0]] = first[n > 0]
    cross = points[:, 0] * points[following, 1] - points[following, 0] * points[:, 1]
    area = np.bincount(ring_of_point, weights=cross, minlength=len(rings))
    good = (n >= 3) & (area != 0)
    # a polygon whose exterior collapsed is dropped with its holes
    good &= good[np.maximum.accumulate(np.where(exterior, np.arange(len(rings)), 0))]
    if not good.any():
        return empty
    flip = good & ((area > 0) != exterior)
    order = np.arange(len(points))
    flipped = flip[ring_of_point]
    order[flipped] = (first + ends)[ring_of_point[flipped]] - order[flipped]
    points = points[order]
    take = good[ring_of_point]
    points, ring_of_point = points[take], ring_of_point[take]
    kept = np.flatnonzero(good)
    n, shape_of_ring = n[kept], shape_of_part[part_of_ring[kept]]
    ring_index = np.repeat(np.arange(len(kept)), n)
    # deltas from the previous point; a shape's first point is from (0, 0)
    starts_shape = np.ones(len(kept), dtype=bool)
    starts_shape[1:] = shape_of_ring[1:] != shape_of_ring[:-1]
    ring_first = np.concatenate([[0], np.cumsum(n)[:-1]])
    deltas = np.diff(points, axis=0, prepend=np.zeros((1, 2), dtype=np.int64))
    deltas[ring_first[starts_shape]] = points[ring_first[starts_shape]]
    zigzag = (deltas << 1) ^ (deltas >> 63)
    # per ring: MoveTo(1), x, y, LineTo(n - 1), n - 1 pairs, ClosePath(1): 2n + 3 integers
    size = 2 * n + 3
    ring_out = np.concatenate([[0], np.cumsum(size)])
    stream = np.zeros(ring_out[-1], dtype=np.uint64)
    stream[ring_out[:-1]] = (1 << 3) | _MOVE_TO
    stream[ring_out[:-1] + 3] = ((n - 1) << 3) | _LINE_TO
    stream[ring_out[1:] - 1] = (1 << 3) | _CLOSE_PATH
    k_in_ring = np.arange(len(points)) - ring_first[ring_index]
    at = ring_out[ring_index] + 1 + 2 * k_in_ring + (k_in_ring > 0)
    stream[at] = zigzag[:, 0]
    stream[at + 1] = zigzag[:, 1]
    shape_start = np.flatnonzero(starts_shape)
    return shape_of_ring[shape_start], stream, np.concatenate([ring_out[shape_start], [ring_out[-1]]])


def _varints(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """``values`` (non-negative, < 2**35) as consecutive protobuf varints, and where each one's
    bytes end."""
    values = np.asarray(values, dtype=np.uint64)
    shifts = np.arange(5, dtype=np.uint64) * np.uint64(7)
    groups = (values[:, None] >> shifts) & np.uint64(0x7F)
    n_bytes = 1 + np.sum(values[:, None] >= (np.uint64(1) << shifts[1:]), axis=1)
    more = np.arange(5)[None, :] < (n_bytes[:, None] - 1)
    groups = groups | (more.astype(np.uint64) << np.uint64(7))
    used = np.arange(5)[None, :] < n_bytes[:, None]
    return groups[used].astype(np.uint8).tobytes(), np.cumsum(n_bytes)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire: int) -> bytes:
    return _varint((number << 3) | wire)


def _message(number: int, body: bytes) -> bytes:
    return _field(number, _LEN) + _varint(len(body)) + body
