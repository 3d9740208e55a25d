"""The gateway's OpenAPI 3.1 document, written from the table of endpoints that routes requests
(:data:`citygrid.grpc_api.web.endpoints.ENDPOINTS`), so it lists exactly what this server serves.

>>> from citygrid.grpc_api.web.endpoints import ENDPOINTS
>>> doc = openapi_document(ENDPOINTS)
>>> doc["openapi"], "/api/v1/grids/{code}" in doc["paths"], "/api/v1/stream" in doc["paths"]
('3.1.0', True, True)
>>> [p["name"] for p in doc["paths"]["/api/v1/grids/at"]["get"]["parameters"]][:2]
['lng', 'lat']
"""

from __future__ import annotations

from citygrid.grpc_api.errors import ERRORS

_PROBLEM = {"$ref": "#/components/schemas/Problem"}


def openapi_document(endpoints) -> dict:
    paths: dict[str, dict] = {}
    statuses = sorted({status for _, status in ERRORS.values()} | {500})
    errors = {str(s): {"description": "a problem (RFC 9457)",
                       "content": {"application/problem+json": {"schema": _PROBLEM}}} for s in statuses}
    for endpoint in endpoints:
        parameters = [{"name": name, "in": where, "required": where == "path", "description": text,
                       "schema": {"type": kind}} for name, where, kind, text in endpoint.params]
        paths[endpoint.path] = {"get": {
            "summary": endpoint.summary, "operationId": endpoint.handler.__name__, "parameters": parameters,
            "security": [{"bearer": []}],
            "responses": {"200": {"description": "OK", "content": {"application/json": {}}}, **errors}}}
    paths["/api/v1/stream"] = {"get": {
        "summary": "Server-Sent Events: 'tallies' (events per grid today and this week, when they change) and "
                   "'alert' (each change to an alert in the caller's jurisdiction)",
        "operationId": "stream", "security": [{"bearer": []}],
        "parameters": [{"name": "interval", "in": "query", "required": False, "schema": {"type": "number"},
                        "description": "seconds between checks (0.5-60, default 2)"},
                       {"name": "filter", "in": "query", "required": False, "schema": {"type": "string"},
                        "description": "dimension:code,...; the tallies' filters"}],
        "responses": {"200": {"description": "the stream", "content": {"text/event-stream": {}}}, **errors}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "CityGrid HTTP/JSON gateway", "version": "1",
                 "description": "Read endpoints over the same engine as the gRPC API (writes stay on gRPC). "
                                "Same bearer tokens, roles and jurisdiction; errors are RFC 9457 problems "
                                "with the HTTP status of the one error table."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": {"type": "object", "properties": {
                "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                "detail": {"type": "string"}, "instance": {"type": "string"}}}},
        },
    }
