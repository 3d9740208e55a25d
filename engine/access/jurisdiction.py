"""The areas a jurisdiction can name: the grid, community, street and district codes of a layer
version, each with its parent chain.

A jurisdiction is a set of area codes (or ``*``, the whole district). The codes a token is given must
name areas of the active layer version (:meth:`Areas.check`); whether one jurisdiction lies inside
another is decided on the parent chains of its codes (:meth:`Areas.inside`), so a street's admin
holds every community and grid of the street, and nothing of the next street.

>>> from citygrid.engine.access.principals import Principal, Role
>>> areas = Areas({"G1": [("G1", "C1", "S1", "D")], "C1": [("C1", "S1", "D")], "S1": [("S1", "D")],
...                "S2": [("S2", "D")], "D": [("D",)]}, "v1")
>>> areas.check([" C1 ", "G1"])
('C1', 'G1')
>>> street_admin = Principal("S1 admin", Role.ADMIN, ("S1",))
>>> areas.inside(street_admin, ("C1", "G1")), areas.inside(street_admin, ("S2",)), areas.inside(street_admin, ("*",))
(True, False, False)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from citygrid.engine.errors import InvalidInput
from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.access.principals import EVERYWHERE, Principal
from citygrid.engine.hierarchy import Chains

#: Most unknown codes an error message names.
_NAMED = 5
#: Longest a code is echoed in an error message.
_ECHO = 40


class Areas:
    """Every area code of one layer version with its parent chains (the code itself first; a code
    that occurs at more than one level, or under more than one parent, has one chain each)."""

    def __init__(self, chains: Mapping[str, Sequence[tuple[str, ...]]], version_id: str):
        self._chains = {code: tuple(dict.fromkeys(tuple(c) for c in cs)) for code, cs in chains.items()}
        self.version_id = version_id

    @classmethod
    def of_layer(cls, layer: GridLayer) -> "Areas":
        chains: dict[str, dict[tuple[str, ...], None]] = {}
        for row in Chains.of_layer(layer, missing_as_none=True).chains:
            for level, code in enumerate(row):
                if code is not None:
                    chains.setdefault(code, {})[tuple(c for c in row[level:] if c is not None)] = None
        return cls({code: list(cs) for code, cs in chains.items()}, layer.version_id)

    def __contains__(self, code: str) -> bool:
        return code in self._chains

    def chains(self, code: str) -> tuple[tuple[str, ...], ...]:
        """The parent chains of an area (a code that names no area: just itself)."""
        return self._chains.get(code, ((code,),))

    def check(self, codes: Iterable[str]) -> tuple[str, ...]:
        """A jurisdiction as a token keeps it: the codes stripped, once each, sorted; nothing or
        ``*`` is ``("*",)`` (everywhere). :class:`InvalidInput` names the codes that are no area of
        this layer version."""
        scope = sorted({code.strip() for code in codes if code.strip()})
        if not scope or EVERYWHERE in scope:
            return (EVERYWHERE,)
        unknown = [code for code in scope if code not in self._chains]
        if unknown:
            named = ", ".join(_echo(code) for code in unknown[:_NAMED])
            more = f" and {len(unknown) - _NAMED} more" if len(unknown) > _NAMED else ""
            raise InvalidInput(
                f"jurisdiction codes {named}{more} name no grid, community, street or district of layer version "
                f"{self.version_id}; give codes of that version, or {EVERYWHERE} for the whole district"
            )
        return tuple(scope)

    def inside(self, principal: Principal, jurisdiction: Iterable[str]) -> bool:
        """Whether every area of ``jurisdiction`` lies inside ``principal``'s jurisdiction (``*``
        lies only inside ``*``)."""
        if principal.everywhere:
            return True
        return all(code != EVERYWHERE and all(principal.covers(chain) for chain in self.chains(code))
                   for code in jurisdiction)


def _echo(code: str) -> str:
    """A code as an error message repeats it: quoted, and cut when long."""
    return repr(code) if len(code) <= _ECHO else repr(code[:_ECHO]) + f"… ({len(code)} characters)"
