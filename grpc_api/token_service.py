"""``citygrid.v1.TokenService``: admins issue, list and revoke tokens; anyone asks who they are."""

from __future__ import annotations

import logging

import grpc

from citygrid.engine.principals import Role
from citygrid.engine.tokens import TokenStore
from citygrid.grpc_api._pb import token_pb2, token_pb2_grpc
from citygrid.grpc_api.convert import token_info
from citygrid.grpc_api.interceptors import Authenticator

log = logging.getLogger("citygrid.grpc_api")

SERVICE_NAME = token_pb2.DESCRIPTOR.services_by_name["TokenService"].full_name


class TokenServicer(token_pb2_grpc.TokenServiceServicer):
    def __init__(self, tokens: TokenStore, auth: Authenticator):
        self._tokens = tokens
        self._auth = auth

    def IssueToken(self, request, context):
        admin = self._admin("issue tokens")
        secret, info = self._tokens.issue(
            request.principal, request.role, request.jurisdiction, worker_id=request.worker_id or None
        )
        log.info("%s issued token %s to %s (%s)", admin.name, info.token_id, info.principal.name,
                 info.principal.role.value)
        return token_pb2.IssueTokenResponse(token=secret, info=token_info(info))

    def RevokeToken(self, request, context):
        admin = self._admin("revoke tokens")
        info = self._tokens.revoke(request.token_id)
        log.info("%s revoked token %s of %s", admin.name, info.token_id, info.principal.name)
        return token_info(info)

    def ListTokens(self, request, context):
        self._admin("list tokens")
        return token_pb2.ListTokensResponse(
            tokens=[token_info(i) for i in self._tokens.list(include_revoked=request.include_revoked)]
        )

    def WhoAmI(self, request, context):
        return token_info(self._auth.caller())

    def _admin(self, action: str):
        principal = self._auth.principal()
        principal.require_role(Role.ADMIN, action=action)
        return principal


def add_to_server(server: grpc.Server, resources) -> str:
    token_pb2_grpc.add_TokenServiceServicer_to_server(TokenServicer(resources.tokens, resources.auth), server)
    return SERVICE_NAME
