"""Server configuration: a TOML file's ``[server]`` table, overridable from the command line.

Example ``citygrid.toml`` (every key optional; these are the defaults but for the paths and token)::

    [server]
    data_dir = "/var/lib/citygrid"
    host = "[::]"
    port = 50051                      # 0: any free port (logged at start-up)
    metrics_port = 9464               # Prometheus text at http://host:9464/metrics; -1: off
    max_workers = 32                  # gRPC handler threads
    max_concurrent_rpcs = 256         # beyond this, calls get RESOURCE_EXHAUSTED at once
    max_points_per_request = 2000000  # AssignPoints limit; sets the message size limits too
    max_upload_bytes = 536870912      # UploadLayer limit (512 MiB)
    chunk_size = 262144               # points per kernel chunk: deadlines are checked between chunks
    grace_seconds = 10.0              # SIGTERM: calls in flight get this long to finish
    admin_token = "..."               # the first admin token (>= 20 characters; issue more through the API)
    tls_cert = "/etc/citygrid/server.crt"   # TLS when both are set
    tls_key = "/etc/citygrid/server.key"
    replica = false                   # serve GridService read-only, following the writer's activations
    follow_interval = 1.0             # seconds between a replica's checks of the active version
    ray_address = "ray://head:10001"  # the Ray cluster of JobService; unset: a local one started on first use
    ray_num_cpus = 2                  # CPUs of that local Ray (unset: all of them)

>>> config = ServerConfig.from_toml(b'[server]\\nport = 6000\\nmetrics_port = -1')
>>> config.port, config.metrics_port, config.max_receive_message_bytes
(6000, None, 33048576)
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from citygrid.engine.errors import InvalidInput, NotFound

#: Bytes of a message besides the point arrays (headers, other fields), with room to spare.
MESSAGE_OVERHEAD_BYTES = 1 << 20


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path | None = None
    host: str = "[::]"
    port: int = 50051
    metrics_port: int | None = 9464
    max_workers: int = 32
    max_concurrent_rpcs: int = 256
    max_points_per_request: int = 2_000_000
    max_upload_bytes: int = 512 << 20
    chunk_size: int = 1 << 18
    grace_seconds: float = 10.0
    admin_token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    replica: bool = False
    follow_interval: float = 1.0
    ray_address: str | None = None
    ray_num_cpus: int | None = None

    def __post_init__(self):
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidInput("TLS needs both tls_cert and tls_key (or neither)")
        for name in ("max_workers", "max_concurrent_rpcs", "max_points_per_request", "max_upload_bytes", "chunk_size"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.port < 0:
            raise InvalidInput(f"port must be 0 (any free port) or a port number, got {self.port}")

    @property
    def max_receive_message_bytes(self) -> int:
        """Two float64 arrays (lng, lat) at the point limit, plus overhead (32 MiB by default)."""
        return 16 * self.max_points_per_request + MESSAGE_OVERHEAD_BYTES

    @property
    def max_send_message_bytes(self) -> int:
        """int32 rows and one status byte per point at the limit, every grid's record, overhead."""
        return 5 * self.max_points_per_request + 16 * MESSAGE_OVERHEAD_BYTES

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def replace(self, **changes) -> "ServerConfig":
        """A copy with the given fields changed (``None`` values are ignored: "not given")."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_toml(cls, text: bytes | str, *, base: Path | None = None) -> "ServerConfig":
        """Parse the ``[server]`` table; relative paths are taken from ``base`` (the file's folder)."""
        try:
            doc = tomllib.loads(text.decode() if isinstance(text, bytes) else text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"the config is not valid TOML: {exc}") from None
        table = doc.get("server", {})
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise InvalidInput(f"unknown [server] keys {unknown}; known keys are {sorted(known)}")
        values = dict(table)
        for key in ("data_dir", "tls_cert", "tls_key"):
            if key in values:
                path = Path(os.path.expanduser(values[key]))
                values[key] = path if path.is_absolute() or base is None else base / path
        if values.get("metrics_port", 0) is not None and values.get("metrics_port", 0) < 0:
            values["metrics_port"] = None
        return cls(**values)


def load_config(path: str | os.PathLike | None) -> ServerConfig:
    """The configuration in ``path`` (the defaults when ``None``)."""
    if path is None:
        return ServerConfig()
    path = Path(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"no config file {path}") from None
    return ServerConfig.from_toml(text, base=path.parent.resolve())
