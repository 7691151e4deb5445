"""A Celery worker killed during an intake burst: its tasks run again, nothing is lost, nothing
is counted twice.

Deliveries go through a real daphne intake into a real prefork worker. The processes running the
tasks are SIGKILLed mid-burst (what the kernel's OOM killer does): with late acknowledgement and
`task_reject_on_worker_lost`, the messages they held go back to the queue and are run again; the
delivery id makes the re-run skip the alerts its first run had already applied.
"""
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.db import connection
from django.db.models import Sum

from detection.models import Alert, AlertSource, AlertSourceKind, AlertState
from incidents.models import TimelineEvent

from ..servers import CeleryWorker, Daphne, server_env
from .conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
DELIVERIES = 30
ALERTS_PER_DELIVERY = 3
TOTAL = DELIVERIES * ALERTS_PER_DELIVERY


def delivery(number: int) -> dict:
    """One Alertmanager webhook of ALERTS_PER_DELIVERY distinct firing alerts."""
    alerts = [{
        "status": "firing",
        "labels": {"alertname": "BurstAlert", "shard": f"{number}-{i}", "severity": "warning"},
        "annotations": {"summary": f"burst alert {number}-{i}"},
        "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": f"burst-{number:03d}-{i}",
    } for i in range(ALERTS_PER_DELIVERY)]
    return {"version": "4", "status": "firing", "receiver": "rs", "groupKey": f"{{}}:{{burst=\"{number}\"}}",
            "groupLabels": {"burst": str(number)}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://alertmanager.invalid", "alerts": alerts}


def pool_children(pid: int) -> list[int]:
    """The prefork pool's processes (the ones running tasks) under the worker's main process."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_worker_processes_killed_mid_burst_rerun_their_tasks_without_loss_or_duplicates(cleanup):
    source = AlertSource(name="burst", kind=AlertSourceKind.ALERTMANAGER)
    token = source.set_new_token()
    source.save()
    env = server_env(connection.settings_dict["NAME"])
    web = Daphne(env)
    cleanup(web.stop)
    worker = CeleryWorker(env, concurrency=2)
    cleanup(worker.stop)
    wait_for(lambda: len(pool_children(worker.proc.pid)) == 2, 30, "the worker's pool to start")

    def post(number):
        return requests.post(f"{web.url}/api/v1/alerts/alertmanager", json=delivery(number), timeout=30,
                             headers={"Authorization": f"Bearer {token}"}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(post, range(DELIVERIES)))
    assert codes == [202] * DELIVERIES

    killed = 0
    for fraction in (0.2, 0.5):  # twice: early in the burst and half way through
        wait_for(lambda: Alert.objects.count() >= TOTAL * fraction, 60, f"{fraction:.0%} of the alerts")
        assert Alert.objects.count() < TOTAL, "the burst finished before the kill: make it longer"
        for child in pool_children(worker.proc.pid):
            os.kill(child, signal.SIGKILL)
            killed += 1
    assert killed >= 2

    def all_applied():
        return Alert.objects.aggregate(total=Sum("received_count"))["total"] == TOTAL and \
            Alert.objects.filter(state=AlertState.FIRING).count() == TOTAL

    wait_for(all_applied, 90, f"all {TOTAL} alerts to be applied once after the kills")
    assert worker.proc.poll() is None, "the worker's main process replaces its killed pool processes"
    assert Alert.objects.count() == TOTAL
    assert set(Alert.objects.values_list("received_count", flat=True)) == {1}, "a re-run counted a delivery twice"
    # One FIRING timeline entry per alert: a re-run never reports the same transition again.
    firing_entries = TimelineEvent.objects.filter(message__startswith="FIRING")
    assert firing_entries.count() == TOTAL
    assert Alert.objects.filter(incident__isnull=True).count() == 0
    # The kills did interrupt running tasks (the worker says so), and those tasks were run again.
    worker_log = Path(worker.log.name).read_text(errors="replace")
    assert worker_log.count("Task handler raised error: WorkerLostError") >= 1, worker_log[-2000:]


# Kombu's Redis transport keeps a delivered, unacknowledged message aside and gives it back to the
# queue only once it is older than the broker's visibility timeout (kombu's default: one hour;
# settings set CELERY_BROKER_TRANSPORT_OPTIONS from CELERY_VISIBILITY_TIMEOUT_SECONDS, and this
# test lowers it to 6 s so a whole worker killed mid-task hands its tasks to the next one quickly).
def test_whole_worker_killed_mid_burst_a_new_worker_runs_its_unacknowledged_tasks(cleanup):
    source = AlertSource(name="burst", kind=AlertSourceKind.ALERTMANAGER)
    token = source.set_new_token()
    source.save()
    env = server_env(connection.settings_dict["NAME"], CELERY_VISIBILITY_TIMEOUT_SECONDS="6")
    web = Daphne(env)
    cleanup(web.stop)
    first = CeleryWorker(env, concurrency=2)
    cleanup(first.stop)

    def post(number):
        return requests.post(f"{web.url}/api/v1/alerts/alertmanager", json=delivery(number), timeout=30,
                             headers={"Authorization": f"Bearer {token}"}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(post, range(DELIVERIES))) == [202] * DELIVERIES
    wait_for(lambda: Alert.objects.count() >= TOTAL * 0.3, 60, "30% of the alerts")
    os.killpg(first.proc.pid, signal.SIGKILL)  # the machine is gone: main process and pool at once
    first.proc.wait(10)
    assert Alert.objects.count() < TOTAL, "the burst finished before the kill: make it longer"
    second = CeleryWorker(env, concurrency=2)
    cleanup(second.stop)

    def all_applied():
        return Alert.objects.aggregate(total=Sum("received_count"))["total"] == TOTAL

    wait_for(all_applied, 60, f"all {TOTAL} alerts to be applied once by the new worker")
    assert Alert.objects.count() == TOTAL
    assert set(Alert.objects.values_list("received_count", flat=True)) == {1}
    assert TimelineEvent.objects.filter(message__startswith="FIRING").count() == TOTAL
