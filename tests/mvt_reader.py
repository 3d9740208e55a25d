"""Reading Mapbox Vector Tiles in tests, independently of the encoder (engine/layers/tiles.py):
Google's protobuf runtime over the MVT 2.1 schema (``vector_tile.proto`` beside this file,
compiled with grpc_tools' protoc), and the spec's geometry decoding written out here."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import shapely

PROTO = Path(__file__).with_name("vector_tile.proto")


_COMPILED: list = []


def compile_schema(out: Path):
    """The schema's Python module, compiled by protoc into ``out`` (loaded under its own name)
    once per test session (protobuf's descriptor pool holds the schema once)."""
    if _COMPILED:
        return _COMPILED[0]
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO.parent}", f"--python_out={out}",
                    PROTO.name], check=True)
    spec = importlib.util.spec_from_file_location("citygrid_test_vector_tile_pb2", out / "vector_tile_pb2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _COMPILED.append(module)
    return module


def read(vector_tile, data: bytes) -> dict[str, dict]:
    """Per MVT layer: its header and {code: (id, polygon in tile units)} (the spec's decoding)."""
    tile = vector_tile.Tile()
    tile.ParseFromString(data)
    layers = {}
    for layer in tile.layers:
        features = {}
        for feature in layer.features:
            assert feature.type == vector_tile.Tile.POLYGON
            tags = list(feature.tags)
            assert len(tags) == 2 and layer.keys[tags[0]] == "code"
            code = layer.values[tags[1]].string_value
            assert code not in features, "one feature per area and tile"
            features[code] = (feature.id, polygons(list(feature.geometry)))
        layers[layer.name] = {"version": layer.version, "extent": layer.extent, "keys": list(layer.keys),
                              "features": features}
    return layers


def polygons(commands: list[int]):
    """The spec's polygon decoding: rings from MoveTo / LineTo / ClosePath with zig-zag deltas;
    a ring of positive area (clockwise, y down) starts a polygon, a negative one is its hole."""
    x = y = k = 0
    rings = []
    while k < len(commands):
        command, count = commands[k] & 7, commands[k] >> 3
        k += 1
        if command == 1:
            assert count == 1
            rings.append([])
        elif command == 7:
            assert count == 1 and len(rings[-1]) >= 3
            continue
        else:
            assert command == 2
        for _ in range(count):
            dx, dy = commands[k], commands[k + 1]
            x += (dx >> 1) ^ -(dx & 1)
            y += (dy >> 1) ^ -(dy & 1)
            rings[-1].append((x, y))
            k += 2
    shapes = []
    for ring in rings:
        area = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1]))
        assert area != 0
        if area > 0:
            shapes.append([ring, []])
        else:
            assert shapes, "a hole comes after its exterior"
            shapes[-1][1].append(ring)
    return shapely.MultiPolygon([shapely.Polygon(shell, holes) for shell, holes in shapes])
