"""Live events go through the real Redis channel layer, and only after the transaction commits."""
import time

import pytest
from django.db import transaction

from incidents import services
from incidents.events import ALL_INCIDENTS_GROUP, incident_group
from incidents.models import Incident, Severity

from ..channel_listener import GroupListener

pytestmark = pytest.mark.django_db(transaction=True)


def test_event_is_published_after_commit():
    with GroupListener(ALL_INCIDENTS_GROUP) as listener:
        with transaction.atomic():
            incident = services.create_incident(title="DB down", severity=Severity.CRITICAL)
            time.sleep(0.3)
            assert listener.received == []  # nothing while the transaction is open
        messages = listener.wait(2)
        time.sleep(0.3)  # and nothing more arrives afterwards: each change is sent once
    events = [m["event"] for m in listener.received]
    # The creation's own two events come first and once; what follows is the downstream apps'
    # reaction to the commit (the investigation's progress, ...), never a repeat of these.
    assert events[:2] == ["timeline.appended", "incident.created"]
    assert events.count("incident.created") == 1
    assert messages[1]["data"]["key"] == incident.key


def test_no_event_after_rollback():
    class Boom(Exception):
        pass

    with GroupListener(ALL_INCIDENTS_GROUP) as listener:
        with pytest.raises(Boom):
            with transaction.atomic():
                services.create_incident(title="Never happened", severity=Severity.LOW)
                raise Boom
        time.sleep(0.5)
    assert Incident.objects.count() == 0
    assert listener.received == []


def test_incident_group_gets_only_its_incident():
    first = services.create_incident(title="A", severity=Severity.LOW)
    second = services.create_incident(title="B", severity=Severity.LOW)
    with GroupListener(incident_group(first.pk)) as listener:
        services.add_comment(incident=second, user=None, message="on B")
        services.add_comment(incident=first, user=None, message="on A")
        listener.wait(1)
        time.sleep(0.3)
    assert [(m["event"], m["data"]["message"]) for m in listener.received] == [("timeline.appended", "on A")]
