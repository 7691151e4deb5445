"""Client for the Grafana HTTP API: health and annotations.

Authenticates with a service-account token (bearer). Grafana error bodies are
JSON ``{"message": ...}``; that message is surfaced in ``GrafanaError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import requests

from .base import HttpClient
from .config import http_client_kwargs
from .errors import GrafanaError


@dataclass(slots=True)
class Annotation:
    id: int
    text: str
    tags: list[str]
    time_ms: int
    time_end_ms: int | None = None
    dashboard_uid: str | None = None
    panel_id: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


class GrafanaClient(HttpClient):
    """Grafana API client (annotations are how incidents show up on dashboards)."""

    source = "grafana"
    error_cls = GrafanaError
    url_setting = "GRAFANA_URL"

    @classmethod
    def from_settings(cls, settings: Any = None) -> "GrafanaClient":
        """Build from ``GRAFANA_URL``, ``GRAFANA_TOKEN`` and ``TELEMETRY_*``."""
        return cls(**http_client_kwargs("GRAFANA", settings))

    def health(self) -> dict[str, Any]:
        """``GET /api/health`` -> ``{"database": "ok", "version": ..., "commit": ...}``."""
        body = self._json(self._request("GET", "/api/health"))
        if not isinstance(body, dict):
            raise self._bad_response("health body is not an object")
        return body

    def create_annotation(
        self,
        text: str,
        tags: Sequence[str] = (),
        time_ms: int | None = None,
        time_end_ms: int | None = None,
        dashboard_uid: str | None = None,
        panel_id: int | None = None,
    ) -> int:
        """Create an annotation (organisation-wide unless a dashboard is given); return its id.

        Not retried: a retry after a lost response would create a duplicate.
        """
        payload: dict[str, Any] = {"text": text, "tags": list(tags)}
        if time_ms is not None:
            payload["time"] = int(time_ms)
        if time_end_ms is not None:
            payload["timeEnd"] = int(time_end_ms)
        if dashboard_uid:
            payload["dashboardUID"] = dashboard_uid
        if panel_id is not None:
            payload["panelId"] = int(panel_id)
        body = self._json(self._request("POST", "/api/annotations", json_body=payload))
        if not isinstance(body, dict) or not isinstance(body.get("id"), int):
            raise self._bad_response("annotation create response has no integer id")
        return body["id"]

    def update_annotation(
        self,
        annotation_id: int,
        text: str | None = None,
        tags: Sequence[str] | None = None,
        time_ms: int | None = None,
        time_end_ms: int | None = None,
    ) -> None:
        """PATCH only the given fields (e.g. set ``time_end_ms`` when an incident resolves)."""
        payload: dict[str, Any] = {}
        if text is not None:
            payload["text"] = text
        if tags is not None:
            payload["tags"] = list(tags)
        if time_ms is not None:
            payload["time"] = int(time_ms)
        if time_end_ms is not None:
            payload["timeEnd"] = int(time_end_ms)
        if not payload:
            raise ValueError("update_annotation needs at least one field to change")
        self._request(
            "PATCH", f"/api/annotations/{int(annotation_id)}", json_body=payload, idempotent=False
        )

    def find_annotations(
        self,
        tags: Sequence[str] = (),
        from_ms: int | None = None,
        to_ms: int | None = None,
        limit: int = 100,
        dashboard_uid: str | None = None,
    ) -> list[Annotation]:
        """``GET /api/annotations`` filtered by tags (all must match) and time range."""
        params: list[tuple[str, Any]] = [("tags", t) for t in tags]
        if from_ms is not None:
            params.append(("from", int(from_ms)))
        if to_ms is not None:
            params.append(("to", int(to_ms)))
        if dashboard_uid:
            params.append(("dashboardUID", dashboard_uid))
        params.append(("limit", int(limit)))
        body = self._json(self._request("GET", "/api/annotations", params=params))
        if not isinstance(body, list):
            raise self._bad_response("annotations response is not a list")
        try:
            return [_annotation(item) for item in body]
        except (TypeError, KeyError, ValueError) as exc:
            raise self._bad_response(f"malformed annotation ({type(exc).__name__})") from None

    def _parse_error_body(self, resp: requests.Response) -> tuple[str | None, str]:
        try:
            body = resp.json()
        except ValueError:
            return super()._parse_error_body(resp)
        if isinstance(body, dict) and body.get("message"):
            return None, str(body["message"])
        return super()._parse_error_body(resp)


def _annotation(item: dict[str, Any]) -> Annotation:
    end = item.get("timeEnd")
    return Annotation(
        id=int(item["id"]),
        text=item.get("text", ""),
        tags=list(item.get("tags") or []),
        time_ms=int(item.get("time") or 0),
        # Grafana reports point annotations with timeEnd == time (or 0/absent).
        time_end_ms=int(end) if end else None,
        dashboard_uid=item.get("dashboardUID") or None,
        panel_id=int(item["panelId"]) if item.get("panelId") else None,
        raw=item,
    )
