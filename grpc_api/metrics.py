"""Request metrics per gRPC method, exported in Prometheus text format on a side port.

For each method: calls by status code (``citygrid_grpc_requests_total``), failed calls by code
(``citygrid_grpc_errors_total``), a latency histogram (``citygrid_grpc_request_duration_seconds``) and
the calls in flight (``citygrid_grpc_in_flight``). The exporter is a plain ``http.server`` thread that
answers ``GET /metrics``.

>>> m = Metrics()
>>> m.started("/citygrid.v1.GridService/AssignPoint")
>>> m.finished("/citygrid.v1.GridService/AssignPoint", "OK", 0.0004)
>>> print([l for l in m.render().splitlines() if l.startswith("citygrid_grpc_requests_total")][0])
citygrid_grpc_requests_total{method="/citygrid.v1.GridService/AssignPoint",code="OK"} 1
"""

from __future__ import annotations

import bisect
import socket
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: Upper bounds of the latency buckets, in seconds.
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Method:
    __slots__ = ("codes", "buckets", "total_seconds", "count", "in_flight")

    def __init__(self):
        self.codes: dict[str, int] = defaultdict(int)
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.total_seconds = 0.0
        self.count = 0
        self.in_flight = 0


class Metrics:
    """Thread-safe counters; one instance per server."""

    def __init__(self):
        self._lock = threading.Lock()
        self._methods: dict[str, _Method] = defaultdict(_Method)

    def started(self, method: str) -> None:
        with self._lock:
            self._methods[method].in_flight += 1

    def finished(self, method: str, code: str, seconds: float) -> None:
        slot = bisect.bisect_left(BUCKETS, seconds)
        with self._lock:
            m = self._methods[method]
            m.in_flight -= 1
            m.codes[code] += 1
            m.buckets[slot] += 1
            m.total_seconds += seconds
            m.count += 1

    def in_flight(self, method: str) -> int:
        with self._lock:
            return self._methods[method].in_flight if method in self._methods else 0

    def count(self, method: str, code: str | None = None) -> int:
        """Calls of ``method`` finished (with status ``code``, e.g. ``"OK"``, when given)."""
        with self._lock:
            m = self._methods.get(method)
            if m is None:
                return 0
            return m.count if code is None else m.codes.get(code, 0)

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        with self._lock:
            methods = {
                name: (dict(m.codes), list(m.buckets), m.total_seconds, m.count, m.in_flight)
                for name, m in sorted(self._methods.items())
            }
        out = [
            "# HELP citygrid_grpc_requests_total gRPC calls finished, by method and status code.",
            "# TYPE citygrid_grpc_requests_total counter",
        ]
        for name, (codes, *_rest) in methods.items():
            out += [f'citygrid_grpc_requests_total{{method="{name}",code="{c}"}} {n}' for c, n in sorted(codes.items())]
        out += [
            "# HELP citygrid_grpc_errors_total gRPC calls that ended with a status other than OK.",
            "# TYPE citygrid_grpc_errors_total counter",
        ]
        for name, (codes, *_rest) in methods.items():
            out += [
                f'citygrid_grpc_errors_total{{method="{name}",code="{c}"}} {n}'
                for c, n in sorted(codes.items())
                if c != "OK"
            ]
        out += [
            "# HELP citygrid_grpc_request_duration_seconds Time from a call's start to its end.",
            "# TYPE citygrid_grpc_request_duration_seconds histogram",
        ]
        for name, (_codes, buckets, total, count, _) in methods.items():
            running = 0
            for bound, n in zip((*BUCKETS, float("inf")), buckets):
                running += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(f'citygrid_grpc_request_duration_seconds_bucket{{method="{name}",le="{le}"}} {running}')
            out.append(f'citygrid_grpc_request_duration_seconds_sum{{method="{name}"}} {total!r}')
            out.append(f'citygrid_grpc_request_duration_seconds_count{{method="{name}"}} {count}')
        out += [
            "# HELP citygrid_grpc_in_flight gRPC calls running now.",
            "# TYPE citygrid_grpc_in_flight gauge",
        ]
        out += [f'citygrid_grpc_in_flight{{method="{name}"}} {v[4]}' for name, v in methods.items()]
        return "\n".join(out) + "\n"


class _ThreadingHTTPServerV6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class MetricsExporter:
    """Serve ``metrics.render()`` at ``http://host:port/metrics`` from a daemon thread."""

    def __init__(self, metrics: Metrics, host: str, port: int):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is here")
                    return
                body = metrics.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):  # scrapes are not worth a log line each
                return

        bind = host.strip("[]")  # gRPC writes IPv6 hosts in brackets
        server_class = _ThreadingHTTPServerV6 if ":" in bind else ThreadingHTTPServer
        self._httpd = server_class((bind, port), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="citygrid-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

