"""Mean time to detect on a running stack of its own: demo shop, Prometheus scraping every 5 s,
Celery worker and beat evaluating the default rules, daphne serving the WebSocket.

    .venv/bin/python bench/mttd.py [--n 3] [--scrape 5s]

For each of N injections of a hard break (payment error rate 0.5) and of a 10 % regression
(payment error rate 0.1) it measures the seconds from injection to the incident row (the first
FIRING entry the detection wrote) and to the `incident.created` message on a logged-in WebSocket
client; then it recovers and waits for the incident to resolve by itself. The reopen window is 0
so every injection opens a new incident. Prints p50/p95 with the intervals; last line JSON.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time

from common import Stack, percentile

DB_NAME = "rs_bench_mttd"
PASSWORD = "bench-password-0123456789"


class SocketWatcher:
    """Keeps one WebSocket open and records when each incident.created arrives (wall clock)."""

    def __init__(self, url: str, cookie: str, origin: str):
        self.url, self.cookie, self.origin = url, cookie, origin
        self.created: list[tuple[float, dict]] = []
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._ready = threading.Event()
        self._stop = False

    async def _run(self):
        import websockets

        async with websockets.connect(self.url, origin=self.origin, additional_headers={"Cookie": self.cookie}) as ws:
            self._ready.set()
            while not self._stop:
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                except asyncio.TimeoutError:
                    continue
                if message["event"] == "incident.created":
                    self.created.append((time.time(), message["data"]))

    def start(self):
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("WebSocket did not connect")

    def stop(self):
        self._stop = True
        self._thread.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description="MTTD of hard breaks and 10 % regressions on a real stack")
    parser.add_argument("--n", type=int, default=3, help="injections per kind")
    parser.add_argument("--scrape", default="5s", help="Prometheus scrape interval")
    parser.add_argument("--detect-timeout", type=float, default=90)
    args = parser.parse_args()

    stack = Stack(DB_NAME, scrape=args.scrape, DETECTION_REOPEN_WINDOW_SECONDS="0",
                  DETECTION_AUTO_RESOLVE_HOLD="critical=1,high=1,medium=1,low=1")
    from detection.chaos import ChaosClient
    from detection.firedrill import Fault, quiet_period, run_fault
    from detection.models import DetectionRule
    from reliability_studio.access import Role, grant_role
    from django.contrib.auth import get_user_model
    from reliability_studio.devtools.servers import login

    results = {"hard_break": [], "regression_10pct": []}
    watcher = None
    try:
        grant_role(get_user_model().objects.create_user(username="bench", password=PASSWORD), Role.VIEWER)
        interval = DetectionRule.objects.get(name="High error ratio").evaluation_interval_seconds
        cookie = f"sessionid={login(stack.web.url, 'bench', PASSWORD).cookies['sessionid']}"
        watcher = SocketWatcher(stack.web.url.replace("http", "ws") + "/ws/incidents/", cookie, stack.web.url)
        watcher.start()
        chaos = ChaosClient(stack.shop.control_url)
        stack.prometheus.wait_for_series('http_requests_total{service="payment"}', timeout=60)
        time.sleep(40)  # let the 30 s rate windows fill with healthy traffic
        for i in range(args.n):
            for name, rate in (("hard_break", 0.5), ("regression_10pct", 0.1)):
                quiet_period(240)
                time.sleep(10)
                injected = time.time()
                outcome = run_fault(chaos, Fault("error", "payment", rate), detect_timeout=args.detect_timeout,
                                    resolve_timeout=240)
                socket_at = next((t for t, data in watcher.created if t >= injected), None)
                row = {"row_s": outcome.mttd_seconds,
                       "websocket_s": None if socket_at is None else round(socket_at - injected, 1),
                       "auto_resolved": outcome.auto_resolved}
                results[name].append(row)
                print(f"{name:<17} #{i + 1}: incident row {row['row_s']}s, WebSocket {row['websocket_s']}s, "
                      f"auto-resolved {row['auto_resolved']}", flush=True)
    finally:
        if watcher is not None:
            watcher.stop()
        stack.stop()

    summary = {"scrape_interval": args.scrape, "evaluation_interval_s": interval, "n": args.n}
    print(f"\nscrape {args.scrape}, rule evaluation every {interval}s, rule 'High error ratio' (for 5s, 30s rate window)")
    print(f"{'kind':<17} {'row p50':>8} {'row p95':>8} {'ws p50':>8} {'ws p95':>8} {'missed':>6}")
    for name, rows in results.items():
        detected = [r["row_s"] for r in rows if r["row_s"] is not None]
        sockets = [r["websocket_s"] for r in rows if r["websocket_s"] is not None]
        figures = {
            f"{name}_row_p50_s": percentile(detected, 50), f"{name}_row_p95_s": percentile(detected, 95),
            f"{name}_ws_p50_s": percentile(sockets, 50), f"{name}_ws_p95_s": percentile(sockets, 95),
            f"{name}_missed": len(rows) - len(detected),
            f"{name}_auto_resolved": sum(bool(r["auto_resolved"]) for r in rows),
        }
        summary.update({k: (round(v, 1) if isinstance(v, float) else v) for k, v in figures.items()})
        print(f"{name:<17} {summary[f'{name}_row_p50_s']:>8} {summary[f'{name}_row_p95_s']:>8} "
              f"{summary[f'{name}_ws_p50_s']:>8} {summary[f'{name}_ws_p95_s']:>8} {summary[f'{name}_missed']:>6}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
