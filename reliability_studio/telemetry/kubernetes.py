"""Read-only Kubernetes client built on the official ``kubernetes`` package.

The official client talks urllib3, not ``requests``, so it cannot reuse the
HTTP base class; it shares :class:`~.resilience.Resilience` instead, giving the
same timeouts, retry budget (GETs only) and circuit-breaker semantics. urllib3's
own retries are disabled so the two layers don't multiply.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Callable

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from .config import as_bool, as_list, get_setting, resilience_kwargs, shared_client
from .errors import (
    KIND_BAD_RESPONSE,
    KIND_CONNECTION,
    KIND_HTTP,
    KIND_NOT_CONFIGURED,
    KIND_NOT_FOUND,
    KIND_TIMEOUT,
    KubernetesError,
)
from .k8s_models import (
    REVISION_ANNOTATION,
    DeploymentInfo,
    EventInfo,
    PodInfo,
    RolloutRevision,
    parse_deployment,
    parse_event,
    parse_pod,
    rollout_revisions,
    selector_string,
)
from .resilience import Resilience

logger = logging.getLogger("reliability_studio.telemetry")


class KubernetesClient:
    """Pods, events, deployments and rollout history.

    Configuration, first match wins: explicit ``host`` (+ ``token``), then
    ``in_cluster``, then ``kubeconfig`` (or ``$KUBECONFIG`` / ``~/.kube/config``).
    The API client is created lazily, so construction never fails.

    ``namespaces``: the namespaces used when a method is called without one; if
    empty, such calls cover all namespaces.
    """

    source = "kubernetes"

    def __init__(
        self,
        *,
        host: str | None = None,
        token: str | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
        in_cluster: bool = False,
        verify_ssl: bool = True,
        ca_cert: str | None = None,
        namespaces: list[str] | None = None,
        timeout: float = 10.0,
        connect_timeout: float | None = None,
        retries: int = 2,
        breaker_fail_max: int = 5,
        breaker_reset_seconds: float = 30.0,
        backoff_seconds: float = 0.2,
        backoff_max_seconds: float = 5.0,
    ) -> None:
        self.host = host.rstrip("/") if host else None
        self._token = token or None
        self.kubeconfig = kubeconfig or None
        self.context = context
        self.in_cluster = in_cluster
        self.verify_ssl = verify_ssl
        self.ca_cert = ca_cert
        self.namespaces = list(namespaces or [])
        # A tuple: the official client silently ignores a float _request_timeout.
        self.timeout = (float(connect_timeout or timeout), float(timeout))
        self._api_client: k8s.ApiClient | None = None
        self._fingerprint = (
            self.host, self.kubeconfig, context, in_cluster, verify_ssl, ca_cert,
            tuple(self.namespaces), self.timeout, retries, breaker_fail_max,
            breaker_reset_seconds, hashlib.sha256((token or "").encode()).hexdigest(),
        )
        self.resilience = Resilience(
            self.source, KubernetesError, retries=retries, fail_max=breaker_fail_max,
            reset_timeout=breaker_reset_seconds, backoff=backoff_seconds,
            backoff_max=backoff_max_seconds,
        )

    @classmethod
    def from_settings(cls, settings: Any = None) -> "KubernetesClient":
        """Build from ``KUBERNETES_KUBECONFIG``, ``KUBERNETES_IN_CLUSTER``,
        ``KUBERNETES_NAMESPACES`` and ``TELEMETRY_*``."""
        return cls(
            kubeconfig=get_setting("KUBERNETES_KUBECONFIG", "", settings) or None,
            in_cluster=as_bool(get_setting("KUBERNETES_IN_CLUSTER", settings=settings)),
            namespaces=as_list(get_setting("KUBERNETES_NAMESPACES", settings=settings)),
            **resilience_kwargs(settings),
        )

    @classmethod
    def shared(cls, settings: Any = None) -> "KubernetesClient":
        """Process-wide instance built from settings (keeps breaker state across requests)."""
        return shared_client(cls, settings)

    def config_fingerprint(self) -> tuple:
        return self._fingerprint

    def __repr__(self) -> str:
        where = self.host or ("in-cluster" if self.in_cluster else self.kubeconfig or "default kubeconfig")
        return f"KubernetesClient({where!r}, namespaces={self.namespaces!r})"

    def close(self) -> None:
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None

    # -- public API -----------------------------------------------------------

    def pods(self, namespace: str | None = None, label_selector: str | None = None) -> list[PodInfo]:
        """Pods with container states, restart counts and last termination reasons."""
        core = k8s.CoreV1Api(self._client())
        kwargs = {"label_selector": label_selector} if label_selector else {}
        items = self._list(core.list_namespaced_pod, core.list_pod_for_all_namespaces,
                           namespace, **kwargs)
        return [parse_pod(item) for item in items]

    def pod(self, namespace: str, name: str) -> PodInfo:
        """One pod by name."""
        core = k8s.CoreV1Api(self._client())
        return parse_pod(self._get(core.read_namespaced_pod, name, namespace))

    def events(
        self, namespace: str | None = None, involved_object: str | tuple[str, str] | dict | None = None
    ) -> list[EventInfo]:
        """Core/v1 events, oldest first. ``involved_object``: a name, ``(kind, name)``
        or ``{"kind":..., "name":...}``; match on ``reason``, as messages vary by version."""
        core = k8s.CoreV1Api(self._client())
        kwargs = {}
        if involved_object:
            kwargs["field_selector"] = _involved_selector(involved_object)
        items = self._list(core.list_namespaced_event, core.list_event_for_all_namespaces,
                           namespace, **kwargs)
        events = [parse_event(item) for item in items]
        return sorted(events, key=lambda e: (e.last_seen is None, e.last_seen or 0))

    def deployments(self, namespace: str | None = None) -> list[DeploymentInfo]:
        """Deployments with revision, replica counts, images and conditions."""
        apps = k8s.AppsV1Api(self._client())
        items = self._list(apps.list_namespaced_deployment,
                           apps.list_deployment_for_all_namespaces, namespace)
        return [parse_deployment(item) for item in items]

    def rollout_history(self, namespace: str, deployment: str) -> list[RolloutRevision]:
        """Revisions of a deployment from its ReplicaSets (like ``kubectl rollout history``)."""
        apps = k8s.AppsV1Api(self._client())
        dep = self._get(apps.read_namespaced_deployment, deployment, namespace)
        selector = selector_string((dep.get("spec") or {}).get("selector") or {})
        rs_list = self._get(apps.list_namespaced_replica_set, namespace,
                            **({"label_selector": selector} if selector else {}))
        return rollout_revisions(dep, rs_list.get("items") or [])

    # -- writes (remediation) ----------------------------------------------------
    #
    # The exact requests kubectl sends (see tests/fixtures/kubernetes/README.md). Writes are never
    # retried (not idempotent in general); the breaker still counts their failures. ``dry_run``
    # sends ``dryRun=All``: the API server validates and answers without persisting.

    def deployment_object(self, namespace: str, name: str) -> dict[str, Any]:
        """The raw Deployment JSON (for dry runs: what a patch would change)."""
        apps = k8s.AppsV1Api(self._client())
        return self._get(apps.read_namespaced_deployment, name, namespace)

    def scale_object(self, namespace: str, deployment: str) -> dict[str, Any]:
        """The Deployment's ``autoscaling/v1`` Scale subresource."""
        apps = k8s.AppsV1Api(self._client())
        return self._get(apps.read_namespaced_deployment_scale, deployment, namespace)

    def replicasets_of(self, namespace: str, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        """ReplicaSets matching a Deployment's selector (ownership is checked by the caller)."""
        apps = k8s.AppsV1Api(self._client())
        selector = selector_string((deployment.get("spec") or {}).get("selector") or {})
        body = self._get(apps.list_namespaced_replica_set, namespace,
                         **({"label_selector": selector} if selector else {}))
        return body.get("items") or []

    def rollout_restart(self, namespace: str, deployment: str, *, restarted_at: str | None = None,
                        dry_run: bool = False) -> dict[str, Any]:
        """``kubectl rollout restart``: a strategic-merge patch of the pod template's
        ``kubectl.kubernetes.io/restartedAt`` annotation (RFC 3339, now unless given)."""
        apps = k8s.AppsV1Api(self._client())
        # A dict body makes the official client send application/strategic-merge-patch+json.
        return self._write(apps.patch_namespaced_deployment, deployment, namespace,
                           restart_patch(restarted_at or rfc3339_now()), dry_run=dry_run)

    def scale(self, namespace: str, deployment: str, replicas: int, *, dry_run: bool = False) -> dict[str, Any]:
        """Set a Deployment's replicas through its scale subresource (a JSON merge patch)."""
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise KubernetesError(f"replicas must be a non-negative integer, not {replicas!r}",
                                  kind=KIND_BAD_RESPONSE)
        # The generated patch method cannot choose a content type: call the API client itself.
        return self._call_api("/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale", "PATCH",
                              {"namespace": namespace, "name": deployment}, {"spec": {"replicas": replicas}},
                              "application/merge-patch+json", dry_run=dry_run, what="patch_namespaced_deployment_scale")

    def rollback_patch(self, namespace: str, deployment: str, to_revision: int | None = None
                       ) -> tuple[list[dict[str, Any]], int, dict[str, Any]]:
        """The JSON patch ``kubectl rollout undo`` would send, the revision it restores and the
        Deployment it was computed from."""
        dep = self.deployment_object(namespace, deployment)
        patch, revision = rollout_undo_patch(dep, self.replicasets_of(namespace, dep), to_revision)
        return patch, revision, dep

    def rollback(self, namespace: str, deployment: str, to_revision: int | None = None, *,
                 dry_run: bool = False) -> dict[str, Any]:
        """``kubectl rollout undo`` (to the previous revision unless ``to_revision``)."""
        patch, _revision, _dep = self.rollback_patch(namespace, deployment, to_revision)
        apps = k8s.AppsV1Api(self._client())
        # A list body makes the official client send application/json-patch+json.
        return self._write(apps.patch_namespaced_deployment, deployment, namespace, patch, dry_run=dry_run)

    def delete_pod(self, namespace: str, name: str, *, grace_period_seconds: int | None = None,
                   dry_run: bool = False) -> dict[str, Any]:
        """Delete one pod (its controller replaces it)."""
        core = k8s.CoreV1Api(self._client())
        kwargs = {"grace_period_seconds": grace_period_seconds} if grace_period_seconds is not None else {}
        return self._write(core.delete_namespaced_pod, name, namespace, dry_run=dry_run, **kwargs)

    def custom_object(self, group: str, version: str, namespace: str, plural: str, name: str) -> dict[str, Any]:
        """A namespaced custom object (e.g. an Istio VirtualService)."""
        custom = k8s.CustomObjectsApi(self._client())
        return self._get(custom.get_namespaced_custom_object, group, version, namespace, plural, name)

    def patch_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str,
                            patch: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386, what CustomObjectsApi sends) of a namespaced custom object.
        Lists are replaced whole; put ``metadata.resourceVersion`` in the patch to make the API
        server refuse it (409) if the object changed since it was read."""
        if not isinstance(patch, dict):
            raise KubernetesError("custom objects take a merge patch (an object)", kind=KIND_BAD_RESPONSE)
        custom = k8s.CustomObjectsApi(self._client())
        return self._write(custom.patch_namespaced_custom_object, group, version, namespace, plural, name, patch,
                           dry_run=dry_run)

    def virtual_service(self, namespace: str, name: str, version: str = "v1") -> dict[str, Any]:
        """An Istio ``networking.istio.io`` VirtualService."""
        return self.custom_object(ISTIO_GROUP, version, namespace, "virtualservices", name)

    def patch_virtual_service(self, namespace: str, name: str, patch: dict[str, Any], *,
                              version: str = "v1", dry_run: bool = False) -> dict[str, Any]:
        """Merge-patch an Istio VirtualService (route weights: the whole ``spec.http`` list)."""
        return self.patch_custom_object(ISTIO_GROUP, version, namespace, "virtualservices", name, patch,
                                        dry_run=dry_run)

    # -- plumbing ---------------------------------------------------------------

    def _client(self) -> k8s.ApiClient:
        if self._api_client is None:
            self._api_client = k8s.ApiClient(self._configuration())
        return self._api_client

    def _configuration(self) -> k8s.Configuration:
        cfg = k8s.Configuration()
        try:
            if self.host:
                cfg.host = self.host
                if self._token:
                    cfg.api_key = {"authorization": self._token}
                    cfg.api_key_prefix = {"authorization": "Bearer"}
                cfg.verify_ssl = self.verify_ssl
                cfg.ssl_ca_cert = self.ca_cert
            elif self.in_cluster:
                k8s_config.load_incluster_config(client_configuration=cfg)
            else:
                # persist_config=False: never write refreshed tokens back to the file.
                k8s_config.load_kube_config(config_file=self.kubeconfig, context=self.context,
                                            client_configuration=cfg, persist_config=False)
        except (ConfigException, OSError, TypeError) as exc:
            raise KubernetesError(
                "kubernetes is not configured (set KUBERNETES_KUBECONFIG or "
                f"KUBERNETES_IN_CLUSTER): {type(exc).__name__}: {str(exc)[:200]}",
                kind=KIND_NOT_CONFIGURED,
            ) from None
        cfg.retries = False  # Resilience owns retries
        return cfg

    def _scrub(self, err: KubernetesError) -> KubernetesError:
        # Defence in depth: a proxy may echo the Authorization header back.
        if self._token and self._token in err.message:
            err.message = err.message.replace(self._token, "***")
            err.args = (err.message,)
        return err

    def _namespaces(self, namespace: str | None) -> list[str] | None:
        if namespace:
            return [namespace]
        return self.namespaces or None  # None -> all namespaces

    def _list(self, namespaced: Callable, cluster_wide: Callable, namespace: str | None,
              **kwargs: Any) -> list[dict[str, Any]]:
        namespaces = self._namespaces(namespace)
        if namespaces is None:
            return self._get(cluster_wide, **kwargs).get("items") or []
        items: list[dict[str, Any]] = []
        for ns in namespaces:
            items.extend(self._get(namespaced, ns, **kwargs).get("items") or [])
        return items

    def _write(self, method: Callable, *args: Any, dry_run: bool = False, **kwargs: Any) -> dict[str, Any]:
        """Call a write method of the official client once (no retries) and decode the JSON."""
        what = getattr(method, "__name__", "request")
        if dry_run:
            kwargs["dry_run"] = "All"

        def attempt() -> bytes:
            try:
                return method(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs).data
            except ApiException as exc:
                raise self._scrub(_api_error(what, exc)) from None
            except urllib3.exceptions.HTTPError as exc:
                raise self._scrub(_transport_error(what, exc, self.timeout[1])) from None

        return self._decode(what, self.resilience.call(attempt, idempotent=False))

    def _call_api(self, path: str, method: str, path_params: dict[str, str], body: Any, content_type: str, *,
                  dry_run: bool = False, what: str = "request") -> dict[str, Any]:
        """A write with an explicit Content-Type, through the official client's ApiClient."""
        api = self._client()

        def call(**kwargs: Any):
            query = [("dryRun", "All")] if dry_run else []
            return api.call_api(path, method, path_params, query,
                                {"Accept": "application/json", "Content-Type": content_type}, body=body,
                                auth_settings=["BearerToken"], _return_http_data_only=True, **kwargs)

        call.__name__ = what
        return self._write(call)

    def _decode(self, what: str, raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw)
        except ValueError:
            raise KubernetesError(f"invalid JSON from {what}: {raw[:200]!r}",
                                  kind=KIND_BAD_RESPONSE) from None
        if not isinstance(body, dict):
            raise KubernetesError(f"unexpected {what} body type", kind=KIND_BAD_RESPONSE)
        return body

    def _get(self, method: Callable, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Call a read method of the official client and return the decoded JSON."""
        what = getattr(method, "__name__", "request")

        def attempt() -> bytes:
            try:
                resp = method(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
                return resp.data
            except ApiException as exc:
                raise self._scrub(_api_error(what, exc)) from None
            except urllib3.exceptions.HTTPError as exc:
                raise self._scrub(_transport_error(what, exc, self.timeout[1])) from None

        raw = self.resilience.call(attempt, idempotent=True)
        try:
            body = json.loads(raw)
        except ValueError:
            raise KubernetesError(f"invalid JSON from {what}: {raw[:200]!r}",
                                  kind=KIND_BAD_RESPONSE) from None
        if not isinstance(body, dict):
            raise KubernetesError(f"unexpected {what} body type", kind=KIND_BAD_RESPONSE)
        return body


def _involved_selector(obj: str | tuple[str, str] | dict) -> str:
    if isinstance(obj, str):
        return f"involvedObject.name={obj}"
    if isinstance(obj, tuple):
        kind, name = obj
    else:
        kind, name = obj.get("kind"), obj.get("name")
    parts = [f"involvedObject.name={name}"]
    if kind:
        parts.append(f"involvedObject.kind={kind}")
    return ",".join(parts)


def _api_error(what: str, exc: ApiException) -> KubernetesError:
    status = exc.status or None
    if not status:  # the client maps SSL/config problems to status 0
        return KubernetesError(f"{what}: {exc.reason}", kind=KIND_CONNECTION)
    body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else (exc.body or "")
    try:
        message = json.loads(body).get("message") or body  # a v1 Status object
    except (ValueError, AttributeError):
        message = body
    message = " ".join(str(message).split())[:500] or str(exc.reason)
    kind = KIND_NOT_FOUND if status == 404 else KIND_HTTP
    return KubernetesError(f"{what}: {message}", status=status, kind=kind, retryable=status >= 500)


def _transport_error(what: str, exc: urllib3.exceptions.HTTPError, read_timeout: float) -> KubernetesError:
    reason = getattr(exc, "reason", None) or exc
    # NewConnectionError subclasses ConnectTimeoutError in urllib3 2.x: test it first.
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return KubernetesError(f"{what}: cannot connect ({_errno(reason)})",
                               kind=KIND_CONNECTION, retryable=True)
    if isinstance(reason, (urllib3.exceptions.TimeoutError, TimeoutError)):
        return KubernetesError(f"{what}: timed out after {read_timeout:g}s",
                               kind=KIND_TIMEOUT, retryable=True)
    return KubernetesError(f"{what}: connection failed ({type(reason).__name__})",
                           kind=KIND_CONNECTION, retryable=True)


def _errno(exc: BaseException) -> str:
    text = str(exc)
    return text[text.find("[Errno"):] if "[Errno" in text else type(exc).__name__


# -- the bodies kubectl sends (pure functions, shared with remediation's dry runs) ----------------

RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
ISTIO_GROUP = "networking.istio.io"
POD_TEMPLATE_HASH = "pod-template-hash"
# kubectl/pkg/polymorphichelpers/rollback.go: annotationsToSkip
ROLLBACK_SKIPPED_ANNOTATIONS = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
})


def rfc3339_now() -> str:
    """What kubectl writes into restartedAt: time.Now().Format(time.RFC3339), seconds precision."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def restart_patch(restarted_at: str) -> dict[str, Any]:
    """The strategic-merge patch of ``kubectl rollout restart``."""
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: restarted_at}}}}}


def _owned_by(rs: dict[str, Any], deployment: dict[str, Any]) -> bool:
    dmeta = deployment.get("metadata") or {}
    return any(o.get("controller") and o.get("kind") == "Deployment" and o.get("name") == dmeta.get("name")
               and (not dmeta.get("uid") or o.get("uid") == dmeta.get("uid"))
               for o in (rs.get("metadata") or {}).get("ownerReferences") or [])


def _rs_revision(obj: dict[str, Any]) -> int | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _template_without_hash(template: dict[str, Any]) -> dict[str, Any]:
    template = json.loads(json.dumps(template))  # a deep copy
    labels = (template.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
    return template


def rollout_undo_patch(deployment: dict[str, Any], replicasets: list[dict[str, Any]],
                       to_revision: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """The JSON patch of ``kubectl rollout undo`` and the revision it restores.

    As kubectl's DeploymentRollbacker: the ReplicaSet of ``to_revision`` (default: the highest
    revision below the newest), its pod template minus the ``pod-template-hash`` label, and
    ``/metadata/annotations`` replaced by the Deployment's own values of the skipped keys plus the
    ReplicaSet's other annotations. A paused deployment, a missing revision or a template that
    already matches are refused.
    """
    if (deployment.get("spec") or {}).get("paused"):
        raise KubernetesError("you cannot rollback a paused deployment; resume it first", kind=KIND_BAD_RESPONSE)
    owned = [(rev, rs) for rs in replicasets if _owned_by(rs, deployment) and (rev := _rs_revision(rs)) is not None]
    if to_revision:
        found = [rs for rev, rs in owned if rev == to_revision]
        if not found:
            raise KubernetesError(f"unable to find specified revision {to_revision} in history", kind=KIND_NOT_FOUND)
        target, revision = found[0], to_revision
    else:
        revisions = sorted({rev for rev, _ in owned})
        if len(revisions) < 2:
            raise KubernetesError("no rollout history found: there is no previous revision", kind=KIND_NOT_FOUND)
        revision = revisions[-2]
        target = next(rs for rev, rs in owned if rev == revision)
    template = _template_without_hash((target.get("spec") or {}).get("template") or {})
    current = _template_without_hash((deployment.get("spec") or {}).get("template") or {})
    if template == current:
        raise KubernetesError(f"skipped rollback (current template already matches revision {revision})",
                              kind=KIND_BAD_RESPONSE)
    own = (deployment.get("metadata") or {}).get("annotations") or {}
    annotations = {k: v for k, v in own.items() if k in ROLLBACK_SKIPPED_ANNOTATIONS}
    annotations.update({k: v for k, v in ((target.get("metadata") or {}).get("annotations") or {}).items()
                        if k not in ROLLBACK_SKIPPED_ANNOTATIONS})
    return ([{"op": "replace", "path": "/spec/template", "value": template},
             {"op": "replace", "path": "/metadata/annotations", "value": annotations}], revision)
