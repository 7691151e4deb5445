from django.conf import settings
from django.urls import path
from rest_framework.routers import SimpleRouter

from .intake import AlertmanagerIntakeView, GrafanaIntakeView
from .views import AlertViewSet, ChaosView, DetectionRuleViewSet, ServiceChaosView

router = SimpleRouter()
router.register("rules", DetectionRuleViewSet, basename="rule")
router.register("alerts", AlertViewSet, basename="alert")

urlpatterns = [
    path("alerts/alertmanager", AlertmanagerIntakeView.as_view(), name="intake-alertmanager"),
    path("alerts/grafana", GrafanaIntakeView.as_view(), name="intake-grafana"),
    *router.urls,
]
if settings.DEMO_ENABLED:  # the chaos API drives the demo workload: not mounted without it
    urlpatterns += [
        path("chaos/", ChaosView.as_view(), name="chaos"),
        path("chaos/<slug:service>/", ServiceChaosView.as_view(), name="chaos-service"),
    ]
