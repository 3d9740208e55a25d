"""``citygrid.v1.LayerService``: upload, validate, publish and activate layer versions (district-wide
admins only; listing needs any token).

An upload is client-streamed: an ``UploadHeader`` (file name, version id, field names), then the file's
bytes in chunks. The bytes go to a temporary file named like the upload, which the engine's readers
open as they would a local file (a ``.zip`` is read as a zipped Shapefile); the layer is saved as a new,
unpublished version. ``UploadLayer`` is async: it waits for chunks on the event loop and writes,
reads and saves in a handler thread.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Callable

import grpc

from citygrid.engine.layers import sources
from citygrid.engine.errors import InvalidInput, Overloaded
from citygrid.engine.layers.layer import FieldMap
from citygrid.engine.access.principals import Role
from citygrid.engine.houses.records import RegridReport
from citygrid.engine.layers.registry import LayerRegistry
from citygrid.engine.layers.validation import validate_layer
from citygrid.grpc_api._pb import layer_pb2, layer_pb2_grpc
from citygrid.grpc_api.config import ServerConfig
from citygrid.grpc_api.convert import from_timestamp, layer_version
from citygrid.grpc_api.interceptors import Authenticator
from citygrid.grpc_api.threads import Blocking

log = logging.getLogger("citygrid.grpc_api")

SERVICE_NAME = layer_pb2.DESCRIPTOR.services_by_name["LayerService"].full_name


class LayerServicer(layer_pb2_grpc.LayerServiceServicer):
    def __init__(self, registry: LayerRegistry, auth: Authenticator, config: ServerConfig, blocking: Blocking,
                 *, on_activate: Callable[[], RegridReport | None] | None = None):
        self._registry = registry
        #: Called after each activation: the house registry follows the new version (its re-grid report).
        self._on_activate = on_activate
        self._auth = auth
        self._max_upload_bytes = config.max_upload_bytes
        self._blocking = blocking

    async def UploadLayer(self, request_iterator, context):
        principal = self._admin("upload a layer")
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None or first.WhichOneof("part") != "header":
            raise InvalidInput("an upload starts with an UploadHeader message (file name, version id), then chunks")
        header = first.header
        name = sources.upload_name(header.filename)
        with tempfile.TemporaryDirectory(prefix="citygrid-upload-") as tmp:
            path = Path(tmp) / name
            size = 0
            with open(path, "wb") as fh:
                async for message in requests:
                    if message.WhichOneof("part") != "chunk":
                        raise InvalidInput("only chunk messages may follow the UploadHeader")
                    size += len(message.chunk)
                    if size > self._max_upload_bytes:
                        raise Overloaded(
                            f"the upload exceeds the limit of {self._max_upload_bytes:,} bytes; simplify the "
                            "layer or ask the operator to raise max_upload_bytes"
                        )
                    await self._blocking(fh.write, message.chunk)
            if size == 0:
                raise InvalidInput(f"the upload of {name} has no bytes")
            layer = await self._blocking(sources.read_layer, path, _field_map(header.fields),
                                         version_id=header.version_id or None, shown_as=name)
        layer = dataclasses.replace(layer, source=f"upload:{name}")
        record = await self._blocking(self._registry.register, layer)
        log.info("%s uploaded layer version %s (%d grids) from %s", principal.name, record.version_id,
                 record.n_grids, name)
        return layer_version(record)

    def ValidateLayer(self, request, context):
        self._admin("validate a layer")
        layer = self._registry.get_layer(request.version_id)
        boundary = None
        if request.boundary:
            name = sources.upload_name(request.boundary_filename)
            with tempfile.TemporaryDirectory(prefix="citygrid-boundary-") as tmp:
                path = Path(tmp) / name
                path.write_bytes(request.boundary)
                boundary = sources.read_boundary(path, shown_as=name)
        report = validate_layer(layer, boundary=boundary)
        return layer_pb2.ValidateLayerResponse(
            version_id=request.version_id, valid=report.valid, report_json=report.to_json()
        )

    def PublishLayer(self, request, context):
        principal = self._admin("publish a layer")
        record = self._registry.publish(request.version_id, from_timestamp(request, "valid_from"))
        log.info("%s published layer version %s valid from %s", principal.name, record.version_id,
                 record.valid_from.isoformat())
        return layer_version(record)

    def ActivateVersion(self, request, context):
        principal = self._admin("activate a layer version")
        record, previous = self._registry.activate(request.version_id)
        log.info("%s activated layer version %s (was %s)", principal.name, record.version_id, previous)
        response = layer_pb2.ActivateVersionResponse(active=layer_version(record), previous_version_id=previous or "")
        report = self._on_activate() if self._on_activate is not None else None
        if report is not None:
            response.buildings_regridded = report.n_buildings
            response.moved_buildings.extend(
                layer_pb2.MovedBuilding(building_code=m.building_code, previous_grid=m.previous_grid or "",
                                        grid_code=m.grid_code or "") for m in report.moved)
        return response

    def ListVersions(self, request, context):
        self._auth.principal()
        return layer_pb2.ListVersionsResponse(
            versions=[layer_version(r) for r in self._registry.versions()],
            active_version_id=self._registry.active_version_id or "",
        )

    def _admin(self, action: str):
        principal = self._auth.principal()
        principal.require_role(Role.ADMIN, action=action)
        principal.require_everywhere(action=action)  # a layer version is the whole district's
        return principal


def _field_map(fields: layer_pb2.FieldMap) -> FieldMap:
    given = {f.name: value for f, value in fields.ListFields() if value}
    return FieldMap(**given)


def add_to_server(server: grpc.Server, servicer: LayerServicer) -> str:
    """Register ``servicer`` on ``server``; return the service's full name."""
    layer_pb2_grpc.add_LayerServiceServicer_to_server(servicer, server)
    return SERVICE_NAME
