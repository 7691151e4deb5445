"""A scriptable HTTP server replaying the recorded API fixtures.

Real HTTP over loopback (no mocking of ``requests``/urllib3): each test gets a
fresh ``ThreadingHTTPServer`` on 127.0.0.1:0 whose routes serve the files from
``tests/fixtures`` (see its README), and can be re-scripted to return errors,
sleep past the client timeout, send malformed JSON or drop the connection.

By default Loki and Tempo answer the way the live Loki 3.8 / Tempo 3.1 captures
in ``tests/fixtures/telemetry-api/live-loki-3.8-tempo-3.1/`` show: structured
metadata is categorized only when the request sends
``X-Loki-Response-Encoding-Flags: categorize-labels``, an instant log query is a
400, ``/api/v2/traces/<unknown id>`` is 200 with an empty trace, and search
trace ids lack their leading zeros.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

FIXTURES_DIR = Path(__file__).resolve().parents[1] / "fixtures"
LIVE = "telemetry-api/live-loki-3.8-tempo-3.1"


def fixtures_root() -> Path:
    """``tests/fixtures`` inside the repository (recorded API shapes, see its README)."""
    return FIXTURES_DIR


shared_fixtures_dir = fixtures_root  # the old name, kept for importers


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | Any = b""
    content_type: str | None = "application/json"  # None: no Content-Type header at all
    delay: float = 0.0  # seconds to sleep before answering
    close: bool = False  # drop the connection without answering

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


def recorded_reply(path: Path) -> Reply:
    """A live capture as a Reply: status, content type and body as the server sent them.

    Handles the three capture formats of the live folder: a JSON wrapper
    ``{"_status", "_content_type", "body" | "body_text"}``, a text file
    ``status=<n>\ncontent-type=<t|None>\n<body>``, or a bare JSON body (200).
    """
    text = path.read_text()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and "_status" in doc:
        body = doc["body_text"] if "body_text" in doc else json.dumps(doc.get("body"))
        return Reply(doc["_status"], body, doc.get("_content_type"))
    if doc is not None:
        return Reply(200, text)
    match = re.match(r"status=(\d+)\ncontent-type=([^\n]*)\n?(.*)", text, re.S)
    if not match:
        raise ValueError(f"{path}: not a recorded response")
    content_type = None if match.group(2) == "None" else match.group(2)
    return Reply(int(match.group(1)), match.group(3), content_type)


Handler = Callable[["Recorded"], Reply]


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
    replies: list[Reply | Handler] = field(default_factory=list)

    def next(self) -> Reply | Handler:
        # Scripted replies are consumed in order; the last one repeats forever.
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


class FixtureServer:
    def __init__(self, fixtures_dir: Path | None = None) -> None:
        self.fixtures_dir = fixtures_dir or fixtures_root()
        # Keys are (METHOD, path); a path ending in "*" matches every path with that prefix.
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

    def route(self, method: str, path: str, *replies: Reply | Handler) -> None:
        """Replace the script for ``method path`` (query string ignored).

        A reply may be a callable ``(Recorded) -> Reply`` answering per request;
        ``path`` may end in ``*`` to match every path with that prefix.
        """
        with self._lock:
            self.routes[(method.upper(), path)] = _Route(list(replies) or [Reply(404)])

    def fixture(self, method: str, path: str, relative: str, status: int = 200) -> None:
        self.route(method, path, Reply(status, (self.fixtures_dir / relative).read_bytes()))

    def recorded(self, relative: str) -> Reply:
        """The live capture ``relative`` as a Reply (its own status and content type)."""
        return recorded_reply(self.fixtures_dir / relative)

    def load_recorded(self, relative: str) -> Any:
        """The JSON body of a live capture (unwrapping ``{"_status", "body"}``)."""
        return json.loads(self.recorded(relative).payload())

    def _lookup(self, method: str, path: str) -> _Route | None:
        route = self.routes.get((method, path))
        if route is None:
            prefixes = [key for key in self.routes
                        if key[0] == method and key[1].endswith("*") and path.startswith(key[1][:-1])]
            if prefixes:
                route = self.routes[max(prefixes, key=lambda key: len(key[1]))]
        return route

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
                recorded = Recorded(
                    self.command, parts.path, parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()}, body,
                )
                with server._lock:
                    server.requests.append(recorded)
                    route = server._lookup(self.command, parts.path)
                    reply = route.next() if route else Reply(
                        404, "404 page not found\n", "text/plain; charset=utf-8")
                if callable(reply):
                    reply = reply(recorded)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.close:
                    self.close_connection = True
                    return
                payload = reply.payload()
                try:
                    self.send_response(reply.status)
                    if reply.status != 204 and reply.content_type:
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
    install_live_loki_routes(server)
    install_live_tempo_routes(server)
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


# -- Loki 3.8 -------------------------------------------------------------------

# Which keys of the merged (default) stream labels are structured metadata, as the
# categorize-labels capture of the same query shows.
LOKI_STRUCTURED_METADATA_KEYS = ("detected_level", "pod", "trace_id")


def categorize_streams(body: dict, metadata_keys=LOKI_STRUCTURED_METADATA_KEYS) -> dict:
    """Turn a default Loki streams response into its categorize-labels form.

    What Loki 3.8 does (compare the two checkout captures): metadata keys move
    from the stream labels into ``{"structuredMetadata": {...}}`` as each value's
    third element, streams are regrouped by their remaining (index) labels, and
    ``data.encodingFlags = ["categorize-labels"]`` is added. Used for captures
    recorded only in the default form (payment).
    """
    data = body["data"]
    grouped: dict[tuple, dict] = {}
    for stream in data["result"]:
        index = {k: v for k, v in stream["stream"].items() if k not in metadata_keys}
        meta = {k: v for k, v in stream["stream"].items() if k in metadata_keys}
        out = grouped.setdefault(tuple(sorted(index.items())), {"stream": index, "values": []})
        for ts, line, *_ in stream["values"]:
            out["values"].append([ts, line, {"structuredMetadata": meta}] if meta else [ts, line, {}])
    result = list(grouped.values())
    for stream in result:
        stream["values"].sort(key=lambda value: int(value[0]), reverse=True)
    new_data = {"resultType": data["resultType"], "encodingFlags": ["categorize-labels"],
                "result": result, "stats": data.get("stats", {})}
    return {**body, "data": new_data}


def _loki_log_selector(query: str) -> bool:
    return query.lstrip().startswith("{")


def _wants_categorized(req: "Recorded") -> bool:
    flags = req.headers.get("x-loki-response-encoding-flags", "")
    return "categorize-labels" in [f.strip() for f in flags.split(",")]


def install_live_loki_routes(server: FixtureServer) -> None:
    """Loki 3.8 as captured: the answer depends on the query and the encoding-flags header."""
    rec = server.recorded

    def query_range(req: Recorded) -> Reply:
        query = (req.query.get("query") or [""])[0]
        if not _loki_log_selector(query):
            return rec(f"{LIVE}/loki-live-query-range-matrix.json")
        if "{" in query and "}" not in query:
            return rec(f"{LIVE}/loki-live-error-parse.txt")
        if "payment" in query:  # {service="payment"}: recorded in the default form only
            reply = rec(f"{LIVE}/loki-live-query-range-streams.json")
            if _wants_categorized(req):
                reply.body = json.dumps(categorize_streams(json.loads(reply.payload())))
            return reply
        if _wants_categorized(req):
            return rec(f"{LIVE}/loki-live-query-range-categorize-labels.json")
        return rec(f"{LIVE}/loki-live-query-range-structured-metadata-default.json")

    def instant(req: Recorded) -> Reply:
        query = (req.query.get("query") or [""])[0]
        if _loki_log_selector(query):
            if "}" not in query:
                return rec(f"{LIVE}/loki-live-error-parse.txt")
            return rec(f"{LIVE}/loki-live-instant-log.json")  # 400: use a range query
        return rec(f"{LIVE}/loki-live-query-vector.json")

    server.route("GET", "/loki/api/v1/query_range", query_range)
    server.route("GET", "/loki/api/v1/query", instant)
    server.route("GET", "/loki/api/v1/labels", rec(f"{LIVE}/loki-live-labels.json"))
    server.route("GET", "/loki/api/v1/label/service/values", rec(f"{LIVE}/loki-live-label-values.json"))
    server.route("GET", "/loki/api/v1/series", rec(f"{LIVE}/loki-live-series.json"))
    server.route("GET", "/loki/api/v1/status/buildinfo", rec(f"{LIVE}/loki-buildinfo.json"))
    server.route("POST", "/loki/api/v1/push", Reply(204))  # loki-push-response.txt: 204, empty body


# -- Tempo 3.1 ------------------------------------------------------------------

LIVE_TRACE_ID = "a2d5aba9a50f7b0ec0322b357901bc19"  # base64 otWrqaUPew7AMis1eQG8GQ== in the capture
DOC_TRACE_ID = "e8b6dff9f8d44b28f1b22bc3bd2f6768"  # the documented trace (older recorded shape)
TRACES_V2 = {LIVE_TRACE_ID: f"{LIVE}/tempo-live-trace-v2.json",
             DOC_TRACE_ID: "telemetry-api/tempo-trace-by-id-v2.json"}
TRACES_V1 = {LIVE_TRACE_ID: f"{LIVE}/tempo-live-trace-v1.json",
             DOC_TRACE_ID: "telemetry-api/tempo-trace-by-id-v1.json"}


def tempo_trace_id(raw: str) -> str | None:
    """How Tempo reads the id in ``/api/traces/<id>``: hex only, left-padded to 16 bytes."""
    if not raw or len(raw) > 32 or not re.fullmatch(r"[0-9a-fA-F]+", raw):
        return None
    return raw.lower().rjust(32, "0")


def install_live_tempo_routes(server: FixtureServer) -> None:
    """Tempo 3.1 as captured: search by query, trace-by-id for the recorded ids only."""
    rec = server.recorded

    def search(req: Recorded) -> Reply:
        q = (req.query.get("q") or [""])[0]
        if "tags" in req.query or not q:
            return rec(f"{LIVE}/tempo-live-search-tags-legacy.json")
        if q.count("{") != q.count("}"):
            return rec(f"{LIVE}/tempo-live-search-invalid.txt")
        if "select(" in q:
            return rec(f"{LIVE}/tempo-live-search-select.json")
        if "error" in q:
            name = "error" if "start" in req.query or "end" in req.query else "nostartend"
            return rec(f"{LIVE}/tempo-live-search-{name}.json")
        return rec(f"{LIVE}/tempo-live-search-payment.json")

    def bad_id(raw: str) -> Reply:
        # Not captured: Tempo refuses non-hex ids with a plain-text 400.
        return Reply(400, f"invalid trace id {raw!r}: trace IDs can only contain hex characters\n",
                     "text/plain; charset=utf-8")

    def by_id(prefix: str, known: dict[str, str], missing: str) -> Handler:
        def handler(req: Recorded) -> Reply:
            raw = req.path[len(prefix):]
            trace_id = tempo_trace_id(raw)
            if trace_id is None:
                return bad_id(raw)
            return rec(known[trace_id]) if trace_id in known else rec(missing)
        return handler

    server.route("GET", "/api/search", search)
    server.route("GET", "/api/v2/traces/*",
                 by_id("/api/v2/traces/", TRACES_V2, f"{LIVE}/tempo-live-trace-v2-missing.txt"))
    server.route("GET", "/api/traces/*",
                 by_id("/api/traces/", TRACES_V1, f"{LIVE}/tempo-live-trace-v1-missing.txt"))
    server.route("GET", "/api/search/tags", rec(f"{LIVE}/tempo-live-tags-v1.json"))
    server.route("GET", "/api/v2/search/tags", rec(f"{LIVE}/tempo-live-tags-v2.json"))
    server.route("GET", "/api/search/tag/service.name/values", rec(f"{LIVE}/tempo-live-tag-values-v1.json"))
    server.route("GET", "/api/v2/search/tag/resource.service.name/values",
                 rec(f"{LIVE}/tempo-live-tag-values-v2.json"))
    server.route("GET", "/api/echo", rec(f"{LIVE}/tempo-live-echo.txt"))
    server.route("GET", "/api/status/buildinfo", rec(f"{LIVE}/tempo-live-buildinfo.json"))
