"""Start a throwaway real Prometheus server for tests and benchmarks.

Usage::

    handle = start_prometheus(["127.0.0.1:8000"], scrape_interval="1s")
    try:
        ...  # handle.url -> "http://127.0.0.1:<port>"
    finally:
        handle.stop()

Prometheus always scrapes itself (job "prometheus"); ``scrape_targets`` go in
job ``job`` (default "workload"). Targets are "host:port" or full URLs
("http://host:port/custom/metrics"). Only loopback ports are used; the data
directory is a temp dir removed on stop.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

PROMETHEUS_BIN = os.environ.get("RS_PROMETHEUS_BIN", "/usr/bin/prometheus")


def prometheus_available() -> bool:
    """True when the Prometheus binary exists (tests skip otherwise)."""
    return Path(PROMETHEUS_BIN).is_file() and os.access(PROMETHEUS_BIN, os.X_OK)


@dataclass
class PrometheusHandle:
    url: str
    port: int
    data_dir: Path
    process: subprocess.Popen
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Terminate the server and remove its temp directory (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self) -> None:
        """Stop the server abruptly (an outage), keeping its data and port for ``restart()``."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self, ready_timeout: float = 30.0) -> None:
        """Start the same command again (same port, config and data) and wait for ``/-/ready``."""
        self.kill()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.process.args, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        if not _wait_ready(self, ready_timeout):
            raise RuntimeError(f"Prometheus did not become ready again:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_for_series(self, promql: str = 'up{job="prometheus"}', timeout: float = 20.0) -> None:
        """Block until an instant query for ``promql`` returns at least one sample."""
        deadline = time.monotonic() + timeout
        query = urllib.request.Request(
            f"{self.url}/api/v1/query",
            data=urllib.parse.urlencode({"query": promql}).encode(),
        )
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(query, timeout=2) as resp:
                    if json.load(resp)["data"]["result"]:
                        return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"no data for {promql!r} after {timeout}s\n{self.log_tail()}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _static_configs(targets: list[str], target_labels: dict[str, dict[str, str]]) -> list[dict]:
    configs = []
    for target in targets:
        extra = dict(target_labels.get(target, {}))
        if "://" in target:
            parts = urlsplit(target)
            labels = {"__scheme__": parts.scheme, "__metrics_path__": parts.path or "/metrics", **extra}
            configs.append({"targets": [parts.netloc], "labels": labels})
        else:
            configs.append({"targets": [target], **({"labels": extra} if extra else {})})
    return configs


def _write_config(
    path: Path, port: int, targets: list[str], scrape_interval: str, job: str,
    rule_files: list[str], target_labels: dict[str, dict[str, str]] | None = None,
    alertmanagers: list[str] | None = None,
) -> None:
    scrape_configs = [
        {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
    ]
    if targets:
        job_config = {"job_name": job, "static_configs": _static_configs(targets, target_labels or {})}
        if target_labels:
            # As demo.prometheus_config does: target labels (e.g. service=payment, so that
            # up{service="payment"} exists) must not rename the same label on the scraped series.
            job_config["honor_labels"] = True
        scrape_configs.append(job_config)
    config = {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
        },
        "rule_files": rule_files,
        "scrape_configs": scrape_configs,
    }
    if alertmanagers:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    # JSON is valid YAML, so no YAML dependency is needed here.
    path.write_text(json.dumps(config, indent=2))


def start_prometheus(
    scrape_targets: list[str],
    scrape_interval: str = "1s",
    *,
    job: str = "workload",
    rule_files: list[str] | None = None,
    extra_args: list[str] | None = None,
    ready_timeout: float = 30.0,
    target_labels: dict[str, dict[str, str]] | None = None,
    alertmanagers: list[str] | None = None,
) -> PrometheusHandle:
    """Start ``/usr/bin/prometheus`` on a free loopback port and wait for ``/-/ready``.

    ``target_labels`` maps a target to labels put on its series (``up`` included);
    ``alertmanagers`` ("host:port") receive the alerts of ``rule_files``' alerting rules."""
    if not prometheus_available():
        raise FileNotFoundError(f"Prometheus binary not found at {PROMETHEUS_BIN}")
    last_error = ""
    for _ in range(3):  # the free port may be grabbed between probe and bind
        port = _free_port()
        data_dir = Path(tempfile.mkdtemp(prefix="rs-prometheus-"))
        config_path = data_dir / "prometheus.yml"
        _write_config(config_path, port, list(scrape_targets), scrape_interval, job,
                      list(rule_files or []), target_labels, alertmanagers)
        log_path = data_dir / "prometheus.log"
        cmd = [
            PROMETHEUS_BIN,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={data_dir / 'data'}",
            f"--config.file={config_path}",
            "--web.enable-lifecycle",
            "--log.level=warn",
            *(extra_args or []),
        ]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        handle = PrometheusHandle(f"http://127.0.0.1:{port}", port, data_dir, process, log_path)
        atexit.register(handle.stop)
        if _wait_ready(handle, ready_timeout):
            return handle
        last_error = handle.log_tail()
        handle.stop()
    raise RuntimeError(f"Prometheus did not become ready:\n{last_error}")


def _wait_ready(handle: PrometheusHandle, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{handle.url}/-/ready", timeout=1) as resp:
                if resp.status == 200:
                    return True
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    return False
