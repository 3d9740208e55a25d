"""Bearer tokens: random secrets kept only as SHA-256 hashes in the data directory's database.

A token belongs to a principal (a person or system named in audit records) with a role and a
jurisdiction. The secret is ``cg_`` followed by :func:`secrets.token_urlsafe` (the prefix names it
for secret scanners and keeps it from starting with ``-``, which a command line would take for an
option). It is shown once when issued and never stored: the database keeps its SHA-256 hash and a
short public ``token_id`` to name it in lists and revocations. Looking a secret up hashes it and
finds the row; a revoked token no longer resolves.

>>> import tempfile
>>> store = TokenStore(tempfile.mkdtemp())
>>> secret, info = store.issue("市民热线", Role.INTAKE, ["440307001"])
>>> store.authenticate(secret).role.value, store.authenticate(secret).jurisdiction
('intake', ('440307001',))
>>> _ = store.revoke(info.token_id)
>>> store.authenticate(secret)
Traceback (most recent call last):
...
citygrid.engine.errors.Unauthorized: the token is revoked; ask an admin for a new one

A caller's powers over tokens go through :class:`TokenAuthority`, which bounds them by the caller's
role and jurisdiction: only a role of :data:`~citygrid.engine.access.principals.GRANTS` issues (so never a
higher role than its own), only inside its own jurisdiction, naming areas of the active layer
version; it lists and revokes only the tokens whose jurisdiction lies inside its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Sequence

from citygrid.engine.database import open_database, transaction
from citygrid.engine.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from citygrid.engine.access.jurisdiction import Areas
from citygrid.engine.layers.layer import GridLayer
from citygrid.engine.access.principals import EVERYWHERE, Principal, Role

STORE = "tokens"
MIGRATIONS = [
    [
        """CREATE TABLE tokens (
            token_hash TEXT PRIMARY KEY,
            token_id TEXT NOT NULL UNIQUE,
            principal TEXT NOT NULL,
            role TEXT NOT NULL,
            jurisdiction TEXT NOT NULL,
            worker_id TEXT,
            created_at TEXT NOT NULL,
            revoked_at TEXT
        )""",
    ]
]

#: Bytes of randomness in a secret (``token_urlsafe`` makes 43 characters of it).
TOKEN_BYTES = 32
#: The start of every issued secret: ``token_urlsafe`` alone starts with ``-`` one time in 64, and
#: ``citygrid ... --token -xyz`` then fails to parse.
SECRET_PREFIX = "cg_"


@dataclass(frozen=True)
class TokenInfo:
    """What is known about a token, without its secret."""

    token_id: str
    principal: Principal
    created_at: datetime
    revoked_at: datetime | None = None


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """Issue, revoke, list and resolve tokens in ``<data_dir>/citygrid.sqlite3``.

    Safe to share between threads. Lookups are answered from a cache of live tokens (a lookup is on
    the path of every call). The cache is emptied by this store's own issues and revocations at once,
    and when another process has written to the database (SQLite's ``data_version``), which is checked
    at most every ``recheck_seconds``: a revocation made through another process holds within that.
    """

    def __init__(self, data_dir: str | os.PathLike, *, recheck_seconds: float = 0.5):
        self._db = open_database(data_dir, STORE, MIGRATIONS)
        self._lock = threading.Lock()
        self._recheck_seconds = recheck_seconds
        self._cache: dict[str, TokenInfo] = {}
        self._data_version = None
        self._checked_at = float("-inf")

    def close(self) -> None:
        self._db.close()

    def issue(
        self,
        name: str,
        role: Role | str,
        jurisdiction: Iterable[str] = (),
        *,
        worker_id: str | None = None,
        secret: str | None = None,
        replacing: bool = False,
    ) -> tuple[str, TokenInfo]:
        """A new token for principal ``name``: returns ``(secret, info)``. The secret is shown only here.

        ``jurisdiction`` empty means everywhere. ``secret`` adopts a given secret (the first admin token
        from a config file); otherwise a fresh random one is made. ``replacing`` revokes the
        principal's live tokens of the same role in the same transaction (``serve --demo`` issues
        its admin token so: only the latest one works).
        """
        name = (name or "").strip()
        if not name:
            raise InvalidInput("a token needs a principal name (the person or system it belongs to)")
        role = Role.parse(role) if isinstance(role, str) else role
        scope = tuple(sorted({code.strip() for code in jurisdiction if code.strip()})) or (EVERYWHERE,)
        if EVERYWHERE in scope:
            scope = (EVERYWHERE,)
        if secret is not None and len(secret) < 20:
            raise InvalidInput("a configured token must be at least 20 characters; make one with "
                               "python -c 'import secrets; print(secrets.token_urlsafe())'")
        secret = secret or SECRET_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        digest = hash_token(secret)
        token_id = "tok_" + digest[:12]
        created = datetime.now(timezone.utc)
        with self._lock, transaction(self._db):
            if self._db.execute("SELECT 1 FROM tokens WHERE token_hash = ?", (digest,)).fetchone():
                raise InvalidInput("that token is already issued; use another secret")
            if replacing:
                self._db.execute(
                    "UPDATE tokens SET revoked_at = ? WHERE principal = ? AND role = ? AND revoked_at IS NULL",
                    (created.isoformat(), name, role.value),
                )
                self._cache.clear()
            self._db.execute(
                "INSERT INTO tokens (token_hash, token_id, principal, role, jurisdiction, worker_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (digest, token_id, name, role.value, json.dumps(scope, ensure_ascii=False), worker_id,
                 created.isoformat()),
            )
        return secret, TokenInfo(token_id, Principal(name, role, scope, worker_id), created)

    def ensure(self, secret: str, name: str, role: Role | str, jurisdiction: Iterable[str] = ()) -> TokenInfo:
        """Make sure ``secret`` is a live token (issue it when unknown); for the config's first admin token."""
        with self._lock:
            row = self._db.execute(_SELECT + " WHERE token_hash = ?", (hash_token(secret),)).fetchone()
        info = self._row(row)
        if info is None:
            return self.issue(name, role, jurisdiction, secret=secret)[1]
        if info.revoked_at is not None:
            raise Unauthorized(f"the configured token {info.token_id} was revoked; configure a new one")
        return info

    def authenticate(self, secret: str) -> Principal:
        """The principal of a live token; :class:`Unauthorized` for a missing, unknown or revoked one."""
        return self.lookup(secret).principal

    def lookup(self, secret: str) -> TokenInfo:
        """The :class:`TokenInfo` of a live token (what ``WhoAmI`` answers); raises like :meth:`authenticate`."""
        if not secret:
            raise Unauthorized("no token: send the header 'authorization: Bearer <token>'")
        digest = hash_token(secret)
        with self._lock:
            now = time.monotonic()
            if now - self._checked_at > self._recheck_seconds:
                self._checked_at = now
                version = self._db.execute("PRAGMA data_version").fetchone()[0]
                if version != self._data_version:
                    self._data_version = version
                    self._cache.clear()
            info = self._cache.get(digest)
            if info is None:
                info = self._row(self._db.execute(_SELECT + " WHERE token_hash = ?", (digest,)).fetchone())
                if info is not None and info.revoked_at is None:
                    self._cache[digest] = info
        if info is None:
            raise Unauthorized("unknown token; check it or ask an admin for one")
        if info.revoked_at is not None:
            raise Unauthorized("the token is revoked; ask an admin for a new one")
        return info

    def cached(self, secret: str) -> TokenInfo | None:
        """The live token of ``secret`` when :meth:`lookup` would answer from memory alone (looked up
        before, not revoked since, the check for other processes' changes not due); ``None`` when it
        would read the database: call :meth:`lookup`. Takes no lock and never waits, for a caller that
        must not (an event loop); a revocation clears the memory before it returns."""
        if time.monotonic() - self._checked_at > self._recheck_seconds:
            return None
        return self._cache.get(hash_token(secret))

    def revoke(self, token_id: str) -> TokenInfo:
        """Revoke a token by its public id (revoking twice keeps the first time)."""
        now = datetime.now(timezone.utc).isoformat()
        with self._lock, transaction(self._db):
            self._db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL", (now, token_id)
            )
            self._cache.clear()
            row = self._db.execute(_SELECT + " WHERE token_id = ?", (token_id,)).fetchone()
        info = self._row(row)
        if info is None:
            raise NotFound(f"no token with id {token_id!r}; list them to see the ids")
        return info

    def get(self, token_id: str) -> TokenInfo:
        """A token by its public id (revoked or not); :class:`NotFound` for an unknown id."""
        with self._lock:
            info = self._row(self._db.execute(_SELECT + " WHERE token_id = ?", (token_id,)).fetchone())
        if info is None:
            raise NotFound(f"no token with id {token_id!r}; list them to see the ids")
        return info

    def list(self, *, include_revoked: bool = False) -> list[TokenInfo]:
        """Every token, oldest first."""
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        with self._lock:
            rows = self._db.execute(_SELECT + where + " ORDER BY created_at, token_id").fetchall()
        return [self._row(r) for r in rows]

    @staticmethod
    def _row(row) -> TokenInfo | None:
        if row is None:
            return None
        token_id, name, role, scope, worker_id, created, revoked = row
        principal = Principal(name, Role(role), tuple(json.loads(scope)), worker_id)
        return TokenInfo(
            token_id,
            principal,
            datetime.fromisoformat(created),
            datetime.fromisoformat(revoked) if revoked else None,
        )


_SELECT = "SELECT token_id, principal, role, jurisdiction, worker_id, created_at, revoked_at FROM tokens"


class TokenAuthority:
    """What a caller may do with tokens (``TokenService``), each power bounded by the caller's role
    and jurisdiction:

    - issue: only the roles :data:`~citygrid.engine.access.principals.GRANTS` lets the caller's role issue
      (admins, any role up to admin: never a higher role than its own); a jurisdiction naming areas of
      the active layer version (:class:`InvalidInput` otherwise) that lies inside the caller's own; a
      token bound to a worker only for a worker of a grid inside it;
    - list and revoke: only tokens whose jurisdiction lies inside the caller's (a district-wide token
      lies only inside a district-wide one).

    ``active_layer()`` is the active layer version (whose areas jurisdiction codes must name);
    ``worker_chain(worker_id)`` the parent chain of a worker's grid (:class:`NotFound` for an
    unknown worker).
    """

    def __init__(self, store: TokenStore, active_layer: Callable[[], GridLayer],
                 worker_chain: Callable[[str], Sequence[str | None]]):
        self.store = store
        self._active_layer = active_layer
        self._worker_chain = worker_chain
        self._areas: Areas | None = None
        self._lock = threading.Lock()

    def areas(self) -> Areas:
        """The areas of the active layer version (built once per version)."""
        layer = self._active_layer()
        with self._lock:
            areas = self._areas
            if areas is None or areas.version_id != layer.version_id:
                areas = self._areas = Areas.of_layer(layer)
        return areas

    def issue(self, issuer: Principal, name: str, role: Role | str, jurisdiction: Iterable[str] = (), *,
              worker_id: str | None = None) -> tuple[str, TokenInfo]:
        """A new token issued by ``issuer`` (see the class docstring); returns ``(secret, info)``."""
        issuer.require_role(Role.ADMIN, action="issue tokens")
        role = Role.parse(role) if isinstance(role, str) else role
        issuer.require_grants(role)
        codes = [code for code in jurisdiction if code.strip()]
        everywhere = not codes or any(code.strip() == EVERYWHERE for code in codes)
        scope = (EVERYWHERE,) if everywhere else self.areas().check(codes)
        if not issuer.everywhere:
            if scope == (EVERYWHERE,):
                raise Forbidden(f"{issuer.name} ({', '.join(issuer.jurisdiction)}) may not issue a district-wide "
                                "token; name the areas of its jurisdiction")
            if not self.areas().inside(issuer, scope):
                raise Forbidden(f"the jurisdiction {', '.join(scope)} lies outside that of {issuer.name} "
                                f"({', '.join(issuer.jurisdiction)})")
            if worker_id:
                issuer.require_covers(self._worker_chain(worker_id), what=f"worker {worker_id}")
        return self.store.issue(name, role, scope, worker_id=worker_id)

    def revoke(self, issuer: Principal, token_id: str) -> TokenInfo:
        """Revoke a token inside ``issuer``'s jurisdiction (:class:`Forbidden` outside it)."""
        issuer.require_role(Role.ADMIN, action="revoke tokens")
        info = self.store.get(token_id)
        if not self._holds(issuer, info):
            raise Forbidden(f"token {token_id} ({', '.join(info.principal.jurisdiction)}) lies outside the "
                            f"jurisdiction of {issuer.name} ({', '.join(issuer.jurisdiction)})")
        return self.store.revoke(token_id)

    def list(self, issuer: Principal, *, include_revoked: bool = False) -> list[TokenInfo]:
        """The tokens inside ``issuer``'s jurisdiction, oldest first."""
        issuer.require_role(Role.ADMIN, action="list tokens")
        return [info for info in self.store.list(include_revoked=include_revoked) if self._holds(issuer, info)]

    def _holds(self, issuer: Principal, info: TokenInfo) -> bool:
        return issuer.everywhere or self.areas().inside(issuer, info.principal.jurisdiction)
