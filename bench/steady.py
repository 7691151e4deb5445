"""A steady run of the demo with no faults must open no incident.

    .venv/bin/python bench/steady.py [--minutes 60]

Runs a whole stack of its own (demo shop at 20 requests/s, Prometheus scraping every 5 s, worker
and beat evaluating the default rules, including the anomaly rules) for the given time without
injecting anything, then counts incidents and alerts that fired. The test suite covers the same
property with a simulated hour (tests/detection/test_steady_state.py); this is the real clock.
Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import time

from common import Stack

DB_NAME = "rs_bench_steady"


def main() -> None:
    parser = argparse.ArgumentParser(description="steady demo run: incidents opened without faults")
    parser.add_argument("--minutes", type=float, default=60)
    args = parser.parse_args()
    stack = Stack(DB_NAME)
    try:
        from detection.models import Alert, DetectionRule
        from incidents.models import Incident

        deadline = time.monotonic() + args.minutes * 60
        while time.monotonic() < deadline:
            time.sleep(min(60, max(0, deadline - time.monotonic())))
            print(f"{(args.minutes * 60 - (deadline - time.monotonic())) / 60:5.1f} min: "
                  f"{Incident.objects.count()} incidents, {Alert.objects.filter(firing_since__isnull=False).count()} "
                  f"alerts ever fired", flush=True)
        fired = sorted({f"{a.name} ({a.service.slug if a.service else '-'})"
                        for a in Alert.objects.filter(firing_since__isnull=False).select_related("service")})
        unknown = list(DetectionRule.objects.filter(enabled=True).exclude(health="ok").values_list("name", flat=True))
        result = {"minutes": args.minutes, "incidents": Incident.objects.count(), "alerts_fired": fired,
                  "rules_not_ok": unknown}
    finally:
        stack.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
