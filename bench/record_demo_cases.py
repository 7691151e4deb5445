"""Record RCA cases from the real demo stack: the shop, a real Prometheus scraping it, real faults.

    .venv/bin/python bench/record_demo_cases.py --out bench/data/demo-recorded [--fault-seconds 60] [--settle-seconds 60]

For each fault in the plan (every demo service × error / latency / crash, plus milder repeats of
the deeper services) it injects the fault through the shop's control API, lets it run, recovers,
waits for the shop to settle, and then writes one case in the format of
`../shared/datasets/rca/FORMAT.md`: `metrics.csv` (per service: request rate, error ratio, p95
latency and `up`, read back from Prometheus with query_range at the scrape step — what the product
itself would see), `inject_time.txt` (the injection time), `topology.json` (from the shop's own
`GET /topology`), `logs.jsonl` (the shop's JSON log lines of the case window) and `truth.json`.
Nothing is synthetic: every number comes from the running processes. The plan is fixed (seeded
intensities), so re-running the command records the same faults; the measured series differ from
run to run, as on any real system. Last line: one JSON object (the cases written).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import random
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from reliability_studio.telemetry.prometheus import PrometheusClient  # noqa: E402
from reliability_studio.devtools.prometheus import start_prometheus  # noqa: E402
from reliability_studio.devtools.shop import start_shop  # noqa: E402

SERVICES = ("frontend", "catalog", "checkout", "payment", "database")
BEFORE_S = 300  # history before the injection in each case
STEP_S = 5
MAX_LOG_LINES = 1_000
QUERIES = {
    "requests": 'sum by (service) (rate(http_requests_total{job="shop"}[30s]))',
    "error-ratio": 'sum by (service) (rate(http_requests_total{job="shop",code=~"5.."}[30s])) '
                   '/ sum by (service) (rate(http_requests_total{job="shop"}[30s]))',
    "latency-p95": 'histogram_quantile(0.95, sum by (service, le) '
                   '(rate(http_request_duration_seconds_bucket{job="shop"}[30s])))',
}


def plan(seed: int) -> list[dict]:
    rng = random.Random(seed)
    faults = []
    for service in SERVICES:
        faults.append({"service": service, "fault": "error",
                       "body": {"kind": "error", "error_rate": round(rng.uniform(0.3, 0.6), 2)}})
        faults.append({"service": service, "fault": "latency",
                       "body": {"kind": "latency", "add_ms": rng.choice([400, 600, 900, 1200])}})
        faults.append({"service": service, "fault": "crash", "body": {"kind": "crash"}})
    for service in ("database", "payment", "checkout"):  # milder repeats: the harder half
        faults.append({"service": service, "fault": "error",
                       "body": {"kind": "error", "error_rate": round(rng.uniform(0.08, 0.15), 2)}})
        faults.append({"service": service, "fault": "latency",
                       "body": {"kind": "latency", "add_ms": rng.choice([150, 250])}})
    rng.shuffle(faults)
    return faults


def write_case(case_dir: Path, client: PrometheusClient, shop, port_service: dict, inject: float,
               end: float, fault: dict, log_lines: list[dict]) -> None:
    start = math.floor((inject - BEFORE_S) / STEP_S) * STEP_S
    stop = math.ceil(end / STEP_S) * STEP_S
    times = list(range(start, stop + 1, STEP_S))
    columns: dict[str, dict[int, float]] = {}
    for metric, promql in QUERIES.items():
        for series in client.query_range(promql, start, stop, STEP_S).series:
            service = series.labels.get("service")
            if service in SERVICES:
                columns[f"{service}_{metric}"] = {int(t): v for t, v in zip(series.timestamps, series.values)}
    for series in client.query_range('up{job="shop"}', start, stop, STEP_S).series:
        service = port_service.get(series.labels.get("instance", "").rsplit(":", 1)[-1])
        if service:
            columns[f"{service}_up"] = {int(t): v for t, v in zip(series.timestamps, series.values)}
    case_dir.mkdir(parents=True, exist_ok=True)
    names = sorted(columns)
    with open(case_dir / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time", *names])
        for t in times:
            row = [t]
            for name in names:
                value = columns[name].get(t)
                row.append("" if value is None or not math.isfinite(value) else f"{value:.6g}")
            writer.writerow(row)
    (case_dir / "inject_time.txt").write_text(f"{int(inject)}\n")
    topology = shop.control("GET", "/topology").json()
    edges = sorted({(e["from"], e["to"]) for e in topology["edges"]})
    (case_dir / "topology.json").write_text(json.dumps(
        {"services": [s["name"] for s in topology["services"]], "edges": [list(e) for e in edges]}) + "\n")
    kept = []
    for line in log_lines:
        service = line.get("service")
        when = _iso_seconds(line.get("ts"))
        if service not in SERVICES or when is None or not start <= when <= stop:
            continue
        # Every warning and error, 1 in 20 of the per-request info lines (by trace id, so a kept
        # request keeps all its hops), then at most MAX_LOG_LINES evenly spread: the files stay small.
        if line.get("level") == "info" and zlib.crc32(str(line.get("trace_id", when)).encode()) % 20:
            continue
        text = " ".join(f"{k}={v}" for k, v in line.items() if k not in ("ts", "service"))
        kept.append({"time": round(when, 3), "service": service, "line": text})
    stride = max(1, math.ceil(len(kept) / MAX_LOG_LINES))
    with open(case_dir / "logs.jsonl", "w") as handle:
        for item in kept[::stride]:
            handle.write(json.dumps(item) + "\n")
    (case_dir / "truth.json").write_text(json.dumps({"service": fault["service"], "fault": fault["fault"],
                                                     "injected": fault["body"]}) + "\n")


def _iso_seconds(value) -> float | None:
    from datetime import datetime

    if isinstance(value, (int, float)):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fault-seconds", type=float, default=60)
    parser.add_argument("--settle-seconds", type=float, default=60)
    parser.add_argument("--before-seconds", type=float, default=BEFORE_S, help="history before the first fault")
    parser.add_argument("--limit", type=int, default=0, help="record only the first N faults of the plan")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="rs-record-"))
    shop = start_shop(tmp, rps=20)
    prometheus = start_prometheus([f"127.0.0.1:{shop.port(s)}" for s in SERVICES], scrape_interval=f"{STEP_S}s",
                                  job="shop")
    port_service = {str(shop.port(s)): s for s in SERVICES}
    client = PrometheusClient(prometheus.url)
    faults = plan(args.seed)[: args.limit or None]
    written = []
    offsets: list[tuple[float, int]] = [(time.time(), 0)]  # (when, log byte offset): where a case's logs begin
    try:
        time.sleep(args.before_seconds)  # history before the first fault
        for index, fault in enumerate(faults, 1):
            inject = time.time()
            offsets.append((inject, shop.log_offset()))
            offset = max(o for t, o in offsets if t <= inject - BEFORE_S) if offsets[0][0] <= inject - BEFORE_S else 0
            response = shop.control("POST", f"/faults/{fault['service']}", json=fault["body"])
            response.raise_for_status()
            time.sleep(args.fault_seconds)
            end = time.time()
            shop.control("DELETE", f"/faults/{fault['service']}").raise_for_status()
            time.sleep(STEP_S * 2)  # the last scrape of the fault window lands
            name = f"demo-{index:02d}-{fault['service']}-{fault['fault']}"
            logs = shop.logs(offset)
            write_case(args.out / name, client, shop, port_service, inject, end, fault, logs)
            written.append(name)
            print(f"{index:2d}/{len(faults)} {name}", flush=True)
            time.sleep(max(0.0, args.settle_seconds - STEP_S * 2))
    finally:
        prometheus.stop()
        shop.stop()
    print(json.dumps({"out": str(args.out), "cases": len(written), "seed": args.seed}))


if __name__ == "__main__":
    main()
