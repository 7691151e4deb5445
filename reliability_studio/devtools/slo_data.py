"""A real Prometheus holding known, deterministic SLO data (tests and bench/slo.py).

Series are written as OpenMetrics and turned into TSDB blocks with
`promtool tsdb create-blocks-from openmetrics` in the data directory *before* Prometheus starts,
so days of history exist at once and every error ratio is known exactly. A scenario gives, per
service, the request rate and the error (or slow) fraction as functions of time; counters
integrate them step by step, so the analytic value of any window is a closed-form sum.
"""
from __future__ import annotations

import atexit
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .prometheus import (PROMETHEUS_BIN, PrometheusHandle, _free_port, _wait_ready, _write_config,
                         prometheus_available)

PROMTOOL_BIN = str(Path(PROMETHEUS_BIN).with_name("promtool"))
JOB = "shop"
INTEGRATION_STEP = 60.0


def tools_available() -> bool:
    return prometheus_available() and Path(PROMTOOL_BIN).is_file()


@dataclass
class Segment:
    start: float
    end: float
    step: float


@dataclass
class ServiceData:
    """One service: `rate(t)` requests/s, `bad(t)` fraction of 5xx, `slow(t)` fraction over 0.5 s."""

    service: str
    segments: list[Segment]
    rate: Callable[[float], float] = lambda t: 10.0
    bad: Callable[[float], float] = lambda t: 0.0
    slow: Callable[[float], float] | None = None
    route: str = "/"
    instance: str = "shop:9000"
    extra_times: tuple[float, ...] = ()  # more sample times (window starts, burst edges)


@dataclass
class Dataset:
    services: list[ServiceData] = field(default_factory=list)


def _times(segments: list[Segment], extra=()) -> list[float]:
    found = {round(t, 3) for t in extra}
    for seg in segments:
        t = seg.start
        while t <= seg.end + 1e-9:
            found.add(round(t, 3))
            t += seg.step
    return sorted(found)


def _fmt(value: float) -> str:
    return repr(float(value))


def write_openmetrics(dataset: Dataset, path: Path) -> None:
    """Counters `http_requests_total{code}` and histogram `http_request_duration_seconds`."""
    requests_lines: list[str] = []
    hist_lines: list[str] = []
    for svc in dataset.services:
        base = f'job="{JOB}",instance="{svc.instance}",service="{svc.service}",route="{svc.route}"'
        ok = err = fast = total = slow_total = 0.0
        times = _times(svc.segments, svc.extra_times)
        prev = None
        for t in times:
            # Integrate between samples in sub-steps of at most INTEGRATION_STEP (the rates are
            # piecewise constant on that grid), so sparse samples still hold exact counts.
            while prev is not None and prev < t - 1e-9:
                nxt = min(t, (math.floor(prev / INTEGRATION_STEP + 1e-9) + 1) * INTEGRATION_STEP)
                dt, mid = nxt - prev, (nxt + prev) / 2
                n = svc.rate(mid) * dt
                e = n * svc.bad(mid)
                ok, err = ok + n - e, err + e
                if svc.slow is not None:
                    s = n * svc.slow(mid)
                    fast, slow_total, total = fast + n - s, slow_total + s, total + n
                prev = nxt
            prev = t
            ts = f"{t:.3f}"
            requests_lines.append(f'http_requests_total{{{base},code="200"}} {_fmt(ok)} {ts}')
            requests_lines.append(f'http_requests_total{{{base},code="500"}} {_fmt(err)} {ts}')
            if svc.slow is not None:
                hb = f'job="{JOB}",instance="{svc.instance}",service="{svc.service}",route="{svc.route}"'
                hist_lines.append(f'http_request_duration_seconds_bucket{{{hb},le="0.1"}} {_fmt(fast * 0.5)} {ts}')
                hist_lines.append(f'http_request_duration_seconds_bucket{{{hb},le="0.5"}} {_fmt(fast)} {ts}')
                hist_lines.append(f'http_request_duration_seconds_bucket{{{hb},le="+Inf"}} {_fmt(total)} {ts}')
                hist_lines.append(f'http_request_duration_seconds_count{{{hb}}} {_fmt(total)} {ts}')
                hist_lines.append(f'http_request_duration_seconds_sum{{{hb}}} {_fmt(total * 0.2)} {ts}')
    with open(path, "w") as out:
        out.write("# TYPE http_requests counter\n")
        out.write("\n".join(requests_lines) + "\n")
        if hist_lines:
            out.write("# TYPE http_request_duration_seconds histogram\n")
            out.write("\n".join(hist_lines) + "\n")
        out.write("# EOF\n")


def start_backfilled_prometheus(dataset: Dataset, *, ready_timeout: float = 60.0) -> PrometheusHandle:
    """Backfill `dataset` into a fresh data directory, then start Prometheus on it (no scrapes
    but its own). Retention is set far out so that old backfilled blocks are kept."""
    root = Path(tempfile.mkdtemp(prefix="rs-slo-prometheus-"))
    data = root / "data"
    data.mkdir()
    source = root / "input.om"
    write_openmetrics(dataset, source)
    done = subprocess.run([PROMTOOL_BIN, "tsdb", "create-blocks-from", "openmetrics", "-q", str(source), str(data)],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"promtool create-blocks-from failed: {done.stderr.strip()[-2000:]}")
    source.unlink()
    last = ""
    for _ in range(3):
        port = _free_port()
        config = root / "prometheus.yml"
        _write_config(config, port, [], "15s", "workload", [])
        log_path = root / "prometheus.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [PROMETHEUS_BIN, f"--web.listen-address=127.0.0.1:{port}", f"--storage.tsdb.path={data}",
                 f"--config.file={config}", "--storage.tsdb.retention.time=20y", "--log.level=warn",
                 "--query.lookback-delta=5m"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        handle = PrometheusHandle(f"http://127.0.0.1:{port}", port, root, process, log_path)
        atexit.register(handle.stop)
        if _wait_ready(handle, ready_timeout):
            return handle
        last = handle.log_tail()
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"Prometheus did not become ready:\n{last}")


def promtool_check_rules(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL_BIN, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
