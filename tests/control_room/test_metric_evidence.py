"""The Metrics evidence panel: real series from Prometheus behind an incident's PromQL alerts, drawn
with uPlot (`data-chart`), the threshold line, the baseline choice, an Explore link; an honest
message when Prometheus fails and the empty state when the incident has no PromQL alert."""
import html as htmllib
import json
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from detection import services
from detection.evaluation import Observation
from detection.models import Alert, AlertState, DetectionRule, RuleKind
from incidents import services as incidents
from incidents.models import Incident, Severity
from investigation import metric_evidence as evidence
from reliability_studio.telemetry.prometheus import (
    PrometheusClient,
    QueryResult,
    Series,
)

from ..support.prometheus import prometheus_available, start_prometheus

pytestmark = pytest.mark.django_db
QUERY = 'up{job="prometheus"}'
GRAFANA = "http://grafana.example:3000"


def charts(page_html: str) -> list[dict]:
    return [json.loads(htmllib.unescape(raw)) for raw in re.findall(r'data-chart="([^"]*)"', page_html)]


def explore_links(page_html: str) -> list[dict]:
    links = []
    for href in re.findall(r'<a class="explore" href="([^"]*)"', page_html):
        query = parse_qs(urlsplit(htmllib.unescape(href)).query)
        links.append(json.loads(query["panes"][0]))
    return links


def make_rule(**fields) -> DetectionRule:
    defaults = {"name": "prometheus up", "kind": RuleKind.THRESHOLD, "query": QUERY, "comparator": ">",
                "threshold": 0.5, "severity": Severity.HIGH, "for_seconds": 0, "recovery_hold_seconds": 0}
    return DetectionRule.objects.create(**(defaults | fields))


@pytest.fixture
def telemetry(settings):
    settings.TELEMETRY_TIMEOUT_SECONDS = 1
    settings.TELEMETRY_RETRIES = 0
    return settings


@pytest.fixture(scope="module")
def prometheus():
    if not prometheus_available():
        pytest.skip("the Debian package prometheus is not installed")
    handle = start_prometheus([], scrape_interval="1s")
    # A few seconds of samples: the incident window's grid (a point every 4 s) must reach past the
    # first scrape, or the honest answer is "no series in the window".
    handle.wait_for_series(f"count_over_time({QUERY}[1m]) > 6")
    yield handle
    handle.stop()


@pytest.mark.slow
def test_incident_page_draws_the_alerts_series_from_prometheus(client, viewer, prometheus, telemetry):
    telemetry.PROMETHEUS_URL = prometheus.url
    rule = make_rule()
    services.evaluate_rule(rule=rule)
    alert = Alert.objects.get(rule=rule)
    assert alert.state == AlertState.FIRING and alert.incident is not None
    telemetry.GRAFANA_URL = GRAFANA  # after the incident exists: no annotation sync queued

    client.force_login(viewer)
    page = client.get(reverse("incidents:detail", args=[alert.incident_id]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Prometheus unavailable" not in body
    [chart] = charts(body)

    x, step = chart["x"], chart["x"][1] - chart["x"][0]
    assert len(x) <= evidence.MAX_POINTS
    assert x[0] <= (alert.incident.started_at - timedelta(minutes=15)).timestamp() < x[0] + 1
    series = {s["label"]: s for s in chart["series"]}
    [observed] = [s for s in chart["series"] if s["label"].startswith("instance=")]
    assert "job=prometheus" in observed["label"]
    # The same range read straight from Prometheus: the chart holds exactly its points.
    truth = PrometheusClient.shared().query_range(QUERY, x[0], x[-1], step)
    [real] = truth.series
    drawn = {t: v for t, v in zip(x, observed["values"]) if v is not None}
    assert drawn and drawn == dict(zip(real.timestamps, real.values))
    assert set(drawn.values()) == {1.0}

    threshold = series["threshold > 0.5"]
    assert threshold["values"] == [0.5] * len(x) and threshold["dash"]
    # A fresh Prometheus has nothing a day earlier: the 15 minutes before the incident are shaded.
    assert chart["shade"] == [x[0], alert.incident.started_at.timestamp()]
    assert not any("1 day earlier" in s["label"] for s in chart["series"])
    assert "No data one day earlier; the shaded part is the 15 minutes before the incident" in body
    assert "prometheus up" in body

    [pane] = [p for p in explore_links(body)[0].values()]
    assert pane["queries"][0]["expr"] == QUERY and pane["datasource"] == "prometheus"
    assert int(pane["range"]["from"]) == x[0] * 1000 and 0 <= int(pane["range"]["to"]) - x[-1] * 1000 < step * 1000

    # The region alone (what htmx fetches on an investigation event) carries the same chart.
    region = client.get(reverse("incidents:region", args=[alert.incident_id, "evidence"])).content.decode()
    assert "<html" not in region and len(charts(region)) == 1


def _incident_from_observation(rule: DetectionRule) -> Incident:
    now = timezone.now()
    services.apply_observations(rule=rule, observations=[Observation({"job": "prometheus", "instance": "x:9090"}, 1.0, True)],
                                now=now)
    return Alert.objects.get(rule=rule).incident


def test_prometheus_down_says_so_and_the_page_still_answers(client, viewer, telemetry):
    telemetry.PROMETHEUS_URL = "http://127.0.0.1:9"
    incident = _incident_from_observation(make_rule())
    client.force_login(viewer)
    page = client.get(reverse("incidents:detail", args=[incident.pk]))
    body = page.content.decode()
    assert page.status_code == 200
    assert "Prometheus unavailable: prometheus" in body and "data-chart" not in body
    assert client.get(reverse("incidents:region", args=[incident.pk, "evidence"])).status_code == 200


def test_incident_without_promql_alerts_keeps_the_empty_state(client, viewer, telemetry):
    telemetry.PROMETHEUS_URL = "http://127.0.0.1:9"  # would fail if it were asked
    incident = incidents.create_incident(title="Manual", severity="high")
    client.force_login(viewer)
    body = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert "No metric evidence collected yet" in body
    assert "Prometheus unavailable" not in body and "data-chart" not in body


class FakePrometheus:
    """Answers range queries from a function of the window start (no network)."""

    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def query_range(self, query, start, end, step):
        self.calls.append((query, start, end, step))
        return self.answer(start, end, step)


def test_a_day_earlier_is_the_baseline_when_prometheus_has_it(monkeypatch, telemetry):
    rule = make_rule(name="errors", threshold=None, kind=RuleKind.ANOMALY)
    incident = _incident_from_observation(rule)
    incident_start = incident.started_at.timestamp()

    def answer(start, end, step):
        earlier = end < incident_start - 3600
        stamps = list(range(start, end + 1, step))
        value = 2.0 if earlier else 5.0
        other = Series({"job": "other", "instance": "x:9090"}, stamps, [9.0] * len(stamps))
        return QueryResult("matrix", series=[Series({"__name__": "up", "job": "prometheus", "instance": "x:9090"},
                                                    stamps, [value] * len(stamps)), other])

    fake = FakePrometheus(answer)
    monkeypatch.setattr(PrometheusClient, "shared", classmethod(lambda cls, settings=None: fake))
    [item] = evidence.metric_evidence(incident)
    chart = item["chart"]
    assert len(fake.calls) == 2 and fake.calls[1][1] == fake.calls[0][1] - 86400
    labels = [s["label"] for s in chart["series"]]
    assert labels == ["instance=x:9090, job=prometheus", "instance=x:9090, job=prometheus (1 day earlier)"]
    assert set(chart["series"][0]["values"]) == {5.0} and set(chart["series"][1]["values"]) == {2.0}
    assert "shade" not in chart and item["baseline"].startswith("Baseline (dashed): the same window one day earlier")
    assert item["explore_url"] == "" and len(chart["x"]) <= evidence.MAX_POINTS


def test_a_refused_query_is_shown_on_its_chart(monkeypatch, telemetry):
    from reliability_studio.telemetry.errors import PrometheusError

    incident = _incident_from_observation(make_rule())

    class Refusing:
        def query_range(self, *args):
            raise PrometheusError("parse error: unexpected end of input", status=400, kind="bad_data")

    monkeypatch.setattr(PrometheusClient, "shared", classmethod(lambda cls, settings=None: Refusing()))
    [item] = evidence.metric_evidence(incident)
    assert item["chart"] is None and item["refused"]
    assert item["error"] == "Prometheus refused the query: parse error: unexpected end of input"
