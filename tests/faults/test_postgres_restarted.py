"""PostgreSQL restarted under a real daphne intake and Celery worker: both reconnect by themselves,
and no alert is lost.

The test runs its own PostgreSQL cluster (never the machine's shared one), migrated like a fresh
install. A client posts one new alert after another, as Alertmanager does, and retries a delivery
answered 5xx (Alertmanager retries those too); the cluster is restarted mid-stream. Every delivery
is either refused with a 5xx in the JSON error shape (and retried) or answered 202 and then
stored: after the restart, the database holds exactly the alerts that were accepted.
"""
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from detection.models import hash_token

from ..servers import ROOT, CeleryWorker, Daphne, server_env
from ..support.postgres_cluster import PostgresCluster, postgres_available
from .conftest import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not postgres_available(), reason="initdb not found (Debian package postgresql)"),
]
TOKEN = "fault-test-token-postgres-restart-0123456789"
BEFORE, AFTER = 12, 12  # deliveries accepted before the restart and after it


def alert_body(number: int) -> dict:
    return {"version": "4", "status": "firing", "receiver": "rs", "groupKey": f"{{}}:{{n=\"{number}\"}}",
            "alerts": [{"status": "firing", "fingerprint": f"pg-restart-{number:04d}",
                        "labels": {"alertname": "RestartProbe", "n": str(number), "severity": "warning"},
                        "annotations": {}, "startsAt": "2026-01-01T00:00:00Z"}]}


class Poster(threading.Thread):
    """Posts alert after alert; retries each one until it is accepted (202), like Alertmanager.
    After `hold_after` accepted it waits for `resume`, so that the restart meets a fresh stream."""

    def __init__(self, url: str, hold_after: int):
        super().__init__(daemon=True)
        self.url, self.accepted, self.statuses, self.refusals = url, [], [], []
        self.hold_after, self.resume, self.stop = hold_after, threading.Event(), threading.Event()

    def run(self):
        number = 0
        while not self.stop.is_set():
            if number == self.hold_after:
                self.resume.wait(120)
            try:
                response = requests.post(self.url, json=alert_body(number), timeout=20,
                                         headers={"Authorization": f"Bearer {TOKEN}"})
            except requests.RequestException as exc:  # daphne stays up: no request may hang or drop
                self.statuses.append(type(exc).__name__)
                time.sleep(0.2)
                continue
            self.statuses.append(response.status_code)
            if response.status_code == 202:
                self.accepted.append(number)
                number += 1
            else:
                self.refusals.append((response.status_code, response.headers.get("Content-Type", ""),
                                      response.text[:300]))
                time.sleep(0.2)  # Alertmanager backs off before retrying
            time.sleep(0.1)


def query(url: str, sql: str):
    with psycopg.connect(url, connect_timeout=3) as conn:
        return conn.execute(sql).fetchall()


def test_postgres_restart_web_and_worker_reconnect_and_no_accepted_alert_is_lost(cleanup):
    cluster = PostgresCluster().start()
    cleanup(cluster.close)
    cluster.create_database("rs")
    database = cluster.url("rs")
    env = server_env("rs", DATABASE_URL=database)
    # Migrations take a while on a busy machine; daphne and the worker start meanwhile (neither
    # touches a table before the first request or task).
    with ThreadPoolExecutor(max_workers=1) as pool:
        migrating = pool.submit(subprocess.run, [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        worker = CeleryWorker(env, concurrency=2)
        cleanup(worker.stop)
        web = Daphne(env)
        cleanup(web.stop)
        migrate = migrating.result()
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    with psycopg.connect(database) as conn:
        conn.execute("INSERT INTO detection_alertsource (name, kind, token_hash, token_hint, default_severity, enabled,"
                     " created_at) VALUES ('am', 'alertmanager', %s, %s, 'high', true, now())",
                     [hash_token(TOKEN), TOKEN[-6:]])

    poster = Poster(f"{web.url}/api/v1/alerts/alertmanager", hold_after=BEFORE)
    poster.start()
    cleanup(lambda: (poster.stop.set(), poster.join(30)))
    wait_for(lambda: len(poster.accepted) >= BEFORE, 60, f"{BEFORE} deliveries accepted before the restart")
    stored_before = wait_for(lambda: query(database, "SELECT count(*) FROM detection_alert")[0][0], 60,
                             "the worker to store alerts before the restart")
    poster.resume.set()  # deliveries go on while the cluster restarts
    cluster.restart()  # fast mode: every connection of web and worker is cut
    wait_for(lambda: len(poster.accepted) >= BEFORE + AFTER, 60,
             f"{AFTER} deliveries accepted after the restart (the web reconnected)")
    poster.stop.set()
    poster.join(30)
    accepted = list(poster.accepted)

    def stored():
        rows = query(database, "SELECT labels->>'n', received_count FROM detection_alert")
        return rows if len(rows) >= len(accepted) else None

    rows = wait_for(stored, 90, f"all {len(accepted)} accepted alerts to be stored (the worker reconnected)")
    assert sorted(int(n) for n, _ in rows) == accepted, "an accepted alert was lost (or one never accepted stored)"
    assert {count for _, count in rows} == {1}, "a retried delivery was counted twice"
    assert stored_before >= 1
    # Around the restart a delivery may be refused — always a 5xx in the JSON error shape — never
    # dropped or hung.
    assert set(poster.statuses) <= {202, 500, 502, 503}, poster.statuses
    for status, content_type, body in poster.refusals:
        assert content_type.startswith("application/json") and '"message"' in body, (status, body)
    assert requests.get(web.url + "/readyz", timeout=10).status_code == 200
    print(f"{len(accepted)} accepted, {len(poster.refusals)} refused with 5xx around the restart "
          f"({sorted(set(s for s, _, _ in poster.refusals))})")
