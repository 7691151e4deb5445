"""Steady synthetic user traffic against the frontend."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import requests
from requests.adapters import HTTPAdapter

from .topology import TRAFFIC_MIX

CLIENT_TIMEOUT_S = 5.0


def arrival_gaps(rps: float, rng: random.Random) -> Iterator[float]:
    """Seconds between consecutive requests: 1/rps with ±50 % jitter per gap (the offered load,
    also replayed in simulated time by tests/detection/test_steady_state.py)."""
    mean_gap = 1.0 / rps
    while True:
        yield mean_gap * rng.uniform(0.5, 1.5)


def choose_route(rng: random.Random) -> tuple[str, str]:
    """(method, path) of the next request, drawn from the traffic mix."""
    routes = [(method, path) for method, path, _ in TRAFFIC_MIX]
    weights = [weight for _, _, weight in TRAFFIC_MIX]
    return rng.choices(routes, weights)[0]


class TrafficGenerator:
    """Sends ``rps`` requests per second (±50 % jitter per gap) to the frontend routes.

    Requests are dispatched to a bounded worker pool so a slow shop does not
    lower the offered load; when every worker is busy the request is shed
    (counted in ``shed``) rather than queued, like a real client giving up.
    """

    def __init__(self, frontend_url: str, rps: float, rng: random.Random | None = None) -> None:
        self.frontend_url = frontend_url.rstrip("/")
        self.rps = rps
        self.rng = rng or random.Random()
        # Enough workers for every request in flight for a full client timeout at this rate.
        self.workers = int(min(256, max(8, rps * CLIENT_TIMEOUT_S * 1.2)))
        self._slots = threading.BoundedSemaphore(self.workers)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="traffic")
        self._session = requests.Session()
        self._session.trust_env = False
        self._session.mount("http://", HTTPAdapter(pool_maxsize=self.workers))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.shed = 0

    def start(self) -> None:
        """Start generating traffic (no-op when rps is 0)."""
        if self.rps > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop generating traffic; in-flight requests are abandoned."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        gaps = arrival_gaps(self.rps, self.rng)
        # Absolute deadlines keep the long-run rate exact despite sleep overshoot.
        next_at = time.monotonic()
        while not self._stop.is_set():
            next_at += next(gaps)
            delay = next_at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            if delay < -1.0:
                next_at = time.monotonic()  # fell far behind (e.g. suspended): don't burst
            method, path = choose_route(self.rng)
            if self._slots.acquire(blocking=False):
                self.sent += 1
                self._pool.submit(self._send, method, path)
            else:
                self.shed += 1

    def _send(self, method: str, path: str) -> None:
        try:
            self._session.request(method, self.frontend_url + path, timeout=CLIENT_TIMEOUT_S)
        except requests.RequestException:
            pass  # the frontend's own logs and metrics record what went wrong
        finally:
            self._slots.release()
