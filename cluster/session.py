"""Connecting to Ray: a cluster by address, or a local one started here (the embedded default).

    with RaySession.open(num_cpus=2) as session:      # a local Ray of 2 CPUs, shut down on exit
        ...
    with RaySession.open("ray://head:10001"):         # a running cluster, left running on exit
        ...

A session shuts down only what it started: closing a session that joined a running cluster, or that
found Ray already initialised in this process (a test fixture, a server that set it up), leaves it as it
was.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import ray

from citygrid.engine.errors import InvalidInput, PreconditionFailed

log = logging.getLogger(__name__)

#: Ray namespace of CityGrid's named actors and jobs.
NAMESPACE = "citygrid"
#: Level of Ray's own driver-side log. Ray's INFO and WARNING lines ("Started a local Ray instance",
#: token authentication is enabled, no SIGTERM handler off the main thread) are its business, not the
#: user's, and they broke the command's output; its errors still show, and a failed task or start
#: still reaches the job record and the command as an error.
RAY_LOG_LEVEL = logging.ERROR


@dataclass
class RaySession:
    """A connection to Ray that knows whether it started the cluster it talks to."""

    address: str | None
    started: bool
    _closed: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(
        cls,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        object_store_memory: int | None = None,
    ) -> "RaySession":
        """Join the cluster at ``address`` (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``), or start
        a local Ray with ``num_cpus`` CPUs (default: all) when there is no address.

        If Ray is already initialised in this process it is used as it is (``num_cpus`` then must not
        ask for something else).
        """
        if num_cpus is not None and num_cpus < 1:
            raise InvalidInput(f"num_cpus must be at least 1, got {num_cpus}")
        if ray.is_initialized():
            return cls(address=address, started=False)
        if address:
            if num_cpus is not None or object_store_memory is not None:
                raise InvalidInput(
                    "num_cpus and object_store_memory size a local Ray; a cluster at an address has its own"
                )
            try:
                ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level=RAY_LOG_LEVEL)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise PreconditionFailed(f"cannot connect to the Ray cluster at {address}: {exc}") from None
            log.info("joined the Ray cluster at %s", address)
            return cls(address=address, started=False)
        ray.init(
            num_cpus=num_cpus,
            object_store_memory=object_store_memory,
            include_dashboard=False,
            namespace=NAMESPACE,
            log_to_driver=False,
            logging_level=RAY_LOG_LEVEL,
        )
        log.info("started a local Ray with %s CPUs", num_cpus or "all")
        return cls(address=None, started=True)

    @property
    def num_cpus(self) -> float:
        """CPUs of the whole cluster (every node)."""
        return float(ray.cluster_resources().get("CPU", 0.0))

    @property
    def num_nodes(self) -> int:
        return sum(1 for node in ray.nodes() if node.get("Alive"))

    def close(self) -> None:
        """Shut Ray down if this session started it; otherwise leave it running."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.started and ray.is_initialized():
                ray.shutdown()

    def __enter__(self) -> "RaySession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
