"""Run the demo shop as a real subprocess on free loopback ports (tests and benchmarks)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from demo.topology import SERVICES, service_port

REPO = Path(__file__).resolve().parents[2]
SERVICE_COUNT = len(SERVICES)


def _ports_free(ports: list[int]) -> bool:
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _free_port_block() -> tuple[int, int]:
    """(control_port, base_port): control_port followed by SERVICE_COUNT free service ports."""
    for _ in range(200):
        control = random.randrange(20000, 60000)
        if _ports_free(list(range(control, control + SERVICE_COUNT + 1))):
            return control, control + 1
    raise RuntimeError("no free port block found")


@dataclass
class Shop:
    """A running workload process plus helpers to talk to it."""

    process: subprocess.Popen
    control_port: int
    base_port: int
    log_path: Path

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    def port(self, service: str) -> int:
        return service_port(service, self.base_port)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.port(service)}"

    def control(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.control_url + path, timeout=10, **kwargs)

    def metrics(self, service: str) -> dict[tuple[str, frozenset], float]:
        """Samples of a service's /metrics as {(name, labels): value}."""
        text = requests.get(self.url(service) + "/metrics", timeout=5).text
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def requests_by_code(self, service: str, route: str) -> dict[str, float]:
        """http_requests_total per status code for one route."""
        counts: dict[str, float] = {}
        for (name, labels), value in self.metrics(service).items():
            labels = dict(labels)
            if name == "http_requests_total" and labels.get("route") == route:
                counts[labels["code"]] = value
        return counts

    def log_offset(self) -> int:
        return self.log_path.stat().st_size

    def logs(self, since: int = 0) -> list[dict]:
        """Parsed JSON log lines written after byte offset ``since``."""
        with open(self.log_path, "rb") as handle:
            handle.seek(since)
            data = handle.read()
        lines = data.decode(errors="replace").splitlines()
        if data and not data.endswith(b"\n"):
            lines = lines[:-1]  # a line still being written
        return [json.loads(line) for line in lines if line.strip()]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def start_shop(tmp_dir: Path, rps: float = 60, env: dict | None = None) -> Shop:
    """Start ``python -m demo`` on free ports and wait until /healthz answers."""
    last_error = ""
    for _attempt in range(3):  # a probed-free port can be taken before the child binds it
        control, base = _free_port_block()
        log_path = tmp_dir / f"shop-{control}.log"
        with open(log_path, "wb") as out, open(tmp_dir / f"shop-{control}.err", "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "demo", "--host", "127.0.0.1", "--base-port", str(base),
                 "--control-port", str(control), "--rps", str(rps)],
                cwd=REPO, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                start_new_session=True, env={**os.environ, **(env or {})})
        shop = Shop(process, control, base, log_path)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if requests.get(shop.control_url + "/healthz", timeout=1).status_code == 200:
                    return shop
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        shop.stop()
        last_error = (tmp_dir / f"shop-{control}.err").read_text(errors="replace")
    raise RuntimeError(f"demo workload did not start:\n{last_error}")
