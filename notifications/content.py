"""What a notification says: one `Message` built from the incident, rendered by each channel.

Reads investigation's Hypothesis (read-only) for the top hypothesis: notifications sits beside
investigation in the import flow (both build on incidents) and never writes anything of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from string import Template

from django.conf import settings
from django.urls import reverse

from incidents.models import Incident
from investigation.models import Hypothesis, HypothesisStatus
from investigation.scope import telemetry_selectors
from reliability_studio import grafana_links

from . import signing
from .models import NotificationEvent


@dataclass(frozen=True)
class Message:
    event: str
    event_key: str
    event_label: str
    level: int
    delivery_id: int | None
    destination_id: int | None
    incident_id: int
    incident_key: str
    title: str
    severity: str
    status: str
    service: str | None
    team: str
    summary: str
    started_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    top_hypothesis: dict | None
    control_room_url: str
    grafana_url: str
    can_acknowledge: bool

    @property
    def headline(self) -> str:
        return f"{self.event_label}: [{self.severity.upper()}] {self.incident_key} {self.title}"

    def ack_url(self, *, recipient: str) -> str | None:
        """A signed one-click acknowledge link naming this recipient (None once acknowledged)."""
        if not self.can_acknowledge:
            return None
        return signing.ack_url(incident_id=self.incident_id, destination_id=self.destination_id, recipient=recipient)


def top_hypothesis(incident_id: int) -> Hypothesis | None:
    """The incident's hypothesis ranked first that nobody rejected."""
    return (Hypothesis.objects.filter(incident_id=incident_id, rank=1,
                                      status__in=[HypothesisStatus.PROPOSED, HypothesisStatus.CONFIRMED])
            .order_by("-confidence", "id").first())


def event_label(event: str, level: int, incident: Incident) -> str:
    if event == NotificationEvent.ESCALATION:
        return f"Escalation level {level}: not acknowledged"
    if event == NotificationEvent.STATUS:
        return f"Status: {incident.status}"
    if event == NotificationEvent.OPENED:
        return "Incident opened"
    return NotificationEvent(event).label


def grafana_url(incident: Incident) -> str:
    """Grafana Explore on the primary service's error ratio around the incident ("" without Grafana)."""
    if not settings.GRAFANA_URL or incident.primary_service is None:
        return ""
    selector = telemetry_selectors(incident.primary_service)["prometheus.selector"]
    expr = Template(settings.INVESTIGATION_QUERY_ERROR_RATIO).safe_substitute(
        selector=selector, rate=settings.INVESTIGATION_RATE_WINDOW)
    end = incident.resolved_at + timedelta(minutes=15) if incident.resolved_at else "now"
    pane = grafana_links.prometheus_pane(expr, incident.started_at - timedelta(minutes=15), end)
    return grafana_links.explore_url(settings.GRAFANA_URL, {"incident": pane})


def build_message(*, incident: Incident, event: str, event_key: str, level: int = 0, delivery_id: int | None = None,
                  destination_id: int | None = None) -> Message:
    hypothesis = top_hypothesis(incident.pk)
    service = incident.primary_service
    return Message(
        event=event, event_key=event_key, event_label=event_label(event, level, incident), level=level,
        delivery_id=delivery_id, destination_id=destination_id,
        incident_id=incident.pk, incident_key=incident.key, title=incident.title, severity=incident.severity,
        status=incident.status, service=service.slug if service else None,
        team=service.owner_team if service else "", summary=incident.summary[:2000],
        started_at=incident.started_at, acknowledged_at=incident.acknowledged_at, resolved_at=incident.resolved_at,
        top_hypothesis=({"id": hypothesis.pk, "title": hypothesis.title, "confidence": hypothesis.confidence,
                         "service": hypothesis.service} if hypothesis else None),
        control_room_url=settings.NOTIFICATIONS_BASE_URL.rstrip("/") + reverse("incidents:detail", args=[incident.pk]),
        grafana_url=grafana_url(incident),
        can_acknowledge=incident.acknowledged_at is None and incident.is_active,
    )


def sample_message(*, destination_id: int | None) -> Message:
    """What the admin's test button sends: a made-up incident, marked as a test, no ack link."""
    from django.utils import timezone

    return Message(
        event=NotificationEvent.OPENED, event_key="test", event_label="Test notification", level=0,
        delivery_id=None, destination_id=destination_id, incident_id=0, incident_key="INC-TEST",
        title="Test notification from Reliability Studio", severity="low", status="open", service="example",
        team="", summary="This is a sample; no incident exists.", started_at=timezone.now(),
        acknowledged_at=None, resolved_at=None,
        top_hypothesis={"id": None, "title": "Sample hypothesis: a bad deploy of example", "confidence": 0.8,
                        "service": "example"},
        control_room_url=settings.NOTIFICATIONS_BASE_URL.rstrip("/") + "/", grafana_url="", can_acknowledge=False,
    )
