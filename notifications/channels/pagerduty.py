"""PagerDuty Events API v2: trigger, acknowledge and resolve with `dedup_key` = the incident key,
so the PagerDuty incident follows ours (acknowledged here → acknowledged there, and so on).

Status changes and hypotheses are not sent: a trigger for an existing alert only adds a log
entry, and PagerDuty has its own escalation once triggered.
"""
from __future__ import annotations

import re

from django.conf import settings

from . import SendResult, post_json, require_secret, secret_field, validate_url

KIND = "pagerduty"
EVENTS = ("opened", "escalation", "acknowledged", "reopened", "resolved")
SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}
ROUTING_KEY = re.compile(r"^[A-Za-z0-9]{32}$")


def events_url(destination) -> str:
    return destination.url or settings.NOTIFICATIONS_PAGERDUTY_EVENTS_URL


def validate(destination) -> dict[str, str]:
    errors: dict[str, str] = {}
    key = require_secret(destination, errors, "the PagerDuty integration (routing) key")
    if key and not ROUTING_KEY.match(key):
        errors[secret_field(destination)] = "a PagerDuty integration key is 32 letters and digits"
    validate_url(events_url(destination), "url", errors, what="Events API URL")
    return errors


def build_payload(message, routing_key: str) -> dict:
    action = {"acknowledged": "acknowledge", "resolved": "resolve"}.get(message.event, "trigger")
    body = {"routing_key": routing_key, "event_action": action, "dedup_key": message.incident_key}
    if action == "trigger":
        details = {"status": message.status, "team": message.team, "event": message.event_label,
                   "started_at": message.started_at.isoformat()}
        if message.top_hypothesis:
            details["top_hypothesis"] = message.top_hypothesis["title"]
        body["payload"] = {
            "summary": f"{message.incident_key} {message.title}"[:1024],
            "source": message.service or "reliability-studio",
            "severity": SEVERITY.get(message.severity, "error"),
            "timestamp": message.started_at.isoformat(),
            "component": message.service or "",
            "group": message.team or "",
            "class": "incident",
            "custom_details": details,
        }
        links = [{"href": message.control_room_url, "text": "Control room"}]
        if message.grafana_url:
            links.append({"href": message.grafana_url, "text": "Grafana"})
        ack_url = message.ack_url(recipient="pagerduty")
        if ack_url:
            links.append({"href": ack_url, "text": "Acknowledge in Reliability Studio"})
        body["links"] = links
        body["client"] = "Reliability Studio"
        body["client_url"] = message.control_room_url
    return body


def send(destination, message, *, progress: dict) -> SendResult:
    response = post_json(events_url(destination), build_payload(message, destination.resolve_secret()))
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    return SendResult(status_code=response.status_code,
                      detail={"dedup_key": answer.get("dedup_key", message.incident_key), "status": answer.get("status")})
