"""A scriptable HTTP server replaying the recorded API fixtures.

Real HTTP over loopback (no mocking of ``requests``/urllib3): each test gets a
fresh ``ThreadingHTTPServer`` on 127.0.0.1:0 whose routes serve the files from
the shared fixtures directory, and can be re-scripted to return errors, sleep
past the client timeout, send malformed JSON or drop the connection.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


def shared_fixtures_dir() -> Path:
    """``$RS_SHARED_DIR[/fixtures]`` or ``<repo>/../shared/fixtures``."""
    override = os.environ.get("RS_SHARED_DIR")
    if override:
        base = Path(override)
        return base / "fixtures" if (base / "fixtures").is_dir() else base
    return Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | Any = b""
    content_type: str = "application/json"
    delay: float = 0.0  # seconds to sleep before answering
    close: bool = False  # drop the connection without answering

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Route:
    replies: list[Reply] = field(default_factory=list)

    def next(self) -> Reply:
        # Scripted replies are consumed in order; the last one repeats forever.
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


class FixtureServer:
    def __init__(self, fixtures_dir: Path | None = None) -> None:
        self.fixtures_dir = fixtures_dir or shared_fixtures_dir()
        self.routes: dict[tuple[str, str], _Route] = {}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FixtureServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- scripting --------------------------------------------------------------

    def load(self, relative: str) -> Any:
        return json.loads((self.fixtures_dir / relative).read_text())

    def route(self, method: str, path: str, *replies: Reply) -> None:
        """Replace the script for ``method path`` (query string ignored)."""
        with self._lock:
            self.routes[(method.upper(), path)] = _Route(list(replies) or [Reply(404)])

    def fixture(self, method: str, path: str, relative: str, status: int = 200) -> None:
        self.route(method, path, Reply(status, (self.fixtures_dir / relative).read_bytes()))

    def hits(self, path: str | None = None, method: str | None = None) -> int:
        return len(self.matching(path, method))

    def matching(self, path: str | None = None, method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests
                    if (path is None or r.path == path) and (method is None or r.method == method)]

    # -- HTTP handler -----------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like real backends

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server._lock:
                    server.requests.append(Recorded(
                        self.command, parts.path, parse_qs(parts.query),
                        {k.lower(): v for k, v in self.headers.items()}, body,
                    ))
                    route = server.routes.get((self.command, parts.path))
                    reply = route.next() if route else Reply(404, "404 page not found\n", "text/plain")
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.close:
                    self.close_connection = True
                    return
                payload = reply.payload()
                try:
                    self.send_response(reply.status)
                    if reply.status != 204:
                        self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(payload) if reply.status != 204 else 0))
                    self.end_headers()
                    if reply.status != 204:
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (timeout test)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        return Handler


def install_default_routes(server: FixtureServer) -> None:
    """Serve every recorded fixture at its real API path."""
    f = server.fixture
    # Prometheus (queries are POSTed form-encoded, GET also answered)
    for method in ("GET", "POST"):
        f(method, "/api/v1/query", "telemetry-api/prometheus-query-vector.json")
        f(method, "/api/v1/query_range", "telemetry-api/prometheus-query-range-matrix.json")
    # Loki
    f("GET", "/loki/api/v1/query_range", "telemetry-api/loki-query-range-streams.json")
    f("GET", "/loki/api/v1/labels", "telemetry-api/loki-labels.json")
    server.route("GET", "/loki/api/v1/label/job/values",
                 Reply(body={"status": "success", "data": ["varlogs", "checkout"]}))
    server.route("POST", "/loki/api/v1/push", Reply(204))
    # Tempo
    trace_id = "e8b6dff9f8d44b28f1b22bc3bd2f6768"
    f("GET", "/api/search", "telemetry-api/tempo-search-traceql.json")
    f("GET", f"/api/v2/traces/{trace_id}", "telemetry-api/tempo-trace-by-id-v2.json")
    f("GET", f"/api/traces/{trace_id}", "telemetry-api/tempo-trace-by-id-v1.json")
    # Grafana
    server.route("GET", "/api/health",
                 Reply(body={"commit": "abc123", "database": "ok", "version": "11.2.0"}))
    f("POST", "/api/annotations", "grafana/annotations-create-response.json")
    f("GET", "/api/annotations", "grafana/annotations-find-response.json")
    server.route("PATCH", "/api/annotations/1", Reply(body={"message": "Annotation patched"}))
    # Kubernetes (list endpoints wrap the single-object fixtures)
    pod = server.load("kubernetes/pod-crashloopbackoff-oomkilled.json")
    deployment = server.load("kubernetes/deployment.json")
    server.route("GET", "/api/v1/namespaces/shop/pods",
                 Reply(body={"kind": "PodList", "apiVersion": "v1", "items": [pod]}))
    server.route("GET", f"/api/v1/namespaces/shop/pods/{pod['metadata']['name']}", Reply(body=pod))
    f("GET", "/api/v1/namespaces/shop/events", "kubernetes/events-crashloop.json")
    server.route("GET", "/apis/apps/v1/namespaces/shop/deployments",
                 Reply(body={"kind": "DeploymentList", "apiVersion": "apps/v1", "items": [deployment]}))
    f("GET", "/apis/apps/v1/namespaces/shop/deployments/checkout", "kubernetes/deployment.json")
    f("GET", "/apis/apps/v1/namespaces/shop/replicasets", "kubernetes/replicasets.json")
