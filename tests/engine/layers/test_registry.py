"""The layer registry: validity dates, the active pointer, snapshots that outlive a swap, replicas."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import shapely

from citygrid.engine.layers import snapshots
from citygrid.engine.errors import InvalidInput, NotFound, PreconditionFailed
from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.layers.registry import LayerRegistry

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def layer(version_id: str, n: int = 2) -> GridLayer:
    boxes = [shapely.box(i, 0, i + 1, 1) for i in range(n)]
    return GridLayer.from_geometries(boxes, {"grid_code": [f"{version_id}-{i}" for i in range(n)]}, version_id=version_id)


@pytest.fixture
def registry(tmp_path):
    built = []
    reg = LayerRegistry(tmp_path, assigner_factory=lambda lyr: built.append(lyr.version_id) or lyr.version_id)
    reg.built = built
    yield reg
    reg.close()


def test_publishing_closes_the_previous_validity(registry):
    for k, vid in enumerate(("a", "b", "c")):
        registry.register(layer(vid))
        registry.publish(vid, T0 + timedelta(days=10 * k))
    records = {r.version_id: r for r in registry.versions()}
    assert records["a"].valid_to == records["b"].valid_from == T0 + timedelta(days=10)
    assert records["c"].valid_to is None
    assert registry.at(T0).version_id == "a"
    assert registry.at(T0 + timedelta(days=10)).version_id == "b"  # valid_from is inclusive
    assert registry.at(T0 + timedelta(days=10) - timedelta(microseconds=1)).version_id == "a"
    assert registry.at(T0 + timedelta(days=999)).version_id == "c"
    with pytest.raises(NotFound, match="valid from"):
        registry.at(T0 - timedelta(seconds=1))


def test_publication_rules(registry):
    registry.register(layer("a"))
    registry.register(layer("b"))
    registry.publish("a", T0)
    with pytest.raises(PreconditionFailed, match="already published"):
        registry.publish("a", T0 + timedelta(days=1))
    with pytest.raises(PreconditionFailed, match="not after"):
        registry.publish("b", T0)
    with pytest.raises(InvalidInput, match="time zone"):
        registry.publish("b", datetime(2027, 1, 1))
    with pytest.raises(NotFound):
        registry.publish("zzz")
    with pytest.raises(PreconditionFailed, match="not published"):
        registry.activate("b")


def test_an_overlapping_layer_fails_the_publish_gate(registry):
    bad = GridLayer.from_geometries([shapely.box(0, 0, 2, 1), shapely.box(1, 0, 3, 1)], {"grid_code": ["x", "y"]},
                                    version_id="bad")
    registry.register(bad)
    with pytest.raises(PreconditionFailed, match="n_overlaps=1"):
        registry.publish("bad")


def test_a_reader_keeps_its_snapshot_across_a_swap(registry):
    for k, vid in enumerate(("a", "b")):
        registry.register(layer(vid))
        registry.publish(vid, T0 + timedelta(days=k))
    with pytest.raises(PreconditionFailed, match="no active layer version"):
        registry.snapshot()
    registry.activate("a")
    held = registry.snapshot()
    record, previous = registry.activate("b")
    assert (record.version_id, record.active, previous) == ("b", True, "a")
    assert held.version_id == "a" and held.layer.codes[0] == "a-0" and held.assigner == "a"
    assert registry.snapshot().version_id == "b"
    assert registry.built == ["a", "b"]  # each assigner built once, before its swap
    registry.activate("a")
    assert registry.built == ["a", "b"]


def test_saved_versions_are_found_and_replicas_follow(tmp_path, registry):
    snapshots.save_layer(layer("imported"), tmp_path)
    assert registry.sync() == ["imported"]
    registry.publish("imported", T0)
    replica = LayerRegistry(tmp_path, assigner_factory=lambda lyr: None)
    try:
        assert replica.active_version_id is None
        registry.activate("imported")
        assert replica.refresh() is True and replica.snapshot().version_id == "imported"
        assert replica.refresh() is False
    finally:
        replica.close()
    restarted = LayerRegistry(tmp_path, assigner_factory=lambda lyr: None)
    try:
        assert restarted.active_version_id == "imported"
    finally:
        restarted.close()
