"""Changes collector: deploys and configuration changes of the services in scope.

Three sources, one kind of evidence ("changes"):
  - Change rows recorded through the API / `manage.py record_change` (read from the database in
    `prepare`, which the runner calls on its own thread: collector threads never touch the database);
  - Grafana annotations tagged "deploy" (GrafanaClient.find_annotations), when GRAFANA_URL is set;
  - Kubernetes rollouts, read from the Kubernetes collector's evidence (`rollout_items`, so the
    cluster is asked once), when a cluster is configured.
Annotations and rollouts come back as items whose snapshot carries `record_change`; the runner records
them as Change rows (idempotent on their external id) so the review keeps them after the source
forgets. A change landing shortly before the detection scores high; the hypotheses compare it with
the service's own onset.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings

from reliability_studio.telemetry.errors import TelemetryError
from reliability_studio.telemetry.grafana import GrafanaClient

from ..models import Change, ChangeKind, ChangeSource, EvidenceKind, EvidenceStatus
from .base import CaseInputs, EvidenceItem, Scope

MAX_CHANGES_PER_SERVICE = 10


def change_score(occurred_at: datetime, detection_time: datetime) -> float:
    """1.0 for a change just before the detection, falling linearly to 0 over the suspect horizon;
    a change after the detection cannot have caused it (0)."""
    horizon = max(1, settings.INVESTIGATION_DEPLOY_SUSPECT_SECONDS)
    lead = (detection_time - occurred_at).total_seconds()
    if lead < -60:  # a minute of clock skew between CI and us
        return 0.0
    return round(max(0.0, 1.0 - max(lead, 0.0) / horizon), 3)


def change_snapshot(change: Change) -> dict:
    return {"id": change.pk, "kind": change.kind, "source": change.source, "service": change.service.slug,
            "version": change.version, "author": change.author, "url": change.url,
            "description": change.description[:500], "occurred_at": change.occurred_at.isoformat(),
            "external_id": change.external_id}


def describe(snapshot: dict, detection_time: datetime) -> str:
    at = datetime.fromisoformat(snapshot["occurred_at"])
    lead = (detection_time - at).total_seconds()
    when = f"{abs(lead):.0f} s {'before' if lead >= 0 else 'after'} detection"
    who = f" by {snapshot['author']}" if snapshot.get("author") else ""
    version = f" {snapshot['version']}" if snapshot.get("version") else ""
    return f"{snapshot['kind']} of {snapshot['service']}{version}{who} at {at:%H:%M:%S} UTC ({when})"


class ChangesCollector:
    step = "changes"
    kind = EvidenceKind.CHANGES
    source = "changes"

    def __init__(self):
        self._recorded: list[Change] = []

    def configured(self) -> bool:
        return True  # recorded changes are always there; Grafana/Kubernetes are optional parts

    def prepare(self, scope: Scope) -> None:
        since = scope.window_start - timedelta(seconds=settings.INVESTIGATION_CHANGE_LOOKBACK_SECONDS)
        self._recorded = list(
            Change.objects.filter(service__slug__in=scope.services, occurred_at__gte=since,
                                  occurred_at__lte=scope.window_end).select_related("service").order_by("-occurred_at")
        )

    def collect(self, scope: Scope, deadline: float) -> tuple[list[EvidenceItem], CaseInputs]:
        since = scope.window_start - timedelta(seconds=settings.INVESTIGATION_CHANGE_LOOKBACK_SECONDS)
        items: list[EvidenceItem] = []
        per_service: dict[str, int] = {}
        seen: set[tuple[str, str]] = set()
        for change in self._recorded:
            if per_service.get(change.service.slug, 0) >= MAX_CHANGES_PER_SERVICE:
                continue
            per_service[change.service.slug] = per_service.get(change.service.slug, 0) + 1
            if change.external_id:
                seen.add((change.source, change.external_id))
            snapshot = change_snapshot(change)
            items.append(EvidenceItem(
                self.kind, "catalog", change.service.slug, f"change:{change.pk}", snapshot,
                describe(snapshot, scope.detection_time), score=change_score(change.occurred_at, scope.detection_time),
                explore_url=change.url if change.url.startswith(("http://", "https://")) else ""))
        items += self._grafana(scope, since, seen)
        return items, CaseInputs()

    # -- optional sources ------------------------------------------------------------------------

    def _grafana(self, scope: Scope, since: datetime, seen: set) -> list[EvidenceItem]:
        if not settings.GRAFANA_URL:
            return []
        query = f"/api/annotations?tags=deploy&from={int(since.timestamp() * 1000)}&to={int(scope.window_end.timestamp() * 1000)}"
        try:
            annotations = GrafanaClient.shared().find_annotations(
                tags=["deploy"], from_ms=int(since.timestamp() * 1000), to_ms=int(scope.window_end.timestamp() * 1000),
                limit=200)
        except TelemetryError as exc:
            return [EvidenceItem(self.kind, "grafana", "", query, {"error": exc.message, "error_kind": exc.kind},
                                 f"Grafana deploy annotations unavailable: {exc.message[:300]}",
                                 status=EvidenceStatus.UNAVAILABLE)]
        items = []
        for annotation in annotations:
            service = _annotation_service(annotation, scope.services)
            external_id = f"grafana:{annotation.id}"
            if service is None or (ChangeSource.GRAFANA, external_id) in seen:
                continue
            at = datetime.fromtimestamp(annotation.time_ms / 1000, tz=UTC)
            version = next((t.split(":", 1)[1] for t in annotation.tags if t.startswith("version:")), "")
            snapshot = {"kind": ChangeKind.DEPLOY, "source": ChangeSource.GRAFANA, "service": service,
                        "version": version, "author": "", "url": "", "description": annotation.text[:500],
                        "occurred_at": at.isoformat(), "external_id": external_id, "tags": annotation.tags[:20],
                        "record_change": True}
            items.append(EvidenceItem(self.kind, "grafana", service, query + f"#{annotation.id}", snapshot,
                                      describe(snapshot, scope.detection_time),
                                      score=change_score(at, scope.detection_time)))
        return items


def rollout_items(kubernetes_items: list[EvidenceItem], scope: Scope) -> list[EvidenceItem]:
    """Changes evidence from the Kubernetes collector's rollouts (snapshot["rollouts"], in the window),
    so the cluster is asked once. Called by the runner on its own thread once that collector is done;
    the items carry `record_change`, so each rollout is also kept as a Change row."""
    items = []
    for k8s_item in kubernetes_items:
        snap = k8s_item.snapshot or {}
        namespace = snap.get("namespace", "")
        for rollout in snap.get("rollouts") or []:
            if not rollout.get("in_window") or not rollout.get("created") or k8s_item.service not in scope.services:
                continue
            created = datetime.fromisoformat(rollout["created"])
            external_id = f"k8s:{namespace}/{rollout['replicaset']}"
            snapshot = {"kind": ChangeKind.DEPLOY, "source": ChangeSource.KUBERNETES, "service": k8s_item.service,
                        "version": ", ".join(rollout.get("images") or [])[:200], "author": "", "url": "",
                        "description": (rollout.get("change_cause") or f"rollout revision {rollout.get('revision')}")[:500],
                        "occurred_at": created.isoformat(), "external_id": external_id,
                        "revision": rollout.get("revision"), "record_change": True}
            items.append(EvidenceItem(EvidenceKind.CHANGES, "kubernetes", k8s_item.service,
                                      f"/apis/apps/v1/namespaces/{namespace}/replicasets/{rollout['replicaset']}",
                                      snapshot, describe(snapshot, scope.detection_time),
                                      score=change_score(created, scope.detection_time)))
    return items


def _annotation_service(annotation, services: list[str]) -> str | None:
    """Deploy annotations name their service as a tag: "service:payment" or the bare slug."""
    for tag in annotation.tags:
        slug = tag.split(":", 1)[1] if tag.startswith("service:") else tag
        if slug in services:
            return slug
    return None
