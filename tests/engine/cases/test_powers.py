"""Jurisdiction bounds every power, not only what is read: the areas a jurisdiction may name, the
tokens a caller may issue, list and revoke, and what a dispatcher, verifier or supervisor limited to
one street may do to events and workers (the world of ``intake_world``: street 440307001 holds the
grid columns i = 0, 1 and street 440307002 the columns i = 2, 3; grid (2, 1) of street 002 borders
grid (1, 1) of street 001)."""

from __future__ import annotations

import pytest
from intake_world import ADMIN, build_layer, centre, grid_code, make_world, worker, worker_id

from citygrid.engine.errors import Forbidden, InvalidInput, NotFound, PreconditionFailed
from citygrid.engine.access.jurisdiction import Areas
from citygrid.engine.cases.lifecycle import Action, State
from citygrid.engine.access.principals import EVERYWHERE, Principal, Role
from citygrid.engine.access.tokens import TokenAuthority, TokenStore
from citygrid.engine.dispatch.workers import Worker

STREET_1, STREET_2 = "440307001", "440307002"
#: The border grid of street 002 and its neighbours (shared edges): one of them, (1, 1), in street 001.
BORDER = (2, 1)
NEIGHBOURS_INSIDE = [worker_id(2, 0), worker_id(2, 2), worker_id(3, 1)]
NEIGHBOUR_OUTSIDE = worker_id(1, 1)


def street_of(wid: str) -> str:
    return STREET_1 if int(wid[1]) < 2 else STREET_2


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path)


# ---------------------------------------------------------------------- areas


def test_areas_of_a_layer_know_every_level_and_its_parents():
    areas = Areas.of_layer(build_layer())
    grid = grid_code(2, 1)
    assert areas.chains(grid) == ((grid, grid[:12], STREET_2, "440307"),)
    assert areas.chains(grid[:12]) == ((grid[:12], STREET_2, "440307"),)
    assert areas.chains(STREET_2) == ((STREET_2, "440307"),)
    assert areas.chains("440307") == (("440307",),)
    assert len([c for c in build_layer().codes if c in areas]) == 16


def test_jurisdiction_codes_must_name_areas_of_the_layer():
    areas = Areas.of_layer(build_layer())
    assert areas.check([f" {STREET_2} ", grid_code(0, 0), STREET_2]) == (grid_code(0, 0), STREET_2)
    assert areas.check([]) == areas.check(["*"]) == areas.check(["*", STREET_1]) == (EVERYWHERE,)
    with pytest.raises(InvalidInput, match=r"'440307009', 'nope' name no grid, community, street or district"):
        areas.check([STREET_1, "440307009", "nope"])
    with pytest.raises(InvalidInput, match=r"\(1000000 characters\)") as info:
        areas.check(["x" * 1_000_000])
    assert len(str(info.value)) < 300  # a huge code is not echoed back


def test_one_jurisdiction_inside_another():
    areas = Areas.of_layer(build_layer())
    street_admin = Principal("S2 admin", Role.ADMIN, (STREET_2,))
    assert areas.inside(street_admin, (STREET_2, grid_code(2, 1)[:12], grid_code(3, 3)))
    assert not areas.inside(street_admin, (STREET_1,))
    assert not areas.inside(street_admin, (STREET_2, grid_code(0, 0)))
    assert not areas.inside(street_admin, ("440307",))  # the district holds the street, not the other way
    assert not areas.inside(street_admin, (EVERYWHERE,))
    assert areas.inside(Principal("admin", Role.ADMIN), (EVERYWHERE,))


# ---------------------------------------------------------------------- tokens


@pytest.fixture
def tokens(tmp_path, world):
    store = TokenStore(tmp_path)
    yield TokenAuthority(store, lambda: world.layer, world.intake.worker_chain)
    store.close()


def test_a_street_admin_cannot_widen_its_own_powers(tokens):
    """The finding: an admin limited to one street issued itself a district-wide admin token."""
    global_secret, global_info = tokens.store.issue("admin", Role.ADMIN)
    _, street_info = tokens.issue(ADMIN, "S2 admin", "admin", [STREET_2])
    street_admin = street_info.principal
    with pytest.raises(Forbidden, match="district-wide"):
        tokens.issue(street_admin, "me, everywhere", "admin", ["*"])
    with pytest.raises(Forbidden, match="district-wide"):
        tokens.issue(street_admin, "me, everywhere", "admin")  # no jurisdiction means everywhere
    with pytest.raises(Forbidden, match="outside"):
        tokens.issue(street_admin, "next street", "dispatcher", [STREET_1])
    with pytest.raises(Forbidden, match="outside"):
        tokens.issue(street_admin, "the district", "dispatcher", ["440307"])
    with pytest.raises(Forbidden, match="outside"):
        tokens.issue(street_admin, "half and half", "dashboard", [grid_code(2, 0), grid_code(1, 0)])
    with pytest.raises(Forbidden, match=f"token {global_info.token_id}.*outside"):
        tokens.revoke(street_admin, global_info.token_id)
    assert tokens.store.authenticate(global_secret).everywhere  # the global admin's token still works

    _, inside = tokens.issue(street_admin, "community screen", "dashboard", [grid_code(2, 0)[:12]])
    assert inside.principal.jurisdiction == (grid_code(2, 0)[:12],)
    _, deputy = tokens.issue(street_admin, "deputy", "admin", [STREET_2])  # its own role, its own street
    assert tokens.revoke(street_admin, inside.token_id).revoked_at is not None
    assert tokens.revoke(street_admin, deputy.token_id).revoked_at is not None


def test_only_admins_issue_and_an_unknown_role_or_area_is_invalid(tokens):
    dispatcher = Principal("dispatcher", Role.DISPATCHER, (STREET_2,))
    with pytest.raises(Forbidden, match="may not issue tokens"):
        tokens.issue(dispatcher, "x", "worker", [STREET_2])
    with pytest.raises(Forbidden, match="may not list tokens"):
        tokens.list(dispatcher)
    with pytest.raises(InvalidInput, match="unknown role 'mayor'"):
        tokens.issue(ADMIN, "x", "mayor", [STREET_2])
    with pytest.raises(InvalidInput, match="'440307999' name no grid"):
        tokens.issue(ADMIN, "x", "dispatcher", ["440307999"])
    with pytest.raises(InvalidInput, match="name no grid"):
        tokens.issue(Principal("S2 admin", Role.ADMIN, (STREET_2,)), "x", "dispatcher", ["440307999"])


def test_a_street_admin_lists_only_tokens_inside_its_street(tokens):
    tokens.store.issue("admin", Role.ADMIN)
    _, street_info = tokens.issue(ADMIN, "S2 admin", "admin", [STREET_2])
    _, one = tokens.issue(ADMIN, "S1 dispatcher", "dispatcher", [STREET_1])
    _, two = tokens.issue(ADMIN, "S2 dispatcher", "dispatcher", [STREET_2, grid_code(3, 3)])
    _, both = tokens.issue(ADMIN, "both streets", "dashboard", [STREET_1, STREET_2])
    listed = {i.principal.name for i in tokens.list(street_info.principal)}
    assert listed == {"S2 admin", "S2 dispatcher"}
    assert {i.principal.name for i in tokens.list(ADMIN)} == {"admin", "S2 admin", "S1 dispatcher", "S2 dispatcher",
                                                              "both streets"}
    for outside in (one, both):
        with pytest.raises(Forbidden):
            tokens.revoke(street_info.principal, outside.token_id)
    with pytest.raises(NotFound):
        tokens.revoke(street_info.principal, "tok_nope")


def test_a_worker_token_binds_only_a_worker_inside(tokens):
    street_admin = Principal("S2 admin", Role.ADMIN, (STREET_2,))
    _, own = tokens.issue(street_admin, "网格员21", "worker", [grid_code(2, 1)], worker_id=worker_id(2, 1))
    assert own.principal.worker_id == worker_id(2, 1)
    with pytest.raises(Forbidden, match=f"worker {worker_id(1, 1)}"):
        tokens.issue(street_admin, "网格员11", "worker", [grid_code(2, 1)], worker_id=worker_id(1, 1))
    with pytest.raises(NotFound):
        tokens.issue(street_admin, "nobody", "worker", [grid_code(2, 1)], worker_id="W-none")


def test_the_demo_admin_token_replaces_the_previous_one(tmp_path):
    store = TokenStore(tmp_path)
    try:
        first, _ = store.issue("demo admin", Role.ADMIN, replacing=True)
        other, _ = store.issue("someone else", Role.ADMIN)
        second, _ = store.issue("demo admin", Role.ADMIN, replacing=True)
        assert store.authenticate(second).name == "demo admin"
        assert store.authenticate(other).name == "someone else"
        with pytest.raises(Exception, match="revoked"):
            store.authenticate(first)
    finally:
        store.close()


# ---------------------------------------------------------------------- dispatching and acting


def _submit_at_border(world, n: int = 1) -> list[str]:
    """``n`` reports ~100 m apart in the border grid (2, 1) of street 002 (no duplicates)."""
    reports = [world.report(*BORDER, dx=0.001 * (k - n // 2)) for k in range(n)]
    receipts = world.intake.submit(reports, ADMIN)
    assert all(r.ok and r.grid_code == grid_code(*BORDER) for r in receipts)
    return [r.event_id for r in receipts]


def test_a_dispatcher_cannot_dispatch_to_a_worker_of_another_street(world):
    """The finding: a dispatcher of one street dispatched an event to a worker of another."""
    [event_id] = _submit_at_border(world)
    dispatcher = Principal("S2 dispatcher", Role.DISPATCHER, (STREET_2,))
    with pytest.raises(Forbidden, match=f"worker {NEIGHBOUR_OUTSIDE} lies outside"):
        world.intake.act(event_id, Action.DISPATCH, dispatcher, worker_id=NEIGHBOUR_OUTSIDE)
    assert world.intake.get(event_id, ADMIN).worker_id == worker_id(*BORDER)
    moved = world.intake.act(event_id, Action.DISPATCH, dispatcher, worker_id=NEIGHBOURS_INSIDE[0])
    assert moved.worker_id == NEIGHBOURS_INSIDE[0]


def test_the_online_rule_picks_for_a_dispatcher_only_inside_its_street(world):
    [event_id] = _submit_at_border(world)
    # Everyone's load is 0 but the border worker's: the rule takes the lowest id among the
    # neighbours, W11 of street 001, for a district-wide dispatcher ...
    everywhere = world.intake.act(event_id, Action.DISPATCH, Principal("调度", Role.DISPATCHER))
    assert everywhere.worker_id == NEIGHBOUR_OUTSIDE
    world.intake.act(event_id, Action.DISPATCH, ADMIN, worker_id=worker_id(*BORDER))
    # ... and the lowest id inside street 002 for that street's dispatcher.
    dispatcher = Principal("S2 dispatcher", Role.DISPATCHER, (STREET_2,))
    limited = world.intake.act(event_id, Action.DISPATCH, dispatcher)
    assert limited.worker_id == min(NEIGHBOURS_INSIDE)
    for wid in NEIGHBOURS_INSIDE:
        world.intake.set_duty(wid, False, ADMIN)
    with pytest.raises(PreconditionFailed, match="inside the jurisdiction of S2 dispatcher"):
        world.intake.act(event_id, Action.DISPATCH, dispatcher)


def test_a_verifier_reworks_only_to_workers_inside_its_street(world):
    [event_id] = _submit_at_border(world)
    holder = worker(*BORDER)
    world.intake.act(event_id, Action.FEEDBACK, holder)
    world.intake.set_duty(worker_id(*BORDER), False, ADMIN)  # the worker who fed back is gone
    verifier = Principal("S2 verifier", Role.VERIFIER, (STREET_2,))
    reworked = world.intake.act(event_id, Action.REWORK, verifier)
    assert reworked.state is State.DISPATCHED and reworked.worker_id == min(NEIGHBOURS_INSIDE)


def test_a_dispatcher_acts_only_on_events_of_its_street(world):
    [event_id] = _submit_at_border(world)
    other_street = Principal("S1 dispatcher", Role.DISPATCHER, (STREET_1,))
    with pytest.raises(Forbidden, match=f"event {event_id}"):
        world.intake.act(event_id, Action.DISPATCH, other_street, worker_id=NEIGHBOUR_OUTSIDE)
    with pytest.raises(Forbidden):
        world.intake.act(event_id, Action.PARK, Principal("S1 supervisor", Role.SUPERVISOR, (STREET_1,)))


def test_relocation_out_of_or_into_another_street_is_refused(world):
    [event_id] = _submit_at_border(world)
    dispatcher = Principal("S2 dispatcher", Role.DISPATCHER, (STREET_2,))
    with pytest.raises(Forbidden, match="new place"):
        world.intake.relocate(event_id, dispatcher, lng=centre(1, 1)[0], lat=centre(1, 1)[1])
    other_street = Principal("S1 dispatcher", Role.DISPATCHER, (STREET_1,))
    with pytest.raises(Forbidden, match=f"event {event_id}"):
        world.intake.relocate(event_id, other_street, lng=centre(1, 1)[0], lat=centre(1, 1)[1])
    assert world.intake.get(event_id, ADMIN).grid_code == grid_code(*BORDER)
    inside = world.intake.relocate(event_id, dispatcher, lng=centre(3, 3)[0], lat=centre(3, 3)[1])
    assert inside.grid_code == grid_code(3, 3)


# ---------------------------------------------------------------------- workers


def test_a_supervisor_manages_only_workers_of_its_street(world):
    supervisor = Principal("S2 supervisor", Role.SUPERVISOR, (STREET_2,))
    stranger = Worker("W-new", grid_code(0, 0), "新网格员", shift="always")
    with pytest.raises(Forbidden, match="W-new's grid"):
        world.intake.put_workers([stranger], supervisor)
    # Moving another street's worker into one's own street would take them (and their work) over.
    taken = Worker(NEIGHBOUR_OUTSIDE, grid_code(2, 1), "网格员11", shift="always")
    with pytest.raises(Forbidden, match=f"worker {NEIGHBOUR_OUTSIDE} \\(now of grid {grid_code(1, 1)}\\)"):
        world.intake.put_workers([Worker("W-ok", grid_code(3, 3), "ok", shift="always"), taken], supervisor)
    assert world.store.workers.get(NEIGHBOUR_OUTSIDE).grid_code == grid_code(1, 1)
    with pytest.raises(NotFound):
        world.store.workers.get("W-ok")  # nothing of a refused call is applied
    assert world.intake.put_workers([Worker("W-ok", grid_code(3, 3), "ok", shift="always")], supervisor) == 1
    with pytest.raises(Forbidden):
        world.intake.set_duty(NEIGHBOUR_OUTSIDE, False, supervisor)
    with pytest.raises(Forbidden):
        world.intake.set_duty(NEIGHBOUR_OUTSIDE, False, Principal("S2 dispatcher", Role.DISPATCHER, (STREET_2,)))
    assert world.intake.get_worker(NEIGHBOUR_OUTSIDE, ADMIN).on_duty
    assert not world.intake.set_duty(worker_id(3, 3), False, supervisor).on_duty


def test_rebalance_moves_events_only_to_workers_of_the_callers_street(world):
    # Five events in the border grid, all dispatched to its own worker (capacity 5). Spreading them
    # at the least maximum load takes every neighbour within one hop, W11 of street 001 too ...
    events = _submit_at_border(world, 5)
    assert {world.intake.get(e, ADMIN).worker_id for e in events} == {worker_id(*BORDER)}
    everywhere = world.intake.rebalance(Principal("调度", Role.DISPATCHER), max_hops=1, apply=False)
    assert everywhere.after["max_load"] == 1 and NEIGHBOUR_OUTSIDE in {to for _, _, to in everywhere.moves}
    # ... but street 002's dispatcher spreads them over street 002's workers only.
    dispatcher = Principal("S2 dispatcher", Role.DISPATCHER, (STREET_2,))
    report = world.intake.rebalance(dispatcher, max_hops=1)
    assert report.applied and report.moved >= 3
    assert {street_of(to) for _, _, to in report.moves} == {STREET_2}
    assert {street_of(world.intake.get(e, ADMIN).worker_id) for e in events} == {STREET_2}
    assert world.intake.worker_load(NEIGHBOUR_OUTSIDE) == 0
