"""Jurisdiction bounds every power: a caller sees grids, cells and results only inside its
jurisdiction, issues, lists and revokes tokens only inside it, acts on events and dispatches to and
manages workers only inside it."""

from __future__ import annotations

import uuid

import grpc
import numpy as np
import pytest
from grpc_env import LAT0, LNG0, NOW, SPAN, VERSIONS, random_points

from citygrid.engine.cases.taxonomy import load_taxonomy
from citygrid.grpc_api._pb import intake_pb2

OUT_OF_JURISDICTION = 6


@pytest.fixture(scope="module")
def dashboard(env):
    with env.client() as admin:
        secret = admin.issue_token("C00 大屏", "dashboard", ["C00"]).token
    with env.client(secret) as client:
        yield client


def test_list_grids_shows_only_the_own_community(env, dashboard, admin):
    mine = list(dashboard.list_grids(page_size=7))
    assert mine and {g.community_code for g in mine} == {"C00"}
    everything = list(admin.list_grids())
    assert len(everything) == env.layers["v1"].n_grids
    assert len(mine) == sum(g.community_code == "C00" for g in everything)
    assert list(dashboard.list_grids(community_code="C11")) == []


def test_points_in_other_communities_are_out_of_jurisdiction(dashboard):
    inside = dashboard.assign_point(LNG0 + 0.001, LAT0 + 0.001)
    assert inside.grid.community_code == "C00"
    other = dashboard.assign_point(LNG0 + SPAN - 0.001, LAT0 + SPAN - 0.001)
    assert other.status == OUT_OF_JURISDICTION and not other.HasField("grid")


def test_batches_hide_other_communities(env, dashboard, admin, rng):
    lng, lat = random_points(rng, 5000)
    mine, everything = dashboard.assign_points(lng, lat), admin.assign_points(lng, lat)
    communities = np.array([g.community_code for g in (everything.grids[r] for r in everything.grid_rows)])
    own = communities == "C00"
    assert 0 < own.sum() < len(lng)
    assert np.array_equal(mine.grid_rows[own], everything.grid_rows[own])
    assert (mine.grid_rows[~own] == -1).all() and (mine.statuses[~own] == OUT_OF_JURISDICTION).all()
    assert {g.community_code for g in mine.grids.values()} == {"C00"}


def _foreign_grid(admin):
    return next(g for g in admin.list_grids() if g.community_code == "C33")


@pytest.mark.parametrize("query", ["get_grid", "get_grid_cells"])
def test_grid_queries_outside_are_permission_denied(dashboard, admin, query):
    with pytest.raises(grpc.RpcError) as info:
        getattr(dashboard, query)(_foreign_grid(admin).code)
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED and "jurisdiction" in info.value.details()
    own = next(dashboard.list_grids())
    assert getattr(dashboard, query)(own.code) == getattr(admin, query)(own.code)


# ---------------------------------------------------------------------- H3 cells


def _border_cell(admin, own: str):
    """A cell of a grid of community ``own`` that also touches a grid of another community, and
    the grids the admin sees in it."""
    for grid in admin.list_grids(community_code=own):
        cells = admin.get_grid_cells(grid.code)
        for cell, interior in zip(cells.cell_ids, cells.interior):
            if not interior:
                grids = admin.locate_cell(cell).grids
                if {g.community_code for g in grids} - {own}:
                    return cell, grids
    raise AssertionError(f"no cell of {own} touches another community")


def test_locate_cell_shows_only_grids_inside_the_jurisdiction(dashboard, admin):
    cell, everything = _border_cell(admin, "C00")
    mine = dashboard.locate_cell(cell).grids
    assert list(mine) == [g for g in everything if g.community_code == "C00"]
    assert 0 < len(mine) < len(everything)
    foreign = _foreign_grid(admin)
    cells = admin.get_grid_cells(foreign.code)
    inner = next(c for c, interior in zip(cells.cell_ids, cells.interior) if interior)
    assert [g.code for g in admin.locate_cell(inner).grids] == [foreign.code]
    assert list(dashboard.locate_cell(inner).grids) == []


# ---------------------------------------------------------------------- tokens

# Streets of the test layer: S00 holds the boxes i, j in 0-9 of v1 (communities C00, C01, C10, C11).


def _as(env, admin, name: str, role: str, jurisdiction=(), worker_id: str = ""):
    return env.client(admin.issue_token(name, role, jurisdiction, worker_id=worker_id).token)


def _code(info) -> grpc.StatusCode:
    return info.value.code()


def test_a_street_admin_cannot_widen_its_powers_or_revoke_the_district_admin(env, admin):
    """The finding: an admin limited to one street issued itself an admin token for the whole
    district, then revoked the global admin's token."""
    global_id = admin.whoami().token_id
    with _as(env, admin, "S00 admin", "admin", ["S00"]) as street:
        for jurisdiction in (["*"], [], ["S10"], ["S00", "C22"], ["440307"]):
            with pytest.raises(grpc.RpcError) as info:
                street.issue_token("me again", "admin", jurisdiction)
            assert _code(info) is grpc.StatusCode.PERMISSION_DENIED, jurisdiction
        with pytest.raises(grpc.RpcError) as info:
            street.revoke_token(global_id)
        assert _code(info) is grpc.StatusCode.PERMISSION_DENIED and global_id in info.value.details()
        assert admin.whoami().token_id == global_id  # still valid

        issued = street.issue_token("C01 大屏", "dashboard", ["C01"])
        assert list(issued.info.jurisdiction) == ["C01"]
        listed = {t.token_id for t in street.list_tokens().tokens}
        assert issued.info.token_id in listed and global_id not in listed
        assert street.whoami().token_id in listed
        assert all(set(t.jurisdiction) <= {"S00", "C00", "C01", "C10", "C11"} for t in street.list_tokens().tokens)
        assert street.revoke_token(issued.info.token_id).HasField("revoked_at")


def test_jurisdiction_codes_must_name_areas_of_the_active_layer(admin):
    for jurisdiction in (["S99"], ["C00", "no-such-area"], ["x" * 1_000_000]):
        with pytest.raises(grpc.RpcError) as info:
            admin.issue_token("typo", "dashboard", jurisdiction)
        assert _code(info) is grpc.StatusCode.INVALID_ARGUMENT and "name no grid, community" in info.value.details()
        assert len(info.value.details()) < 400
    assert list(admin.issue_token("ok", "dashboard", ["G000000@v1", "C33"]).info.jurisdiction) == ["C33", "G000000@v1"]


def test_a_street_admin_binds_tokens_only_to_its_workers(env, admin, staffed):
    with _as(env, admin, "S00 admin", "admin", ["S00"]) as street:
        with pytest.raises(grpc.RpcError) as info:
            street.issue_token("网格员", "worker", ["S00"], worker_id=worker_of(*OUTSIDE))
        assert _code(info) is grpc.StatusCode.PERMISSION_DENIED
        ok = street.issue_token("网格员", "worker", [grid(*BORDER)], worker_id=worker_of(*BORDER))
        assert ok.info.worker_id == worker_of(*BORDER)


def test_district_wide_powers_need_a_district_wide_token(env, admin):
    with _as(env, admin, "S00 admin", "admin", ["S00"]) as street:
        with pytest.raises(grpc.RpcError) as info:
            street.activate_version("v1")
        assert _code(info) is grpc.StatusCode.PERMISSION_DENIED and "district-wide" in info.value.details()
    with _as(env, admin, "S00 supervisor", "supervisor", ["S00"]) as supervisor:
        with pytest.raises(grpc.RpcError) as info:
            supervisor.submit_reindex("points.parquet", "v1", "out")
        assert _code(info) is grpc.StatusCode.PERMISSION_DENIED and "district-wide" in info.value.details()


# ---------------------------------------------------------------------- events and workers

N1 = VERSIONS["v1"]
STEP = SPAN / N1
#: A box of street S00 on its border with S10, its neighbour across the border, and its neighbours inside.
BORDER, OUTSIDE = (9, 5), (10, 5)
INSIDE = [(8, 5), (9, 4), (9, 6)]


def grid(i: int, j: int) -> str:
    return f"G{i:03d}{j:03d}@v1"


def worker_of(i: int, j: int) -> str:
    return f"W{i:02d}{j:02d}"


def report(i: int, j: int, dx: float = 0.0) -> intake_pb2.EventReport:
    message = intake_pb2.EventReport(event_id=f"j-{uuid.uuid4().hex[:12]}", category_code="0101",
                                     source="hotline_12345", lng=LNG0 + (i + 0.5) * STEP + dx,
                                     lat=LAT0 + (j + 0.5) * STEP)
    message.occurred_at.FromDatetime(NOW)
    return message


@pytest.fixture(scope="module")
def staffed(env):
    """A grid worker in the border box, its neighbours and a box of the border in rows 15 (for
    rebalancing), always on shift, with every skill."""
    boxes = [BORDER, OUTSIDE, *INSIDE, (9, 15), (10, 15), (8, 15), (9, 14), (9, 16)]
    classes = sorted({c.class_code for c in load_taxonomy().categories})
    with env.client() as admin:
        workers = [intake_pb2.Worker(worker_id=worker_of(*b), grid_code=grid(*b), name=f"网格员{b}", skills=classes,
                                     shift="always", capacity=10) for b in boxes]
        admin.intake.PutWorkers(intake_pb2.PutWorkersRequest(workers=workers), metadata=admin.metadata)
    return env


def test_a_street_dispatcher_cannot_dispatch_to_a_worker_of_another_street(env, admin, staffed):
    """The finding: a dispatcher of one street dispatched an event to a worker of another."""
    [receipt] = admin.submit_events([report(*BORDER)])
    assert receipt.worker_id == worker_of(*BORDER)
    with _as(env, admin, "S00 调度", "dispatcher", ["S00"]) as dispatcher:
        with pytest.raises(grpc.RpcError) as info:
            dispatcher.update_status(receipt.event_id, "dispatch", worker_id=worker_of(*OUTSIDE))
        assert _code(info) is grpc.StatusCode.PERMISSION_DENIED and worker_of(*OUTSIDE) in info.value.details()
        assert admin.get_event(receipt.event_id).event.worker_id == worker_of(*BORDER)
        # The online rule picks for the dispatcher among S00's workers only: with the neighbours
        # inside off duty, only the one across the border is eligible, and it is not taken.
        _set_duty(admin, INSIDE, False)
        try:
            with pytest.raises(grpc.RpcError) as info:
                dispatcher.update_status(receipt.event_id, "dispatch")
            assert _code(info) is grpc.StatusCode.FAILED_PRECONDITION
            assert "inside the jurisdiction of S00 调度" in info.value.details()
        finally:
            _set_duty(admin, INSIDE, True)
        assert dispatcher.update_status(receipt.event_id, "dispatch").worker_id in {worker_of(*b) for b in INSIDE}
    with _as(env, admin, "S10 调度", "dispatcher", ["S10"]) as other:
        with pytest.raises(grpc.RpcError) as info:
            other.update_status(receipt.event_id, "dispatch", worker_id=worker_of(*OUTSIDE))
        assert _code(info) is grpc.StatusCode.PERMISSION_DENIED


def _set_duty(admin, boxes, on_duty: bool) -> None:
    for b in boxes:
        admin.intake.SetDuty(intake_pb2.SetDutyRequest(worker_id=worker_of(*b), on_duty=on_duty),
                             metadata=admin.metadata)


def test_relocating_out_of_or_into_another_street_is_permission_denied(env, admin, staffed):
    [receipt] = admin.submit_events([report(*BORDER, dx=0.001)])
    elsewhere = intake_pb2.RelocateEventRequest(event_id=receipt.event_id, lng=LNG0 + (OUTSIDE[0] + 0.5) * STEP,
                                                lat=LAT0 + (OUTSIDE[1] + 0.5) * STEP)
    with _as(env, admin, "S00 调度", "dispatcher", ["S00"]) as dispatcher:
        with pytest.raises(grpc.RpcError) as info:
            dispatcher.intake.RelocateEvent(elsewhere, metadata=dispatcher.metadata)
        assert _code(info) is grpc.StatusCode.PERMISSION_DENIED
    [foreign] = admin.submit_events([report(*OUTSIDE)])
    with _as(env, admin, "S10 调度", "dispatcher", ["S10"]) as other:
        back = intake_pb2.RelocateEventRequest(event_id=receipt.event_id, lng=elsewhere.lng, lat=elsewhere.lat)
        with pytest.raises(grpc.RpcError) as info:
            other.intake.RelocateEvent(back, metadata=other.metadata)  # an S00 event, moved into S10
        assert _code(info) is grpc.StatusCode.PERMISSION_DENIED
        inside = intake_pb2.RelocateEventRequest(event_id=foreign.event_id, lng=elsewhere.lng + 0.001,
                                                 lat=elsewhere.lat)
        assert other.intake.RelocateEvent(inside, metadata=other.metadata).grid_code == grid(*OUTSIDE)
    assert admin.get_event(receipt.event_id).event.grid_code == grid(*BORDER)


def test_a_street_supervisor_manages_only_its_workers(env, admin, staffed):
    theirs = intake_pb2.Worker(worker_id=worker_of(*OUTSIDE), grid_code=grid(*BORDER), name="taken over",
                               shift="always")
    new_there = intake_pb2.Worker(worker_id="W-new", grid_code=grid(*OUTSIDE), name="new", shift="always")
    with _as(env, admin, "S00 督办", "supervisor", ["S00"]) as supervisor:
        for workers in ([theirs], [new_there]):
            with pytest.raises(grpc.RpcError) as info:
                supervisor.intake.PutWorkers(intake_pb2.PutWorkersRequest(workers=workers),
                                             metadata=supervisor.metadata)
            assert _code(info) is grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as info:
            supervisor.intake.SetDuty(intake_pb2.SetDutyRequest(worker_id=worker_of(*OUTSIDE), on_duty=False),
                                      metadata=supervisor.metadata)
        assert _code(info) is grpc.StatusCode.PERMISSION_DENIED
    worker = admin.intake.GetWorker(intake_pb2.GetWorkerRequest(worker_id=worker_of(*OUTSIDE)), metadata=admin.metadata)
    assert worker.grid_code == grid(*OUTSIDE) and worker.on_duty and worker.name != "taken over"


def test_a_street_dispatcher_rebalances_onto_its_own_workers_only(env, admin, staffed):
    # Five events of box (9, 15) of S01 all go to its own worker; at the least maximum load (1) they
    # would spread over every neighbour, (10, 15) of S11 too; S01's dispatcher keeps them in S01.
    receipts = admin.submit_events([report(9, 15, dx=0.001 * (k - 2)) for k in range(5)])
    assert {r.worker_id for r in receipts} == {worker_of(9, 15)}
    everywhere = admin.intake.Rebalance(intake_pb2.RebalanceRequest(dry_run=True, max_hops=1), metadata=admin.metadata)
    assert worker_of(10, 15) in {m.to_worker_id for m in everywhere.moves}
    with _as(env, admin, "S01 调度", "dispatcher", ["S01"]) as dispatcher:
        plan = dispatcher.intake.Rebalance(intake_pb2.RebalanceRequest(max_hops=1), metadata=dispatcher.metadata)
    assert plan.applied and plan.moved >= 3
    allowed = {worker_of(*b) for b in [(9, 15), (8, 15), (9, 14), (9, 16)]}
    assert {m.to_worker_id for m in plan.moves} <= allowed
    assert {admin.get_event(r.event_id).event.worker_id for r in receipts} <= allowed
