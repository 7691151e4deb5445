"""Outgoing HTTP to URLs that users configure (webhooks, telemetry data sources): never to link-local
or cloud metadata addresses, unless allowed.

A metadata endpoint hands out the machine's cloud credentials to anyone who can make it send a
request, so a webhook or data-source URL must not point there. Loopback and private ranges stay
allowed: self-hosted Prometheus, Grafana and webhook receivers live there.

Checked twice: when the URL is saved (`check_url`, a clear 400 / form error; the literal address and
the names below, and what the name resolves to when it resolves) and when each connection is opened
(`guard(session)`: the connection resolves the name once, checks every address, and connects to the
checked address, so a name that re-resolves to 169.254.169.254 after the save check — DNS rebinding —
is still refused, before any byte is sent).

Settings (read with getattr, so both are optional):
- OUTBOUND_ALLOW_LINK_LOCAL (bool, default False): turn the refusal off entirely.
- OUTBOUND_ALLOWED_HOSTS (list, default []): host names, addresses or networks (CIDR) allowed even
  though they are link-local (e.g. a real service on a link-local address).
"""
from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Callable
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Link-local IPv4 (the metadata address 169.254.169.254 of AWS, GCP, Azure, OpenStack, DigitalOcean,
# Oracle; 169.254.170.2 of ECS task credentials; 169.254.0.23 of Tencent), link-local IPv6, AWS' IPv6
# metadata address, Alibaba Cloud's, and Oracle Cloud's older one.
BLOCKED_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32", "192.0.0.192/32",
))
# Names of metadata services (they resolve to the addresses above inside the cloud; refused by name
# as well, so the refusal does not depend on the resolver the check happens to see).
BLOCKED_HOSTNAMES = frozenset({
    "metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal",
    "metadata.tencentyun.com",
})
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")  # an IPv6 path to any IPv4 address


class OutboundURLRefused(ValueError):
    """The URL is malformed or points at an address outgoing calls may not reach.

    A ValueError (not an OSError): urllib3 and requests let it through unchanged, so a refused
    connection is never retried and never mistaken for a network failure.
    """


def _setting(name: str, default):
    try:
        return getattr(settings, name, default)
    except ImproperlyConfigured:  # the telemetry clients also run without Django settings
        return default


def _allow_link_local() -> bool:
    return bool(_setting("OUTBOUND_ALLOW_LINK_LOCAL", False))


def _allowed_entries() -> list[str]:
    value = _setting("OUTBOUND_ALLOWED_HOSTS", []) or []
    return [e.strip() for e in value.split(",") if e.strip()] if isinstance(value, str) else list(value)


def _host_allowed(host: str) -> bool:
    return host.lower().rstrip(".") in {e.lower().rstrip(".") for e in _allowed_entries()}


def _address_allowed(ip: IPAddress) -> bool:
    for entry in _allowed_entries():
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a host name entry
    return False


def _embedded_ipv4(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return ip.ipv4_mapped
        if ip in NAT64_PREFIX:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def check_address(ip: IPAddress, host: str) -> None:
    """Raise OutboundURLRefused if `ip` (what `host` names) is link-local, metadata or not unicast."""
    ip = _embedded_ipv4(ip)
    named = host if host.strip("[]") == str(ip) else f"{host} ({ip})"
    if ip.is_unspecified or ip.is_multicast:
        raise OutboundURLRefused(f"{named} is not a unicast address")
    if _allow_link_local() or _host_allowed(host) or _address_allowed(ip):
        return
    if any(ip in net for net in BLOCKED_NETWORKS):
        raise OutboundURLRefused(
            f"{named} is a link-local or metadata address (where clouds serve credentials); refused "
            "(allow it with OUTBOUND_ALLOWED_HOSTS or OUTBOUND_ALLOW_LINK_LOCAL)")


def check_host(host: str, check: Callable[[IPAddress, str], None] = check_address) -> IPAddress | None:
    """Check a host as written: a literal address with `check`, a name against the metadata
    services' names. Returns the literal address, or None for a name that must still be resolved."""
    bare = host.strip("[]")
    try:
        ip = ipaddress.ip_address(bare.split("%", 1)[0])  # fe80::1%eth0: the zone is not the address
    except ValueError:
        ip = None
    if ip is not None:
        check(ip, host)
        return ip
    name = bare.lower().rstrip(".")
    if name in BLOCKED_HOSTNAMES and not (_allow_link_local() or _host_allowed(name)):
        raise OutboundURLRefused(f"{host} is a cloud metadata service (a link-local or metadata address); refused "
                                 "(allow it with OUTBOUND_ALLOWED_HOSTS or OUTBOUND_ALLOW_LINK_LOCAL)")
    return None


def resolve_checked(host: str, port: int, check: Callable[[IPAddress, str], None] = check_address) -> list[str]:
    """Resolve `host` once and check every address; returns the addresses to connect to.

    Raises socket.gaierror when the name does not resolve, OutboundURLRefused when any address is
    refused (one bad answer is enough: a resolver that mixes one in is not to be trusted).
    """
    if check_host(host, check) is not None:
        return [host.strip("[]")]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    for address in addresses:
        check(ipaddress.ip_address(address.split("%", 1)[0]), host)
    return addresses


def check_url(url: str, *, resolve: bool = True) -> None:
    """Raise OutboundURLRefused unless `url` is an http(s) URL outgoing calls may reach.

    With `resolve`, what the name resolves to is checked too, when it resolves (at save time DNS may
    legitimately be unavailable; the connection is checked again anyway).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundURLRefused(f"malformed URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundURLRefused("must be an http:// or https:// URL with a host")
    if any(c.isspace() for c in url):
        raise OutboundURLRefused("malformed URL: contains whitespace")
    if check_host(parts.hostname) is None and resolve:
        try:
            resolve_checked(parts.hostname, port or (443 if parts.scheme == "https" else 80))
        except (socket.gaierror, UnicodeError):
            pass


# --- the connect-time check ------------------------------------------------------------------

class _CheckedConnectionMixin:
    """Opens the socket to an address that passed the check, resolved by this very connection."""

    address_check: Callable[[IPAddress, str], None] = staticmethod(check_address)

    def _new_conn(self) -> socket.socket:
        try:
            addresses = resolve_checked(self._dns_host, self.port, self.address_check)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        error: OSError | None = None
        for address in addresses:
            try:
                sock = urllib3_connection.create_connection(
                    (address, self.port), self.timeout, source_address=self.source_address,
                    socket_options=self.socket_options)
            except socket.timeout as exc:
                raise ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})") from exc
            except OSError as exc:
                error = exc
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error


def _pool_classes(check: Callable[[IPAddress, str], None]) -> dict[str, type]:
    mixin = type("_Checked", (_CheckedConnectionMixin,), {"address_check": staticmethod(check)})
    http_conn = type("CheckedHTTPConnection", (mixin, HTTPConnection), {})
    https_conn = type("CheckedHTTPSConnection", (mixin, HTTPSConnection), {})
    return {"http": type("CheckedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("CheckedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})}


class CheckedAdapter(HTTPAdapter):
    """A requests adapter whose connections refuse link-local and metadata addresses (and whatever
    else `check` refuses) at connect time."""

    def __init__(self, *args, check: Callable[[IPAddress, str], None] = check_address, **kwargs):
        self._pool_classes = _pool_classes(check)
        super().__init__(*args, **kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes

    def __setstate__(self, state):  # requests pickles adapters with their pool manager rebuilt
        self._pool_classes = _pool_classes(check_address)
        super().__setstate__(state)


def guard(session: requests.Session, *, check: Callable[[IPAddress, str], None] = check_address) -> requests.Session:
    """Mount the checked adapter on `session` for http:// and https:// (returns the session)."""
    adapter = CheckedAdapter(check=check)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
