"""Kubernetes evidence: the state of the pods behind the services in scope, and what changed.

Per service in scope, from its catalog selectors (`kubernetes.namespace`, `kubernetes.selector`,
`kubernetes.deployment`), read-only API calls:

    GET /api/v1/namespaces/<ns>/pods?labelSelector=<selector>       the service's pods
    GET /api/v1/namespaces/<ns>/events                              once per namespace
    GET /apis/apps/v1/namespaces/<ns>/deployments                   once per namespace
    GET /apis/apps/v1/namespaces/<ns>/deployments/<deployment>      rollout history, with ...
    GET /apis/apps/v1/namespaces/<ns>/replicasets?labelSelector=<deployment's selector>

`query` is those paths, one per line. What counts: containers in CrashLoopBackOff or OOMKilled
(last termination within the baseline+window), restarts in the window (last termination time in
it), pods not ready, unavailable replicas of the deployment, Warning events about the deployment, its
ReplicaSets or pods seen in the window, and rollouts (ReplicaSet revisions created in the window).

Snapshot (trimmed objects only; ≤ 20 pods, ≤ 20 events, ≤ 5 rollouts):

    {"namespace", "selector", "deployment_name",
     "pods": [{"name", "phase", "ready", "restarts", "node", "waiting_reason", "waiting_message",
               "last_termination": {"reason", "exit_code", "finished_at", "container"} | None,
               "restarted_in_window"}],
     "pods_total", "deployment": {"name", "revision", "replicas", "ready", "available", "unavailable",
                                  "images", "conditions": {type: {"status", "reason"}}} | None,
     "events": [{"reason", "message", "count", "last_seen", "first_seen", "object"}], "warning_events_total",
     "rollouts": [{"revision", "replicaset", "created", "images", "current", "in_window", "change_cause"}],
     "signals": {"crash_loop": [pods], "oom_killed": [pods], "restarted_in_window": [pods],
                 "not_ready": [pods], "unavailable_replicas": n, "warning_events": n, "rollouts_in_window": n},
     "errors": {"events"|"deployments"|"rollouts": message}}        # only the parts that failed

The changes collector may read `snapshot["rollouts"]` entries with `in_window: true` (Kubernetes
rollouts in the window, newest last).

Score: crash loop / OOM kill 8, restarts in the window 4, unavailable replicas or pods not ready 3,
Warning events 2 (up to 3 with many), a rollout in the window 2; the highest, plus 0.5 for each
further kind of signal, at most 10.

Failures: the pod list of a service failing (`KubernetesError`) gives an UNAVAILABLE item for it
(TIMED_OUT for a timeout) with the error as its finding and the query kept; events, deployments and
rollout history failing only drop that part (noted under `errors`). When the pod list fails for every
service queried, the API server as a whole is down: the first error is raised (the runner records the
source as unavailable). No call starts after the deadline; the client's own timeout applies to each call
(it has no per-request override).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import quote

from django.conf import settings

from reliability_studio.telemetry.errors import KIND_TIMEOUT, TelemetryError
from reliability_studio.telemetry.k8s_models import DeploymentInfo, EventInfo, PodInfo
from reliability_studio.telemetry.kubernetes import KubernetesClient

from ..models import EvidenceKind, EvidenceStatus
from .base import CaseInputs, EvidenceItem, Scope

MAX_PODS = 20
MAX_EVENTS = 20
MAX_ROLLOUTS = 5
MAX_TEXT = 300


def _cut(text: str | None, limit: int = MAX_TEXT) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat() if value else None


def _clock(value: datetime | None) -> str:
    return value.astimezone(timezone.utc).strftime("%H:%M:%S") if value else "?"


def _within(value: datetime | None, start: datetime, end: datetime) -> bool:
    return value is not None and start <= value <= end


def failure_status(exc: TelemetryError) -> str:
    return EvidenceStatus.TIMED_OUT if exc.kind == KIND_TIMEOUT else EvidenceStatus.UNAVAILABLE


def selector_query(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


class KubernetesCollector:
    step: ClassVar[str] = "kubernetes"
    kind: ClassVar[str] = EvidenceKind.KUBERNETES
    source: ClassVar[str] = "kubernetes"

    def __init__(self, client: KubernetesClient | None = None) -> None:
        self._client = client

    @property
    def client(self) -> KubernetesClient:
        if self._client is None:
            self._client = KubernetesClient.shared()
        return self._client

    def configured(self) -> bool:
        """Like `KubernetesClient.from_settings`: a kubeconfig path or in-cluster config (an injected
        client also counts when it was given a host)."""
        if self._client is not None:
            c = self._client
            return bool(c.host or c.in_cluster or c.kubeconfig)
        in_cluster = getattr(settings, "KUBERNETES_IN_CLUSTER", False)
        if isinstance(in_cluster, str):
            in_cluster = in_cluster.strip().lower() in ("1", "true", "yes", "on")
        return bool(getattr(settings, "KUBERNETES_KUBECONFIG", "") or in_cluster)

    def collect(self, scope: Scope, deadline: float) -> tuple[list[EvidenceItem], CaseInputs]:
        items: list[EvidenceItem] = []
        errors: list[TelemetryError] = []
        succeeded = 0
        per_namespace: dict[tuple[str, str], Any] = {}  # (ns, "events"|"deployments") -> list | error
        namespaces = getattr(settings, "KUBERNETES_NAMESPACES", None) or ["default"]
        for service in scope.services:
            sel = scope.selectors.get(service) or {}
            ns = sel.get("kubernetes.namespace") or namespaces[0]
            label_selector = sel.get("kubernetes.selector") or f"app={service}"
            deployment = sel.get("kubernetes.deployment") or service
            pods_path = f"GET /api/v1/namespaces/{ns}/pods?labelSelector={quote(label_selector, safe='')}"
            base = {"namespace": ns, "selector": label_selector, "deployment_name": deployment}
            if time.monotonic() >= deadline:
                items.append(self._item(service, pods_path, base,
                                        "not queried: the investigation's deadline was reached",
                                        status=EvidenceStatus.TIMED_OUT))
                continue
            try:
                pods = self.client.pods(ns, label_selector=label_selector)
            except TelemetryError as exc:
                errors.append(exc)
                items.append(self._item(service, pods_path, {**base, "error": str(exc)},
                                        _cut(f"Kubernetes API failed: {exc}", 500), status=failure_status(exc)))
                continue
            succeeded += 1
            items.append(self._service(scope, service, ns, label_selector, deployment, pods_path, pods,
                                       base, per_namespace, deadline))
        if errors and not succeeded:
            raise errors[0]  # every pod list failed: the API server itself is unreachable
        return items, CaseInputs()

    def _namespaced(self, cache: dict, ns: str, what: str, deadline: float):
        key = (ns, what)
        if key not in cache:
            if time.monotonic() >= deadline:
                return TelemetryError("skipped: the investigation's deadline was reached", source="kubernetes")
            try:
                cache[key] = self.client.events(ns) if what == "events" else self.client.deployments(ns)
            except TelemetryError as exc:
                cache[key] = exc
        return cache[key]

    def _service(self, scope: Scope, service: str, ns: str, label_selector: str, deployment: str,
                 pods_path: str, pods: list[PodInfo], base: dict, cache: dict, deadline: float) -> EvidenceItem:
        paths = [pods_path, f"GET /api/v1/namespaces/{ns}/events", f"GET /apis/apps/v1/namespaces/{ns}/deployments"]
        snapshot: dict[str, Any] = dict(base)
        errors: dict[str, str] = {}
        w_start, w_end = scope.window_start, scope.window_end
        recent_start = min(scope.baseline_start, w_start)

        # Pods
        crash, oom, restarted, not_ready = [], [], [], []
        pod_rows = []
        for pod in pods:
            containers = [c for c in pod.containers if not c.init] or pod.containers
            waiting = next((c for c in containers if c.state == "waiting" and c.reason), None)
            terminated = [c for c in pod.containers if c.last_termination_reason or c.state == "terminated"]
            last = max(terminated, key=lambda c: c.last_finished_at or datetime.min.replace(tzinfo=timezone.utc),
                       default=None)
            in_window = any(_within(c.last_finished_at, w_start, w_end) for c in pod.containers)
            if any(c.reason == "CrashLoopBackOff" for c in pod.containers):
                crash.append(pod.name)
            if any((c.last_termination_reason == "OOMKilled" and (c.last_finished_at is None or
                                                                 _within(c.last_finished_at, recent_start, w_end)))
                   or (c.state == "terminated" and c.reason == "OOMKilled") for c in pod.containers):
                oom.append(pod.name)
            if in_window:
                restarted.append(pod.name)
            if not pod.ready and pod.phase not in ("Succeeded",):
                not_ready.append(pod.name)
            pod_rows.append({
                "name": pod.name, "phase": pod.phase, "ready": pod.ready, "restarts": pod.restart_count,
                "node": pod.node,
                "waiting_reason": waiting.reason if waiting else (pod.reason or None),
                "waiting_message": _cut(waiting.message) if waiting and waiting.message else None,
                "last_termination": None if last is None else {
                    "container": last.name,
                    "reason": last.last_termination_reason or last.reason,
                    "exit_code": last.last_exit_code if last.last_termination_reason else last.exit_code,
                    "finished_at": _iso(last.last_finished_at)},
                "restarted_in_window": in_window,
            })
        flagged = set(crash) | set(oom) | set(restarted) | set(not_ready)
        pod_rows.sort(key=lambda p: (p["name"] not in flagged, -p["restarts"], p["name"]))
        snapshot["pods"] = pod_rows[:MAX_PODS]
        snapshot["pods_total"] = len(pods)

        # Deployment
        dep_info: DeploymentInfo | None = None
        deployments = self._namespaced(cache, ns, "deployments", deadline)
        if isinstance(deployments, TelemetryError):
            errors["deployments"] = _cut(str(deployments))
        else:
            dep_info = next((d for d in deployments if d.name == deployment), None)
        unavailable = 0
        if dep_info is not None:
            unavailable = max(0, dep_info.replicas - dep_info.available_replicas)
            snapshot["deployment"] = {
                "name": dep_info.name, "revision": dep_info.revision, "replicas": dep_info.replicas,
                "ready": dep_info.ready_replicas, "available": dep_info.available_replicas,
                "unavailable": unavailable, "images": dep_info.images[:5],
                "conditions": {k: {"status": c.status, "reason": c.reason} for k, c in dep_info.conditions.items()},
            }
        else:
            snapshot["deployment"] = None

        # Events about the deployment, its ReplicaSets and its pods, seen in the window
        pod_names = {p.name for p in pods}
        events = self._namespaced(cache, ns, "events", deadline)
        warnings: list[EventInfo] = []
        if isinstance(events, TelemetryError):
            errors["events"] = _cut(str(events))
        else:
            for ev in events:
                if ev.type != "Warning":
                    continue
                name = ev.object_name or ""
                if not (name in pod_names or name == deployment or name.startswith(deployment + "-")):
                    continue
                seen_last, seen_first = ev.last_seen or ev.first_seen, ev.first_seen or ev.last_seen
                if seen_last is None or seen_last < w_start or (seen_first and seen_first > w_end):
                    continue
                warnings.append(ev)
        warnings.sort(key=lambda e: (e.last_seen or e.first_seen), reverse=True)
        snapshot["events"] = [{
            "reason": e.reason, "message": _cut(e.message), "count": e.count, "first_seen": _iso(e.first_seen),
            "last_seen": _iso(e.last_seen), "object": f"{e.object_kind or ''}/{e.object_name or ''}",
        } for e in warnings[:MAX_EVENTS]]
        snapshot["warning_events_total"] = len(warnings)

        # Rollouts (ReplicaSet revisions)
        rollouts = []
        if dep_info is not None:
            rs_selector = selector_query(dep_info.selector)
            paths.append(f"GET /apis/apps/v1/namespaces/{ns}/deployments/{deployment}")
            paths.append(f"GET /apis/apps/v1/namespaces/{ns}/replicasets"
                         + (f"?labelSelector={quote(rs_selector, safe='')}" if rs_selector else ""))
            if time.monotonic() >= deadline:
                errors["rollouts"] = "skipped: the investigation's deadline was reached"
            else:
                try:
                    history = self.client.rollout_history(ns, deployment)
                except TelemetryError as exc:
                    errors["rollouts"] = _cut(str(exc))
                    history = []
                for rev in history[-MAX_ROLLOUTS:]:
                    rollouts.append({
                        "revision": rev.revision, "replicaset": rev.replicaset, "created": _iso(rev.created),
                        "images": rev.images[:5], "current": rev.current,
                        "in_window": _within(rev.created, w_start, w_end),
                        "change_cause": _cut(rev.change_cause) if rev.change_cause else None,
                    })
        snapshot["rollouts"] = rollouts
        in_window_rollouts = [r for r in rollouts if r["in_window"]]
        snapshot["signals"] = {
            "crash_loop": crash, "oom_killed": oom, "restarted_in_window": restarted, "not_ready": not_ready,
            "unavailable_replicas": unavailable, "warning_events": len(warnings),
            "rollouts_in_window": len(in_window_rollouts),
        }
        if errors:
            snapshot["errors"] = errors

        # Score and finding
        components: list[float] = []
        parts: list[str] = []
        worst = next((p for p in pod_rows if p["name"] in set(crash) | set(oom)), None)
        if crash or oom:
            components.append(8.0 + (1.0 if crash and oom else 0.0))
            desc = worst["name"] + ": " + (worst["waiting_reason"] or "restarting")
            lt = worst["last_termination"]
            if lt and lt["reason"]:
                when = _clock(datetime.fromisoformat(lt["finished_at"])) if lt["finished_at"] else "?"
                desc += f", last terminated {lt['reason']} (exit {lt['exit_code']}) at {when}"
            desc += f", {worst['restarts']} restarts"
            others = len((set(crash) | set(oom)) - {worst["name"]})
            if others:
                desc += f" (+{others} more pod{'s' if others > 1 else ''})"
            parts.append(desc)
        if restarted:
            components.append(4.0)
            if not (crash or oom):
                parts.append(f"{len(restarted)} pod{'s' if len(restarted) > 1 else ''} restarted in the window")
        if unavailable or not_ready:
            components.append(3.0)
            if dep_info is not None and unavailable:
                parts.append(f"{unavailable}/{dep_info.replicas} replicas unavailable")
            elif not_ready:
                parts.append(f"{len(not_ready)}/{len(pods)} pods not ready")
        if warnings:
            total = sum(e.count for e in warnings)
            components.append(2.0 + min(1.0, total / 20))
            top = max(warnings, key=lambda e: e.count)
            parts.append(f"Warning {top.reason} ×{top.count}"
                         + (f" (+{len(warnings) - 1} more warning events)" if len(warnings) > 1 else ""))
        if in_window_rollouts:
            components.append(2.0)
            r = in_window_rollouts[-1]
            image = r["images"][0].rsplit("/", 1)[-1] if r["images"] else r["replicaset"]
            created = datetime.fromisoformat(r["created"]) if r["created"] else None
            parts.append(f"rollout to revision {r['revision']} ({image}) at {_clock(created)}")
        score = min(10.0, max(components) + 0.5 * (len(components) - 1)) if components else 0.0
        query = "\n".join(paths)
        if not pods and dep_info is None and not warnings:
            return self._item(service, query, snapshot,
                              f"no pods match {label_selector} in namespace {ns}", status=EvidenceStatus.NO_DATA)
        if not parts:
            finding = f"{len(pods)} pod{'s' if len(pods) != 1 else ''} ready, no restarts or warnings in the window"
            if not pods:
                finding = f"no pods match {label_selector} in namespace {ns}"
        else:
            finding = "; ".join(parts)
        anomaly = None
        times = [datetime.fromisoformat(p["last_termination"]["finished_at"]) for p in pod_rows
                 if p["restarted_in_window"] and p["last_termination"] and p["last_termination"]["finished_at"]]
        times += [e.first_seen for e in warnings if e.first_seen and e.first_seen >= w_start]
        if times:
            anomaly = min(times)
        return self._item(service, query, snapshot, finding, score=score, anomaly_start=anomaly)

    def _item(self, service: str, query: str, snapshot: dict, finding: str, *, status: str = EvidenceStatus.OK,
              score: float = 0.0, anomaly_start: datetime | None = None) -> EvidenceItem:
        return EvidenceItem(kind=self.kind, source=self.source, service=service, query=query, snapshot=snapshot,
                            finding=_cut(finding, 500), score=round(score, 3), status=status,
                            anomaly_start=anomaly_start)
