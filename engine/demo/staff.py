"""The people who handle grid matters: grid workers, community grid chiefs, department officers.

- every grid has one 网格员 (department ``网格员``);
- every community has one 网格长, based in its first grid;
- the remaining head count are field officers of the departments named in the taxonomy (城管执法队员,
  消防监督员, …), spread over the streets by grid count and over departments by event weight, each
  based in a grid of their street;
- duty (值班): the grid workers take turns on duty outside their shifts, at night (18:00 to 08:30 the
  next morning) and, where their own shifts leave a gap (lunch, the days off of the office-hours and
  the weekend workers), by day (08:30-18:00) (:func:`duty_rota`). In each of these 14 periods of the
  week the grids whose worker is on shift or on duty for the whole period form a dominating set of
  the grid adjacency graph: every grid has one itself or next to it, so at any hour an event has a
  worker within one hop (the dispatcher's default reach). Every grid worker handles the
  emergencies of class 04 (突发事件: 道路积水, 路面塌陷, 树木倒伏, 火情), so urgent matters are dispatched
  at 03:00 as at 10:00; other matters go to the duty worker when they have the skill, and wait for
  the morning otherwise.

Skills are taxonomy class codes (a worker may take a category whose class is among their skills);
shifts are weekly patterns in the format of :mod:`citygrid.engine.dispatch.workers`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from citygrid.engine.cases.taxonomy import Taxonomy
from citygrid.engine.dispatch.workers import shift_of

from .names import person_names, sequential_ids

GRID_DEPARTMENT = "网格员"
OFFICE_HOURS = "mon-fri 08:30-12:00,14:00-18:00"
WEEKEND_COVER = "wed-sun 08:30-12:00,14:00-18:00"
DAY_SHIFT = "mon-sun 08:00-18:00"
LATE_SHIFT = "mon-sun 14:00-22:00"
#: The two duty periods (值班) of each day: by day, and at night until the next morning.
DUTY_PERIODS = ("08:30-18:00", "18:00-08:30")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: The role title of a department's field officers.
OFFICER_ROLES = {
    "城管": "城管执法队员", "住建": "住建巡查员", "消防": "消防监督员", "综治": "综治专干", "市场监管": "市场监管员",
    "交警": "交通协管员", "水务": "水务巡查员", "公安": "社区民警", "人力资源": "劳动监察员", "民政": "民政专干",
    "规划土地监察": "规划土地监察员", "交通运输": "交通运输执法员",
}
#: Classes every grid worker handles (04 突发事件: the urgent ones, taken on night duty too); each also
#: gets one to three more.
_GENERAL_CLASSES = ("01", "04", "05", "10")
_CAPACITY = {"网格员": 20, "网格长": 30}
_OFFICER_CAPACITY = 15


@dataclass(frozen=True)
class Staff:
    """Workers sorted by id: grid row, id, name, role, department, skills, shift, capacity."""

    grid: np.ndarray
    worker_id: np.ndarray
    name: np.ndarray
    role: np.ndarray
    department: np.ndarray
    skills: list[list[str]]
    shift: np.ndarray
    capacity: np.ndarray


def hire_staff(
    taxonomy: Taxonomy, grid_community: np.ndarray, grid_street: np.ndarray, grid_weight: np.ndarray,
    n_workers: int, rng: np.random.Generator, neighbours: tuple[np.ndarray, np.ndarray] | None = None,
) -> Staff:
    """``n_workers`` workers for grids with these communities and streets (grids in code order).

    ``grid_weight`` is where officers are based (busier grids more often); ``neighbours`` the grid
    adjacency as CSR (offsets, rows), from which the grid workers' duty rota is made (none without
    it).
    """
    n_grids = len(grid_community)
    n_communities = int(grid_community.max()) + 1
    n_officers = n_workers - n_grids - n_communities
    if n_officers < 0:
        raise ValueError(f"{n_workers} workers are too few: every grid and community needs one "
                         f"({n_grids + n_communities})")
    chief_grid = np.searchsorted(grid_community, np.arange(n_communities))
    officer_grid, officer_department = _officer_posts(taxonomy, grid_street, grid_weight, n_officers, rng)

    grid = np.concatenate([np.arange(n_grids), chief_grid, officer_grid])
    role = np.concatenate([
        np.full(n_grids, "网格员", dtype=object),
        np.full(n_communities, "网格长", dtype=object),
        np.array([OFFICER_ROLES.get(d, f"{d}专员") for d in officer_department], dtype=object),
    ])
    department = np.concatenate([np.full(n_grids + n_communities, GRID_DEPARTMENT, dtype=object), officer_department])
    rank = np.concatenate([np.zeros(n_grids), np.ones(n_communities), np.full(n_officers, 2)])
    order = np.lexsort((rank, grid))
    grid, role, department = grid[order], role[order], department[order]

    classes = [c.code for c in taxonomy.classes]
    department_classes = {}
    for category in taxonomy.categories:
        department_classes.setdefault(category.department, []).append(category.class_code)
    extra_classes = [c for c in classes if c not in _GENERAL_CLASSES]
    n_extra = rng.integers(1, 4, size=n_workers)
    skills = []
    for w in range(n_workers):
        if role[w] == "网格长":
            skills.append(classes)
        elif role[w] == "网格员":
            chosen = rng.choice(extra_classes, size=n_extra[w], replace=False)
            skills.append(sorted({*_GENERAL_CLASSES, *chosen.tolist()}))
        else:
            skills.append(sorted(set(department_classes[department[w]])))

    grid_worker = role == "网格员"
    shift = np.where(role == "网格长", OFFICE_HOURS, np.where(rng.random(n_workers) < 0.5, DAY_SHIFT, LATE_SHIFT))
    shift = np.where(grid_worker, np.where(rng.random(n_workers) < 0.7, OFFICE_HOURS, WEEKEND_COVER), shift)
    shift = shift.astype(object)
    if neighbours is not None:
        grid_shift = np.empty(n_grids, dtype=object)
        grid_shift[grid[grid_worker]] = shift[grid_worker]
        periods = [(day, period) for day in range(7) for period in DUTY_PERIODS]
        covered = np.array([[_covers(spec, day, period) for spec in grid_shift] for day, period in periods])
        duties: list[dict[str, list[str]]] = [{} for _ in range(n_grids)]
        for (day, period), grids in zip(periods, duty_rota(*neighbours, covered)):
            for g in grids.tolist():
                duties[g].setdefault(period, []).append(_DAYS[day])
        for w in np.flatnonzero(grid_worker).tolist():
            clauses = [f"{','.join(days)} {period}" for period, days in sorted(duties[grid[w]].items())]
            shift[w] = "; ".join([shift[w], *clauses])
    capacity = np.array([_CAPACITY.get(r, _OFFICER_CAPACITY) for r in role], dtype=np.int32)
    return Staff(grid, sequential_ids("W", n_workers), person_names(n_workers, rng), role, department,
                 skills, shift.astype(object), capacity)


def duty_rota(offsets: np.ndarray, rows: np.ndarray, covered: np.ndarray) -> list[np.ndarray]:
    """For each period ``p`` the grids whose worker goes on duty then, so that with the grids of
    ``covered[p]`` (their worker is on shift for the whole period) they form a dominating set of the
    adjacency graph (CSR ``offsets``, ``rows``): every grid has a worker in it or next to it.

    Greedy and deterministic: each pick is among the grids that still reach a grid nobody reaches in
    that period, the worker with the fewest duties so far, then the one that reaches the most, then
    the lowest grid row; so the duties go round.

    >>> offsets, rows = np.array([0, 1, 3, 5, 6]), np.array([1, 0, 2, 1, 3, 2])  # a path 0-1-2-3
    >>> covered = np.array([[False] * 4, [False] * 4, [True, False, False, False]])
    >>> [p.tolist() for p in duty_rota(offsets, rows, covered)]
    [[1, 2], [0, 3], [2]]
    """
    n = len(offsets) - 1
    closed = [np.append(rows[offsets[g]:offsets[g + 1]], g) for g in range(n)]  # each grid and its neighbours
    duties = np.zeros(n, dtype=np.int64)
    rota = []
    for on_shift in covered:
        uncovered = np.ones(n, dtype=bool)
        gain = np.array([len(c) for c in closed], dtype=np.int64)  # grids nobody reaches yet that g reaches

        def take(g: int) -> None:
            newly = closed[g][uncovered[closed[g]]]
            uncovered[newly] = False
            for u in newly.tolist():  # u is reached now: no pick counts it any more
                gain[closed[u]] -= 1

        for g in np.flatnonzero(on_shift).tolist():
            take(g)
        chosen = []
        while uncovered.any():
            useful = np.flatnonzero(gain > 0)
            fresh = useful[duties[useful] == duties[useful].min()]
            g = int(fresh[np.argmax(gain[fresh])])  # argmax takes the first: the lowest row
            chosen.append(g)
            duties[g] += 1
            take(g)
        rota.append(np.sort(np.asarray(chosen, dtype=np.int64)))
    return rota


def _covers(spec: str | None, day: int, period: str) -> bool:
    """Whether the shift ``spec`` covers every minute of ``period`` (``"HH:MM-HH:MM"``) starting on ``day``."""
    if spec is None:
        return False
    minutes = shift_of(spec).minutes
    span = shift_of(f"{_DAYS[day]} {period}").minutes
    return bool(np.all(minutes[span]))


def _officer_posts(
    taxonomy: Taxonomy, grid_street: np.ndarray, grid_weight: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Grid and department of ``n`` field officers: streets by grid count, departments by event weight."""
    weight_of: dict[str, float] = {}
    for category in taxonomy.categories:
        if category.department != GRID_DEPARTMENT:
            weight_of[category.department] = weight_of.get(category.department, 0.0) + category.weight
    departments = np.array(list(weight_of), dtype=object)
    n_streets = int(grid_street.max()) + 1
    share = np.outer(np.bincount(grid_street, minlength=n_streets), np.array(list(weight_of.values())))
    counts = _largest_remainder(share.ravel(), n).reshape(share.shape)
    grids, kinds = [], []
    for street in range(n_streets):
        members = np.flatnonzero(grid_street == street)
        p = grid_weight[members] / grid_weight[members].sum()
        for d, k in enumerate(counts[street]):
            grids.append(rng.choice(members, size=k, p=p))
            kinds.append(np.full(k, departments[d], dtype=object))
    return np.concatenate(grids), np.concatenate(kinds)


def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Whole numbers summing to ``total`` in proportion to ``weights`` (Hamilton's method)."""
    quota = weights / weights.sum() * total
    counts = np.floor(quota).astype(int)
    short = total - counts.sum()
    counts[np.argsort(-(quota - counts), kind="stable")[:short]] += 1
    return counts
