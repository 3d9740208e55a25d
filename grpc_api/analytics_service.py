"""``citygrid.v1.AnalyticsService``: live dashboards over the engine's
:class:`~citygrid.engine.analytics.queries.Analytics` (held by
:class:`~citygrid.engine.analytics.host.AnalyticsHost`, built by the server factory).

The servicer converts messages to engine calls and back; the rules (roles, jurisdiction from the
caller's token, dimensions, measures, the cell limit) are the engine's, and its errors map to
status codes through :mod:`citygrid.grpc_api.errors`. Its own limits are named here:
:data:`MAX_COLUMN_ROWS` (larger tables go as Arrow IPC bytes) and the WatchTallies interval bounds.

The five queries are marked :func:`~citygrid.grpc_api.threads.at_hand`: an answer the engine
remembers (nothing committed since it was counted, and it still holds at the clock's present) is
handed back by the event loop as the serialised message kept beside it, without a handler thread
(the thread hop, and serialising the message per call, cost more than the rest of such a call);
a question to count goes to a handler thread.

``WatchTallies`` is async: each check (a catch-up of the mirror and one count) runs in a handler
thread; between checks the stream sleeps on the event loop and holds no thread (as ``WatchDispatches``
waits for news), and a client that goes away or a deadline that passes ends it.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
import numpy as np

from citygrid.engine.analytics.host import AnalyticsHost
from citygrid.engine.analytics.queries import AREA_LEVELS, TIME_DIMENSIONS, Table
from citygrid.engine.errors import InvalidInput, Overloaded
from citygrid.grpc_api import wire
from citygrid.grpc_api._pb import analytics_pb2, analytics_pb2_grpc
from citygrid.grpc_api.convert import from_timestamp, to_timestamp
from citygrid.grpc_api.interceptors import Authenticator
from citygrid.grpc_api.threads import Blocking, at_hand

SERVICE_NAME = analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"].full_name
#: Most rows of a table sent as columns; larger ones go as Arrow IPC bytes.
MAX_COLUMN_ROWS = 10_000
#: WatchTallies: seconds between checks when the request gives none, and the bounds of what it may give.
DEFAULT_INTERVAL_S = 5.0
MIN_INTERVAL_S, MAX_INTERVAL_S = 1.0, 3600.0
#: Top areas when the request gives no n.
DEFAULT_TOP = 20
#: What WatchTallies counts per area.
TALLIES = ("reported", "closed", "overdue_now")
#: How far past the clock's present a tally's window reaches (reports may be dated a little ahead).
_AHEAD = timedelta(days=1)


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServiceServicer):
    def __init__(self, host: AnalyticsHost, auth: Authenticator, blocking: Blocking, max_message_bytes: int):
        self._host = host
        self._auth = auth
        self._blocking = blocking
        self._max_bytes = max_message_bytes

    @at_hand(lambda servicer, request: servicer._at_hand("Aggregate", request))
    def Aggregate(self, request, context):
        principal = self._auth.principal()
        dimensions = list(request.dimensions)
        if request.bucket:
            if request.bucket not in TIME_DIMENSIONS:
                raise InvalidInput(f"bucket {request.bucket!r}: choose one of {', '.join(TIME_DIMENSIONS)}")
            dimensions.append(request.bucket)
        start, end = _window(request)
        return self._remembered("Aggregate", request, principal, lambda: self._table(self._host.analytics().aggregate(
            principal, start=start, end=end, dimensions=dimensions, measures=list(request.measures) or ["reported"],
            filters=_filters(request.filters)), request.format))

    @at_hand(lambda servicer, request: servicer._at_hand("Trend", request))
    def Trend(self, request, context):
        principal = self._auth.principal()
        start, end = _window(request)

        def build():
            trend = self._host.analytics().trend(principal, start=start, end=end,
                                                 measure=request.measure or "reported", filters=_filters(request.filters))
            return analytics_pb2.TrendResponse(measure=trend.measure, current=trend.current, previous=trend.previous,
                                               year_before=trend.year_before, vs_previous=trend.vs_previous,
                                               vs_year_before=trend.vs_year_before)

        return self._remembered("Trend", request, principal, build)

    @at_hand(lambda servicer, request: servicer._at_hand("TopAreas", request))
    def TopAreas(self, request, context):
        principal = self._auth.principal()
        start, end = _window(request)

        def build():
            ranks = self._host.analytics().top_areas(principal, level=request.level, start=start, end=end,
                                                     by=request.by or "count", n=request.n or DEFAULT_TOP,
                                                     measure=request.measure or "reported",
                                                     filters=_filters(request.filters))
            return analytics_pb2.TopAreasResponse(areas=[
                analytics_pb2.AreaRank(code=r.code or "", count=r.count, previous=r.previous,
                                       per_1000_residents=r.per_1000_residents, growth=r.growth) for r in ranks])

        return self._remembered("TopAreas", request, principal, build)

    @at_hand(lambda servicer, request: servicer._at_hand("Heatmap", request))
    def Heatmap(self, request, context):
        principal = self._auth.principal()
        start, end = _window(request)
        resolution = request.h3_resolution if request.HasField("h3_resolution") else None
        return self._remembered("Heatmap", request, principal, lambda: self._table(self._host.analytics().heatmap(
            principal, start=start, end=end, h3_resolution=resolution, filters=_filters(request.filters)),
            request.format))

    @at_hand(lambda servicer, request: servicer._at_hand("Kpis", request))
    def Kpis(self, request, context):
        principal = self._auth.principal()
        start, end = _window(request)
        return self._remembered("Kpis", request, principal, lambda: self._table(self._host.analytics().kpis(
            principal, unit=request.unit, start=start, end=end, filters=_filters(request.filters)), request.format))

    async def WatchTallies(self, request, context):
        principal = self._auth.principal()
        if request.level not in AREA_LEVELS:
            raise InvalidInput(f"level {request.level!r}: choose one of {', '.join(AREA_LEVELS)}")
        interval = request.interval_seconds or DEFAULT_INTERVAL_S
        if not (math.isfinite(interval) and MIN_INTERVAL_S <= interval <= MAX_INTERVAL_S):
            raise InvalidInput(f"interval_seconds {interval}: give {MIN_INTERVAL_S:g}-{MAX_INTERVAL_S:g} seconds")
        since = from_timestamp(request, "since")
        filters = _filters(request.filters)
        analytics = await self._blocking(self._host.analytics)

        def count() -> tuple[datetime, dict[str, tuple[int, ...]]]:
            now = analytics.clock()
            start = since or _local_midnight(now, analytics.config.timezone)
            table = analytics.aggregate(principal, start=start, end=max(now, start) + _AHEAD,
                                        dimensions=[request.level], measures=TALLIES, filters=filters)
            c = table.columns
            return now, {code or "": tuple(int(c[m][k]) for m in TALLIES) for k, code in enumerate(c[request.level])}

        last: dict[str, tuple[int, ...]] | None = None
        while True:
            now, counts = await self._blocking(count)
            if last is None:
                changed = counts
            else:
                gone = {code: (0,) * len(TALLIES) for code in last.keys() - counts.keys()}
                changed = {code: v for code, v in counts.items() if last.get(code) != v} | gone
            if last is None or changed:
                yield analytics_pb2.TalliesUpdate(at=to_timestamp(now), full=last is None, areas=[
                    analytics_pb2.AreaCount(code=code, **dict(zip(TALLIES, v))) for code, v in sorted(changed.items())])
            last = counts
            await asyncio.sleep(interval)

    def _at_hand(self, method: str, request) -> bytes | None:
        """The remembered answer of ``method`` to ``request`` when the engine has it without waiting
        (:meth:`~citygrid.engine.analytics.queries.Analytics.at_hand`), else ``None``: on the event
        loop, before a handler thread is asked (:func:`~citygrid.grpc_api.threads.at_hand`)."""
        analytics = self._host.at_hand()
        return None if analytics is None else analytics.at_hand(_question(method, request), self._auth.principal())

    def _remembered(self, method: str, request, principal, build) -> bytes:
        """The answer of ``method`` to ``request`` as the serialised message, built by ``build`` and
        serialised once, or remembered by the engine beside its own answers, as long as those hold (a
        big screen's callers ask the same questions; building a large table's message, and serialising
        it, costs more than counting it: 0.5 ms for the 273 kB of KPIs by worker, on the event loop
        when grpc serialises it). The bytes go out as they are (:mod:`~citygrid.grpc_api.interceptors`
        sends a servicer's ``bytes`` unserialised); callers share them."""
        return self._host.analytics().remembered(_question(method, request), principal, lambda: _serialised(build()))

    # ------------------------------------------------------------------ tables

    def _table(self, table: Table, answer_format: int) -> bytes:
        """The table as a serialised ``Table`` message: columns, or Arrow IPC bytes when asked or large."""
        rows = len(table)
        if answer_format == analytics_pb2.ANSWER_FORMAT_ARROW or (
                answer_format == analytics_pb2.ANSWER_FORMAT_AUTO and rows > MAX_COLUMN_ROWS):
            data = arrow_ipc(table)
            if len(data) > self._max_bytes:
                raise Overloaded(f"the answer has {rows:,} rows ({len(data):,} bytes as Arrow), more than the server "
                                 f"sends in one message ({self._max_bytes:,} bytes): narrow the window, the buckets "
                                 "or the dimensions")
            return analytics_pb2.Table(rows=rows, arrow_ipc=data).SerializeToString()
        if rows > MAX_COLUMN_ROWS:
            raise Overloaded(f"the answer has {rows:,} rows; as columns at most {MAX_COLUMN_ROWS:,}: ask for Arrow "
                             "(ANSWER_FORMAT_AUTO or ANSWER_FORMAT_ARROW) or narrow the query")
        return columns_message(rows, table.columns)


def _question(method: str, request) -> tuple:
    """What the engine remembers ``method``'s answer to ``request`` under (beside the caller)."""
    return "grpc", method, request.SerializeToString(deterministic=True)


def arrow_ipc(table: Table) -> bytes:
    """The table as an Arrow IPC stream."""
    import pyarrow as pa

    arrow = table.to_arrow()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, arrow.schema) as writer:
        writer.write_table(arrow)
    return sink.getvalue().to_pybytes()


def columns_message(rows: int, columns: dict) -> bytes:
    """``Table(rows=rows, columns=[...])`` serialised, the same bytes protobuf writes, written field by
    field: numeric columns as packed values encoded by numpy at once, strings by protobuf. Through
    message objects (a Python object per value) a 2,902-row KPI table took 5.5 ms to become bytes,
    more than counting it (2.0 ms)."""
    parts = [b"\x08" + wire.varint(rows)] if rows else []  # rows = 1 (a varint; proto3 leaves out 0)
    for name, values in columns.items():
        parts.append(wire.field(2, (wire.field(1, name.encode()) if name else b"") + _values(values)))
    return b"".join(parts)


def _values(values) -> bytes:
    """A column's ``values`` oneof: ``ints`` (3) or ``doubles`` (4), each with its values packed in
    field 1 (left out when there are none), or ``strings`` (2; "" for none)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iub":
        packed = wire.varints(values.astype(np.int64))
        return wire.field(3, wire.field(1, packed) if packed else b"")
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        packed = values.astype("<f8").tobytes()
        return wire.field(4, wire.field(1, packed) if packed else b"")
    values = list(values)
    if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return _values(np.array([int(v) for v in values], np.int64))
    return wire.field(2, analytics_pb2.StringValues(values=["" if v is None else str(v) for v in values])
                      .SerializeToString())


def _serialised(message) -> bytes:
    return message if type(message) is bytes else message.SerializeToString()


def _window(request) -> tuple[datetime, datetime]:
    if not request.HasField("window"):
        raise InvalidInput("the window is required: window.start and window.end")
    start, end = from_timestamp(request.window, "start"), from_timestamp(request.window, "end")
    if start is None or end is None:
        raise InvalidInput("the window needs both start and end")
    return start, end


def _filters(filters) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in filters:
        if f.dimension in out:
            raise InvalidInput(f"the filter on {f.dimension!r} is given twice; give its codes in one filter")
        out[f.dimension] = list(f.codes)
    return out


def _local_midnight(now: datetime, tz: str) -> datetime:
    local = now.astimezone(ZoneInfo(tz))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def add_to_server(server: grpc.Server, servicer: AnalyticsServicer) -> str:
    """Register ``servicer`` on ``server``; return the service's full name."""
    analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(servicer, server)
    return SERVICE_NAME
