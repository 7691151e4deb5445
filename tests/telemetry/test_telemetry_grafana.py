"""GrafanaClient against the recorded annotation API bodies (real HTTP, fixture server)."""

from __future__ import annotations

import pytest

from reliability_studio.telemetry import GrafanaError
from reliability_studio.telemetry.grafana import GrafanaClient

from .conftest import FAST, TOKEN
from .fixture_server import Reply


@pytest.fixture
def grafana(fixture_server):
    return GrafanaClient(fixture_server.url, token=TOKEN, **FAST)


def test_health(grafana):
    assert grafana.health()["database"] == "ok"


def test_create_annotation_sends_documented_body(grafana, fixture_server):
    expected = fixture_server.load("grafana/annotations-create-request.json")
    annotation_id = grafana.create_annotation(
        "Annotation Description", ["tag1", "tag2"], time_ms=1507037197339,
        time_end_ms=1507180805056, dashboard_uid="jcIIG-07z", panel_id=1,
    )
    assert annotation_id == 1
    [req] = fixture_server.matching("/api/annotations", "POST")
    assert req.json() == expected
    assert req.headers["authorization"] == f"Bearer {TOKEN}"


def test_create_annotation_is_not_retried(grafana, fixture_server):
    fixture_server.route("POST", "/api/annotations", Reply(502, "bad gateway", "text/plain"))
    with pytest.raises(GrafanaError) as info:
        grafana.create_annotation("deploy", ["deploy"], time_ms=1)
    assert info.value.status == 502
    assert fixture_server.hits("/api/annotations", "POST") == 1


def test_update_annotation_patches_only_given_fields(grafana, fixture_server):
    grafana.update_annotation(1, time_end_ms=1507266400000, tags=["incident", "resolved"])
    [req] = fixture_server.matching("/api/annotations/1", "PATCH")
    assert req.json() == {"tags": ["incident", "resolved"], "timeEnd": 1507266400000}


def test_update_missing_annotation(grafana, fixture_server):
    fixture_server.route("PATCH", "/api/annotations/99", Reply(404, {"message": "Annotation not found"}))
    with pytest.raises(GrafanaError) as info:
        grafana.update_annotation(99, text="x")
    assert info.value.kind == "not_found" and "Annotation not found" in str(info.value)


def test_find_annotations(grafana, fixture_server):
    found = grafana.find_annotations(["tag1", "tag2"], from_ms=1507265000000, to_ms=1507267000000, limit=10)
    assert [a.id for a in found] == [1124, 1123]
    first, second = found
    assert first.tags == ["tag1", "tag2"]
    assert (first.time_ms, first.time_end_ms) == (1507266395000, 1507266395000)
    assert (first.dashboard_uid, first.panel_id) == ("uGlb_lG7z", 2)
    assert second.time_end_ms is None
    [req] = fixture_server.matching("/api/annotations", "GET")
    assert req.query == {"tags": ["tag1", "tag2"], "from": ["1507265000000"],
                         "to": ["1507267000000"], "limit": ["10"]}
