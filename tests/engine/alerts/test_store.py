"""The alert store: deduplication across runs, the only legal transitions, audit, jurisdiction,
the resumable feed, durability (a second connection sees what a call returned)."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.alerts.store import AlertFilter, AlertStore, Finding
from citygrid.engine.database import database_path
from citygrid.engine.errors import Forbidden, InvalidInput, NotFound, PreconditionFailed

CST = dt.timezone(dt.timedelta(hours=8))
AT = dt.datetime(2026, 2, 17, 3, 0, tzinfo=CST)  # 03:00 on a public holiday (Spring Festival)
ADMIN = Principal("admin", Role.ADMIN)
SYSTEM = Principal("detection", Role.ADMIN)
STREET_A = Principal("street A supervisor", Role.SUPERVISOR, ("440307001",))
STREET_B = Principal("street B supervisor", Role.SUPERVISOR, ("440307002",))
GRID_A = ("440307001001001", "440307001001", "440307001", "440307")
GRID_B = ("440307002003004", "440307002003", "440307002", "440307")
D = dt.date(2026, 2, 10)


def finding(day_from=0, day_to=0, *, chain=GRID_A, cat="0101", observed=9.0, score=4.0, method="ears C2",
            **kw) -> Finding:
    return Finding("detector", method, cat, "grid", chain[0], chain, D + dt.timedelta(days=day_from),
                   D + dt.timedelta(days=day_to), observed, 1.5, score, **kw)


def run_info(first=0, last=0):
    return {"started_at": AT, "trigger": "test", "first_day": D + dt.timedelta(days=first),
            "last_day": D + dt.timedelta(days=last), "series": 10, "events": 100, "seconds": 0.1}


@pytest.fixture
def store(tmp_path):
    s = AlertStore(tmp_path)
    yield s
    s.close()


def test_a_finding_that_persists_updates_one_alert(store):
    _, t1 = store.record([finding(0, 0, observed=5, score=3)], run=run_info(), at=AT, principal=SYSTEM)
    _, t2 = store.record([finding(1, 1, observed=12, score=6)], run=run_info(1, 1), at=AT, principal=SYSTEM)
    _, t3 = store.record([finding(2, 3, observed=7, score=2)], run=run_info(2, 3), at=AT, principal=SYSTEM)
    assert len(t1.raised) == 1 and t2.raised == [] and t3.raised == [] and t2.updated == t3.updated == t1.raised
    [alert] = store.list(ADMIN)
    assert (alert.first_day, alert.last_day) == (D, D + dt.timedelta(days=3))
    assert (alert.observed, alert.score, alert.peak_score, alert.updates) == (7, 2, 6, 2)
    actions = [c.action for c in store.audit_trail(alert.id, ADMIN)]
    assert actions == ["raise", "update", "update"]


def test_a_gap_longer_than_a_day_or_another_area_or_method_raises_another(store):
    store.record([finding(0, 0)], run=run_info(), at=AT, principal=SYSTEM)
    store.record([finding(3, 3), finding(0, 0, chain=GRID_B), finding(0, 0, cat="0102"),
                  finding(0, 0, method="ears C3")], run=run_info(0, 3), at=AT, principal=SYSTEM)
    assert len(store.list(ADMIN)) == 5


def test_closed_alerts_absorb_what_they_covered_and_a_later_rise_raises_anew(store):
    _, t = store.record([finding(0, 2)], run=run_info(), at=AT, principal=SYSTEM)
    store.transition(t.raised[0], "dismiss", STREET_A, at=AT, note="a street market, expected")
    _, again = store.record([finding(1, 2)], run=run_info(), at=AT, principal=SYSTEM)
    assert again.raised == [] and again.updated == [] and again.dropped == 1
    _, later = store.record([finding(2, 3)], run=run_info(), at=AT, principal=SYSTEM)
    assert len(later.raised) == 1 and later.raised != t.raised


def test_discs_merge_when_they_share_a_grid(store):
    def disc(grids, first, last, radius):
        return Finding("scan", "stp", "0101", "disc", grids[0], GRID_A, D + dt.timedelta(days=first),
                       D + dt.timedelta(days=last), 8, 2, 11.0, p=0.01, grids=grids, lng=114.2, lat=22.7,
                       radius_m=radius)

    store.record([disc(("g1", "g2"), 0, 1, 300)], run=run_info(), at=AT, principal=SYSTEM)
    store.record([disc(("g2", "g3"), 1, 2, 450)], run=run_info(), at=AT, principal=SYSTEM)
    store.record([disc(("g7",), 1, 2, 200)], run=run_info(), at=AT, principal=SYSTEM)
    alerts = store.list(ADMIN)
    assert len(alerts) == 2
    grown = [a for a in alerts if "g1" in a.grids][0]
    assert grown.grids == ("g1", "g2", "g3") and grown.radius_m == 450 and grown.last_day == D + dt.timedelta(days=2)


@pytest.mark.parametrize("path, action, error", [
    ([], "acknowledge", None),
    (["acknowledge"], "acknowledge", "is acknowledged by street A supervisor"),
    (["dismiss"], "acknowledge", "is dismissed by street A supervisor"),
    (["acknowledge"], "dismiss", None),
    (["dismiss"], "to_event", "only new or acknowledged alerts can be turned into an event"),
    (["to_event"], "dismiss", "is event"),
    (["acknowledge", "to_event"], "acknowledge", "is event"),
])
def test_transitions(store, path, action, error):
    _, t = store.record([finding()], run=run_info(), at=AT, principal=SYSTEM)
    alert_id = t.raised[0]
    extra = {"dismiss": {"note": "harmless"}, "to_event": {"event_id": "ALERT-1"}, "acknowledge": {}}
    for step in path:
        store.transition(alert_id, step, STREET_A, at=AT, **extra[step])
    if error is None:
        alert = store.transition(alert_id, action, STREET_A, at=AT, **extra[action])
        assert alert.state == {"acknowledge": "acknowledged", "dismiss": "dismissed"}[action]
    else:
        with pytest.raises(PreconditionFailed, match=error):
            store.transition(alert_id, action, STREET_A, at=AT, **extra[action])
    trail = store.audit_trail(alert_id, ADMIN)
    assert [c.action for c in trail] == ["raise", *path] + ([action] if error is None else [])
    assert all(c.principal == "street A supervisor" for c in trail[1:])


def test_dismissal_needs_a_reason_and_is_kept(store):
    _, t = store.record([finding()], run=run_info(), at=AT, principal=SYSTEM)
    with pytest.raises(InvalidInput, match="needs a reason"):
        store.transition(t.raised[0], "dismiss", STREET_A, at=AT, note="  ")
    with pytest.raises(InvalidInput, match="unknown alert action"):
        store.transition(t.raised[0], "close", STREET_A, at=AT)
    alert = store.transition(t.raised[0], "dismiss", STREET_A, at=AT, note="festival crowd")
    assert alert.reason == "festival crowd"


def test_jurisdiction_bounds_reading_acting_and_the_feed(store):
    _, t = store.record([finding(chain=GRID_A), finding(chain=GRID_B)], run=run_info(), at=AT, principal=SYSTEM)
    a, b = t.raised
    assert [x.id for x in store.list(STREET_A)] == [a]
    assert [x.id for x in store.list(STREET_B)] == [b]
    assert {x.id for x in store.list(ADMIN)} == {a, b}
    with pytest.raises(Forbidden, match="outside the jurisdiction"):
        store.get(b, STREET_A)
    with pytest.raises(Forbidden):
        store.transition(b, "acknowledge", STREET_A, at=AT)
    assert store.get(b, STREET_B).state == "new"  # the refused call changed nothing
    assert [c.alert.id for c in store.feed(STREET_A)] == [a]
    with pytest.raises(NotFound, match="no alert 999"):
        store.get(999, ADMIN)


def test_the_feed_resumes_from_a_cursor(store):
    _, t = store.record([finding(0, 0)], run=run_info(), at=AT, principal=SYSTEM)
    first = store.feed(ADMIN)
    store.transition(t.raised[0], "acknowledge", ADMIN, at=AT)
    store.record([finding(1, 1)], run=run_info(), at=AT, principal=SYSTEM)
    rest = store.feed(ADMIN, after=first[-1].cursor)
    assert [(c.action, c.to_state) for c in rest] == [("acknowledge", "acknowledged"), ("update", "acknowledged")]
    assert rest[-1].cursor == store.last_cursor() and store.feed(ADMIN, after=rest[-1].cursor) == []


def test_filters_and_pages(store):
    store.record([finding(k, k, chain=GRID_A if k % 2 else GRID_B, cat=f"01{k:02d}") for k in range(0, 10, 2)]
                 + [finding(1, 1, cat="0199")], run=run_info(0, 9), at=AT, principal=SYSTEM)
    page = store.list(ADMIN, limit=4)
    assert [a.id for a in page] == [6, 5, 4, 3]
    assert [a.id for a in store.list(ADMIN, before=page[-1].id, limit=4)] == [2, 1]
    assert [a.category_code for a in store.list(ADMIN, AlertFilter(category_codes=("0104",)))] == ["0104"]
    assert [a.id for a in store.list(ADMIN, AlertFilter(areas=("440307001",)))] == [2]  # the only one in grid A (found first on day 1)
    assert [a.id for a in store.list(ADMIN, AlertFilter(since=D + dt.timedelta(days=6)))] == [6, 5]
    with pytest.raises(InvalidInput, match="unknown state 'open'"):
        store.list(ADMIN, AlertFilter(states=("open",)))


def test_what_a_call_returned_is_committed(store, tmp_path):
    _, t = store.record([finding()], run=run_info(), at=AT, principal=SYSTEM)
    store.transition(t.raised[0], "acknowledge", ADMIN, at=AT)
    other = sqlite3.connect(database_path(tmp_path))
    assert other.execute("SELECT state FROM alerts").fetchall() == [("acknowledged",)]
    assert other.execute("SELECT count(*) FROM alert_audit").fetchone() == (2,)
    assert other.execute("SELECT raised FROM alert_runs").fetchall() == [(1,)]
    other.close()
    reopened = AlertStore(tmp_path)
    assert reopened.get(t.raised[0], ADMIN).state == "acknowledged"
    reopened.close()
