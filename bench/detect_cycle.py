"""One detection cycle over 1,000 rules / 10,000 series against a real Prometheus.

    .venv/bin/python bench/detect_cycle.py [--rules 1000] [--series-per-rule 10] [--cycles 3] [--workers 4]

A small exporter serves the series (1 % of them above threshold), a real Prometheus scrapes it,
and 1,000 threshold rules are dispatched the way beat does it (batches of DETECTION_BATCH_SIZE rules
per Celery task), consumed by a real worker (prefork). A cycle is timed from dispatch until every rule has recorded its
evaluation. The same cycle run sequentially in one process is shown for comparison.
Figures are medians over the cycles; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from common import recreate_database, setup_django

DB_NAME = "rs_bench_cycle"


def serve_series(rules: int, per_rule: int) -> ThreadingHTTPServer:
    lines = ["# TYPE bench_series gauge"]
    for r in range(rules):
        for i in range(per_rule):
            value = 0.95 if (r * per_rule + i) % 100 == 0 else 0.1  # 1 % above the 0.9 threshold
            lines.append(f'bench_series{{rule="r{r:04d}",instance_id="i{i:02d}"}} {value}')
    body = ("\n".join(lines) + "\n").encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--series-per-rule", type=int, default=10)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4, help="Celery worker processes (prefork concurrency)")
    args = parser.parse_args()
    series_total = args.rules * args.series_per_rule

    database_url = recreate_database(DB_NAME)
    setup_django(database_url)
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections
    from django.utils import timezone

    from detection import services
    from detection.models import DetectionRule, RuleKind
    from detection.tasks import dispatch_due_rules
    from tests.servers import CeleryWorker, server_env
    from tests.support.prometheus import start_prometheus

    call_command("migrate", verbosity=0)
    exporter = serve_series(args.rules, args.series_per_rule)
    prometheus = start_prometheus([f"127.0.0.1:{exporter.server_address[1]}"], scrape_interval="5s", job="bench")
    settings.PROMETHEUS_URL = prometheus.url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    DetectionRule.objects.bulk_create([
        DetectionRule(name=f"bench r{r:04d}", kind=RuleKind.THRESHOLD, query=f'bench_series{{rule="r{r:04d}"}}',
                      comparator=">", threshold=0.9, for_seconds=60, evaluation_interval_seconds=3600)
        for r in range(args.rules)
    ])
    prometheus.wait_for_series('bench_series{rule="r0000"}', timeout=60)
    env = server_env(DB_NAME, PROMETHEUS_URL=prometheus.url)
    settings.CELERY_TASK_DEFAULT_QUEUE = env["CELERY_TASK_DEFAULT_QUEUE"]
    connections.close_all()
    worker = CeleryWorker(env, concurrency=args.workers)
    distributed, sequential = [], []
    try:
        time.sleep(5)  # worker start-up
        for _ in range(args.cycles):
            DetectionRule.objects.update(next_evaluation_at=timezone.now())
            started_at = timezone.now()
            started = time.perf_counter()
            dispatch_due_rules()  # what beat runs: claim the due rules, send them out in batches
            while DetectionRule.objects.filter(last_evaluated_at__lt=started_at).exists() or \
                    DetectionRule.objects.filter(last_evaluated_at__isnull=True).exists():
                time.sleep(0.05)
            distributed.append(time.perf_counter() - started)

            started = time.perf_counter()
            services.evaluate_rules(rules=list(DetectionRule.objects.select_related("service")))
            sequential.append(time.perf_counter() - started)
            print(f"cycle: {distributed[-1]:.2f}s through Celery, {sequential[-1]:.2f}s sequential", flush=True)
    finally:
        worker.stop()
        prometheus.stop()
        exporter.shutdown()

    unknown = DetectionRule.objects.exclude(health="ok").count()
    d, s = statistics.median(distributed), statistics.median(sequential)
    print(f"\n{args.rules} rules / {series_total} series, {args.workers} worker processes on this machine")
    print(f"{'path':<24} {'seconds':>8} {'series/s':>9}")
    print(f"{'Celery fan-out':<24} {d:>8.2f} {series_total / d:>9.0f}")
    print(f"{'sequential, 1 process':<24} {s:>8.2f} {series_total / s:>9.0f}")
    print(json.dumps({"rules": args.rules, "series": series_total, "workers": args.workers, "cycles": args.cycles,
                      "cycle_seconds": round(d, 2), "series_per_second": round(series_total / d),
                      "sequential_seconds": round(s, 2), "rules_not_ok": unknown}))


if __name__ == "__main__":
    main()
