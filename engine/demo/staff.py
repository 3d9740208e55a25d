"""The people who handle grid matters: grid workers, community grid chiefs, department officers.

- every grid has one 网格员 (department ``网格员``);
- every community has one 网格长, based in its first grid;
- the remaining head count are field officers of the departments named in the taxonomy (城管执法队员,
  消防监督员, …), spread over the streets by grid count and over departments by event weight, each
  based in a grid of their street.

Skills are taxonomy class codes (a worker may take a category whose class is among their skills);
shifts are weekly patterns in the format of :mod:`citygrid.engine.workers`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from citygrid.engine.taxonomy import Taxonomy

from .names import person_names, sequential_ids

GRID_DEPARTMENT = "网格员"
OFFICE_HOURS = "mon-fri 08:30-12:00,14:00-18:00"
WEEKEND_COVER = "wed-sun 08:30-12:00,14:00-18:00"
DAY_SHIFT = "mon-sun 08:00-18:00"
LATE_SHIFT = "mon-sun 14:00-22:00"

#: The role title of a department's field officers.
OFFICER_ROLES = {
    "城管": "城管执法队员", "住建": "住建巡查员", "消防": "消防监督员", "综治": "综治专干", "市场监管": "市场监管员",
    "交警": "交通协管员", "水务": "水务巡查员", "公安": "社区民警", "人力资源": "劳动监察员", "民政": "民政专干",
    "规划土地监察": "规划土地监察员", "交通运输": "交通运输执法员",
}
#: Classes every grid worker handles; each also gets one to three more.
_GENERAL_CLASSES = ("01", "05", "10")
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
    n_workers: int, rng: np.random.Generator,
) -> Staff:
    """``n_workers`` workers for grids with these communities and streets (grids in code order).

    ``grid_weight`` is where officers are based (busier grids more often).
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
    capacity = np.array([_CAPACITY.get(r, _OFFICER_CAPACITY) for r in role], dtype=np.int32)
    return Staff(grid, sequential_ids("W", n_workers), person_names(n_workers, rng), role, department,
                 skills, shift.astype(object), capacity)


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
