from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import ActionViewSet, AuditRecordViewSet, KillSwitchView, RunbookViewSet

router = SimpleRouter()
router.register("remediation/runbooks", RunbookViewSet, basename="remediation-runbook")
router.register("remediation/actions", ActionViewSet, basename="remediation-action")
router.register("remediation/audit", AuditRecordViewSet, basename="remediation-audit")

urlpatterns = [
    path("remediation/kill-switch/", KillSwitchView.as_view(), name="remediation-kill-switch"),
    *router.urls,
]
