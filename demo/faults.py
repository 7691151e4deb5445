"""Fault state per service, input validation for the control API, error sampling.

A service can carry one fault of each kind at once (e.g. latency *and* errors);
posting a kind again replaces that kind's settings.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, field

KINDS = ("error", "latency", "crash")
MAX_ADD_MS = 60_000
# Errors are drawn in shuffled blocks of this many requests (see ErrorSampler).
STRATIFIED_BLOCK = 20


class FaultInputError(ValueError):
    """Invalid fault request; the message is returned to the client as a 400."""


class ErrorSampler:
    """Decides per request whether an injected error fires.

    Every request fails with probability exactly ``rate``. In "stratified" mode
    (default) the draws are made without replacement from shuffled blocks of 20
    holding ``rate * 20`` failures (the fractional part is itself drawn), so a
    short window (a 30 s rate over a few hundred requests) shows the injected
    ratio instead of ±4 % binomial noise. "iid" mode uses independent draws.
    """

    def __init__(self, rate: float, sampling: str = "stratified",
                 rng: random.Random | None = None) -> None:
        self.rate = rate
        self.sampling = sampling
        self._rng = rng or random.Random()
        self._deck: list[bool] = []
        self._lock = threading.Lock()

    def draw(self) -> bool:
        """True when this request must fail."""
        with self._lock:
            if self.sampling == "iid":
                return self._rng.random() < self.rate
            if not self._deck:
                self._deck = self._new_deck()
            return self._deck.pop()

    def _new_deck(self) -> list[bool]:
        expected = self.rate * STRATIFIED_BLOCK
        failures = int(expected) + (self._rng.random() < expected - int(expected))
        deck = [True] * failures + [False] * (STRATIFIED_BLOCK - failures)
        self._rng.shuffle(deck)
        return deck


@dataclass
class ServiceFaults:
    """Active faults of one service (None / False when inactive)."""

    error: ErrorSampler | None = None
    add_ms: float | None = None
    crashed: bool = False
    since: dict[str, float] = field(default_factory=dict)

    def describe(self) -> list[dict]:
        """Active faults as JSON-ready dicts."""
        faults = []
        if self.error is not None:
            faults.append({"kind": "error", "error_rate": self.error.rate,
                           "sampling": self.error.sampling, "since": self.since.get("error")})
        if self.add_ms is not None:
            faults.append({"kind": "latency", "add_ms": self.add_ms,
                           "since": self.since.get("latency")})
        if self.crashed:
            faults.append({"kind": "crash", "since": self.since.get("crash")})
        return faults

    def active(self, kind: str) -> bool:
        """Whether a fault of ``kind`` is currently injected."""
        return {"error": self.error is not None, "latency": self.add_ms is not None,
                "crash": self.crashed}[kind]


def _number(body: dict, key: str) -> float:
    value = body.get(key)
    # bool is an int subclass; `true` is not a rate.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FaultInputError(f"'{key}' must be a finite number, got {value!r}")
    return float(value)


def validate_fault(body: object) -> dict:
    """Check a ``POST /faults/<service>`` body; return it normalised or raise FaultInputError."""
    if not isinstance(body, dict):
        raise FaultInputError("body must be a JSON object like {\"kind\": \"error\", \"error_rate\": 0.3}")
    kind = body.get("kind")
    if kind not in KINDS:
        raise FaultInputError(f"unknown fault kind {kind!r}; expected one of {', '.join(KINDS)}")
    allowed = {"error": {"kind", "error_rate", "sampling"}, "latency": {"kind", "add_ms"},
               "crash": {"kind"}}[kind]
    extra = sorted(set(body) - allowed)
    if extra:
        raise FaultInputError(f"unexpected field(s) for kind {kind!r}: {', '.join(extra)}")
    if kind == "error":
        if "error_rate" not in body:
            raise FaultInputError("'error_rate' is required for kind 'error'")
        rate = _number(body, "error_rate")
        if not 0 < rate <= 1:
            raise FaultInputError(f"'error_rate' must be in (0, 1], got {rate}")
        sampling = body.get("sampling", "stratified")
        if sampling not in ("stratified", "iid"):
            raise FaultInputError(f"'sampling' must be 'stratified' or 'iid', got {sampling!r}")
        return {"kind": kind, "error_rate": rate, "sampling": sampling}
    if kind == "latency":
        if "add_ms" not in body:
            raise FaultInputError("'add_ms' is required for kind 'latency'")
        add_ms = _number(body, "add_ms")
        if not 0 < add_ms <= MAX_ADD_MS:
            raise FaultInputError(f"'add_ms' must be in (0, {MAX_ADD_MS}], got {add_ms:g}")
        return {"kind": kind, "add_ms": add_ms}
    return {"kind": kind}


class FaultBoard:
    """Thread-safe fault state for all services."""

    def __init__(self, services: list[str], rng: random.Random | None = None) -> None:
        self._faults = {name: ServiceFaults() for name in services}
        self._lock = threading.Lock()
        self._rng = rng or random.Random()

    def __contains__(self, service: str) -> bool:
        return service in self._faults

    def get(self, service: str) -> ServiceFaults:
        """The live fault state of ``service`` (read without locking: fields swap atomically)."""
        return self._faults[service]

    def apply(self, service: str, fault: dict) -> None:
        """Inject a validated fault (replacing any fault of the same kind)."""
        with self._lock:
            state = self._faults[service]
            kind = fault["kind"]
            if kind == "error":
                state.error = ErrorSampler(fault["error_rate"], fault["sampling"],
                                           random.Random(self._rng.random()))
            elif kind == "latency":
                state.add_ms = fault["add_ms"]
            else:
                state.crashed = True
            state.since[kind] = time.time()

    def clear(self, service: str) -> bool:
        """Remove every fault of ``service``; return whether it had been crashed."""
        with self._lock:
            state = self._faults[service]
            was_crashed = state.crashed
            state.error, state.add_ms, state.crashed = None, None, False
            state.since.clear()
            return was_crashed
