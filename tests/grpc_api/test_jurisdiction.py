"""A caller sees grids and results only inside its jurisdiction."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_env import LAT0, LNG0, SPAN, random_points

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


def test_grid_queries_outside_are_permission_denied(dashboard, admin):
    foreign = next(g for g in admin.list_grids() if g.community_code == "C33")
    with pytest.raises(grpc.RpcError) as info:
        dashboard.get_grid(foreign.code)
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED and "jurisdiction" in info.value.details()
    own = next(dashboard.list_grids())
    assert dashboard.get_grid(own.code) == own
