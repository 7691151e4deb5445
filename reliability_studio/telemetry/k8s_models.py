"""Typed views of Kubernetes objects, parsed from raw API JSON.

The Kubernetes client asks the official client for undeserialized JSON (it is
faster and lets malformed bodies fail loudly), and these functions turn the
camelCase dicts into small dataclasses the rest of the app can rely on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"


def parse_time(value: str | None) -> datetime | None:
    """RFC3339 (``2026-03-14T08:02:11Z``, optionally with fractions) -> aware datetime."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(slots=True)
class ContainerInfo:
    name: str
    image: str
    ready: bool
    started: bool | None
    restart_count: int
    state: str  # "waiting" | "running" | "terminated" | "unknown"
    reason: str | None  # e.g. CrashLoopBackOff, ImagePullBackOff, Completed
    message: str | None
    exit_code: int | None  # only when state == "terminated"
    last_termination_reason: str | None  # e.g. OOMKilled, Error
    last_exit_code: int | None  # e.g. 137
    last_finished_at: datetime | None
    init: bool = False


@dataclass(slots=True)
class PodInfo:
    name: str
    namespace: str
    phase: str
    ready: bool
    node: str | None
    labels: dict[str, str]
    owner_kind: str | None
    owner_name: str | None
    created: datetime | None
    containers: list[ContainerInfo]
    conditions: dict[str, str] = field(default_factory=dict)  # type -> "True"/"False"
    reason: str | None = None  # pod-level, e.g. Evicted
    message: str | None = None

    @property
    def restart_count(self) -> int:
        return sum(c.restart_count for c in self.containers)


@dataclass(slots=True)
class EventInfo:
    name: str
    namespace: str
    type: str  # Normal | Warning
    reason: str
    message: str
    count: int
    first_seen: datetime | None
    last_seen: datetime | None
    object_kind: str | None
    object_name: str | None
    source: str | None


@dataclass(slots=True)
class Condition:
    status: str
    reason: str | None
    message: str | None


@dataclass(slots=True)
class DeploymentInfo:
    name: str
    namespace: str
    uid: str
    revision: int | None
    replicas: int
    ready_replicas: int
    updated_replicas: int
    available_replicas: int
    images: list[str]
    selector: dict[str, str]
    paused: bool
    conditions: dict[str, Condition]
    created: datetime | None


@dataclass(slots=True)
class RolloutRevision:
    revision: int
    replicaset: str
    images: list[str]
    created: datetime | None
    replicas: int
    ready_replicas: int
    current: bool
    change_cause: str | None = None


def _container(status: dict[str, Any], images: dict[str, str], init: bool) -> ContainerInfo:
    state_obj = status.get("state") or {}
    state, detail = "unknown", {}
    for name in ("waiting", "running", "terminated"):
        if state_obj.get(name) is not None:
            state, detail = name, state_obj[name]
            break
    last = (status.get("lastState") or {}).get("terminated") or {}
    return ContainerInfo(
        name=status.get("name", ""),
        image=status.get("image") or images.get(status.get("name", ""), ""),
        ready=bool(status.get("ready")),
        started=status.get("started"),
        restart_count=int(status.get("restartCount") or 0),
        state=state,
        reason=detail.get("reason"),
        message=detail.get("message"),
        exit_code=detail.get("exitCode") if state == "terminated" else None,
        last_termination_reason=last.get("reason"),
        last_exit_code=last.get("exitCode"),
        last_finished_at=parse_time(last.get("finishedAt")),
        init=init,
    )


def parse_pod(obj: dict[str, Any]) -> PodInfo:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    images = {c.get("name", ""): c.get("image", "") for c in spec.get("containers") or []}
    conditions = {c["type"]: c.get("status", "Unknown") for c in status.get("conditions") or []}
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    containers = [_container(s, images, True) for s in status.get("initContainerStatuses") or []]
    containers += [_container(s, images, False) for s in status.get("containerStatuses") or []]
    return PodInfo(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        phase=status.get("phase", "Unknown"),
        ready=conditions.get("Ready") == "True",
        node=spec.get("nodeName"),
        labels=meta.get("labels") or {},
        owner_kind=owner.get("kind") if owner else None,
        owner_name=owner.get("name") if owner else None,
        created=parse_time(meta.get("creationTimestamp")),
        containers=containers,
        conditions=conditions,
        reason=status.get("reason"),
        message=status.get("message"),
    )


def parse_event(obj: dict[str, Any]) -> EventInfo:
    meta, involved = obj.get("metadata") or {}, obj.get("involvedObject") or {}
    series = obj.get("series") or {}
    # events.k8s.io-style events fill eventTime/series instead of the legacy fields.
    last_seen = (
        obj.get("lastTimestamp") or series.get("lastObservedTime") or obj.get("eventTime")
        or meta.get("creationTimestamp")
    )
    first_seen = obj.get("firstTimestamp") or obj.get("eventTime") or meta.get("creationTimestamp")
    return EventInfo(
        name=meta.get("name", ""),
        namespace=meta.get("namespace") or involved.get("namespace", ""),
        type=obj.get("type", ""),
        reason=obj.get("reason", ""),
        message=obj.get("message", ""),
        count=int(obj.get("count") or series.get("count") or 1),
        first_seen=parse_time(first_seen),
        last_seen=parse_time(last_seen),
        object_kind=involved.get("kind"),
        object_name=involved.get("name"),
        source=(obj.get("source") or {}).get("component") or obj.get("reportingComponent"),
    )


def _revision(meta: dict[str, Any]) -> int | None:
    value = (meta.get("annotations") or {}).get(REVISION_ANNOTATION)
    return int(value) if value and str(value).isdigit() else None


def _images(template: dict[str, Any]) -> list[str]:
    return [c.get("image", "") for c in ((template.get("spec") or {}).get("containers") or [])]


def parse_deployment(obj: dict[str, Any]) -> DeploymentInfo:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    return DeploymentInfo(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        uid=meta.get("uid", ""),
        revision=_revision(meta),
        replicas=int(spec.get("replicas", 1)),
        ready_replicas=int(status.get("readyReplicas") or 0),
        updated_replicas=int(status.get("updatedReplicas") or 0),
        available_replicas=int(status.get("availableReplicas") or 0),
        images=_images(spec.get("template") or {}),
        selector=(spec.get("selector") or {}).get("matchLabels") or {},
        paused=bool(spec.get("paused")),
        conditions={
            c["type"]: Condition(c.get("status", "Unknown"), c.get("reason"), c.get("message"))
            for c in status.get("conditions") or []
        },
        created=parse_time(meta.get("creationTimestamp")),
    )


def selector_string(selector: dict[str, Any]) -> str:
    """LabelSelector object -> ``labelSelector`` query string."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op in ("In", "NotIn"):
            parts.append(f"{key} {op.lower()} ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def rollout_revisions(deployment: dict[str, Any], replicasets: list[dict[str, Any]]) -> list[RolloutRevision]:
    """ReplicaSets controlled by ``deployment`` as revisions, oldest first."""
    dmeta = deployment.get("metadata") or {}
    current = _revision(dmeta)
    out = []
    for rs in replicasets:
        meta = rs.get("metadata") or {}
        owners = meta.get("ownerReferences") or []
        # Label selectors can overlap between deployments; ownership is authoritative.
        if not any(o.get("controller") and o.get("kind") == "Deployment"
                   and (o.get("uid") == dmeta.get("uid") or not dmeta.get("uid"))
                   and o.get("name") == dmeta.get("name") for o in owners):
            continue
        revision = _revision(meta)
        if revision is None:
            continue
        spec, status = rs.get("spec") or {}, rs.get("status") or {}
        out.append(RolloutRevision(
            revision=revision,
            replicaset=meta.get("name", ""),
            images=_images(spec.get("template") or {}),
            created=parse_time(meta.get("creationTimestamp")),
            replicas=int(spec.get("replicas") or 0),
            ready_replicas=int(status.get("readyReplicas") or 0),
            current=revision == current,
            change_cause=(meta.get("annotations") or {}).get(CHANGE_CAUSE_ANNOTATION),
        ))
    return sorted(out, key=lambda r: r.revision)
