"""The multi-process web server (reliability_studio.webserver) for real: requests are served by
more than one daphne process on one port, a WebSocket client on one process gets an event made
through another, and a process that dies is replaced."""
import asyncio
import json
import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
import requests
import websockets
from django.db import connection

from reliability_studio.access import Role
from reliability_studio.webserver import default_workers

from ..servers import WebServer, login, server_env

PASSWORD = "correct-horse-battery-staple"


def test_default_workers_is_web_concurrency_or_the_cores():
    assert default_workers({"WEB_CONCURRENCY": "3"}) == 3
    assert default_workers({}) == len(os.sched_getaffinity(0))
    for bad in ("0", "-1", "two"):
        with pytest.raises(SystemExit, match="WEB_CONCURRENCY must be a positive integer"):
            default_workers({"WEB_CONCURRENCY": bad})


@pytest.fixture
def server(transactional_db):
    web = WebServer(server_env(connection.settings_dict["NAME"]), workers=2)
    yield web
    web.stop()


def _until(condition, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := condition()):
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout}s")


def _two_children(server, without=None) -> list[int]:
    def check():
        children = server.children()
        return children if len(children) == 2 and without not in children else None

    return _until(check, what="two daphne children")


def _socket_owner(server_port: int, client_port: int, pids: list[int]) -> int:
    """The PID holding the server side of the loopback connection from `client_port`."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(fields[i].rsplit(":", 1)[1], 16) for i in (1, 2))
            if local == server_port and remote == client_port:
                inode = fields[9]
    assert inode is not None, f"no server socket for client port {client_port}"
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:  # closed meanwhile
                continue
    raise AssertionError(f"socket {inode} is held by none of {pids}")


@pytest.mark.slow
def test_requests_are_spread_over_the_processes_and_events_cross_them(server, make_user):
    pids = _two_children(server)
    # New connections (no keep-alive) land on both processes: the X-Web-Worker header says which.
    served = []
    _until(lambda: served.append(requests.get(server.url + "/healthz", headers={"Connection": "close"},
                                              timeout=5).headers["X-Web-Worker"]) or len(set(served)) == 2,
           what="both workers serving")
    assert set(served) == {"0", "1"}
    # /metrics, on whichever process answers, counts the requests of both.
    metrics = requests.get(server.url + "/metrics", headers={"Connection": "close"}, timeout=10).text
    counted = sum(float(value) for value in re.findall(
        r'^rs_http_request_duration_seconds_count\{[^}]*route="healthz"[^}]*status="200"[^}]*\} (\S+)$', metrics, re.M))
    assert counted >= len(served), (counted, len(served), served)

    make_user(Role.VIEWER, username="vera")
    make_user(Role.RESPONDER, username="rita")
    cookie = f"sessionid={login(server.url, 'vera', PASSWORD).cookies['sessionid']}"
    rita = login(server.url, "rita", PASSWORD)
    ws_url = server.url.replace("http://", "ws://") + "/ws/incidents/"

    async def scenario():
        clients, owners = [], set()
        try:
            # Connect until there is a client on each process (bounded: 40 connections).
            while len(owners) < 2 and len(clients) < 40:
                ws = await websockets.connect(ws_url, origin=server.url, additional_headers={"Cookie": cookie})
                clients.append(ws)
                owners.add(_socket_owner(server.port, ws.local_address[1], pids))
            assert owners == set(pids), "WebSocket clients did not reach both processes"
            # The incident is created by whichever process takes this request; every client hears it.
            response = await asyncio.to_thread(
                rita.post, server.url + "/api/v1/incidents/", json={"title": "Payment 5xx", "severity": "high"},
                headers={"X-CSRFToken": rita.cookies["csrftoken"], "Referer": server.url + "/"}, timeout=10)
            assert response.status_code == 201, response.text
            key = response.json()["key"]

            async def created(ws):
                while True:
                    event = json.loads(await asyncio.wait_for(ws.recv(), 15))
                    if event["event"] == "incident.created" and event["data"]["key"] == key:
                        return True

            return await asyncio.gather(*(created(ws) for ws in clients))
        finally:
            await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)

    results = asyncio.run(scenario())
    assert results and all(results)


@pytest.mark.slow
def test_a_burst_of_keep_alive_clients_is_spread_over_the_processes(server):
    """16 clients connecting at once (a team opening the control room): each process gets some.
    With one socket shared by both, the process that woke first accepted all 16."""
    async def burst():
        async with aiohttp.ClientSession(server.url, connector=aiohttp.TCPConnector(limit=16)) as session:
            async def one():
                async with session.get("/healthz") as response:
                    await response.read()
                    return response.headers["X-Web-Worker"]

            return await asyncio.gather(*(one() for _ in range(16)))

    served = Counter(asyncio.run(burst()))
    # Hash-spread over two sockets: all 16 on one has a probability of 2 / 2**16.
    assert set(served) == {"0", "1"}, served


@pytest.mark.slow
def test_a_process_that_dies_is_replaced(server):
    before = _two_children(server)
    os.kill(before[0], signal.SIGKILL)
    after = _two_children(server, without=before[0])
    assert before[1] in after
    # The replacement serves (on the same socket, without the port ever closing).
    _until(lambda: requests.get(server.url + "/healthz", headers={"Connection": "close"}, timeout=5)
           .headers["X-Web-Worker"] == "0", what="the replacement worker 0 serving")
    assert server.proc.poll() is None
    assert re.search(r"worker 0 \(pid \d+\) exited with code -9; restarting", Path(server.log.name).read_text())
