"""A small district for the intake tests: 4 x 4 square grids in two streets and four communities
near Longgang, one grid worker (网格员) per grid and a 城管 officer, a clock the test moves."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import shapely

from citygrid.engine.cases.model import EventReport
from citygrid.engine.cases.store import SqliteEventStore
from citygrid.engine.cases.intake import Intake, IntakeConfig
from citygrid.engine.cases.locator import AssignerLocator
from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.access.principals import Principal, Role
from citygrid.engine.dispatch.workers import Worker

CST = ZoneInfo("Asia/Shanghai")
LNG0, LAT0, STEP = 114.20, 22.70, 0.005
SIDE = 4


def grid_code(i: int, j: int) -> str:
    """Street by column half, community by quadrant, grid sequence inside the community."""
    street = 1 + i // 2
    community = 1 + (j // 2)
    seq = 1 + (i % 2) + 2 * (j % 2)
    return f"440307{street:03d}{community:03d}{seq:03d}"


def build_layer() -> GridLayer:
    boxes, codes = [], []
    for j in range(SIDE):
        for i in range(SIDE):
            boxes.append(shapely.box(LNG0 + i * STEP, LAT0 + j * STEP, LNG0 + (i + 1) * STEP, LAT0 + (j + 1) * STEP))
            codes.append(grid_code(i, j))
    return GridLayer.from_geometries(
        boxes,
        {
            "grid_code": codes,
            "community_code": [c[:12] for c in codes],
            "street_code": [c[:9] for c in codes],
            "district_code": ["440307"] * len(codes),
        },
        version_id="world",
    )


def centre(i: int, j: int) -> tuple[float, float]:
    return LNG0 + (i + 0.5) * STEP, LAT0 + (j + 0.5) * STEP


def worker_id(i: int, j: int) -> str:
    return f"W{i}{j}"


@dataclass
class World:
    intake: Intake
    store: SqliteEventStore
    layer: GridLayer
    now: list = field(default_factory=list)
    counter: int = 0

    def advance(self, **delta) -> datetime:
        self.now[0] = self.now[0] + timedelta(**delta)
        return self.now[0]

    def report(self, i: int = 1, j: int = 1, category: str = "0101", dx: float = 0.0, **kw) -> EventReport:
        self.counter += 1
        lng, lat = centre(i, j)
        fields = dict(event_id=f"ev-{self.counter:05d}", category_code=category, occurred_at=self.now[0],
                      source="hotline_12345", lng=lng + dx, lat=lat)
        fields.update(kw)
        return EventReport(**fields)


INTAKE = Principal("市民热线", Role.INTAKE)
DISPATCHER = Principal("王调度", Role.DISPATCHER)
VERIFIER = Principal("李核查", Role.VERIFIER)
SUPERVISOR = Principal("赵督办", Role.SUPERVISOR)
ADMIN = Principal("admin", Role.ADMIN)


def worker(i: int, j: int) -> Principal:
    return Principal(f"网格员{i}{j}", Role.WORKER, (grid_code(i, j),), worker_id=worker_id(i, j))


def make_world(data_dir, *, config: IntakeConfig | None = None, start: datetime | None = None) -> World:
    layer = build_layer()
    store = SqliteEventStore(data_dir)
    now = [start or datetime(2026, 3, 9, 9, 0, tzinfo=CST)]  # a working Monday
    intake = Intake(store, AssignerLocator.for_layer(layer), config=config, clock=lambda: now[0])
    workers = [
        Worker(worker_id(i, j), grid_code(i, j), f"网格员{i}{j}", skills=frozenset({"01", "05", "10"}),
               shift="always", capacity=5)
        for i in range(SIDE) for j in range(SIDE)
    ]
    workers.append(Worker("C00", grid_code(0, 0), "城管队员", department="城管", skills=frozenset({"01", "05"}),
                          shift="always", capacity=10))
    intake.put_workers(workers, ADMIN)
    return World(intake, store, layer, now)
