"""One module per destination kind, the way Grafana OnCall keeps one module per integration.

Each module declares `KIND`, `EVENTS` (the notification events it carries), `validate(destination)
-> {field: message}` (configuration errors, shown on save) and `send(destination, message, *,
progress) -> SendResult` (raises ChannelError). `registry` maps kinds to modules.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import requests
from django.core.serializers.json import DjangoJSONEncoder

from .. import outbound


class ChannelError(Exception):
    """A delivery attempt failed. `retryable` says whether trying again can help (timeouts, 429,
    5xx) or not (a 4xx: the configuration or payload is wrong)."""

    def __init__(self, message: str, *, retryable: bool, status_code: int | None = None, progress: dict | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code
        self.progress = progress or {}


@dataclass
class SendResult:
    status_code: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def post_json(url: str, payload: dict, *, headers: dict[str, str] | None = None, body: bytes | None = None) -> requests.Response:
    """POST JSON; 2xx is returned, anything else raised as a ChannelError (no secret in the message)."""
    data = body if body is not None else json.dumps(payload, cls=DjangoJSONEncoder).encode()
    try:
        response = outbound.post(url, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    except outbound.OutboundURLError as exc:
        raise ChannelError(f"refused: {exc}", retryable=False) from None
    except (requests.Timeout, requests.ConnectionError, ConnectionError) as exc:
        raise ChannelError(f"{type(exc).__name__}: could not reach the destination", retryable=True) from None
    except requests.RequestException as exc:
        raise ChannelError(f"{type(exc).__name__}", retryable=True) from None
    if 200 <= response.status_code < 300:
        return response
    text = response.text[:200].replace("\n", " ")
    retryable = response.status_code in (408, 425, 429) or response.status_code >= 500
    if 300 <= response.status_code < 400:
        text = "redirects are not followed"
    raise ChannelError(f"HTTP {response.status_code}: {text}", retryable=retryable, status_code=response.status_code)


def validate_url(value: str, field_name: str, errors: dict[str, str], *, what: str = "URL") -> None:
    if not value:
        errors[field_name] = f"the {what} is required"
        return
    try:
        outbound.check_url(value, resolve=False)
    except outbound.OutboundURLError as exc:
        errors[field_name] = f"the {what} is not usable: {exc}"


def require_secret(destination, errors: dict[str, str], what: str) -> str:
    """The destination's secret, or an error on the field that should carry it."""
    secret = destination.resolve_secret()
    if not secret:
        if destination.secret_env:
            errors["secret_env"] = f"environment variable {destination.secret_env} ({what}) is not set"
        else:
            errors["secret"] = f"{what} is required (here or through secret_env)"
    return secret


def secret_field(destination) -> str:
    return "secret_env" if destination.secret_env else "secret"


from . import email, pagerduty, slack, teams, webhook  # noqa: E402  (they use the helpers above)

registry = {module.KIND: module for module in (email, slack, teams, pagerduty, webhook)}
