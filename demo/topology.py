"""The shop's service graph, kept as plain data.

Everything else (servers, traffic, the control API's ``GET /topology``, the
Prometheus scrape config) is derived from ``SERVICES`` so the graph is defined
once. ``demo/catalog.yaml`` mirrors it for the product; a test keeps them in step.

Client timeouts shrink along the call chain (frontend 3 s > checkout→payment
2.5 s > payment→database 2 s): a callee that times out on *its* downstream
still answers its caller before the caller gives up, so a slow database shows
up as a 504 in payment and a 502 in checkout rather than as timeouts everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

APP = "shop"
JOB = "shop"


@dataclass(frozen=True)
class Call:
    """One downstream HTTP call made while serving a route."""

    service: str
    method: str
    path: str
    timeout_s: float = 2.0
    # An optional call degrades the response (logged as a warning) instead of failing it.
    optional: bool = False


@dataclass(frozen=True)
class Route:
    """A route a service serves: simulated local work, then downstream calls in order."""

    method: str
    path: str
    work_ms: float
    calls: tuple[Call, ...] = ()


@dataclass(frozen=True)
class Failure:
    """How an injected error fault shows in one service: its own log line, span status and event.

    ``template`` is formatted per request with ``params`` (name, low, high: a random integer in
    [low, high]) and the keyword arguments of :meth:`render` (e.g. ``max``, the pool size). When
    ``wait`` names a parameter, the failing request really waits that many milliseconds first, so
    "after 250ms" in the message matches the span's duration.
    """

    template: str
    exception: str  # exception.type of the span's exception event (and error_type in the log)
    params: tuple[tuple[str, int, int], ...] = ()
    wait: str | None = None

    def render(self, rng, **fixed: object) -> tuple[str, float]:
        """(message, milliseconds to wait before failing) for one failing request."""
        values = {name: rng.randint(low, high) for name, low, high in self.params}
        message = self.template.format(**fixed, **values)
        return message, float(values[self.wait]) if self.wait else 0.0


# What a service logs (level warn) when its own work, before any downstream call, took at least
# SLOW_THRESHOLD_MS - i.e. under a latency fault. Fields: ms, threshold, method, route.
SLOW_THRESHOLD_MS = 200
SLOW_REQUEST = "request took {ms}ms, over the {threshold}ms slow threshold ({method} {route})"


@dataclass(frozen=True)
class Service:
    """A service of the shop: its port offset from ``--base-port`` and its routes."""

    name: str
    port_offset: int
    routes: tuple[Route, ...]
    # What the service logs, and puts on its span, when an injected error fault fails a request.
    failure: Failure
    # Size of each client-side connection pool to a downstream service.
    pool_size: int = 20
    # Its slow-request warning (see SLOW_REQUEST).
    slow_message: str = SLOW_REQUEST

    @property
    def calls(self) -> list[str]:
        """Distinct downstream services, in first-call order."""
        seen: list[str] = []
        for route in self.routes:
            for call in route.calls:
                if call.service not in seen:
                    seen.append(call.service)
        return seen

    def route(self, method: str, path: str) -> Route | None:
        """The route matching ``method`` and ``path``, if any."""
        for route in self.routes:
            if route.method == method and route.path == path:
                return route
        return None


SERVICES: tuple[Service, ...] = (
    Service(
        name="frontend",
        port_offset=0,
        routes=(
            Route("GET", "/", 4, (
                Call("catalog", "GET", "/featured", 2.0),
                Call("checkout", "GET", "/cart", 1.0, optional=True),
            )),
            Route("GET", "/products", 4, (Call("catalog", "GET", "/products", 2.0),)),
            Route("POST", "/checkout", 5, (Call("checkout", "POST", "/orders", 3.0),)),
        ),
        failure=Failure("template render failed: KeyError 'price' in product_card.html "
                        "(product {product_id})", "KeyError", (("product_id", 1000, 9999),)),
    ),
    Service(
        name="catalog",
        port_offset=1,
        routes=(Route("GET", "/featured", 3), Route("GET", "/products", 8)),
        failure=Failure("product index unavailable: search shard {shard} returned no replicas",
                        "ShardUnavailableError", (("shard", 0, 7),)),
    ),
    Service(
        name="checkout",
        port_offset=2,
        routes=(
            Route("GET", "/cart", 3, (Call("database", "POST", "/query", 1.0),)),
            Route("POST", "/orders", 6, (
                Call("payment", "POST", "/charge", 2.5),
                Call("database", "POST", "/query", 2.0),
            )),
        ),
        failure=Failure("order validation failed: sku {sku} has no stock reservation",
                        "OrderValidationError", (("sku", 10000, 99999),)),
    ),
    Service(
        name="payment",
        port_offset=3,
        routes=(Route("POST", "/charge", 10, (Call("database", "POST", "/query", 2.0),)),),
        # Its own client pool to the database is "full": the request waits, then gives up.
        failure=Failure("connection pool exhausted (max={max}, waiting={waiting}) after {waited_ms}ms",
                        "PoolTimeoutError", (("waiting", 3, 41), ("waited_ms", 120, 400)),
                        wait="waited_ms"),
    ),
    Service(
        name="database",
        port_offset=4,
        routes=(Route("POST", "/query", 2),),
        failure=Failure("lock wait timeout exceeded on table orders (waited {waited_ms}ms)",
                        "LockWaitTimeoutError", (("waited_ms", 150, 500),), wait="waited_ms"),
        slow_message="slow query on table orders took {ms}ms (threshold {threshold}ms)",
    ),
)

BY_NAME: dict[str, Service] = {service.name: service for service in SERVICES}

# What the traffic generator sends to the frontend: (method, path, weight).
TRAFFIC_MIX: tuple[tuple[str, str, float], ...] = (
    ("GET", "/", 0.4),
    ("GET", "/products", 0.3),
    ("POST", "/checkout", 0.3),
)


def service_port(name: str, base_port: int) -> int:
    """The port service ``name`` listens on for a given ``--base-port``."""
    return base_port + BY_NAME[name].port_offset


def topology_document(host: str, base_port: int) -> dict:
    """The graph as JSON-ready data (served by the control API's ``GET /topology``)."""
    services = []
    for service in SERVICES:
        services.append({
            "name": service.name,
            "port": service_port(service.name, base_port),
            "url": f"http://{host}:{service_port(service.name, base_port)}",
            "calls": service.calls,
            "routes": [
                {
                    "method": route.method,
                    "path": route.path,
                    "calls": [
                        {"service": c.service, "method": c.method, "path": c.path,
                         "timeout_s": c.timeout_s, "optional": c.optional}
                        for c in route.calls
                    ],
                }
                for route in service.routes
            ],
        })
    edges = [{"from": s.name, "to": callee} for s in SERVICES for callee in s.calls]
    return {"app": APP, "job": JOB, "services": services, "edges": edges}


def prometheus_scrape_config(host: str, base_port: int, interval: str = "5s") -> str:
    """Render a complete ``prometheus.yml`` scraping every shop service.

    One target per service in job ``shop`` with a ``service`` target label, so
    ``up{job="shop",service="payment"}`` exists per service. ``honor_labels``
    keeps the ``service`` label the services already put on their own series
    (same value) instead of renaming it to ``exported_service``.
    """
    lines = [
        "# Generated by: python -m demo.prometheus_config",
        "global:",
        f"  scrape_interval: {interval}",
        f"  evaluation_interval: {interval}",
        "scrape_configs:",
        f"  - job_name: {JOB}",
        "    honor_labels: true",
        "    static_configs:",
    ]
    for service in SERVICES:
        lines += [
            f"      - targets: [\"{host}:{service_port(service.name, base_port)}\"]",
            f"        labels: {{service: {service.name}, app: {APP}}}",
        ]
    return "\n".join(lines) + "\n"

