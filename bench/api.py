"""Incidents API throughput and latency on one daphne process, 10,000 incidents in the database.

    .venv/bin/python bench/api.py [--incidents 10000] [--seconds 10] [--runs 3] [--list-clients 16] [--create-clients 8]
    .venv/bin/python bench/api.py --in-process [--incidents 10000]

`--in-process` skips the server: it times list requests through Django's test client in this
process and each SQL statement they run, to show where one request's time goes.

A scratch database (rs_bench_api) is created and seeded, one daphne process serves the ASGI app on
loopback, and aiohttp clients (keep-alive, token auth) drive GET /api/v1/incidents/ (page of 50,
with services) and POST /api/v1/incidents/ for a fixed time per run. Figures are medians over
the runs. The last line printed is one JSON object.
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


def seed(count: int) -> str:
    from django.core.management import call_command
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from incidents.models import Incident, Service, Severity, Source, Status
    from reliability_studio.access import Role, grant_role
    from tests.factories import UserFactory

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
    user = UserFactory(username="bench")
    grant_role(user, Role.RESPONDER)
    return Token.objects.create(user=user).key


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
    """Median time of one list request without a server, and of each of its SQL statements."""
    from collections import defaultdict

    from django.db import connection
    from django.test import Client

    statements: dict[str, list[float]] = defaultdict(list)

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements[" ".join(sql.split()[:4])[:60]].append(time.perf_counter() - started)

    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_ACCEPT="application/json", HTTP_HOST="127.0.0.1")
    queries = ["", "?active=true", "?severity=critical", "?page=7"]
    for query in queries:  # warm up
        assert client.get("/api/v1/incidents/" + query).status_code == 200
    latencies = []
    with connection.execute_wrapper(timed):
        for n in range(requests):
            started = time.perf_counter()
            client.get("/api/v1/incidents/" + queries[n % 4])
            latencies.append(time.perf_counter() - started)
    request_ms = median(latencies) * 1000
    sql_ms = {name: round(median(times) * 1000, 2) for name, times in statements.items()}
    print(f"list request in-process: median {request_ms:.1f} ms over {requests} requests")
    for name, ms in sql_ms.items():
        print(f"  {ms:6.2f} ms  {name}")
    print(f"  {request_ms - sum(sql_ms.values()):6.2f} ms  Python (middleware, DRF, filters, rows, JSON)")
    return {"in_process_list_ms": round(request_ms, 1), "sql_statements": len(sql_ms),
            "sql_ms": round(sum(sql_ms.values()), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--list-clients", type=int, default=16)
    parser.add_argument("--create-clients", type=int, default=8)
    parser.add_argument("--in-process", action="store_true", help="time list requests without a server")
    args = parser.parse_args()

    os.environ["DEBUG"] = "false"  # as served: no query log, no debug pages (a local .env may say true)
    database_url = recreate_database(DB_NAME)
    setup_django(database_url)
    token = seed(args.incidents)
    if args.in_process:
        print(json.dumps({"incidents_in_db": args.incidents, **in_process(token)}))
        return
    from django.db import connections

    connections.close_all()
    from tests.servers import Daphne

    env = dict(os.environ, DATABASE_URL=database_url, DEBUG="false", LOG_LEVEL="WARNING")
    server = Daphne(env)
    try:
        asyncio.run(drive(server.url, token, 4, 2, list_request))  # warm up connections and caches
        runs = {"list": [], "create": []}
        for _ in range(args.runs):
            runs["list"].append(asyncio.run(drive(server.url, token, args.list_clients, args.seconds, list_request)))
            runs["create"].append(asyncio.run(drive(server.url, token, args.create_clients, args.seconds, create_request)))
    finally:
        server.stop()

    result = {"incidents_in_db": args.incidents, "runs": args.runs, "seconds_per_run": args.seconds, "daphne_processes": 1}
    print(f"{'endpoint':<8} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}   (median of {args.runs} runs)")
    for name, clients in (("list", args.list_clients), ("create", args.create_clients)):
        rows = runs[name]
        figures = {k: round(median([r[k] for r in rows]), 1) for k in ("rps", "p50_ms", "p99_ms")}
        errors = sum(r["errors"] for r in rows)
        print(f"{name:<8} {clients:>7} {figures['rps']:>8} {figures['p50_ms']:>8} {figures['p99_ms']:>8} {errors:>6}")
        result.update({f"{name}_{k}": v for k, v in figures.items()}, **{f"{name}_clients": clients, f"{name}_errors": errors})
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
