"""Incidents API throughput and latency with 1 web process and with N, 10,000 incidents in the database.

    .venv/bin/python bench/api.py [--incidents 10000] [--seconds 10] [--runs 3] [--workers N] [--list-clients 16]
    .venv/bin/python bench/api.py --in-process [--incidents 10000]
    .venv/bin/python bench/api.py --pages [--incidents 10000]

A scratch database (rs_bench_api) is created and seeded. Two servers run side by side on loopback,
both `reliability_studio.webserver` (daphne processes sharing one socket): one with 1 process and
one with `--workers` (default: one per core). Each run drives, on each server in turn, GET
/api/v1/incidents/ (page of 50, with services; aiohttp clients, keep-alive, token auth) and
GET /healthz (the ceiling: the cheapest request the same server answers), then POST
/api/v1/incidents/ on the N-process server, for a fixed time each. Figures are medians over the runs;
`list_ratio` is list req/s with N processes over 1 process, `list_vs_healthz` the N-process list over
the N-process /healthz.

The same run also times list requests in this process through Django's test client (no server):
wall and CPU time per request, each SQL statement, and a revalidation (If-None-Match → 304).
`--in-process` does only that. `--pages` times the control room's live partials the same way (the
incident list's table and the incident page's regions that htmx re-fetches after events, signed in
with a session): a full render and a revalidation (If-None-Match → 304) of each. The load client
runs on the same cores as the servers. The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time

from common import median, percentile, recreate_database, setup_django

import aiohttp  # noqa: E402  (after sys.path is set by common)

DB_NAME = "rs_bench_api"


def api_token(user) -> str:
    """Hashed `ApiToken`s when the API authenticates with them, DRF's own tokens before that."""
    from django.conf import settings

    if any(name.endswith(".ApiTokenAuthentication") for name in settings.REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]):
        from reliability_studio.models import ApiToken

        return ApiToken.issue(user=user, name="bench")[1]
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=user).key


def seed(count: int) -> str:
    from django.core.management import call_command
    from django.utils import timezone

    from incidents.models import Incident, Service, Severity, Source, Status
    from reliability_studio.access import Role, grant_role
    from django.contrib.auth import get_user_model

    call_command("migrate", verbosity=0)
    call_command("load_catalog", "demo/catalog.yaml", verbosity=0)
    services = list(Service.objects.all())
    rng = random.Random(42)
    now = timezone.now()
    statuses = [Status.RESOLVED] * 8 + [Status.OPEN, Status.INVESTIGATING]
    incidents = []
    for n in range(count):
        started = now - timezone.timedelta(minutes=rng.randint(10, 60 * 24 * 90))
        status = rng.choice(statuses)
        incidents.append(Incident(
            title=f"{rng.choice(services).name} {rng.choice(['error rate', 'latency', 'saturation', 'crash loop'])} #{n}",
            summary="Synthetic incident for the API benchmark.", severity=rng.choice(Severity.values),
            status=status, source=rng.choice(Source.values), started_at=started, detected_at=started,
            resolved_at=started + timezone.timedelta(minutes=30) if status == Status.RESOLVED else None,
            primary_service=rng.choice(services),
        ))
    created = Incident.objects.bulk_create(incidents, batch_size=2000)
    through = Incident.affected_services.through
    through.objects.bulk_create(
        [through(incident_id=i.pk, service_id=i.primary_service_id) for i in created], batch_size=5000
    )
    user = get_user_model().objects.create_user(username="bench")
    grant_role(user, Role.RESPONDER)
    return api_token(user)


async def drive(url: str, token: str, clients: int, seconds: float, make_request) -> dict:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector) as session:

        async def client(i: int):
            nonlocal errors
            n = 0
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with make_request(session, i, n) as response:
                    await response.read()
                    if response.status >= 400:
                        errors += 1
                latencies.append(time.perf_counter() - started)
                n += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "requests": len(latencies),
        "errors": errors,
    }


def list_request(session, i, n):
    # Mix of the list views the control room and API clients ask for.
    query = ["", "?active=true", "?severity=critical", f"?page={1 + (n % 20)}"][n % 4]
    return session.get("/api/v1/incidents/" + query)


def create_request(session, i, n):
    return session.post("/api/v1/incidents/", json={"title": f"bench {i}-{n}", "severity": "low", "primary_service": "payment"})


def in_process(token: str, requests: int = 400) -> dict:
    """Median wall and CPU time of one list request without a server, and of each of its SQL statements."""
    from collections import defaultdict

    from django.db import connection
    from django.test import Client

    statements: dict[str, list[float]] = defaultdict(list)
    counts: list[int] = []

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements[" ".join(sql.split()[:4])[:60]].append(time.perf_counter() - started)
            counts[-1] += 1

    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_ACCEPT="application/json", HTTP_HOST="127.0.0.1")
    queries = ["", "?active=true", "?severity=critical", "?page=7"]
    tags = {}
    for query in queries:  # warm up
        response = client.get("/api/v1/incidents/" + query)
        assert response.status_code == 200, (response.status_code, response.get("Location"), response.content[:200])
        tags[query] = response.get("ETag")
    latencies, cpu = [], []
    with connection.execute_wrapper(timed):
        for n in range(requests):
            counts.append(0)
            started, started_cpu = time.perf_counter(), time.process_time()
            client.get("/api/v1/incidents/" + queries[n % 4])
            cpu.append(time.process_time() - started_cpu)
            latencies.append(time.perf_counter() - started)
    revalidations = []
    if all(tags.values()):
        for n in range(requests // 2):
            query = queries[n % 4]
            started = time.perf_counter()
            response = client.get("/api/v1/incidents/" + query, HTTP_IF_NONE_MATCH=tags[query])
            revalidations.append(time.perf_counter() - started)
            assert response.status_code == 304, response.status_code
    request_ms = median(latencies) * 1000
    sql_ms = {name: round(median(times) * 1000, 2) for name, times in statements.items()}
    per_request = round(sum(counts) / len(counts), 1)
    print(f"list request in-process: median {request_ms:.1f} ms wall, {median(cpu) * 1000:.1f} ms CPU, "
          f"{per_request} SQL statements, over {requests} requests")
    for name, ms in sql_ms.items():
        print(f"  {ms:6.2f} ms  {name}")
    print(f"  {request_ms - sum(sql_ms.values()):6.2f} ms  Python (middleware, DRF, filters, rows, JSON)")
    result = {"in_process_list_ms": round(request_ms, 1), "in_process_list_cpu_ms": round(median(cpu) * 1000, 1),
              "sql_statements": per_request, "sql_ms": round(sum(sql_ms.values()), 1)}
    if revalidations:
        result["in_process_304_ms"] = round(median(revalidations) * 1000, 1)
        print(f"list revalidation (If-None-Match → 304) in-process: median {result['in_process_304_ms']} ms")
    return result


def pages_in_process(requests: int = 200) -> dict:
    """Per control-room partial: median wall and CPU time and SQL statements of a full render (200)
    and of a revalidation (304), through Django's test client with a signed-in session."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from incidents import services
    from incidents.models import Service, Severity

    user = get_user_model().objects.get(username="bench")
    catalog = {s.slug: s for s in Service.objects.all()}
    incident = services.create_incident(
        title="Payment error rate 12% (5xx)", severity=Severity.CRITICAL, primary_service=catalog["payment"],
        affected_services=[catalog["payment"]], user=user)
    for n in range(20):
        services.add_comment(incident=incident, user=user, message=f"Note {n}")
    for n in range(5):
        services.create_task(incident=incident, title=f"Task {n}", owner=user)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    client.get("/")  # the CSRF cookie, as a signed-in browser has it
    partials = {"list": "/", "list (filtered)": "/?status=all&severity=critical"}
    partials |= {name: f"/incidents/{incident.pk}/regions/{name}/" for name in ("header", "timeline", "tasks", "blast-radius")}
    counts = [0]

    def counted(execute, sql, params, many, context):
        counts[0] += 1
        return execute(sql, params, many, context)

    def measure(url, **headers):
        wall, cpu, statements, status = [], [], [], set()
        with connection.execute_wrapper(counted):
            for _ in range(requests):
                counts[0] = 0
                started, started_cpu = time.perf_counter(), time.process_time()
                response = client.get(url, HTTP_HX_REQUEST="true", **headers)
                cpu.append(time.process_time() - started_cpu)
                wall.append(time.perf_counter() - started)
                statements.append(counts[0])
                status.add(response.status_code)
        return {"ms": round(median(wall) * 1000, 2), "cpu_ms": round(median(cpu) * 1000, 2),
                "statements": median(statements), "status": sorted(status)}

    result = {}
    print(f"{'partial':<16} {'200 ms':>7} {'CPU ms':>7} {'SQL':>4}   {'304 ms':>7} {'CPU ms':>7} {'SQL':>4}"
          f"   (medians of {requests} requests each)")
    for name, url in partials.items():
        client.get(url, HTTP_HX_REQUEST="true")  # warm up
        full = measure(url)
        tag = client.get(url, HTTP_HX_REQUEST="true").get("ETag")
        again = measure(url, HTTP_IF_NONE_MATCH=tag) if tag else None
        # The list's tag holds the minute ("resolved 5 minutes ago"): a run crossing one sees a 200.
        assert full["status"] == [200] and (again is None or 304 in again["status"]), (name, full, again)
        print(f"{name:<16} {full['ms']:>7} {full['cpu_ms']:>7} {full['statements']:>4}   "
              + (f"{again['ms']:>7} {again['cpu_ms']:>7} {again['statements']:>4}" if again else "    (no ETag)"))
        key = name.split()[0].replace("-", "_") + ("_filtered" if "filtered" in name else "")
        result |= {f"page_{key}_cpu_ms": full["cpu_ms"], f"page_{key}_statements": full["statements"]}
        if again:
            result |= {f"page_{key}_304_cpu_ms": again["cpu_ms"], f"page_{key}_304_statements": again["statements"]}
    return result


def healthz_request(session, i, n):
    return session.get("/healthz")


def summarise(rows: list[dict]) -> dict:
    figures = {k: round(median([r[k] for r in rows]), 1) for k in ("rps", "p50_ms", "p99_ms")}
    figures["errors"] = sum(r["errors"] for r in rows)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="processes of the second server (default: cores)")
    parser.add_argument("--list-clients", type=int, default=16)
    parser.add_argument("--create-clients", type=int, default=8)
    parser.add_argument("--in-process", action="store_true", help="only time list requests without a server")
    parser.add_argument("--pages", action="store_true", help="only time the control room's live partials, in-process")
    args = parser.parse_args()

    os.environ["DEBUG"] = "false"  # as served: no query log, no debug pages (a local .env may say true)
    database_url = recreate_database(DB_NAME)
    setup_django(database_url)  # before any project import: the package defaults to the production settings
    from reliability_studio.webserver import default_workers

    workers = args.workers or default_workers()
    token = seed(args.incidents)
    if args.pages:
        print(json.dumps({"incidents_in_db": args.incidents, **pages_in_process()}))
        return
    local = in_process(token)
    if args.in_process:
        print(json.dumps({"incidents_in_db": args.incidents, **local}))
        return
    from django.db import connections

    connections.close_all()
    from reliability_studio.devtools.servers import WebServer

    env = dict(os.environ, DATABASE_URL=database_url, DEBUG="false", LOG_LEVEL="WARNING")
    servers = {}
    try:
        servers[1] = WebServer(env, workers=1)
        servers[workers] = WebServer(env, workers=workers)
        for server in servers.values():  # warm up connections and caches in every process
            asyncio.run(drive(server.url, token, 4 * workers, 2, list_request))
        runs: dict[str, list[dict]] = {}
        for _ in range(args.runs):
            for name, request in (("list", list_request), ("healthz", healthz_request)):
                for n, server in servers.items():
                    runs.setdefault(f"{name}_{n}", []).append(
                        asyncio.run(drive(server.url, token, args.list_clients, args.seconds, request)))
            runs.setdefault(f"create_{workers}", []).append(
                asyncio.run(drive(servers[workers].url, token, args.create_clients, args.seconds, create_request)))
    finally:
        for server in servers.values():
            server.stop()

    result = {"incidents_in_db": args.incidents, "runs": args.runs, "seconds_per_run": args.seconds,
              "workers": workers, "cores": os.cpu_count(), **local}
    print(f"{'endpoint':<8} {'processes':>9} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
          f"   (median of {args.runs} runs)")
    for key, rows in runs.items():
        name, processes = key.rsplit("_", 1)
        clients = args.create_clients if name == "create" else args.list_clients
        figures = summarise(rows)
        print(f"{name:<8} {processes:>9} {clients:>7} {figures['rps']:>8} {figures['p50_ms']:>8} {figures['p99_ms']:>8} "
              f"{figures['errors']:>6}")
        result.update({f"{key}_{k}": v for k, v in figures.items()})
    result["list_ratio"] = round(result[f"list_{workers}_rps"] / result["list_1_rps"], 2)
    result["healthz_ratio"] = round(result[f"healthz_{workers}_rps"] / result["healthz_1_rps"], 2)
    result["list_vs_healthz"] = round(result[f"list_{workers}_rps"] / result[f"healthz_{workers}_rps"], 2)
    print(f"list req/s, {workers} processes / 1: {result['list_ratio']}; list / healthz with {workers}: "
          f"{result['list_vs_healthz']}")
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
