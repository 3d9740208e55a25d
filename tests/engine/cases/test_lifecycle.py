"""The case lifecycle: transitions, roles, audit, stage deadlines, escalation, re-dispatch."""

from __future__ import annotations


import pytest
from intake_world import ADMIN, DISPATCHER, INTAKE, SUPERVISOR, VERIFIER, grid_code, make_world, worker, worker_id

from citygrid.engine.errors import Forbidden, InvalidInput, PreconditionFailed
from citygrid.engine.cases.lifecycle import (
    TRANSITIONS, Action, EscalationPolicy, State, allowed_actions, authorize, restarts_clock,
)
from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.cases.taxonomy import load_taxonomy
from citygrid.engine.dispatch.worktime import WorkSchedule

LIMITS = load_taxonomy().category("0101").limits  # 暴露垃圾: handle 240, verify 120 working minutes


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path)


def submit_one(world, **kw):
    [receipt] = world.intake.submit([world.report(**kw)], INTAKE)
    assert receipt.ok, receipt.error
    return receipt


# ---------------------------------------------------------------------- the transition table


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("state", list(State))
def test_every_action_is_allowed_exactly_from_its_states(action, state):
    t = TRANSITIONS[action]
    principal = Principal("p", t.roles[0], worker_id="w1")
    if state in t.sources:
        assert authorize(action, state, principal, "w1") in State
        assert action in allowed_actions(state, principal)
    else:
        with pytest.raises(PreconditionFailed) as info:
            authorize(action, state, principal, "w1")
        message = str(info.value)
        assert state.value in message and state.label in message
        for allowed in allowed_actions(state):
            assert allowed.value in message


_S, _A = State, Action
#: The standard loop (闭环) written out by hand from the documented lifecycle, independently of
#: ``TRANSITIONS``: (state, action) -> the state it leads to. Every pair not listed is refused.
STANDARD_LOOP = {
    (_S.REPORTED, _A.REGISTER): _S.REGISTERED,
    (_S.REPORTED, _A.REJECT): _S.REJECTED,
    (_S.REGISTERED, _A.DISPATCH): _S.DISPATCHED,
    (_S.DISPATCHED, _A.DISPATCH): _S.DISPATCHED,  # re-dispatch to another worker
    (_S.HANDLING, _A.DISPATCH): _S.DISPATCHED,
    (_S.DISPATCHED, _A.HANDLE): _S.HANDLING,
    (_S.DISPATCHED, _A.FEEDBACK): _S.FED_BACK,
    (_S.HANDLING, _A.FEEDBACK): _S.FED_BACK,
    (_S.DISPATCHED, _A.RETURN): _S.REGISTERED,
    (_S.HANDLING, _A.RETURN): _S.REGISTERED,
    (_S.FED_BACK, _A.VERIFY): _S.VERIFIED,
    (_S.FED_BACK, _A.REWORK): _S.DISPATCHED,
    (_S.VERIFIED, _A.CLOSE): _S.CLOSED,  # closing only after verification
    (_S.DISPATCHED, _A.EXTEND): _S.DISPATCHED,
    (_S.HANDLING, _A.EXTEND): _S.HANDLING,
    (_S.REGISTERED, _A.PARK): _S.PARKED,
    (_S.DISPATCHED, _A.PARK): _S.PARKED,
    (_S.HANDLING, _A.PARK): _S.PARKED,
    (_S.PARKED, _A.UNPARK): _S.REGISTERED,
}
#: Who takes each action (admins may take every one), written out by hand as well.
ROLES = {
    _A.REGISTER: {Role.DISPATCHER}, _A.REJECT: {Role.DISPATCHER}, _A.DISPATCH: {Role.DISPATCHER},
    _A.HANDLE: {Role.WORKER}, _A.FEEDBACK: {Role.WORKER}, _A.RETURN: {Role.WORKER},
    _A.VERIFY: {Role.VERIFIER}, _A.REWORK: {Role.VERIFIER}, _A.CLOSE: {Role.DISPATCHER, Role.SUPERVISOR},
    _A.EXTEND: {Role.SUPERVISOR}, _A.PARK: {Role.SUPERVISOR}, _A.UNPARK: {Role.SUPERVISOR},
}


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("state", list(State))
def test_the_transitions_are_the_standard_loop(action, state):
    """Each (state, action) against the written-out loop: allowed exactly where it is listed, to
    the state it names, for the roles it names and no other."""
    for role in Role:
        principal = Principal("p", role, worker_id="w1")
        allowed_role = role is Role.ADMIN or role in ROLES[action]
        if not allowed_role:
            with pytest.raises(Forbidden):
                authorize(action, state, principal, "w1")
        elif (state, action) in STANDARD_LOOP:
            assert authorize(action, state, principal, "w1") is STANDARD_LOOP[(state, action)]
        else:
            with pytest.raises(PreconditionFailed):
                authorize(action, state, principal, "w1")


def test_closing_a_dispatched_event_is_refused_by_the_intake(world):
    """Through the intake: a dispatched event cannot be closed (nor one in hand or fed back); it
    stays as it was, with no audit row; after verification it can."""
    intake = world.intake
    receipt = submit_one(world)
    assert receipt.state is State.DISPATCHED
    for who in (DISPATCHER, SUPERVISOR, ADMIN):
        with pytest.raises(PreconditionFailed, match="cannot close an event that is dispatched"):
            intake.act(receipt.event_id, Action.CLOSE, who)
    me = worker(1, 1)
    intake.act(receipt.event_id, Action.FEEDBACK, me)
    with pytest.raises(PreconditionFailed, match="cannot close an event that is fed_back"):
        intake.act(receipt.event_id, Action.CLOSE, DISPATCHER)
    event = intake.get(receipt.event_id, ADMIN)
    assert event.state is State.FED_BACK and event.worker_id == worker_id(1, 1)
    assert [a.action for a in intake.audit(receipt.event_id, ADMIN)] == ["report", "feedback"]
    intake.act(receipt.event_id, Action.VERIFY, VERIFIER)
    assert intake.act(receipt.event_id, Action.CLOSE, DISPATCHER).state is State.CLOSED


@pytest.mark.parametrize("action", list(Action))
def test_wrong_role_is_forbidden(action):
    t = TRANSITIONS[action]
    state = next(iter(t.sources))
    for role in Role:
        principal = Principal("p", role, worker_id="w1")
        if role is Role.ADMIN or role in t.roles:
            authorize(action, state, principal, "w1")
        else:
            with pytest.raises(Forbidden):
                authorize(action, state, principal, "w1")


@pytest.mark.parametrize("action", [Action.HANDLE, Action.FEEDBACK, Action.RETURN])
def test_a_worker_acts_only_on_their_own_events(action):
    """The worker's own actions (written out: handle, feedback, return) only on events dispatched to
    them; admins on anyone's."""
    me = Principal("a", Role.WORKER, worker_id="w1")
    with pytest.raises(Forbidden, match="only events dispatched to them; this one is dispatched to another"):
        authorize(action, State.DISPATCHED, me, "w2")
    with pytest.raises(Forbidden, match="only events dispatched to them$"):
        authorize(action, State.DISPATCHED, me, None)
    assert authorize(action, State.DISPATCHED, me, "w1") is STANDARD_LOOP[(State.DISPATCHED, action)]
    admin = Principal("root", Role.ADMIN)
    assert authorize(action, State.DISPATCHED, admin, "w2") is STANDARD_LOOP[(State.DISPATCHED, action)]


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("state", list(State))
def test_allowed_actions_for_a_role_are_those_of_the_written_out_loop(state, role):
    principal = Principal("p", role, worker_id="w1")
    expected = {a for (s, a) in STANDARD_LOOP if s is state and (role is Role.ADMIN or role in ROLES[a])}
    assert set(allowed_actions(state, principal)) == expected
    assert set(allowed_actions(state)) == {a for (s, a) in STANDARD_LOOP if s is state}


def test_which_states_are_open():
    """Open (a later report of the same matter is its duplicate; it may be relocated): every state
    but closed, rejected and duplicate."""
    closed = {State.CLOSED, State.REJECTED, State.DUPLICATE}
    assert {s for s in State if s.is_open is True} == set(State) - closed
    assert all(s.is_open is False for s in closed)


#: Which moves start a new stage clock, written out: entering a stage from another stage (or from
#: nothing: a new report) starts one; moving within a stage (dispatched <-> handling, re-dispatch,
#: fed back -> verified) keeps the running one; entering a state with no clock starts none.
NEW_CLOCK = {
    (None, State.REPORTED), (None, State.REGISTERED), (None, State.DISPATCHED),
    (State.REPORTED, State.REGISTERED), (State.REGISTERED, State.DISPATCHED), (State.PARKED, State.REGISTERED),
    (State.DISPATCHED, State.REGISTERED), (State.HANDLING, State.REGISTERED), (State.HANDLING, State.FED_BACK),
    (State.DISPATCHED, State.FED_BACK), (State.FED_BACK, State.DISPATCHED), (State.VERIFIED, State.DISPATCHED),
}


@pytest.mark.parametrize("after", list(State))
@pytest.mark.parametrize("before", [None, *State])
def test_which_moves_start_a_new_stage_clock(before, after):
    stages = {State.REPORTED: "register", State.REGISTERED: "dispatch", State.DISPATCHED: "handle",
              State.HANDLING: "handle", State.FED_BACK: "verify", State.VERIFIED: "verify"}
    expected = after in stages and (before is None or stages.get(before) != stages[after])
    assert restarts_clock(before, after) is expected
    if (before, after) in NEW_CLOCK:
        assert expected


@pytest.mark.parametrize("overdue, limit, street_after, level", [
    (-5.0, 60, None, 0), (0.0, 60, None, 0), (0.01, 60, None, 1), (59.9, 60, None, 1), (60.0, 60, None, 2),
    (500.0, 60, None, 2), (29.9, 240, 30.0, 1), (30.0, 240, 30.0, 2),
])
def test_escalation_levels_at_their_boundaries(overdue, limit, street_after, level):
    """Not overdue: nobody (level 0, as stored); overdue: the community (1); overdue by the stage's
    limit again, or by ``street_after`` minutes: the street (2)."""
    got = EscalationPolicy(street_after).level(overdue, limit)
    assert int(got) == level and got.name == ("NONE", "COMMUNITY", "STREET")[level]


def test_a_stage_clock_runs_on_within_its_stage(world):
    """Accepting a dispatched event and re-dispatching it keep its handling deadline; feeding back
    starts the verification clock."""
    intake = world.intake
    receipt = submit_one(world)
    first = intake.get(receipt.event_id, ADMIN)
    world.advance(minutes=40)
    handling = intake.act(receipt.event_id, Action.HANDLE, worker(1, 1))
    assert (handling.deadline, handling.stage_started) == (first.deadline, first.stage_started)
    world.advance(minutes=40)
    moved = intake.act(receipt.event_id, Action.DISPATCH, DISPATCHER, worker_id=worker_id(2, 2))
    assert (moved.deadline, moved.stage_started) == (first.deadline, first.stage_started)
    world.advance(minutes=10)
    fed = intake.act(receipt.event_id, Action.FEEDBACK, worker(2, 2))
    assert fed.stage_started == world.now[0]
    assert fed.deadline == WorkSchedule().add_working_minutes(world.now[0], LIMITS.verify)
    closed = [intake.act(receipt.event_id, a, p) for a, p in ((Action.VERIFY, VERIFIER), (Action.CLOSE, DISPATCHER))][-1]
    assert (closed.stage_started, closed.deadline, closed.escalation) == (None, None, 0)


# ---------------------------------------------------------------------- the loop


def test_closed_loop_with_audit(world):
    intake = world.intake
    receipt = submit_one(world, i=1, j=1)
    assert receipt.created and receipt.state is State.DISPATCHED and receipt.worker_id == worker_id(1, 1)
    event_id = receipt.event_id
    me = worker(1, 1)

    event = intake.get(event_id, me)
    schedule = WorkSchedule()
    assert event.deadline == schedule.add_working_minutes(world.now[0], LIMITS.handle)

    world.advance(minutes=10)
    assert intake.act(event_id, "handle", me).state is State.HANDLING
    world.advance(minutes=50)
    fed = intake.act(event_id, Action.FEEDBACK, me, note="已清理")
    assert fed.state is State.FED_BACK
    assert fed.deadline == schedule.add_working_minutes(world.now[0], LIMITS.verify)
    assert intake.worker_load(worker_id(1, 1)) == 0  # fed back work no longer counts
    world.advance(minutes=30)
    assert intake.act(event_id, Action.VERIFY, VERIFIER).state is State.VERIFIED
    closed = intake.act(event_id, Action.CLOSE, DISPATCHER, note="结案")
    assert closed.state is State.CLOSED and closed.deadline is None

    trail = intake.audit(event_id, ADMIN)
    steps = [(a.action, a.from_state, a.to_state, a.principal) for a in trail]
    assert steps == [
        ("report", None, State.DISPATCHED, INTAKE.name),
        ("handle", State.DISPATCHED, State.HANDLING, me.name),
        ("feedback", State.HANDLING, State.FED_BACK, me.name),
        ("verify", State.FED_BACK, State.VERIFIED, VERIFIER.name),
        ("close", State.VERIFIED, State.CLOSED, DISPATCHER.name),
    ]
    assert "自动立案" in trail[0].note and trail[0].worker_id == worker_id(1, 1)
    assert trail[2].note == "已清理" and trail[-1].note == "结案"
    assert [a.at for a in trail] == sorted(a.at for a in trail)

    with pytest.raises(PreconditionFailed, match="closed"):
        intake.act(event_id, Action.HANDLE, me)


def test_rework_goes_back_to_the_same_worker(world):
    intake = world.intake
    event_id = submit_one(world).event_id
    me = worker(1, 1)
    intake.act(event_id, Action.FEEDBACK, me)
    reworked = intake.act(event_id, Action.REWORK, VERIFIER, note="未清理干净")
    assert reworked.state is State.DISPATCHED and reworked.worker_id == worker_id(1, 1)
    assert intake.worker_load(worker_id(1, 1)) == 1
    feed = intake.dispatches(worker_id(1, 1), me)
    assert [(n.kind, n.action) for n in feed] == [("dispatched", "report"), ("dispatched", "rework")]


def test_return_redispatches_to_another_worker(world):
    intake = world.intake
    event_id = submit_one(world, i=1, j=1).event_id
    me = worker(1, 1)
    moved = intake.act(event_id, Action.RETURN, me, note="不属于本网格")
    assert moved.state is State.DISPATCHED and moved.worker_id not in (None, worker_id(1, 1))
    assert intake.worker_load(worker_id(1, 1)) == 0 and intake.worker_load(moved.worker_id) == 1
    assert [n.kind for n in intake.dispatches(worker_id(1, 1), me)] == ["dispatched", "revoked"]
    assert intake.dispatches(moved.worker_id, DISPATCHER)[-1].event_id == event_id
    with pytest.raises(Forbidden):
        intake.act(event_id, Action.HANDLE, me)


def test_park_unpark_reject_extend(world):
    intake = world.intake
    parked = intake.act(submit_one(world).event_id, Action.PARK, SUPERVISOR, note="需专项整治")
    assert parked.state is State.PARKED and parked.deadline is None and parked.worker_id is None
    unparked = intake.act(parked.event_id, Action.UNPARK, SUPERVISOR)
    assert unparked.state is State.DISPATCHED

    extended_from = unparked.deadline
    extended = intake.act(unparked.event_id, Action.EXTEND, SUPERVISOR, minutes=480, note="材料待采购")
    assert extended.deadline == WorkSchedule().add_working_minutes(extended_from, 480)
    with pytest.raises(InvalidInput, match="minutes"):
        intake.act(unparked.event_id, Action.EXTEND, SUPERVISOR)
    with pytest.raises(Forbidden):
        intake.act(unparked.event_id, Action.EXTEND, DISPATCHER, minutes=60)


def test_manual_registration_and_rejection(tmp_path):
    from citygrid.engine.cases.intake import IntakeConfig

    world = make_world(tmp_path, config=IntakeConfig(auto_register=False))
    intake = world.intake
    receipt = submit_one(world)
    assert receipt.state is State.REPORTED and receipt.worker_id is None
    assert intake.get(receipt.event_id, DISPATCHER).deadline == WorkSchedule().add_working_minutes(
        world.now[0], LIMITS.register
    )
    registered = intake.act(receipt.event_id, Action.REGISTER, DISPATCHER)
    assert registered.state is State.DISPATCHED  # registering dispatches at once when someone is free
    other = submit_one(world, i=2, j=2)
    assert intake.act(other.event_id, Action.REJECT, DISPATCHER, note="非管辖事项").state is State.REJECTED


def test_manual_dispatch_to_a_named_worker(world):
    intake = world.intake
    event_id = submit_one(world, i=1, j=1).event_id
    moved = intake.act(event_id, Action.DISPATCH, DISPATCHER, worker_id=worker_id(3, 3), note="就近")
    assert moved.worker_id == worker_id(3, 3)
    assert intake.worker_load(worker_id(1, 1)) == 0 and intake.worker_load(worker_id(3, 3)) == 1
    assert intake.dispatches(worker_id(1, 1), worker(1, 1))[-1].kind == "revoked"
    intake.set_duty(worker_id(2, 2), False, worker(2, 2))
    with pytest.raises(PreconditionFailed, match="not available"):
        intake.act(event_id, Action.DISPATCH, DISPATCHER, worker_id=worker_id(2, 2))
    # Without a name, the online rule picks someone other than the present worker.
    again = intake.act(event_id, Action.DISPATCH, DISPATCHER)
    assert again.worker_id not in (None, worker_id(3, 3))


def test_a_failed_change_leaves_loads_and_holdings_as_they_were(world, monkeypatch):
    intake = world.intake
    event_id = submit_one(world, i=1, j=1).event_id

    def broken(changes, audit):
        raise OSError("disk full")

    monkeypatch.setattr(world.store, "update_events", broken)
    with pytest.raises(OSError):
        intake.act(event_id, Action.RETURN, worker(1, 1))
    monkeypatch.undo()
    assert intake.get(event_id, ADMIN).worker_id == worker_id(1, 1)
    assert sum(intake.worker_load(w) for w in (worker_id(1, 1), worker_id(0, 1), worker_id(1, 0),
                                                 worker_id(2, 1), worker_id(1, 2))) == 1
    # The worker still holds it: going off duty moves it.
    intake.set_duty(worker_id(1, 1), False, worker(1, 1))
    assert intake.get(event_id, ADMIN).worker_id not in (None, worker_id(1, 1))
    assert intake.worker_load(worker_id(1, 1)) == 0


# ---------------------------------------------------------------------- duty, capacity, relocation


def test_off_duty_moves_work_and_on_duty_takes_waiting_work(world):
    intake = world.intake
    # Three matters of 居住登记 (网格员 only) about 120 m apart in grid (0, 0).
    ids = [submit_one(world, i=0, j=0, category="1001", dx=(k - 1) * 0.0012).event_id for k in range(3)]
    assert all(intake.get(e, ADMIN).worker_id == worker_id(0, 0) for e in ids)
    intake.set_duty(worker_id(0, 0), False, worker(0, 0))
    after = [intake.get(e, ADMIN) for e in ids]
    assert all(e.worker_id in (worker_id(1, 0), worker_id(0, 1)) for e in after)
    assert intake.worker_load(worker_id(0, 0)) == 0

    # Fill the grid's neighbours and the grid itself; the next event waits, then goes when someone returns.
    for who in (worker_id(1, 0), worker_id(0, 1)):
        intake.set_duty(who, False, DISPATCHER)
    waiting = submit_one(world, i=0, j=0, category="1001", dx=0.0006)
    assert waiting.state is State.REGISTERED and waiting.worker_id is None
    intake.set_duty(worker_id(0, 0), True, worker(0, 0))
    assert intake.get(waiting.event_id, ADMIN).worker_id == worker_id(0, 0)


def test_capacity_then_neighbours_then_waiting(world):
    """Sixteen distinct matters (about 100 m apart) in the corner grid (3, 3), whose worker and two
    neighbours hold five each: five stay in the grid, ten go to the neighbours by least load and
    then id, the last waits."""
    intake = world.intake
    lng0, lat0 = 114.20 + 3 * 0.005, 22.70 + 3 * 0.005
    reports = [
        world.report(category="1001", lng=lng0 + 0.0006 + 0.0011 * (k % 4), lat=lat0 + 0.0006 + 0.0011 * (k // 4))
        for k in range(16)
    ]
    receipts = intake.submit(reports, INTAKE)
    workers = [r.worker_id for r in receipts]
    assert workers[:5] == [worker_id(3, 3)] * 5
    assert workers[5:15] == [worker_id(2, 3), worker_id(3, 2)] * 5
    assert workers[15] is None and receipts[15].state is State.REGISTERED
    # When one of them feeds back, the clock's next tick dispatches the waiting event.
    intake.act(receipts[0].event_id, Action.FEEDBACK, worker(3, 3))
    assert intake.tick().dispatched == 1
    assert intake.get(receipts[15].event_id, ADMIN).worker_id == worker_id(3, 3)


def test_redispatch_skips_a_worker_at_capacity(world):
    """The corner grid (3, 3)'s worker goes off duty holding three matters; of its two neighbours,
    (2, 3) is at capacity (5 of 5) and (3, 2) has room for one: one goes to (3, 2), the other two
    wait for a worker, and (2, 3) never holds more than its capacity."""
    intake = world.intake

    def matters(i: int, j: int, n: int) -> list[str]:
        lng0, lat0 = 114.20 + i * 0.005, 22.70 + j * 0.005
        reports = [world.report(category="1001", lng=lng0 + 0.0006 + 0.0011 * (k % 4),
                                lat=lat0 + 0.0006 + 0.0011 * (k // 4)) for k in range(n)]
        receipts = intake.submit(reports, INTAKE)
        assert [r.worker_id for r in receipts] == [worker_id(i, j)] * n
        return [r.event_id for r in receipts]

    matters(2, 3, 5)
    matters(3, 2, 4)
    held = matters(3, 3, 3)
    intake.set_duty(worker_id(3, 3), False, worker(3, 3))
    after = [intake.get(e, ADMIN) for e in held]
    assert [(e.state, e.worker_id) for e in after] == [
        (State.DISPATCHED, worker_id(3, 2)), (State.REGISTERED, None), (State.REGISTERED, None)]
    assert [intake.worker_load(worker_id(*g)) for g in ((2, 3), (3, 2), (3, 3))] == [5, 5, 0]
    trail = intake.audit(held[1], ADMIN)
    assert trail[-1].action == "redispatch" and "no other eligible worker" in trail[-1].note


def test_relocation_moves_grid_and_worker(world):
    intake = world.intake
    event_id = submit_one(world, i=0, j=0, category="1001").event_id
    lng, lat = (114.20 + 3.5 * 0.005, 22.70 + 3.5 * 0.005)
    moved = intake.relocate(event_id, DISPATCHER, lng=lng, lat=lat, note="坐标纠偏")
    assert moved.grid_code == grid_code(3, 3) and moved.worker_id == worker_id(3, 3)
    assert moved.community_code == grid_code(3, 3)[:12]
    assert intake.worker_load(worker_id(0, 0)) == 0
    actions = [a.action for a in intake.audit(event_id, ADMIN)]
    assert actions[-2:] == ["relocate", "redispatch"]
    with pytest.raises(InvalidInput, match="no grid"):
        intake.relocate(event_id, DISPATCHER, lng=100.0, lat=10.0)


# ---------------------------------------------------------------------- overdue and escalation


def test_overdue_events_escalate_to_community_then_street(world):
    intake = world.intake
    receipt = submit_one(world, i=2, j=3)  # handle limit 240 working minutes from Monday 09:00
    assert intake.tick().escalated == 0
    world.advance(hours=6)  # 15:00: 300 working minutes minus the 2-hour lunch: 240 -> due 15:00
    world.advance(minutes=1)
    report = intake.tick()
    assert report.escalated == 1
    [notice] = intake.overdue(SUPERVISOR)
    assert notice.event_id == receipt.event_id and notice.level == 1
    assert notice.unit_code == grid_code(2, 3)[:12] and notice.stage == "handle"
    assert intake.tick().escalated == 0  # not escalated twice at the same level
    world.advance(days=1)  # Tuesday 15:01: 240 more working minutes overdue
    assert intake.tick().escalated == 1
    notices = intake.overdue(SUPERVISOR, after=notice.cursor)
    assert [(n.level, n.unit_code) for n in notices] == [(2, grid_code(2, 3)[:9])]
    # A community supervisor sees only their community's escalations.
    other = Principal("其他社区", Role.SUPERVISOR, (grid_code(0, 0)[:12],))
    assert intake.overdue(other) == []
    # Handling it does not reset the clock; feedback starts the verify stage with a new one.
    fed = intake.act(receipt.event_id, Action.FEEDBACK, worker(2, 3))
    assert fed.escalation == 0 and fed.deadline > world.now[0]


def test_watch_waits_for_news(world):
    import threading

    intake = world.intake
    cursor = intake.store.last_cursor()
    got = []
    t = threading.Thread(target=lambda: got.extend(intake.dispatches(worker_id(1, 2), worker(1, 2), after=cursor, wait=5)))
    t.start()
    submit_one(world, i=1, j=2)
    t.join(5)
    assert [n.worker_id for n in got] == [worker_id(1, 2)]
    assert intake.dispatches(worker_id(1, 2), worker(1, 2), after=got[-1].cursor, wait=0.05) == []
    with pytest.raises(Forbidden):
        intake.dispatches(worker_id(1, 2), worker(3, 3))
