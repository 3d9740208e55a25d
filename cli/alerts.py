"""``citygrid alerts``: anomaly early warning on a running server (AlertService).

    citygrid alerts list --state new --area 440307001 --since 2026-12-01 --limit 20
    citygrid alerts show 12                      # the alert and its audit trail
    citygrid alerts ack 12 --note "looking into it"
    citygrid alerts dismiss 12 --reason "a planned clean-up drive"
    citygrid alerts to-event 12 --note "城管 please check"   # 转工单: a report through the intake
    citygrid alerts run [--since 2026-12-01]     # a detection run now (supervisors, admins)
    citygrid alerts watch [--after CURSOR]       # changes as they happen; resume from a cursor

The connection options are those of ``citygrid events``: ``--server`` (default ``$CITYGRID_SERVER``
or ``localhost:50051``), ``--token`` (default ``$CITYGRID_TOKEN``), ``--tls-ca``, ``--timeout``.
Answers print for people; ``--json`` prints JSON instead (lists: one object a line). Exit status:
0 done, 2 a call failed (``STATUS: message`` on stderr).
"""

from __future__ import annotations

import argparse
import json

from citygrid.cli.remote import Leaves, connection_options, message_dict, remote
from citygrid.engine.alerts.store import KINDS, STATES
from citygrid.grpc_api.client import CityGridClient


def register(subparsers: argparse._SubParsersAction) -> None:
    after = argparse.ArgumentParser(add_help=False, parents=[connection_options(defaults=False)])
    after.add_argument("--json", action="store_true", help="print JSON (lists: one object a line)")
    alerts = subparsers.add_parser("alerts", help="anomaly alerts on a running server: list, show, ack, dismiss, "
                                   "to-event, run, watch", parents=[connection_options(defaults=True)])
    sub = Leaves(alerts.add_subparsers(dest="alerts_command", metavar="ALERTS_COMMAND", required=True), after)

    p = sub.add_parser("list", help="alerts, newest first (inside the token's jurisdiction)")
    p.add_argument("--state", action="append", default=[], choices=STATES, help="only this state (repeatable)")
    p.add_argument("--kind", action="append", default=[], choices=KINDS, help="only this kind (repeatable)")
    p.add_argument("--category", action="append", default=[], metavar="CODE", help="only this category (repeatable)")
    p.add_argument("--area", action="append", default=[], metavar="CODE",
                   help="only inside this grid, community, street or district (repeatable)")
    p.add_argument("--since", default="", metavar="YYYY-MM-DD", help="only alerts whose window ends on or after")
    p.add_argument("--until", default="", metavar="YYYY-MM-DD", help="only alerts whose window starts on or before")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N alerts (default 50; 0: all)")
    p.set_defaults(func=remote(_list))

    p = sub.add_parser("show", help="one alert and its audit trail")
    p.add_argument("alert_id", type=int)
    p.set_defaults(func=remote(_show))

    p = sub.add_parser("ack", help="acknowledge a new alert")
    p.add_argument("alert_id", type=int)
    p.add_argument("--note", default="")
    p.set_defaults(func=remote(lambda c, a: _print_alert(c.acknowledge_alert(a.alert_id, a.note), a)))

    p = sub.add_parser("dismiss", help="dismiss an alert (not a real anomaly), with a reason")
    p.add_argument("alert_id", type=int)
    p.add_argument("--reason", required=True, help="why it is not a real anomaly")
    p.set_defaults(func=remote(lambda c, a: _print_alert(c.dismiss_alert(a.alert_id, a.reason), a)))

    p = sub.add_parser("to-event", help="turn an alert into an event (转工单) through the intake")
    p.add_argument("alert_id", type=int)
    p.add_argument("--note", default="")
    p.set_defaults(func=remote(_to_event))

    p = sub.add_parser("run", help="run a detection now (supervisors and admins)")
    p.add_argument("--since", default="", metavar="YYYY-MM-DD",
                   help="first day to judge (default: the last day the previous run judged)")
    p.set_defaults(func=remote(_run))

    p = sub.add_parser("watch", help="changes to the alerts as they happen (Ctrl-C stops)")
    p.add_argument("--after", type=int, default=0, metavar="CURSOR", help="resume after this cursor (default: all)")
    p.add_argument("--count", type=int, default=0, metavar="N", help="stop after N changes (default: never)")
    p.set_defaults(func=remote(_watch))


def _line(a) -> str:
    where = a.unit_code if a.level != "disc" else f"disc r={a.radius_m:.0f} m around {a.unit_code}"
    window = a.first_day if a.first_day == a.last_day else f"{a.first_day}..{a.last_day}"
    return (f"#{a.alert_id:<6d} {a.state:12s} {a.level:9s} {where:18s} {a.category_code:6s} {window:22s} "
            f"{a.observed:g} observed / {a.expected:.1f} expected  score {a.score:.1f}  {a.method}")


def _print_alert(a, args) -> None:
    print(json.dumps(message_dict(a), ensure_ascii=False) if args.json else _line(a))


def _list(client: CityGridClient, args) -> None:
    limit = args.limit if args.limit > 0 else None
    for a in client.list_alerts(limit=limit, states=args.state, kinds=args.kind, category_codes=args.category,
                                areas=args.area, since=args.since, until=args.until,
                                page_size=min(limit or 1000, 1000)):
        _print_alert(a, args)


def _show(client: CityGridClient, args) -> None:
    answer = client.get_alert(args.alert_id, include_audit=True)
    if args.json:
        print(json.dumps(message_dict(answer), ensure_ascii=False))
        return
    a = answer.alert
    print(_line(a))
    chain = " / ".join(x for x in (a.district_code, a.street_code, a.community_code, a.grid_code) if x)
    print(f"  area {chain}; raised {a.raised_at.ToDatetime().isoformat()}Z, updated by {a.updates} later runs")
    if a.reason:
        print(f"  dismissed: {a.reason}")
    if a.event_id:
        print(f"  became event {a.event_id}")
    print("audit trail:")
    for c in answer.audit:
        print(f"  {c.at.ToDatetime().isoformat()}Z  {c.principal} ({c.role})  {c.action}  "
              f"{c.from_state or '-'} -> {c.to_state}  {c.note}")


def _to_event(client: CityGridClient, args) -> None:
    answer = client.alert_to_event(args.alert_id, args.note)
    if args.json:
        print(json.dumps(message_dict(answer), ensure_ascii=False))
    else:
        print(f"{_line(answer.alert)}\nevent {answer.event_id} taken in")


def _run(client: CityGridClient, args) -> None:
    r = client.run_detection(args.since)
    if args.json:
        print(json.dumps(message_dict(r), ensure_ascii=False))
        return
    print(f"run {r.run_id}: judged {r.first_day} .. {r.last_day} over {r.series:,} series ({r.events:,} events) "
          f"in {r.seconds:.1f} s; raised {len(r.raised)}, updated {len(r.updated)} (in your jurisdiction)")


def _watch(client: CityGridClient, args) -> None:
    stream = client.watch_alerts(after=args.after)
    try:
        for n, change in enumerate(stream, 1):
            if args.json:
                print(json.dumps(message_dict(change), ensure_ascii=False), flush=True)
            else:
                print(f"[{change.cursor}] {change.action:11s} by {change.principal}: {_line(change.alert)}", flush=True)
            if args.count and n >= args.count:
                break
    finally:
        stream.cancel()
