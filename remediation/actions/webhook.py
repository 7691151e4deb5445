"""An HTTP webhook for everything else (feature flags, CI rollbacks): an HMAC-signed JSON body,
a timeout and a bounded number of retries.

The receiver checks `X-RS-Signature: sha256=<hex>`, the HMAC-SHA256 of `<timestamp>.<body>` with
the shared secret (`X-RS-Timestamp` holds the timestamp, so a captured request cannot be replayed
later), and may deduplicate retries on `X-RS-Delivery` (the action id: the same on every attempt).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from urllib.parse import urlsplit

import requests
from django.conf import settings

from reliability_studio import outbound

from . import register
from .base import ActionError, ActionKind, Param, ParamError

SIGNATURE_HEADER = "X-RS-Signature"
TIMESTAMP_HEADER = "X-RS-Timestamp"
DELIVERY_HEADER = "X-RS-Delivery"
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


def encode_body(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """sha256=<hex HMAC of b"<timestamp>." + body>"""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """For receivers (and tests): constant-time comparison."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def _secret(p: dict) -> str:
    # Secrets never live in runbook files: a step names the environment variable that holds one.
    if p.get("secret_env"):
        value = os.environ.get(p["secret_env"], "")
        if not value:
            raise ActionError(f"the environment variable {p['secret_env']} (webhook secret) is not set")
        return value
    if not settings.REMEDIATION_WEBHOOK_SECRET:
        raise ActionError("no webhook secret: set REMEDIATION_WEBHOOK_SECRET or the step's secret_env")
    return settings.REMEDIATION_WEBHOOK_SECRET


class Webhook(ActionKind):
    def check(self, p):
        parts = urlsplit(p["url"])
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ParamError("url", f"must be an http(s) URL, not {p['url']!r}")
        try:
            outbound.check_url(p["url"])  # no link-local / cloud metadata address
        except outbound.OutboundURLRefused as exc:
            raise ParamError("url", str(exc)) from None

    def target(self, p):
        parts = urlsplit(p["url"])
        return f"webhook {parts.netloc}{parts.path}"

    def _timeout(self, p) -> float:
        return float(p["timeout"] if p["timeout"] is not None else settings.REMEDIATION_WEBHOOK_TIMEOUT_SECONDS)

    def _retries(self, p) -> int:
        return int(p["retries"] if p["retries"] is not None else settings.REMEDIATION_WEBHOOK_MAX_RETRIES)

    def dry_run(self, p):
        body = p["body"] or {}
        return {
            "summary": f"{p['method']} {p['url']} with a signed JSON body "
                       f"(timeout {self._timeout(p):g}s, up to {self._retries(p)} retries)",
            "changes": [],
            "request": {"method": p["method"], "url": p["url"], "content_type": "application/json",
                        "headers": [SIGNATURE_HEADER, TIMESTAMP_HEADER, DELIVERY_HEADER],
                        "body": json.loads(encode_body(body))},
        }

    def execute(self, p, *, action_id):
        secret = _secret(p)
        body = encode_body(p["body"] or {})
        attempts, last = 1 + self._retries(p), ""
        for attempt in range(1, attempts + 1):
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, timestamp, body),
                       TIMESTAMP_HEADER: timestamp, DELIVERY_HEADER: str(action_id),
                       "User-Agent": "reliability-studio-remediation"}
            try:
                with outbound.guard(requests.Session()) as session:  # checked again at connect time
                    response = session.request(p["method"], p["url"], data=body, headers=headers,
                                               timeout=self._timeout(p), allow_redirects=False)
            except outbound.OutboundURLRefused as exc:
                raise ActionError(f"webhook {p['url']} refused: {exc}", detail={"attempts": attempt}) from None
            except requests.Timeout:
                last = f"timed out after {self._timeout(p):g}s"
            except requests.RequestException as exc:
                last = f"cannot connect ({type(exc).__name__})"
            else:
                if response.status_code < 300:
                    return {"status": response.status_code, "attempts": attempt, "response": response.text[:500]}
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code not in RETRY_STATUSES:
                    break  # a 4xx will not get better by asking again
            if attempt < attempts:
                time.sleep(min(5.0, settings.REMEDIATION_WEBHOOK_BACKOFF_SECONDS * 2 ** (attempt - 1)))
        raise ActionError(f"webhook {p['url']} failed after {attempt} attempt(s): {last}",
                          detail={"attempts": attempt})


register(Webhook(name="webhook", label="HTTP webhook", params={
    "url": Param(str),
    "method": Param(str, required=False, default="POST", choices=("POST", "PUT", "PATCH")),
    "body": Param(dict, required=False, default=None),
    "timeout": Param(float, required=False, default=None, min=0.1, max=60),
    "retries": Param(int, required=False, default=None, min=0, max=5),
    "secret_env": Param(str, required=False, default=""),
}))
