"""Deep links into Grafana Explore: the exact query and time range behind a piece of evidence.

The URL format is Grafana's documented one for external tools
(`/explore?schemaVersion=1&panes=<url-encoded JSON>&orgId=<org>`); one pane per query, two panes
make a split view. Data sources are addressed by uid (deploy/grafana/provisioning/datasources/).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

PROMETHEUS = ("prometheus", "prometheus")  # (uid, type) as provisioned
LOKI = ("loki", "loki")
TEMPO = ("tempo", "tempo")


@dataclass(frozen=True)
class Pane:
    """One Explore pane: a data source, its query fields and a time range."""

    datasource_uid: str
    datasource_type: str
    query: dict  # e.g. {"expr": "..."} or {"queryType": "traceql", "query": "<trace id>"}
    time_from: str
    time_to: str

    def as_json(self) -> dict:
        return {
            "datasource": self.datasource_uid,
            "queries": [{"refId": "A", "datasource": {"uid": self.datasource_uid, "type": self.datasource_type}, **self.query}],
            "range": {"from": self.time_from, "to": self.time_to},
        }


def time_bound(value: datetime | int | str) -> str:
    """Explore range bounds are epoch milliseconds as strings, or relative ("now-1h")."""
    if isinstance(value, datetime):
        return str(int(value.timestamp() * 1000))
    return str(value)


def prometheus_pane(expr: str, start, end, uid: str = PROMETHEUS[0]) -> Pane:
    return Pane(uid, PROMETHEUS[1], {"expr": expr}, time_bound(start), time_bound(end))


def loki_pane(expr: str, start, end, uid: str = LOKI[0]) -> Pane:
    return Pane(uid, LOKI[1], {"expr": expr}, time_bound(start), time_bound(end))


def tempo_trace_pane(trace_id: str, start="now-1h", end="now", uid: str = TEMPO[0]) -> Pane:
    return Pane(uid, TEMPO[1], {"queryType": "traceql", "query": trace_id}, time_bound(start), time_bound(end))


def tempo_search_pane(traceql: str, start, end, limit: int = 20, uid: str = TEMPO[0]) -> Pane:
    """A TraceQL *search* (a `{ ... }` query, not a trace id) over a time range, as a traces table."""
    return Pane(uid, TEMPO[1], {"queryType": "traceql", "query": traceql, "limit": int(limit),
                                "tableType": "traces"}, time_bound(start), time_bound(end))


def explore_url(base_url: str, panes: dict[str, Pane], org_id: int = 1) -> str:
    """`{grafana}/explore?schemaVersion=1&panes=...&orgId=1` for the given named panes (in order)."""
    if not panes:
        raise ValueError("Explore needs at least one pane")
    document = json.dumps({name: pane.as_json() for name, pane in panes.items()}, separators=(",", ":"))
    # Percent-encode everything but the unreserved characters, like encodeURIComponent.
    return f"{base_url.rstrip('/')}/explore?schemaVersion=1&panes={quote(document, safe='')}&orgId={int(org_id)}"
