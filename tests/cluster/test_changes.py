"""The change report of a re-indexing job between two versions of the demo district: three grids
split, two pairs merged, one re-coded; rows moved, the from -> to matrix, the open events and the
workers to re-assign, all checked against the local engine on both versions."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from citygrid.cluster import outputs
from citygrid.cluster.reindex import ReindexRequest
from citygrid.cluster.runner import JobRunner
from citygrid.cluster import changes
from citygrid.engine.layers import snapshots
from citygrid.engine.layers.assignment import Assigner
from citygrid.cluster.jobs import JobState

from cluster_env import redraw


@pytest.fixture(scope="module")
def versions(demo_version, data_dir):
    """The demo district (``demo-2025``) and its redrawn ``demo-2026``."""
    previous = demo_version
    split = [int(r) for r in np.argsort(-shapely.area(previous.geometries()))[:3]]  # the three largest
    layer, expected = redraw(previous, split=split, merge=[500, 1500], recode=[2000], version_id="demo-2026")
    return previous, snapshots.load_layer(snapshots.save_layer(layer, data_dir)), expected


def test_change_report_between_two_versions(ray_session, data_dir, demo_dir, versions, tmp_path):
    previous, layer, expected = versions
    buildings = pq.read_table(demo_dir / "buildings.parquet", columns=["lng", "lat", "grid_code"])
    lng, lat = buildings.column("lng").to_numpy(), buildings.column("lat").to_numpy()
    old_rows = Assigner.for_layer(previous).assign(lng, lat).grid_rows
    new_rows = Assigner.for_layer(layer).assign(lng, lat).grid_rows
    old_codes = [previous.codes[r] if r >= 0 else None for r in old_rows]
    new_codes = [layer.codes[r] if r >= 0 else None for r in new_rows]
    assert old_codes == buildings.column("grid_code").to_pylist()  # a building stands in its grid

    out = tmp_path / "out"
    with JobRunner(data_dir) as runner:
        job_id = runner.submit_reindex(ReindexRequest(
            input=str(demo_dir / "buildings.parquet"), layer="demo-2026", previous=previous.version_id,
            output=str(out), task_rows=20_000, slice_rows=20_000,
            events=str(demo_dir / "events.parquet"), grid_workers=str(demo_dir / "workers.parquet"),
        ))
        job = runner.wait(job_id, timeout=120)
    assert job.state is JobState.SUCCEEDED, job.error

    # Rows moved and the sparse from -> to matrix agree with the local engine on both versions.
    expected_pairs = Counter(zip(old_codes, new_codes))
    moved = sum(n for (a, b), n in expected_pairs.items() if a != b)
    summary = job.result["changes"]
    assert summary["rows"] == len(lng) and summary["rows_moved"] == moved > 0
    matrix = pq.read_table(out / "_changes" / "transitions.parquet")
    got_pairs = Counter({(a, b): n for a, b, n in zip(*(matrix.column(c).to_pylist() for c in matrix.column_names))})
    assert got_pairs == expected_pairs
    output = outputs.open_output(out).to_table().sort_by("row_id")
    assert output.column("previous_grid_code").cast(pa.string()).to_pylist() == old_codes
    assert output.column("grid_code").cast(pa.string()).to_pylist() == new_codes
    assert output.column("input_grid_code").to_pylist() == old_codes  # the input's own column, kept

    # Grids split and merged, found by area overlap.
    report = json.loads((out / "_changes" / "report.json").read_text())
    assert {k: sorted(v) for k, v in report["split_grids"].items()} == {k: sorted(v) for k, v in expected["split"].items()}
    assert {k: sorted(v) for k, v in report["merged_grids"].items()} == {k: sorted(v) for k, v in expected["merged"].items()}

    # Open events whose grid changed, handed to dispatch.
    events = pq.read_table(demo_dir / "events.parquet", columns=["event_id", "lng", "lat", "grid_code"])
    event_rows = Assigner.for_layer(layer).assign(events.column("lng").to_numpy(), events.column("lat").to_numpy()).grid_rows
    expected_events = {
        e for e, code, r in zip(events.column("event_id").to_pylist(), events.column("grid_code").to_pylist(), event_rows)
        if code != (layer.codes[r] if r >= 0 else None)
    }
    changed = pq.read_table(out / "_changes" / "events.parquet")
    assert set(changed.column("event_id").to_pylist()) == expected_events
    assert summary["events_changed"] == len(expected_events) > 0

    # Workers of split, merged and re-coded grids, with their new grids proposed by overlap.
    workers = pq.read_table(demo_dir / "workers.parquet", columns=["worker_id", "grid_code"]).to_pylist()
    split_of = expected["split"]
    merged_into = {old: new for new, olds in expected["merged"].items() for old in olds}
    by_worker = {w["worker_id"]: w for w in report["workers"]}
    affected = {w["worker_id"] for w in workers if w["grid_code"] in split_of or w["grid_code"] in merged_into
                or w["grid_code"] in expected["recoded"]}
    assert set(by_worker) == affected and affected
    for w in workers:
        entry = by_worker.get(w["worker_id"])
        code = w["grid_code"]
        if code in split_of:
            assert entry["change"] == "split"
            shares = {p["grid_code"]: p["share"] for p in entry["proposals"]}
            assert set(shares) == set(split_of[code]) and sum(shares.values()) == pytest.approx(1, abs=1e-3)
        elif code in merged_into:
            assert entry["change"] == "merged"
            assert entry["proposals"] == [{"grid_code": merged_into[code], "share": 1.0}]
        elif code in expected["recoded"]:
            assert entry["change"] == "recoded"
            assert entry["proposals"] == [{"grid_code": expected["recoded"][code], "share": 1.0}]


def test_transition_counts_add_up_across_tasks(rng):
    previous = rng.integers(-1, 40, 50_000).astype(np.int32)
    rows = np.where(rng.random(50_000) < 0.9, previous, rng.integers(-1, 40, 50_000)).astype(np.int32)
    parts = [changes.count_transitions(previous[s], rows[s]) for s in (slice(0, 20_000), slice(20_000, None))]
    merged = changes.merge_transitions(parts)
    whole = changes.count_transitions(previous, rows)
    for a, b in zip(merged, whole):
        np.testing.assert_array_equal(a, b)
    assert whole[2].sum() == 50_000
