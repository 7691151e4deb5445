"""The single HTTP client base used by every HTTP telemetry source.

Prometheus, Loki, Tempo and Grafana clients subclass :class:`HttpClient`, which
owns the ``requests.Session`` (connection pooling), timeouts, authentication,
tenant header, retry/breaker policy (:mod:`.resilience`) and error mapping.
Subclasses only build paths and parse bodies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from .. import outbound
from .config import shared_client
from .errors import (
    KIND_BAD_RESPONSE,
    KIND_CONNECTION,
    KIND_HTTP,
    KIND_NOT_CONFIGURED,
    KIND_NOT_FOUND,
    KIND_TIMEOUT,
    TelemetryError,
)
from .resilience import Resilience

logger = logging.getLogger("reliability_studio.telemetry")

_ERRNO_RE = re.compile(r"\[Errno -?\d+\] [^'\")]+")
_MAX_BODY_IN_MESSAGE = 500


class _BearerAuth(AuthBase):
    """Bearer-token auth whose repr never shows the token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "<BearerAuth ***>"


class _BasicAuth(HTTPBasicAuth):
    def __repr__(self) -> str:
        return f"<BasicAuth user={self.username!r} password=***>"


class HttpClient:
    """Base for HTTP telemetry clients.

    Args:
        url: base URL including any path prefix (``http://mimir/prometheus``).
            Empty/None means "not configured": constructing works, calls raise.
            ``user:pass@`` in the URL is moved into basic auth.
        token: bearer token (takes precedence over basic auth).
        username, password: basic auth.
        tenant: value for ``X-Scope-OrgID`` (Mimir/Loki/Tempo multi-tenancy).
        path_prefix: extra prefix appended to the URL path (e.g. ``/prometheus``).
        timeout: read timeout in seconds; ``connect_timeout`` defaults to it.
        retries: extra attempts for idempotent calls on transient failures.
        breaker_fail_max, breaker_reset_seconds: circuit breaker settings.
        backoff_seconds, backoff_max_seconds: exponential backoff bounds.
    """

    source = "telemetry"
    error_cls: type[TelemetryError] = TelemetryError
    url_setting = ""  # settings name quoted in the "not configured" error

    def __init__(
        self,
        url: str | None,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tenant: str | None = None,
        path_prefix: str = "",
        timeout: float = 10.0,
        connect_timeout: float | None = None,
        retries: int = 2,
        breaker_fail_max: int = 5,
        breaker_reset_seconds: float = 30.0,
        backoff_seconds: float = 0.2,
        backoff_max_seconds: float = 5.0,
        verify: bool | str = True,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url, url_user, url_password = _split_url(url or "", path_prefix)
        username = username or url_user
        password = password or url_password
        self._secrets = [s for s in (token, password) if s]
        self.timeout = (connect_timeout or timeout, timeout)
        # Data-source URLs come from configuration: refuse link-local / metadata addresses at connect.
        self.session = outbound.guard(session or requests.Session())
        self.session.verify = verify
        if token:
            self.session.auth = _BearerAuth(token)
            self.auth_kind = "bearer"
        elif username:
            self.session.auth = _BasicAuth(username, password or "")
            self.auth_kind = "basic"
        else:
            self.auth_kind = None
        if tenant:
            self.session.headers["X-Scope-OrgID"] = tenant
        self.session.headers["User-Agent"] = "reliability-studio"
        self._fingerprint = (
            self.base_url, self.auth_kind, username, tenant, self.timeout, retries,
            breaker_fail_max, breaker_reset_seconds, verify,
            hashlib.sha256("\0".join(self._secrets).encode()).hexdigest(),
        )
        self.resilience = Resilience(
            self.source,
            self.error_cls,
            retries=retries,
            fail_max=breaker_fail_max,
            reset_timeout=breaker_reset_seconds,
            backoff=backoff_seconds,
            backoff_max=backoff_max_seconds,
        )

    # -- public helpers ---------------------------------------------------

    @classmethod
    def shared(cls, settings: Any = None):
        """Process-wide instance built from settings (keeps breaker state across requests)."""
        return shared_client(cls, settings)

    def config_fingerprint(self) -> tuple:
        """Hashable summary of the configuration (secrets only as a digest)."""
        return self._fingerprint

    @property
    def configured(self) -> bool:
        """True when a base URL was given."""
        return bool(self.base_url)

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(url={self.base_url!r}, auth={self.auth_kind!r}, "
            f"breaker={self.resilience.state!r})"
        )

    # -- plumbing for subclasses -----------------------------------------

    def _error(self, message: str, **kwargs: Any) -> TelemetryError:
        return self.error_cls(self._redact(message), **kwargs)

    def _redact(self, text: str) -> str:
        # Defence in depth: a proxy may echo the Authorization header back.
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        data: Any = None,
        json_body: Any = None,
        idempotent: bool | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send one logical request (with retries/breaker) and return a 2xx response.

        ``idempotent`` defaults to True for GET/HEAD; read-only POSTs (PromQL
        queries) pass True explicitly so they are retried too.
        """
        if not self.configured:
            hint = f" (set {self.url_setting})" if self.url_setting else ""
            raise self._error(f"{self.source} is not configured{hint}", kind=KIND_NOT_CONFIGURED)
        if idempotent is None:
            idempotent = method in ("GET", "HEAD")
        url = self.base_url + path

        def attempt() -> requests.Response:
            started = time.perf_counter()
            try:
                resp = self.session.request(
                    method, url, params=params, data=data, json=json_body,
                    headers=headers, timeout=self.timeout,
                )
            except requests.Timeout as exc:
                raise self._error(
                    f"{method} {path} timed out after {self.timeout[1]:g}s ({_short(exc)})",
                    kind=KIND_TIMEOUT, retryable=True,
                ) from None
            except requests.ConnectionError as exc:
                raise self._error(
                    f"{method} {self.base_url}{path}: cannot connect ({_short(exc)})",
                    kind=KIND_CONNECTION, retryable=True,
                ) from None
            except requests.RequestException as exc:
                raise self._error(f"{method} {path}: {_short(exc)}", kind=KIND_CONNECTION) from None
            except outbound.OutboundURLRefused as exc:  # not retried, no connection was attempted
                raise self._error(f"{method} {self.base_url}{path}: {exc}", kind=KIND_CONNECTION) from None
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "%s %s %s -> %d in %.1f ms", self.source, method, path,
                    resp.status_code, (time.perf_counter() - started) * 1000,
                )
            if resp.status_code >= 400:
                raise self._error_from_response(resp, method, path)
            return resp

        return self.resilience.call(attempt, idempotent=idempotent)

    def _error_from_response(
        self, resp: requests.Response, method: str, path: str
    ) -> TelemetryError:
        """Build the error for a >= 400 response; subclasses parse their bodies."""
        kind, text = self._parse_error_body(resp)
        status = resp.status_code
        if kind is None:
            kind = KIND_NOT_FOUND if status == 404 else KIND_HTTP
        return self._error(
            f"{method} {path}: {text or resp.reason}",
            status=status, kind=kind, retryable=status >= 500,
        )

    def _parse_error_body(self, resp: requests.Response) -> tuple[str | None, str]:
        """Return (kind or None, message) from an error body. Default: plain text."""
        return None, _snippet(resp.text)

    def _json(self, resp: requests.Response) -> Any:
        """Decode a JSON body or raise a ``bad_response`` error."""
        try:
            return json.loads(resp.content)
        except ValueError:
            raise self._error(
                f"invalid JSON from {resp.request.method} {urlsplit(resp.url).path}: "
                f"{_snippet(resp.text, 200)!r}",
                status=resp.status_code, kind=KIND_BAD_RESPONSE,
            ) from None

    def _bad_response(self, what: str) -> TelemetryError:
        return self._error(f"unexpected response shape: {what}", kind=KIND_BAD_RESPONSE)


def _split_url(url: str, path_prefix: str) -> tuple[str, str | None, str | None]:
    """Return (base URL without credentials or trailing slash, user, password)."""
    if not url:
        return "", None, None
    parts = urlsplit(url.strip())
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if ":" in (parts.hostname or ""):  # IPv6 literal
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    path = parts.path.rstrip("/")
    if path_prefix:
        path += "/" + path_prefix.strip("/")
    base = urlunsplit((parts.scheme or "http", netloc, path, "", ""))
    return base, parts.username, parts.password


def _snippet(text: str, limit: int = _MAX_BODY_IN_MESSAGE) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit] + "…"


def _short(exc: BaseException) -> str:
    """Compact reason for a transport exception (requests' messages are huge)."""
    match = _ERRNO_RE.search(str(exc))
    if match:
        return match.group(0).strip()
    text = str(exc)
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "connection closed by server"
    if "Read timed out" in text:
        return "read timeout"
    return type(exc).__name__
