"""Fixtures for the hardening tests: captured live events and a stand-in for the demo workload's
control API (so chaos endpoints answer without the demo running)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from incidents import events


@pytest.fixture
def published(monkeypatch):
    """Every live event actually sent (after commit), as (event type, data)."""
    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr(events, "_send", lambda groups, message, incident_id=None: sent.append((message["event"], message["data"])))
    return sent


class _ControlAPI(BaseHTTPRequestHandler):
    """The demo control API's shape (demo/control.py): GET /faults, GET|POST|DELETE /faults/<service>."""

    services = ("payment", "checkout")

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _state(self, name):
        return {"service": name, "up": True, "port": 0, "faults": []}

    def _route(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = self.path.strip("/").split("/")
        if parts == ["faults"]:
            return self._answer(200, {"services": {name: self._state(name) for name in self.services}})
        if len(parts) == 2 and parts[0] == "faults":
            if parts[1] not in self.services:
                return self._answer(404, {"message": f"unknown service {parts[1]!r}"})
            return self._answer(200, self._state(parts[1]))
        return self._answer(404, {"message": "no such endpoint"})

    do_GET = do_POST = do_DELETE = _route

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def control_api(settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ControlAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.DEMO_CONTROL_URL = f"http://127.0.0.1:{server.server_address[1]}"
    yield settings.DEMO_CONTROL_URL
    server.shutdown()
    server.server_close()
