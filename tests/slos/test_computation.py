"""SLIs, budgets and burn rates computed against a real Prometheus holding backfilled series
with known error ratios: every value within 0.1 % of the analytic one."""
import socket
from datetime import datetime, timezone

import pytest

from detection.models import Alert
from incidents.models import Incident
from slos import services, windows
from slos.models import SLIKind, SLOStatus

from .conftest import BURST, D, EDGE_BURST, END, H, M, make_slo, needs_prometheus

pytestmark = [pytest.mark.slow, pytest.mark.django_db, needs_prometheus]
REL = 1e-3  # 0.1 %


def at(t):
    return datetime.fromtimestamp(t, tz=timezone.utc)


def recompute(*slos, t=END, **kwargs):
    stats = services.recompute_slos(slos=list(slos), now=at(t), **kwargs)
    for slo in slos:
        slo.refresh_from_db()
    return stats


def test_sli_budget_and_burn_match_the_analytic_values(prom):
    slo = make_slo("steady")  # 0.05 % errors, 99.9 % over 30 d
    recompute(slo)
    assert slo.status == SLOStatus.HEALTHY and not slo.stale
    assert slo.total_events == pytest.approx(10 * 30 * D, rel=REL)
    assert slo.sli == pytest.approx(0.9995, rel=REL)
    assert 1 - slo.budget_remaining == pytest.approx(0.5, rel=REL)  # consumed: half the budget
    assert (1 - slo.budget_remaining) * slo.budget_minutes == pytest.approx(21.6, rel=REL)
    for window in windows.BURN_WINDOWS:
        assert slo.burn_rates[window] == pytest.approx(0.5, rel=REL), window
    # At 0.5× the remaining half lasts a whole window.
    assert slo.forecast_seconds == pytest.approx(30 * D, rel=REL)


def test_a_burst_counts_as_events_not_as_an_average_of_percentages(prom):
    slo = make_slo("bursty")  # 0.02 % errors, plus 10 % for 2 h ten days ago
    recompute(slo)
    burst = BURST[1] - BURST[0]
    expected_ratio = (0.0002 * (30 * D - burst) + 0.1 * burst) / (30 * D)
    assert 1 - slo.sli == pytest.approx(expected_ratio, rel=REL)
    assert 1 - slo.budget_remaining == pytest.approx(expected_ratio / 0.001, rel=REL)
    assert slo.burn_rates["1h"] == pytest.approx(0.2, rel=REL)


def test_latency_sli_from_histogram_buckets(prom):
    slo = make_slo("slow", name="slow latency", sli_kind=SLIKind.LATENCY, latency_threshold_seconds=0.5, objective=99)
    recompute(slo)
    assert slo.sli == pytest.approx(0.997, rel=REL)
    assert 1 - slo.budget_remaining == pytest.approx(0.3, rel=REL)
    assert slo.burn_rates["5m"] == pytest.approx(0.3, rel=REL)


def test_custom_sli(prom):
    slo = make_slo("steady", name="steady custom", sli_kind=SLIKind.CUSTOM, selector="",
                   good_query='sum(increase(http_requests_total{service="steady",code="200"}[$window]))',
                   total_query='sum(increase(http_requests_total{service="steady"}[$window]))')
    recompute(slo)
    assert slo.sli == pytest.approx(0.9995, rel=REL)


def test_no_data_is_no_data_not_100_percent(prom):
    slo = make_slo("ghost")
    recompute(slo)
    assert slo.status == SLOStatus.NO_DATA
    assert slo.sli is None and slo.budget_remaining is None
    assert set(slo.burn_rates.values()) == {None}
    assert not Alert.objects.exists()


def test_zero_traffic_burns_nothing(prom):
    slo = make_slo("idle")
    recompute(slo)
    assert slo.status == SLOStatus.HEALTHY
    assert slo.total_events == 0 and slo.sli is None  # "no traffic", not 100 %
    assert slo.budget_remaining == 1 and slo.burn_rates["1h"] == 0


def test_window_edges(prom):
    seven = make_slo("edge", name="edge 7d", window_days=7)
    eight = make_slo("edge", name="edge 8d", window_days=8)
    burst_events = 10 * (EDGE_BURST[1] - EDGE_BURST[0])
    # At END the burst ended 1 h before the 7-day window starts: outside it, inside 8 days.
    recompute(seven, eight)
    assert seven.total_events - seven.good_events == pytest.approx(0, abs=1e-6)
    assert eight.total_events - eight.good_events == pytest.approx(burst_events, rel=REL)
    # 1.5 h earlier the 7-day window starts half-way through the burst: half of it counts.
    recompute(seven, t=END - 90 * M)
    assert seven.total_events - seven.good_events == pytest.approx(burst_events / 2, rel=REL)
    assert seven.total_events == pytest.approx(10 * 7 * D, rel=REL)


def test_batching_gives_the_same_answer_with_far_fewer_queries(prom):
    slos = [make_slo(name) for name in ("steady", "bursty", "burn1", "idle", "edge")]
    batched = recompute(*slos)
    values = {s.pk: (s.sli, s.budget_remaining, dict(s.burn_rates)) for s in slos}
    single = recompute(*slos, batch=False)
    for s in slos:
        sli, remaining, burn = values[s.pk]
        assert s.sli == pytest.approx(sli, rel=1e-9) if sli is not None else s.sli is None
        assert s.budget_remaining == pytest.approx(remaining, rel=1e-9)
        assert s.burn_rates == pytest.approx(burn, rel=1e-9)
    # 7 burn windows + the 30-day period: one query each for the batch, per SLO otherwise.
    assert batched.queries == 8
    assert single.queries == 8 * len(slos)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_prometheus_down_leaves_the_last_value_stale_and_no_false_alert(prom, settings):
    slo = make_slo("burn15")
    recompute(slo, t=END - 3 * H + 70 * M)  # 70 min into a 15× burn: the page alert fires
    assert "page_fast" in slo.alert_rows
    alert = Alert.objects.get(fingerprint=f"slo:{slo.pk}")
    assert alert.state == "firing"
    remaining, incidents = slo.budget_remaining, Incident.objects.count()

    settings.PROMETHEUS_URL = f"http://127.0.0.1:{_closed_port()}"
    stats = recompute(slo, t=END)  # the burn has ended by now, but nobody can tell
    assert stats.failed == 1
    assert slo.stale and "127.0.0.1" in slo.last_error
    assert slo.budget_remaining == remaining and slo.status == SLOStatus.CRITICAL  # last values kept
    alert.refresh_from_db()
    assert alert.state == "firing"  # neither resolved nor re-opened on missing data
    assert Incident.objects.count() == incidents

    settings.PROMETHEUS_URL = prom.url
    recompute(slo, t=END)
    assert not slo.stale and slo.last_error == ""
