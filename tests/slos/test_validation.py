"""Bad objectives, windows and queries get clear errors everywhere and write nothing: API 400
JSON, form errors, and a command that exits non-zero with one line."""
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from incidents.models import Service
from slos.models import SLO

from .conftest import needs_prometheus

pytestmark = [pytest.mark.slow, pytest.mark.django_db, needs_prometheus]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkout(db):
    return Service.objects.create(slug="checkout", name="Checkout")


def body(**fields):
    return {"service": "checkout", "name": "Availability", "sli_kind": "availability",
            "selector": 'job="shop",service="checkout"', "objective": 99.9, "window_days": 30} | fields


@pytest.mark.parametrize("fields, field, words", [
    ({"objective": 100}, "objective", "strictly between 0 and 100"),
    ({"objective": 0}, "objective", "strictly between 0 and 100"),
    ({"objective": -5}, "objective", "strictly between 0 and 100"),
    ({"window_days": 0}, "window_days", "from 1 to 90"),
    ({"window_days": 365}, "window_days", "from 1 to 90"),
    ({"selector": "service=checkout"}, "selector", "name=\"value\""),
    ({"sli_kind": "latency"}, "latency_threshold_seconds", "threshold"),
    ({"sli_kind": "custom", "selector": "", "good_query": "sum(x)", "total_query": "sum(y[$window])"},
     "good_query", "$window"),
    ({"sli_kind": "custom", "selector": "", "good_query": "sum(increase(x_total[$window])",
      "total_query": "sum(increase(x_total[$window]))"}, "good_query", "Prometheus refused"),
    ({"metric": "http requests"}, "metric", "not a metric name"),
])
def test_api_refuses_bad_definitions_with_400_json_and_writes_nothing(api, admin_user, prom, checkout, fields,
                                                                       field, words):
    response = api.as_user(admin_user).post("/api/v1/slos/", body(**fields), format="json")
    assert response.status_code == 400, response.content
    data = response.json()
    assert field in data["errors"] and words in " ".join(data["errors"][field]), data
    assert data["message"] and data["code"] == "invalid"
    assert not SLO.objects.exists()


def test_api_creates_a_valid_slo_and_only_admins_may(api, admin_user, viewer, prom, checkout):
    assert api.as_user(viewer).post("/api/v1/slos/", body(), format="json").status_code == 403
    response = api.as_user(admin_user).post("/api/v1/slos/", body(), format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["slug"] == "checkout-availability" and data["status"] == "unknown"
    assert data["budget_minutes"] == pytest.approx(43.2)
    assert data["burn_thresholds"]["page_fast"] == pytest.approx(14.4)
    assert api.as_user(viewer).get("/api/v1/slos/").json()["count"] == 1


def test_a_query_prometheus_refuses_is_named_with_its_message(api, admin_user, prom, checkout):
    response = api.as_user(admin_user).post("/api/v1/slos/", body(error_matcher='code=~"5(.."'), format="json")
    assert response.status_code == 400
    assert "Prometheus refused" in response.json()["errors"]["selector"][0]
    assert not SLO.objects.exists()


def test_form_shows_errors_and_writes_nothing(client, admin_user, prom, checkout):
    client.force_login(admin_user)
    form = body(objective="100", window_days="0", labels="{}", severity_policy="{}", error_matcher='code=~"5.."')
    response = client.post("/slos/new/", form)
    assert response.status_code == 422
    errors = response.context["form"].errors
    assert "strictly between 0 and 100" in errors["objective"][0] and "from 1 to 90" in errors["window_days"][0]
    assert not SLO.objects.exists()
    response = client.post("/slos/new/", form | {"objective": "99.5", "window_days": "28"})
    assert response.status_code == 302
    assert SLO.objects.get().window_days == 28


def test_command_refuses_a_bad_document_with_one_line_and_writes_nothing(prom, checkout, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: checkout-avail}\n"
        "spec:\n  service: checkout\n  budgetingMethod: Occurrences\n"
        "  timeWindow: [{duration: 30d, isRolling: true}]\n  objectives: [{target: 1.5}]\n"
        "  indicator:\n    metadata: {name: x}\n    spec:\n      ratioMetric:\n        counter: true\n"
        "        good: {metricSource: {type: Prometheus, spec: {query: 'http_requests_total{code=\"200\"}'}}}\n"
        "        total: {metricSource: {type: Prometheus, spec: {query: 'http_requests_total'}}}\n")
    with pytest.raises(CommandError, match="strictly between 0 and 100"):
        call_command("import_openslo", str(bad))
    assert not SLO.objects.exists()


def test_command_exit_status_and_single_line(checkout, tmp_path):
    # Outside pytest's database, through a real process: non-zero exit and one line on stderr.
    missing = tmp_path / "missing.yaml"
    done = subprocess.run([sys.executable, "manage.py", "import_openslo", str(missing)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot read" in lines[0], done.stderr
