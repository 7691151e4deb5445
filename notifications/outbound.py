"""Outgoing HTTP for the channels: only to configured URLs, never to link-local or cloud metadata
addresses (unless NOTIFICATIONS_ALLOW_LINK_LOCAL; the shared rules of reliability_studio.outbound),
loopback only when NOTIFICATIONS_ALLOW_LOOPBACK, no redirects followed (a redirect could point
anywhere), and a short timeout. The address is checked again when the connection is opened (DNS
rebinding).
"""
from __future__ import annotations

import ipaddress
import socket
import threading
from urllib.parse import urlsplit

import requests
from django.conf import settings

from reliability_studio import outbound as shared

# "This network" too: 0.0.0.0 reaches the local host on Linux, which loopback rules must cover.
BLOCKED_NETWORKS = shared.BLOCKED_NETWORKS + tuple(ipaddress.ip_network(n) for n in ("0.0.0.0/8", "::/128"))

# The URL is malformed or points somewhere notifications may not go (one type with the shared rules).
OutboundURLError = shared.OutboundURLRefused


def _check_address(ip: ipaddress._BaseAddress, host: str) -> None:
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        if not settings.NOTIFICATIONS_ALLOW_LOOPBACK:
            raise OutboundURLError(f"{host} is a loopback address (set NOTIFICATIONS_ALLOW_LOOPBACK to allow)")
        return
    if any(ip in net for net in BLOCKED_NETWORKS) and not settings.NOTIFICATIONS_ALLOW_LINK_LOCAL:
        if any(ip in net for net in shared.BLOCKED_NETWORKS):
            shared.check_address(ip, host)  # OUTBOUND_ALLOWED_HOSTS may allow this one
            return
        raise OutboundURLError(f"{host} is a link-local or metadata address; refused "
                               "(set NOTIFICATIONS_ALLOW_LINK_LOCAL to allow)")
    if ip.is_multicast or ip.is_unspecified:
        raise OutboundURLError(f"{host} is not a unicast address")


def check_url(url: str, *, resolve: bool) -> None:
    """Raise OutboundURLError unless `url` is an http(s) URL notifications may call.

    With `resolve`, every address the host resolves to is checked (at send time); without, only a
    literal address is (at save time, where DNS may legitimately be unavailable).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundURLError(f"malformed URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundURLError("must be an http:// or https:// URL with a host")
    if any(c.isspace() for c in url):
        raise OutboundURLError("malformed URL: contains whitespace")
    host = parts.hostname
    if not settings.NOTIFICATIONS_ALLOW_LINK_LOCAL:
        shared.check_host(host, check=_check_address)  # also a metadata service's name (metadata.goog, …)
    try:
        _check_address(ipaddress.ip_address(host), host)
        return
    except ValueError as exc:
        if isinstance(exc, OutboundURLError):
            raise
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        _check_address(ipaddress.ip_address("127.0.0.1"), host)
        if not resolve:
            return
    if not resolve:
        return
    try:
        infos = socket.getaddrinfo(host, port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ConnectionError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    for info in infos:
        _check_address(ipaddress.ip_address(info[4][0]), host)


_local = threading.local()


def _session() -> requests.Session:
    # One keep-alive session per thread: Slack/Teams/PagerDuty calls skip the TLS handshake.
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = shared.guard(requests.Session(), check=_check_address)
        session.trust_env = False  # no proxy from the environment: calls go where they are configured
    return session


def post(url: str, *, body: bytes, headers: dict[str, str]) -> requests.Response:
    """POST to a configured URL after the address check; raises OutboundURLError or requests errors."""
    check_url(url, resolve=True)
    return _session().post(url, data=body, headers=headers, timeout=settings.NOTIFICATIONS_HTTP_TIMEOUT_SECONDS,
                           allow_redirects=False)
