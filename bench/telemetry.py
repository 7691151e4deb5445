"""Latency overhead of PrometheusClient versus bare ``requests`` against a real Prometheus.

Run from the repository root::

    .venv/bin/python bench/telemetry.py [--iterations 400] [--warmup-seconds 15]

Starts /usr/bin/prometheus scraping itself every second, waits so the range
query has data, then times the same range query three ways, interleaved
(rotating the order each iteration so no variant always runs first):

* ``client``  - ``PrometheusClient.query_range`` (session, breaker, retry
  wrapper, envelope checks, parsing into dataclasses);
* ``bare``    - ``requests.post(...).json()`` (new connection per call, the
  brief's baseline);
* ``session`` - ``requests.Session().post(...).json()`` (keep-alive, the
  tightest baseline).

The last line printed is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from reliability_studio.telemetry.prometheus import PrometheusClient  # noqa: E402
from reliability_studio.devtools.prometheus import start_prometheus  # noqa: E402

QUERY = "sum by (job)(rate(prometheus_http_requests_total[1m]))"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = (len(ordered) - 1) * pct / 100
    low, high = int(index), min(int(index) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (index - low)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--warmup-seconds", type=float, default=15.0)
    args = parser.parse_args()

    handle = start_prometheus([], scrape_interval="1s")
    try:
        handle.wait_for_series('up{job="prometheus"}')
        print(f"prometheus at {handle.url}; scraping itself for {args.warmup_seconds:g}s...",
              file=sys.stderr)
        time.sleep(args.warmup_seconds)

        end = time.time()
        start, step = end - 15 * 60, 15
        form = {"query": QUERY, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step)}
        url = f"{handle.url}/api/v1/query_range"
        client = PrometheusClient(handle.url, timeout=10)
        session = requests.Session()

        def run_client() -> None:
            result = client.query_range(QUERY, start, end, step)
            assert result.series, "range query returned no series"

        def run_bare() -> None:
            body = requests.post(url, data=form, timeout=10).json()
            assert body["data"]["result"]

        def run_session() -> None:
            body = session.post(url, data=form, timeout=10).json()
            assert body["data"]["result"]

        variants = {"client": run_client, "bare": run_bare, "session": run_session}
        samples: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for i in range(args.iterations + 20):
            rotation = names[i % 3:] + names[:i % 3]
            for name in rotation:
                t0 = time.perf_counter()
                variants[name]()
                elapsed = (time.perf_counter() - t0) * 1000
                if i >= 20:  # first 20 rounds warm connections and caches
                    samples[name].append(elapsed)
        client.close()
        session.close()
    finally:
        handle.stop()

    stats = {
        name: {
            "p50": percentile(values, 50),
            "p95": percentile(values, 95),
            "mean": statistics.fmean(values),
        }
        for name, values in samples.items()
    }
    print(f"query: {QUERY}  range=15m step={step}s  iterations={args.iterations}")
    print(f"{'variant':<10}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}")
    for name, row in stats.items():
        print(f"{name:<10}{row['p50']:>10.3f}{row['p95']:>10.3f}{row['mean']:>10.3f}")
    print(f"client/session p50 ratio: {stats['client']['p50'] / stats['session']['p50']:.3f}")
    summary = {
        "p50_ms": round(stats["client"]["p50"], 3),
        "p95_ms": round(stats["client"]["p95"], 3),
        "bare_p50_ms": round(stats["bare"]["p50"], 3),
        "overhead_ratio_p50": round(stats["client"]["p50"] / stats["bare"]["p50"], 3),
        "session_p50_ms": round(stats["session"]["p50"], 3),
        "overhead_ratio_vs_session_p50": round(stats["client"]["p50"] / stats["session"]["p50"], 3),
        "iterations": args.iterations,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
