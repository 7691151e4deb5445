"""Fault injection into the demo workload through its control API.

The product talks to the workload over HTTP the way it would to any real system (DESIGN.md); the
chaos command, the chaos API for admins and the fire drill all use this one client.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import requests
from django.conf import settings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


DEMO_DISABLED = ("the demo is disabled (DEMO_ENABLED is off): chaos and the fire drill act only on the demo "
                 "workload; set DEMO_ENABLED=true where it runs")


class ChaosError(Exception):
    """A refused or failed chaos operation; the message is one line for the operator."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def parse_duration_ms(text: str) -> float:
    """'800ms', '1.5s', '2m' or a bare number of milliseconds → milliseconds."""
    match = _DURATION.match(str(text))
    if not match:
        raise ChaosError(f"bad duration {text!r}; use e.g. 800ms, 1.5s or 2m")
    value, unit = float(match.group(1)), match.group(2) or "ms"
    return value * {"ms": 1, "s": 1000, "m": 60_000}[unit]


def validate_error_rate(rate: float) -> float:
    if not 0 < rate <= 1:
        raise ChaosError(f"error rate must be in (0, 1], got {rate}")
    return rate


@dataclass
class ChaosClient:
    base_url: str
    timeout: float = 5.0

    @classmethod
    def from_settings(cls) -> "ChaosClient":
        return cls(settings.DEMO_CONTROL_URL.rstrip("/"))

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        try:
            response = requests.request(method, self.base_url + path, json=body, timeout=self.timeout)
        except requests.RequestException:
            raise ChaosError(
                f"the demo workload's control API at {self.base_url} is unreachable; start the stack with `make run`",
                status=503,
            ) from None
        try:
            payload = response.json()
        except ValueError:
            raise ChaosError(f"the control API answered HTTP {response.status_code} without JSON", status=502) from None
        if response.status_code >= 400:
            raise ChaosError(payload.get("message", f"HTTP {response.status_code}"), status=response.status_code)
        return payload

    def status(self) -> dict:
        return self._call("GET", "/faults")

    def topology(self) -> dict:
        return self._call("GET", "/topology")

    def fail(self, service: str, error_rate: float) -> dict:
        return self._call("POST", f"/faults/{service}", {"kind": "error", "error_rate": validate_error_rate(error_rate)})

    def latency(self, service: str, add_ms: float) -> dict:
        if add_ms <= 0:
            raise ChaosError(f"added latency must be positive, got {add_ms}ms")
        return self._call("POST", f"/faults/{service}", {"kind": "latency", "add_ms": add_ms})

    def crash(self, service: str) -> dict:
        return self._call("POST", f"/faults/{service}", {"kind": "crash"})

    def recover(self, service: str | None = None) -> dict:
        return self._call("DELETE", f"/faults/{service}" if service else "/faults")
