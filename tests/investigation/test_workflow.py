"""The investigation workflow: triggers, collectors within deadlines, idempotent re-runs, and a real
`chaos fail payment` against the demo shop and a real Prometheus."""
from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from datetime import timedelta

import pytest
from django.utils import timezone

from detection.chaos import ChaosClient
from incidents import hooks
from incidents import services as incidents
from incidents.models import Severity
from investigation import services
from investigation.models import (
    Evidence,
    EvidenceKind,
    EvidenceStatus,
    Hypothesis,
    InvestigationRun,
    RunStatus,
    StepState,
    Trigger,
)

from .factories import ChangeFactory

pytestmark = pytest.mark.django_db


def open_incident(catalog, *, primary="frontend", affected=("frontend", "checkout", "payment"), started_at=None):
    return incidents.create_incident(
        title=f"High error ratio on {primary}", severity=Severity.CRITICAL, source="rule",
        fingerprint=f"test:{primary}:{time.monotonic_ns()}", primary_service=catalog[primary],
        affected_services=[catalog[s] for s in affected], started_at=started_at, actor="detection")


def steps(run):
    return {s["name"]: s["state"] for s in run.steps}


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def prom_value(url: str, promql: str) -> float | None:
    request = urllib.request.Request(f"{url}/api/v1/query", data=urllib.parse.urlencode({"query": promql}).encode())
    with urllib.request.urlopen(request, timeout=2) as resp:
        result = json.load(resp)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


# -- sources down, hanging, not configured -------------------------------------------------------------

def test_unreachable_prometheus_becomes_unavailable_evidence_and_a_partial_run(
        investigation_settings, demo_catalog, closed_port_url, django_capture_on_commit_callbacks):
    investigation_settings.PROMETHEUS_URL = closed_port_url
    incident = open_incident(demo_catalog)
    run = services.start_investigation(incident=incident, trigger=Trigger.MANUAL, queue=False)
    run = services.execute_run(run.pk)

    assert run.status == RunStatus.PARTIAL
    assert steps(run)["metrics"] == StepState.UNAVAILABLE
    assert steps(run)["logs"] == StepState.NOT_CONFIGURED  # not configured does not make it partial...
    down = Evidence.objects.get(run=run, kind=EvidenceKind.METRICS, service="")
    assert down.status == EvidenceStatus.UNAVAILABLE and "cannot connect" in down.finding
    assert Evidence.objects.filter(run=run, kind=EvidenceKind.LOGS, status=EvidenceStatus.NOT_CONFIGURED).exists()
    assert "prometheus (unavailable)" in run.summary and "loki (not configured)" in run.summary
    assert not Hypothesis.objects.filter(incident=incident).exists(), "nothing is invented"


def test_only_unconfigured_sources_missing_is_a_complete_run(investigation_settings, demo_catalog):
    investigation_settings.PROMETHEUS_URL = ""
    run = services.start_investigation(incident=open_incident(demo_catalog), trigger=Trigger.MANUAL, queue=False)
    run = services.execute_run(run.pk)
    assert run.status == RunStatus.COMPLETE
    assert steps(run)["metrics"] == StepState.NOT_CONFIGURED
    item = run.evidence.get(kind=EvidenceKind.METRICS)
    assert item.status == EvidenceStatus.NOT_CONFIGURED and "PROMETHEUS_URL" in item.finding


def test_hanging_source_times_out_within_its_deadline_and_the_run_completes(
        investigation_settings, demo_catalog, hanging_server):
    investigation_settings.PROMETHEUS_URL = hanging_server.url
    investigation_settings.TELEMETRY_TIMEOUT_SECONDS = 20  # the client would wait; the deadline does not
    investigation_settings.INVESTIGATION_COLLECTOR_TIMEOUT_SECONDS = 0.5
    run = services.start_investigation(incident=open_incident(demo_catalog), trigger=Trigger.MANUAL, queue=False)
    began = time.monotonic()
    run = services.execute_run(run.pk)
    took = time.monotonic() - began

    assert hanging_server.requests > 0, "the collector really asked the hanging source"
    assert took < 3, f"the run waited {took:.1f}s for a source with a 0.5 s deadline"
    assert run.status == RunStatus.PARTIAL
    assert steps(run)["metrics"] == StepState.TIMED_OUT
    timed_out = run.evidence.filter(kind=EvidenceKind.METRICS, status=EvidenceStatus.TIMED_OUT)
    assert timed_out.exists()
    assert "did not answer" in timed_out.first().finding


def test_each_step_publishes_progress_in_order(investigation_settings, demo_catalog, monkeypatch):
    investigation_settings.PROMETHEUS_URL = ""
    published = []
    monkeypatch.setattr(services.events, "publish",
                        lambda event, data, incident_id=None: published.append((event, dict(data))))
    run = services.start_investigation(incident=open_incident(demo_catalog), trigger=Trigger.MANUAL, queue=False)
    services.execute_run(run.pk)
    progress = [(d["step"], d["status"]) for e, d in published if e == "investigation.progress"]
    assert progress[0] == ("queued", "queued")
    assert progress[-1] == ("done", "complete")
    order = [step for step, _ in progress]
    for earlier, later in [("scoping", "metrics"), ("metrics", "ranking"), ("changes", "ranking"),
                           ("ranking", "summarising"), ("summarising", "done")]:
        assert order.index(earlier) < order.index(later)
    assert all({"incident", "run", "status", "steps"} <= set(d) for e, d in published if e == "investigation.progress")
    assert any(e == "investigation.updated" for e, _ in published)


# -- idempotency ---------------------------------------------------------------------------------------

def test_executing_a_run_twice_never_duplicates_evidence(investigation_settings, demo_catalog, closed_port_url):
    investigation_settings.PROMETHEUS_URL = closed_port_url
    catalog = demo_catalog
    ChangeFactory(service=catalog["payment"], occurred_at=timezone.now() - timedelta(minutes=2), version="v2")
    run = services.start_investigation(incident=open_incident(catalog), trigger=Trigger.MANUAL, queue=False)
    services.execute_run(run.pk)
    first = sorted(Evidence.objects.filter(run=run).values_list("kind", "source", "service", "query_hash"))

    assert services.execute_run(run.pk).attempts == 1, "a finished run is left alone"
    # A worker died mid-run: the row says running, evidence is half there. The redelivered task resumes.
    InvestigationRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, finished_at=None)
    resumed = services.execute_run(run.pk)
    assert resumed.status == RunStatus.PARTIAL and resumed.attempts == 2
    again = sorted(Evidence.objects.filter(run=run).values_list("kind", "source", "service", "query_hash"))
    assert again == first and len(first) == len(set(first))
    assert Evidence.objects.filter(run=run, kind=EvidenceKind.CHANGES, service="payment").count() == 1


def test_a_run_that_keeps_killing_its_worker_is_given_up(investigation_settings, demo_catalog):
    run = services.start_investigation(incident=open_incident(demo_catalog), trigger=Trigger.MANUAL, queue=False)
    InvestigationRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, attempts=3)
    run = services.execute_run(run.pk)
    assert run.status == RunStatus.FAILED and "gave up after 3 attempts" in run.error


def test_the_same_trigger_twice_makes_one_run(investigation_settings, demo_catalog):
    incident = open_incident(demo_catalog)
    first = services.start_investigation(incident=incident, trigger=Trigger.OPENED, trigger_key="opened", queue=False)
    second = services.start_investigation(incident=incident, trigger=Trigger.OPENED, trigger_key="opened", queue=False)
    assert first.pk == second.pk
    manual = [services.start_investigation(incident=incident, trigger=Trigger.MANUAL, queue=False) for _ in range(2)]
    assert manual[0].pk != manual[1].pk, "a re-run on demand is a new run"
    assert InvestigationRun.objects.filter(incident=incident).count() == 3


@pytest.mark.django_db(transaction=True)
def test_opening_an_incident_runs_one_investigation_by_itself(investigation_settings, demo_catalog):
    investigation_settings.PROMETHEUS_URL = ""
    incident = open_incident(demo_catalog)  # commits: the hook queues the run, eager Celery runs it
    run = InvestigationRun.objects.get(incident=incident)
    assert (run.trigger, run.trigger_key, run.status) == (Trigger.OPENED, "opened", RunStatus.COMPLETE)
    hooks.incident_opened.send_robust(sender=None, incident_id=incident.pk)  # a duplicated delivery
    assert InvestigationRun.objects.filter(incident=incident).count() == 1

    incidents.transition_incident(incident=incident, to="resolved", actor="detection")
    incidents.transition_incident(incident=incident, to="open", actor="detection")
    assert InvestigationRun.objects.filter(incident=incident, trigger_key="reopened:1").exists()


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_joining_services_makes_one_run(investigation_settings, demo_catalog, monkeypatch):
    investigation_settings.PROMETHEUS_URL = ""
    investigation_settings.INVESTIGATION_JOIN_DEBOUNCE_SECONDS = 3600  # one bucket for the whole test
    incident = open_incident(demo_catalog, primary="catalog", affected=("catalog",))
    queued = []
    monkeypatch.setattr(services.tasks.run_investigation, "apply_async",
                        lambda args, **options: queued.append((args, options)))
    for slug in ("frontend", "checkout", "payment"):
        hooks.services_joined.send_robust(sender=None, incident_id=incident.pk, service_ids=[demo_catalog[slug].pk])
    joined = InvestigationRun.objects.filter(incident=incident, trigger=Trigger.SERVICE_JOINED)
    assert joined.count() == 1 and joined.get().trigger_key.startswith("joined:")
    assert len(queued) == 1 and 0 < queued[0][1]["countdown"] <= 3600, "started at the end of the debounce"


def test_joins_are_skipped_when_a_queued_or_running_run_covers_them(investigation_settings, demo_catalog):
    incident = open_incident(demo_catalog, primary="checkout", affected=("checkout",))
    queued = services.start_investigation(incident=incident, trigger=Trigger.OPENED, trigger_key="opened", queue=False)
    assert services.investigate_joined_services(incident_id=incident.pk, service_ids=[demo_catalog["payment"].pk]) is None
    # Running, and payment already in its scope (checkout's callee): still covered.
    queued.status, queued.scope = RunStatus.RUNNING, {"services": [{"slug": "checkout"}, {"slug": "payment"}]}
    queued.save()
    assert services.investigate_joined_services(incident_id=incident.pk, service_ids=[demo_catalog["payment"].pk]) is None
    # Finished: a join after it needs a fresh look.
    queued.status = RunStatus.COMPLETE
    queued.save()
    run = services.investigate_joined_services(incident_id=incident.pk, service_ids=[demo_catalog["payment"].pk])
    assert run is not None and run.trigger == Trigger.SERVICE_JOINED


# -- scope ----------------------------------------------------------------------------------------------

def test_scope_is_the_incident_services_and_two_hops_of_callers_and_callees(investigation_settings, demo_catalog):
    from investigation.runner import build_scope

    incident = open_incident(demo_catalog, primary="payment", affected=("payment",))
    scope = build_scope(incident)
    assert scope.services[0] == "payment" and scope.roles["payment"] == "primary"
    # callers: checkout (1), frontend (2); callees: database (1). catalog is not related.
    assert set(scope.services) == {"payment", "checkout", "frontend", "database"}
    assert ("checkout", "payment") in scope.edges and ("payment", "database") in scope.edges
    assert scope.selectors["payment"]["prometheus.selector"] == 'service="payment"'
    assert scope.baseline_end == scope.window_start
    assert scope.baseline_end - scope.baseline_start == scope.window_end - scope.window_start


# -- the real thing -----------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_chaos_fail_payment_is_investigated_by_itself_and_names_payment(investigation_settings, shop_prometheus):
    from django.core.management import call_command

    from incidents.models import Service

    shop, prometheus, started = shop_prometheus
    investigation_settings.PROMETHEUS_URL = prometheus.url
    call_command("load_catalog", "demo/catalog.yaml", verbosity=0)
    catalog = {s.slug: s for s in Service.objects.all()}
    # A steady baseline first (the window's lead is 15 s and the baseline as long again).
    wait_for(lambda: (prom_value(prometheus.url, 'count_over_time(up{service="payment"}[1m])') or
                      prom_value(prometheus.url, 'count_over_time(up{job="shop"}[1m])') or 0) >= 25,
             40, "25 s of scrapes")
    chaos = ChaosClient(shop.control_url)
    chaos.fail("payment", 0.5)
    injected = timezone.now()
    try:
        ratio = ('sum(rate(http_requests_total{service="payment",code=~"5.."}[5s])) '
                 '/ sum(rate(http_requests_total{service="payment"}[5s]))')
        wait_for(lambda: (prom_value(prometheus.url, ratio) or 0) > 0.2, 20, "payment's error ratio to rise")
        wait_for(lambda: (prom_value(prometheus.url, f'count_over_time(({ratio} > 0.2)[30s:1s])') or 0) >= 6, 20,
                 "a few seconds of the fault in Prometheus")
        incident = open_incident(catalog, started_at=injected)  # as detection would: frontend first
    finally:
        chaos.recover()

    run = InvestigationRun.objects.get(incident=incident, trigger_key="opened")
    assert run.status == RunStatus.COMPLETE, run.steps
    assert run.duration_seconds < 5
    top = Hypothesis.objects.filter(incident=incident).order_by("rank").first()
    findings = [(e.service, e.status, e.finding) for e in run.evidence.all()]
    assert top is not None and top.service == "payment", (run.ranking, findings, run.scope, run.window_start,
                                                          run.window_end, run.baseline_start)
    assert run.ranking[0]["service"] == "payment"
    error_series = top.evidence.filter(kind=EvidenceKind.METRICS, service="payment", snapshot__metric="error_ratio")
    assert error_series.exists(), (list(Hypothesis.objects.values("id", "kind", "service", "run_id", "rank")),
                                   Hypothesis.evidence.through.objects.count(), list(InvestigationRun.objects.values("id", "trigger_key")),
                                   [(e.id, e.status, e.service, e.score) for e in Evidence.objects.all()])
    snapshot = error_series.get().snapshot
    assert max(v for v in snapshot["values"] if v is not None) > 0.2
    assert len(snapshot["values"]) <= investigation_settings.INVESTIGATION_MAX_POINTS
    assert 'service="payment"' in error_series.get().query
    assert "most likely cause: payment" in run.summary
    incident.refresh_from_db()
    assert incident.summary == run.summary, "nobody edited it: the generated summary is written"
    assert run.impact["failed_requests"] is not None and run.impact["failed_requests"] > 0


# -- the workflow over a fixed set of series (no telemetry needed) --------------------------------------

class FixedMetrics:
    """A metrics collector that returns a payment failure on the run's own grid: payment's error
    ratio jumps first, checkout's and frontend's a few seconds later."""

    step, kind, source = "metrics", EvidenceKind.METRICS, "prometheus"

    def configured(self):
        return True

    def collect(self, scope, deadline):
        import numpy as np

        from investigation.collectors.base import CaseInputs, EvidenceItem
        from investigation.collectors.metrics import Grid, change_score

        grid = Grid.for_scope(scope)
        times = grid.times
        onset = scope.detection_time.timestamp() - 20
        rng = np.random.default_rng(7)
        inputs, items = CaseInputs(times=times), []
        lags = {"payment": 0, "checkout": 4, "frontend": 8}
        for service in scope.services:
            lag = lags.get(service)
            ratio = 0.002 + 0.001 * rng.random(times.size)
            if lag is not None:
                ratio = np.where(times >= onset + lag, 0.4 + 0.02 * rng.random(times.size), ratio)
            inputs.series[service] = {"error_ratio": ratio}
            change = change_score(ratio, times, scope.window_start.timestamp(), +1, scope.detection_time.timestamp())
            query = f'error_ratio{{service="{service}"}}'
            items.append(EvidenceItem(self.kind, self.source, service, query,
                                      {"metric": "error_ratio", "start": grid.start, "step": grid.step,
                                       "values": [round(float(v), 4) for v in ratio], **change},
                                      f"{service} error ratio", score=change["score"]))
        return items, inputs


def test_a_synthetic_payment_failure_is_ranked_hypothesised_and_summarised(investigation_settings, demo_catalog,
                                                                           monkeypatch):
    from investigation.collectors import registry

    monkeypatch.setattr(registry, "collectors", lambda: [FixedMetrics(), registry.ChangesCollector()])
    incident = open_incident(demo_catalog, started_at=timezone.now() - timedelta(seconds=40))
    run = services.execute_run(services.start_investigation(incident=incident, trigger=Trigger.MANUAL, queue=False).pk)
    assert run.status == RunStatus.COMPLETE
    assert run.ranking[0]["service"] == "payment", run.ranking
    top = Hypothesis.objects.filter(incident=incident).order_by("rank").first()
    assert top.service == "payment" and top.rank == 1 and 0 < top.confidence <= 1
    assert top.evidence.filter(service="payment", snapshot__metric="error_ratio").exists()
    assert run.summary.startswith("payment errors began") and "before checkout's" in run.summary
    assert "most likely cause: payment" in run.summary


# -- a real worker killed mid-run --------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    found = []
    for task in __import__("os").listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as handle:
            found += [int(p) for p in handle.read().split()]
    return found


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_run_is_redelivered_and_resumes_without_duplicates(
        investigation_settings, demo_catalog, hanging_server):
    import os
    import signal

    from django.db import connection

    from reliability_studio.celery import app

    from ..servers import CeleryWorker, server_env

    env = server_env(connection.settings_dict["NAME"], PROMETHEUS_URL=hanging_server.url, LOKI_URL="", TEMPO_URL="",
                     GRAFANA_URL="", KUBERNETES_KUBECONFIG="", TELEMETRY_RETRIES="0", TELEMETRY_TIMEOUT_SECONDS="60",
                     INVESTIGATION_COLLECTOR_TIMEOUT_SECONDS="60")
    investigation_settings.PROMETHEUS_URL = ""  # this process's own runs (the opened one, eager) ask nothing
    worker = CeleryWorker(env, concurrency=1)
    try:
        incident = open_incident(demo_catalog)  # eager here: the opened run completes in-process
        run = services.start_investigation(incident=incident, trigger=Trigger.MANUAL, queue=False)
        eager, app.conf.task_always_eager = app.conf.task_always_eager, False
        try:
            services.tasks.run_investigation.apply_async((run.pk,), queue=worker.queue)
        finally:
            app.conf.task_always_eager = eager

        # Mid-run: the worker's collector is blocked inside the hanging Prometheus.
        wait_for(lambda: hanging_server.requests > 0 and
                 InvestigationRun.objects.get(pk=run.pk).status == RunStatus.RUNNING, 60, "the run to be collecting")
        children = _children(worker.proc.pid)
        assert children, "the prefork pool has a child running the task"
        for child in children:
            os.kill(child, signal.SIGKILL)
        hanging_server.release()  # the next attempt gets answers (errors) at once

        finished = wait_for(lambda: InvestigationRun.objects.filter(pk=run.pk, status__in=["complete", "partial"]).first(),
                            60, "the redelivered task to finish the run")
        assert finished.attempts == 2, "resumed once, by the redelivered task"
        assert finished.status == RunStatus.PARTIAL  # Prometheus answered 503: unavailable
        keys = list(Evidence.objects.filter(run=run).values_list("kind", "source", "service", "query_hash"))
        assert keys and len(keys) == len(set(keys))
    finally:
        worker.stop()


def test_an_incident_that_names_no_service_looks_at_the_whole_catalog(investigation_settings, demo_catalog):
    from investigation.runner import build_scope

    incident = incidents.create_incident(title="Target down", severity=Severity.HIGH, actor="detection")
    scope = build_scope(incident)
    assert set(scope.services) == set(demo_catalog) and set(scope.roles.values()) == {"neighbour"}
