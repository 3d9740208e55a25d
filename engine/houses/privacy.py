"""Personal data of residents: who may read it, how exports mask it, and the audit of every read.

**Who** (:data:`PEOPLE_READERS`): names, genders, birth years and residence histories are read only
by grid workers (``worker``: they register and check people) and verifiers (``verifier``: they check
declarations and cases), and admins, each only for residents whose home lies inside their
jurisdiction (the home building's current grid, community, street, district). Dashboards, intake,
dispatchers and supervisors see counts only (population, rentals, group-renting units).

**Audit**: every read of personal data writes one row of ``house_audit`` (when, who, role, what
action, the reason the caller gave, how many records and their resident ids) and commits it
(``synchronous=FULL``: durable) *before* the data is returned; a read without a reason is refused.

**Exports** of people mask names: the first and last character kept, the rest ``*``
(:func:`mask_name`), and carry birth years as age bands only.

>>> mask_name("张小三"), mask_name("张三"), mask_name("欧阳小明"), mask_name("李")
('张*三', '张*', '欧**明', '*')
"""

from __future__ import annotations

import json
from datetime import datetime

from citygrid.engine.errors import Forbidden, InvalidInput
from citygrid.engine.access.principals import Principal, Role

#: Roles that may read residents' personal data (admins always may), within their jurisdiction.
PEOPLE_READERS = (Role.WORKER, Role.VERIFIER)
#: Roles that may register moves and check declarations (admins always may), within their jurisdiction.
PEOPLE_WRITERS = (Role.WORKER,)
#: Longest reason kept.
MAX_REASON = 200


def mask_name(name: str) -> str:
    """A name as exports show it: first and last character, ``*`` between (two characters: the
    first and ``*``; one: ``*``)."""
    name = (name or "").strip()
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def require_reader(principal: Principal, chain, *, what: str) -> None:
    """:class:`Forbidden` unless ``principal`` may read people whose home has the parent ``chain``."""
    principal.require_role(*PEOPLE_READERS, action=f"read personal data ({what})")
    principal.require_covers([c for c in chain if c is not None], what=what)


def require_writer(principal: Principal, chain, *, what: str) -> None:
    principal.require_role(*PEOPLE_WRITERS, action=f"change residence records ({what})")
    principal.require_covers([c for c in chain if c is not None], what=what)


def check_reason(reason) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a read of personal data needs a reason (why it is read), which is audited")
    return reason.strip()[:MAX_REASON]


def audit(conn, principal: Principal, at: datetime, action: str, reason: str, records) -> None:
    """One audit row for a read of ``records`` (resident ids). The caller commits it before
    returning the data (inside :func:`~citygrid.engine.houses.store.transaction`)."""
    records = list(records)
    conn.execute("INSERT INTO house_audit (at, principal, role, action, reason, n_records, records) "
                 "VALUES (?,?,?,?,?,?,?)", (at.isoformat(), principal.name, principal.role.value, action, reason,
                                            len(records), json.dumps(records, ensure_ascii=False)))


def require_counts_reader(principal: Principal) -> None:
    """Counts are for every role (they carry no person); a principal must still be a known role."""
    if not isinstance(principal, Principal):
        raise Forbidden("counts are read by a known principal")
