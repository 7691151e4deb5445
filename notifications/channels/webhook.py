"""Generic webhook: the incident as JSON, signed with HMAC-SHA256 over "<timestamp>.<body>".

Headers: X-RS-Event, X-RS-Delivery (the same on every retry: receivers dedupe on it),
X-RS-Timestamp (Unix seconds) and X-RS-Signature: sha256=<hex>. Receivers recompute the HMAC
with the shared secret and reject old timestamps (replay).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time

from django.core.serializers.json import DjangoJSONEncoder

from . import SendResult, post_json, require_secret, secret_field, validate_url

KIND = "webhook"
EVENTS = ("opened", "escalation", "acknowledged", "status", "hypothesis", "reopened", "resolved")
MIN_SECRET_LENGTH = 16


def validate(destination) -> dict[str, str]:
    errors: dict[str, str] = {}
    validate_url(destination.url, "url", errors)
    secret = require_secret(destination, errors, "the HMAC signing secret")
    if secret and len(secret) < MIN_SECRET_LENGTH:
        errors[secret_field(destination)] = f"the signing secret needs at least {MIN_SECRET_LENGTH} characters"
    return errors


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def build_payload(message, ack_url: str | None) -> dict:
    return {
        "version": 1,
        "event": message.event,
        "event_key": message.event_key,
        "level": message.level,
        "delivery": message.delivery_id,
        "incident": {
            "id": message.incident_id, "key": message.incident_key, "title": message.title,
            "severity": message.severity, "status": message.status, "service": message.service,
            "team": message.team, "summary": message.summary, "started_at": message.started_at,
            "acknowledged_at": message.acknowledged_at, "resolved_at": message.resolved_at,
        },
        "top_hypothesis": message.top_hypothesis,
        "links": {"control_room": message.control_room_url, "grafana": message.grafana_url or None,
                  "acknowledge": ack_url},
    }


def send(destination, message, *, progress: dict) -> SendResult:
    body = json.dumps(build_payload(message, message.ack_url(recipient=destination.name)), cls=DjangoJSONEncoder,
                      separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {"X-RS-Event": message.event, "X-RS-Delivery": str(message.delivery_id or ""),
               "X-RS-Timestamp": timestamp, "X-RS-Signature": sign(destination.resolve_secret(), timestamp, body),
               "User-Agent": "reliability-studio-webhook/1"}
    response = post_json(destination.url, {}, headers=headers, body=body)
    return SendResult(status_code=response.status_code)
