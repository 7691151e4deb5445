"""Local stand-ins for the destinations: HTTP receivers that check the documented payload shapes
(Slack Block Kit, Teams Adaptive Card, PagerDuty Events v2) or the webhook signature and answer
like the real services (400 on a bad payload), and a real SMTP server (aiosmtpd)."""
from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller


def check_slack(body: dict, headers) -> str | None:
    if not isinstance(body.get("text"), str) or not isinstance(body.get("blocks"), list) or not body["blocks"]:
        return "text and blocks are required"
    for block in body["blocks"]:
        kind = block.get("type")
        if kind == "header":
            if block["text"]["type"] != "plain_text" or len(block["text"]["text"]) > 150:
                return "header needs plain_text ≤ 150"
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                return "section needs text or fields"
            if len(block.get("fields", [])) > 10:
                return "at most 10 fields"
        elif kind == "actions":
            for element in block["elements"]:
                if element["type"] != "button" or element["text"]["type"] != "plain_text" or not element.get("url"):
                    return "buttons here are URL buttons"
                if len(element["url"]) > 3000:
                    return "button url ≤ 3000"
        elif kind != "context":
            return f"unexpected block {kind}"
    return None


def check_teams(body: dict, headers) -> str | None:
    if body.get("type") != "message" or len(body.get("attachments", [])) != 1:
        return "a message with one attachment"
    attachment = body["attachments"][0]
    if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
        return "an Adaptive Card attachment"
    card = attachment["content"]
    if card.get("type") != "AdaptiveCard" or not card.get("version") or not isinstance(card.get("body"), list):
        return "AdaptiveCard with version and body"
    for action in card.get("actions", []):
        if action["type"] != "Action.OpenUrl" or not action.get("url"):
            return "Action.OpenUrl only"
    return None


PD_SEVERITIES = {"critical", "error", "warning", "info"}


def check_pagerduty(body: dict, headers) -> str | None:
    if len(body.get("routing_key", "")) != 32:
        return "routing_key"
    if body.get("event_action") not in ("trigger", "acknowledge", "resolve"):
        return "event_action"
    if not body.get("dedup_key"):
        return "dedup_key"
    if body["event_action"] == "trigger":
        payload = body.get("payload") or {}
        if not payload.get("summary") or len(payload["summary"]) > 1024 or not payload.get("source"):
            return "payload.summary and payload.source"
        if payload.get("severity") not in PD_SEVERITIES:
            return "payload.severity"
    return None


def webhook_checker(secret: str, max_skew: int = 300):
    def check(body_bytes: bytes, headers) -> str | None:
        timestamp = headers.get("X-RS-Timestamp", "")
        expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body_bytes, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, headers.get("X-RS-Signature", "")):
            return "bad signature"
        if abs(time.time() - int(timestamp)) > max_skew:
            return "stale timestamp"
        return None

    check.raw = True
    return check


class HTTPReceiver:
    """A loopback HTTP server recording every POST; `fail(n, status)` answers the next n with an
    error; `check(body, headers)` returning a message answers 400 like the real service."""

    def __init__(self, check=None, ok_body: bytes = b"ok", ok_status: int = 200):
        self.requests: list[dict] = []
        self.rejected: list[str] = []
        self.failures: deque[int] = deque()
        self.always_fail: int | None = None
        self.cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = ok_status, ok_body
                with outer.cond:
                    if outer.failures:
                        status, answer = outer.failures.popleft(), b"failing on purpose"
                    elif outer.always_fail:
                        status, answer = outer.always_fail, b"failing on purpose"
                problem = None
                if check is not None and status < 300:
                    problem = check(raw, self.headers) if getattr(check, "raw", False) else check(json.loads(raw), self.headers)
                    if problem:
                        status, answer = 400, problem.encode()
                with outer.cond:
                    if problem:
                        outer.rejected.append(problem)
                    outer.requests.append({"path": self.path, "headers": dict(self.headers), "raw": raw,
                                           "json": json.loads(raw) if raw else None, "status": status,
                                           "at": time.monotonic()})
                    outer.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def fail(self, times: int, status: int = 500) -> None:
        with self.cond:
            self.failures.extend([status] * times)

    @property
    def accepted(self) -> list[dict]:
        return [r for r in self.requests if r["status"] < 300]

    def wait_for(self, count: int, timeout: float = 10.0, accepted: bool = True) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                rows = self.accepted if accepted else self.requests
                if len(rows) >= count:
                    return list(rows)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} requests within {timeout}s, got {len(rows)}: {self.rejected}")
                self.cond.wait(left)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SMTPServer:
    """A real SMTP server on loopback (aiosmtpd); `messages` are parsed email.message objects."""

    def __init__(self):
        from .servers import free_port

        self.messages: list = []
        self.envelopes: list = []
        self.cond = threading.Condition()
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's naming
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                with outer.cond:
                    outer.messages.append(message)
                    outer.envelopes.append(envelope)
                    outer.cond.notify_all()
                return "250 Message accepted for delivery"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} emails within {timeout}s, got {len(self.messages)}")
                self.cond.wait(left)
            return list(self.messages)

    def stop(self) -> None:
        self.controller.stop()
