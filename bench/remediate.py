"""The closed loop, timed, on a running stack of its own (bench/common.py Stack: demo shop,
Prometheus, Celery worker and beat evaluating the default rules, daphne).

    .venv/bin/python bench/remediate.py [--n 2] [--services payment,checkout,catalog] [--scrape 2s]

The demo runbook (runbooks/demo.yaml) is loaded and, for the bench only, its steps may run by
themselves (automatic, any confidence): a person's approval would measure the person. For each
fault (error rate 0.5 on a service) it records the stages from the database's own timestamps:

    injected → incident opened → action proposed → executed → verified effective → incident resolved

and prints the seconds per stage with p50 over all faults. The reopen window is 0 so every fault
opens its own incident; the auto-resolve hold is 1 s so "resolved" follows detection's recovery.
Waits poll the database with bounds. Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import time

from common import Stack, percentile

DB_NAME = "rs_bench_remediate"
STAGES = ("open", "propose", "execute", "verify", "resolve", "total")


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")


def _seconds_of_data(prometheus_url: str, scrape: str) -> float:
    """How many seconds of payment samples Prometheus holds (up to a minute)."""
    import requests

    answer = requests.get(f"{prometheus_url}/api/v1/query", timeout=5,
                          params={"query": 'max(count_over_time(http_requests_total{service="payment"}[60s]))'}).json()
    result = (answer.get("data") or {}).get("result") or []
    return float(result[0]["value"][1]) * float(scrape.rstrip("s")) if result else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description="Seconds per stage of automatic remediation on a real stack")
    parser.add_argument("--n", type=int, default=2, help="faults per service")
    parser.add_argument("--services", default="payment,checkout,catalog")
    parser.add_argument("--scrape", default="2s", help="Prometheus scrape interval")
    parser.add_argument("--rate", type=float, default=0.5, help="injected error rate")
    parser.add_argument("--verify-seconds", type=int, default=90, help="verification window of each step")
    args = parser.parse_args()

    stack = Stack(DB_NAME, scrape=args.scrape, rps=20, DETECTION_REOPEN_WINDOW_SECONDS="0",
                  DETECTION_AUTO_RESOLVE_HOLD="critical=1,high=1,medium=1,low=1",
                  INVESTIGATION_RATE_WINDOW="10s", LOKI_URL="", TEMPO_URL="", GRAFANA_URL="",
                  REMEDIATION_RATE_LIMIT_COUNT="1000", REMEDIATION_BREAKER_FAILURES="1000")
    from django.core.management import call_command

    from detection.chaos import ChaosClient
    from detection.firedrill import quiet_period
    from incidents.models import Incident, Status
    from remediation.models import Action, Runbook, Verification

    rows = []
    try:
        call_command("load_runbooks", "runbooks", verbosity=0)
        runbook = Runbook.objects.get(name="demo-recover")
        runbook.steps = [{**step, "automatic": True, "auto_min_confidence": 0.0, "verify_seconds": args.verify_seconds}
                         for step in runbook.steps]
        runbook.save()
        Runbook.objects.exclude(pk=runbook.pk).update(enabled=False)
        chaos = ChaosClient(stack.shop.control_url)
        stack.prometheus.wait_for_series('http_requests_total{service="payment"}', timeout=60)
        # The default rules' 30 s rate windows must hold healthy traffic before the first fault.
        wait_for(lambda: _seconds_of_data(stack.prometheus.url, args.scrape) >= 35, 90, "35 s of healthy traffic in Prometheus")
        for i in range(args.n):
            for service in args.services.split(","):
                quiet_period(300)
                chaos.recover()
                known = set(Incident.objects.values_list("pk", flat=True))
                injected_wall = time.time()
                chaos.fail(service, args.rate)
                incident = wait_for(lambda: Incident.objects.exclude(pk__in=known).order_by("id").first(), 120,
                                    f"an incident for {service}")
                effective = wait_for(lambda: Action.objects.filter(incident=incident,
                                                                    verification=Verification.EFFECTIVE).first()
                                     or None, 60 + 3 * args.verify_seconds, "an effective action")
                incident = wait_for(lambda: Incident.objects.filter(pk=incident.pk, status=Status.RESOLVED).first(),
                                    180, "the incident to resolve")
                first = Action.objects.filter(incident=incident).order_by("created_at", "id").first()
                opened = incident.detected_at.timestamp()
                row = {
                    "service": service,
                    "target": effective.target,
                    "steps": Action.objects.filter(incident=incident).count(),
                    "open": opened - injected_wall,
                    "propose": first.created_at.timestamp() - opened,
                    "execute": effective.finished_at.timestamp() - first.created_at.timestamp(),
                    "verify": effective.verified_at.timestamp() - effective.finished_at.timestamp(),
                    "resolve": incident.resolved_at.timestamp() - effective.verified_at.timestamp(),
                    "total": incident.resolved_at.timestamp() - injected_wall,
                }
                rows.append(row)
                print(f"#{i + 1} {service:<9} → {row['target']:<14} steps {row['steps']}  "
                      + "  ".join(f"{k} {row[k]:6.1f}s" for k in STAGES), flush=True)
    finally:
        try:
            ChaosClient(stack.shop.control_url).recover()
        except Exception:  # noqa: BLE001 - the stack is going down anyway
            pass
        stack.stop()

    summary = {"faults": len(rows), "scrape_interval": args.scrape, "error_rate": args.rate,
               "first_step_effective": sum(r["steps"] == 1 for r in rows)}
    print(f"\n{'stage':<8} {'p50 s':>7} {'max s':>7}")
    for stage in STAGES:
        values = [r[stage] for r in rows]
        summary[f"{stage}_p50_s"] = round(percentile(values, 50), 1)
        summary[f"{stage}_max_s"] = round(max(values), 1) if values else None
        print(f"{stage:<8} {summary[f'{stage}_p50_s']:>7} {summary[f'{stage}_max_s']:>7}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
