"""``citygrid.v1.TokenService``: admins issue, list and revoke tokens inside their jurisdiction
(:class:`~citygrid.engine.access.tokens.TokenAuthority` holds the rules); anyone asks who they are."""

from __future__ import annotations

import logging

import grpc

from citygrid.engine.access.tokens import TokenAuthority
from citygrid.grpc_api._pb import token_pb2, token_pb2_grpc
from citygrid.grpc_api.convert import token_info
from citygrid.grpc_api.interceptors import Authenticator

log = logging.getLogger("citygrid.grpc_api")

SERVICE_NAME = token_pb2.DESCRIPTOR.services_by_name["TokenService"].full_name


class TokenServicer(token_pb2_grpc.TokenServiceServicer):
    def __init__(self, authority: TokenAuthority, auth: Authenticator):
        self._authority = authority
        self._auth = auth

    def IssueToken(self, request, context):
        admin = self._auth.principal()
        secret, info = self._authority.issue(
            admin, request.principal, request.role, request.jurisdiction, worker_id=request.worker_id or None
        )
        log.info("%s issued token %s to %s (%s)", admin.name, info.token_id, info.principal.name,
                 info.principal.role.value)
        return token_pb2.IssueTokenResponse(token=secret, info=token_info(info))

    def RevokeToken(self, request, context):
        admin = self._auth.principal()
        info = self._authority.revoke(admin, request.token_id)
        log.info("%s revoked token %s of %s", admin.name, info.token_id, info.principal.name)
        return token_info(info)

    def ListTokens(self, request, context):
        tokens = self._authority.list(self._auth.principal(), include_revoked=request.include_revoked)
        return token_pb2.ListTokensResponse(tokens=[token_info(i) for i in tokens])

    def WhoAmI(self, request, context):
        return token_info(self._auth.caller())


def add_to_server(server: grpc.Server, servicer: TokenServicer) -> str:
    """Register ``servicer`` on ``server``; return the service's full name."""
    token_pb2_grpc.add_TokenServiceServicer_to_server(servicer, server)
    return SERVICE_NAME
