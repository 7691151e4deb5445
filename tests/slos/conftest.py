"""One backfilled Prometheus for the SLO tests: days of series with known error ratios.

Times are relative to END (a 5-minute boundary a little before the session starts), so the
analytic value of every window is exact. Scenarios:
  steady  31 d, 10 req/s, 0.05 % errors                      → 99.9 % SLO: half the budget
  bursty  31 d, 0.02 % errors + 10 % for 2 h ten days ago     → closed-form sum
  slow    31 d, 0.3 % of requests over 0.5 s (histogram)     → 99 % latency SLO: 30 % of the budget
  burn15  4 d, clean, then 1.5 % errors (15× a 99.9 % budget) from END−3 h for 90 min
  burn1   4 d, 0.1 % errors throughout (1× a 99.9 % budget)
  idle    31 d, counters present, zero traffic
  edge    9 d, 10 req/s, clean but 100 % errors for the hour ending at END − 7 d − 1 h
"""
from __future__ import annotations

import math
import time

import pytest

from incidents.models import Service
from slos.models import SLO, SLIKind

from .support import Dataset, Segment, ServiceData, start_backfilled_prometheus, tools_available

D, H, M = 86400, 3600, 60
END = math.floor((time.time() - 600) / 300) * 300
BURN15_ONSET = END - 3 * H
BURN15_END = BURN15_ONSET + 90 * M
BURST = (END - 10 * D, END - 10 * D + 2 * H)
EDGE_BURST = (END - 7 * D - 2 * H, END - 7 * D - 1 * H)


def _long(days=31, step=300):
    """Daily samples for old history (few 2-hour TSDB blocks, so backfilling stays fast), dense
    samples for the last 4 days; counts between samples are integrated exactly."""
    return [Segment(END - days * D, END - 4 * D, D), Segment(END - 4 * D, END, step)]


DATASET = Dataset([
    ServiceData("steady", _long(), bad=lambda t: 0.0005),
    ServiceData("bursty", _long(), bad=lambda t: 0.1 if BURST[0] <= t < BURST[1] else 0.0002, extra_times=BURST),
    ServiceData("slow", _long(), slow=lambda t: 0.003),
    ServiceData("burn15", [Segment(END - 4 * D, END - 6 * H, 60), Segment(END - 6 * H, END, 15)], rate=lambda t: 5.0,
                bad=lambda t: 0.015 if BURN15_ONSET <= t < BURN15_END else 0.0),
    ServiceData("burn1", [Segment(END - 4 * D, END, 60)], rate=lambda t: 5.0, bad=lambda t: 0.001),
    ServiceData("idle", _long(), rate=lambda t: 0.0),
    ServiceData("edge", _long(9), bad=lambda t: 1.0 if EDGE_BURST[0] <= t < EDGE_BURST[1] else 0.0,
                extra_times=(*EDGE_BURST, EDGE_BURST[1] - 30 * M, END - 8 * D)),
])

needs_prometheus = pytest.mark.skipif(not tools_available(), reason="the Debian package prometheus is not installed")


@pytest.fixture(scope="session")
def slo_prometheus():
    if not tools_available():
        pytest.skip("the Debian package prometheus is not installed")
    handle = start_backfilled_prometheus(DATASET)
    yield handle
    handle.stop()


@pytest.fixture
def prom(slo_prometheus, settings):
    settings.PROMETHEUS_URL = slo_prometheus.url
    settings.TELEMETRY_TIMEOUT_SECONDS = 5
    settings.TELEMETRY_RETRIES = 0
    settings.TELEMETRY_BREAKER_FAIL_MAX = 1000
    settings.SLO_ALERT_RECOVERY_HOLD_SECONDS = 0
    return slo_prometheus


def make_slo(service: str, **fields) -> SLO:
    svc, _ = Service.objects.get_or_create(slug=service, defaults={"name": service.title()})
    defaults = dict(name=f"{service} availability", sli_kind=SLIKind.AVAILABILITY,
                    selector=f'job="shop",service="{service}"', objective=99.9, window_days=30)
    slo = SLO(service=svc, **(defaults | fields))
    slo.full_clean()
    slo.save()
    return slo
