"""The incident page's investigation panels, rendered from stored rows (Django's test client).

Summary and impact, progress, ranked hypotheses with confirm/reject, and the evidence tabs (metrics,
logs, traces, Kubernetes, changes) with each item's query and Explore link; sources that were not
configured, unavailable or timed out say so. Also the MTTA and blast-radius legend fixes.
"""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from incidents import services as incidents
from incidents.models import Status
from investigation import panels
from investigation.models import (
    EvidenceKind,
    EvidenceStatus,
    HypothesisKind,
    HypothesisStatus,
    InvestigationRun,
    RunStatus,
    StepState,
    Trigger,
    initial_steps,
)

from ..factories import ServiceFactory
from .factories import EvidenceFactory, HypothesisFactory, InvestigationRunFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
EXPLORE = "https://grafana.example/explore?schemaVersion=1&panes=%7B%7D&orgId=1"


@pytest.fixture(autouse=True)
def investigation_panels():
    # The lead wires this into InvestigationConfig.ready(); idempotent, so calling it here is harmless.
    panels.register()


@pytest.fixture
def shop():
    database = ServiceFactory(slug="database")
    payment = ServiceFactory(slug="payment")
    checkout = ServiceFactory(slug="checkout")
    frontend = ServiceFactory(slug="frontend")
    payment.depends_on.add(database)
    checkout.depends_on.add(payment)
    frontend.depends_on.add(checkout)
    return {s.slug: s for s in (database, payment, checkout, frontend)}


@pytest.fixture
def incident(shop):
    return incidents.create_incident(title="Checkout 5xx", severity="critical", primary_service=shop["checkout"],
                                     affected_services=[shop["checkout"], shop["payment"]])


def steps(**states) -> list[dict]:
    out = initial_steps()
    now = timezone.now().isoformat()
    for step in out:
        state, detail = states.get(step["name"], (StepState.DONE, ""))
        step.update(state=state, detail=detail, started_at=now, finished_at=None if state == StepState.RUNNING else now)
    return out


def investigated(incident, *, status=RunStatus.PARTIAL, step_states=None):
    """A finished run with one item of every kind (the collectors' snapshot shapes), two source
    problems and three hypotheses: payment (the cause), checkout, database."""
    now = timezone.now()
    start = int((now - timedelta(minutes=20)).timestamp())
    run = InvestigationRunFactory(
        incident=incident, status=status, trigger=Trigger.OPENED, trigger_key="opened",
        window_start=now - timedelta(minutes=10), window_end=now,
        steps=steps(**(step_states or {"logs": (StepState.DONE, "2 items"),
                                       "traces": (StepState.UNAVAILABLE, "tempo unavailable: connection refused"),
                                       "kubernetes": (StepState.NOT_CONFIGURED, "")})),
        summary="payment's error ratio rose first; checkout and frontend fail through it.",
        impact={"services": ["payment", "checkout", "frontend"], "failed_requests": 1234,
                "failed_requests_query": 'sum(increase(http_requests_total{code=~"5.."}[10m]))', "slos": []},
    )
    metrics = EvidenceFactory(
        run=run, kind=EvidenceKind.METRICS, source="prometheus", service="payment", score=9.5,
        query='sum(rate(http_requests_total{service="payment",code=~"5.."}[30s])) / sum(rate(http_requests_total{service="payment"}[30s]))',
        explore_url=EXPLORE, finding="payment error ratio 0.02 → 0.61 from 10:41:05",
        snapshot={"metric": "error_ratio", "unit": "ratio", "start": start, "step": 15,
                  "values": [0.01] * 40 + [0.6] * 40, "day_before": [0.01] * 80, "series": 1,
                  "baseline_median": 0.01, "window_peak": 0.61, "score": 9.5, "change_point": start + 40 * 15},
        anomaly_start=now - timedelta(minutes=10))
    logs = EvidenceFactory(
        run=run, kind=EvidenceKind.LOGS, source="loki", service="payment", score=6.0,
        query='{service="payment"}', explore_url=EXPLORE,
        finding="new log template 'provider adapter returned <*>' ×412 since 10:41:07",
        snapshot={"selector": '{service="payment"}', "lines": {"window": 900, "baseline": 300},
                  "truncated": {"window": False, "baseline": False},
                  "templates": [{"template": "provider adapter returned <*>", "count": 412, "baseline_count": 0,
                                 "first_seen": (now - timedelta(minutes=9)).isoformat(), "new": True,
                                 "rate_ratio": None, "score": 6.0,
                                 "examples": ["provider adapter returned 502 Bad Gateway"],
                                 "trace_ids": ["4bf92f3577b34da6a3ce929d0e0e4736"]}],
                  "templates_total": 7, "unexpected": {"ignored": True}})
    traces = EvidenceFactory(
        run=run, kind=EvidenceKind.TRACES, source="tempo", service="checkout", score=4.0,
        query='{ resource.service.name = "checkout" && status = error }', explore_url=EXPLORE,
        finding="14 error traces; errors originate in payment in 12",
        snapshot={"traces": [{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "matched": "error",
                              "root_service": "frontend", "root_name": "POST /checkout", "duration_ms": 812.0,
                              "error_services": ["frontend", "checkout", "payment"],
                              "origin": {"service": "payment", "name": "charge", "span_id": "c",
                                         "status_message": "provider 502"},
                              "spans": [{"id": "a", "parent": None, "service": "frontend", "name": "POST /checkout",
                                         "duration_ms": 812.0, "error": True},
                                        {"id": "b", "parent": "a", "service": "checkout", "name": "PlaceOrder",
                                         "duration_ms": 790.0, "error": True},
                                        {"id": "c", "parent": "b", "service": "payment", "name": "charge",
                                         "duration_ms": 640.0, "error": True, "status_message": "provider 502",
                                         "origin": True}]}],
                  "origin_counts": {"payment": 12, "checkout": 2}})
    kubernetes = EvidenceFactory(
        run=run, kind=EvidenceKind.KUBERNETES, source="kubernetes", service="payment", score=3.0,
        query="/api/v1/namespaces/shop/pods?labelSelector=app=payment", explore_url="",
        finding="payment-7d9 restarted 3× in the window",
        snapshot={"pods": [{"name": "payment-7d9-x2", "phase": "Running", "ready": False, "restarts": 3,
                            "waiting_reason": "CrashLoopBackOff", "restarted_in_window": True,
                            "last_termination": {"reason": "OOMKilled", "exit_code": 137}, "node": "node-1"}],
                  "events": [{"reason": "BackOff", "message": "Back-off restarting failed container", "count": 5,
                              "last_seen": now.isoformat(), "object": "Pod/payment-7d9-x2"}],
                  "rollouts": [{"revision": "12", "replicaset": "payment-7d9", "created": now.isoformat(),
                                "images": ["shop/payment:1.4.2"], "in_window": True}]})
    change = EvidenceFactory(
        run=run, kind=EvidenceKind.CHANGES, source="catalog", service="payment", score=0.9,
        query="change:1", explore_url="", finding="deploy of payment v1.4.2 by ci at 10:38:00 UTC",
        snapshot={"kind": "deploy", "source": "api", "service": "payment", "version": "v1.4.2", "author": "ci",
                  "url": "https://ci.example/runs/77", "description": "adapter timeouts lowered",
                  "occurred_at": (now - timedelta(minutes=12)).isoformat()})
    # Whole-source problems, the way the runner stores them: one item without a service.
    EvidenceFactory(run=run, kind=EvidenceKind.TRACES, source="tempo", service="", query="", score=0,
                    status=EvidenceStatus.UNAVAILABLE, finding="tempo unavailable: connection refused", snapshot={})
    EvidenceFactory(run=run, kind=EvidenceKind.KUBERNETES, source="kubernetes", service="", query="", score=0,
                    status=EvidenceStatus.NOT_CONFIGURED, finding="kubernetes is not configured.", snapshot={})
    cause = HypothesisFactory(incident=incident, run=run, kind=HypothesisKind.DEPENDENCY_FAILURE, service="payment",
                              services=["payment", "checkout"], title="payment is failing and checkout fails through it",
                              description="payment's errors started first.", confidence=0.72, rank=1,
                              next_step="Roll back payment v1.4.2.")
    cause.evidence.set([metrics, logs, traces])
    second = HypothesisFactory(incident=incident, run=run, kind=HypothesisKind.CODE_ERROR, service="checkout",
                               title="checkout throws errors of its own", confidence=0.2, rank=2)
    second.evidence.set([traces])
    third = HypothesisFactory(incident=incident, run=run, kind=HypothesisKind.RESOURCE_SATURATION, service="database",
                              title="database saturated", confidence=0.08, rank=3)
    return {"run": run, "cause": cause, "second": second, "third": third, "metrics": metrics, "logs": logs,
            "traces": traces, "kubernetes": kubernetes, "change": change}


def page(client, user, incident) -> str:
    client.force_login(user)
    response = client.get(reverse("incidents:detail", args=[incident.pk]))
    assert response.status_code == 200
    return response.content.decode()


def region(client, user, incident, name) -> str:
    client.force_login(user)
    response = client.get(reverse("incidents:region", args=[incident.pk, name]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body
    return body


def block(html: str, element_id: str) -> str:
    start = html.index(f'id="{element_id}"')
    return html[start:]


# --- the panels ------------------------------------------------------------------------------------

def test_every_region_is_on_the_page_and_refreshes_on_investigation_events(client, viewer, incident):
    investigated(incident)
    html = page(client, viewer, incident)
    for name in ("header", "summary", "investigation", "hypotheses", "evidence", "blast-radius", "slo-impact",
                 "actions", "timeline", "tasks"):
        assert f'id="region-{name}"' in html, name
    triggers = dict(re.findall(r'id="region-([\w-]+)".*?hx-trigger="([^"]+)"', html, re.S))
    assert "rs-investigation-progress" in triggers["investigation"]
    for name in ("summary", "hypotheses", "evidence", "investigation"):
        assert "rs-investigation-updated" in triggers[name] and "rs-reconnected" in triggers[name], name
    assert "rs-incident-updated" in triggers["summary"] and "rs-timeline-appended" in triggers["timeline"]
    # The top hypothesis comes before the evidence, which comes before the picture.
    assert html.index('id="region-hypotheses"') < html.index('id="region-evidence"') < html.index('id="region-blast-radius"')


def test_summary_names_the_likely_cause_and_the_impact(client, viewer, incident):
    investigated(incident)
    html = region(client, viewer, incident, "summary")
    assert "Most likely cause" in html and "payment is failing and checkout fails through it" in html
    assert 'data-testid="cause-service">payment<' in html and "72% confidence" in html
    assert "payment&#x27;s error ratio rose first" in html
    impact = block(html, "impact")
    assert "1,234" in impact or "1234" in impact
    assert "sum(increase(http_requests_total{code=~&quot;5..&quot;}[10m]))" in impact and "data-copy=" in impact
    for slug in ("payment", "checkout", "frontend"):
        assert f'<span class="chip">{slug}</span>' in impact


def test_metrics_tab_draws_the_stored_series_with_baseline_and_change_point(client, viewer, incident):
    rows = investigated(incident)
    html = region(client, viewer, incident, "evidence")
    item = block(html, f"evidence-{rows['metrics'].pk}")
    spec = json.loads(re.search(r'data-chart="([^"]+)"', item).group(1).replace("&quot;", '"'))
    assert len(spec["x"]) == 80 and spec["series"][0]["values"][-1] == 0.6
    assert spec["series"][1]["label"] == "1 day earlier" and spec["series"][1]["dash"] is True
    assert spec["mark"] == rows["metrics"].snapshot["change_point"] and spec["shade"][0] == spec["x"][0]
    assert "baseline median 0.01" in item
    assert "http_requests_total{service=&quot;payment&quot;,code=~&quot;5..&quot;}" in item  # the exact query
    assert f'href="{EXPLORE.replace("&", "&amp;")}"' in item and "Open in Grafana Explore" in item
    assert 'data-copy="#q-evidence-' in item


def test_logs_tab_lists_templates_with_counts_examples_and_traces(client, viewer, incident):
    rows = investigated(incident)
    item = block(region(client, viewer, incident, "evidence"), f"evidence-{rows['logs'].pk}")
    assert "provider adapter returned &lt;*&gt;" in item and ">412<" in item and 'class="badge new">new<' in item
    assert "provider adapter returned 502 Bad Gateway" in item
    assert "4bf92f3577b34da6a3" in item and "1200 lines scanned" in item
    assert "{service=&quot;payment&quot;}" in item and "ignored" not in item


def test_traces_tab_marks_the_span_where_the_error_started(client, viewer, incident):
    rows = investigated(incident)
    item = block(region(client, viewer, incident, "evidence"), f"evidence-{rows['traces'].pk}")
    origin = re.findall(r'<li class="span error origin"[^>]*data-origin="true">(.*?)</li>', item, re.S)
    assert len(origin) == 1 and "payment" in origin[0] and "charge" in origin[0] and "origin of the error" in origin[0]
    assert "error starts in <strong class=\"origin-service\">payment</strong>" in item
    assert "payment ×12" in item and "--depth: 2" in item


def test_kubernetes_and_changes_tabs(client, viewer, incident):
    rows = investigated(incident)
    html = region(client, viewer, incident, "evidence")
    pods = block(html, f"evidence-{rows['kubernetes'].pk}")
    assert "payment-7d9-x2" in pods and "CrashLoopBackOff" in pods and "OOMKilled" in pods and "(exit 137)" in pods
    assert ">3" in pods and "BackOff" in pods and "Back-off restarting failed container" in pods
    assert "shop/payment:1.4.2" in pods and "in the incident window" in pods
    assert "/api/v1/namespaces/shop/pods?labelSelector=app=payment" in pods and "set GRAFANA_URL" in pods
    change = block(html, f"evidence-{rows['change'].pk}")
    assert "v1.4.2" in change and "by ci" in change and 'href="https://ci.example/runs/77"' in change


def test_sources_that_could_not_answer_say_so(client, viewer, incident):
    investigated(incident, step_states={"logs": (StepState.NOT_CONFIGURED, "Loki is not configured."),
                                        "traces": (StepState.UNAVAILABLE, "tempo unavailable: connection refused"),
                                        "kubernetes": (StepState.TIMED_OUT, "kubernetes timed out after 20 s")})
    html = region(client, viewer, incident, "evidence")
    assert "Loki not configured" in html
    assert "Tempo unavailable: connection refused" in html and "tempo unavailable" not in html
    assert "Kubernetes timed out: after 20 s" in html or "Kubernetes timed out" in html
    assert html.count("Tempo unavailable: connection refused") == 1  # the step and its item say it once
    # The tab itself warns, so a responder sees it without opening it.
    assert re.search(r'id="ev-tab-traces"[^>]*class="tab warn"', html)


def test_a_per_service_failure_is_shown_in_its_tab(client, viewer, incident):
    run = investigated(incident)["run"]
    EvidenceFactory(run=run, kind=EvidenceKind.LOGS, source="loki", service="checkout", status=EvidenceStatus.TIMED_OUT,
                    query='{service="checkout"}', finding="Loki query timed out after 5 s", score=0, snapshot={})
    html = region(client, viewer, incident, "evidence")
    assert "checkout: Loki timed out" in html


def test_the_tab_with_the_top_hypothesis_evidence_is_open(client, viewer, incident):
    investigated(incident)
    html = region(client, viewer, incident, "evidence")
    assert re.search(r'id="ev-tab-metrics"[^>]*aria-selected="true"', html)
    assert re.search(r'id="ev-panel-logs"[^>]*hidden', html) and not re.search(r'id="ev-panel-metrics"[^>]*hidden', html)


def test_snapshots_with_missing_or_odd_keys_never_break_the_page(client, viewer, incident):
    run = InvestigationRunFactory(incident=incident, steps=[{"name": "metrics"}, "junk"], impact={"services": [3, None]})
    for kind in EvidenceKind.values:
        EvidenceFactory(run=run, kind=kind, service="payment", snapshot={"series": "nope", "x": 5, "templates": [1, None],
                                                                         "traces": [{"spans": [{"parent": "x"}]}],
                                                                         "pods": "x", "changes": [None]})
        EvidenceFactory(run=run, kind=kind, service="checkout", snapshot={})
    html = page(client, viewer, incident)
    assert 'id="region-evidence"' in html


def test_evidence_panel_reads_snapshots_and_never_asks_prometheus(client, viewer, incident, monkeypatch):
    investigated(incident)

    def refuse(*args, **kwargs):
        raise AssertionError("the evidence panel queried Prometheus")

    monkeypatch.setattr(panels, "metric_evidence", refuse)
    monkeypatch.setattr("reliability_studio.telemetry.prometheus.PrometheusClient.query_range", refuse)
    assert "data-chart" in region(client, viewer, incident, "evidence")
    page(client, viewer, incident)


def test_never_investigated_incident_keeps_the_empty_states(client, viewer, incident):
    html = page(client, viewer, incident)
    assert "No investigation has run for this incident yet" in html
    assert "No hypotheses yet" in html and "No metric evidence collected yet" in html


# --- progress --------------------------------------------------------------------------------------

def test_progress_shows_each_step_of_a_running_run(client, viewer, incident):
    InvestigationRunFactory(incident=incident, status=RunStatus.RUNNING, finished_at=None,
                            steps=steps(logs=(StepState.RUNNING, ""), traces=(StepState.PENDING, ""),
                                        kubernetes=(StepState.NOT_CONFIGURED, "Kubernetes is not configured."),
                                        ranking=(StepState.PENDING, ""), summarising=(StepState.PENDING, "")))
    html = region(client, viewer, incident, "investigation")
    assert 'data-status="running"' in html
    for name, state in (("scoping", "done"), ("metrics", "done"), ("logs", "running"), ("traces", "pending"),
                        ("kubernetes", "not_configured"), ("summarising", "pending")):
        assert f'data-step="{name}" data-state="{state}"' in html, name
    assert "Collecting logs" in html and "running…" in html and "Kubernetes is not configured." in html
    assert "Steps of the investigation (4 of 8 done)" in html
    # While it runs, the evidence collected so far is shown (no finished run yet).
    assert "Waiting to collect" in region(client, viewer, incident, "evidence")


def test_finished_run_keeps_its_evidence_while_a_rerun_collects(client, viewer, incident):
    rows = investigated(incident)
    InvestigationRunFactory(incident=incident, status=RunStatus.RUNNING, finished_at=None, steps=steps())
    assert f'id="evidence-{rows["metrics"].pk}"' in region(client, viewer, incident, "evidence")
    assert 'data-status="running"' in region(client, viewer, incident, "investigation")


# --- hypotheses ------------------------------------------------------------------------------------

def test_hypotheses_are_ranked_with_confidence_and_evidence(client, viewer, incident):
    rows = investigated(incident)
    html = region(client, viewer, incident, "hypotheses")
    ranked = re.findall(r'id="hypothesis-(\d+)"[^>]*data-rank="(\d)"', html)
    assert ranked == [(str(rows["cause"].pk), "1"), (str(rows["second"].pk), "2"), (str(rows["third"].pk), "3")]
    cause = block(html, f"hypothesis-{rows['cause'].pk}")
    assert "72%" in cause and 'value="0.72"' in cause and "Roll back payment v1.4.2." in cause
    assert f'href="#evidence-{rows["metrics"].pk}"' in cause and "payment error ratio 0.02 → 0.61" in cause
    assert f'href="#evidence-{rows["logs"].pk}"' in cause


def test_responder_confirms_a_hypothesis_and_it_becomes_the_root_cause(client, responder, incident):
    rows = investigated(incident)
    client.force_login(responder)
    url = reverse("investigation:decide", args=[incident.pk, rows["cause"].pk])
    response = client.post(url, {"status": "confirmed"}, **HX)
    assert response.status_code == 200 and "rs-incident-updated" in response["HX-Trigger"]
    rows["cause"].refresh_from_db()
    incident.refresh_from_db()
    assert rows["cause"].status == HypothesisStatus.CONFIRMED and rows["cause"].decided_by == responder
    assert "payment is failing" in incident.root_cause
    assert 'class="badge confirmed">Confirmed<' in response.content.decode()
    assert "Confirmed cause" in region(client, responder, incident, "summary")


def test_rejected_hypothesis_is_struck_collapsed_and_the_rest_re_ranked(client, responder, incident):
    rows = investigated(incident)
    client.force_login(responder)
    response = client.post(reverse("investigation:decide", args=[incident.pk, rows["cause"].pk]),
                           {"status": "rejected", "note": "provider status page is green"}, **HX)
    assert response.status_code == 200
    html = response.content.decode()
    ranked = re.findall(r'id="hypothesis-(\d+)"[^>]*data-rank="(\d)"', html)
    assert ranked[0] == (str(rows["second"].pk), "1") and len(ranked) == 2
    rejected = block(html, "hypotheses-rejected")
    assert rejected.startswith('hypotheses-rejected">') or "<details" in html[:html.index('id="hypotheses-rejected"') + 40]
    assert "Rejected (1)" in rejected and "<s>payment is failing and checkout fails through it</s>" in rejected
    assert "provider status page is green" in rejected
    rows["second"].refresh_from_db()
    assert rows["second"].rank == 1


def test_a_bad_decision_is_a_form_error(client, responder, incident):
    rows = investigated(incident)
    client.force_login(responder)
    response = client.post(reverse("investigation:decide", args=[incident.pk, rows["cause"].pk]), {"status": "maybe"}, **HX)
    assert response.status_code == 422 and "Choose confirm or reject" in response.content.decode()
    other = incidents.create_incident(title="Other", severity="low")
    assert client.post(reverse("investigation:decide", args=[other.pk, rows["cause"].pk]),
                       {"status": "confirmed"}, **HX).status_code == 404


def test_viewer_sees_no_investigation_buttons_and_posts_are_refused(client, viewer, incident):
    rows = investigated(incident)
    html = page(client, viewer, incident)
    assert "data-decide=" not in html and "Re-run investigation" not in html
    assert client.post(reverse("investigation:rerun", args=[incident.pk]), **HX).status_code == 403
    assert client.post(reverse("investigation:decide", args=[incident.pk, rows["cause"].pk]),
                       {"status": "rejected"}, **HX).status_code == 403
    rows["cause"].refresh_from_db()
    assert rows["cause"].status == HypothesisStatus.PROPOSED
    assert InvestigationRun.objects.filter(incident=incident).count() == 1


def test_responder_sees_the_buttons_and_re_runs_the_investigation(client, responder, incident):
    investigated(incident)
    html = page(client, responder, incident)
    assert html.count('data-decide="confirmed"') == 3 and "Re-run investigation" in html
    response = client.post(reverse("investigation:rerun", args=[incident.pk]), **HX)
    assert response.status_code == 200 and response["HX-Trigger"] == "rs-investigation-progress"
    run = InvestigationRun.objects.filter(incident=incident).order_by("-created_at", "-id").first()
    assert run.trigger == Trigger.MANUAL and run.requested_by == responder and run.status == RunStatus.QUEUED
    assert 'data-status="queued"' in response.content.decode()
    plain = client.post(reverse("investigation:rerun", args=[incident.pk]))
    assert plain.status_code == 302 and plain["Location"] == reverse("incidents:detail", args=[incident.pk])


# --- header and blast radius fixes -----------------------------------------------------------------

def _mtta(html: str) -> str:
    start = html.index('id="mtta"')
    return html[start:html.index("</dd>", start)]


def test_unacknowledged_incident_says_so_and_its_mtta_stops_at_resolution(client, viewer, incident):
    mtta = _mtta(region(client, viewer, incident, "header"))
    assert "not acknowledged" in mtta
    # Detection resolves it by itself (a person acting on it would have acknowledged it).
    incidents.transition_incident(incident=incident, to=Status.MITIGATED, actor="detection")
    incidents.transition_incident(incident=incident, to=Status.RESOLVED, actor="detection")
    mtta = _mtta(region(client, viewer, incident, "header"))
    assert "resolved without acknowledgement" in mtta and "data-since" not in mtta  # no clock keeps counting


def test_acknowledged_incident_shows_its_mtta(client, viewer, responder, incident):
    incidents.acknowledge_incident(incident=incident, user=responder)
    mtta = _mtta(region(client, viewer, incident, "header"))
    assert 'class="clock done"' in mtta and "not acknowledged" not in mtta and "data-since" not in mtta


def test_blast_radius_legend_reads_plainly(client, viewer, shop, incident):
    html = region(client, viewer, incident, "blast-radius")
    legend = html[html.index('data-testid="legend-dependent"'):]
    legend = legend[:legend.index("</span>")]
    assert "·hops" not in legend and "-hops" not in legend
    assert "depends on an affected service (1;" in legend and "2 hops away" in legend  # frontend
    alone = incidents.create_incident(title="Frontend", severity="low", primary_service=shop["frontend"])
    html = region(client, viewer, alone, "blast-radius")
    assert "no service depends on the affected ones" in html and "(0," not in html
