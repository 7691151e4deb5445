from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("notifications/destinations", views.DestinationViewSet, basename="notification-destination")
router.register("notifications/routes", views.RouteViewSet, basename="notification-route")
router.register("notifications/quiet-hours", views.QuietHoursViewSet, basename="notification-quiet-hours")
router.register("notifications/escalation-policies", views.EscalationPolicyViewSet, basename="notification-escalation-policy")
router.register("notifications/deliveries", views.DeliveryViewSet, basename="notification-delivery")
router.register("notifications/escalations", views.ScheduledEscalationViewSet, basename="notification-escalation")

urlpatterns = router.urls
