"""The ``[analytics]`` configuration: KPI weights, grade bands and each rate's denominator.

>>> config = AnalyticsConfig.from_table({"weights": {"rework": 0.0}, "grades": {"A": 95}})
>>> config.weights["rework"], config.grades[0]
(0.0, ('A', 95.0))
>>> AnalyticsConfig.from_table({"denominators": {"closure": "closed"}})
Traceback (most recent call last):
...
citygrid.engine.errors.InvalidInput: [analytics] denominators.closure = 'closed': choose one of registered, reported, dispatched
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from citygrid.engine.errors import InvalidInput

#: Each KPI rate: (numerator measure, allowed denominators (the first is the default), higher is better).
RATES: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "on_time_disposal": ("handled_on_time", ("handled", "dispatched"), True),  # 按期处置率
    "closure": ("closed", ("registered", "reported", "dispatched"), True),  # 结案率
    "rework": ("reworked", ("closed", "handled"), False),  # 返工率
    "timely_dispatch": ("dispatched_on_time", ("dispatched", "registered"), True),  # 及时派遣率
}
DEFAULT_WEIGHTS = {"on_time_disposal": 0.4, "closure": 0.3, "rework": 0.15, "timely_dispatch": 0.15}
DEFAULT_GRADES = (("A", 90.0), ("B", 75.0), ("C", 60.0), ("D", 40.0))
#: The grade below the last band.
LOWEST_GRADE = "E"


@dataclass(frozen=True)
class AnalyticsConfig:
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    #: (grade, least score) from the best grade down; below the last: :data:`LOWEST_GRADE`.
    grades: tuple[tuple[str, float], ...] = DEFAULT_GRADES
    denominators: Mapping[str, str] = field(default_factory=lambda: {k: v[1][0] for k, v in RATES.items()})
    #: The local time of buckets, hours of day and weekdays.
    timezone: str = "Asia/Shanghai"

    @classmethod
    def from_table(cls, table: Mapping | None) -> "AnalyticsConfig":
        """The configuration of an ``[analytics]`` TOML table (missing keys keep their defaults)."""
        table = dict(table or {})
        unknown = set(table) - {"weights", "grades", "denominators", "timezone"}
        if unknown:
            raise InvalidInput(f"[analytics] has unknown keys {', '.join(sorted(unknown))}; "
                               "known: weights, grades, denominators, timezone")
        weights = dict(DEFAULT_WEIGHTS)
        for name, value in dict(table.get("weights", {})).items():
            if name not in RATES:
                raise InvalidInput(f"[analytics] weights.{name}: no such rate; rates are {', '.join(RATES)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise InvalidInput(f"[analytics] weights.{name} = {value!r}: give a number >= 0")
            weights[name] = float(value)
        if not sum(weights.values()) > 0:
            raise InvalidInput("[analytics] weights: at least one weight must be > 0")
        bands = dict(DEFAULT_GRADES)
        for grade, value in dict(table.get("grades", {})).items():
            if grade not in bands:
                raise InvalidInput(f"[analytics] grades.{grade}: grades are A, B, C, D (E is below D)")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
                raise InvalidInput(f"[analytics] grades.{grade} = {value!r}: give a score 0-100")
            bands[grade] = float(value)
        grades = tuple((g, bands[g]) for g, _ in DEFAULT_GRADES)
        if any(a[1] <= b[1] for a, b in zip(grades, grades[1:])):
            raise InvalidInput(f"[analytics] grades must fall from A to D: {dict(grades)}")
        denominators = {k: v[1][0] for k, v in RATES.items()}
        for name, value in dict(table.get("denominators", {})).items():
            if name not in RATES:
                raise InvalidInput(f"[analytics] denominators.{name}: no such rate; rates are {', '.join(RATES)}")
            if value not in RATES[name][1]:
                raise InvalidInput(f"[analytics] denominators.{name} = {value!r}: choose one of "
                                   f"{', '.join(RATES[name][1])}")
            denominators[name] = value
        timezone = table.get("timezone", "Asia/Shanghai")
        return cls(weights, grades, denominators, str(timezone))

    def grades_of(self, scores: np.ndarray) -> list[str]:
        """:meth:`grade` of each score, at once."""
        scores = np.asarray(scores, dtype=np.float64)
        labels = [g for g, _ in self.grades] + [LOWEST_GRADE, ""]
        which = np.full(len(scores), len(self.grades), dtype=np.int64)
        for k in range(len(self.grades) - 1, -1, -1):
            which[scores >= self.grades[k][1]] = k
        which[np.isnan(scores)] = len(self.grades) + 1
        return np.array(labels, dtype=object)[which].tolist()

    def grade(self, score: float) -> str:
        """The grade of a composite score (NaN: no grade, ``""``)."""
        if math.isnan(score):
            return ""
        for grade, least in self.grades:
            if score >= least:
                return grade
        return LOWEST_GRADE
