"""Retry and circuit-breaker policy shared by every telemetry source.

Both the ``requests``-based HTTP clients and the Kubernetes client (which uses
urllib3 through the official client) route each backend call through
:class:`Resilience`, so timeouts, retry budgets and breaker behaviour are the
same everywhere. The transport-specific code only has to raise the source's
``TelemetryError`` subclass with ``retryable`` set correctly.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable, TypeVar

import pybreaker
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from .errors import KIND_CIRCUIT_OPEN, TelemetryError

logger = logging.getLogger("reliability_studio.telemetry")

T = TypeVar("T")


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, TelemetryError) and exc.retryable


def _not_a_backend_failure(exc: BaseException) -> bool:
    # pybreaker "exclude" hook: 4xx, malformed bodies and programming errors say
    # nothing about backend health, so they must not trip the breaker.
    return not _is_retryable(exc)


class _OpenedAtListener(pybreaker.CircuitBreakerListener):
    """Remembers when the breaker opened, to tell callers how long to wait."""

    def __init__(self) -> None:
        self.opened_at = 0.0

    def state_change(self, cb, old_state, new_state) -> None:  # noqa: ANN001
        if new_state is not None and new_state.name == pybreaker.STATE_OPEN:
            self.opened_at = time.monotonic()
            logger.warning("%s circuit opened after %d failures", cb.name, cb.fail_counter)
        elif new_state is not None and old_state is not None:
            logger.info("%s circuit %s -> %s", cb.name, old_state.name, new_state.name)


class Resilience:
    """Bounded retries with exponential backoff plus one circuit breaker.

    Every *attempt* goes through the breaker, so a source that keeps failing
    stops receiving traffic even in the middle of a retry loop. Only transient
    failures (``TelemetryError.retryable``: 5xx, timeouts, connection errors)
    are retried or counted; everything else passes straight through.
    """

    def __init__(
        self,
        source: str,
        error_cls: type[TelemetryError],
        *,
        retries: int = 2,
        fail_max: int = 5,
        reset_timeout: float = 30.0,
        backoff: float = 0.2,
        backoff_max: float = 5.0,
    ) -> None:
        self.source = source
        self.error_cls = error_cls
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.backoff_max = backoff_max
        self._listener = _OpenedAtListener()
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=max(1, int(fail_max)),
            reset_timeout=reset_timeout,
            exclude=[_not_a_backend_failure],
            # Surface the real error (e.g. the 503 body) on the tripping call;
            # later calls get our "circuit open" error instead.
            throw_new_error_on_trip=False,
            listeners=[self._listener],
            name=source,
        )

    @property
    def state(self) -> str:
        """Current breaker state: "closed", "open" or "half-open"."""
        return self.breaker.current_state

    def call(self, fn: Callable[[], T], *, idempotent: bool) -> T:
        """Run ``fn`` under the breaker, retrying transient failures if idempotent."""
        if not idempotent or self.retries == 0:
            return self._attempt(fn)
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            # Jitter spreads out retries from many workers hitting one backend.
            wait=wait_exponential(multiplier=self.backoff, max=self.backoff_max)
            + wait_random(0, self.backoff),
            retry=retry_if_exception(_is_retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        return retrying(self._attempt, fn)

    def _attempt(self, fn: Callable[[], T]) -> T:
        try:
            # ``calling()`` (unlike ``breaker.call``) does not hold the breaker's
            # lock while ``fn`` runs, so concurrent requests are not serialised.
            with self.breaker.calling():
                return fn()
        except pybreaker.CircuitBreakerError:
            raise self.error_cls(
                f"{self.source} circuit open; retry after {self._retry_after()}",
                kind=KIND_CIRCUIT_OPEN,
            ) from None

    def _retry_after(self) -> str:
        elapsed = time.monotonic() - self._listener.opened_at
        remaining = max(0.0, self.breaker.reset_timeout - elapsed)
        if remaining >= 1:
            return f"{math.ceil(remaining)}s"
        return f"{remaining:.1f}s"

    def _log_retry(self, retry_state) -> None:  # noqa: ANN001
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        logger.warning(
            "%s attempt %d failed (%s); retrying in %.2fs",
            self.source,
            retry_state.attempt_number,
            getattr(exc, "kind", type(exc).__name__),
            retry_state.next_action.sleep if retry_state.next_action else 0.0,
        )
