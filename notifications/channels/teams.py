"""Microsoft Teams incoming webhook (Workflows "post to a channel when a webhook request is
received", or a classic connector): one Adaptive Card per notification with Action.OpenUrl
buttons to the acknowledge link, the control room and Grafana (no public callback needed).
"""
from __future__ import annotations

from . import SendResult, post_json, require_secret, secret_field, validate_url

KIND = "teams"
EVENTS = ("opened", "escalation", "acknowledged", "status", "hypothesis", "reopened", "resolved")
SEVERITY_COLOR = {"critical": "Attention", "high": "Attention", "medium": "Warning", "low": "Default"}


def validate(destination) -> dict[str, str]:
    errors: dict[str, str] = {}
    secret = require_secret(destination, errors, "the Teams webhook URL")
    if secret:
        validate_url(secret, secret_field(destination), errors, what="Teams webhook URL")
    return errors


def build_payload(message, ack_url: str | None) -> dict:
    facts = [{"title": "Severity", "value": message.severity}, {"title": "Status", "value": message.status},
             {"title": "Service", "value": message.service or "—"}, {"title": "Team", "value": message.team or "—"}]
    body = [
        {"type": "TextBlock", "text": message.event_label, "weight": "Bolder",
         "color": SEVERITY_COLOR.get(message.severity, "Default"), "wrap": True},
        {"type": "TextBlock", "text": f"{message.incident_key} {message.title}", "size": "Large", "weight": "Bolder",
         "wrap": True},
        {"type": "FactSet", "facts": facts},
    ]
    if message.top_hypothesis:
        h = message.top_hypothesis
        body.append({"type": "TextBlock", "wrap": True, "text": f"**Top hypothesis** ({h['confidence']:.0%}): {h['title']}"})
    actions = []
    if ack_url:
        actions.append({"type": "Action.OpenUrl", "title": "Acknowledge", "url": ack_url, "style": "destructive"})
    actions.append({"type": "Action.OpenUrl", "title": "Control room", "url": message.control_room_url})
    if message.grafana_url:
        actions.append({"type": "Action.OpenUrl", "title": "Grafana", "url": message.grafana_url})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4",
            "body": body, "actions": actions, "msteams": {"width": "Full"}}
    return {"type": "message", "summary": message.headline[:200],
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
                             "content": card}]}


def send(destination, message, *, progress: dict) -> SendResult:
    ack_url = message.ack_url(recipient=destination.name)
    response = post_json(destination.resolve_secret(), build_payload(message, ack_url))
    return SendResult(status_code=response.status_code)
