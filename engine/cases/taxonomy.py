"""Event taxonomy: classes and categories of grid matters, with their stage time limits.

The default taxonomy ships as package data (``engine/data/taxonomy.json``): the classes of
urban-management matters (城市管理部件和事件: 市容环境, 宣传广告, 施工管理, 突发事件, 街面秩序,
设施管理) and of social-governance matters (矛盾纠纷, 安全隐患, 治安问题, 民生服务). Codes are strings:
a class code (``'01'``) and category codes that start with it (``'0101'``). Each category names the
department responsible for it, the time limit of each stage in working minutes and a relative
frequency weight (used by the demo generator). Worker skills name class codes: a worker with skill
``'08'`` can take any 安全隐患 matter.

>>> taxonomy = load_taxonomy()
>>> category = taxonomy.category("0101")
>>> category.name, category.class_name, category.department, category.limits.handle
('暴露垃圾', '市容环境', '城管', 240)
>>> len(taxonomy.classes), len(taxonomy.categories)
(10, 50)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources

from citygrid.engine.errors import InvalidInput, NotFound

#: The processing stages whose time limits every category sets, in order.
STAGES = ("register", "dispatch", "handle", "verify")
DOMAINS = ("urban_management", "social_governance")


@dataclass(frozen=True)
class StageLimits:
    """Time limit of each stage, in working minutes (立案 / 派遣 / 处置 / 核查结案)."""

    register: int
    dispatch: int
    handle: int
    verify: int


@dataclass(frozen=True)
class Category:
    """A leaf category of grid matters (for example 0101 暴露垃圾)."""

    code: str
    name: str
    class_code: str
    class_name: str
    domain: str
    department: str
    limits: StageLimits
    weight: float


@dataclass(frozen=True)
class CategoryClass:
    """A class of categories (for example 01 市容环境)."""

    code: str
    name: str
    domain: str
    categories: tuple[Category, ...]


@dataclass(frozen=True)
class Taxonomy:
    """The classes and categories of one taxonomy file."""

    name: str
    version: str
    classes: tuple[CategoryClass, ...]

    @property
    def categories(self) -> tuple[Category, ...]:
        """Every category, class by class, in file order."""
        return tuple(c for cls in self.classes for c in cls.categories)

    def category(self, code: str) -> Category:
        """The category with this code; :class:`NotFound` if there is none."""
        for candidate in self.categories:
            if candidate.code == code:
                return candidate
        raise NotFound(f"no category {code!r} in taxonomy {self.name} {self.version}")

    def name_of(self, code: str) -> tuple[str, str] | None:
        """``("class", name)`` or ``("category", name)`` for a class's or a category's code (an
        alert's ``category_code`` may be either), ``None`` for a code of neither."""
        for cls in self.classes:
            if cls.code == code:
                return "class", cls.name
            for c in cls.categories:
                if c.code == code:
                    return "category", c.name
        return None


def load_taxonomy(path: str | os.PathLike | None = None) -> Taxonomy:
    """Read and check a taxonomy file; ``None`` reads the default one shipped with CityGrid."""
    if path is None:
        text = resources.files("citygrid.engine").joinpath("data/taxonomy.json").read_text("utf-8")
        source = "the default taxonomy"
    else:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise InvalidInput(f"cannot read the taxonomy file {path}: {exc}") from None
        source = str(path)
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{source} is not valid JSON: {exc}") from None
    return _parse(payload, source)


def _parse(payload: dict, source: str) -> Taxonomy:
    try:
        classes = tuple(_parse_class(entry) for entry in payload["classes"])
        taxonomy = Taxonomy(name=str(payload["name"]), version=str(payload["version"]), classes=classes)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"{source}: malformed taxonomy ({type(exc).__name__}: {exc})") from None
    _check(taxonomy, source)
    return taxonomy


def _parse_class(entry: dict) -> CategoryClass:
    code, name, domain = entry["code"], entry["name"], entry["domain"]
    categories = tuple(
        Category(
            code=item["code"],
            name=item["name"],
            class_code=code,
            class_name=name,
            domain=domain,
            department=item["department"],
            limits=StageLimits(**{stage: item["time_limits"][stage] for stage in STAGES}),
            weight=float(item["weight"]),
        )
        for item in entry["categories"]
    )
    return CategoryClass(code=code, name=name, domain=domain, categories=categories)


def _check(taxonomy: Taxonomy, source: str) -> None:
    problems = []
    class_codes = [cls.code for cls in taxonomy.classes]
    codes = [c.code for c in taxonomy.categories]
    for kind, values in (("class", class_codes), ("category", codes)):
        if not all(isinstance(v, str) and v for v in values):
            problems.append(f"{kind} codes must be non-empty strings")
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            problems.append(f"duplicate {kind} codes {duplicates}")
    for cls in taxonomy.classes:
        if cls.domain not in DOMAINS:
            problems.append(f"class {cls.code}: domain {cls.domain!r} is not one of {DOMAINS}")
        if not cls.categories:
            problems.append(f"class {cls.code} has no categories")
    for c in taxonomy.categories:
        if isinstance(c.code, str) and not c.code.startswith(str(c.class_code)):
            problems.append(f"category {c.code} does not start with its class code {c.class_code}")
        if not all(isinstance(getattr(c.limits, s), int) and getattr(c.limits, s) > 0 for s in STAGES):
            problems.append(f"category {c.code}: stage time limits must be positive whole working minutes")
        if not c.weight >= 0:
            problems.append(f"category {c.code}: weight must be >= 0")
    if problems:
        raise InvalidInput(f"{source}: " + "; ".join(problems))
