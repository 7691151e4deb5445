"""Live control room latency: API call → DOM update in a real browser, and WebSocket fan-out.

    .venv/bin/python bench/live.py [--events 20] [--clients 500] [--rounds 3] [--workers N]

A scratch database (rs_bench_live) is created and seeded with the demo catalog;
`reliability_studio.webserver` serves the ASGI app on loopback with `--workers` daphne processes
(default: one per core) sharing one socket and the Redis channel layer. `--events 0` skips the browser.

1. Browser: Debian's Chromium (Playwright, by executable path) keeps the incident list open. For each
   of `--events` incidents created through the API, the time from just before the POST to the
   moment the new row is in the DOM (a MutationObserver stamps it) is one sample. Goal p50 ≤ 300 ms.
2. Fan-out: `--clients` WebSocket clients (aiohttp, signed-in session cookie) subscribe to
   /ws/incidents/; one incident is created through the API and the time until each client has
   the `incident.created` message is one sample. Repeated `--rounds` times. Goal p95 ≤ 1 s. The
   clients land on the processes as the kernel hands out connections; how many each got is printed.

Prints a table; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

from common import percentile, recreate_database, setup_django

import aiohttp  # noqa: E402  (after sys.path is set by common)
import requests  # noqa: E402

DB_NAME = "rs_bench_live"
CHANNEL_PREFIX = "rs-bench-live"
PASSWORD = "correct-horse-battery-staple"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def api_token(user) -> str:
    """Hashed `ApiToken`s when the API authenticates with them, DRF's own tokens before that."""
    from django.conf import settings

    if any(name.endswith(".ApiTokenAuthentication") for name in settings.REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]):
        from reliability_studio.models import ApiToken

        return ApiToken.issue(user=user, name="bench")[1]
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=user).key


def seed() -> str:
    from django.core.management import call_command

    from reliability_studio.access import Role, grant_role
    from django.contrib.auth import get_user_model

    call_command("migrate", verbosity=0)
    call_command("load_catalog", "demo/catalog.yaml", verbosity=0)
    responder = get_user_model().objects.create_user(username="bench-responder", password=PASSWORD)
    grant_role(responder, Role.RESPONDER)
    viewer = get_user_model().objects.create_user(username="bench-viewer", password=PASSWORD)
    grant_role(viewer, Role.VIEWER)
    return api_token(responder)


def create_incident(base_url: str, token: str, title: str) -> tuple[float, int]:
    started = time.time()
    response = requests.post(
        f"{base_url}/api/v1/incidents/",
        json={"title": title, "severity": "high", "primary_service": "checkout"},
        headers={"Authorization": f"Token {token}"},
        timeout=10,
    )
    response.raise_for_status()
    return started, response.json()["id"]


# Stamps the wall-clock time (ms) at which each incident row enters the DOM.
OBSERVER = """() => {
  window.__rowSeen = {};
  const stamp = () => document.querySelectorAll('#incidents tbody tr[id^="incident-"]').forEach((row) => {
    if (!(row.id in window.__rowSeen)) window.__rowSeen[row.id] = Date.now();
  });
  stamp();
  new MutationObserver(stamp).observe(document.getElementById('incident-table'), {childList: true, subtree: true});
}"""


def browser_round_trips(base_url: str, token: str, events: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    samples = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
                                             args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{base_url}/accounts/login/?next=/")
        page.fill("#id_username", "bench-viewer")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base_url}/")
        page.locator("body[data-live-state=live]").wait_for(timeout=10_000)
        page.wait_for_timeout(500)  # let the on-connect catch-up fetch finish
        page.evaluate(OBSERVER)
        for n in range(events + 1):  # the first one warms up caches and connections
            started, incident_id = create_incident(base_url, token, f"browser latency {n}")
            page.wait_for_function(f"() => 'incident-{incident_id}' in window.__rowSeen", timeout=10_000)
            seen_ms = page.evaluate(f"() => window.__rowSeen['incident-{incident_id}']")
            if n:
                samples.append(seen_ms / 1000 - started)
            page.wait_for_timeout(250)  # one event at a time: no two fetches merge
        browser.close()
    return samples


def clients_per_process(base_url: str, pids: list[int]) -> list[int]:
    """Established loopback connections to the server's port held by each web process (Linux /proc)."""
    from pathlib import Path

    port = int(base_url.rsplit(":", 1)[1])
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # ESTABLISHED
                inodes.add(f"socket:[{fields[9]}]")
    counts = []
    for pid in pids:
        held = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                held += os.readlink(fd) in inodes
            except OSError:
                continue
        counts.append(held)
    return counts


async def fan_out(base_url: str, token: str, clients: int, rounds: int,
                  server_pids: list[int]) -> tuple[list[list[float]], int, list[int]]:
    session = requests.Session()
    session.get(f"{base_url}/accounts/login/", timeout=5)
    session.post(f"{base_url}/accounts/login/", timeout=5, allow_redirects=False,
                 data={"username": "bench-viewer", "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                 headers={"Referer": f"{base_url}/accounts/login/"})
    cookie = f"sessionid={session.cookies['sessionid']}"
    ws_url = base_url.replace("http://", "ws://") + "/ws/incidents/"
    connector = aiohttp.TCPConnector(limit=0)
    results: list[list[float]] = []
    async with aiohttp.ClientSession(connector=connector) as http:
        sockets = []
        for start in range(0, clients, 50):  # connect in batches: a thundering herd is not the point
            batch = [http.ws_connect(ws_url, headers={"Cookie": cookie, "Origin": base_url}, heartbeat=None)
                     for _ in range(start, min(clients, start + 50))]
            sockets += await asyncio.gather(*batch)
        connected = len(sockets)
        spread = clients_per_process(base_url, server_pids)
        await asyncio.sleep(1.0)  # every group_add has reached Redis

        for round_number in range(rounds):
            title = f"fan-out {round_number}"
            arrivals: list[float] = []

            async def wait_for_event(ws):
                while True:
                    message = await ws.receive(timeout=15)
                    if message.type != aiohttp.WSMsgType.TEXT:
                        raise RuntimeError(f"socket closed: {message.type}")
                    body = json.loads(message.data)
                    if body.get("event") == "incident.created" and body["data"]["title"] == title:
                        arrivals.append(time.time())
                        return

            waiters = [asyncio.create_task(wait_for_event(ws)) for ws in sockets]
            started, _ = await asyncio.to_thread(create_incident, base_url, token, title)
            await asyncio.gather(*waiters)
            results.append([arrival - started for arrival in arrivals])
            await asyncio.sleep(0.5)
        await asyncio.gather(*(ws.close() for ws in sockets))
    return results, connected, spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="web processes (default: one per core)")
    args = parser.parse_args()

    database_url = recreate_database(DB_NAME)
    os.environ["CHANNEL_PREFIX"] = CHANNEL_PREFIX
    setup_django(database_url)
    token = seed()
    from django.db import connections

    connections.close_all()
    from reliability_studio.devtools.servers import WebServer
    from reliability_studio.webserver import default_workers

    env = dict(os.environ, DATABASE_URL=database_url, DEBUG="false", LOG_LEVEL="WARNING", CHANNEL_PREFIX=CHANNEL_PREFIX,
               SESSION_COOKIE_SECURE="false", CSRF_COOKIE_SECURE="false")
    workers = args.workers or default_workers()
    server = WebServer(env, workers=workers)
    try:
        browser = browser_round_trips(server.url, token, args.events) if args.events else []
        rounds, connected, spread = asyncio.run(
            fan_out(server.url, token, args.clients, args.rounds, server.children()))
    finally:
        server.stop()

    deliveries = [sample for round_samples in rounds for sample in round_samples]
    ms = lambda seconds: round(seconds * 1000, 1)  # noqa: E731
    result = {
        "browser_events": len(browser),
        "browser_p50_ms": ms(percentile(browser, 50)) if browser else None,
        "browser_p95_ms": ms(percentile(browser, 95)) if browser else None,
        "browser_max_ms": ms(max(browser)) if browser else None,
        "ws_clients": connected,
        "ws_rounds": len(rounds),
        "ws_deliveries": len(deliveries),
        "ws_p50_ms": ms(percentile(deliveries, 50)),
        "ws_p95_ms": ms(percentile(deliveries, 95)),
        "ws_max_ms": ms(max(deliveries)),
        "daphne_processes": workers,
        "ws_clients_per_process": spread,
    }
    result["goal_browser_p50_le_300ms"] = result["browser_p50_ms"] <= 300 if browser else None
    result["goal_ws_p95_le_1000ms"] = result["ws_p95_ms"] <= 1000

    print(f"{'measure':<34} {'samples':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    if browser:
        print(f"{'API → DOM update (Chromium)':<34} {len(browser):>7} {result['browser_p50_ms']:>8} "
              f"{result['browser_p95_ms']:>8} {result['browser_max_ms']:>8}")
    print(f"WebSocket clients per web process: {spread}")
    for n, samples in enumerate(rounds, 1):
        print(f"{f'API → {connected} WebSockets, round {n}':<34} {len(samples):>7} {ms(percentile(samples, 50)):>8} "
              f"{ms(percentile(samples, 95)):>8} {ms(max(samples)):>8}")
    print(f"{'API → WebSockets, all rounds':<34} {len(deliveries):>7} {result['ws_p50_ms']:>8} "
          f"{result['ws_p95_ms']:>8} {result['ws_max_ms']:>8}")
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
