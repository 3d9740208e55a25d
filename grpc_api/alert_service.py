"""``citygrid.v1.AlertService``: the alerts of anomaly early warning over the engine's
:class:`~citygrid.engine.alerts.host.AlertHost` (built by the server factory, given ready-made).

The servicer converts messages to engine calls and back; roles, jurisdiction, the legal
transitions and deduplication are the engine's, and its errors map to status codes through
:mod:`citygrid.grpc_api.errors`. ``WatchAlerts`` is async and holds no thread while it waits: it
reads the alert feed from the cursor in a handler thread, and when there is nothing new waits on
the event loop for the host's news (:meth:`AlertHost.on_news`), as ``WatchDispatches`` does.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc

from citygrid.engine.alerts.host import AlertHost
from citygrid.engine.alerts.store import Alert, AlertChange, AlertFilter
from citygrid.engine.errors import InvalidInput
from citygrid.grpc_api._pb import alert_pb2, alert_pb2_grpc
from citygrid.grpc_api.convert import to_timestamp
from citygrid.grpc_api.interceptors import Authenticator
from citygrid.grpc_api.threads import Blocking

SERVICE_NAME = alert_pb2.DESCRIPTOR.services_by_name["AlertService"].full_name
DEFAULT_PAGE_SIZE = 100
#: Changes a watch reads at a time.
WATCH_PAGE = 100


class AlertServicer(alert_pb2_grpc.AlertServiceServicer):
    def __init__(self, host: AlertHost, auth: Authenticator, blocking: Blocking):
        self._host = host
        self._auth = auth
        self._blocking = blocking

    def ListAlerts(self, request, context):
        principal = self._auth.principal()
        where = AlertFilter(states=tuple(request.states), kinds=tuple(request.kinds),
                            category_codes=tuple(request.category_codes), areas=tuple(request.areas),
                            since=_day(request.since, "since"), until=_day(request.until, "until"))
        size = request.page_size or DEFAULT_PAGE_SIZE
        before = _page_token(request.page_token)
        alerts = self._host.list(principal, where, before=before, limit=size)
        token = str(alerts[-1].id) if len(alerts) == size else ""
        return alert_pb2.ListAlertsResponse(alerts=[_alert(a) for a in alerts], next_page_token=token)

    def GetAlert(self, request, context):
        principal = self._auth.principal()
        response = alert_pb2.GetAlertResponse(alert=_alert(self._host.get(request.alert_id, principal)))
        if request.include_audit:
            response.audit.extend(_change(c, with_alert=False) for c in self._host.audit(request.alert_id, principal))
        return response

    def AcknowledgeAlert(self, request, context):
        return _alert(self._host.acknowledge(request.alert_id, self._auth.principal(), request.note))

    def DismissAlert(self, request, context):
        return _alert(self._host.dismiss(request.alert_id, self._auth.principal(), request.reason))

    def AlertToEvent(self, request, context):
        alert, event_id = self._host.to_event(request.alert_id, self._auth.principal(), request.note)
        return alert_pb2.AlertToEventResponse(alert=_alert(alert), event_id=event_id)

    def RunDetection(self, request, context):
        report = self._host.run(self._auth.principal(), since=_day(request.since, "since"))
        r = report.run
        return alert_pb2.RunDetectionResponse(
            run_id=r.id, first_day=r.first_day.isoformat(), last_day=r.last_day.isoformat(), series=r.series,
            events=r.events, raised=list(report.raised), updated=list(report.updated), seconds=r.seconds)

    async def WatchAlerts(self, request, context):
        principal = self._auth.principal()
        loop = asyncio.get_running_loop()
        news = asyncio.Event()
        stop = self._host.on_news(lambda: loop.call_soon_threadsafe(news.set))
        try:
            cursor = request.after
            while True:
                news.clear()  # before the read: a commit after this point wakes the wait below
                changes = await self._blocking(self._host.feed, principal, after=cursor, limit=WATCH_PAGE)
                for change in changes:
                    yield _change(change)
                    cursor = change.cursor
                if len(changes) < WATCH_PAGE:
                    await news.wait()
        finally:
            stop()


def _day(text: str, name: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name}: {text!r} is not a date (YYYY-MM-DD)") from None


def _page_token(token: str) -> int | None:
    if not token:
        return None
    if not token.isdigit():
        raise InvalidInput(f"page_token {token[:40]!r} is not one this service gave; pass next_page_token as it came")
    return int(token)


def _alert(a: Alert) -> alert_pb2.Alert:
    g, c, s, d = a.chain
    return alert_pb2.Alert(
        alert_id=a.id, kind=a.kind, method=a.method, category_code=a.category_code, level=a.level,
        unit_code=a.unit_code, lng=a.lng, lat=a.lat, radius_m=a.radius_m, grids=list(a.grids), grid_code=g or "",
        community_code=c or "", street_code=s or "", district_code=d or "", first_day=a.first_day.isoformat(),
        last_day=a.last_day.isoformat(), observed=a.observed, expected=a.expected, score=a.score,
        peak_score=a.peak_score, p=a.p, state=a.state, raised_at=to_timestamp(a.raised_at),
        updated_at=to_timestamp(a.updated_at), updates=a.updates, event_id=a.event_id or "", reason=a.reason or "")


def _change(c: AlertChange, *, with_alert: bool = True) -> alert_pb2.AlertChange:
    return alert_pb2.AlertChange(
        cursor=c.cursor, at=to_timestamp(c.at), principal=c.principal, role=c.role, action=c.action,
        from_state=c.from_state or "", to_state=c.to_state, note=c.note, alert=_alert(c.alert) if with_alert else None)


def add_to_server(server: grpc.Server, servicer: AlertServicer) -> str:
    """Register ``servicer`` on ``server``; return the service's full name."""
    alert_pb2_grpc.add_AlertServiceServicer_to_server(servicer, server)
    return SERVICE_NAME
