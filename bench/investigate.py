"""Time to investigate on a running stack of its own: demo shop, Prometheus scraping every 5 s,
Celery worker and beat evaluating the default rules (bench/common.py Stack).

    .venv/bin/python bench/investigate.py [--rounds 2] [--fault error:payment:0.5 ...]

For each fault (the fire drill's defaults: payment errors, checkout latency, catalog crash, database
errors), N rounds: inject, wait for detection to open the incident, wait for the investigation that
the opening triggered to finish, recover, wait for the incident to resolve by itself. Faults are
spaced by more than the window's lead (--lead, 60 s here), so one fault's tail is the next one's
baseline, not part of its window. Measures:

  - incident opened (its row) → that run finished, seconds (p50/p95; goal p95 ≤ 5 s), with the run's
    own duration and which sources it had (step states);
  - stored evidence per incident (every run of it, snapshot bytes), KB (p50/max);
  - whether the top hypothesis names the injected service.

Loki, Tempo and Kubernetes are not part of this stack: their steps report "not configured". Last
line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import time

from common import Stack, percentile

DB_NAME = "rs_bench_investigate"


def wait_until(predicate, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description="incident opened → investigation complete, on a real stack")
    parser.add_argument("--rounds", type=int, default=2, help="injections per fault")
    parser.add_argument("--fault", action="append", help="error:SERVICE:RATE | latency:SERVICE:MS | crash:SERVICE")
    parser.add_argument("--scrape", default="5s")
    parser.add_argument("--detect-timeout", type=float, default=90)
    parser.add_argument("--lead", type=int, default=60,
                        help="INVESTIGATION_WINDOW_LEAD_SECONDS; faults are spaced by more than it, so the "
                             "previous fault is in the baseline, never in the window")
    args = parser.parse_args()

    stack = Stack(DB_NAME, scrape=args.scrape, DETECTION_REOPEN_WINDOW_SECONDS="0",
                  DETECTION_AUTO_RESOLVE_HOLD="critical=1,high=1,medium=1,low=1",
                  INVESTIGATION_JOIN_DEBOUNCE_SECONDS="5", INVESTIGATION_WINDOW_LEAD_SECONDS=str(args.lead))
    from django.db.models import Sum

    from detection.chaos import ChaosClient
    from detection.firedrill import DEFAULT_FAULTS, Fault, first_firing_since, quiet_period
    from django.utils import timezone
    from incidents.models import Incident, Status
    from investigation.models import Evidence, Hypothesis, InvestigationRun

    faults = [Fault.parse(f) for f in args.fault] if args.fault else DEFAULT_FAULTS
    rows = []
    try:
        chaos = ChaosClient(stack.shop.control_url)
        stack.prometheus.wait_for_series('http_requests_total{service="payment"}', timeout=60)
        time.sleep(40)  # healthy traffic first: the 30 s rate windows and a baseline
        for round_no in range(args.rounds):
            for fault in faults:
                quiet_period(240)
                time.sleep(args.lead + 15)  # the previous fault leaves the next incident window
                injected = timezone.now()
                fault.inject(chaos)
                try:
                    event = wait_until(lambda: first_firing_since(injected), args.detect_timeout, 0.5)
                    if event is None:
                        print(f"{fault}: not detected within {args.detect_timeout:.0f}s", flush=True)
                        continue
                    incident = event.incident
                    opened = wait_until(lambda: InvestigationRun.objects.filter(
                        incident=incident, trigger_key="opened", status__in=["complete", "partial", "failed"]).first(), 60)
                finally:
                    chaos.recover(fault.service)
                if opened is None:
                    print(f"{fault}: {incident.key} opened but its investigation did not finish in 60 s", flush=True)
                    rows.append({"fault": str(fault), "incident": incident.key, "seconds": None})
                    continue
                runs = InvestigationRun.objects.filter(incident=incident)
                wait_until(lambda: not runs.filter(status__in=["queued", "running"]).exists(), 60)
                seconds = (opened.finished_at - incident.created_at).total_seconds()
                evidence_bytes = Evidence.objects.filter(run__incident=incident).aggregate(b=Sum("snapshot_bytes"))["b"] or 0
                top = (Hypothesis.objects.filter(incident=incident).exclude(status="rejected")
                       .order_by("rank", "id").first())
                row = {"fault": str(fault), "incident": incident.key, "seconds": round(seconds, 2),
                       "run_seconds": round(opened.duration_seconds or 0, 2), "status": opened.status,
                       "sources": {s["name"]: s["state"] for s in opened.steps
                                   if s["name"] in ("metrics", "logs", "traces", "kubernetes", "changes")},
                       "runs": runs.count(), "evidence_kb": round(evidence_bytes / 1024, 1),
                       "top_hypothesis": top.service if top else None,
                       "right": bool(top and top.service == fault.service)}
                rows.append(row)
                print(f"#{round_no + 1} {str(fault):<24} {incident.key:<8} opened→investigated {row['seconds']:>5}s "
                      f"(run {row['run_seconds']}s, {row['status']}), {row['runs']} runs, {row['evidence_kb']} KB, "
                      f"top {row['top_hypothesis']} ({'right' if row['right'] else 'WRONG'})", flush=True)
                wait_until(lambda: Incident.objects.filter(pk=incident.pk, status=Status.RESOLVED).exists(), 240, 1.0)
    finally:
        stack.stop()

    done = [r for r in rows if r.get("seconds") is not None]
    seconds = [r["seconds"] for r in done]
    kb = [r["evidence_kb"] for r in done]
    sources = sorted({f"{k}={v}" for r in done for k, v in r["sources"].items()})
    summary = {
        "faults": [str(f) for f in faults], "rounds": args.rounds, "investigations": len(done),
        "not_finished": len(rows) - len(done),
        "opened_to_investigated_p50_s": round(percentile(seconds, 50), 2) if seconds else None,
        "opened_to_investigated_p95_s": round(percentile(seconds, 95), 2) if seconds else None,
        "run_p95_s": round(percentile([r["run_seconds"] for r in done], 95), 2) if done else None,
        "evidence_kb_p50": round(percentile(kb, 50), 1) if kb else None,
        "evidence_kb_max": round(max(kb), 1) if kb else None,
        "top_hypothesis_right": sum(r["right"] for r in done),
        "sources": sources,
        "goal_p95_s": 5.0,
    }
    print(f"\nopened → investigated: p50 {summary['opened_to_investigated_p50_s']}s, "
          f"p95 {summary['opened_to_investigated_p95_s']}s (goal ≤ 5 s); evidence per incident "
          f"p50 {summary['evidence_kb_p50']} KB, max {summary['evidence_kb_max']} KB; top hypothesis right "
          f"{summary['top_hypothesis_right']}/{len(done)}; sources: {', '.join(sources)}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
