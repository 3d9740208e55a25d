"""Bearer tokens: who may call what; health needs no token; tokens are stored only as hashes."""

from __future__ import annotations

import sqlite3

import grpc
import pytest
from grpc_env import ADMIN_TOKEN, LAT0, LNG0
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from citygrid.engine.database import database_path


def test_health_needs_no_token(env):
    with env.client(None) as client:
        assert client.health() == "SERVING"
        assert client.health("citygrid.v1.GridService") == "SERVING"
    with grpc.insecure_channel(env.target) as channel:
        with pytest.raises(grpc.RpcError) as info:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="no.Such"))
        assert info.value.code() is grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_services_to_a_caller_with_a_token(env):
    with grpc.insecure_channel(env.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        answers = stub.ServerReflectionInfo(iter([request]), metadata=(("authorization", f"Bearer {ADMIN_TOKEN}"),))
        names = {s.name for a in answers for s in a.list_services_response.service}
        assert {"citygrid.v1.GridService", "citygrid.v1.LayerService", "citygrid.v1.TokenService",
                "grpc.health.v1.Health"} <= names
        with pytest.raises(grpc.RpcError) as info:
            list(stub.ServerReflectionInfo(iter([request])))
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_issue_use_and_revoke(env, admin):
    issued = admin.issue_token("市民热线", "intake", ["C00"])
    assert issued.info.role == "intake" and list(issued.info.jurisdiction) == ["C00"]
    with env.client(issued.token) as intake:
        assert intake.whoami().principal == "市民热线"
        assert intake.assign_point(LNG0 + 0.001, LAT0 + 0.001).grid.code
        with pytest.raises(grpc.RpcError) as info:
            intake.issue_token("x", "admin")
        assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert admin.revoke_token(issued.info.token_id).HasField("revoked_at")
        with pytest.raises(grpc.RpcError) as info:
            intake.assign_point(LNG0 + 0.001, LAT0 + 0.001)
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in info.value.details()
    listed = {t.token_id for t in admin.list_tokens().tokens}
    assert issued.info.token_id not in listed
    assert issued.info.token_id in {t.token_id for t in admin.list_tokens(include_revoked=True).tokens}


def test_a_malformed_authorization_header_is_unauthenticated(env):
    with grpc.insecure_channel(env.target) as channel:
        call = channel.unary_unary("/citygrid.v1.TokenService/WhoAmI")
        with pytest.raises(grpc.RpcError) as info:
            call(b"", metadata=(("authorization", f"Basic {ADMIN_TOKEN}"),))
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED and "Bearer" in info.value.details()


def test_an_unknown_role_is_invalid_argument(admin):
    with pytest.raises(grpc.RpcError) as info:
        admin.issue_token("x", "mayor")
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown role 'mayor'; roles are admin, intake" in info.value.details()


def test_secrets_are_stored_only_as_hashes(env, admin):
    secret = admin.issue_token("video analytics", "intake").token
    with sqlite3.connect(database_path(env.data_dir)) as db:
        dump = "\n".join(db.iterdump())
    assert secret not in dump and ADMIN_TOKEN not in dump
