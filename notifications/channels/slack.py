"""Slack incoming webhook, Block Kit: title, severity, service, top hypothesis, links, and URL
buttons (acknowledge, control room, Grafana) that need no public interactivity callback.

Incoming webhooks cannot thread (they return no message ts), so updates are new messages that
name the incident key. Slack-compatible receivers (Mattermost, Rocket.Chat) take the same URL form.
"""
from __future__ import annotations

from . import ChannelError, SendResult, post_json, require_secret, secret_field, validate_url

KIND = "slack"
EVENTS = ("opened", "escalation", "acknowledged", "status", "hypothesis", "reopened", "resolved")
SEVERITY_EMOJI = {"critical": ":red_circle:", "high": ":large_orange_circle:", "medium": ":large_yellow_circle:",
                  "low": ":white_circle:"}


def validate(destination) -> dict[str, str]:
    errors: dict[str, str] = {}
    secret = require_secret(destination, errors, "the Slack webhook URL")
    if secret:
        validate_url(secret, secret_field(destination), errors, what="Slack webhook URL")
    return errors


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_payload(message, ack_url: str | None) -> dict:
    fields = [
        {"type": "mrkdwn", "text": f"*Severity*\n{message.severity}"},
        {"type": "mrkdwn", "text": f"*Status*\n{message.status}"},
        {"type": "mrkdwn", "text": f"*Service*\n{_escape(message.service or '—')}"},
        {"type": "mrkdwn", "text": f"*Team*\n{_escape(message.team or '—')}"},
    ]
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": f"{message.incident_key} {message.title}"[:150]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{SEVERITY_EMOJI.get(message.severity, '')} "
                                                                    f"*{_escape(message.event_label)}*"}]},
        {"type": "section", "fields": fields},
    ]
    if message.top_hypothesis:
        h = message.top_hypothesis
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": (
            f"*Top hypothesis* ({h['confidence']:.0%})\n{_escape(h['title'])}")[:3000]}})
    buttons = []
    if ack_url:
        buttons.append({"type": "button", "action_id": "acknowledge", "style": "danger",
                        "text": {"type": "plain_text", "text": "Acknowledge"}, "url": ack_url})
    buttons.append({"type": "button", "action_id": "control_room", "text": {"type": "plain_text", "text": "Control room"},
                    "url": message.control_room_url})
    if message.grafana_url:
        buttons.append({"type": "button", "action_id": "grafana", "text": {"type": "plain_text", "text": "Grafana"},
                        "url": message.grafana_url})
    blocks.append({"type": "actions", "elements": buttons})
    return {"text": message.headline[:3000], "blocks": blocks}


def send(destination, message, *, progress: dict) -> SendResult:
    ack_url = message.ack_url(recipient=destination.name)
    response = post_json(destination.resolve_secret(), build_payload(message, ack_url))
    if response.text.strip() not in ("ok", ""):  # Slack answers "ok"; anything else is an error text
        raise ChannelError(f"unexpected answer: {response.text[:100]}", retryable=False, status_code=response.status_code)
    return SendResult(status_code=response.status_code)
