"""SLO recompute cycle over 1,000 SLOs, and time from a 100 % outage to the page alert on the demo.

    .venv/bin/python bench/slo.py [--services 250] [--cycles 3] [--per-slo-sample 200] [--warmup 120] [--skip-demo]

Part 1: 250 services × 4 SLOs (availability 99.9 %/30 d and 99.5 %/7 d, latency < 0.5 s 99 %/30 d and
< 0.1 s 95 %/28 d) against a real Prometheus holding 31 days of backfilled series
(`promtool tsdb create-blocks-from openmetrics`). A cycle is `slos.services.recompute_slos` as beat
runs it (state written, history point, burn alerts fed to detection). Batched mode (one query per
window for every SLO sharing a metric and label names) and per-SLO mode (one query per SLO per window,
on a sample, scaled to 1,000) are both timed, with the Prometheus queries per SLO.

Part 2: the demo shop (real process), Prometheus scraping it every second, the seeded demo SLOs;
after `--warmup` seconds of clean traffic the catalog service fails 100 %; the cycle runs every
second until its availability SLO's page alert fires. The Workbook's figure for a 99.9 % / 30 d SLO
at 100 % errors is 14.4 × 0.001 × 1 h = 51.84 s *with a full hour of history*; with only H seconds of
history the 1 h window holds H + t seconds, so it fires after t = 0.0144 H / (1 − 0.0144). Both
predictions are printed next to the measurement. Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from common import ROOT, recreate_database, setup_django

DB_NAME = "rs_bench_slo"
D, H = 86400, 3600


def dataset(services: int, end: float):
    from reliability_studio.devtools.slo_data import Dataset, Segment, ServiceData

    segments = [Segment(end - 31 * D, end - 2 * D, D), Segment(end - 2 * D, end - D, H), Segment(end - D, end, 300)]
    return Dataset([ServiceData(f"svc-{i:03d}", segments, rate=lambda t: 10.0, bad=lambda t: 0.0005,
                                slow=lambda t: 0.003, instance=f"host-{i:03d}:9000") for i in range(services)])


def create_slos(services: int):
    from incidents.models import Service
    from slos.models import SLO, SLIKind

    rows = []
    for i in range(services):
        svc = Service.objects.create(slug=f"svc-{i:03d}", name=f"Service {i}")
        sel = f'job="shop",service="{svc.slug}"'
        rows += [
            SLO(service=svc, name="availability", sli_kind=SLIKind.AVAILABILITY, selector=sel, objective=99.9, window_days=30),
            SLO(service=svc, name="availability 7d", sli_kind=SLIKind.AVAILABILITY, selector=sel, objective=99.5, window_days=7),
            SLO(service=svc, name="latency 500ms", sli_kind=SLIKind.LATENCY, selector=sel, latency_threshold_seconds=0.5,
                objective=99, window_days=30),
            # Half the requests take over 100 ms in the backfilled histogram: a "median under 100 ms" SLO.
            SLO(service=svc, name="latency 100ms", sli_kind=SLIKind.LATENCY, selector=sel, latency_threshold_seconds=0.1,
                objective=45, window_days=28),
        ]
    for slo in rows:
        slo.slug = slo.generated_slug()
        slo.full_clean()
    SLO.objects.bulk_create(rows)
    return list(SLO.objects.select_related("service"))


def part_cycle(args) -> dict:
    from django.conf import settings

    from slos import services as slo_services
    from reliability_studio.devtools.slo_data import start_backfilled_prometheus

    end = math.floor((time.time() - 600) / 300) * 300
    started = time.perf_counter()
    prometheus = start_backfilled_prometheus(dataset(args.services, end))
    backfill_seconds = time.perf_counter() - started
    settings.PROMETHEUS_URL = prometheus.url
    settings.TELEMETRY_TIMEOUT_SECONDS = 30
    try:
        slos = create_slos(args.services)
        now = datetime.fromtimestamp(end, tz=timezone.utc)
        batched = []
        for _ in range(args.cycles):
            stats = slo_services.recompute_slos(slos=slos, now=now, batch=True)
            batched.append(stats)
        sample = slos[: args.per_slo_sample]
        per_slo = slo_services.recompute_slos(slos=sample, now=now, batch=False)
        # Correctness check on one SLO: 0.05 % errors against a 0.1 % budget = half consumed.
        check = next(s for s in slos if s.window_days == 30 and s.sli_kind == "availability")
        check.refresh_from_db()
        return {
            "slos": len(slos),
            "backfill_and_start_seconds": round(backfill_seconds, 1),
            "batched_cycle_seconds_median": round(statistics.median(s.seconds for s in batched), 3),
            "batched_cycle_seconds": [round(s.seconds, 3) for s in batched],
            "batched_queries_per_cycle": batched[-1].queries,
            "batched_queries_per_slo": round(batched[-1].queries_per_slo, 4),
            "per_slo_sample": len(sample),
            "per_slo_sample_seconds": round(per_slo.seconds, 3),
            "per_slo_cycle_seconds_scaled_to_all": round(per_slo.seconds * len(slos) / len(sample), 2),
            "per_slo_queries_per_slo": round(per_slo.queries_per_slo, 2),
            "failed": batched[-1].failed,
            "check_budget_consumed": round(1 - check.budget_remaining, 6),
        }
    finally:
        prometheus.stop()


def part_demo(args) -> dict:
    from django.conf import settings
    from django.core.management import call_command

    from detection.chaos import ChaosClient
    from detection.models import Alert, AlertState
    from slos import services as slo_services
    from slos.models import SLO
    from reliability_studio.devtools.prometheus import start_prometheus
    from reliability_studio.devtools.shop import start_shop

    call_command("load_catalog", str(ROOT / "demo" / "catalog.yaml"), verbosity=0)
    names = ("frontend", "catalog", "checkout", "payment", "database")
    call_command("seed_slos", service=list(names), verbosity=0)
    tmp = Path(tempfile.mkdtemp(prefix="rs-bench-slo-"))
    shop = start_shop(tmp, rps=40)
    prometheus = start_prometheus([f"127.0.0.1:{shop.port(s)}" for s in names], scrape_interval="1s", job="shop")
    settings.PROMETHEUS_URL = prometheus.url
    settings.SLO_ALERT_RECOVERY_HOLD_SECONDS = 0
    try:
        prometheus.wait_for_series('http_requests_total{job="shop",service="catalog",code="200"}', timeout=60)
        time.sleep(args.warmup)  # clean history in the 1 h window: the bench's own workload, not synchronisation
        slos = list(SLO.objects.filter(service__slug__in=names).select_related("service"))
        target = next(s for s in slos if s.service.slug == "catalog" and s.sli_kind == "availability")
        first_sample = prometheus_first_sample(prometheus.url)
        history = time.time() - first_sample
        ChaosClient(shop.control_url.rstrip("/")).fail("catalog", 1.0)
        injected = time.time()
        fired_at, cycles, cycle_seconds = None, 0, []
        deadline = injected + 300
        while time.time() < deadline:
            stats = slo_services.recompute_slos(slos=slos)
            cycles += 1
            cycle_seconds.append(stats.seconds)
            alert = Alert.objects.filter(fingerprint=f"slo:{target.pk}").first()
            if alert is not None and alert.state == AlertState.FIRING:
                fired_at = time.time()
                break
            time.sleep(max(0.0, 1.0 - stats.seconds))  # a 1-second beat
        threshold = 14.4 * target.error_budget
        predicted = threshold * history / (1 - threshold)
        return {
            "demo_history_seconds_before_outage": round(history, 1),
            "demo_outage_to_page_seconds": None if fired_at is None else round(fired_at - injected, 2),
            "demo_predicted_seconds_for_this_history": round(predicted, 2),
            "workbook_seconds_full_hour_history": round(threshold * 3600, 2),
            "demo_cycles": cycles,
            "demo_cycle_seconds_median": round(statistics.median(cycle_seconds), 4) if cycle_seconds else None,
            "demo_scrape_interval_seconds": 1,
        }
    finally:
        prometheus.stop()
        shop.stop()


def prometheus_first_sample(url: str) -> float:
    """When Prometheus first scraped the catalog (the start of the SLO's history)."""
    import requests

    resp = requests.post(f"{url}/api/v1/query", data={
        "query": 'min_over_time(timestamp(http_requests_total{job="shop",service="catalog",code="200"})[1h:1s])'})
    return float(resp.json()["data"]["result"][0]["value"][1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=250, help="4 SLOs each")
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--per-slo-sample", type=int, default=200)
    parser.add_argument("--warmup", type=float, default=120, help="seconds of clean demo traffic before the outage")
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    setup_django(recreate_database(DB_NAME))
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    result = {"bench": "slo"} | part_cycle(args)
    print(f"cycle: {result['slos']} SLOs in {result['batched_cycle_seconds_median']} s (median of {args.cycles}), "
          f"{result['batched_queries_per_cycle']} queries ({result['batched_queries_per_slo']} per SLO); per-SLO mode "
          f"{result['per_slo_cycle_seconds_scaled_to_all']} s ({result['per_slo_queries_per_slo']} per SLO)", flush=True)
    if not args.skip_demo:
        result |= part_demo(args)
        print(f"demo: 100 % outage → page alert in {result['demo_outage_to_page_seconds']} s "
              f"(predicted {result['demo_predicted_seconds_for_this_history']} s for "
              f"{result['demo_history_seconds_before_outage']} s of history; Workbook "
              f"{result['workbook_seconds_full_hour_history']} s with a full hour)", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
