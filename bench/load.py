"""An on-call team on the control room and the API at once, while detection runs and faults come and go.

    .venv/bin/python bench/load.py                            # 200 users, 5 minutes (docs/reliability.md)
    .venv/bin/python bench/load.py --users 20 --duration 60   # a quick check

A stack of its own (bench/common.py `Stack`: scratch database rs_load_bench with the demo catalog and
default rules, the demo shop, Prometheus scraping it every 5 s, a Celery worker and beat evaluating
the rules, daphne) runs on loopback, with `--web` daphne processes (default: one per core); each
user is pinned to one of them, as a balancer with sticky sessions would. `--history` resolved
incidents are seeded so lists and pages have rows before the first fault.

Each simulated user is a signed-in responder (a session made with Django's `force_login`, and an
API token) who, with think times (uniform in [think/2, 3*think/2]), does what on-call people do:

* opens the incident list, an incident (one from the list it last saw, active ones first), or the
  detection page, like a browser: the page, then its WebSocket (`data-live-url`) held open while
  the user reads, with static/js/live.js's catch-up (a hello with the page's `data-cursor`; the
  events of `live.catchup` are dispatched, `live.resync` — or a page without a cursor — makes every
  region declaring `rs-reconnected` fetch its htmx partial, in parallel over 6 connections like a
  browser); while the page is open, every event whose trigger a
  region lists (`hx-trigger="rs-incident-updated from:body …"`) re-fetches that region (events
  that arrive during a fetch coalesce into one more fetch, as static/js/live.js does), and regions
  with `every 10s` poll;
* or calls the API with its token: active incidents, one incident, its timeline, firing alerts.

Meanwhile the demo's chaos injects faults one after another (`--fault-seconds` each, then
`--calm-seconds` of recovery), so incidents open, group, mitigate and resolve during the run.
Before the load, one user alone makes a few passes over every kind of request (every region
included): that is the unloaded baseline each percentile is compared with. During the load a
prober reads /healthz and /readyz on each daphne process every 10 s, as a kubelet would.

Every non-2xx answer, refused or dropped WebSocket, timeout (`--timeout`) or connection error is an
error, printed with its URL and status. Prints requests, errors and p50/p95/p99 per kind of request
and the WebSocket events received; the last line is one JSON object; exits 1 when any error occurred.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import html
import json
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field

from common import Stack, percentile

import aiohttp  # noqa: E402  (after sys.path is set by common)

DB_NAME = "rs_load_bench"
BROWSER_CONNECTIONS = 6  # per host, as browsers open
PING_EVERY, PONG_WITHIN = 25.0, 10.0  # as static/js/live.js
FAULTS = (("fail", "payment", 0.5), ("latency", "checkout", 1500), ("fail", "database", 0.3), ("crash", "catalog", None))

_TAG = re.compile(r"<[a-zA-Z][^>]*\bhx-get=\"[^\"]*\"[^>]*>")
_ATTR = re.compile(r"\b([a-z-]+)=\"([^\"]*)\"")
_INCIDENT_LINK = re.compile(r'href="/incidents/(\d+)/"')
REGION_KINDS = {"list": "list_table", "incident": "incident_region", "detection": "detection_region"}
_DELAY = re.compile(r"delay:(\d+)(ms|s)")
_EVERY = re.compile(r"^every (\d+)(ms|s)$")


# --- set-up ----------------------------------------------------------------------------------------

def make_api_token(user) -> str:
    """The API token of one bench user (a hashed ApiToken; the key is only known here)."""
    from reliability_studio.models import ApiToken

    return ApiToken.issue(user=user, name="load bench")[1]


def make_session_cookie(user) -> tuple[str, str]:
    """A signed-in session for one user through Django's own login (no password hashing per user)."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value


def seed(users: int, history: int, prefix: str = "oncall") -> list["Credentials"]:
    """`history` resolved incidents, and `users` responders, each with a session and a token."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from incidents.models import Incident, Service, Severity, Source, Status
    from reliability_studio.access import Role, grant_role

    services = list(Service.objects.all())
    rng = random.Random(7)
    now = timezone.now()
    rows = []
    for n in range(history):
        started = now - timezone.timedelta(minutes=rng.randint(60, 60 * 24 * 30))
        rows.append(Incident(
            title=f"{rng.choice(services).name} {rng.choice(['error rate', 'latency', 'crash loop'])} (history #{n})",
            summary="Seeded history for the load bench.", severity=rng.choice(Severity.values), status=Status.RESOLVED,
            source=Source.RULE, started_at=started, detected_at=started,
            resolved_at=started + timezone.timedelta(minutes=rng.randint(5, 120)), primary_service=rng.choice(services)))
    created = Incident.objects.bulk_create(rows, batch_size=1000)
    through = Incident.affected_services.through
    through.objects.bulk_create([through(incident_id=i.pk, service_id=i.primary_service_id) for i in created])
    credentials = []
    for n in range(users):
        user = get_user_model().objects.create_user(f"{prefix}-{n}")  # unusable password: sessions only
        grant_role(user, Role.RESPONDER)
        credentials.append(Credentials(make_session_cookie(user), make_api_token(user)))
    return credentials


@dataclass
class Credentials:
    cookie: tuple[str, str]
    token: str


# --- what is measured -------------------------------------------------------------------------------

@dataclass
class Recorder:
    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    events: collections.Counter = field(default_factory=collections.Counter)
    probe_failures: collections.Counter = field(default_factory=collections.Counter)  # > 5 s or not 200
    # The incident page's regions by name, under load.
    by_region: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    sockets: int = 0
    phase: str = "baseline"

    def error(self, kind: str, url: str, status: str) -> None:
        self.errors.append((kind, url, status))
        print(f"ERROR {kind} {url} → {status}", flush=True)


@dataclass
class Region:
    url: str
    kind: str
    triggers: set[str]  # htmx event names (rs-…) this region re-fetches on
    delay: float
    every: float | None


def parse_regions(page: str, kind: str) -> list[Region]:
    """The regions a page declares: each element with hx-get and an hx-trigger."""
    regions = []
    for tag in _TAG.findall(page):
        attrs = dict(_ATTR.findall(tag))
        trigger = html.unescape(attrs.get("hx-trigger", ""))
        if "from:body" not in trigger and "every" not in trigger:
            continue  # a form's own change/submit trigger, not a live region
        names, delay, every = set(), 0.0, None
        for part in (p.strip() for p in trigger.split(",")):
            if match := _EVERY.match(part):
                every = _seconds(*match.groups())
                continue
            names.add(part.split()[0])
            if match := _DELAY.search(part):
                delay = max(delay, _seconds(*match.groups()))
        regions.append(Region(html.unescape(attrs["hx-get"]), kind, names, delay, every))
    return regions


def _seconds(value: str, unit: str) -> float:
    return float(value) / (1000 if unit == "ms" else 1)


def page_cursor(page: str) -> str | None:
    """The live stream's cursor the page was rendered with (`<body data-cursor>`), if it has one."""
    match = re.search(r'<body[^>]*\bdata-cursor="([^"]*)"', page)
    return html.unescape(match.group(1)) if match else None


def live_url(page: str) -> str | None:
    match = re.search(r'data-live-url="([^"]+)"', page)
    return match.group(1) if match else None


# --- one user ----------------------------------------------------------------------------------------

class User:
    def __init__(self, n: int, base_url: str, credentials: Credentials, recorder: Recorder, args, deadline: float):
        self.n, self.base_url, self.credentials, self.rec, self.args = n, base_url, credentials, recorder, args
        self.deadline = deadline
        self.rng = random.Random(n)
        self.active_ids: list[int] = []
        self.seen_ids: list[int] = []

    async def run(self, start_delay: float) -> None:
        await asyncio.sleep(start_delay)
        name, value = self.credentials.cookie
        timeout = aiohttp.ClientTimeout(total=self.args.timeout)
        connector = aiohttp.TCPConnector(limit_per_host=BROWSER_CONNECTIONS)
        async with aiohttp.ClientSession(self.base_url, connector=connector, timeout=timeout,
                                         cookie_jar=aiohttp.DummyCookieJar(),
                                         headers={"Cookie": f"{name}={value}"}) as self.http:
            while time.monotonic() < self.deadline:
                action = self.rng.choices(("list", "incident", "detection", "api"), weights=(3, 4, 1, 2))[0]
                if action == "incident" and not self.seen_ids:
                    action = "list"
                if action == "api":
                    await self.use_api()
                    await self._think()
                else:
                    url = {"list": "/", "detection": "/detection/"}.get(action) or f"/incidents/{self._pick_incident()}/"
                    await self.visit(url, action)

    async def _think(self) -> None:
        await asyncio.sleep(min(self.rng.uniform(0.5, 1.5) * self.args.think, max(0.0, self.deadline - time.monotonic())))

    def _pick_incident(self) -> int:
        ids = self.active_ids if self.active_ids and self.rng.random() < 0.8 else self.seen_ids
        return self.rng.choice(ids)

    async def get(self, kind: str, url: str, *, htmx: bool = False, api: bool = False) -> str | None:
        headers = {"HX-Request": "true"} if htmx else {}
        if api:
            headers.update(Authorization=f"Token {self.credentials.token}", Accept="application/json")
        started = time.perf_counter()
        try:
            async with self.http.get(url, headers=headers, allow_redirects=False) as response:
                body = await response.text()
                if not 200 <= response.status < 300:
                    self.rec.error(kind, url, f"HTTP {response.status}")
                    return None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.rec.error(kind, url, type(exc).__name__ + (f": {exc}" if str(exc) else ""))
            return None
        elapsed = time.perf_counter() - started
        self.rec.latencies[f"{self.rec.phase}:{kind}"].append(elapsed)
        if kind == "incident_region" and self.rec.phase == "load":
            self.rec.by_region[url.rstrip("/").rsplit("/", 1)[-1]].append(elapsed)
        return body

    def _remember_incidents(self, page: str) -> None:
        ids = [int(i) for i in _INCIDENT_LINK.findall(page)]
        if ids:
            self.seen_ids = ids
            # The table's rows come first; the "recently resolved" list follows it.
            head = page.split('id="recently-resolved"')[0]
            self.active_ids = [int(i) for i in _INCIDENT_LINK.findall(head)]

    async def visit(self, url: str, action: str) -> None:
        """Open a page like a browser: HTML, WebSocket, catch-up fetch, live refreshes while reading."""
        page = await self.get(f"{action}_page", url)
        if page is None:
            return await self._think()
        if action == "list":
            self._remember_incidents(page)
        regions = parse_regions(page, REGION_KINDS[action])
        pending: set[int] = set()
        wake = asyncio.Event()

        async def refresh_loop():
            while True:
                await wake.wait()
                wake.clear()
                await asyncio.sleep(max((regions[i].delay for i in pending), default=0))
                batch = sorted(pending)
                pending.clear()
                bodies = await asyncio.gather(*(self.get(regions[i].kind, regions[i].url, htmx=True) for i in batch))
                for i, body in zip(batch, bodies):
                    if body and action == "list":
                        self._remember_incidents(body)

        def trigger(event: str) -> None:
            hit = {i for i, r in enumerate(regions) if event in r.triggers}
            if hit:
                pending.update(hit)
                wake.set()

        async def poll(i: int):
            while True:
                await asyncio.sleep(regions[i].every)
                pending.add(i)
                wake.set()

        tasks = [asyncio.create_task(refresh_loop())]
        tasks += [asyncio.create_task(poll(i)) for i, r in enumerate(regions) if r.every]
        ws_path = live_url(page)
        try:
            if ws_path:
                await self.hold_socket(ws_path, trigger, page_cursor(page))
            else:
                await self._think()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def hold_socket(self, path: str, trigger, cursor: str | None) -> None:
        """Connect and catch up as static/js/live.js does, then forward events as triggers until the
        user leaves the page. A page with a cursor says hello with it and gets `live.catchup` (the
        events since, dispatched) or `live.resync` (every region refreshes); a page without one
        (the protocol before catch-up existed) refreshes every region on connect."""
        ws_url = self.base_url.replace("http://", "ws://") + path
        started = time.perf_counter()
        try:
            socket = await self.http.ws_connect(ws_url, headers={"Origin": self.base_url}, heartbeat=None,
                                                timeout=aiohttp.ClientWSTimeout(ws_close=5))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            status = (f"HTTP {exc.status}" if isinstance(exc, aiohttp.WSServerHandshakeError)
                      else type(exc).__name__ + (f": {exc}" if str(exc) else ""))
            self.rec.error("websocket", path, status)
            return await self._think()
        self.rec.latencies[f"{self.rec.phase}:websocket_connect"].append(time.perf_counter() - started)
        self.rec.sockets += 1
        if cursor is None:
            trigger("rs-reconnected")
        else:
            await socket.send_json({"type": "hello", "cursor": cursor})
        hello_sent = time.perf_counter()
        leave_at = time.monotonic() + min(self.rng.uniform(0.5, 1.5) * self.args.think,
                                          max(0.0, self.deadline - time.monotonic()))
        next_ping, pong_due = time.monotonic() + PING_EVERY, None
        try:
            while (now := time.monotonic()) < leave_at:
                wait = min(leave_at, next_ping, pong_due or leave_at) - now
                try:
                    message = await asyncio.wait_for(socket.receive(), timeout=max(wait, 0.001))
                except asyncio.TimeoutError:
                    now = time.monotonic()
                    if pong_due and now >= pong_due:
                        self.rec.error("websocket", path, "no pong within 10 s")
                        return
                    if now >= next_ping:
                        await socket.send_json({"type": "ping"})
                        next_ping, pong_due = now + PING_EVERY, now + PONG_WITHIN
                    continue
                if message.type != aiohttp.WSMsgType.TEXT:
                    self.rec.error("websocket", path, f"closed by the server ({message.type.name}, {socket.close_code})")
                    return
                payload = json.loads(message.data)
                if payload.get("event") == "pong":
                    pong_due = None
                    continue
                event = payload.get("event")
                if event in ("live.catchup", "live.resync"):
                    self.rec.latencies[f"{self.rec.phase}:websocket_catch_up"].append(time.perf_counter() - hello_sent)
                    self.rec.events[event] += 1
                    if event == "live.resync":
                        trigger("rs-reconnected")
                    for caught in payload.get("events", []):
                        self.rec.events[caught["event"]] += 1
                        trigger("rs-" + caught["event"].replace(".", "-"))
                    continue
                self.rec.events[event] += 1
                trigger("rs-" + event.replace(".", "-"))
        finally:
            await socket.close()

    async def use_api(self) -> None:
        body = await self.get("api_incident_list", "/api/v1/incidents/?active=true", api=True)
        ids = [row["id"] for row in json.loads(body)["results"]] if body else []
        if not ids:
            body = await self.get("api_incident_list", "/api/v1/incidents/", api=True)
            ids = [row["id"] for row in json.loads(body)["results"]] if body else []
        if ids:
            self.seen_ids = self.seen_ids or ids
            pk = self.rng.choice(ids)
            await self.get("api_incident_detail", f"/api/v1/incidents/{pk}/", api=True)
            await self.get("api_timeline", f"/api/v1/incidents/{pk}/timeline/", api=True)
        await self.get("api_alert_list", "/api/v1/alerts/?state=firing", api=True)


# --- the run -----------------------------------------------------------------------------------------

async def baseline(base_url: str, credentials: Credentials, rec: Recorder, args, passes: int = 5) -> None:
    """One user alone, no think time: every kind of request a few times (the unloaded figure)."""
    quick = argparse.Namespace(**{**vars(args), "think": 0.2})
    user = User(-1, base_url, credentials, rec, quick, deadline=time.monotonic() + 3600)
    async with aiohttp.ClientSession(base_url, cookie_jar=aiohttp.DummyCookieJar(),
                                     timeout=aiohttp.ClientTimeout(total=args.timeout),
                                     headers={"Cookie": "=".join(credentials.cookie)}) as user.http:
        for _ in range(passes):
            await user.visit("/", "list")
            pages = [("/", "list"), ("/detection/", "detection")]
            if user.seen_ids:
                pages.insert(1, (f"/incidents/{user._pick_incident()}/", "incident"))
                await user.visit(pages[1][0], "incident")
            await user.visit("/detection/", "detection")
            # Every region once, as a page that resyncs fetches them (a catch-up with nothing new fetches none).
            for url, action in pages:
                page = await user.get(f"{action}_page", url)
                for region in parse_regions(page or "", REGION_KINDS[action]):
                    await user.get(region.kind, region.url, htmx=True)
            await user.use_api()


async def chaos_loop(control_url: str, args, started: float, log: list) -> None:
    """Faults one after another until the end of the run; every fault is recovered before returning."""
    from detection.chaos import ChaosClient

    chaos = ChaosClient(control_url)
    end = started + args.duration
    await asyncio.sleep(args.ramp)
    n = 0
    try:
        while time.monotonic() + args.fault_seconds / 2 < end:
            kind, service, amount = FAULTS[n % len(FAULTS)]
            n += 1
            await asyncio.to_thread(chaos.recover)
            if kind == "fail":
                await asyncio.to_thread(chaos.fail, service, amount)
            elif kind == "latency":
                await asyncio.to_thread(chaos.latency, service, amount)
            else:
                await asyncio.to_thread(chaos.crash, service)
            log.append(f"{time.monotonic() - started:5.0f}s  {kind} {service}" + (f" {amount}" if amount else ""))
            print(f"chaos: {log[-1]}", flush=True)
            await asyncio.sleep(min(args.fault_seconds, max(0.0, end - time.monotonic())))
            await asyncio.to_thread(chaos.recover)
            log.append(f"{time.monotonic() - started:5.0f}s  recover")
            await asyncio.sleep(min(args.calm_seconds, max(0.0, end - time.monotonic())))
    finally:
        await asyncio.to_thread(chaos.recover)


async def load(urls: list[str], credentials: list[Credentials], rec: Recorder, args, control_url: str, log: list):
    rec.phase = "load"
    started = time.monotonic()
    deadline = started + args.duration
    users = [User(n, urls[n % len(urls)], c, rec, args, deadline) for n, c in enumerate(credentials)]
    ramp = [args.ramp * n / max(1, len(users)) for n in range(len(users))]
    tasks = [asyncio.create_task(u.run(d)) for u, d in zip(users, ramp)]
    chaos = asyncio.create_task(chaos_loop(control_url, args, started, log))
    probes = [asyncio.create_task(probe(url, rec, deadline)) for url in urls]
    # Every wait in a user is bounded; should one still hang, it is an error with its stack, not a hung bench.
    _, stuck = await asyncio.wait(tasks, timeout=args.duration + 2 * args.timeout + 30)
    for task in stuck:
        rec.error("user", "-", "did not finish: " + " <- ".join(
            f"{f.f_code.co_name}:{f.f_lineno}" for f in reversed(task.get_stack(limit=20))))
        task.cancel()
    await asyncio.gather(chaos, *probes, *tasks, return_exceptions=True)
    return time.monotonic() - started


async def probe(base_url: str, rec: Recorder, deadline: float, every: float = 10.0) -> None:
    """What a kubelet does: /healthz and /readyz on each web process every 10 s (not errors of the
    users: a slow probe is counted separately, as a kubelet with a 5 s timeout would fail it)."""
    async with aiohttp.ClientSession(base_url, headers={"Host": "localhost"}) as http:
        while time.monotonic() < deadline:
            for path in ("/healthz", "/readyz"):
                started = time.perf_counter()
                try:
                    async with http.get(path, timeout=aiohttp.ClientTimeout(total=30)) as response:
                        await response.read()
                        ok = response.status == 200
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    ok = False
                elapsed = time.perf_counter() - started
                rec.latencies[f"probe:{path.strip('/')}"].append(elapsed)
                if not ok or elapsed > 5:
                    rec.probe_failures[path] += 1
            await asyncio.sleep(every)


def _rss_mb(pid: int) -> float:
    """Resident memory of a process, read from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return round(kb / 1024, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--duration", type=float, default=300, help="seconds of load, ramp-up included")
    parser.add_argument("--ramp", type=float, default=30, help="seconds over which users arrive")
    parser.add_argument("--think", type=float, default=15, help="mean seconds a user reads a page or an answer")
    parser.add_argument("--web", type=int, default=os.cpu_count() or 1, help="daphne processes")
    parser.add_argument("--history", type=int, default=500, help="resolved incidents seeded before the run")
    parser.add_argument("--timeout", type=float, default=30, help="seconds before a request counts as an error")
    parser.add_argument("--fault-seconds", type=float, default=40)
    # The default rules clear up to 2 min after a fault ends (1 min anomaly windows, 60 s recovery
    # hold), then the incident resolves after the hold: a shorter calm would fold the next fault into it.
    parser.add_argument("--calm-seconds", type=float, default=150)
    args = parser.parse_args()
    if args.users < 1 or args.duration <= 0 or args.web < 1 or args.think <= 0:
        parser.error("--users, --duration, --web and --think must be positive")

    # The sessions made here are signed with this process's key: the servers must use the same one.
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-not-for-production")
    stack = Stack(DB_NAME, scrape="5s", rps=20, LOKI_URL="", TEMPO_URL="", GRAFANA_URL="",
                  SECRET_KEY=os.environ["SECRET_KEY"],
                  DETECTION_REOPEN_WINDOW_SECONDS="0", DETECTION_AUTO_RESOLVE_HOLD="critical=10,high=10,medium=10,low=10")
    from django.db import connections
    from django.utils import timezone

    from incidents.models import Incident, Source
    from reliability_studio.devtools.servers import Daphne

    log: list[str] = []
    rec = Recorder()
    try:
        for _ in range(args.web - 1):
            stack.processes.append(Daphne(stack.env))
        urls = [p.url for p in stack.processes if isinstance(p, Daphne)]
        credentials = seed(args.users, args.history)
        baseline_credentials = seed(1, 0, prefix="alone")[0]
        connections.close_all()
        stack.prometheus.wait_for_series('http_requests_total{service="payment"}', timeout=60)
        asyncio.run(baseline(urls[0], baseline_credentials, rec, args))
        run_started = timezone.now()
        elapsed = asyncio.run(load(urls, credentials, rec, args, stack.shop.control_url, log))
        web_rss_mb = [_rss_mb(p.proc.pid) for p in stack.processes if isinstance(p, Daphne)]
        opened = Incident.objects.filter(source=Source.RULE, created_at__gte=run_started)
        incidents = {"opened": opened.count(), "resolved": opened.filter(resolved_at__isnull=False).count()}
    finally:
        stack.stop()

    kinds = sorted({key.split(":", 1)[1] for key in rec.latencies if not key.startswith("probe:")})
    result = {"users": args.users, "duration_s": args.duration, "think_s": args.think, "web_processes": len(urls),
              "cpus": os.cpu_count(), "requests": sum(len(v) for k, v in rec.latencies.items() if k.startswith("load:")),
              "errors": len(rec.errors), "websocket_connections": rec.sockets,
              "websocket_events": sum(rec.events.values()), "events_by_type": dict(rec.events),
              "incidents_opened": incidents["opened"], "incidents_resolved": incidents["resolved"],
              "web_rss_mb_max": max(web_rss_mb)}
    result["requests_per_s"] = round(result["requests"] / elapsed, 1)
    print("\nchaos during the run:\n  " + "\n  ".join(log))
    print(f"\n{'kind':<20} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}   {'alone p50':>9} {'alone p95':>9}")
    for kind in kinds:
        loaded, alone = rec.latencies.get(f"load:{kind}", []), rec.latencies.get(f"baseline:{kind}", [])
        row = {f"p{q}_ms": round(percentile(loaded, q) * 1000, 1) for q in (50, 95, 99)}
        row |= {"requests": len(loaded), "alone_p50_ms": round(percentile(alone, 50) * 1000, 1),
                "alone_p95_ms": round(percentile(alone, 95) * 1000, 1)}
        result[kind] = row
        print(f"{kind:<20} {row['requests']:>8} {row['p50_ms']:>8} {row['p95_ms']:>8} {row['p99_ms']:>8}"
              f"   {row['alone_p50_ms']:>9} {row['alone_p95_ms']:>9}")
    print(f"\n{'incident region':<20} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8}")
    result["incident_regions"] = {}
    for name, values in sorted(rec.by_region.items()):
        row = {"requests": len(values), **{f"p{q}_ms": round(percentile(values, q) * 1000, 1) for q in (50, 95)}}
        result["incident_regions"][name] = row
        print(f"{name:<20} {row['requests']:>8} {row['p50_ms']:>8} {row['p95_ms']:>8}")
    result["probes"] = {}
    for path in ("healthz", "readyz"):
        values = rec.latencies.get(f"probe:{path}", [])
        row = {"probes": len(values), "p50_ms": round(percentile(values, 50) * 1000, 1),
               "max_ms": round(max(values, default=float("nan")) * 1000, 1),
               "over_5s_or_failed": rec.probe_failures[f"/{path}"]}
        result["probes"][path] = row
        print(f"probe /{path}: {row['probes']} probes, p50 {row['p50_ms']} ms, max {row['max_ms']} ms, "
              f"{row['over_5s_or_failed']} slower than 5 s or failed")
    every = [v for k, values in rec.latencies.items() if k.startswith("load:") for v in values]
    result["all_p50_ms"], result["all_p95_ms"], result["all_p99_ms"] = (
        round(percentile(every, q) * 1000, 1) for q in (50, 95, 99))
    print(f"\n{result['requests']} requests ({result['requests_per_s']}/s), {result['errors']} errors, "
          f"p95 {result['all_p95_ms']} ms; {rec.sockets} WebSocket connections, {result['websocket_events']} events; "
          f"incidents opened {incidents['opened']}, resolved {incidents['resolved']}; "
          f"web process RSS at the end {', '.join(f'{mb:g}' for mb in web_rss_mb)} MB")
    causes = collections.Counter((kind, re.sub(r"/\d+/", "/<id>/", url), status) for kind, url, status in rec.errors)
    result["errors_by_cause"] = [{"kind": k, "url": u, "status": st, "count": n} for (k, u, st), n in causes.most_common()]
    for (kind, url, status), n in causes.most_common():
        print(f"  {n:5} × {kind} {url} → {status}")
    print(json.dumps(result))
    return 1 if rec.errors else 0


if __name__ == "__main__":
    sys.exit(main())
