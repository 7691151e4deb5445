"""Kubernetes actions through the official client (reliability_studio.telemetry.kubernetes):
rollout restart, scale, rollback, delete a pod, and shifting weight between two routes of an Istio
VirtualService. Each dry run reads the live object and shows the exact request it would send."""
from __future__ import annotations

import copy

from reliability_studio.telemetry.errors import KubernetesError
from reliability_studio.telemetry.kubernetes import (
    RESTARTED_AT_ANNOTATION,
    KubernetesClient,
    restart_patch,
    rfc3339_now,
)

from . import register
from .base import ActionError, ActionKind, Param, ParamError, change

NAME = Param(str, help="a Kubernetes object name")
NAMESPACE = Param(str, required=False, default="default")


def client() -> KubernetesClient:
    return KubernetesClient.shared()


def _deployment_path(p: dict, sub: str = "") -> str:
    return f"/apis/apps/v1/namespaces/{p['namespace']}/deployments/{p['deployment']}{sub}"


def _images(template: dict) -> dict[str, str]:
    return {c.get("name", ""): c.get("image", "") for c in (template.get("spec") or {}).get("containers") or []}


class _Kubernetes(ActionKind):
    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KubernetesError as exc:
            raise ActionError(f"kubernetes: {exc}") from None


class RolloutRestart(_Kubernetes):
    def target(self, p):
        return f"deployment {p['namespace']}/{p['deployment']}"

    def dry_run(self, p):
        dep = self._call(client().deployment_object, p["namespace"], p["deployment"])
        if (dep.get("spec") or {}).get("paused"):
            raise ActionError(f"{self.target(p)} is paused; resume it before restarting (kubectl refuses too)")
        annotations = ((dep.get("spec") or {}).get("template") or {}).get("metadata", {}).get("annotations") or {}
        replicas = (dep.get("spec") or {}).get("replicas")
        return {
            "summary": f"Restart every pod of {self.target(p)} ({replicas} replicas, rolling)",
            "changes": [change(f"spec.template.metadata.annotations[{RESTARTED_AT_ANNOTATION}]",
                               annotations.get(RESTARTED_AT_ANNOTATION), "<time of execution>")],
            "request": {"method": "PATCH", "path": _deployment_path(p),
                        "content_type": "application/strategic-merge-patch+json",
                        "body": restart_patch("<time of execution, RFC 3339>")},
        }

    def execute(self, p, *, action_id):
        at = rfc3339_now()
        dep = self._call(client().rollout_restart, p["namespace"], p["deployment"], restarted_at=at)
        return {"restarted_at": at, "generation": (dep.get("metadata") or {}).get("generation")}


class Scale(_Kubernetes):
    def target(self, p):
        return f"deployment {p['namespace']}/{p['deployment']}"

    def dry_run(self, p):
        scale = self._call(client().scale_object, p["namespace"], p["deployment"])
        before = (scale.get("spec") or {}).get("replicas")
        return {
            "summary": f"Scale {self.target(p)} from {before} to {p['replicas']} replicas",
            "changes": [change("spec.replicas", before, p["replicas"])],
            "noop": before == p["replicas"],
            "request": {"method": "PATCH", "path": _deployment_path(p, "/scale"),
                        "content_type": "application/merge-patch+json", "body": {"spec": {"replicas": p["replicas"]}}},
        }

    def execute(self, p, *, action_id):
        scale = self._call(client().scale, p["namespace"], p["deployment"], p["replicas"])
        return {"replicas": (scale.get("spec") or {}).get("replicas")}


class Rollback(_Kubernetes):
    def target(self, p):
        return f"deployment {p['namespace']}/{p['deployment']}"

    def dry_run(self, p):
        patch, revision, dep = self._call(client().rollback_patch, p["namespace"], p["deployment"],
                                          p.get("to_revision"))
        current = (dep.get("metadata") or {}).get("annotations", {}).get("deployment.kubernetes.io/revision")
        before, after = _images((dep.get("spec") or {}).get("template") or {}), _images(patch[0]["value"])
        changes = [change(f"spec.template.spec.containers[{name}].image", before.get(name), image)
                   for name, image in after.items() if before.get(name) != image]
        changes.append(change("revision", current, f"{revision} (re-deployed as a new revision)"))
        return {
            "summary": f"Roll {self.target(p)} back from revision {current} to revision {revision}",
            "changes": changes,
            "request": {"method": "PATCH", "path": _deployment_path(p), "content_type": "application/json-patch+json",
                        "body": patch},
        }

    def execute(self, p, *, action_id):
        patch, revision, _dep = self._call(client().rollback_patch, p["namespace"], p["deployment"],
                                           p.get("to_revision"))
        self._call(client().rollback, p["namespace"], p["deployment"], revision)
        return {"rolled_back_to": revision}


class DeletePod(_Kubernetes):
    def target(self, p):
        return f"pod {p['namespace']}/{p['pod']}"

    def dry_run(self, p):
        pod = self._call(client().pod, p["namespace"], p["pod"])
        owner = f"{pod.owner_kind} {pod.owner_name}" if pod.owner_kind else "no controller: it will NOT come back"
        return {
            "summary": f"Delete {self.target(p)} (phase {pod.phase}, {pod.restart_count} restarts; owner: {owner})",
            "changes": [change(f"pods/{p['pod']}", pod.phase, "deleted")],
            "request": {"method": "DELETE", "path": f"/api/v1/namespaces/{p['namespace']}/pods/{p['pod']}"},
        }

    def execute(self, p, *, action_id):
        self._call(client().delete_pod, p["namespace"], p["pod"])
        return {"deleted": p["pod"]}


def _destination_key(route: dict) -> str:
    dest = route.get("destination") or {}
    return dest.get("subset") or dest.get("host") or ""


class ShiftTraffic(_Kubernetes):
    """Move `percent` points of weight from one destination of an HTTP route to another."""

    def check(self, p):
        if p["from"] == p["to"]:
            raise ParamError("to", "must differ from 'from'")

    def target(self, p):
        return f"virtualservice {p['namespace']}/{p['virtual_service']}"

    def _plan(self, p) -> tuple[dict, dict, list]:
        vs = self._call(client().virtual_service, p["namespace"], p["virtual_service"], p["api_version"])
        http = copy.deepcopy((vs.get("spec") or {}).get("http") or [])
        index = next((i for i, r in enumerate(http) if not p["route"] or r.get("name") == p["route"]), None)
        if index is None:
            raise ActionError(f"{self.target(p)} has no HTTP route named {p['route']!r}")
        routes = http[index].get("route") or []
        keys = [_destination_key(r) for r in routes]
        for name in ("from", "to"):
            if p[name] not in keys:
                raise ActionError(f"{self.target(p)} route {index} has no destination {p[name]!r} (has {', '.join(keys)})")
        src, dst = routes[keys.index(p["from"])], routes[keys.index(p["to"])]
        # An Istio route with one destination and no weight carries everything.
        before = {k: r.get("weight", 100 if len(routes) == 1 else 0) for k, r in zip(keys, routes)}
        moved = min(p["percent"], before[p["from"]])
        src["weight"], dst["weight"] = before[p["from"]] - moved, before[p["to"]] + moved
        after = {k: r.get("weight", before[k]) for k, r in zip(keys, routes)}
        patch = {"metadata": {"resourceVersion": (vs.get("metadata") or {}).get("resourceVersion")},
                 "spec": {"http": http}}
        changes = [change(f"spec.http[{index}].route[{i}].weight ({k})", before[k], after[k])
                   for i, k in enumerate(keys) if before[k] != after[k]]
        return patch, {"before": before, "after": after, "moved": moved, "route": index}, changes

    def dry_run(self, p):
        patch, weights, changes = self._plan(p)
        text = lambda w: ", ".join(f"{k} {v}%" for k, v in w.items())  # noqa: E731
        return {
            "summary": f"Shift {weights['moved']}% of {self.target(p)} from {p['from']} to {p['to']}: "
                       f"{text(weights['before'])} → {text(weights['after'])}",
            "changes": changes,
            "noop": not weights["moved"],
            "weights": weights,
            "request": {"method": "PATCH", "content_type": "application/merge-patch+json", "body": patch,
                        "path": f"/apis/networking.istio.io/{p['api_version']}/namespaces/{p['namespace']}"
                                f"/virtualservices/{p['virtual_service']}"},
        }

    def execute(self, p, *, action_id):
        patch, weights, _changes = self._plan(p)
        if not weights["moved"]:
            raise ActionError(f"{p['from']} already carries no traffic; nothing to shift")
        self._call(client().patch_virtual_service, p["namespace"], p["virtual_service"], patch,
                   version=p["api_version"])
        return {"weights": weights["after"], "moved": weights["moved"]}


register(RolloutRestart(name="kubernetes.rollout_restart", label="Rollout restart",
                        params={"namespace": NAMESPACE, "deployment": NAME}))
register(Scale(name="kubernetes.scale", label="Scale",
               params={"namespace": NAMESPACE, "deployment": NAME, "replicas": Param(int, min=0, max=1000)}))
register(Rollback(name="kubernetes.rollback", label="Roll back to the previous revision",
                  params={"namespace": NAMESPACE, "deployment": NAME,
                          "to_revision": Param(int, required=False, min=1)}))
register(DeletePod(name="kubernetes.delete_pod", label="Delete a pod", params={"namespace": NAMESPACE, "pod": NAME}))
register(ShiftTraffic(name="kubernetes.shift_traffic", label="Shift traffic (Istio VirtualService)",
                      params={"namespace": NAMESPACE, "virtual_service": NAME, "from": Param(str), "to": Param(str),
                              "percent": Param(int, min=1, max=100), "route": Param(str, required=False, default=""),
                              "api_version": Param(str, required=False, default="v1",
                                                   choices=("v1", "v1beta1", "v1alpha3"))}))
