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

    .venv/bin/python bench/remediate.py --compare [--n 2] [--human-response 300] [--auto-min-confidence 0.8]

runs the product's own fire drill (`manage.py firedrill --compare-remediation`) on the same stack
instead: each demo fault (detection.firedrill.DEFAULT_FAULTS, or --fault …) with automatic remediation allowed —
the demo runbook's steps made `automatic` at the given confidence threshold (the product's default
0.8) — and without (the kill switch on; the drill lifts the fault --human-response s after
detection, as a person would), and prints MTTR (injected → resolved) for both, per fault and p50.
Rate limit and breaker keep their defaults there, so the guardrails act as in production.
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
    parser.add_argument("--compare", action="store_true",
                        help="MTTR with and without automatic remediation, through the product's fire drill")
    parser.add_argument("--human-response", type=float, default=None,
                        help="--compare: seconds after detection at which the drill lifts a fault (the person)")
    parser.add_argument("--fault", action="append", default=[],
                        help="--compare: error:SERVICE:RATE | latency:SERVICE:MS | crash:SERVICE (default: the demo faults)")
    parser.add_argument("--auto-min-confidence", type=float, default=0.8,
                        help="--compare: hypothesis confidence from which the demo runbook's steps run by themselves")
    args = parser.parse_args()
    if args.compare:
        return compare(args)

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


def compare(args) -> None:
    """The fire drill's MTTR comparison on a stack of its own; its last line (JSON) is ours."""
    import io

    # The investigation's window lead as in bench/investigate.py: the drill spaces faults by it + 15 s.
    stack = Stack(DB_NAME, scrape=args.scrape, rps=20, DETECTION_REOPEN_WINDOW_SECONDS="0",
                  DETECTION_AUTO_RESOLVE_HOLD="critical=1,high=1,medium=1,low=1", INVESTIGATION_WINDOW_LEAD_SECONDS="60",
                  INVESTIGATION_RATE_WINDOW="10s", LOKI_URL="", TEMPO_URL="", GRAFANA_URL="")
    from django.conf import settings
    from django.core.management import call_command

    from detection.firedrill import HUMAN_RESPONSE_SECONDS
    from remediation.models import Runbook

    human_response = HUMAN_RESPONSE_SECONDS if args.human_response is None else args.human_response
    out = io.StringIO()
    try:
        settings.DEMO_CONTROL_URL = stack.shop.control_url  # this process runs the drill
        settings.INVESTIGATION_WINDOW_LEAD_SECONDS = 60
        call_command("load_runbooks", "runbooks", verbosity=0)
        runbook = Runbook.objects.get(name="demo-recover")
        runbook.steps = [{**step, "automatic": True, "auto_min_confidence": args.auto_min_confidence,
                          "verify_seconds": args.verify_seconds} for step in runbook.steps]
        runbook.save()
        Runbook.objects.exclude(pk=runbook.pk).update(enabled=False)
        stack.prometheus.wait_for_series('http_requests_total{service="payment"}', timeout=60)
        wait_for(lambda: _seconds_of_data(stack.prometheus.url, args.scrape) >= 35, 90, "35 s of healthy traffic in Prometheus")

        class Tee(io.StringIO):
            def write(self, text):
                print(text, end="", flush=True)
                return out.write(text)

        faults = [option for fault in args.fault for option in ("--fault", fault)]
        call_command("firedrill", "--compare-remediation", "--n", str(args.n), "--human-response", str(human_response),
                     "--resolve-timeout", "300", *faults, stdout=Tee())
    finally:
        stack.stop()
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    summary.update(scrape_interval=args.scrape, auto_min_confidence=args.auto_min_confidence,
                   verify_seconds=args.verify_seconds)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
