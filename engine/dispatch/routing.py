"""Routing: who may take an event of a category where.

A category (optionally narrowed by grid type or area) routes to responsible
departments and, optionally, a skill: :class:`RoutingRules`. From the taxonomy
(:meth:`RoutingRules.from_taxonomy`) each category goes to its department together with the grid
workers (网格员, the first responders of every grid), asking for the skill named by its class code.
A worker meets a route when their department is one of the route's and they have its skill.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


from citygrid.engine.errors import InvalidInput
from citygrid.engine.dispatch.workers import DEFAULT_DEPARTMENT, Worker


# ---------------------------------------------------------------------- routing


@dataclass(frozen=True)
class Route:
    """Who may take an event: a worker of one of ``departments`` with the ``skill`` (if any)."""

    departments: frozenset[str]
    skill: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.departments, str):
            object.__setattr__(self, "departments", frozenset({self.departments}))
        else:
            object.__setattr__(self, "departments", frozenset(self.departments))
        if not self.departments:
            raise InvalidInput("a route needs at least one department")

    def admits(self, worker: Worker) -> bool:
        return worker.department in self.departments and (self.skill is None or self.skill in worker.skills)


@dataclass(frozen=True)
class RoutingRule:
    """A category (or a whole category class), optionally only in grids of a type or inside an area
    (a grid, community or street code), routes to ``route``."""

    route: Route
    category: str | None = None
    category_class: str | None = None
    grid_type: str | None = None
    area: str | None = None

    def matches(self, category: str, category_class: str | None, grid_type: str | None, chain) -> bool:
        return (
            (self.category is None or self.category == category)
            and (self.category_class is None or self.category_class == category_class)
            and (self.grid_type is None or self.grid_type == grid_type)
            and (self.area is None or self.area in chain)
        )

    @property
    def specificity(self) -> tuple[int, bool, bool, bool, bool]:
        """More conditions first; among as many, category, then area, then grid type, then class."""
        conditions = (self.category is not None, self.area is not None, self.grid_type is not None,
                      self.category_class is not None)
        return (sum(conditions), *conditions)


@dataclass(frozen=True)
class RoutingRules:
    """The most specific matching rule wins: the one with the most conditions (a class in a grid type
    beats a category alone), then category over area over grid type over class; among equally
    specific rules, the first listed. With no match the default route applies."""

    rules: tuple[RoutingRule, ...] = ()
    default: Route = Route(DEFAULT_DEPARTMENT)

    def __post_init__(self) -> None:
        by_category: dict[str, list[RoutingRule]] = {}
        for rule in self.rules:
            if rule.category is not None:
                by_category.setdefault(rule.category, []).append(rule)
        object.__setattr__(self, "_by_category", by_category)
        object.__setattr__(self, "_general", [r for r in self.rules if r.category is None])
        object.__setattr__(self, "spatial", any(r.grid_type is not None or r.area is not None for r in self.rules))

    def route(
        self,
        category: str,
        category_class: str | None = None,
        grid_type: str | None = None,
        chain: Sequence[str | None] = (),
    ) -> Route:
        best: RoutingRule | None = None
        for rule in (*self._by_category.get(category, ()), *self._general):
            if rule.matches(category, category_class, grid_type, chain):
                if best is None or rule.specificity > best.specificity:
                    best = rule
        return best.route if best is not None else self.default

    def routes(self) -> list[Route]:
        """Every route a rule can give, the default first."""
        return list(dict.fromkeys([self.default, *(r.route for r in self.rules)]))

    @classmethod
    def from_taxonomy(
        cls,
        taxonomy,
        *,
        first_responders: Sequence[str] = (DEFAULT_DEPARTMENT,),
        skill_by_class: bool = True,
        extra: Iterable[RoutingRule] = (),
    ) -> "RoutingRules":
        """One rule per taxonomy category: its responsible department, together with the
        ``first_responders`` (the grid workers, 网格员, who take any matter of their grid), and,
        with ``skill_by_class``, the skill named by the category's class code. ``extra`` rules (for
        grid types or areas) follow and win when more specific."""
        rules = [
            RoutingRule(
                Route(frozenset({c.department, *first_responders}), c.class_code if skill_by_class else None),
                category=c.code,
            )
            for c in taxonomy.categories
        ]
        return cls(tuple(rules) + tuple(extra), Route(frozenset(first_responders) or DEFAULT_DEPARTMENT))


