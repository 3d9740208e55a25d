"""The files of a demo district: Arrow schemas with field descriptions, and the (Geo)Parquet writer.

Geometry columns are WKB in a column named ``geometry`` with GeoParquet 1.1 ``geo`` metadata
(CRS OGC:CRS84, i.e. WGS84 longitude / latitude, planar edges). ``engine/demo/SCHEMA.md`` documents
every file; the short descriptions here go into each Arrow field's ``description`` metadata.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyproj
import shapely

GEOPARQUET_VERSION = "1.1.0"
_UTC_MS = pa.timestamp("ms", tz="UTC")
_GEOPARQUET_TYPES = {0: "Point", 1: "LineString", 3: "Polygon", 4: "MultiPoint", 5: "MultiLineString",
                     6: "MultiPolygon", 7: "GeometryCollection"}

_DISTRICT = [
    ("district_code", pa.string(), "6-digit administrative code of the district (440307)"),
    ("district_name", pa.string(), "district name (龙岗区)"),
]
_GEOMETRY = ("geometry", pa.binary(), "WKB geometry, WGS84 lon/lat (OGC:CRS84)")

#: Columns of every table: (name, Arrow type, short description), in file order.
SCHEMAS: dict[str, list[tuple[str, pa.DataType, str]]] = {
    "grids": [
        ("grid_code", pa.string(), "15-digit grid code: district 6 + street 3 + community 3 + sequence 3"),
        ("grid_name", pa.string(), "grid name, e.g. 长龙社区第3网格"),
        ("grid_type", pa.string(), "grid type code 01..08"),
        ("grid_type_name", pa.string(), "grid type name, e.g. 城市社区网格"),
        ("community_code", pa.string(), "12-digit community code (street code + 3 digits)"),
        ("community_name", pa.string(), "community name, e.g. 长龙社区"),
        ("street_code", pa.string(), "9-digit street code (district code + 3 digits)"),
        ("street_name", pa.string(), "street name, e.g. 布吉街道"),
        *_DISTRICT,
        ("area_m2", pa.float64(), "area in square metres (equal-area projection)"),
        _GEOMETRY,
    ],
    "communities": [
        ("community_code", pa.string(), "12-digit community code (street code + 3 digits)"),
        ("community_name", pa.string(), "community name"),
        ("street_code", pa.string(), "9-digit code of the parent street"),
        ("street_name", pa.string(), "name of the parent street"),
        *_DISTRICT,
        ("n_grids", pa.int32(), "number of grids in the community"),
        ("area_m2", pa.float64(), "area in square metres (equal-area projection)"),
        _GEOMETRY,
    ],
    "streets": [
        ("street_code", pa.string(), "9-digit street code (district code + 3 digits)"),
        ("street_name", pa.string(), "street name"),
        *_DISTRICT,
        ("n_communities", pa.int32(), "number of communities in the street"),
        ("n_grids", pa.int32(), "number of grids in the street"),
        ("area_m2", pa.float64(), "area in square metres (equal-area projection)"),
        _GEOMETRY,
    ],
    "buildings": [
        ("building_code", pa.string(), "19-digit building code: grid code + 4-digit sequence (north to south)"),
        ("grid_code", pa.string(), "code of the grid the building stands in"),
        ("community_code", pa.string(), "code of the building's community"),
        ("building_type", pa.string(), "building kind, e.g. 住宅, 城中村自建房, 厂房"),
        ("floors", pa.int32(), "number of floors"),
        ("dwellings", pa.int32(), "number of dwellings (0 for non-residential buildings)"),
        ("built_year", pa.int32(), "year of construction"),
        ("lng", pa.float64(), "longitude, WGS84"),
        ("lat", pa.float64(), "latitude, WGS84"),
        ("address", pa.string(), "address, e.g. 深圳市龙岗区布吉街道长龙社区长龙路128号翠景花园5栋"),
        ("road", pa.string(), "road (or village lane) of the door number, e.g. 长龙路, 长龙新村3巷"),
        ("door_number", pa.string(), "door number on the road or lane (门牌号), e.g. 128"),
        ("estate", pa.string(), "estate, park, tower or campus (null for urban-village houses)"),
        ("building_number", pa.string(), "building within the estate, e.g. 5 (5栋) or A (A座); null when none"),
        _GEOMETRY,
    ],
    "units": [
        ("unit_code", pa.string(), "23-digit unit code: building code + 4-digit sequence"),
        ("building_code", pa.string(), "code of the unit's building"),
        ("grid_code", pa.string(), "code of the building's grid"),
        ("kind", pa.string(), "dwelling, dormitory, shop, workshop or office"),
        ("entrance", pa.int32(), "entrance (单元) of a low-rise block; null when the building has one"),
        ("floor", pa.int32(), "floor, from 1 (ground floor)"),
        ("number", pa.string(), "room number on the door: floor x 100 + door, e.g. 1203"),
        ("area_m2", pa.float64(), "floor area in square metres; null when unknown"),
        ("rental", pa.bool_(), "whether the unit is let (出租屋)"),
        ("rental_class", pa.string(), "rental class (分类), e.g. 整租, 合租, 城中村出租房; null when not let"),
        ("control_level", pa.string(), "control level (分级): 绿色, 黄色 or 红色; null when not let"),
        ("address", pa.string(), "address: the building's + entrance + room, e.g. …5栋2单元502室"),
    ],
    "residents": [
        ("resident_id", pa.string(), "resident id R + 7 digits (or more)"),
        ("name", pa.string(), "made-up name"),
        ("gender", pa.string(), "男 or 女"),
        ("birth_year", pa.int32(), "year of birth"),
        ("population_type", pa.string(), "户籍人口 (registered) or 流动人口 (non-registered)"),
        ("origin_province", pa.string(), "province of origin"),
        ("building_code", pa.string(), "code of the building the resident lives in"),
        ("grid_code", pa.string(), "code of the building's grid"),
        ("unit_code", pa.string(), "code of the unit (dwelling or dormitory room) the resident lives in"),
    ],
    "businesses": [
        ("business_id", pa.string(), "business id B + 7 digits (or more)"),
        ("name", pa.string(), "made-up trade name"),
        ("industry", pa.string(), "industry, e.g. 餐饮, 零售, 制造"),
        ("business_form", pa.string(), "企业 (company) or 个体工商户 (sole trader)"),
        ("employees", pa.int32(), "number of employees"),
        ("opened_year", pa.int32(), "year the business opened"),
        ("building_code", pa.string(), "code of the building the business is in"),
        ("grid_code", pa.string(), "code of the building's grid"),
        ("lng", pa.float64(), "longitude of the building, WGS84"),
        ("lat", pa.float64(), "latitude of the building, WGS84"),
        ("unit_code", pa.string(), "code of the shop, workshop or office it takes; null when it sits in the building"),
        _GEOMETRY,
    ],
    "workers": [
        ("worker_id", pa.string(), "worker id W + 7 digits"),
        ("name", pa.string(), "made-up name"),
        ("role", pa.string(), "role: 网格员, 网格长 or a department officer title"),
        ("department", pa.string(), "department as named in the taxonomy (网格员 for grid staff)"),
        ("grid_code", pa.string(), "code of the grid the worker serves or is based in"),
        ("community_code", pa.string(), "code of that grid's community"),
        ("skills", pa.list_(pa.string()), "taxonomy class codes the worker can handle"),
        ("shift", pa.string(), "weekly shift pattern, e.g. mon-fri 08:30-12:00,14:00-18:00 (local time)"),
        ("capacity", pa.int32(), "most open events the worker should hold"),
    ],
    "events": [
        ("event_id", pa.string(), "event id E + 7 digits (or more), in time order"),
        ("category_code", pa.string(), "taxonomy category code"),
        ("lng", pa.float64(), "longitude, WGS84"),
        ("lat", pa.float64(), "latitude, WGS84"),
        ("occurred_at", _UTC_MS, "when it was reported (UTC; local time is Asia/Shanghai, UTC+8)"),
        ("source", pa.string(), "intake channel code, e.g. inspector_terminal, hotline_12345"),
        ("grid_code", pa.string(), "code of the grid that covers the point (ground truth)"),
        ("building_code", pa.string(), "building the event is at; null for street-level events"),
        ("description", pa.string(), "short made-up description"),
        ("anomaly_id", pa.string(), "id of the injected anomaly; null for background events"),
    ],
    "anomalies": [
        ("anomaly_id", pa.string(), "anomaly id A + 3 digits"),
        ("kind", pa.string(), "spike (one grid and category) or cluster (a disc of one category)"),
        ("category_code", pa.string(), "taxonomy category code of the injected events"),
        ("grid_code", pa.string(), "the spike's grid, or the grid at the cluster's centre"),
        ("center_lng", pa.float64(), "longitude of the centre, WGS84"),
        ("center_lat", pa.float64(), "latitude of the centre, WGS84"),
        ("radius_m", pa.float64(), "cluster radius, or the spike grid's equal-area radius, in metres"),
        ("start_at", _UTC_MS, "start of the anomaly (UTC)"),
        ("end_at", _UTC_MS, "end of the anomaly (UTC)"),
        ("n_events", pa.int32(), "number of injected events"),
        ("expected_background", pa.float64(), "expected background events of the category in the grid meanwhile"),
        ("description", pa.string(), "short description"),
    ],
}


@lru_cache(maxsize=1)
def _crs84_projjson() -> dict:
    return pyproj.CRS.from_user_input("OGC:CRS84").to_json_dict()


def _geo_metadata(geometries: np.ndarray) -> bytes:
    types = sorted(_GEOPARQUET_TYPES[int(t)] for t in np.unique(shapely.get_type_id(geometries)))
    bounds = shapely.total_bounds(geometries)
    column = {
        "encoding": "WKB",
        "geometry_types": types,
        "crs": _crs84_projjson(),
        "edges": "planar",
        "bbox": [float(b) for b in bounds],
    }
    meta = {"version": GEOPARQUET_VERSION, "primary_column": "geometry", "columns": {"geometry": column}}
    return json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8")


def write_table(path: Path, name: str, columns: dict[str, object], geometries: np.ndarray | None = None) -> int:
    """Write table ``name`` (columns by name, in schema order) to ``path``; returns the row count.

    With ``geometries`` the file is GeoParquet: their WKB fills the ``geometry`` column. A column may be
    given as an Arrow array (cast to the schema's type) or as anything ``pyarrow.array`` takes.
    """
    fields, arrays = [], []
    for column, dtype, description in SCHEMAS[name]:
        values = shapely.to_wkb(geometries, output_dimension=2, byte_order=1) if column == "geometry" \
            else columns[column]
        if isinstance(values, (pa.Array, pa.ChunkedArray)):
            arrays.append(values.cast(dtype))
            fields.append(pa.field(column, dtype, metadata={"description": description}))
            continue
        if isinstance(values, np.ndarray) and values.dtype.kind in "OU":
            values = values.tolist()
        arrays.append(pa.array(values, type=dtype))
        fields.append(pa.field(column, dtype, metadata={"description": description}))
    metadata = {"geo": _geo_metadata(geometries)} if geometries is not None else None
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=metadata))
    pq.write_table(table, path, compression="zstd")
    return table.num_rows
