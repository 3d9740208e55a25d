"""Who is calling: principals, their roles and their jurisdiction.

A principal is a person or a system named in audit records. Its role says what it may do; its
jurisdiction (district, street, community or grid codes) bounds where it may do it: what it sees,
the events it acts on, the workers it dispatches to and manages, the tokens it issues, lists and
revokes. Grid codes nest by prefix in the 15-digit standard (district 6 + street 3 + community 3 +
grid 3), but layers read from other sources need not follow it, so jurisdiction is checked against a
grid's whole parent chain (:mod:`citygrid.engine.access.jurisdiction` knows the chains of a layer's areas).

>>> p = Principal("市民热线", Role.INTAKE, ("440307001",))
>>> p.covers(["440307001002003", "440307001002", "440307001", "440307"])
True
>>> p.covers(["440307002001001", "440307002001", "440307002", "440307"])
False
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable

from citygrid.engine.errors import Forbidden, InvalidInput


class Role(str, enum.Enum):
    ADMIN = "admin"
    INTAKE = "intake"
    DISPATCHER = "dispatcher"
    VERIFIER = "verifier"
    SUPERVISOR = "supervisor"
    DASHBOARD = "dashboard"
    WORKER = "worker"

    @classmethod
    def parse(cls, value: str) -> "Role":
        """The role named ``value``; :class:`InvalidInput` for a name that is not a role."""
        try:
            return cls(value)
        except ValueError:
            raise InvalidInput(
                f"unknown role {value!r}; roles are {', '.join(r.value for r in cls)}"
            ) from None


#: A jurisdiction entry that covers everything (the district-wide admin's).
EVERYWHERE = "*"

#: The roles each role may issue tokens for: only admins issue, and an admin's role is the highest,
#: so no token can issue one with a higher role than its own.
GRANTS: dict[Role, frozenset[Role]] = {Role.ADMIN: frozenset(Role)}


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    jurisdiction: tuple[str, ...] = (EVERYWHERE,)
    #: The worker id when the principal is a grid worker (their own dispatches only).
    worker_id: str | None = None

    @property
    def everywhere(self) -> bool:
        return EVERYWHERE in self.jurisdiction

    def covers(self, chain: Iterable[str | None]) -> bool:
        """Whether a grid with this parent chain (its code, community, street, district codes) lies
        inside the jurisdiction."""
        if self.everywhere:
            return True
        scope = set(self.jurisdiction)
        return any(code is not None and code in scope for code in chain)

    def require_role(self, *roles: Role, action: str) -> None:
        """Raise :class:`Forbidden` unless this principal has one of ``roles`` (admins always do)."""
        if self.role is Role.ADMIN or self.role in roles:
            return
        allowed = ", ".join(r.value for r in roles)
        raise Forbidden(f"{self.name} ({self.role.value}) may not {action}; that needs the role {allowed}")

    def require_covers(self, chain: Iterable[str | None], *, what: str) -> None:
        chain = list(chain)
        if not self.covers(chain):
            raise Forbidden(f"{what} lies outside the jurisdiction of {self.name} ({', '.join(self.jurisdiction)})")

    def require_everywhere(self, *, action: str) -> None:
        """Raise :class:`Forbidden` unless the jurisdiction is the whole district (for powers over
        everything at once: layer versions, batch jobs)."""
        if not self.everywhere:
            raise Forbidden(f"{self.name} ({', '.join(self.jurisdiction)}) may not {action}; that needs a "
                            f"district-wide ({EVERYWHERE}) jurisdiction")

    def require_grants(self, role: Role) -> None:
        """Raise :class:`Forbidden` unless this principal may issue a token with ``role`` (:data:`GRANTS`)."""
        if role not in GRANTS.get(self.role, frozenset()):
            issuers = ", ".join(r.value for r, granted in GRANTS.items() if role in granted)
            raise Forbidden(f"{self.name} ({self.role.value}) may not issue a token with the role {role.value}; "
                            f"that needs the role {issuers}")
