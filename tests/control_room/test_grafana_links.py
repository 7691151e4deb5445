"""Explore deep links, byte for byte as in the shared Grafana fixture."""
import json
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from reliability_studio.grafana_links import Pane, explore_url, loki_pane, prometheus_pane, tempo_trace_pane

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "explore-urls.json").read_text())
BASE = "https://grafana.example.internal"


def panes_from_fixture(name):
    built = {}
    for pane_id, pane in FIXTURE[name]["panes"].items():
        query = {k: v for k, v in pane["queries"][0].items() if k not in ("refId", "datasource")}
        ds = pane["queries"][0]["datasource"]
        built[pane_id] = Pane(ds["uid"], ds["type"], query, pane["range"]["from"], pane["range"]["to"])
    return built


@pytest.mark.parametrize("name", ["prometheus", "loki", "tempo_trace", "split_two_panes"])
def test_explore_urls_match_the_fixture(name):
    assert explore_url(BASE, panes_from_fixture(name)) == FIXTURE[name]["url"]


def test_helpers_build_the_fixture_panes_from_datetimes():
    expr = FIXTURE["prometheus"]["panes"]["a1b"]["queries"][0]["expr"]
    start = datetime.fromtimestamp(1773477060, tz=timezone.utc)
    end = datetime.fromtimestamp(1773483120, tz=timezone.utc)
    assert explore_url(BASE, {"a1b": prometheus_pane(expr, start, end)}) == FIXTURE["prometheus"]["url"]
    logql = FIXTURE["loki"]["panes"]["x9z"]["queries"][0]["expr"]
    assert explore_url(BASE + "/", {"x9z": loki_pane(logql, "now-1h", "now")}) == FIXTURE["loki"]["url"]
    assert explore_url(BASE, {"t1": tempo_trace_pane("2f3e0cee77ae5dc9c17ade3689eb2e54")}) == FIXTURE["tempo_trace"]["url"]


def test_the_link_decodes_to_the_query():
    url = explore_url(BASE, {"p": loki_pane('{service="checkout"} |= "timeout & retry"', 1, 2)}, org_id=3)
    params = parse_qs(urlparse(url).query)
    assert params["orgId"] == ["3"] and params["schemaVersion"] == ["1"]
    assert json.loads(params["panes"][0])["p"]["queries"][0]["expr"] == '{service="checkout"} |= "timeout & retry"'
    with pytest.raises(ValueError):
        explore_url(BASE, {})
