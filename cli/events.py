"""``citygrid events`` and ``citygrid workers``: the event intake of a running server (IntakeService).

    citygrid events submit events.parquet --server localhost:50051 --token $T   # batches of 1,000
    citygrid events get E0000001
    citygrid events list --state dispatched --area 440307001 --overdue --limit 20
    citygrid events act E0000001 handle --note "on my way"  |  act E0000001 dispatch --worker W0000042
    citygrid events relocate E0000001 --lng 114.25 --lat 22.72 --crs gcj02  |  --building 4403070010010010001
    citygrid events rebalance --max-hops 2            # a dry run; --apply moves the events
    citygrid workers load workers.parquet
    citygrid workers list --grid 440307001001001  |  workers get W0000042  |  workers duty W0000042 off

``events submit`` reads a Parquet table with the columns of the demo's ``events.parquet``
(:func:`citygrid.engine.cases.store.read_reports`) and sends it in batches, each durable before the next
goes; re-running it is safe (the server answers a report it already has with its first receipt), so a
run cut short is finished by running it again. ``workers load`` reads the demo's ``workers.parquet``
layout (:func:`citygrid.engine.dispatch.workers.read_workers`).

The connection options are those of ``citygrid query``: ``--server`` (default ``$CITYGRID_SERVER`` or
``localhost:50051``), ``--token`` (default ``$CITYGRID_TOKEN``), ``--tls-ca``, ``--timeout``. Answers print
for people; ``--json`` prints JSON instead (lists as one JSON object a line). Exit status: 0 done, 1
``events submit`` had reports refused (listed), 2 a call failed (``STATUS: message`` on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from tqdm import tqdm

from citygrid.cli.common import add_crs_argument
from citygrid.cli.remote import Leaves, connection_options, message_dict, parse_time, remote
from citygrid.engine.layers import coordinates
from citygrid.engine.errors import InvalidInput
from citygrid.engine.cases.model import MAX_PAGE, EventReport, read_reports
from citygrid.engine.cases.lifecycle import Action, State
from citygrid.engine.dispatch.workers import Worker, read_workers
from citygrid.grpc_api._pb import intake_pb2
from citygrid.grpc_api.client import CRS, CityGridClient
from citygrid.grpc_api.convert import to_timestamp

#: Reports per SubmitEvents call (the server takes at most its ``max_batch``, 10,000 by default).
SUBMIT_BATCH = 1000
#: Workers per PutWorkers call.
WORKER_BATCH = 1000
#: Refused reports listed by name in the human summary (``--json`` lists them all).
SHOWN_REFUSALS = 10
#: Rebalancing moves listed in the human output.
SHOWN_MOVES = 20
#: The protocol's coordinate system for each engine CRS code (every name the engine accepts).
_CRS_OF_CODE = {coordinates.crs_code(name): CRS[name] for name in ("wgs84", "gcj02", "bd09")}


def register(subparsers: argparse._SubParsersAction) -> None:
    after = argparse.ArgumentParser(add_help=False, parents=[connection_options(defaults=False)])
    after.add_argument("--json", action="store_true", help="print JSON (lists: one object a line)")

    events = subparsers.add_parser("events", help="event intake on a running server: submit, get, list, act, "
                                   "relocate, rebalance", parents=[connection_options(defaults=True)])
    sub = Leaves(events.add_subparsers(dest="events_command", metavar="EVENTS_COMMAND", required=True), after)

    p = sub.add_parser("submit", help="send the reports of a Parquet file (events.parquet columns) in durable batches")
    p.add_argument("file", type=Path)
    p.add_argument("--batch-size", type=int, default=SUBMIT_BATCH, metavar="N",
                   help=f"reports per call (default {SUBMIT_BATCH:,}; the server takes at most its max_batch)")
    p.add_argument("--limit", type=int, metavar="N", help="send only the first N reports of the file")
    p.set_defaults(func=remote(_submit))

    p = sub.add_parser("get", help="one event and its audit trail")
    p.add_argument("event_id")
    p.set_defaults(func=remote(_get))

    p = sub.add_parser("list", help="events in arrival order, filtered (inside the token's jurisdiction)")
    p.add_argument("--state", action="append", default=[], choices=[s.value for s in State],
                   help="only this state (repeat for several)")
    p.add_argument("--category", action="append", default=[], metavar="CODE", help="only this category (repeatable)")
    p.add_argument("--area", action="append", default=[], metavar="CODE",
                   help="only inside this grid, community, street or district (repeatable)")
    p.add_argument("--worker", default="", metavar="WORKER_ID", help="only events dispatched to this worker")
    p.add_argument("--source", default="", help="only reports from this source (hotline_12345, …)")
    p.add_argument("--duplicate-of", default="", metavar="EVENT_ID", help="only the duplicates of this event")
    p.add_argument("--overdue", action="store_true", help="only events past their stage deadline now")
    p.add_argument("--from", dest="occurred_from", type=parse_time, metavar="TIME",
                   help="occurred at or after (ISO, with zone)")
    p.add_argument("--to", dest="occurred_to", type=parse_time, metavar="TIME", help="occurred before (ISO, with zone)")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N events (default 50; 0: all)")
    p.set_defaults(func=remote(_list))

    p = sub.add_parser("act", help="take a lifecycle action (UpdateStatus)")
    p.add_argument("event_id")
    p.add_argument("action", choices=[a.value for a in Action])
    p.add_argument("--note", default="")
    p.add_argument("--worker", default="", metavar="WORKER_ID",
                   help="dispatch: to this worker (default: the rule picks)")
    p.add_argument("--minutes", type=float, help="extend: working minutes added to the deadline")
    p.set_defaults(func=remote(_act))

    p = sub.add_parser("relocate", help="correct an event's place: its grid, and a new dispatch")
    p.add_argument("event_id")
    p.add_argument("--lng", type=float)
    p.add_argument("--lat", type=float)
    add_crs_argument(p, of="--lng/--lat")
    p.add_argument("--building", default="", metavar="CODE", help="the building's position instead of --lng/--lat")
    p.add_argument("--note", default="")
    p.set_defaults(func=remote(_relocate))

    p = sub.add_parser("rebalance", help="re-assign the backlog at the least maximum worker load (a dry run "
                       "unless --apply)")
    p.add_argument("--apply", action="store_true", help="move the events (default: only show the plan)")
    p.add_argument("--max-hops", type=int, metavar="K", help="grids away a worker may be (default: the server's)")
    p.add_argument("--respect-shifts", action="store_true", help="only workers on shift now")
    p.set_defaults(func=remote(_rebalance))

    workers = subparsers.add_parser("workers", help="grid workers on a running server: load, list, get, duty",
                                    parents=[connection_options(defaults=True)])
    sub = Leaves(workers.add_subparsers(dest="workers_command", metavar="WORKERS_COMMAND", required=True), after)
    p = sub.add_parser("load", help="add or replace the workers of a Parquet file (workers.parquet columns)")
    p.add_argument("file", type=Path)
    p.set_defaults(func=remote(_load_workers))
    p = sub.add_parser("list", help="workers in id order (inside the token's jurisdiction)")
    p.add_argument("--grid", action="append", default=[], metavar="CODE", help="only workers of this grid (repeatable)")
    p.add_argument("--limit", type=int, default=0, metavar="N", help="at most N workers (default: all)")
    p.set_defaults(func=remote(_list_workers))
    p = sub.add_parser("get", help="one worker")
    p.add_argument("worker_id")
    p.set_defaults(func=remote(_get_worker))
    p = sub.add_parser("duty", help="put a worker on or off duty (off: their open events go to others)")
    p.add_argument("worker_id")
    p.add_argument("duty", choices=("on", "off"))
    p.set_defaults(func=remote(_duty))


def _call(client: CityGridClient, rpc, request):
    return rpc(request, metadata=client.metadata, timeout=client.timeout)


# ---------------------------------------------------------------------- events submit


def _submit(client: CityGridClient, args) -> int:
    if not 0 < args.batch_size <= 10_000:
        raise InvalidInput("--batch-size must be 1-10,000")
    reports = read_reports(args.file, limit=args.limit)
    tally = _Tally()
    with tqdm(total=len(reports), unit="ev", unit_scale=True, desc="submit", file=sys.stderr,
              disable=True if args.json else None) as bar:
        for start in range(0, len(reports), args.batch_size):
            batch = reports[start:start + args.batch_size]
            messages = []
            for report in batch:
                message, problem = _report_message(report)
                if problem is None:
                    messages.append(message)
                else:
                    tally.refuse(report.event_id, "INVALID_ARGUMENT", problem)
            try:
                receipts = client.submit_events(messages) if messages else []
            except grpc.RpcError:
                print(f"citygrid events: {tally.accepted + tally.refused:,} of {len(reports):,} reports sent "
                      "before this failure; run the command again to send the rest (resending is safe)",
                      file=sys.stderr)
                raise
            for receipt in receipts:
                tally.add(receipt)
            bar.update(len(batch))
    summary = tally.summary(args.file, len(reports))
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        _print_submit_summary(summary)
    return 1 if summary["refused"] else 0


def _report_message(r: EventReport) -> tuple[intake_pb2.EventReport | None, str | None]:
    """The message of a report read from a file, or why it cannot be sent as it is."""
    if r.occurred_at is None or r.occurred_at.tzinfo is None:
        return None, f"event {r.event_id}: occurred_at has no time zone (store times in UTC or with an offset)"
    try:
        crs = _CRS_OF_CODE[coordinates.crs_code(r.crs)]
    except ValueError as exc:
        return None, f"event {r.event_id}: {exc}"
    message = intake_pb2.EventReport(
        event_id=r.event_id, category_code=r.category_code, source=r.source, lng=r.lng, lat=r.lat, crs=crs,
        building_code=r.building_code or "", reporter=r.reporter, description=r.description,
        attachments=list(r.attachments),
    )
    message.occurred_at.FromDatetime(r.occurred_at.astimezone(timezone.utc))
    return message, None


class _Tally:
    """What the receipts of a submission say."""

    def __init__(self):
        self.new = 0
        self.again = 0
        self.states: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.refusals: list[dict] = []

    @property
    def accepted(self) -> int:
        return self.new + self.again

    @property
    def refused(self) -> int:
        return len(self.refusals)

    def add(self, receipt: intake_pb2.Receipt) -> None:
        if receipt.error.code:
            self.refuse(receipt.event_id, receipt.error.code, receipt.error.message)
            return
        if receipt.created:
            self.new += 1
        else:
            self.again += 1
        self.states[receipt.state] += 1

    def refuse(self, event_id: str, code: str, message: str) -> None:
        self.errors[code] += 1
        self.refusals.append({"event_id": event_id, "code": code, "message": message})

    def summary(self, path: Path, total: int) -> dict:
        return {
            "file": str(path), "reports": total, "new": self.new, "already_received": self.again,
            "refused": self.refused, "states": dict(self.states.most_common()),
            "errors": dict(self.errors.most_common()), "refusals": self.refusals,
        }


def _print_submit_summary(s: dict) -> None:
    print(f"{s['reports']:,} reports from {s['file']}: {s['new']:,} new, {s['already_received']:,} already "
          f"received, {s['refused']:,} refused")
    for state, count in s["states"].items():
        print(f"  {state:<12} {count:>10,}")
    if s["refused"]:
        print("refused: " + ", ".join(f"{code} {count:,}" for code, count in s["errors"].items()))
        for r in s["refusals"][:SHOWN_REFUSALS]:
            print(f"  {r['event_id']}  {r['code']}  {r['message']}")
        if s["refused"] > SHOWN_REFUSALS:
            print(f"  … and {s['refused'] - SHOWN_REFUSALS:,} more (--json lists them all)")


# ---------------------------------------------------------------------- events get / list / act / relocate


def _get(client: CityGridClient, args) -> None:
    answer = client.get_event(args.event_id, include_audit=True)
    if args.json:
        print(json.dumps(message_dict(answer), ensure_ascii=False))
        return
    _print_event(answer.event)
    print("audit trail:")
    for a in answer.audit:
        move = f"{a.from_state or '-'} -> {a.to_state}"
        worker = f"  worker {a.worker_id}" if a.worker_id else ""
        note = f"  {a.note}" if a.note else ""
        print(f"  {_when(a.at)}  {a.principal} ({a.role})  {a.action}  {move}{worker}{note}")


def _list(client: CityGridClient, args) -> None:
    filters = dict(states=args.state, category_codes=args.category, areas=args.area, worker_id=args.worker,
                   source=args.source, duplicate_of=args.duplicate_of,
                   occurred_from=to_timestamp(args.occurred_from), occurred_to=to_timestamp(args.occurred_to),
                   overdue_at=to_timestamp(datetime.now(timezone.utc)) if args.overdue else None)
    limit = args.limit if args.limit > 0 else None
    shown = 0
    for event in client.list_events(page_size=min(limit or MAX_PAGE, MAX_PAGE), **filters):
        if limit is not None and shown == limit:
            break
        shown += 1
        if args.json:
            print(json.dumps(message_dict(event), ensure_ascii=False))
        else:
            print(_event_line(event))
    if not args.json:
        print(f"{shown:,} events" + (" (--limit reached)" if limit is not None and shown == limit else ""))


def _act(client: CityGridClient, args) -> None:
    event = client.update_status(args.event_id, args.action, note=args.note, worker_id=args.worker,
                                 minutes=args.minutes)
    _show_event(event, args)


def _relocate(client: CityGridClient, args) -> None:
    by_position = args.lng is not None or args.lat is not None
    if by_position == bool(args.building) or (by_position and (args.lng is None or args.lat is None)):
        raise InvalidInput("give --lng and --lat, or --building (not both)")
    request = intake_pb2.RelocateEventRequest(event_id=args.event_id, lng=args.lng, lat=args.lat, crs=CRS[args.crs],
                                              building_code=args.building, note=args.note)
    _show_event(_call(client, client.intake.RelocateEvent, request), args)


def _show_event(event: intake_pb2.Event, args) -> None:
    if args.json:
        print(json.dumps(message_dict(event), ensure_ascii=False))
    else:
        _print_event(event)


def _print_event(e: intake_pb2.Event) -> None:
    print(f"{e.event_id}  {e.state} ({e.state_label})  category {e.category_code}")
    if e.grid_code:
        print(f"  grid {e.grid_code}  community {e.community_code}  street {e.street_code}  district "
              f"{e.district_code}  layer version {e.layer_version}")
    else:
        print("  not placed in any grid")
    place = f"({e.lng}, {e.lat}) {e.crs}" if e.HasField("lng") else ""
    building = f"building {e.building_code}" if e.building_code else ""
    print("  at " + "  ".join(p for p in (place, building) if p))
    print(f"  occurred {_when(e.occurred_at)}  received {_when(e.received_at)}  source {e.source}"
          + (f"  reporter {e.reporter}" if e.reporter else ""))
    if e.HasField("deadline"):
        print(f"  stage deadline {_when(e.deadline)}  escalation level {e.escalation}")
    if e.worker_id:
        print(f"  worker {e.worker_id}")
    if e.duplicate_of:
        print(f"  duplicate of {e.duplicate_of}")
    if e.description:
        print(f"  {e.description}")


def _event_line(e: intake_pb2.Event) -> str:
    deadline = f"due {_when(e.deadline)}" if e.HasField("deadline") else ""
    parts = (e.event_id, e.state, e.category_code, e.grid_code or "(no grid)", e.worker_id or "-", deadline)
    return "  ".join(p for p in parts if p)


# ---------------------------------------------------------------------- events rebalance


def _rebalance(client: CityGridClient, args) -> None:
    request = intake_pb2.RebalanceRequest(max_hops=args.max_hops, dry_run=not args.apply,
                                          respect_shifts=args.respect_shifts)
    r = _call(client, client.intake.Rebalance, request)
    if args.json:
        print(json.dumps(message_dict(r), ensure_ascii=False))
        return
    print(f"backlog {r.events:,} events, {r.assigned:,} assigned, {r.moved:,} to move "
          + ("(applied)" if r.applied else "(dry run: --apply moves them)"))
    for name, load in (("before", r.before), ("after", r.after)):
        print(f"  {name:<6} max load {load.max_load}  mean load {load.mean_load:.2f}  "
              f"outside their grid {load.outside_share:.1%}")
    for m in r.moves[:SHOWN_MOVES]:
        print(f"  {m.event_id}: {m.from_worker_id or '(nobody)'} -> {m.to_worker_id}")
    if len(r.moves) > SHOWN_MOVES:
        print(f"  … and {len(r.moves) - SHOWN_MOVES:,} more (--json lists them all)")


# ---------------------------------------------------------------------- workers


def _load_workers(client: CityGridClient, args) -> None:
    workers = [_worker_message(w) for w in read_workers(args.file)]
    loaded = 0
    with tqdm(total=len(workers), unit="worker", desc="load", file=sys.stderr,
              disable=True if args.json else None) as bar:
        for start in range(0, len(workers), WORKER_BATCH):
            batch = workers[start:start + WORKER_BATCH]
            loaded += _call(client, client.intake.PutWorkers, intake_pb2.PutWorkersRequest(workers=batch)).count
            bar.update(len(batch))
    if args.json:
        print(json.dumps({"file": str(args.file), "workers": loaded}))
    else:
        print(f"{loaded:,} workers from {args.file} added or replaced")


def _worker_message(w: Worker) -> intake_pb2.Worker:
    return intake_pb2.Worker(worker_id=w.worker_id, grid_code=w.grid_code, name=w.name, department=w.department,
                             skills=sorted(w.skills), shift=w.shift, capacity=w.capacity, on_duty=w.on_duty,
                             active=w.active)


def _list_workers(client: CityGridClient, args) -> None:
    token, shown = "", 0
    limit = args.limit if args.limit > 0 else None
    while limit is None or shown < limit:
        size = MAX_PAGE if limit is None else min(MAX_PAGE, limit - shown)
        page = _call(client, client.intake.ListWorkers,
                     intake_pb2.ListWorkersRequest(page_size=size, page_token=token, grid_codes=args.grid))
        for w in page.workers:
            print(json.dumps(message_dict(w), ensure_ascii=False) if args.json else _worker_line(w))
        shown += len(page.workers)
        token = page.next_page_token
        if not token:
            break
    if not args.json:
        print(f"{shown:,} workers")


def _get_worker(client: CityGridClient, args) -> None:
    _show_worker(_call(client, client.intake.GetWorker, intake_pb2.GetWorkerRequest(worker_id=args.worker_id)), args)


def _duty(client: CityGridClient, args) -> None:
    request = intake_pb2.SetDutyRequest(worker_id=args.worker_id, on_duty=args.duty == "on")
    _show_worker(_call(client, client.intake.SetDuty, request), args)


def _show_worker(w: intake_pb2.Worker, args) -> None:
    print(json.dumps(message_dict(w), ensure_ascii=False) if args.json else _worker_line(w))


def _worker_line(w: intake_pb2.Worker) -> str:
    duty = ("on duty" if w.on_duty else "off duty") + ("" if w.active else ", inactive")
    return (f"{w.worker_id}  grid {w.grid_code}  {w.name or '-'}  {w.department}  skills {','.join(w.skills) or '-'}  "
            f"shift {w.shift}  capacity {w.capacity}  {duty}")


# ---------------------------------------------------------------------- helpers


def _when(ts: Timestamp) -> str:
    """A time in this machine's zone, to the second."""
    return ts.ToDatetime(tzinfo=timezone.utc).astimezone().isoformat(timespec="seconds")
