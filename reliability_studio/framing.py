"""Who may put the control room in a frame: only the configured Grafana origin(s).

`Content-Security-Policy: frame-ancestors` is the header browsers obey for this; it can list
origins, which `X-Frame-Options` cannot. X-Frame-Options is still sent when no origin is
configured (older browsers), and left out otherwise because a browser that honours only XFO
would refuse the allowed Grafana as well.
"""
from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.middleware.clickjacking import XFrameOptionsMiddleware

# scheme://host[:port] and nothing else: a stray space or ";" would add directives to the policy.
ORIGIN = re.compile(r"^https?://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+|\*\.[A-Za-z0-9.-]+)(:\d{1,5})?$")


def frame_ancestors(origins: list[str]) -> str:
    """The CSP directive for `origins`: 'none' when empty, else 'self' plus each origin."""
    cleaned = []
    for origin in origins:
        origin = origin.strip().rstrip("/")
        if not ORIGIN.match(origin):
            raise ImproperlyConfigured(f"GRAFANA_FRAME_ORIGINS: {origin!r} is not an origin like https://grafana.example.com")
        cleaned.append(origin)
    return "frame-ancestors " + (" ".join(["'self'", *cleaned]) if cleaned else "'none'")


class FrameAncestorsMiddleware(XFrameOptionsMiddleware):
    """Replaces Django's XFrameOptionsMiddleware: one place decides framing."""

    def __init__(self, get_response):
        super().__init__(get_response)
        self.origins = list(settings.GRAFANA_FRAME_ORIGINS)
        self.directive = frame_ancestors(self.origins)  # fails at start-up on a bad origin

    def process_response(self, request, response):
        if getattr(response, "xframe_options_exempt", False):
            return response
        existing = response.headers.get("Content-Security-Policy")
        if existing is None:
            response.headers["Content-Security-Policy"] = self.directive
        elif "frame-ancestors" not in existing:
            response.headers["Content-Security-Policy"] = f"{existing}; {self.directive}"
        if not self.origins:
            return super().process_response(request, response)  # X-Frame-Options: DENY
        return response
