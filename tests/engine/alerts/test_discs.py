"""Disc findings of a detection run's scans (:mod:`citygrid.engine.alerts.discs`): the events come
dictionary-coded as the analytics mirror holds them, and the codes are mapped to layer rows once."""

from __future__ import annotations

import datetime as dt

import numpy as np
from intake_world import build_layer

from citygrid.engine.alerts import discs
from citygrid.engine.alerts.settings import AlertSettings


def test_layer_rows_match_a_lookup_of_every_code(rng):
    layer = [f"4403{n:08d}" for n in rng.permutation(500)]
    codes = [f"4403{n:08d}" for n in rng.integers(-20, 540, size=2_000)] + ["", "x", "4403"]
    expected = {code: row for row, code in enumerate(layer)}
    got = discs.layer_rows(layer, codes)
    assert got.tolist() == [expected.get(code, -1) for code in codes]
    assert discs.layer_rows([], codes).tolist() == [-1] * len(codes)
    assert discs.layer_rows(layer, []).tolist() == []


def _findings(layer, points, grid, grid_codes, category, category_codes, day):
    settings = AlertSettings(scan_reps=99, scan_p=0.05, scan_study_days=15)
    return discs.scan_findings(settings, layer, points, grid, grid_codes, category, category_codes, day,
                               dt.date(2025, 3, 1), [14])


def test_findings_do_not_depend_on_how_the_events_are_coded(rng):
    """The same events under the layer's own coding, and under shuffled dictionaries holding codes
    the layer lacks (events there left out) and codes no event uses, give the same findings."""
    layer = build_layer()
    points = discs.grid_points(layer)
    codes = list(layer.codes)
    n = len(codes)
    # background over 15 days for two categories, and a burst in two neighbouring grids today
    rows = np.concatenate([rng.integers(0, n, size=300), np.repeat([0, 1], 8)])
    cats = np.concatenate([rng.integers(0, 2, size=300), np.zeros(16, dtype=np.int64)])
    day = np.concatenate([rng.integers(0, 15, size=300), np.full(16, 14)])
    category_names = ["0101", "0205"]
    plain = _findings(layer, points, rows, codes, cats, category_names, day)
    assert "0101" in {f.category_code for f in plain}

    strangers = ["440399999999001", "440399999999002"]
    grid_dictionary = np.array(codes + strangers, dtype=object)[rng.permutation(n + 2)].tolist()
    at = {code: k for k, code in enumerate(grid_dictionary)}
    category_dictionary = ["9999", "0205", "0101"]
    extra = rng.integers(0, 15, size=40)  # events in grids the layer lacks: left out
    grid = np.concatenate([[at[codes[r]] for r in rows], [at[strangers[k % 2]] for k in range(40)]])
    category = np.concatenate([np.where(cats == 0, 2, 1), np.full(40, 2)])
    coded = _findings(layer, points, grid, grid_dictionary, category, category_dictionary, np.concatenate([day, extra]))
    assert coded == plain
