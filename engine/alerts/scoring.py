"""Scoring alerts against labelled anomalies (the demo's ``anomalies.parquet``): recall and false alerts.

An alert names a category, the grids it covers and a window of local days; it covers an anomaly
when the category is the anomaly's, one of its grids is one of the anomaly's grids and the
windows overlap (the issue's rule: "an alert counts when it covers the anomaly's grid or disc
within its window"). An anomaly's grids are those its injected events fell in: a spike's one
grid, the grids a cluster's disc put events in. An alert that covers no anomaly is false. An
alert of a category class (the series of a class's categories summed) names the class: given
``classes`` (category -> class), it covers the anomalies of its class's categories.

Detector alarms on grid x category daily series are alerts of one grid and one day
(:func:`alerts_from_detection`).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from citygrid.engine.errors import InvalidInput, NotFound

MS_PER_DAY = 86_400_000


@dataclass
class Labelled:
    """The labelled anomalies, their grids and their windows in local days since the first day."""

    ids: list[str]
    kinds: list[str]
    categories: list[str]
    grids: list[frozenset[str]]
    first_day: np.ndarray
    last_day: np.ndarray


@dataclass
class Alerts:
    """Alerts as parallel lists: category, the grids covered, first and last local day (inclusive)."""

    categories: list[str]
    grids: list[frozenset[str]]
    first_day: np.ndarray
    last_day: np.ndarray

    def __len__(self) -> int:
        return len(self.categories)


@dataclass
class Score:
    found: dict[str, bool]          # anomaly id -> covered by an alert
    recall: dict[str, float]        # kind -> share of its anomalies found
    n_alerts: int
    false_alerts: int
    false_per_day: float

    @property
    def precision(self) -> float:
        return 1.0 - self.false_alerts / self.n_alerts if self.n_alerts else float("nan")


def read_labelled(demo_dir: str | os.PathLike, start: dt.datetime) -> Labelled:
    """The anomalies of a generated demo, with days counted from ``start`` (a tz-aware local midnight)."""
    import pyarrow.parquet as pq

    root = Path(demo_dir)
    for name in ("anomalies.parquet", "events.parquet"):
        if not (root / name).is_file():
            raise NotFound(f"no {name} in {root}")
    if start.tzinfo is None:
        raise InvalidInput(f"start must be timezone-aware, got {start!r}")
    table = pq.read_table(root / "anomalies.parquet",
                          columns=["anomaly_id", "kind", "category_code", "start_at", "end_at"]).to_pydict()
    events = pq.read_table(root / "events.parquet", columns=["anomaly_id", "grid_code"]).to_pydict()
    grids: dict[str, set[str]] = {}
    for anomaly, grid in zip(events["anomaly_id"], events["grid_code"]):
        if anomaly is not None:
            grids.setdefault(anomaly, set()).add(grid)
    origin = round(start.timestamp() * 1000)

    def day(stamp) -> int:
        return (round(stamp.timestamp() * 1000) - origin) // MS_PER_DAY

    ids = table["anomaly_id"]
    return Labelled(ids=list(ids), kinds=list(table["kind"]), categories=list(table["category_code"]),
                    grids=[frozenset(grids.get(a, ())) for a in ids],
                    first_day=np.array([day(t) for t in table["start_at"]], dtype=np.int64),
                    last_day=np.array([day(t) for t in table["end_at"]], dtype=np.int64))


def alerts_from_detection(units, categories, alarm: np.ndarray, first_day: int = 0) -> Alerts:
    """One alert per alarm of a (series x day) matrix; row r is the series of ``units[r]``
    (a grid) and ``categories[r]``; column t is day ``first_day + t``."""
    alarm = np.asarray(alarm, dtype=bool)
    if alarm.ndim != 2 or alarm.shape[0] != len(units) or len(units) != len(categories):
        raise InvalidInput(f"the alarm matrix {alarm.shape} needs one row per series ({len(units)} units, "
                           f"{len(categories)} categories)")
    rows, cols = np.nonzero(alarm)
    units = np.asarray(units, dtype=object)
    categories = np.asarray(categories, dtype=object)
    days = cols.astype(np.int64) + first_day
    return Alerts(categories=categories[rows].tolist(), grids=[frozenset((u,)) for u in units[rows].tolist()],
                  first_day=days, last_day=days.copy())


def score(alerts: Alerts, labelled: Labelled, n_days: int, classes: dict[str, str] | None = None) -> Score:
    """Recall per kind of anomaly, and the false alerts (in all and per day of the ``n_days`` monitored).
    ``classes``: category -> class, for alerts that name a class."""
    if n_days <= 0:
        raise InvalidInput(f"n_days must be positive, got {n_days}")
    covering = np.zeros(len(alerts), dtype=bool)
    found = {}
    categories = np.asarray(alerts.categories, dtype=object)
    for i, anomaly in enumerate(labelled.ids):
        of = labelled.categories[i]
        hit = (((categories == of) | (categories == (classes or {}).get(of, of))) & (alerts.first_day <= labelled.last_day[i])
               & (alerts.last_day >= labelled.first_day[i]))
        for j in np.flatnonzero(hit):
            if not (alerts.grids[j] & labelled.grids[i]):
                hit[j] = False
        covering |= hit
        found[anomaly] = bool(hit.any())
    recall = {}
    for kind in sorted(set(labelled.kinds)):
        of_kind = [a for a, k in zip(labelled.ids, labelled.kinds) if k == kind]
        recall[kind] = sum(found[a] for a in of_kind) / len(of_kind)
    false_alerts = int((~covering).sum())
    return Score(found=found, recall=recall, n_alerts=len(alerts), false_alerts=false_alerts,
                 false_per_day=false_alerts / n_days)
