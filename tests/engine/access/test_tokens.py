"""Tokens: random secrets, kept as SHA-256 hashes, resolving to principals until revoked."""

from __future__ import annotations

import argparse
import sqlite3

import pytest

from citygrid.engine.database import database_path
from citygrid.engine.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from citygrid.engine.access.principals import Role
from citygrid.engine.access import tokens
from citygrid.engine.access.tokens import TokenStore, hash_token


@pytest.fixture
def store(tmp_path):
    s = TokenStore(tmp_path)
    yield s
    s.close()


def test_an_issued_secret_is_a_command_line_value(store, monkeypatch):
    """token_urlsafe starts with '-' one time in 64; `citygrid ... --token SECRET` must still parse
    (a CI run failed on such a secret)."""
    monkeypatch.setattr(tokens.secrets, "token_urlsafe", lambda n: "-" + "x" * 42)
    secret, _ = store.issue("街道大屏", Role.DASHBOARD)
    parser = argparse.ArgumentParser()
    parser.add_argument("--token")
    assert parser.parse_args(["--token", secret]).token == secret
    assert store.authenticate(secret).role is Role.DASHBOARD


def test_issue_authenticate_revoke(store, tmp_path):
    secret, info = store.issue("龙城街道 dispatcher", "dispatcher", ["440307001", "440307002"], worker_id=None)
    other, _ = store.issue("another", Role.WORKER, worker_id="w-17")
    assert secret != other and len(secret) >= 40
    principal = store.authenticate(secret)
    assert principal.role is Role.DISPATCHER and principal.jurisdiction == ("440307001", "440307002")
    assert store.authenticate(other).worker_id == "w-17" and store.authenticate(other).everywhere
    with sqlite3.connect(database_path(tmp_path)) as db:
        stored = [row[0] for row in db.execute("SELECT token_hash FROM tokens")]
    assert hash_token(secret) in stored and secret not in stored
    assert store.revoke(info.token_id).revoked_at is not None
    with pytest.raises(Unauthorized, match="revoked"):
        store.authenticate(secret)
    assert [i.token_id for i in store.list()] != [] and info.token_id not in [i.token_id for i in store.list()]
    with pytest.raises(NotFound):
        store.revoke("tok_nope")


def test_bad_tokens_and_requests(store):
    for secret in ("", "not-a-token"):
        with pytest.raises(Unauthorized):
            store.authenticate(secret)
    with pytest.raises(InvalidInput, match="unknown role 'mayor'; roles are"):
        store.issue("x", "mayor")
    with pytest.raises(InvalidInput, match="principal name"):
        store.issue("  ", "admin")
    with pytest.raises(InvalidInput, match="20 characters"):
        store.issue("x", "admin", secret="short")


def test_the_configured_admin_token(store):
    secret = "configured-admin-token-0123456789"
    first = store.ensure(secret, "admin (config)", "admin")
    assert store.ensure(secret, "admin (config)", "admin").token_id == first.token_id
    assert store.authenticate(secret).role is Role.ADMIN
    store.revoke(first.token_id)
    with pytest.raises(Unauthorized, match="configure a new one"):
        store.ensure(secret, "admin (config)", "admin")


def test_a_revocation_through_another_process_holds_after_the_recheck(tmp_path):
    server, admin = TokenStore(tmp_path, recheck_seconds=0.0), TokenStore(tmp_path)
    try:
        secret, info = admin.issue("hotline", "intake")
        assert server.authenticate(secret).name == "hotline"  # now cached
        admin.revoke(info.token_id)
        with pytest.raises(Unauthorized, match="revoked"):
            server.authenticate(secret)
    finally:
        server.close()
        admin.close()


def test_cached_answers_from_memory_only_what_lookup_would(tmp_path):
    """``cached`` (the event loop's look-up, which never waits) answers a token looked up before and
    not revoked since; a token never looked up, a revoked one, or one due for the check for other
    processes' changes is ``None``: the caller looks it up in a thread."""
    store, other = TokenStore(tmp_path, recheck_seconds=3600), TokenStore(tmp_path)
    due = TokenStore(tmp_path, recheck_seconds=0.0)
    try:
        secret, info = other.issue("terminal", "worker", worker_id="W1")
        assert store.cached(secret) is None  # never looked up here
        assert store.lookup(secret) == info and store.cached(secret) == info
        assert store.cached("not-a-token") is None
        store.revoke(info.token_id)
        assert store.cached(secret) is None
        fresh, _ = other.issue("dashboard", "dashboard")
        due.lookup(fresh)
        assert due.cached(fresh) is None
    finally:
        for s in (store, other, due):
            s.close()
