"""Notification latency and burst delivery through a real Celery worker and beat.

    .venv/bin/python bench/notify.py [--incidents 50] [--burst 100] [--workers 4]

A scratch database (rs_bench_notify) with one service, one route and one signed webhook
destination pointing at a local HTTP receiver (which checks every signature). The incidents are
opened in this process through incidents.services, exactly as detection opens them; the hook
queues the notification on the worker, which routes, records the delivery and sends it.

1. Latency: incidents opened one at a time; time from `create_incident` returning (committed) to
   the receiver holding the request. p50/p95 (goal: p95 ≤ 2 s).
2. Burst: `--burst` incidents opened at once from 20 threads; all must arrive, none twice (counted
   by incident and by delivery id at the receiver).

Both run twice: `shared` (notifications on the default queue, sharing the worker with the
investigations every opened incident starts) and `dedicated` (NOTIFICATIONS_QUEUE, half of the
worker processes consuming only it).

The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import percentile, recreate_database, setup_django

DB_NAME = "rs_bench_notify"
SECRET = "bench-webhook-secret-0123456789abcdef"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=50)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4, help="worker processes in all")
    parser.add_argument("--modes", nargs="+", default=["shared", "dedicated"], choices=["shared", "dedicated"])
    args = parser.parse_args()

    setup_django(recreate_database(DB_NAME))
    from django.core.management import call_command
    from django.db import connection, connections

    from incidents.models import Service
    from notifications import services
    from notifications.models import Route
    from reliability_studio.devtools.receivers import HTTPReceiver, webhook_checker
    from reliability_studio.devtools.servers import server_env

    call_command("migrate", verbosity=0)
    from django.conf import settings

    settings.NOTIFICATIONS_ALLOW_LOOPBACK = True  # the receiver is on loopback
    receiver = HTTPReceiver(webhook_checker(SECRET), ok_body=b"")
    service = Service.objects.create(slug="payment", name="Payment", owner_team="payments")
    destination = services.save_destination(name="bench-webhook", kind="webhook", url=receiver.url, secret=SECRET)
    route = Route.objects.create(name="all", is_default=True)
    route.destinations.set([destination])
    connections.close_all()

    base_env = server_env(connection.settings_dict["NAME"], NOTIFICATIONS_ALLOW_LOOPBACK="true",
                          NOTIFICATIONS_TICK_SECONDS="1", GRAFANA_URL="", LOG_LEVEL="ERROR")
    results = {}
    for mode in args.modes:
        receiver.requests.clear()
        results[mode] = run(mode, args, base_env, receiver, service)
    print(f"\n{'queue':<10} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'burst':>6} {'delivered':>9} {'dupes':>6} {'burst s':>8}")
    for mode, r in results.items():
        print(f"{mode:<10} {r['p50_ms']:>7} {r['p95_ms']:>7} {r['max_ms']:>7} {args.burst:>6} {r['burst_delivered']:>9} "
              f"{r['burst_duplicates']:>6} {r['burst_seconds']:>8}")
    receiver.stop()
    ok = all(r["burst_delivered"] == args.burst and r["burst_duplicates"] == 0 for r in results.values())
    print(json.dumps({"incidents": args.incidents, "burst": args.burst, "worker_processes": args.workers,
                      "goal_p95_ms": 2000, "goal_met": all(r["p95_ms"] <= 2000 for r in results.values()),
                      "all_delivered_none_twice": ok, **results, "bad_signatures": len(receiver.rejected)}))
    sys.exit(0 if ok else 1)


def run(mode: str, args, base_env: dict, receiver, service) -> dict:
    """One measurement. `shared`: notifications share the default queue (and the worker's
    processes) with everything else, investigations included. `dedicated`: NOTIFICATIONS_QUEUE
    with half of the processes consuming only it."""
    from django.conf import settings
    from django.db import connection

    from incidents import services as incident_services
    from notifications.models import Delivery, DeliveryStatus
    from reliability_studio.celery import app
    from reliability_studio.devtools.servers import CeleryBeat, CeleryWorker

    env = dict(base_env)
    tmp = Path(tempfile.mkdtemp(prefix="rs-bench-notify-"))
    if mode == "dedicated":
        env["NOTIFICATIONS_QUEUE"] = env["CELERY_TASK_DEFAULT_QUEUE"] + "-notify"
        processes = [CeleryWorker(env, concurrency=max(1, args.workers // 2)),
                     CeleryWorker({**env, "CELERY_TASK_DEFAULT_QUEUE": env["NOTIFICATIONS_QUEUE"]},
                                  concurrency=max(1, args.workers - args.workers // 2))]
    else:
        env["NOTIFICATIONS_QUEUE"] = ""
        processes = [CeleryWorker(env, concurrency=args.workers)]
    settings.NOTIFICATIONS_QUEUE = env["NOTIFICATIONS_QUEUE"]
    app.conf.update(task_always_eager=False, task_default_queue=env["CELERY_TASK_DEFAULT_QUEUE"])
    processes.append(CeleryBeat(env, str(tmp / "beat")))

    def wait_key(key: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        with receiver.cond:
            while True:
                for r in receiver.accepted:
                    if r["json"]["incident"]["key"] == key:
                        return r["at"]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{key} not delivered within {timeout}s")
                receiver.cond.wait(left)

    def open_one(n: int):
        try:
            return incident_services.create_incident(title=f"Bench incident {n}", severity="high",
                                                     primary_service=service, source="rule")
        finally:
            connection.close()

    try:
        wait_key(open_one(-1).key, 60)  # warm-up: the workers' first tasks import everything
        latencies = []
        for n in range(args.incidents):
            started = time.monotonic()
            incident = incident_services.create_incident(title=f"Bench incident {n}", severity="high",
                                                         primary_service=service, source="rule")
            latencies.append(wait_key(incident.key, 30) - started)
        p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
        print(f"[{mode}] opened → delivered, {args.incidents} incidents one at a time: p50 {p50 * 1000:.0f} ms, "
              f"p95 {p95 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms", flush=True)

        with receiver.cond:
            before = {r["json"]["incident"]["key"] for r in receiver.accepted}
        barrier = threading.Barrier(20)

        def burst_one(n: int):
            if n < 20:
                barrier.wait()
            return open_one(10_000 + n).key

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=20) as pool:
            keys = list(pool.map(burst_one, range(args.burst)))
        for key in keys:
            wait_key(key, 180)
        burst_seconds = time.monotonic() - started
        time.sleep(2)  # a grace period for any duplicate still in flight to arrive (it must not)
        with receiver.cond:
            burst_requests = [r for r in receiver.accepted if r["json"]["incident"]["key"] not in before]
        per_incident = Counter(r["json"]["incident"]["key"] for r in burst_requests)
        per_delivery = Counter(r["headers"]["X-RS-Delivery"] for r in burst_requests)
        duplicates = (sum(c - 1 for c in per_incident.values() if c > 1)
                      + sum(c - 1 for c in per_delivery.values() if c > 1))
        delivered = len(set(keys) & set(per_incident))
        print(f"[{mode}] burst: {args.burst} incidents opened at once → {delivered} delivered in {burst_seconds:.2f}s, "
              f"{duplicates} duplicates", flush=True)
    finally:
        for process in processes:
            process.stop()
    return {"p50_ms": round(p50 * 1000), "p95_ms": round(p95 * 1000), "max_ms": round(max(latencies) * 1000),
            "burst_delivered": delivered, "burst_duplicates": duplicates, "burst_seconds": round(burst_seconds, 2),
            "deliveries_not_delivered": Delivery.objects.exclude(status=DeliveryStatus.DELIVERED).count()}


if __name__ == "__main__":
    main()
