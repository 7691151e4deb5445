"""Where each service's telemetry is: selectors from the catalog, with defaults that fit the demo.

A service's `labels` in the catalog override any of these keys, so a real estate whose Prometheus
job or Loki stream labels differ from the slug needs no code:

  prometheus.selector   label matchers inside {...} for its metrics       default: service="<slug>"
  loki.selector         a LogQL stream selector                          default: {service="<slug>"}
  tempo.service         its resource.service.name in traces              default: <slug>
  kubernetes.namespace  where its pods run                               default: KUBERNETES_NAMESPACES[0]
  kubernetes.selector   a label selector for its pods                    default: app=<slug>
  kubernetes.deployment its Deployment's name                            default: <slug>
"""
from __future__ import annotations

from django.conf import settings

from incidents.models import Service


def telemetry_selectors(service: Service) -> dict[str, str]:
    slug = service.slug
    namespaces = getattr(settings, "KUBERNETES_NAMESPACES", None) or ["default"]
    defaults = {
        "prometheus.selector": f'service="{slug}"',
        "loki.selector": f'{{service="{slug}"}}',
        "tempo.service": slug,
        "kubernetes.namespace": namespaces[0],
        "kubernetes.selector": f"app={slug}",
        "kubernetes.deployment": slug,
    }
    labels = service.labels or {}
    return {key: str(labels.get(key, value)) for key, value in defaults.items()}
