"""Protobuf's wire format written straight from arrays (:mod:`citygrid.grpc_api.wire`), an
AnalyticsService table written with it (``analytics_service.columns_message``) and read back by the
client (``client.table_of``): the same bytes protobuf itself writes, the same table the client read
value by value before."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from citygrid.engine.analytics.queries import Table
from citygrid.grpc_api import wire
from citygrid.grpc_api._pb import analytics_pb2
from citygrid.grpc_api.analytics_service import columns_message
from citygrid.grpc_api.client import table_of

INT64 = st.integers(-(2**63), 2**63 - 1)
EDGES = [0, 1, 127, 128, 255, 300, 16383, 16384, 2**35, 2**56 - 1, 2**56, 2**63 - 1, -1, -128, -(2**63)]


@given(st.lists(INT64, max_size=50))
@example(EDGES)
@example([])
@example([5, 2**40])  # a small value beside a wide one
def test_varints_are_protobufs_packed_int64(values):
    packed = analytics_pb2.Int64Values(values=values).SerializeToString()
    assert (wire.field(1, wire.varints(np.array(values, np.int64))) if values else b"") == packed


@given(st.integers(0, 2**63 - 1))
@example(0)
@example(127)
@example(128)
def test_varint_is_protobufs(value):
    packed = analytics_pb2.Int64Values(values=[value]).SerializeToString()  # key, length (< 128), the varint
    assert wire.varint(value) == packed[2:]


def _protobuf_table(rows: int, columns: dict) -> bytes:
    """The table as the servicer built it with message objects (the oracle)."""
    out = []
    for name, values in columns.items():
        if isinstance(values, np.ndarray) and values.dtype.kind in "iub":
            out.append(analytics_pb2.Column(name=name, ints=analytics_pb2.Int64Values(
                values=values.astype(np.int64).tolist())))
        elif isinstance(values, np.ndarray) and values.dtype.kind == "f":
            out.append(analytics_pb2.Column(name=name, doubles=analytics_pb2.DoubleValues(values=values.tolist())))
        elif values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            out.append(analytics_pb2.Column(name=name, ints=analytics_pb2.Int64Values(values=[int(v) for v in values])))
        else:
            out.append(analytics_pb2.Column(name=name, strings=analytics_pb2.StringValues(
                values=["" if v is None else str(v) for v in values])))
    return analytics_pb2.Table(rows=rows, columns=out).SerializeToString()


DOUBLES = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([math.nan, -0.0, 5e-324])
LABELS = st.one_of(st.none(), st.text(max_size=8))


@st.composite
def tables(draw):
    n = draw(st.integers(0, 12))
    columns = {}
    for k in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["ints", "doubles", "labels", "int list", "bools", "small ints"]))
        name = draw(st.sampled_from(["", "worker", f"c{k}", "名称"])) + str(k)
        if kind == "ints":
            columns[name] = np.array(draw(st.lists(INT64, min_size=n, max_size=n)), np.int64)
        elif kind == "doubles":
            columns[name] = np.array(draw(st.lists(DOUBLES, min_size=n, max_size=n)), np.float64)
        elif kind == "labels":
            columns[name] = draw(st.lists(LABELS, min_size=n, max_size=n))
        elif kind == "int list":
            columns[name] = draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n))
        elif kind == "bools":
            columns[name] = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), np.bool_)
        else:
            columns[name] = np.array(draw(st.lists(st.integers(0, 255), min_size=n, max_size=n)), np.uint8)
    return n, columns


TABLES = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # a shared 2-core machine


@TABLES
@given(tables())
@example((0, {}))
@example((2, {"": np.array([0, 0]), "empty": np.array([], np.float64)}))
@example((3, {"grade": ["A", None, ""], "score": np.array([95.0, math.nan, -0.0]), "n": np.array([0, 128, -1])}))
def test_columns_message_is_protobufs(table):
    rows, columns = table
    assert columns_message(rows, columns) == _protobuf_table(rows, columns)


@TABLES
@given(tables())
def test_client_reads_the_table_it_read_value_by_value(table):
    rows, columns = table
    message = analytics_pb2.Table.FromString(columns_message(rows, Table(columns).columns))
    got = table_of(message)
    kinds = {"strings": pa.string(), "ints": pa.int64(), "doubles": pa.float64()}
    for column in message.columns:  # as the client built each column before: from a list of its values
        kind = column.WhichOneof("values")
        before = pa.array(list(getattr(column, kind).values) if kind else [], kinds.get(kind, pa.null()))
        now = got.column(column.name).combine_chunks()
        assert now.type == before.type and now.null_count == before.null_count == 0
        if kind == "doubles":
            assert np.array_equal(now.to_numpy(), before.to_numpy(), equal_nan=True)
            assert np.array_equal(np.signbit(now.to_numpy()), np.signbit(before.to_numpy()))
        else:
            assert now.to_pylist() == before.to_pylist()
