"""Concurrent callers with the same fingerprint get one incident: real threads, real connections."""
import threading

import pytest
from django.db import connection

from incidents import services
from incidents.models import EventKind, Incident, Severity

WORKERS = 12


@pytest.mark.django_db(transaction=True)
def test_concurrent_open_or_update_yields_exactly_one_incident():
    barrier = threading.Barrier(WORKERS)
    results, errors = [], []

    def call():
        try:
            barrier.wait()  # release every caller at once to race on the insert
            results.append(services.open_or_update_incident(fingerprint="race|svc=payment", title="Payment errors", severity=Severity.HIGH))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()  # each thread had its own database connection

    threads = [threading.Thread(target=call) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert errors == []
    assert len(results) == WORKERS
    assert Incident.objects.filter(fingerprint="race|svc=payment").count() == 1
    assert sum(r.created for r in results) == 1
    assert len({r.incident.pk for r in results}) == 1
    incident = Incident.objects.get(fingerprint="race|svc=payment")
    # Every caller's signal is recorded on the one incident.
    assert incident.timeline.filter(kind=EventKind.ALERT).count() == WORKERS
