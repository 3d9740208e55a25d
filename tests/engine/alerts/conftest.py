"""The alerts tests' small district: a layer of 4 x 4 grids in two streets, active, and an intake on
an injected clock at 03:00 on the fifth day of the Spring Festival holiday (a night and a holiday)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from intake_world import build_layer

from citygrid.engine.cases.host import IntakeHost
from citygrid.engine.cases.settings import IntakeSettings
from citygrid.engine.layers.registry import LayerRegistry
from citygrid.engine.times import ManualClock

#: 03:00 on the fifth day of the Spring Festival holiday.
NIGHT_OF_A_HOLIDAY = dt.datetime(2026, 2, 21, 3, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture
def district(tmp_path):
    """(data directory, intake host, clock) of the small district, its clock at NIGHT_OF_A_HOLIDAY."""
    registry = LayerRegistry(tmp_path)
    registry.register(build_layer())
    registry.publish("world")
    registry.activate("world")
    clock = ManualClock(NIGHT_OF_A_HOLIDAY)
    intakes = IntakeHost(tmp_path, registry, IntakeSettings(clock_interval=3600), clock=clock)
    yield tmp_path, intakes, clock
    intakes.close()
    registry.close()
