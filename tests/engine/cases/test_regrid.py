"""Open events after a layer change: the ones in a split grid move to their new grid and are
dispatched again, the others stay, closed and duplicate ones stay, and a second pass moves nothing."""

from __future__ import annotations

import pytest
import shapely
from intake_world import ADMIN, INTAKE, LAT0, LNG0, SIDE, STEP, grid_code, make_world, worker_id

from citygrid.engine.errors import Forbidden
from citygrid.engine.cases.locator import AssignerLocator
from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.cases.lifecycle import State
from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.dispatch.workers import Worker

SPLIT = (1, 1)
OLD = grid_code(*SPLIT)
WEST, EAST = OLD[:-3] + "905", OLD[:-3] + "906"
ACTIVATION = Principal("layer-activation", Role.ADMIN)


def split_layer() -> GridLayer:
    """The world's layer with grid (1, 1) split into a west and an east half (new codes)."""
    boxes, codes = [], []
    for j in range(SIDE):
        for i in range(SIDE):
            if (i, j) != SPLIT:
                x, y = LNG0 + i * STEP, LAT0 + j * STEP
                boxes.append(shapely.box(x, y, x + STEP, y + STEP))
                codes.append(grid_code(i, j))
    x0, y0 = LNG0 + SPLIT[0] * STEP, LAT0 + SPLIT[1] * STEP
    boxes += [shapely.box(x0, y0, x0 + STEP / 2, y0 + STEP), shapely.box(x0 + STEP / 2, y0, x0 + STEP, y0 + STEP)]
    codes += [WEST, EAST]
    assert len(codes) == SIDE * SIDE + 1
    return GridLayer.from_geometries(
        boxes,
        {"grid_code": codes, "community_code": [c[:12] for c in codes], "street_code": [c[:9] for c in codes],
         "district_code": ["440307"] * len(codes)},
        version_id="split",
    )


@pytest.fixture
def moved_world(tmp_path):
    """Events in the grid to split (west, east, a duplicate), one elsewhere; then the split layer
    is in use and each half has a worker of its own."""
    world = make_world(tmp_path)
    intake = world.intake
    west, east, duplicate, other = intake.submit(
        [world.report(*SPLIT, dx=-STEP / 4), world.report(*SPLIT, dx=STEP / 4),
         world.report(*SPLIT, dx=-STEP / 4 + 1e-5), world.report(2, 2)],
        INTAKE,
    )
    assert (west.state, east.state, duplicate.state, other.state) == (
        State.DISPATCHED, State.DISPATCHED, State.DUPLICATE, State.DISPATCHED)
    assert west.worker_id == east.worker_id == worker_id(*SPLIT)
    intake.use_layer(AssignerLocator.for_layer(split_layer()))
    intake.put_workers(
        [Worker(f"W{half}", code, f"网格员{half}", skills=frozenset({"01", "05", "10"}), shift="always", capacity=5)
         for half, code in (("west", WEST), ("east", EAST))],
        ADMIN,
    )
    return world, (west.event_id, east.event_id, duplicate.event_id, other.event_id)


def test_events_in_a_split_grid_move_and_are_dispatched_again(moved_world):
    world, (west, east, duplicate, other) = moved_world
    intake = world.intake
    trails = {e: intake.audit(e, ADMIN) for e in (west, east, duplicate, other)}

    moves = intake.regrid_open_events(ACTIVATION, note="layer version split activated")

    assert sorted(moves) == sorted([(west, OLD, WEST), (east, OLD, EAST)])
    for event_id, code, worker in ((west, WEST, "Wwest"), (east, EAST, "Weast")):
        event = intake.get(event_id, ADMIN)
        assert (event.grid_code, event.worker_id, event.state) == (code, worker, State.DISPATCHED)
        assert event.community_code == OLD[:12] and event.layer_version == "split"
        added = intake.audit(event_id, ADMIN)[len(trails[event_id]):]
        assert [(a.action, a.principal, a.worker_id) for a in added] == [
            ("relocate", "layer-activation", None), ("redispatch", "citygrid", worker)]
        assert "world -> split" in added[0].note and "activated" in added[0].note
        assert intake.store.dispatch_feed(worker, after=0, limit=10)[-1].event_id == event_id
    assert intake.worker_load(worker_id(*SPLIT)) == 0
    assert (intake.worker_load("Wwest"), intake.worker_load("Weast")) == (1, 1)
    # The duplicate (not open) and the event elsewhere are untouched.
    assert intake.get(duplicate, ADMIN).grid_code == OLD
    assert intake.get(other, ADMIN).worker_id == worker_id(2, 2)
    for event_id in (duplicate, other):
        assert intake.audit(event_id, ADMIN) == trails[event_id]

    # A second pass finds nothing to move and writes nothing.
    after = {e: intake.audit(e, ADMIN) for e in (west, east)}
    assert intake.regrid_open_events(ACTIVATION) == []
    assert {e: intake.audit(e, ADMIN) for e in (west, east)} == after


def test_change_report_feeds(moved_world):
    world, (west, east, duplicate, other) = moved_world
    intake = world.intake
    intake.regrid_open_events(ACTIVATION)
    located = {e[0]: e for e in intake.open_event_locations()}
    assert set(located) == {west, east, other}
    assert located[west][3] == WEST and located[other][3] == grid_code(2, 2)
    assert located[west][1] < LNG0 + (SPLIT[0] + 0.5) * STEP < located[east][1]
    workers = dict(intake.grid_workers())
    assert workers["Wwest"] == WEST and workers[worker_id(0, 0)] == grid_code(0, 0)


def test_only_supervisors_regrid(moved_world):
    world, _ = moved_world
    with pytest.raises(Forbidden, match="re-grid"):
        world.intake.regrid_open_events(INTAKE)
