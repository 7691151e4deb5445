"""Prometheus rules export (Sloth's shape, `promtool check rules`) and OpenSLO v1 import/export."""
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from reliability_studio.telemetry.prometheus import PrometheusClient
from slos import openslo, promql, rules, services
from slos.models import SLO, SLIKind

from .conftest import END, make_slo, needs_prometheus
from .support import promtool_check_rules

pytestmark = [pytest.mark.django_db, needs_prometheus]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slo"
FIELDS = ["slug", "name", "sli_kind", "selector", "metric", "error_matcher", "latency_threshold_seconds", "good_query",
          "total_query", "objective", "window_days", "owner", "description", "labels", "severity_policy", "enabled"]


def catalog():
    return [
        make_slo("checkout", owner="payments", description="5xx-free requests", labels={"tier": "1", "team": "payments"}),
        make_slo("checkout", name="checkout latency", sli_kind=SLIKind.LATENCY, latency_threshold_seconds=0.25,
                 objective=99.5, window_days=28, severity_policy={"page_fast": "high"}),
        make_slo("catalog", name="catalog jobs", sli_kind=SLIKind.CUSTOM, selector="", window_days=7, objective=95,
                 good_query='sum(increase(jobs_total{result="ok"}[$window]))',
                 total_query="sum(increase(jobs_total[$window]))", enabled=False),
    ]


def test_exported_rules_pass_promtool_and_have_sloths_shape(tmp_path):
    slos = catalog()
    text = rules.rules_yaml(slos)
    path = tmp_path / "slo-rules.yaml"
    path.write_text(text)
    done = promtool_check_rules(path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    groups = yaml.safe_load(text)["groups"]
    assert len(groups) == 3 * len(slos)
    sli = groups[0]["rules"]
    assert [r["record"] for r in sli] == [f"slo:sli_error:ratio_rate{w}" for w in
                                          ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")]
    assert {"sloth_id": slos[0].slug, "sloth_service": "checkout", "sloth_window": "5m", "owner": "payments",
            "tier": "1"}.items() <= sli[0]["labels"].items()
    alerts = groups[2]["rules"]
    assert [a["labels"]["sloth_severity"] for a in alerts] == ["page", "ticket"]
    assert "> (14.4 * 0.001)" in alerts[0]["expr"] and "> (6 * 0.001)" in alerts[0]["expr"]
    # 28 days: the thresholds scale (13.44, 5.6).
    latency_alerts = groups[5]["rules"]
    assert "> (13.44 * 0.005)" in latency_alerts[0]["expr"] and "> (5.6 * 0.005)" in latency_alerts[0]["expr"]


@pytest.mark.slow
def test_the_recorded_error_ratio_equals_the_computed_one(prom):
    slo = make_slo("steady")
    services.recompute_slos(slos=[slo], now=datetime.fromtimestamp(END, tz=timezone.utc))
    slo.refresh_from_db()
    result = PrometheusClient.shared().query(promql.error_ratio_query(slo, "30d"), time=END)
    assert result.samples[0].value == pytest.approx(1 - slo.sli, rel=1e-9)


def test_openslo_export_then_import_keeps_every_supported_field(tmp_path):
    slos = catalog()
    before = {s.slug: {f: getattr(s, f) for f in FIELDS} | {"service": s.service.slug} for s in slos}
    path = tmp_path / "openslo.yaml"
    call_command("export_openslo", output=str(path))
    docs = list(yaml.safe_load_all(path.read_text()))
    assert [d["apiVersion"] for d in docs] == ["openslo/v1"] * 3
    first = next(d for d in docs if d["metadata"]["name"] == slos[0].slug)
    assert first["spec"]["objectives"][0]["target"] == 0.999
    assert first["spec"]["timeWindow"] == [{"duration": "30d", "isRolling": True}]
    SLO.objects.all().delete()
    call_command("import_openslo", str(path), no_check_source=True)
    after = {s.slug: {f: getattr(s, f) for f in FIELDS} | {"service": s.service.slug} for s in SLO.objects.all()}
    assert after == before
    # Importing again updates in place (idempotent).
    call_command("import_openslo", str(path), no_check_source=True)
    assert SLO.objects.count() == 3


def test_unsupported_openslo_fields_are_refused_by_name():
    make_slo("web-shop")
    text = (FIXTURES / "openslo-v1-slo-example.yaml").read_text()  # a thresholdMetric SLI
    with pytest.raises(openslo.OpenSLOError) as caught:
        openslo.parse_yaml(text)
    message = str(caught.value)
    assert "spec.indicator.spec.thresholdMetric" in message
    assert "spec.objectives[0].op" in message and "spec.objectives[0].value" in message
    assert "duration='2w'" not in message  # weeks are supported
    calendar = text.replace("isRolling: true", "isRolling: false")
    with pytest.raises(openslo.OpenSLOError, match="calendar windows are not supported"):
        openslo.parse_yaml(calendar)


def test_a_generic_openslo_ratio_becomes_a_custom_slo():
    make_slo("web-shop")
    doc = {
        "apiVersion": "openslo/v1", "kind": "SLO",
        "metadata": {"name": "web-shop-availability", "displayName": "Web shop availability"},
        "spec": {
            "service": "web-shop", "budgetingMethod": "Occurrences",
            "timeWindow": [{"duration": "4w", "isRolling": True}],
            "objectives": [{"displayName": "good", "targetPercent": 99.5}],
            "indicator": {"metadata": {"name": "errors"}, "spec": {"ratioMetric": {
                "counter": True,
                "bad": {"metricSource": {"type": "Prometheus", "spec": {"query": 'http_requests_total{code=~"5.."}'}}},
                "total": {"metricSource": {"type": "Prometheus", "spec": {"query": "http_requests_total"}}},
            }}},
        },
    }
    [slo] = openslo.parse_yaml(yaml.safe_dump(doc))
    assert slo.sli_kind == SLIKind.CUSTOM and slo.window_days == 28 and slo.objective == 99.5
    assert slo.total_query == "sum(increase(http_requests_total[$window]))"
    assert 'http_requests_total{code=~"5.."}[$window]' in slo.good_query


@pytest.mark.slow
def test_api_export_and_import(api, admin_user, viewer, prom):
    slos = catalog()
    client = api.as_user(viewer)
    response = client.get(f"/api/v1/slos/{slos[0].pk}/rules/")
    assert response.status_code == 200 and response["Content-Type"] == "application/yaml"
    assert yaml.safe_load(response.content)["groups"][0]["name"].startswith("sloth-slo-sli-recordings-")
    exported = client.get("/api/v1/slos/openslo/").content.decode()
    assert len(list(yaml.safe_load_all(exported))) == 3
    assert client.post("/api/v1/slos/import/", {"yaml": exported}, format="json").status_code == 403
    SLO.objects.all().delete()
    admin = api.as_user(admin_user)
    bad = admin.post("/api/v1/slos/import/", {"yaml": exported.replace("Occurrences", "Timeslices", 1)}, format="json")
    assert bad.status_code == 400 and "budgetingMethod=Timeslices" in bad.json()["message"]
    refused = admin.post("/api/v1/slos/import/",
                         {"yaml": exported.replace("increase(jobs_total[$window])", "increase(jobs_total[$window)")},
                         format="json")
    assert refused.status_code == 400 and "Prometheus refused" in refused.json()["message"]
    assert not SLO.objects.exists()  # all or nothing
    response = admin.generic("POST", "/api/v1/slos/import/", exported, content_type="application/yaml")
    assert response.status_code == 201, response.content
    assert response.json()["created"] == 3 and SLO.objects.count() == 3


def test_export_command_for_one_slo_and_unknown_names(tmp_path, capsys):
    slos = catalog()
    call_command("export_slo_rules", slos[0].slug)
    assert "sloth-slo-alerts-" + slos[0].slug in capsys.readouterr().out
    with pytest.raises(CommandError, match="no SLO 'nope'"):
        call_command("export_slo_rules", "nope")
