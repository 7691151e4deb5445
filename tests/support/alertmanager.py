"""A throwaway real Alertmanager (Debian package prometheus-alertmanager) on a free loopback port.

It delivers every group to one webhook receiver with a bearer token, with short timers so that a
test sees firing and resolved notifications within seconds. Clustering is off (no gossip port).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..ci import in_ci

ALERTMANAGER_BIN = os.environ.get("RS_ALERTMANAGER_BIN", "/usr/bin/prometheus-alertmanager")


def alertmanager_available() -> bool:
    return Path(ALERTMANAGER_BIN).is_file() and os.access(ALERTMANAGER_BIN, os.X_OK)


def require_alertmanager() -> None:
    """Skip without the binary on a developer's machine; in CI (`CI` set) its absence is a failure."""
    if alertmanager_available():
        return
    message = f"{ALERTMANAGER_BIN} not found: apt-get install prometheus-alertmanager (make system-deps-test)"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AlertmanagerHandle:
    url: str
    port: int
    dir: Path
    process: subprocess.Popen

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.dir / "alertmanager.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def start_alertmanager(webhook_url: str, token: str, *, group_by: list[str] | None = None,
                       group_wait: str = "1s", group_interval: str = "2s", resolve_timeout: str = "5s",
                       ready_timeout: float = 30.0) -> AlertmanagerHandle:
    """Start Alertmanager routing everything to ``webhook_url`` with ``Authorization: Bearer <token>``."""
    config = {
        "global": {"resolve_timeout": resolve_timeout},
        "route": {"receiver": "reliability-studio", "group_by": group_by or ["alertname"],
                  "group_wait": group_wait, "group_interval": group_interval, "repeat_interval": "1h"},
        "receivers": [{
            "name": "reliability-studio",
            "webhook_configs": [{
                "url": webhook_url, "send_resolved": True,
                "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
            }],
        }],
    }
    last_error = ""
    for _ in range(3):  # a probed-free port can be taken before the child binds it
        port = _free_port()
        workdir = Path(tempfile.mkdtemp(prefix="rs-alertmanager-"))
        (workdir / "alertmanager.yml").write_text(json.dumps(config, indent=2))  # JSON is YAML
        with open(workdir / "alertmanager.log", "wb") as log:
            process = subprocess.Popen(
                [ALERTMANAGER_BIN, f"--config.file={workdir / 'alertmanager.yml'}",
                 f"--storage.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                 "--cluster.listen-address=", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        handle = AlertmanagerHandle(f"http://127.0.0.1:{port}", port, workdir, process)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"{handle.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return handle
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        last_error = handle.log_tail()
        handle.stop()
    raise RuntimeError(f"Alertmanager did not become ready:\n{last_error}")
