"""The fault-injection control API (JSON over HTTP), served on ``--control-port``.

Routes::

    GET    /healthz              liveness of the workload and each service
    GET    /topology             the service graph with resolved ports
    GET    /faults               active faults of every service
    POST   /faults/<service>     inject {"kind": "error", "error_rate": 0.3}
                                        {"kind": "latency", "add_ms": 800}
                                        {"kind": "crash"}
    DELETE /faults/<service>     recover one service
    DELETE /faults               recover all services

Errors are JSON ``{"message": ...}``: 400 invalid input, 404 unknown service or
route, 405 wrong method. Invalid requests never change the fault state.
"""

from __future__ import annotations

import json
import threading
import time

from .faults import FaultBoard, FaultInputError, validate_fault
from .httpserver import TrackedServer, json_response
from .service import ServiceRuntime
from .telemetry import Telemetry
from .topology import topology_document


class ControlAPI:
    """Serves the control API and applies faults to the service runtimes."""

    def __init__(self, host: str, port: int, base_port: int, runtimes: dict[str, ServiceRuntime],
                 faults: FaultBoard, telemetry: Telemetry) -> None:
        self.host, self.port, self.base_port = host, port, base_port
        self.runtimes = runtimes
        self.faults = faults
        self.telemetry = telemetry
        self.started_at = time.time()
        # Serialises fault changes so a crash and a recover can't interleave on one port.
        self._lock = threading.Lock()
        self._server: TrackedServer | None = None

    def start(self) -> None:
        """Bind the control port and serve."""
        self._server = TrackedServer((self.host, self.port), self.handle)
        self._server.serve_in_thread("control-api")

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.close()

    def handle(self, method: str, path: str, headers: dict, body: bytes):
        """Route one control request; unexpected failures become a JSON 500."""
        try:
            return self._route(method, path, body)
        except OSError as exc:  # e.g. a recovered service's port was taken meanwhile
            return _error(500, f"control action failed: {exc}")

    def _route(self, method: str, path: str, body: bytes):
        parts = [p for p in path.split("?", 1)[0].split("/") if p]
        if parts == ["healthz"]:
            return self._only(method, "GET") or json_response(200, self._health())
        if parts == ["topology"]:
            return self._only(method, "GET") or json_response(
                200, topology_document(self.host, self.base_port))
        if parts == ["faults"]:
            if method == "GET":
                return json_response(200, self._all_faults())
            if method == "DELETE":
                with self._lock:
                    for name in self.runtimes:
                        self._recover(name)
                return json_response(200, self._all_faults())
            return _error(405, "use GET or DELETE on /faults")
        if len(parts) == 2 and parts[0] == "faults":
            return self._service_faults(method, parts[1], body)
        return _error(404, f"no such endpoint: {method} {path}")

    def _service_faults(self, method: str, service: str, body: bytes):
        if service not in self.faults:
            return _error(404, f"unknown service {service!r}; known: {', '.join(self.runtimes)}")
        if method == "GET":
            return json_response(200, self._service_state(service))
        if method == "DELETE":
            with self._lock:
                self._recover(service)
            return json_response(200, self._service_state(service))
        if method != "POST":
            return _error(405, f"use GET, POST or DELETE on /faults/{service}")
        try:
            payload = json.loads(body or b"null")
        except ValueError as exc:  # JSONDecodeError, or undecodable bytes
            return _error(400, f"malformed JSON body: {exc}")
        try:
            fault = validate_fault(payload)
        except FaultInputError as exc:
            return _error(400, str(exc))
        with self._lock:
            self.faults.apply(service, fault)
            if fault["kind"] == "crash":
                self.runtimes[service].stop()
        self.telemetry.log("control", "warn", f"fault injected into {service}", fault=fault)
        return json_response(200, self._service_state(service))

    def _recover(self, service: str) -> None:
        had_faults = bool(self.faults.get(service).describe())
        self.faults.clear(service)
        runtime = self.runtimes[service]
        if not runtime.running:
            runtime.start()  # a bind error surfaces as a 500 from handle()
        if had_faults:
            self.telemetry.log("control", "info", f"{service} recovered")

    def _service_state(self, service: str) -> dict:
        return {"service": service, "up": self.runtimes[service].running,
                "port": self.runtimes[service].port,
                "faults": self.faults.get(service).describe()}

    def _all_faults(self) -> dict:
        return {"services": {name: self._service_state(name) for name in self.runtimes}}

    def _health(self) -> dict:
        return {"status": "ok", "uptime_s": round(time.time() - self.started_at, 1),
                "services": {name: "up" if rt.running else "down"
                             for name, rt in self.runtimes.items()}}

    @staticmethod
    def _only(method: str, allowed: str):
        return None if method == allowed else _error(405, f"use {allowed}")


def _error(status: int, message: str):
    return json_response(status, {"message": message})
